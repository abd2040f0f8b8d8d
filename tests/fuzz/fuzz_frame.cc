// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the agent RPC frame decoder, fed as the scheduler reads a
// connection (bytes in arbitrary pieces). Invariants checked beyond "no
// crash": every envelope decoded re-encodes to a frame that decodes to the
// same message, and feeding the bytes in one piece or byte by byte gives the
// same envelopes and the same verdict.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "portolan/codec/codec.h"
#include "portolan/wire/frame.h"

namespace {

using portolan::v1::Envelope;
using portolan::wire::FrameDecoder;

constexpr size_t kMaxFrame = 64 * 1024;  // small, so the size check is reached

struct Outcome {
  std::vector<Envelope> envelopes;
  bool failed = false;
};

// Canonical bytes: map entries sorted (their order is otherwise unspecified)
// and doubles bit for bit (a NaN equals itself here, unlike in ==).
std::string Canonical(const Envelope& env) { return portolan::codec::DeterministicBytes(env); }

bool Same(const Outcome& a, const Outcome& b) {
  if (a.failed != b.failed || a.envelopes.size() != b.envelopes.size()) return false;
  for (size_t i = 0; i < a.envelopes.size(); ++i) {
    if (Canonical(a.envelopes[i]) != Canonical(b.envelopes[i])) return false;
  }
  return true;
}

Outcome Decode(const uint8_t* data, size_t size, size_t piece) {
  FrameDecoder decoder(kMaxFrame);
  Outcome out;
  Envelope env;
  for (size_t off = 0; off < size && !out.failed; off += piece) {
    decoder.Append(reinterpret_cast<const char*>(data) + off, std::min(piece, size - off));
    while (true) {
      auto next = decoder.Next(&env);
      if (!next.ok()) {
        out.failed = true;
        break;
      }
      if (!*next) break;
      out.envelopes.push_back(env);
      // Round trip through the encoder.
      FrameDecoder again(kMaxFrame * 4);
      const std::string frame = portolan::wire::EncodeFrame(env);
      again.Append(frame.data(), frame.size());
      Envelope back;
      auto ok = again.Next(&back);
      if (!ok.ok() || !*ok || Canonical(env) != Canonical(back) || again.buffered() != 0) {
        abort();
      }
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 is expected here
    return true;
  }();
  (void)quiet;
  Outcome whole = Decode(data, size, size == 0 ? 1 : size);
  Outcome bytewise = Decode(data, size, 1);
  if (!Same(whole, bytewise)) abort();
  return 0;
}
