// `ncore run|check|asm|bench|profile attention`: flash attention forward on
// .npy files or random inputs, on the CPU reference or a device target.
//   run      Q, K, V as 2-D [S, D], 3-D [H, S, D] or 4-D [B, H, S, D] float32
//            .npy files (one rank for all three); O gets Q's shape, LSE Q's
//            without D. Outputs are written only when everything succeeded.
//   check    random inputs, every path vs the float64 golden and its bound
//   asm      the device program listing
//   bench    CPU median time and GFLOP/s, or the modelled device figures
//   profile  the modelled program as a Chrome trace
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include <attention_golden.h>
#include <ncore/kernels/attention.h>

#include "../npy.h"
#include "common.h"
#include "verbs.h"

namespace ncore::cli {
namespace {

struct AttnShape {
  int64_t b = 1, hq = 1, hkv = 0, sq = 0, skv = 0, d = 0;  // hkv 0: Hq; skv 0: Sq
  bool causal = false;
  std::optional<float> scale;
  std::string dtype = "f32";

  int64_t kv_heads() const { return hkv ? hkv : hq; }
  int64_t keys() const { return skv ? skv : sq; }
  DType in_dtype() const { return dtype == "bf16" ? DType::kBF16 : DType::kF32; }
  float softmax_scale() const { return scale.value_or(float(1.0 / std::sqrt(double(d)))); }
  // QK^T and PV multiply-adds x 2 over the (query, key) pairs the mask keeps.
  double flops() const {
    const int64_t off = keys() - sq;
    double pairs = 0.0;
    for (int64_t i = 0; i < sq; ++i)
      pairs += causal ? double(std::clamp<int64_t>(i + off + 1, 0, keys())) : double(keys());
    return 4.0 * double(b * hq) * pairs * double(d);
  }
  nlohmann::json json() const {
    return {{"b", b}, {"hq", hq}, {"hkv", kv_heads()}, {"sq", sq}, {"skv", keys()},
            {"d", d}, {"causal", causal}, {"dtype", dtype}};
  }
};

void add_shape(CLI::App* app, AttnShape& s) {
  app->add_option("--b", s.b, "batch")->check(CLI::PositiveNumber);
  app->add_option("--hq", s.hq, "query heads")->check(CLI::PositiveNumber);
  app->add_option("--hkv", s.hkv, "key/value heads (default: Hq)")->check(CLI::PositiveNumber);
  app->add_option("--sq", s.sq, "query sequence length")->required()->check(CLI::PositiveNumber);
  app->add_option("--skv", s.skv, "key/value sequence length (default: Sq)")->check(CLI::PositiveNumber);
  app->add_option("--d", s.d, "head dim (<= 128)")->required()->check(CLI::PositiveNumber);
  app->add_flag("--causal", s.causal, "causal mask, bottom-right aligned");
  app->add_option("--scale", s.scale, "softmax scale (default 1/sqrt(D))");
  app->add_option("--dtype", s.dtype, "input dtype (inputs are rounded to it, RNE)")
      ->check(CLI::IsMember({"f32", "bf16"}));
}

// Q [B, Hq, Sq, D], K and V [B, Hkv, Skv, D], encoded in the input dtype.
struct Problem {
  AttnShape s;
  std::vector<uint8_t> q, k, v;
};

Problem make_problem(const AttnShape& s, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v) {
  return Problem{s, encode_all(q, s.in_dtype()), encode_all(k, s.in_dtype()), encode_all(v, s.in_dtype())};
}

std::vector<HostTensor> attention_io(const AttnShape& s, void* q, void* k, void* v, void* o, void* lse) {
  const DType dt = s.in_dtype();
  std::vector<HostTensor> io = {{"Q", q, dt, {s.b, s.hq, s.sq, s.d}},
                                {"K", k, dt, {s.b, s.kv_heads(), s.keys(), s.d}},
                                {"V", v, dt, {s.b, s.kv_heads(), s.keys(), s.d}},
                                {"O", o, DType::kF32, {s.b, s.hq, s.sq, s.d}, HbmKind::kOutput}};
  if (lse) io.push_back({"LSE", lse, DType::kF32, {s.b, s.hq, s.sq}, HbmKind::kOutput});
  return io;
}

auto attention_kernel(const AttnShape& s, bool lse) {
  return [s, lse](auto& nc, std::vector<HbmTensor>& t) {
    flash_attention(nc, t[3], t[0], t[1], t[2],
                    {.causal = s.causal, .scale = s.scale,
                     .lse = lse ? std::optional<HbmTensor>(t[4]) : std::nullopt});
  };
}

Program attention_program(const Target& target, const AttnShape& s, bool lse = true) {
  float dummy = 0.0f;
  return build_program(target, attention_io(s, &dummy, &dummy, &dummy, &dummy, lse ? &dummy : nullptr),
                       attention_kernel(s, lse));
}

struct Outputs {
  std::vector<float> o, lse;
};

// O and LSE on `path`: "cpu" (SIMD reference, `threads` instances) or a
// device target (the emitted program replayed in the interpreter).
Outputs run_attention(const std::string& path, Problem& p, bool lse, int threads = 1) {
  const AttnShape& s = p.s;
  Outputs out;
  out.o.resize(size_t(s.b * s.hq * s.sq * s.d));
  if (lse) out.lse.resize(size_t(s.b * s.hq * s.sq));
  const auto io = attention_io(s, p.q.data(), p.k.data(), p.v.data(), out.o.data(),
                               lse ? out.lse.data() : nullptr);
  if (path == "cpu") run_cpu(io, attention_kernel(s, lse), {.threads = threads});
  else run_program(build_program(*find_target(path), io, attention_kernel(s, lse)), io);
  return out;
}

// Checks every path on random inputs against the float64 golden.
int check_attention(const AttnShape& s, const std::vector<std::string>& paths, uint64_t seed) {
  Problem p = make_problem(s, random_uniform(s.b * s.hq * s.sq * s.d, seed),
                           random_uniform(s.b * s.kv_heads() * s.keys() * s.d, seed + 1),
                           random_uniform(s.b * s.kv_heads() * s.keys() * s.d, seed + 2));
  const auto q = decode_all(p.q, s.in_dtype()), k = decode_all(p.k, s.in_dtype()),
             v = decode_all(p.v, s.in_dtype());  // exactly what the kernel sees
  const auto g = golden::attention({s.b, s.hq, s.kv_heads(), s.sq, s.keys(), s.d, s.causal,
                                    s.softmax_scale(), s.in_dtype(), DType::kF32},
                                   q.data(), k.data(), v.data());
  std::printf("attention b%ld hq%ld hkv%ld sq%ld skv%ld d%ld%s %s: O and LSE vs float64 golden "
              "(bound: tests/golden/attention_golden.h)\n",
              long(s.b), long(s.hq), long(s.kv_heads()), long(s.sq), long(s.keys()), long(s.d),
              s.causal ? " causal" : "", s.dtype.c_str());
  return check_table(
      paths, "     O err/bound    LSE err/bound", [&](const std::string& path) { return run_attention(path, p, /*lse=*/true); },
      [&](const Outputs& out) {
        const double ro = golden::worst_ratio(out.o.data(), g.o, g.o_bound);
        const double rl = golden::worst_ratio(out.lse.data(), g.lse, g.lse_bound);
        char figures[64];
        std::snprintf(figures, sizeof figures, "%16.4f %16.4f", ro, rl);
        return CheckRow{ro <= 1.0 && rl <= 1.0, figures};
      });
}

// A .npy of rank 2, 3 or 4 as [B, H, S, D].
std::array<int64_t, 4> as_bhsd(const npy::Array& a, const char* name) {
  const size_t r = a.shape.size();
  if (r < 2 || r > 4)
    throw Error("run attention", name, cat("must be 2-D [S, D], 3-D [H, S, D] or 4-D [B, H, S, D], got rank ", r));
  for (int64_t d : a.shape)
    if (d == 0) throw Error("run attention", name, "has an empty dimension");
  std::array<int64_t, 4> s{1, 1, 1, 1};
  for (size_t i = 0; i < r; ++i) s[4 - r + i] = a.shape[i];
  return s;
}

}  // namespace

int check_attention(int64_t b, int64_t hq, int64_t hkv, int64_t sq, int64_t skv, int64_t d,
                    bool causal, DType dtype, const std::vector<std::string>& paths, uint64_t seed) {
  AttnShape s{b, hq, hkv, sq, skv, d, causal, std::nullopt, dtype == DType::kBF16 ? "bf16" : "f32"};
  return check_attention(s, paths, seed);
}

void register_attention(const Commands& cmds, int& exit_code) {
  // ---- run ----
  struct RunArgs {
    std::string q, k, v, out, lse, target = "cpu", dtype = "f32";
    bool causal = false;
    std::optional<float> scale;
  };
  auto ra = std::make_shared<RunArgs>();
  CLI::App* run = cmds.run->add_subcommand("attention", "O = softmax(Q K^T scale + mask) V on .npy files");
  run->add_option("--q", ra->q, "Q [S, D], [H, S, D] or [B, H, S, D] float32 .npy")->required();
  run->add_option("--k", ra->k, "K [Skv, D], [Hkv, Skv, D] or [B, Hkv, Skv, D] float32 .npy")->required();
  run->add_option("--v", ra->v, "V, K's shape")->required();
  run->add_option("--out", ra->out, "O (Q's shape) float32 .npy to write")->required();
  run->add_option("--lse", ra->lse, "LSE (Q's shape without D) float32 .npy to write");
  run->add_flag("--causal", ra->causal, "causal mask, bottom-right aligned (query i sees keys j <= i + Skv - Sq)");
  run->add_option("--scale", ra->scale, "softmax scale (default 1/sqrt(D))");
  add_target(run, ra->target, TargetUse::kRun);
  run->add_option("--dtype", ra->dtype, "input dtype (inputs are rounded to it, RNE)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  run->callback([ra, &exit_code] {
    const npy::Array q = npy::read(ra->q), k = npy::read(ra->k), v = npy::read(ra->v);
    if (k.shape.size() != q.shape.size() || v.shape.size() != q.shape.size())
      throw Error("run attention", k.shape.size() != q.shape.size() ? "K" : "V",
                  cat("must have Q's rank ", q.shape.size(), ", got ",
                      (k.shape.size() != q.shape.size() ? k : v).shape.size()));
    const auto qs = as_bhsd(q, "Q"), ks = as_bhsd(k, "K");
    as_bhsd(v, "V");
    if (v.shape != k.shape) throw Error("run attention", "V", "must have K's shape");
    AttnShape s;
    s.b = qs[0], s.hq = qs[1], s.sq = qs[2], s.d = qs[3];
    s.hkv = ks[1], s.skv = ks[2];
    s.causal = ra->causal;
    s.scale = ra->scale;
    s.dtype = ra->dtype;
    if (ks[0] != s.b || ks[3] != s.d)  // the kernel checks the rest (D, heads, scale)
      throw Error("run attention", "K", cat("batch and head dim must match Q's (", s.b, ", ", s.d,
                                            "), got (", ks[0], ", ", ks[3], ")"));
    Problem p = make_problem(s, q.data, k.data, v.data);
    const bool want_lse = !ra->lse.empty();
    const Outputs out = run_attention(ra->target, p, want_lse);
    std::vector<int64_t> lse_shape(q.shape.begin(), q.shape.end() - 1);
    npy::write(ra->out, q.shape, out.o.data());
    if (want_lse) npy::write(ra->lse, lse_shape, out.lse.data());
    exit_code = kExitOk;
  });

  register_shape_verbs<AttnShape>(
      cmds, exit_code,
      {.name = "attention",
       .what = "attention",
       .add_shape = add_shape,
       .program = [](const Target& t, const AttnShape& s) { return attention_program(t, s, /*lse=*/false); },
       .check = [](const AttnShape& s, const std::vector<std::string>& paths, uint64_t seed) {
         return check_attention(s, paths, seed);
       },
       .cpu_ms = [](const AttnShape& s, int threads) {
         Problem p = make_problem(s, random_uniform(s.b * s.hq * s.sq * s.d, 1),
                                  random_uniform(s.b * s.kv_heads() * s.keys() * s.d, 2),
                                  random_uniform(s.b * s.kv_heads() * s.keys() * s.d, 3));
         // Large problems take seconds a run: at least 3 runs, else a 2 s budget.
         return median_ms([&] { run_attention("cpu", p, /*lse=*/false, threads); }, 3, 2.0);
       },
       .rate = [](const AttnShape& s, double ms) { return s.flops() / (ms * 1e6); },
       .rate_key = "gflops",
       .rate_unit = "GFLOP/s",
       .json = [](const AttnShape& s) { return s.json(); },
       .label = [](const AttnShape& s) {
         return cat("b", s.b, " hq", s.hq, " hkv", s.kv_heads(), " sq", s.sq, " skv", s.keys(), " d", s.d,
                    s.causal ? " causal " : " ", s.dtype);
       }});
}

}  // namespace ncore::cli
