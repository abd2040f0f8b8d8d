// SPDX-License-Identifier: Apache-2.0
// The job environment the agent builds before it starts an attempt
// (agent/executor/spawn.h): GPU visibility numbered as the runtimes number
// devices.
#include "agent/executor/spawn.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace portolan::executor {
namespace {

v1::Gpu Gpu(const std::string& name, const std::string& vendor, const std::string& pci) {
  v1::Gpu g;
  g.set_name(name);
  g.set_vendor(vendor);
  g.set_pci_bus_id(pci);
  return g;
}

v1::Job WithGpus(std::initializer_list<const char*> ids) {
  v1::Job j;
  j.set_id("job-g");
  for (const char* id : ids) j.mutable_allocation()->add_gpu_ids(id);
  return j;
}

// hwloc numbers CUDA devices as the CUDA runtime does by default (fastest
// first), which need not be bus order; the job gets CUDA_DEVICE_ORDER=
// PCI_BUS_ID and the indexes of that order.
TEST(JobEnvironmentTest, GpusAreNumberedByPciBusIdPerVendor) {
  const std::vector<v1::Gpu> machine = {
      Gpu("cuda0", "nvidia", "0000:b1:00.0"), Gpu("cuda1", "nvidia", "0000:3b:00.0"),
      Gpu("cuda2", "nvidia", "0000:5e:00.0"), Gpu("rsmi0", "amd", "0000:17:00.0")};
  auto env = JobEnvironment(WithGpus({"cuda0", "cuda2"}), "/w", "/bin", true, machine);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2,1");  // b1 is third by bus id, 5e second
  EXPECT_EQ(env["CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
  EXPECT_EQ(env["PORTOLAN_GPUS"], "cuda0,cuda2");
  EXPECT_EQ(env["ROCR_VISIBLE_DEVICES"], "") << "a GPU machine: none of its AMD GPUs";

  env = JobEnvironment(WithGpus({"rsmi0"}), "/w", "/bin", true, machine);
  EXPECT_EQ(env["ROCR_VISIBLE_DEVICES"], "0") << "the AMD GPUs are numbered among themselves";
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "") << "and the job sees no NVIDIA GPU";

  env = JobEnvironment(WithGpus({}), "/w", "/bin", true, machine);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "");
  EXPECT_FALSE(env.contains("PORTOLAN_GPUS"));
}

// What the agent found on an H100 in a virtual machine: the card on PCI, named
// after the OpenCL device hwloc did not attach to it (opencl1d0), or by its
// bus id where no runtime lists it. Either is CUDA device 0 by bus id (the
// job saw no GPU when the OpenCL name was taken for a CUDA number).
TEST(JobEnvironmentTest, ACardNamedByOpenClOrItsBusIdIsNumberedByBusId) {
  for (const char* name : {"opencl1d0", "0000:00:06.0"}) {
    const std::vector<v1::Gpu> machine = {Gpu(name, "nvidia", "0000:00:06.0")};
    auto env = JobEnvironment(WithGpus({"0000:00:06.0"}), "/w", "/bin", true, machine);
    EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "0") << name;
    EXPECT_EQ(env["PORTOLAN_GPUS"], "0000:00:06.0");
  }
  // Without the machine's GPU, OpenCL's name gives its index in its platform.
  auto env = JobEnvironment(WithGpus({"opencl1d2"}), "/w", "/bin", false,
                            {Gpu("opencl1d2", "nvidia", "")});
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2");
}

// The driver numbers device nodes by its own minor, not by bus order: the
// node is read from /proc/driver/nvidia/gpus/<bus id>/information (laid out
// here as the driver writes it).
TEST(JobEnvironmentTest, GpuDeviceNodesComeFromTheDriversMinorNumbers) {
  const std::string proc = ::testing::TempDir() + "/nvidia-gpus";
  for (const auto& [bus, minor] : {std::pair<std::string, int>{"0000:3b:00.0", 1},
                                   std::pair<std::string, int>{"0000:5e:00.0", 0}}) {
    std::filesystem::create_directories(proc + "/" + bus);
    std::ofstream(proc + "/" + bus + "/information")
        << "Model: \t\t NVIDIA H100 80GB HBM3\nBus Location: \t " << bus << "\nDevice Minor: \t "
        << minor << "\nGPU Excluded:\t No\n";
  }
  const std::vector<v1::Gpu> machine = {
      Gpu("cuda0", "nvidia", "0000:3b:00.0"), Gpu("cuda1", "nvidia", "0000:5e:00.0"),
      Gpu("rsmi0", "amd", "0000:17:00.0"), Gpu("cuda2", "nvidia", "")};
  const auto nodes = NvidiaDeviceNodes(machine, proc, "/dev");
  ASSERT_EQ(nodes.size(), 2u) << "the driver lists neither the AMD card nor an emulated one";
  EXPECT_EQ(nodes[0].path, "/dev/nvidia1");
  EXPECT_EQ(nodes[0].bus_id, "0000:3b:00.0");
  EXPECT_EQ(nodes[1].path, "/dev/nvidia0");
  v1::Allocation alloc;
  alloc.add_gpu_ids("0000:5e:00.0");
  EXPECT_EQ(DeniedDevices(alloc, nodes), std::vector<std::string>{"/dev/nvidia1"});
  alloc.add_gpu_ids("cuda0");  // an allocation by hwloc's name
  EXPECT_TRUE(DeniedDevices(alloc, nodes).empty());
  EXPECT_EQ(DeniedDevices(v1::Allocation(), nodes).size(), 2u);
}

// An emulated topology has GPUs the machine lacks: the number in the name.
TEST(JobEnvironmentTest, WithoutTheMachinesGpusTheNameGivesTheIndex) {
  auto env = JobEnvironment(WithGpus({"cuda1", "ze3"}), "/w", "/bin", false, {});
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "1");
  EXPECT_EQ(env["ZE_AFFINITY_MASK"], "3");
  EXPECT_FALSE(env.contains("ROCR_VISIBLE_DEVICES")) << "no GPU here and none allotted";
  env = JobEnvironment(WithGpus({}), "/w", "/bin", false, {});
  EXPECT_FALSE(env.contains("CUDA_VISIBLE_DEVICES")) << "a machine without GPUs sets nothing";
}

}  // namespace
}  // namespace portolan::executor
