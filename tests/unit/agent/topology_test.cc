// SPDX-License-Identifier: Apache-2.0
#include "portolan/discovery/topology.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace portolan::discovery {
namespace {

TEST(TopologyTest, SyntheticDataCentreServer) {
  auto t = discovery::DiscoverTopology({"pack:2 numa:2(memory=64GiB) l3:1 core:8 pu:2", ""});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->packages(), 2u);
  ASSERT_EQ(t->numa_nodes_size(), 4);
  EXPECT_EQ(t->numa_nodes(0).memory_mb(), 65536u);
  EXPECT_EQ(t->cores_size(), 32);
  EXPECT_EQ(t->pus(), 64u);
  EXPECT_EQ(t->memory_mb(), 4u * 65536);
  // Cores 0-7 share NUMA node 0 and one L3; their PUs are siblings.
  EXPECT_EQ(t->cores(0).numa(), 0);
  EXPECT_EQ(t->cores(8).numa(), 1);
  EXPECT_EQ(t->cores(8).package(), 0u);
  EXPECT_EQ(t->cores(16).package(), 1u);
  EXPECT_EQ(t->cores(0).l3(), t->cores(7).l3());
  EXPECT_NE(t->cores(0).l3(), t->cores(8).l3());
  EXPECT_EQ(t->cores(0).pus_size(), 2);
}

TEST(TopologyTest, RealMachineHasProcessingUnitsAndMemory) {
  auto t = discovery::DiscoverTopology({});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_GT(t->pus(), 0u);
  EXPECT_GT(t->memory_mb(), 0u);
  EXPECT_EQ(t->source(), "hwloc");
}

TEST(TopologyTest, MalformedSourcesAreRefusedWithTheirName) {
  auto t = discovery::DiscoverTopology({"pack:two cores", ""});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("pack:two cores"), absl::string_view::npos);
  std::string path = testing::TempDir() + "/bad-topology.xml";
  FILE* f = fopen(path.c_str(), "w");
  fputs("<topology><object", f);
  fclose(f);
  t = discovery::DiscoverTopology({"", path});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path), absl::string_view::npos);
  EXPECT_FALSE(discovery::DiscoverTopology({"pack:1 core:1 pu:1", path}).ok());
}

TEST(TopologyTest, ImplausibleTopologiesAreRejected) {
  v1::Topology t;
  EXPECT_FALSE(discovery::CheckTopology(t).ok());
  t.set_pus(4);
  t.add_cores()->add_pus(0);
  EXPECT_FALSE(discovery::CheckTopology(t).ok());  // no memory
  t.set_memory_mb(1024);
  EXPECT_TRUE(discovery::CheckTopology(t).ok());
  t.set_memory_mb(100u << 20);  // 100 TiB
  EXPECT_FALSE(discovery::CheckTopology(t).ok());
}

}  // namespace
}  // namespace portolan::discovery
