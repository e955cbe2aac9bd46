// Copyright 2026 The libcdp Authors.
//
// The test helpers themselves (tests/test_util.h).

#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace cdp {
namespace {

using testing::TempDir;

// The child runs its one test even when the parent runs under gtest sharding (GTEST_TOTAL_SHARDS /
// GTEST_SHARD_INDEX): in another shard it would run nothing and exit 0, as if it had written its data.
TEST(SpawnTestChildChild, DISABLED_WriteMarker) {
  std::ofstream(testing::ChildEnv("CDP_MARKER")) << "ran";
  _exit(0);
}

TEST(SpawnTestChildTest, RunsTheChildUnderSharding) {
  TempDir dir;
  const std::string marker = dir.Sub("marker");
  setenv("GTEST_TOTAL_SHARDS", "2", 1);
  setenv("GTEST_SHARD_INDEX", "1", 1);
  pid_t pid = testing::SpawnTestChild("SpawnTestChildChild.DISABLED_WriteMarker", {{"CDP_MARKER", marker}});
  unsetenv("GTEST_TOTAL_SHARDS");
  unsetenv("GTEST_SHARD_INDEX");
  ASSERT_GE(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(std::filesystem::exists(marker))
      << "the child exited " << WEXITSTATUS(status) << " without running its test";
}

}  // namespace
}  // namespace cdp
