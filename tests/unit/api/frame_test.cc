// SPDX-License-Identifier: Apache-2.0
#include "portolan/wire/frame.h"

#include <gtest/gtest.h>

namespace portolan::wire {
namespace {

v1::Envelope Heartbeat(uint64_t seq) {
  v1::Envelope e;
  e.set_seq(seq);
  e.mutable_heartbeat()->set_measured_rtt_ms(1.5);
  return e;
}

TEST(FrameTest, HeaderIsBigEndianLength) {
  std::string f = EncodeFrame(Heartbeat(7));
  ASSERT_GE(f.size(), kHeaderBytes);
  size_t len = (size_t(uint8_t(f[0])) << 24) | (size_t(uint8_t(f[1])) << 16) |
               (size_t(uint8_t(f[2])) << 8) | uint8_t(f[3]);
  EXPECT_EQ(len, f.size() - kHeaderBytes);
}

TEST(FrameTest, DecodesFrameSplitIntoSingleBytes) {
  std::string f = EncodeFrame(Heartbeat(42));
  FrameDecoder d;
  v1::Envelope out;
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    d.Append(&f[i], 1);
    auto r = d.Next(&out);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(*r) << "frame reported complete after " << i + 1 << " bytes";
  }
  d.Append(&f.back(), 1);
  auto r = d.Next(&out);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ(out.seq(), 42u);
  EXPECT_DOUBLE_EQ(out.heartbeat().measured_rtt_ms(), 1.5);
}

TEST(FrameTest, ReleasesItsStorageOnceDrained) {
  // Many idle connections: a decoder between frames must hold no buffer.
  v1::Envelope big;
  big.set_seq(1);
  big.mutable_heartbeat()->mutable_topology()->set_source(std::string(8000, 'x'));
  std::string f = EncodeFrame(big);
  FrameDecoder d;
  d.Append(f.data(), f.size() - 1);
  v1::Envelope out;
  ASSERT_FALSE(*d.Next(&out));
  EXPECT_GE(d.held_bytes(), f.size() - 1) << "a partial frame is kept";
  d.Append(&f.back(), 1);
  ASSERT_TRUE(*d.Next(&out));
  EXPECT_EQ(out.heartbeat().topology().source().size(), 8000u);
  EXPECT_EQ(d.held_bytes(), std::string().capacity());
}

TEST(FrameTest, DecodesCoalescedFramesInOrder) {
  std::string all;
  for (uint64_t i = 1; i <= 50; ++i) all += EncodeFrame(Heartbeat(i));
  FrameDecoder d;
  d.Append(all.data(), all.size());
  v1::Envelope out;
  for (uint64_t i = 1; i <= 50; ++i) {
    auto r = d.Next(&out);
    ASSERT_TRUE(r.ok() && *r);
    EXPECT_EQ(out.seq(), i);
  }
  auto r = d.Next(&out);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameTest, RejectsOversizeFrameFromHeaderAlone) {
  FrameDecoder d(1024);
  const char header[4] = {0, 0, 0x10, 0x01};  // 4097 bytes announced
  d.Append(header, 4);
  v1::Envelope out;
  auto r = d.Next(&out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(FrameTest, RejectsGarbagePayload) {
  FrameDecoder d;
  std::string f = {0, 0, 0, 4, '\xff', '\xff', '\xff', '\xff'};
  d.Append(f.data(), f.size());
  v1::Envelope out;
  auto r = d.Next(&out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FrameTest, RejectsEnvelopeWithoutBody) {
  v1::Envelope empty;
  empty.set_seq(3);
  std::string f = EncodeFrame(empty);
  FrameDecoder d;
  d.Append(f.data(), f.size());
  v1::Envelope out;
  EXPECT_FALSE(d.Next(&out).ok());
}

}  // namespace
}  // namespace portolan::wire
