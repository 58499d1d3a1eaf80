// `ncore ... attention` as a user drives it: `run attention` on 2-D, 3-D and
// 4-D .npy inputs agrees with the float64 golden within its bound on cpu and
// trn2, with and without the causal mask and LSE; bad input exits 2 with a
// message and leaves no output; check, asm, bench (cpu and device) and
// profile work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include <attention_golden.h>

#include "../../bench/npy.h"
#include "cli_harness.h"

namespace ncore {
namespace {

namespace fs = std::filesystem;

using cli_test::ncore_cli;
using cli_test::Result;

class AttentionCli : public cli_test::ScratchDirTest {
 protected:
  // U(-1, 1) values of `shape` into name.npy; returns the values.
  std::vector<float> write_random(const std::string& name, const std::vector<int64_t>& shape,
                                  uint64_t seed) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = u(rng);
    npy::write(path(name), shape, v.data());
    return v;
  }
};

std::vector<float> rounded(std::vector<float> v, DType dt) {
  for (float& x : v) x = round_to(dt, x);
  return v;
}

TEST_F(AttentionCli, RunMatchesFloat64ForEveryRank) {
  struct Case {
    std::vector<int64_t> q, kv;  // shapes as given; [B, H, S, D] with leading 1s dropped
    bool causal;
    const char* dtype;
  };
  const Case cases[] = {
      {{200, 64}, {300, 64}, false, "f32"},            // 2-D
      {{4, 130, 80}, {2, 600, 80}, true, "bf16"},      // 3-D, GQA 4:2, Sq < Skv
      {{2, 2, 300, 32}, {2, 1, 140, 32}, true, "f32"},  // 4-D, Sq > Skv: rows that see no key
  };
  for (const Case& c : cases) {
    const DType dt = std::string(c.dtype) == "bf16" ? DType::kBF16 : DType::kF32;
    const auto q = rounded(write_random("q.npy", c.q, 1), dt);
    const auto k = rounded(write_random("k.npy", c.kv, 2), dt);
    const auto v = rounded(write_random("v.npy", c.kv, 3), dt);
    std::vector<int64_t> q4(4 - c.q.size(), 1), kv4(4 - c.kv.size(), 1);
    q4.insert(q4.end(), c.q.begin(), c.q.end());
    kv4.insert(kv4.end(), c.kv.begin(), c.kv.end());
    const float scale = 0.2f;
    const auto g = golden::attention({q4[0], q4[1], kv4[1], q4[2], kv4[2], q4[3], c.causal, scale, dt,
                                      DType::kF32},
                                     q.data(), k.data(), v.data());
    for (const char* target : {"cpu", "trn2"}) {
      const std::string o = path("o.npy"), lse = path("lse.npy");
      const Result r = ncore_cli("run attention --q " + path("q.npy") + " --k " + path("k.npy") +
                                 " --v " + path("v.npy") + " --out " + o + " --lse " + lse +
                                 " --scale 0.2 --target " + target + " --dtype " + c.dtype +
                                 (c.causal ? " --causal" : ""));
      ASSERT_EQ(r.rc, 0) << r.out;
      const npy::Array oa = npy::read(o), la = npy::read(lse);
      EXPECT_EQ(oa.shape, c.q);
      EXPECT_EQ(la.shape, std::vector<int64_t>(c.q.begin(), c.q.end() - 1));
      EXPECT_LE(golden::worst_ratio(oa.data.data(), g.o, g.o_bound), 1.0) << target << " " << c.dtype;
      EXPECT_LE(golden::worst_ratio(la.data.data(), g.lse, g.lse_bound), 1.0) << target << " " << c.dtype;
      fs::remove(o);
      fs::remove(lse);
    }
  }
  // Without --lse only O is written; the default scale is 1/sqrt(D).
  const auto q = write_random("q.npy", {50, 16}, 4), k = write_random("k.npy", {70, 16}, 5),
             v = write_random("v.npy", {70, 16}, 6);
  const Result r = ncore_cli("run attention --q " + path("q.npy") + " --k " + path("k.npy") +
                             " --v " + path("v.npy") + " --out " + path("o.npy"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto g = golden::attention({1, 1, 1, 50, 70, 16, false, 0.25f, DType::kF32, DType::kF32},
                                   q.data(), k.data(), v.data());
  EXPECT_LE(golden::worst_ratio(npy::read(path("o.npy")).data.data(), g.o, g.o_bound), 1.0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 4);
}

TEST_F(AttentionCli, BadInputExitsTwoWithAMessageAndNoOutput) {
  write_random("q.npy", {2, 8, 64}, 1);
  write_random("k.npy", {2, 8, 64}, 2);
  write_random("v.npy", {2, 8, 64}, 3);
  write_random("k_d32.npy", {2, 8, 32}, 4);
  write_random("v9.npy", {2, 9, 64}, 5);
  write_random("q_d200.npy", {2, 8, 200}, 6);
  write_random("k_d200.npy", {2, 8, 200}, 7);
  write_random("q8h.npy", {8, 8, 64}, 8);
  write_random("k3h.npy", {3, 8, 64}, 9);
  write_random("q1d.npy", {64}, 10);
  write_random("q5d.npy", {1, 1, 2, 8, 64}, 11);
  write_random("q2d.npy", {8, 64}, 12);
  write_random("k4d_b2.npy", {2, 2, 8, 64}, 13);
  write_random("q4d_b1.npy", {1, 2, 8, 64}, 14);
  std::ofstream(path("garbage.npy"), std::ios::binary) << "this is not a numpy file";

  struct Bad {
    std::string args, message;
  };
  auto qkv = [&](const std::string& q, const std::string& k, const std::string& v) {
    return " --q " + path(q) + " --k " + path(k) + " --v " + path(v);
  };
  const std::string out = " --out " + path("o.npy") + " --lse " + path("lse.npy");
  const std::vector<Bad> cases = {
      {qkv("q.npy", "k_d32.npy", "k_d32.npy") + out, "K batch and head dim must match Q's"},
      {qkv("q.npy", "k.npy", "v9.npy") + out, "V must have K's shape"},
      {qkv("q_d200.npy", "k_d200.npy", "k_d200.npy") + out, "head dim D = 200 exceeds 128"},
      {qkv("q8h.npy", "k3h.npy", "k3h.npy") + out, "3 heads, which do not divide Q's 8"},
      {qkv("q1d.npy", "k.npy", "v.npy") + out, "K must have Q's rank 1"},
      {qkv("q1d.npy", "q1d.npy", "q1d.npy") + out, "Q must be 2-D [S, D], 3-D [H, S, D] or 4-D"},
      {qkv("q5d.npy", "q5d.npy", "q5d.npy") + out, "got rank 5"},
      {qkv("q2d.npy", "k.npy", "v.npy") + out, "K must have Q's rank 2, got 3"},
      {qkv("q4d_b1.npy", "k4d_b2.npy", "k4d_b2.npy") + out, "K batch and head dim must match Q's (1, 64)"},
      {qkv("garbage.npy", "k.npy", "v.npy") + out, "bad magic"},
      {qkv("missing.npy", "k.npy", "v.npy") + out, "cannot be opened"},
      {qkv("q.npy", "k.npy", "v.npy") + out + " --scale -1", "scale must be finite and > 0"},
      {qkv("q.npy", "k.npy", "v.npy") + out + " --target tpu", "tpu"},
      {qkv("q.npy", "k.npy", "v.npy") + out + " --dtype f64", "f64"},
      {" --q " + path("q.npy") + " --k " + path("k.npy") + out, "--v"},
  };
  for (const Bad& c : cases) {
    const Result r = ncore_cli("run attention" + c.args);
    EXPECT_EQ(r.rc, 2) << c.args << "\n" << r.out;
    EXPECT_THAT(r.out, ::testing::HasSubstr(c.message)) << c.args;
    for (const char* f : {"o.npy", "lse.npy", "o.npy.tmp", "lse.npy.tmp"})
      EXPECT_FALSE(fs::exists(path(f))) << "output " << f << " after: " << c.args;
  }
  // Shape options are checked the same way.
  EXPECT_EQ(ncore_cli("check attention --sq 8 --d 200").rc, 2);
  EXPECT_EQ(ncore_cli("bench attention --sq 8 --d 64 --hq 8 --hkv 3").rc, 2);
  EXPECT_EQ(ncore_cli("asm attention --sq 8 --d 64 --target cpu").rc, 2);
}

TEST_F(AttentionCli, CheckAsmBenchAndProfile) {
  Result r = ncore_cli("check attention --hq 4 --hkv 2 --sq 200 --skv 600 --d 64 --causal --dtype bf16 --target trn1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("PASS"));
  r = ncore_cli("asm attention --sq 130 --d 64 --causal --target trn2");
  EXPECT_EQ(r.rc, 0) << r.out;
  for (const char* text : {"matmul", "transpose", "affine_select", "kernels/attention.h:"})
    EXPECT_THAT(r.out, ::testing::HasSubstr(text));

  r = ncore_cli("bench attention --hq 2 --sq 256 --d 64 --dtype bf16 --causal --threads 2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"kernel", "target", "b", "hq", "hkv", "sq", "skv", "d", "causal", "dtype",
                          "threads", "median_ms", "gflops"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kernel"], "attention");
  EXPECT_EQ(j["target"], "cpu");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["gflops"].get<double>(), 0.0);

  r = ncore_cli("bench attention --hq 2 --sq 1024 --d 128 --dtype bf16 --target trn2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["target"], "trn2");
  EXPECT_EQ(j["sq"], 1024);
  EXPECT_GT(j["te_utilization"].get<double>(), 0.0);
  EXPECT_LE(j["te_utilization"].get<double>(), 1.0);

  const std::string trace = path("trace.json");
  r = ncore_cli("profile attention --sq 300 --d 64 --causal --target trn2 --trace " + trace);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_GT(cli_test::complete_trace_events(trace), 10u);
}

}  // namespace
}  // namespace ncore
