// Golden LayerNorm / RMSNorm: Eigen in double, with a derived elementwise
// bound on |y_kernel - y| for kernels/norm.h. Tests and benchmarks only.
//
// The kernel's arithmetic, all fp32 with one rounding per operation (unit
// roundoff u = 2^-24; gamma_h = h u / (1 - h u), Higham 3.1):
//
// LayerNorm, per row x of D elements (exact mean mu, population var s2):
//   bn_stats on chunks of 512: per chunk, the even and the odd elements form
//     one group each; a group's mean is fl(fl(sum) / n), the sum in
//     semantics.h's order (64 lanes of sequential adds, then 6 halving
//     levels: depth h = ceil(n / 64) + 6), and its M2 is the sum of
//     fl(fl(x - mean)^2) in the same order.
//   bn_aggr folds the groups in order with Chan's update (semantics.h
//     combine) and returns (mean, M2 / D).
//   rstd = rsqrt(fl(var + eps)); rsqrt is bit-identical to activate() on the
//     CPU reference (tests/reference/cpu_activation_test.cc) and the
//     interpreter runs activate() itself: a double 1 / sqrt rounded once,
//     within kRsqrtUlps = 0.5 ulp (relative u, plus double's 2^-52).
//   y = fl(fl(fl(fl(x - mean) * rstd) * gamma) + beta), then rounded to Y's
//     dtype (a second rounding, u_out, when Y is bf16).
// The bound follows those steps (layernorm_bound below): a group's mean is off
// by at most e_g = gamma_h sum|x| / n + u |mean|, its M2 by gamma_{h+3} (M2 +
// n e_g^2) + n e_g^2 (sum(x - m)^2 = M2 + n (m - mean)^2). Each combine is a
// convex combination of the two means plus 3 roundings on the shift and one
// on the sum: e = (1 - f) e_a + f e_b + gamma_3 |d| f + u |mean|; its cross
// term d^2 na nb / n takes 6 roundings and the means' errors: with eps_m =
// e_a + e_b, |cross - C| <= gamma_6 (|D| + eps_m)^2 w + (2 |D| eps_m + eps_m^2) w;
// the two sums forming M2 add gamma_2 (M2 + errors). The data decide every
// term (the group statistics are computed exactly, in double), so the bound is
// as tight as the analysis; it does not assume a worst case over the data.
// From |var~ - s2| <= E_v: fl(var~ + eps) lies in
//   [max((s2 + eps - E_v)(1 - u), eps), (s2 + eps + E_v)(1 + u)],
// so rstd~ in [(1 - ur) / sqrt(hi), (1 + ur) / sqrt(lo)] (ur = rsqrt's
// relative bound): |rstd~ - r| <= rho. Then per element, a = |x - mu|:
//   dx = e_mu + u (a + e_mu)                         fl(x - mean~)
//   G  = dx + u (a + dx)                             after * gamma, over |gamma|
//   V  = |gamma| (G (r + rho) + a rho + u (a + G)(r + rho))   after * rstd~
//   Y  = V + u (|y| + V)                             after + beta
//   bound = Y + u_out (|y| + Y) + tiny
// (|fl(d~ g) - (x - mu) g| <= |g| G and |fl(d~ g)| <= |g| (a + G); the
// product with rstd~ then errs by |g| G (r + rho) + |g| a rho before its own
// rounding.)
// where tiny = 16 * 2^-149 (1 + |gamma|)(1 + r) covers roundings that land
// among the subnormals (absolute, not relative, error; also added per group).
//
// RMSNorm: ss = sum fl(x^2) (activation accumulator, 64-lane order per
// instruction piece, pieces summed by tensor_reduce): relative gamma_{h+1},
// h = ceil(piece / 64) + 6 (+ ceil(pieces / 64) + 6 over pieces);
// m = fl(ss * fl(1 / D)) and fl(m + eps): the activation's scale and bias,
// 2 + 1 more roundings; rstd as above. y = fl(fl(x * rstd) * gamma): T = |x| rho
// + u |x| (r + rho), Y = |gamma| (T + u (|x| r + T)), bound = Y + u_out (|y| +
// Y) + tiny.
//
// Range: the statistics are plain fp32, so the kernel is held to this bound
// only while they stay finite: D |x| and M2 = sum (x - mean)^2 (layernorm),
// sum x^2 (rmsnorm) below FLT_MAX (e.g. |x - mean| < 2.9e17 for D = 4096).
// Past that var = inf, rstd = 0 and y = beta (layernorm) or 0 (rmsnorm): see
// docs/norms.md; the tests check that outcome separately.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <golden.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/semantics.h>

namespace ncore::golden {

// Activation rsqrt vs the exact 1/sqrt, in ulps of fp32 (see the header).
inline constexpr double kRsqrtUlps = 0.5;
// A rounding into the subnormals errs by up to half of 2^-149 absolutely.
inline constexpr double kSubnormalUlp = 0x1p-149;

struct NormGolden {
  MatD y;      // [rows, D]
  MatD bound;  // [rows, D]; +inf where no bound is claimed
};

// The plan structure the bound depends on (kernels/norm.h NormPlan).
struct NormShape {
  int64_t bn_chunk = 512;      // Target::bn_stats_fmax
  int64_t rms_piece = 65536;   // longest rmsnorm accumulator piece
  int64_t rms_pieces = 1;      // accumulator pieces per row (rmsnorm)
};

namespace norm_detail {

inline double u32() { return unit_roundoff(DType::kF32); }
inline double gam(int64_t h) { return gamma(h, u32()); }
inline int64_t depth(int64_t n) { return (n + kReduceLanes - 1) / kReduceLanes + 6; }

// A group's exact moments and the bounds on the kernel's mean and M2 errors.
struct Group {
  double n = 0, mean = 0, m2 = 0, e = 0, e2 = 0;
};

inline Group group_of(const double* x, int64_t stride, int64_t n) {
  const double u = u32();
  Group g;
  g.n = double(n);
  double s = 0, a = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += x[i * stride];
    a += std::abs(x[i * stride]);
  }
  g.mean = s / double(n);
  for (int64_t i = 0; i < n; ++i) g.m2 += (x[i * stride] - g.mean) * (x[i * stride] - g.mean);
  const int64_t h = depth(n);
  const double sum_err = gam(h) * a / double(n) + kSubnormalUlp;
  g.e = sum_err + u * (std::abs(g.mean) + sum_err);
  g.e2 = gam(h + 3) * (g.m2 + g.n * g.e * g.e) + g.n * g.e * g.e + g.n * kSubnormalUlp;
  return g;
}

// semantics.h combine() with error propagation (see the header comment).
inline Group combine(const Group& a, const Group& b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const double u = u32();
  Group r;
  r.n = a.n + b.n;
  const double f = b.n / r.n, d = b.mean - a.mean, w = a.n * b.n / r.n;
  r.mean = a.mean + d * f;
  const double em = a.e + b.e, dmag = std::abs(d) + em;
  const double e_lin = (1 - f) * a.e + f * b.e + gam(3) * dmag * f;
  r.e = e_lin + u * (std::abs(r.mean) + e_lin) + kSubnormalUlp;
  const double c = d * d * w;
  r.m2 = a.m2 + b.m2 + c;
  const double cross_err = gam(6) * dmag * dmag * w + (2 * std::abs(d) * em + em * em) * w;
  const double in = a.e2 + b.e2 + cross_err;
  r.e2 = in + gam(2) * (r.m2 + in) + 2 * kSubnormalUlp;
  return r;
}

// |rstd~ - r| for fl(v~ + eps) with |v~ - v| <= ev (v~ >= 0); inf if unbounded.
inline double rstd_err(double v, double ev, double eps) {
  const double u = u32(), ur = kRsqrtUlps * 2 * u * (1 + 0x1p-50);
  const double r = 1 / std::sqrt(v + eps);
  const double lo = std::max((v + eps - ev) * (1 - u), eps), hi = (v + eps + ev) * (1 + u);
  if (!(lo > 0)) return std::numeric_limits<double>::infinity();
  return std::max((1 + ur) / std::sqrt(lo) - r, r - (1 - ur) / std::sqrt(hi));
}

inline double tiny(double g, double r) { return 16 * kSubnormalUlp * (1 + std::abs(g)) * (1 + r); }

}  // namespace norm_detail

// LayerNorm of the rows of x [rows, D] (the values the kernel reads) with
// gamma, beta [D], eps as the kernel's fp32, and the bound for output `out`.
inline NormGolden layernorm(const MatF& x, const std::vector<float>& gamma,
                            const std::vector<float>& beta, float eps, DType out,
                            const NormShape& shape = {}) {
  using namespace norm_detail;
  const double u = u32(), uo = out == DType::kF32 ? 0.0 : unit_roundoff(out);
  const int64_t rows = x.rows(), d = x.cols();
  NormGolden g{MatD(rows, d), MatD(rows, d)};
  std::vector<double> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < d; ++j) row[size_t(j)] = x(i, j);
    Group all;
    for (int64_t c0 = 0; c0 < d; c0 += shape.bn_chunk) {
      const int64_t n = std::min(shape.bn_chunk, d - c0);
      all = combine(all, group_of(row.data() + c0, 2, (n + 1) / 2));
      if (n > 1) all = combine(all, group_of(row.data() + c0 + 1, 2, n / 2));
    }
    const double mu = all.mean, var = all.m2 / double(d);
    const double ev = all.e2 / double(d) * (1 + u) + u * var;
    const double r = 1 / std::sqrt(var + double(eps)), rho = rstd_err(var, ev, double(eps));
    const double emu = all.e;
    for (int64_t j = 0; j < d; ++j) {
      const double a = std::abs(row[size_t(j)] - mu), gj = gamma[size_t(j)];
      const double y = (row[size_t(j)] - mu) * r * gj + double(beta[size_t(j)]);
      const double dx = emu + u * (a + emu);
      const double gx = dx + u * (a + dx);
      const double v = std::abs(gj) * (gx * (r + rho) + a * rho + u * (a + gx) * (r + rho));
      const double yb = v + u * (std::abs(y) + v);
      g.y(i, j) = y;
      g.bound(i, j) = yb + uo * (std::abs(y) + yb) + tiny(gj, r);
    }
  }
  return g;
}

// RMSNorm of the rows of x [rows, D] with gamma [D].
inline NormGolden rmsnorm(const MatF& x, const std::vector<float>& gamma, float eps, DType out,
                          const NormShape& shape = {}) {
  using namespace norm_detail;
  const double u = u32(), uo = out == DType::kF32 ? 0.0 : unit_roundoff(out);
  const int64_t rows = x.rows(), d = x.cols();
  int64_t h = depth(std::min(d, shape.rms_piece));
  if (shape.rms_pieces > 1) h += depth(shape.rms_pieces);
  NormGolden g{MatD(rows, d), MatD(rows, d)};
  for (int64_t i = 0; i < rows; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(x(i, j)) * double(x(i, j));
    const double ms = ss / double(d);
    // ss~ = ss (1 + theta), |theta| <= gamma_{h+1}, plus a subnormal ulp per
    // square; then * fl(1/D): two more roundings.
    const double ev = gam(h + 3) * ms + kSubnormalUlp * (1 + 4 * u);
    const double r = 1 / std::sqrt(ms + double(eps)), rho = rstd_err(ms, ev, double(eps));
    for (int64_t j = 0; j < d; ++j) {
      const double xa = std::abs(double(x(i, j))), gj = gamma[size_t(j)];
      const double y = double(x(i, j)) * r * gj;
      const double t = xa * rho + u * xa * (r + rho);
      const double yb = std::abs(gj) * (t + u * (xa * r + t));
      g.y(i, j) = y;
      g.bound(i, j) = yb + uo * (std::abs(y) + yb) + tiny(gj, r);
    }
  }
  return g;
}

// max |got - want| / bound; <= 1 means within the bound. NaN must meet NaN,
// an infinity the same infinity; anything else against them is infinitely wrong.
inline double norm_worst_ratio(const MatF& got, const MatD& want, const MatD& bound) {
  double worst = 0.0;
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < got.rows(); ++i)
    for (int64_t j = 0; j < got.cols(); ++j) {
      const double gv = got(i, j), wv = want(i, j);
      if (std::isnan(wv) || std::isnan(gv)) {
        if (!(std::isnan(wv) && std::isnan(gv))) return inf;
        continue;
      }
      if (std::isinf(wv) || std::isinf(gv)) {
        if (gv != wv) return inf;
        continue;
      }
      worst = std::max(worst, std::abs(gv - wv) / bound(i, j));
    }
  return worst;
}

}  // namespace ncore::golden
