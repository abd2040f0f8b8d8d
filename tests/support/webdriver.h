// SPDX-License-Identifier: Apache-2.0
#pragma once

// A small W3C WebDriver client (cpprestsdk) for the console's browser tests:
// Debian's chromedriver driving Debian's headless chromium. Only what the
// tests use: navigate, find, click, type, keys, read, run a script, accept
// a confirm(), screenshots, the browser's console log. Every failure throws
// std::runtime_error with the driver's message (a test failure in gtest).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <cpprest/http_client.h>
#include <cpprest/json.h>

#include "free_port.h"

namespace portolan::testing {

class WebDriver {
 public:
  using json = web::json::value;
  using Element = std::string;

  static constexpr const char* kChromium = "/usr/bin/chromium";
  static constexpr const char* kChromedriver = "/usr/bin/chromedriver";
  static bool Available() {
    return access(kChromium, X_OK) == 0 && access(kChromedriver, X_OK) == 0;
  }

  // A free loopback port for chromedriver (which cannot be told port 0).
  static int FreePort() {
    const int port = FreeLoopbackPort();
    if (port == 0) throw std::runtime_error("no free loopback port");
    return port;
  }

  // Waits for chromedriver at `port`, then opens a headless session of
  // `width` x `height` that accepts the test CA's certificates.
  WebDriver(int port, int width = 1400, int height = 1000)
      : http_(web::uri("http://127.0.0.1:" + std::to_string(port))) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      try {
        if (Call(web::http::methods::GET, "/status").at("ready").as_bool()) break;
      } catch (const std::exception&) {
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("chromedriver did not become ready in 20 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    json args = json::array();
    int i = 0;
    for (const std::string& a : std::vector<std::string>{
             "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", "--lang=en-US",
             "--window-size=" + std::to_string(width) + "," + std::to_string(height)}) {
      args[i++] = json::string(a);
    }
    json chrome = json::object();
    chrome["binary"] = json::string(kChromium);
    chrome["args"] = args;
    json always = json::object();
    always["browserName"] = json::string("chrome");
    always["acceptInsecureCerts"] = json::boolean(true);
    always["goog:chromeOptions"] = chrome;
    json logging = json::object();
    logging["browser"] = json::string("ALL");
    always["goog:loggingPrefs"] = logging;
    json caps = json::object();
    caps["alwaysMatch"] = always;
    json body = json::object();
    body["capabilities"] = caps;
    session_ =
        Call(web::http::methods::POST, "/session", body).at("value").at("sessionId").as_string();
  }
  ~WebDriver() {
    try {
      Call(web::http::methods::DEL, "/session/" + session_);
    } catch (const std::exception&) {
    }
  }

  void Navigate(const std::string& url) { S(web::http::methods::POST, "/url", Obj("url", url)); }

  // The first element matching `css` (throws if none).
  Element Find(const std::string& css) {
    json b = Obj("using", "css selector");
    b["value"] = json::string(css);
    return ElementId(S(web::http::methods::POST, "/element", b));
  }
  std::vector<Element> FindAll(const std::string& css) {
    json b = Obj("using", "css selector");
    b["value"] = json::string(css);
    std::vector<Element> out;
    const json found = S(web::http::methods::POST, "/elements", b);  // outlives the loop
    for (const auto& e : found.as_array()) out.push_back(ElementId(e));
    return out;
  }
  // Waits (polling) for an element matching `css`; throws after `timeout`.
  Element WaitFor(const std::string& css,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    Element found;
    Until(
        [&] {
          auto all = FindAll(css);
          if (all.empty()) return false;
          found = all[0];
          return true;
        },
        "an element matching " + css, timeout);
    return found;
  }
  // Polls `done` every 100 ms until true; throws naming `what` after `timeout`.
  void Until(const std::function<bool()>& done, const std::string& what,
             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("timed out waiting for " + what);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  void Click(const Element& e) {
    S(web::http::methods::POST, "/element/" + e + "/click", json::object());
  }
  void Clear(const Element& e) {
    S(web::http::methods::POST, "/element/" + e + "/clear", json::object());
  }
  void Type(const Element& e, const std::string& text) {
    S(web::http::methods::POST, "/element/" + e + "/value", Obj("text", text));
  }
  std::string Text(const Element& e) {
    return S(web::http::methods::GET, "/element/" + e + "/text").as_string();
  }
  // The rendered text of the first element matching `css`, or "" when none matches. One script
  // call, so a page that re-renders between a find and a read cannot make it throw (a stale or
  // vanished element); use it inside Until.
  std::string TextOf(const std::string& css) {
    json b = Obj("script",
                 "const e = document.querySelector(arguments[0]);"
                 "return e ? e.innerText : '';");
    b["args"] = json::array({json::string(css)});
    const json v = S(web::http::methods::POST, "/execute/sync", b);
    return v.is_string() ? v.as_string() : "";
  }
  // An attribute's value; "" when absent.
  std::string Attribute(const Element& e, const std::string& name) {
    json v = S(web::http::methods::GET, "/element/" + e + "/attribute/" + name);
    return v.is_null() ? "" : v.as_string();
  }
  std::string Css(const Element& e, const std::string& property) {
    return S(web::http::methods::GET, "/element/" + e + "/css/" + property).as_string();
  }
  // Presses keys (WebDriver key codes, e.g. "\ue004" Tab, "\ue007" Enter)
  // on whatever has the focus.
  void Keys(const std::string& keys) {
    json seq = json::array();
    int i = 0;
    for (size_t p = 0; p < keys.size();) {
      size_t n = 1;
      unsigned char c = keys[p];
      if (c >= 0xf0)
        n = 4;
      else if (c >= 0xe0)
        n = 3;
      else if (c >= 0xc0)
        n = 2;
      std::string k = keys.substr(p, n);
      p += n;
      seq[i++] = KeyAction("keyDown", k);
      seq[i++] = KeyAction("keyUp", k);
    }
    json source = Obj("type", "key");
    source["id"] = json::string("keyboard");
    Perform(source, seq);
  }
  // A mouse click at viewport coordinates (x, y).
  void ClickAt(int x, int y) {
    json move = Obj("type", "pointerMove");
    move["x"] = json::number(x);
    move["y"] = json::number(y);
    move["origin"] = json::string("viewport");
    move["duration"] = json::number(0);
    json down = Obj("type", "pointerDown");
    down["button"] = json::number(0);
    json up = Obj("type", "pointerUp");
    up["button"] = json::number(0);
    json seq = json::array();
    seq[0] = move;
    seq[1] = down;
    seq[2] = up;
    json params = Obj("pointerType", "mouse");
    json source = Obj("type", "pointer");
    source["id"] = json::string("mouse");
    source["parameters"] = params;
    Perform(source, seq);
  }
  Element Active() { return ElementId(S(web::http::methods::GET, "/element/active")); }
  // Runs `script` (a function body; `arguments` holds nothing) and returns its result.
  json Execute(const std::string& script) {
    json b = Obj("script", script);
    b["args"] = json::array();
    return S(web::http::methods::POST, "/execute/sync", b);
  }
  // Accepts a confirm()/alert() when one opens within `timeout`.
  void AcceptDialog(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Until(
        [&] {
          try {
            S(web::http::methods::POST, "/alert/accept", json::object());
            return true;
          } catch (const std::exception&) {
            return false;
          }
        },
        "a confirmation dialog", timeout);
  }
  void Screenshot(const std::string& path) {
    std::vector<unsigned char> png =
        utility::conversions::from_base64(S(web::http::methods::GET, "/screenshot").as_string());
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  }
  // The browser console's messages since the last call ("LEVEL message").
  std::vector<std::string> ConsoleLog() {
    std::vector<std::string> out;
    const json log = S(web::http::methods::POST, "/se/log", Obj("type", "browser"));
    for (const auto& e : log.as_array())
      out.push_back(e.at("level").as_string() + " " + e.at("message").as_string());
    return out;
  }

 private:
  // One input source's `actions`, performed (POST /actions).
  void Perform(json source, const json& actions) {
    source["actions"] = actions;
    json all = json::array();
    all[0] = source;
    json b = json::object();
    b["actions"] = all;
    S(web::http::methods::POST, "/actions", b);
  }
  static json Obj(const std::string& k, const std::string& v) {
    json o = json::object();
    o[k] = json::string(v);
    return o;
  }
  static json KeyAction(const std::string& type, const std::string& key) {
    json a = Obj("type", type);
    a["value"] = json::string(key);
    return a;
  }
  static Element ElementId(const json& v) {
    return v.at("element-6066-11e4-a52e-4f735466cecf").as_string();
  }
  json S(const web::http::method& m, const std::string& path, const json& body = json::null()) {
    return Call(m, "/session/" + session_ + path, body).at("value");
  }
  json Call(const web::http::method& m, const std::string& path, const json& body = json::null()) {
    web::http::http_request req(m);
    req.set_request_uri(path);
    if (!body.is_null()) req.set_body(body);
    web::http::http_response r = http_.request(req).get();
    json v = r.extract_json(true).get();
    if (r.status_code() >= 400) {
      std::string message = v.has_field("value") && v.at("value").has_field("message")
                                ? v.at("value").at("message").as_string()
                                : v.serialize();
      throw std::runtime_error("webdriver " + m + " " + path + ": " + message.substr(0, 600));
    }
    return path.rfind("/status", 0) == 0 ? v.at("value") : v;
  }

  web::http::client::http_client http_;
  std::string session_;
};

}  // namespace portolan::testing
