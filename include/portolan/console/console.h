// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portolan/rest/server.h"

namespace portolan::console {

// One file of the web console, compiled into the binary (no CDN, no files
// on disk at run time). The views are in scheduler/console/web/; CMake
// builds them with npm and esbuild and embeds the result (embed.py).
struct Asset {
  std::string_view name;          // "index.html", "app.js", "app.css"
  std::string_view content_type;  // with charset for text
  std::string_view body;
  std::string_view etag;  // quoted, strong: a hash of the body
};

// The files built into this binary, in a static list (thread-safe, never
// freed). Empty when built with -DPORTOLAN_BUILD_CONSOLE=OFF.
const std::vector<Asset>& Assets();

struct Options {
  // Served over HTTPS: adds Strict-Transport-Security.
  bool https = false;
};

// The headers on every /ui/ answer: a Content-Security-Policy that allows
// only the console's own script, style and API calls (no inline script or
// style, no frames, no other origin), and nosniff, DENY framing,
// no-referrer, same-origin opener and resource policies.
std::vector<std::pair<std::string, std::string>> SecurityHeaders(const Options& options);

// Registers GET /ui (and /ui/: the page), GET /ui/{file} and GET / (a
// redirect to /ui/). These routes are public: they carry only the static
// console, never data; every call the console makes goes to the REST API
// with the user's bearer token, so each role sees exactly what the API
// gives it. Answers carry the ETag and honour If-None-Match (304).
void RegisterConsole(rest::Server& server, const Options& options);

}  // namespace portolan::console
