// `ncore run|check|asm|bench|profile gemm`.
#include <cstdio>
#include <memory>
#include <iostream>
#include <nlohmann/json.hpp>

#include <golden.h>
#include <ncore/kernels/gemm.h>

#include "../npy.h"
#include "common.h"
#include "verbs.h"

namespace ncore::cli {
namespace {

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  DType dtype = DType::kF32;
  bool a_transposed = false;  // a holds A^T [K, M]
  std::vector<uint8_t> a, b;  // [M, K] (or [K, M]), [K, N] encoded in dtype
};

GemmProblem make_problem(int64_t m, int64_t n, int64_t k, DType dtype,
                         const std::vector<float>& a, const std::vector<float>& b,
                         bool a_transposed = false) {
  return GemmProblem{m, n, k, dtype, a_transposed, encode_all(a, dtype), encode_all(b, dtype)};
}

std::vector<HostTensor> gemm_io(const GemmProblem& p, void* a, void* b, void* c) {
  return {{"A", a, p.dtype, p.a_transposed ? std::vector<int64_t>{p.k, p.m}
                                           : std::vector<int64_t>{p.m, p.k}},
          {"B", b, p.dtype, {p.k, p.n}},
          {"C", c, DType::kF32, {p.m, p.n}, HbmKind::kOutput}};
}

auto gemm_kernel(bool a_transposed) {
  return [a_transposed](auto& nc, std::vector<HbmTensor>& t) {
    gemm(nc, t[2], t[0], t[1], {.a_transposed = a_transposed});
  };
}

// C [M, N] f32 computed on `path`: "cpu" (SIMD reference) or a device target
// (emitted program replayed in the interpreter).
std::vector<float> run_gemm(const std::string& path, const GemmProblem& p, int threads = 1) {
  std::vector<float> c(size_t(p.m * p.n));
  const auto io = gemm_io(p, const_cast<uint8_t*>(p.a.data()), const_cast<uint8_t*>(p.b.data()),
                          c.data());
  const auto kernel = gemm_kernel(p.a_transposed);
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
  bool a_transposed = false;
  std::string dtype = "f32";
};

// The device program of an M x N x K GEMM with `dtype` inputs and f32 output.
Program gemm_program(const Target& target, const Shape& s) {
  const GemmProblem p{s.m, s.n, s.k, parse_gemm_dtype(s.dtype), s.a_transposed, {}, {}};
  return build_program(target, gemm_io(p, nullptr, nullptr, nullptr), gemm_kernel(s.a_transposed));
}

void add_dtype(CLI::App* app, std::string& dtype) {
  app->add_option("--dtype", dtype, "input dtype (inputs are rounded to it, RNE)")
      ->check(CLI::IsMember({"f32", "bf16"}));
}
void add_shape(CLI::App* app, Shape& s) {
  app->add_flag("--a-transposed", s.a_transposed, "A is given as A^T [K, M] (NKI's lhsT)");
  app->add_option("--m", s.m, "rows of A and C")->required()->check(CLI::PositiveNumber);
  app->add_option("--n", s.n, "columns of B and C")->required()->check(CLI::PositiveNumber);
  app->add_option("--k", s.k, "contraction size")->required()->check(CLI::PositiveNumber);
  add_dtype(app, s.dtype);
}

}  // namespace

// Checks every path of one GEMM against the float64 golden; prints a table and
// returns kExitOk or kExitCheckFailed.
int check_gemm(int64_t m, int64_t n, int64_t k, DType dtype, const std::vector<std::string>& paths,
               uint64_t seed, bool a_transposed) {
  const std::vector<float> a32 = random_uniform(m * k, seed), b32 = random_uniform(k * n, seed + 1);
  const GemmProblem p = make_problem(m, n, k, dtype, a32, b32, a_transposed);  // a32 as given
  const auto a = decode_all(p.a, dtype), b = decode_all(p.b, dtype);  // exactly what the kernel sees
  const golden::MatF a_mk = a_transposed
                                ? golden::MatF(Eigen::Map<const golden::MatF>(a.data(), k, m).transpose())
                                : golden::MatF(Eigen::Map<const golden::MatF>(a.data(), m, k));
  const golden::GemmGolden g =
      golden::gemm(a_mk, Eigen::Map<const golden::MatF>(b.data(), k, n), DType::kF32);
  std::printf("gemm %ldx%ldx%ld %s: C = A @ B vs float64 golden, bound = gamma_K(u32)|A||B| + u_out|C|\n",
              long(m), long(n), long(k), std::string(dtype_name(dtype)).c_str());
  return check_table(
      paths, kErrRatioColumns, [&](const std::string& path) { return run_gemm(path, p); },
      [&](const std::vector<float>& c) {
        const golden::MatF cf = Eigen::Map<const golden::MatF>(c.data(), m, n);
        const double ratio = golden::worst_ratio(cf, g.c, g.bound);
        return CheckRow{ratio <= 1.0, err_ratio_figures((cf.cast<double>() - g.c).cwiseAbs().maxCoeff(), ratio)};
      });
}

void register_gemm(const Commands& cmds, int& exit_code) {
  // ---- run ----
  struct RunArgs {
    std::string a, b, out, target = "cpu", dtype = "f32";
    bool a_transposed = false;
  };
  auto ra = std::make_shared<RunArgs>();
  CLI::App* run = cmds.run->add_subcommand("gemm", "C = A @ B on .npy files");
  run->add_option("--a", ra->a, "A [M, K] float32 .npy ([K, M] with --a-transposed)")->required();
  run->add_flag("--a-transposed", ra->a_transposed, "A is given as A^T [K, M] (NKI's lhsT)");
  run->add_option("--b", ra->b, "B [K, N] float32 .npy")->required();
  run->add_option("--out", ra->out, "C [M, N] float32 .npy to write")->required();
  add_target(run, ra->target, TargetUse::kRun);
  add_dtype(run, ra->dtype);
  run->callback([ra, &exit_code] {
    const npy::Array a = npy::read(ra->a), b = npy::read(ra->b);
    if (a.shape.size() != 2) throw Error("run gemm", "A", cat("must be 2-D, got rank ", a.shape.size()));
    if (b.shape.size() != 2) throw Error("run gemm", "B", cat("must be 2-D, got rank ", b.shape.size()));
    const bool at = ra->a_transposed;
    const int64_t m = a.dim(at ? 1 : 0), k = a.dim(at ? 0 : 1);
    if (k != b.dim(0))
      throw Error("run gemm", "B", cat("has ", b.dim(0), " rows, A has ", k, at ? " rows" : " columns"));
    for (const auto* arr : {&a, &b})
      for (int64_t d : arr->shape)
        if (d == 0) throw Error("run gemm", arr == &a ? "A" : "B", "has an empty dimension");
    const GemmProblem p =
        make_problem(m, b.dim(1), k, parse_gemm_dtype(ra->dtype), a.data, b.data, at);
    const std::vector<float> c = run_gemm(ra->target, p);
    npy::write(ra->out, {p.m, p.n}, c.data());
    exit_code = kExitOk;
  });

  register_shape_verbs<Shape>(
      cmds, exit_code,
      {.name = "gemm",
       .what = "GEMM",
       .add_shape = add_shape,
       .program = gemm_program,
       .check = [](const Shape& s, const std::vector<std::string>& paths, uint64_t seed) {
         return check_gemm(s.m, s.n, s.k, parse_gemm_dtype(s.dtype), paths, seed, s.a_transposed);
       },
       .cpu_ms = [](const Shape& s, int threads) {
         const GemmProblem p = make_problem(s.m, s.n, s.k, parse_gemm_dtype(s.dtype),
                                            random_uniform(s.m * s.k, 1), random_uniform(s.k * s.n, 2),
                                            s.a_transposed);
         return median_ms([&] { run_gemm("cpu", p, threads); });
       },
       .rate = [](const Shape& s, double ms) { return 2.0 * double(s.m) * double(s.n) * double(s.k) / (ms * 1e6); },
       .rate_key = "gflops",
       .rate_unit = "GFLOP/s",
       .json = [](const Shape& s) {
         return nlohmann::json{{"m", s.m}, {"n", s.n}, {"k", s.k}, {"dtype", s.dtype},
                               {"a_transposed", s.a_transposed}};
       },
       .label = [](const Shape& s) {
         return cat(s.m, "x", s.n, "x", s.k, " ", s.dtype, s.a_transposed ? " A^T" : "");
       }});
}

}  // namespace ncore::cli
