// SPDX-License-Identifier: Apache-2.0
#include "portolan/wire/frame.h"

#include "absl/strings/str_cat.h"

namespace portolan::wire {

std::string EncodeFrame(const v1::Envelope& envelope) {
  std::string out(kHeaderBytes, '\0');
  const size_t n = envelope.ByteSizeLong();
  out[0] = static_cast<char>((n >> 24) & 0xff);
  out[1] = static_cast<char>((n >> 16) & 0xff);
  out[2] = static_cast<char>((n >> 8) & 0xff);
  out[3] = static_cast<char>(n & 0xff);
  envelope.AppendToString(&out);
  return out;
}

absl::StatusOr<bool> FrameDecoder::Next(v1::Envelope* out) {
  if (buffered() < kHeaderBytes) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + consumed_);
  const size_t len = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  if (len > max_frame_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("frame of ", len, " bytes exceeds the maximum of ", max_frame_bytes_));
  }
  if (buffered() < kHeaderBytes + len) return false;
  const char* body = buffer_.data() + consumed_ + kHeaderBytes;
  out->Clear();
  if (!out->ParseFromArray(body, static_cast<int>(len))) {
    return absl::InvalidArgumentError(absl::StrCat("undecodable envelope of ", len, " bytes"));
  }
  if (out->body_case() == v1::Envelope::BODY_NOT_SET) {
    return absl::InvalidArgumentError("envelope without a message");
  }
  consumed_ += kHeaderBytes + len;
  // Compact once the consumed prefix dominates, keeping appends amortized O(1).
  if (consumed_ > 64 * 1024 && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  } else if (consumed_ == buffer_.size()) {
    // Nothing left over: give the storage back, so an idle connection (most
    // of them, between heartbeats) holds no buffer at all.
    std::string().swap(buffer_);
    consumed_ = 0;
  }
  return true;
}

}  // namespace portolan::wire
