// `ncore run|check|asm|bench gemm`.
#include <cstdio>
#include <memory>
#include <iostream>
#include <nlohmann/json.hpp>

#include <golden.h>
#include <ncore/isa/emit/listing.h>
#include <ncore/kernels/gemm.h>

#include "../npy.h"
#include "common.h"

namespace ncore::cli {
namespace {

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  DType dtype = DType::kF32;
  std::vector<uint8_t> a, b;  // [M, K], [K, N] encoded in dtype
};

GemmProblem make_problem(int64_t m, int64_t n, int64_t k, DType dtype,
                         const std::vector<float>& a, const std::vector<float>& b) {
  return GemmProblem{m, n, k, dtype, encode_all(a, dtype), encode_all(b, dtype)};
}

// C [M, N] f32 computed on `path`: "cpu" (SIMD reference) or a device target
// (emitted program replayed in the interpreter).
std::vector<float> run_gemm(const std::string& path, const GemmProblem& p, int threads = 1) {
  std::vector<float> c(size_t(p.m * p.n));
  std::vector<HostTensor> io = {
      {"A", const_cast<uint8_t*>(p.a.data()), p.dtype, {p.m, p.k}},
      {"B", const_cast<uint8_t*>(p.b.data()), p.dtype, {p.k, p.n}},
      {"C", c.data(), DType::kF32, {p.m, p.n}, HbmKind::kOutput}};
  auto kernel = [](auto& nc, std::vector<HbmTensor>& t) { gemm(nc, t[2], t[0], t[1]); };
  if (path == "cpu") {
    run_cpu(io, kernel, {.threads = threads});
  } else {
    run_program(build_program(*find_target(path), io, kernel), io);
  }
  return c;
}

DType parse_gemm_dtype(const std::string& s) { return s == "bf16" ? DType::kBF16 : DType::kF32; }

struct Shape {
  int64_t m = 0, n = 0, k = 0;
};

void add_shape(CLI::App* app, Shape& s) {
  app->add_option("--m", s.m, "rows of A and C")->required()->check(CLI::PositiveNumber);
  app->add_option("--n", s.n, "columns of B and C")->required()->check(CLI::PositiveNumber);
  app->add_option("--k", s.k, "contraction size")->required()->check(CLI::PositiveNumber);
}
void add_dtype(CLI::App* app, std::string& dtype) {
  app->add_option("--dtype", dtype, "input dtype (inputs are rounded to it, RNE)")
      ->check(CLI::IsMember({"f32", "bf16"}));
}

}  // namespace

// Checks every path of one GEMM against the float64 golden; prints a table and
// returns kExitOk or kExitCheckFailed.
int check_gemm(int64_t m, int64_t n, int64_t k, DType dtype, const std::vector<std::string>& paths,
               uint64_t seed) {
  const std::vector<float> a32 = random_uniform(m * k, seed), b32 = random_uniform(k * n, seed + 1);
  const GemmProblem p = make_problem(m, n, k, dtype, a32, b32);
  const auto a = decode_all(p.a, dtype), b = decode_all(p.b, dtype);  // exactly what the kernel sees
  const golden::GemmGolden g = golden::gemm(
      Eigen::Map<const golden::MatF>(a.data(), m, k), Eigen::Map<const golden::MatF>(b.data(), k, n),
      DType::kF32);
  std::printf("gemm %ldx%ldx%ld %s: C = A @ B vs float64 golden, bound = gamma_K(u32)|A||B| + u_out|C|\n",
              long(m), long(n), long(k), std::string(dtype_name(dtype)).c_str());
  std::printf("  %-6s %12s %16s %10s\n", "path", "max|err|", "worst err/bound", "ms");
  bool ok = true;
  for (const std::string& path : paths) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> c = run_gemm(path, p);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const golden::MatF cf = Eigen::Map<const golden::MatF>(c.data(), m, n);
    const double err = (cf.cast<double>() - g.c).cwiseAbs().maxCoeff();
    const double ratio = golden::worst_ratio(cf, g.c, g.bound);
    ok &= ratio <= 1.0;
    std::printf("  %-6s %12.3e %16.4f %10.1f %s\n", path.c_str(), err, ratio, ms,
                ratio <= 1.0 ? "ok" : "OUTSIDE BOUND");
  }
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? kExitOk : kExitCheckFailed;
}

void register_gemm(const Commands& cmds, int& exit_code) {
  // ---- run ----
  struct RunArgs {
    std::string a, b, out, target = "cpu", dtype = "f32";
  };
  auto ra = std::make_shared<RunArgs>();
  CLI::App* run = cmds.run->add_subcommand("gemm", "C = A @ B on .npy files");
  run->add_option("--a", ra->a, "A [M, K] float32 .npy")->required();
  run->add_option("--b", ra->b, "B [K, N] float32 .npy")->required();
  run->add_option("--out", ra->out, "C [M, N] float32 .npy to write")->required();
  run->add_option("--target", ra->target, "cpu or a device target (interpreted)")
      ->check(CLI::IsMember(target_names()));
  add_dtype(run, ra->dtype);
  run->callback([ra, &exit_code] {
    const npy::Array a = npy::read(ra->a), b = npy::read(ra->b);
    if (a.shape.size() != 2) throw Error("run gemm", "A", cat("must be 2-D, got rank ", a.shape.size()));
    if (b.shape.size() != 2) throw Error("run gemm", "B", cat("must be 2-D, got rank ", b.shape.size()));
    if (a.dim(1) != b.dim(0))
      throw Error("run gemm", "B", cat("has ", b.dim(0), " rows, A has ", a.dim(1), " columns"));
    for (const auto* arr : {&a, &b})
      for (int64_t d : arr->shape)
        if (d == 0) throw Error("run gemm", arr == &a ? "A" : "B", "has an empty dimension");
    const GemmProblem p = make_problem(a.dim(0), b.dim(1), a.dim(1), parse_gemm_dtype(ra->dtype),
                                       a.data, b.data);
    const std::vector<float> c = run_gemm(ra->target, p);
    npy::write(ra->out, {p.m, p.n}, c.data());
    exit_code = kExitOk;
  });

  // ---- check ----
  struct CheckArgs {
    Shape s;
    std::string dtype = "f32", target = "trn2";
    uint64_t seed = 1;
  };
  auto ca = std::make_shared<CheckArgs>();
  CLI::App* check = cmds.check->add_subcommand("gemm", "random GEMM, every path vs float64 golden");
  add_shape(check, ca->s);
  add_dtype(check, ca->dtype);
  check->add_option("--target", ca->target, "device target checked beside cpu (cpu: cpu only)")
      ->check(CLI::IsMember(target_names()));
  check->add_option("--seed", ca->seed, "input seed");
  check->callback([ca, &exit_code] {
    std::vector<std::string> paths = {"cpu"};
    if (ca->target != "cpu") paths.push_back(ca->target);
    exit_code = check_gemm(ca->s.m, ca->s.n, ca->s.k, parse_gemm_dtype(ca->dtype), paths, ca->seed);
  });

  // ---- asm ----
  struct AsmArgs {
    Shape s;
    std::string dtype = "f32", target = "trn2";
  };
  auto aa = std::make_shared<AsmArgs>();
  CLI::App* asm_ = cmds.asm_->add_subcommand("gemm", "print the device program listing");
  add_shape(asm_, aa->s);
  add_dtype(asm_, aa->dtype);
  asm_->add_option("--target", aa->target, "device target")
      ->check(CLI::IsMember(device_target_names()));
  asm_->callback([aa, &exit_code] {
    const DType dt = parse_gemm_dtype(aa->dtype);
    std::vector<HostTensor> io = {{"A", nullptr, dt, {aa->s.m, aa->s.k}},
                                  {"B", nullptr, dt, {aa->s.k, aa->s.n}},
                                  {"C", nullptr, DType::kF32, {aa->s.m, aa->s.n}, HbmKind::kOutput}};
    const Program prog = build_program(*find_target(aa->target), io, [](auto& nc, auto& t) {
      gemm(nc, t[2], t[0], t[1]);
    });
    std::cout << listing(prog);
    exit_code = kExitOk;
  });

  // ---- bench ----
  struct BenchArgs {
    Shape s;
    std::string dtype = "f32";
    int threads = 1;
    bool json = false;
  };
  auto ba = std::make_shared<BenchArgs>();
  CLI::App* bench = cmds.bench->add_subcommand("gemm", "CPU GEMM throughput (median of runs)");
  add_shape(bench, ba->s);
  add_dtype(bench, ba->dtype);
  bench->add_option("--threads", ba->threads, "SPMD program instances (threads)")
      ->check(CLI::Range(1, 256));
  bench->add_flag("--json", ba->json, "print one JSON object");
  bench->callback([ba, &exit_code] {
    const DType dt = parse_gemm_dtype(ba->dtype);
    const auto& s = ba->s;
    const GemmProblem p =
        make_problem(s.m, s.n, s.k, dt, random_uniform(s.m * s.k, 1), random_uniform(s.k * s.n, 2));
    const double ms = median_ms([&] { run_gemm("cpu", p, ba->threads); });
    const double gflops = 2.0 * double(s.m) * double(s.n) * double(s.k) / (ms * 1e6);
    if (ba->json) {
      nlohmann::json j = {{"kernel", "gemm"}, {"target", "cpu"},   {"m", s.m},
                          {"n", s.n},         {"k", s.k},          {"dtype", ba->dtype},
                          {"threads", ba->threads}, {"median_ms", ms}, {"gflops", gflops}};
      std::cout << j.dump() << "\n";
    } else {
      std::printf("gemm %ldx%ldx%ld %s cpu threads=%d: median %.3f ms, %.1f GFLOP/s\n", long(s.m),
                  long(s.n), long(s.k), ba->dtype.c_str(), ba->threads, ms, gflops);
    }
    exit_code = kExitOk;
  });
}

}  // namespace ncore::cli
