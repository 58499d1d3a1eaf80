// What the CLI tests share: running the built `ncore` binary, a per-test
// scratch directory, and reading a Chrome trace it wrote.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace ncore::cli_test {

struct Result {
  int rc;
  std::string out;  // stdout and stderr
};

// `ncore <args>` from the build tree, its exit code and all it printed.
inline Result ncore_cli(const std::string& args) {
  const std::string cmd = std::string(NCORE_BIN_DIR) + "/ncore " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A fresh directory per test (named after the suite, the process and the
// test, so parallel ctest runs do not collide), removed afterwards.
class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("ncore_") + t->test_suite_name() + "_" + std::to_string(::getpid()) + "_" +
            t->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// Complete ("X") events in the Chrome trace at `path` (either JSON layout).
inline size_t complete_trace_events(const std::string& path) {
  std::ifstream f(path);
  const auto t = nlohmann::json::parse(f);
  const auto& events = t.is_array() ? t : t["traceEvents"];
  size_t complete = 0;
  for (const auto& e : events) complete += e.value("ph", "") == "X";
  return complete;
}

}  // namespace ncore::cli_test
