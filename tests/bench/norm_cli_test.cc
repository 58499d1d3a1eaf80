// The ncore binary's layernorm / rmsnorm as a user drives them: `run` on
// .npy files agrees with the float64 golden within its derived bound (1-D,
// 2-D and 3-D X, f32 and bf16, cpu and trn2, a non-default eps); check, asm,
// bench (cpu and device, JSON) and profile work; every bad input exits 2 with
// a message naming the operand and leaves no output file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include <norm_golden.h>
#include <ncore/kernels/norm.h>

#include "../../bench/npy.h"
#include "cli_harness.h"

namespace ncore {
namespace {

namespace fs = std::filesystem;

using cli_test::ncore_cli;
using cli_test::Result;

class NormCliTest : public cli_test::ScratchDirTest {
 protected:
  std::string write(const std::string& name, const std::vector<int64_t>& shape, uint64_t seed,
                    float lo = -2.0f, float hi = 2.0f) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = u(rng);
    npy::write(path(name), shape, v.data());
    return path(name);
  }
  // A .npy header with arbitrary dict text, followed by `data_bytes` zero bytes.
  void write_npy_header(const std::string& name, const std::string& dict, size_t data_bytes) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string f = std::string("\x93NUMPY\x01\x00", 8);
    f += char(h.size() & 0xFF);
    f += char(h.size() >> 8);
    f += h;
    f += std::string(data_bytes, '\0');
    std::ofstream(path(name), std::ios::binary) << f;
  }
};

std::vector<float> rounded(const std::vector<float>& v, DType dt) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = round_to(dt, v[i]);
  return r;
}

// The golden's summation depth must cover the plan that ran: the deeper of
// the host plan (cpu) and trn2's.
golden::NormShape bound_shape(NormKind kind, int64_t rows, int64_t d, DType dt) {
  golden::NormShape s;
  s.rms_piece = 0;
  s.rms_pieces = 1;
  for (NormPlace place : {NormPlace::kHost, NormPlace::kDevice}) {
    const NormPlan p = plan_norm(kTrn2, kind, rows, d, {dt, dt, dt, dt}, place);
    s.rms_piece = std::max(s.rms_piece, std::min(p.block, p.op_chunk));
    s.rms_pieces = std::max<int64_t>(s.rms_pieces, p.pieces);
  }
  return s;
}

TEST_F(NormCliTest, RunMatchesFloat64OnEveryRankDtypeAndTarget) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{513}, std::vector<int64_t>{130, 257}, std::vector<int64_t>{3, 5, 700}}) {
    const int64_t d = shape.back();
    int64_t rows = 1;
    for (size_t k = 0; k + 1 < shape.size(); ++k) rows *= shape[k];
    const std::string x = write("x.npy", shape, 1), g = write("g.npy", {d}, 2, 0.5f, 1.5f),
                      b = write("b.npy", {d}, 3);
    for (NormKind kind : {NormKind::kLayer, NormKind::kRms})
      for (const char* dtype : {"f32", "bf16"}) {
        const DType dt = std::string(dtype) == "bf16" ? DType::kBF16 : DType::kF32;
        const std::vector<float> xv = rounded(npy::read(x).data, dt), gv = rounded(npy::read(g).data, dt),
                                 bv = rounded(npy::read(b).data, dt);
        const golden::MatF xm = Eigen::Map<const golden::MatF>(xv.data(), rows, d);
        const golden::NormShape bs = bound_shape(kind, rows, d, dt);
        const golden::NormGolden want = kind == NormKind::kLayer
                                            ? golden::layernorm(xm, gv, bv, kNormDefaultEps, dt, bs)
                                            : golden::rmsnorm(xm, gv, kNormDefaultEps, dt, bs);
        for (const char* target : {"cpu", "trn2"}) {
          const std::string out = path(cat("y_", norm_name(kind), dtype, target, ".npy"));
          const std::string args = cat("run ", norm_name(kind), " --x ", x, " --gamma ", g,
                                       kind == NormKind::kLayer ? " --beta " + b : "", " --out ", out,
                                       " --target ", target, " --dtype ", dtype);
          const Result r = ncore_cli(args);
          ASSERT_EQ(r.rc, 0) << args << "\n" << r.out;
          const npy::Array y = npy::read(out);
          ASSERT_EQ(y.shape, shape);
          const golden::MatF ym = Eigen::Map<const golden::MatF>(y.data.data(), rows, d);
          EXPECT_LE(golden::norm_worst_ratio(ym, want.y, want.bound), 1.0) << args;
        }
      }
  }
}

// --eps reaches the kernel: a large eps changes the result, and the golden
// with that eps holds.
TEST_F(NormCliTest, EpsOption) {
  const std::string x = write("x.npy", {40, 300}, 4, -0.1f, 0.1f), g = write("g.npy", {300}, 5);
  const std::string out = path("y.npy"), out_default = path("y0.npy");
  Result r = ncore_cli("run rmsnorm --x " + x + " --gamma " + g + " --out " + out + " --eps 0.25");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = ncore_cli("run rmsnorm --x " + x + " --gamma " + g + " --out " + out_default);
  ASSERT_EQ(r.rc, 0) << r.out;
  const npy::Array y = npy::read(out), x_arr = npy::read(x), g_arr = npy::read(g);
  EXPECT_NE(y.data, npy::read(out_default).data);
  const golden::MatF xm = Eigen::Map<const golden::MatF>(x_arr.data.data(), 40, 300);
  const golden::NormGolden want = golden::rmsnorm(xm, g_arr.data, 0.25f, DType::kF32);
  const golden::MatF ym = Eigen::Map<const golden::MatF>(y.data.data(), 40, 300);
  EXPECT_LE(golden::norm_worst_ratio(ym, want.y, want.bound), 1.0);
}

TEST_F(NormCliTest, BadInputExitsTwoWithAMessageAndNoOutput) {
  const std::string x = write("x.npy", {4, 8}, 1), g = write("g.npy", {8}, 2), b = write("b.npy", {8}, 3);
  const std::string g7 = write("g7.npy", {7}, 4), b9 = write("b9.npy", {9}, 5),
                    g2d = write("g2d.npy", {2, 4}, 6);
  write_npy_header("x_empty.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", 0);
  std::ofstream(path("garbage.npy")) << "not a numpy file";
  const std::string out = path("y.npy");
  struct Bad {
    std::string args, message;
  };
  const std::string ln = "run layernorm --out " + out, rms = "run rmsnorm --out " + out;
  const std::vector<Bad> cases = {
      {ln + " --x " + x + " --gamma " + g7 + " --beta " + b, "gamma must be [8] (D of X), got shape (7)"},
      {ln + " --x " + x + " --gamma " + g + " --beta " + b9, "beta must be [8] (D of X), got shape (9)"},
      {rms + " --x " + x + " --gamma " + g2d, "gamma must be [8] (D of X), got shape (2, 4)"},
      {rms + " --x " + path("x_empty.npy") + " --gamma " + g, "X has an empty dimension"},
      {rms + " --x " + path("garbage.npy") + " --gamma " + g, "bad magic"},
      {rms + " --x " + path("missing.npy") + " --gamma " + g, "cannot be opened"},
      {ln + " --x " + x + " --gamma " + g, "--beta"},
      {rms + " --x " + x + " --gamma " + g + " --dtype f64", "f64"},
      {rms + " --x " + x + " --gamma " + g + " --target tpu", "tpu"},
      {rms + " --x " + x + " --gamma " + g + " --eps -1", "eps must be a finite number >= 0, got -1"},
      {rms + " --x " + x + " --gamma " + g + " --eps inf", "eps must be a finite number >= 0, got inf"},
  };
  for (const Bad& c : cases) {
    const Result r = ncore_cli(c.args);
    EXPECT_EQ(r.rc, 2) << c.args << "\n" << r.out;
    EXPECT_THAT(r.out, ::testing::HasSubstr(c.message)) << c.args;
    EXPECT_FALSE(fs::exists(out)) << "partial output after: " << c.args;
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  }
  EXPECT_EQ(ncore_cli("check layernorm --rows 0 --d 8").rc, 2);
  EXPECT_EQ(ncore_cli("asm rmsnorm --rows 8 --d 8 --target cpu").rc, 2);
}

TEST_F(NormCliTest, CheckAsmAndCpuBenchJson) {
  Result r = ncore_cli("check layernorm --rows 200 --d 700 --dtype bf16 --target trn1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("PASS"));
  r = ncore_cli("check rmsnorm --rows 130 --d 1500 --eps 0.001");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("PASS"));
  r = ncore_cli("asm layernorm --rows 130 --d 600 --target trn2");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("bn_stats"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("kernels/norm.h:"));
  r = ncore_cli("bench rmsnorm --rows 256 --d 512 --dtype bf16 --threads 2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"kernel", "target", "rows", "d", "dtype", "threads", "median_ms", "gbps"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kernel"], "rmsnorm");
  EXPECT_EQ(j["target"], "cpu");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["gbps"].get<double>(), 0.0);
}

TEST_F(NormCliTest, DeviceBenchAndProfile) {
  Result r = ncore_cli("bench layernorm --rows 1024 --d 2048 --target trn2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"kernel", "target", "rows", "d", "dtype", "latency_us", "mbu", "engines"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kernel"], "layernorm");
  EXPECT_EQ(j["target"], "trn2");
  EXPECT_GT(j["mbu"].get<double>(), 0.0);
  EXPECT_LE(j["mbu"].get<double>(), 1.0);
  const std::string trace = path("trace.json");
  r = ncore_cli("profile rmsnorm --rows 512 --d 1024 --target trn1 --trace " + trace);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_GT(cli_test::complete_trace_events(trace), 10u);
  EXPECT_EQ(ncore_cli("profile layernorm --rows 2 --d 2 --target cpu --trace " + trace).rc, 2);
}

}  // namespace
}  // namespace ncore
