// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::wire {

// Agent protocol framing: a 4-byte big-endian payload length, then one
// serialized portolan.v1.Envelope. Frames above the maximum are a protocol
// error: the connection is closed rather than buffering unbounded input.
inline constexpr size_t kDefaultMaxFrameBytes = 4u << 20;  // 4 MiB
inline constexpr size_t kHeaderBytes = 4;

// Serializes one envelope into a complete frame.
std::string EncodeFrame(const v1::Envelope& envelope);

// Incremental decoder for a byte stream: bytes arrive in arbitrary pieces
// (a frame split over many reads, or several frames in one read). Not
// thread-safe; one per connection.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  void Append(const char* data, size_t n) { buffer_.append(data, n); }

  // true: `out` holds the next envelope. false: more bytes are needed.
  // Error (InvalidArgument / ResourceExhausted): the stream is unusable.
  absl::StatusOr<bool> Next(v1::Envelope* out);

  size_t buffered() const { return buffer_.size() - consumed_; }
  // Bytes of storage held; back to none (a std::string's inline capacity)
  // whenever every buffered frame has been decoded.
  size_t held_bytes() const { return buffer_.capacity(); }

 private:
  size_t max_frame_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace portolan::wire
