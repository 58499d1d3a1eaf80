// `ncore run|check|asm|bench|profile layernorm|rmsnorm`.
//
// run reads X [..., D], gamma [D] (and beta [D]) from float32 .npy files,
// rounds them to --dtype (RNE), normalises on --target and writes Y (in X's
// dtype, stored as float32) to --out. check, asm, bench and profile take the
// shape as --rows and --d (X = [rows, D]).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include <norm_golden.h>
#include <ncore/kernels/norm.h>

#include "../npy.h"
#include "common.h"
#include "verbs.h"

namespace ncore::cli {
namespace {

struct NormProblem {
  NormKind kind = NormKind::kLayer;
  std::vector<int64_t> shape;  // X's; the last dim is D
  DType dtype = DType::kF32;   // X, gamma, beta and Y
  float eps = kNormDefaultEps;
  std::vector<uint8_t> x, gamma, beta;  // encoded in dtype

  int64_t d() const { return shape.back(); }
  int64_t rows() const { return d() ? int64_t(x.size()) / dtype_size(dtype) / d() : 0; }
  const char* name() const { return norm_name(kind); }
};

// Host tensors in the kernel's order: X, gamma, [beta,] Y.
std::vector<HostTensor> io_of(const NormProblem& p, void* y) {
  auto* x = const_cast<uint8_t*>(p.x.data());
  std::vector<HostTensor> io = {{"X", x, p.dtype, p.shape},
                                {"gamma", const_cast<uint8_t*>(p.gamma.data()), p.dtype, {p.d()}}};
  if (p.kind == NormKind::kLayer)
    io.push_back({"beta", const_cast<uint8_t*>(p.beta.data()), p.dtype, {p.d()}});
  io.push_back({"Y", y, p.dtype, p.shape, HbmKind::kOutput});
  return io;
}

auto norm_kernel(NormKind kind, float eps) {
  return [kind, eps](auto& nc, std::vector<HbmTensor>& t) {
    if (kind == NormKind::kLayer) layernorm(nc, t[3], t[0], t[1], t[2], eps);
    else rmsnorm(nc, t[2], t[0], t[1], eps);
  };
}

// Y in p.dtype, computed on `path`: "cpu" or a device target (interpreted).
std::vector<uint8_t> run_norm(const std::string& path, const NormProblem& p, int threads = 1) {
  std::vector<uint8_t> y(p.x.size());
  const auto io = io_of(p, y.data());
  if (path == "cpu") run_cpu(io, norm_kernel(p.kind, p.eps), {.threads = threads});
  else run_program(build_program(*find_target(path), io, norm_kernel(p.kind, p.eps)), io);
  return y;
}

// The device program of a [rows, D] norm (shapes and dtypes only).
Program norm_program(const Target& t, NormKind kind, int64_t rows, int64_t d, DType dt, float eps) {
  NormProblem p{kind, {rows, d}, dt, eps, {}, {}, {}};
  std::vector<HostTensor> io = io_of(p, nullptr);
  for (HostTensor& h : io) h.data = nullptr;
  return build_program(t, io, norm_kernel(kind, eps));
}

NormProblem random_problem(NormKind kind, int64_t rows, int64_t d, DType dt, float eps, uint64_t seed) {
  const std::vector<float> x = random_uniform(rows * d, seed, -2.0f, 2.0f);
  const std::vector<float> g = random_uniform(d, seed + 1, 0.5f, 1.5f);
  const std::vector<float> b = random_uniform(d, seed + 2);
  return NormProblem{kind, {rows, d}, dt, eps, encode_all(x, dt), encode_all(g, dt), encode_all(b, dt)};
}

// The golden's summation structure: the deepest of the host and device plans.
golden::NormShape bound_shape(const NormProblem& p, const std::vector<std::string>& paths) {
  golden::NormShape s;
  s.rms_piece = 0;
  s.rms_pieces = 1;
  const NormDtypes dt{p.dtype, p.dtype, p.dtype, p.dtype};
  for (const std::string& path : paths) {
    const bool cpu = path == "cpu";
    const NormPlan plan = plan_norm(cpu ? kTrn2 : *find_target(path), p.kind, p.rows(), p.d(), dt,
                                    cpu ? NormPlace::kHost : NormPlace::kDevice);
    s.rms_piece = std::max(s.rms_piece, std::min(plan.block, plan.op_chunk));
    s.rms_pieces = std::max<int64_t>(s.rms_pieces, plan.pieces);
  }
  return s;
}

golden::MatF as_matrix(const std::vector<uint8_t>& enc, DType dt, int64_t rows, int64_t d) {
  const std::vector<float> v = decode_all(enc, dt);
  return Eigen::Map<const golden::MatF>(v.data(), rows, d);
}

DType parse_dtype_arg(const std::string& s) { return s == "bf16" ? DType::kBF16 : DType::kF32; }

void add_dtype(CLI::App* app, std::string& dtype) {
  app->add_option("--dtype", dtype, "X, gamma, beta and Y dtype (inputs rounded to it, RNE)")
      ->check(CLI::IsMember({"f32", "bf16"}));
}
void add_eps(CLI::App* app, float& eps) {
  const CLI::Validator finite_non_negative(
      [](std::string& s) -> std::string {
        try {
          size_t end = 0;
          const float v = std::stof(s, &end);
          if (end == s.size() && std::isfinite(v) && v >= 0.0f) return {};
        } catch (const std::exception&) {
        }
        return "eps must be a finite number >= 0, got " + s;
      },
      "EPS >= 0");
  app->add_option("--eps", eps, "added to the variance / mean square (default 1e-5)")
      ->check(finite_non_negative);
}


struct Shape {
  int64_t rows = 0, d = 0;
  std::string dtype = "f32";
  float eps = kNormDefaultEps;
};

void add_shape(CLI::App* app, Shape& s) {
  app->add_option("--rows", s.rows, "rows of X (the product of its leading dims)")
      ->required()
      ->check(CLI::PositiveNumber);
  app->add_option("--d", s.d, "D, the normalised last dim")->required()->check(CLI::PositiveNumber);
  add_dtype(app, s.dtype);
  add_eps(app, s.eps);
}

// The .npy inputs of `run`, checked with messages that name the operand.
NormProblem read_problem(NormKind kind, const std::string& xf, const std::string& gf,
                         const std::string& bf, DType dt, float eps) {
  const std::string what = cat("run ", norm_name(kind));
  const npy::Array x = npy::read(xf), g = npy::read(gf);
  for (int64_t n : x.shape)
    if (n == 0) throw Error(what, "X", "has an empty dimension");
  if (x.shape.empty()) throw Error(what, "X", "must have rank >= 1, got a scalar");
  if (x.shape.size() > size_t(kMaxDims))
    throw Error(what, "X", cat("rank must be 1..", kMaxDims, ", got ", x.shape.size()));
  const int64_t d = x.shape.back();
  auto param = [&](const npy::Array& a, const char* name) {
    if (a.shape.size() != 1 || a.dim(0) != d) {
      std::string s = "(";
      for (size_t k = 0; k < a.shape.size(); ++k) s += cat(k ? ", " : "", a.shape[k]);
      throw Error(what, name, cat("must be [", d, "] (D of X), got shape ", s, ")"));
    }
  };
  param(g, "gamma");
  NormProblem p{kind, x.shape, dt, eps, encode_all(x.data, dt), encode_all(g.data, dt), {}};
  if (kind == NormKind::kLayer) {
    const npy::Array b = npy::read(bf);
    param(b, "beta");
    p.beta = encode_all(b.data, dt);
  }
  return p;
}

void register_one(const Commands& cmds, int& exit_code, NormKind kind) {
  const bool ln = kind == NormKind::kLayer;
  const std::string kname = norm_name(kind);
  const std::string formula = ln ? "Y = (X - mean) * rsqrt(var + eps) * gamma + beta over the last dim"
                                 : "Y = X * rsqrt(mean(X^2) + eps) * gamma over the last dim";

  // ---- run ----
  struct RunArgs {
    std::string x, gamma, beta, out, target = "cpu", dtype = "f32";
    float eps = kNormDefaultEps;
  };
  auto ra = std::make_shared<RunArgs>();
  CLI::App* run = cmds.run->add_subcommand(kname, formula + ", on .npy files");
  run->add_option("--x", ra->x, "X [..., D] float32 .npy")->required();
  run->add_option("--gamma", ra->gamma, "gamma [D] float32 .npy")->required();
  if (ln) run->add_option("--beta", ra->beta, "beta [D] float32 .npy")->required();
  run->add_option("--out", ra->out, "Y (X's shape) float32 .npy to write")->required();
  add_target(run, ra->target, TargetUse::kRun);
  add_dtype(run, ra->dtype);
  add_eps(run, ra->eps);
  run->callback([ra, kind, &exit_code] {
    const DType dt = parse_dtype_arg(ra->dtype);
    const NormProblem p = read_problem(kind, ra->x, ra->gamma, ra->beta, dt, ra->eps);
    const std::vector<float> y = decode_all(run_norm(ra->target, p), dt);
    npy::write(ra->out, p.shape, y.data());
    exit_code = kExitOk;
  });

  register_shape_verbs<Shape>(
      cmds, exit_code,
      {.name = kname,
       .what = kname,
       .add_shape = add_shape,
       .program = [kind](const Target& t, const Shape& s) {
         return norm_program(t, kind, s.rows, s.d, parse_dtype_arg(s.dtype), s.eps);
       },
       .check = [kind](const Shape& s, const std::vector<std::string>& paths, uint64_t seed) {
         return check_norm(kind, s.rows, s.d, parse_dtype_arg(s.dtype), s.eps, paths, seed);
       },
       .cpu_ms = [kind](const Shape& s, int threads) {
         const NormProblem p = random_problem(kind, s.rows, s.d, parse_dtype_arg(s.dtype), s.eps, 1);
         std::vector<uint8_t> y(p.x.size());
         const auto io = io_of(p, y.data());
         return median_ms([&] { run_cpu(io, norm_kernel(kind, p.eps), {.threads = threads}); });
       },
       .rate = [](const Shape& s, double ms) {  // read X, write Y
         return 2.0 * double(s.rows * s.d * dtype_size(parse_dtype_arg(s.dtype))) / (ms * 1e6);
       },
       .rate_key = "gbps",
       .rate_unit = "GB/s (X read + Y written)",
       .json = [](const Shape& s) { return nlohmann::json{{"rows", s.rows}, {"d", s.d}, {"dtype", s.dtype}}; },
       .label = [](const Shape& s) { return cat("[", s.rows, ", ", s.d, "] ", s.dtype); }});
}

}  // namespace

int check_norm(NormKind kind, int64_t rows, int64_t d, DType dt, float eps,
               const std::vector<std::string>& paths, uint64_t seed) {
  const NormProblem p = random_problem(kind, rows, d, dt, eps, seed);
  const golden::MatF x = as_matrix(p.x, dt, rows, d);
  const std::vector<float> g = decode_all(p.gamma, dt), b = decode_all(p.beta, dt);
  const golden::NormShape shape = bound_shape(p, paths);
  const golden::NormGolden want = kind == NormKind::kLayer
                                      ? golden::layernorm(x, g, b, eps, dt, shape)
                                      : golden::rmsnorm(x, g, eps, dt, shape);
  std::printf("%s [%ld, %ld] %s eps %g vs float64 golden (bound derived in tests/golden/norm_golden.h)\n",
              p.name(), long(rows), long(d), std::string(dtype_name(dt)).c_str(), double(eps));
  return check_table(
      paths, kErrRatioColumns, [&](const std::string& path) { return run_norm(path, p); },
      [&](const std::vector<uint8_t>& y) {
        const golden::MatF got = as_matrix(y, dt, rows, d);
        const double ratio = golden::norm_worst_ratio(got, want.y, want.bound);
        return CheckRow{ratio <= 1.0,
                        err_ratio_figures((got.cast<double>() - want.y).cwiseAbs().maxCoeff(), ratio)};
      });
}

void register_norms(const Commands& cmds, int& exit_code) {
  register_one(cmds, exit_code, NormKind::kLayer);
  register_one(cmds, exit_code, NormKind::kRms);
}

}  // namespace ncore::cli
