// The ncore binary as a user drives it: `run gemm` on .npy files agrees with a
// float64 matmul within the derived bound on odd shapes, both dtypes, cpu and
// trn2; every bad input exits 2 with a message and leaves no output file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <golden.h>

#include "../../bench/npy.h"
#include "cli_harness.h"

namespace ncore {
namespace {

namespace fs = std::filesystem;

using cli_test::ncore_cli;
using cli_test::Result;

class CliTest : public cli_test::ScratchDirTest {
 protected:
  std::string write_matrix(const std::string& name, int64_t rows, int64_t cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = u(rng);
    npy::write(path(name), {rows, cols}, v.data());
    return path(name);
  }
  void write_bytes(const std::string& name, const std::string& bytes) {
    std::ofstream(path(name), std::ios::binary) << bytes;
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
    write_bytes(name, f);
  }
};

// Rounds like `--dtype`: the golden sees exactly the values the kernel sees.
golden::MatF rounded(const npy::Array& a, DType dt) {
  golden::MatF m(a.dim(0), a.dim(1));
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = round_to(dt, a.data[size_t(i)]);
  return m;
}

TEST_F(CliTest, RunGemmMatchesFloat64OnOddShapes) {
  struct Shape {
    int64_t m, n, k;
  };
  for (Shape s : {Shape{1, 1, 1}, Shape{130, 513, 129}, Shape{3, 5, 9000}}) {
    const std::string a = write_matrix("a.npy", s.m, s.k, 1), b = write_matrix("b.npy", s.k, s.n, 2);
    for (const char* dtype : {"f32", "bf16"}) {
      const DType dt = std::string(dtype) == "bf16" ? DType::kBF16 : DType::kF32;
      const auto g = golden::gemm(rounded(npy::read(a), dt), rounded(npy::read(b), dt), DType::kF32);
      for (const char* target : {"cpu", "trn2"}) {
        const std::string out = path(std::string("c_") + dtype + target + ".npy");
        const Result r = ncore_cli("run gemm --a " + a + " --b " + b + " --out " + out +
                                   " --target " + target + " --dtype " + dtype);
        ASSERT_EQ(r.rc, 0) << r.out;
        const npy::Array c = npy::read(out);
        ASSERT_EQ(c.shape, (std::vector<int64_t>{s.m, s.n}));
        const golden::MatF cf = Eigen::Map<const golden::MatF>(c.data.data(), s.m, s.n);
        EXPECT_LE(golden::worst_ratio(cf, g.c, g.bound), 1.0)
            << s.m << "x" << s.n << "x" << s.k << " " << dtype << " " << target;
      }
    }
  }
}

TEST_F(CliTest, BadInputExitsTwoWithAMessageAndNoOutput) {
  const std::string a = write_matrix("a.npy", 4, 5, 1), b = write_matrix("b.npy", 5, 6, 2);
  const std::string b_bad_k = write_matrix("b_bad_k.npy", 7, 6, 3);
  {
    std::vector<float> v(24);
    npy::write(path("a3d.npy"), {2, 3, 4}, v.data());
  }
  write_bytes("garbage.npy", "this is not a numpy file at all");
  write_npy_header("f64.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 5), }", 160);
  write_npy_header("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 5), }", 80);
  write_npy_header("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 5), }", 79);
  write_npy_header("badshape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, x), }", 80);
  write_bytes("truncated_header.npy", std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 18));
  fs::create_directories(path("a_directory.npy"));

  struct Bad {
    std::string args, message;
  };
  const std::string out = path("c.npy");
  const std::string ab = " --out " + out;
  const std::vector<Bad> cases = {
      {"--a " + a + " --b " + b_bad_k + ab, "B has 7 rows, A has 5 columns"},
      {"--a " + path("a3d.npy") + " --b " + b + ab, "A must be 2-D, got rank 3"},
      {"--a " + path("missing.npy") + " --b " + b + ab, "cannot be opened"},
      {"--a " + path("a_directory.npy") + " --b " + b + ab, "a_directory.npy"},
      {"--a " + path("garbage.npy") + " --b " + b + ab, "bad magic"},
      {"--a " + path("f64.npy") + " --b " + b + ab, "dtype must be float32"},
      {"--a " + path("fortran.npy") + " --b " + b + ab, "C-ordered"},
      {"--a " + path("short.npy") + " --b " + b + ab, "holds 79 data bytes, its shape needs 80"},
      {"--a " + path("badshape.npy") + " --b " + b + ab, "non-integer"},
      {"--a " + path("truncated_header.npy") + " --b " + b + ab, "truncated"},
      {"--a " + a + " --b " + b + ab + " --target tpu", "tpu"},
      {"--a " + a + " --b " + b + ab + " --dtype f64", "f64"},
      {"--a " + a + ab, "--b"},
  };
  for (const Bad& c : cases) {
    const Result r = ncore_cli("run gemm " + c.args);
    EXPECT_EQ(r.rc, 2) << c.args << "\n" << r.out;
    EXPECT_THAT(r.out, ::testing::HasSubstr(c.message)) << c.args;
    EXPECT_FALSE(fs::exists(out)) << "partial output after: " << c.args;
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  }
  // Unknown subcommands and kernels are bad input too.
  EXPECT_EQ(ncore_cli("frobnicate").rc, 2);
  EXPECT_EQ(ncore_cli("run conv2d").rc, 2);
}

// `ncore` alone (the README's main job): every kernel family, f32 and bf16,
// on cpu and trn2, each checked against its golden.
TEST_F(CliTest, DefaultWorkChecksEveryKernelOnBothPaths) {
  const Result r = ncore_cli("");
  ASSERT_EQ(r.rc, 0) << r.out;
  // One header line per (kernel, dtype): "<kernel> <shape> <dtype>...".
  std::vector<std::string> lines;
  for (size_t b = 0, e; b < r.out.size(); b = e + 1) {
    e = r.out.find('\n', b);
    if (e == std::string::npos) e = r.out.size();
    lines.push_back(r.out.substr(b, e - b));
  }
  for (const char* kernel : {"gemm ", "attention ", "layernorm ", "rmsnorm "})
    for (const char* dtype : {" f32", " bf16"}) {
      int n = 0;
      for (const std::string& l : lines) n += l.rfind(kernel, 0) == 0 && l.find(dtype) != std::string::npos;
      EXPECT_EQ(n, 1) << kernel << dtype << "\n" << r.out;
    }
  size_t passes = 0;
  for (size_t at = r.out.find("PASS"); at != std::string::npos; at = r.out.find("PASS", at + 1)) ++passes;
  EXPECT_EQ(passes, 8u) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

TEST_F(CliTest, CheckAsmAndBenchJson) {
  Result r = ncore_cli("check gemm --m 33 --n 600 --k 140 --dtype bf16 --target trn1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("PASS"));
  r = ncore_cli("asm gemm --m 33 --n 600 --k 140 --target trn2");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("matmul"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("kernels/gemm.h:"));
  EXPECT_EQ(ncore_cli("asm gemm --m 3 --n 3 --k 3 --target cpu").rc, 2);
  r = ncore_cli("bench gemm --m 64 --n 64 --k 64 --dtype bf16 --threads 2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"kernel", "target", "m", "n", "k", "dtype", "threads", "median_ms", "gflops"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["kernel"], "gemm");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["gflops"].get<double>(), 0.0);
}

TEST_F(CliTest, DeviceBenchProfileAndCalibrate) {
  Result r = ncore_cli("bench gemm --m 256 --n 1024 --k 512 --dtype bf16 --target trn2 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"kernel", "target", "m", "n", "k", "dtype", "latency_us", "tflops",
                          "te_utilization", "mbu", "engines"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["target"], "trn2");
  EXPECT_GT(j["te_utilization"].get<double>(), 0.0);
  EXPECT_LE(j["te_utilization"].get<double>(), 1.0);
  for (const char* e : {"tensor", "vector", "scalar", "gpsimd", "dma"}) {
    ASSERT_TRUE(j["engines"].contains(e)) << e;
    EXPECT_GE(j["engines"][e].get<double>(), 0.0);
    EXPECT_LE(j["engines"][e].get<double>(), 1.0);
  }
  r = ncore_cli("bench gemm --m 256 --n 1024 --k 512 --target trn1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("Tensor Engine utilisation"));

  const std::string trace = path("trace.json");
  r = ncore_cli("profile gemm --m 200 --n 600 --k 300 --target trn1 --trace " + trace);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_GT(cli_test::complete_trace_events(trace), 10u);
  EXPECT_EQ(ncore_cli("profile gemm --m 2 --n 2 --k 2 --target cpu --trace " + trace).rc, 2);

  r = ncore_cli("calibrate --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto rows = nlohmann::json::parse(r.out);
  ASSERT_TRUE(rows.is_array());
  int published = 0;
  for (const auto& row : rows) {
    for (const char* key : {"case", "published_ms", "modelled_ms", "ratio"})
      EXPECT_TRUE(row.contains(key)) << key;
    if (!row["published_ms"].is_null()) {
      ++published;
      EXPECT_NEAR(row["ratio"].get<double>(),
                  row["modelled_ms"].get<double>() / row["published_ms"].get<double>(), 1e-9);
    }
  }
  EXPECT_EQ(published, 4);  // the four trn1 tutorial latencies
  r = ncore_cli("calibrate");
  EXPECT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, ::testing::HasSubstr("fully_blocked"));
}

}  // namespace
}  // namespace ncore
