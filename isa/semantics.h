// The scalar definition of every elementwise operation: the interpreter runs
// these, and the CPU reference is tested against them. Arithmetic is fp32 as in
// the Vector and Scalar engines (facts §3); each step rounds (no contraction:
// scale-then-bias is two roundings, as two ALU stages are).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include <ncore/isa/instr.h>
#include <ncore/isa/opcodes.h>

namespace ncore {

// max/min propagate NaN (unlike x86 maxps), so a NaN input is never hidden.
inline float alu(AluOp op, float a, float b) {
  switch (op) {
    case AluOp::kBypass: return a;
    case AluOp::kAdd: return a + b;
    case AluOp::kSubtract: return a - b;
    case AluOp::kMultiply: return a * b;
    case AluOp::kDivide: return a / b;
    case AluOp::kMax: return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN()
                                                : (a > b ? a : b);
    case AluOp::kMin: return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN()
                                                : (a < b ? a : b);
    case AluOp::kIsEqual: return a == b ? 1.0f : 0.0f;
    case AluOp::kNotEqual: return a != b ? 1.0f : 0.0f;
    case AluOp::kIsLt: return a < b ? 1.0f : 0.0f;
    case AluOp::kIsLe: return a <= b ? 1.0f : 0.0f;
    case AluOp::kIsGt: return a > b ? 1.0f : 0.0f;
    case AluOp::kIsGe: return a >= b ? 1.0f : 0.0f;
  }
  return a;
}

// scalar_tensor_tensor on one element: (x op0 s) op1 t, both stages fp32
// and rounded on their own (two ALU stages, as tensor_scalar's), kReverse0
// giving s op0 x and kReverse1 t op1 (...).
inline float scalar_tensor_tensor(AluOp op0, AluOp op1, float x, float s, float t, bool reverse0,
                                  bool reverse1) {
  const float r = reverse0 ? alu(op0, s, x) : alu(op0, x, s);
  return reverse1 ? alu(op1, t, r) : alu(op1, r, t);
}

// Identity element of a reduction ALU op (add, max, min).
inline float reduce_identity(AluOp op) {
  switch (op) {
    case AluOp::kMax: return -std::numeric_limits<float>::infinity();
    case AluOp::kMin: return std::numeric_limits<float>::infinity();
    default: return 0.0f;
  }
}

// Activation functions, evaluated in double and rounded once to fp32: the
// reference is (nearly) correctly rounded; the device's piecewise polynomials
// and the CPU's SIMD approximations are held to it with per-function ulp bounds.
inline float activate(ActFunc f, float xf) {
  const double x = xf;
  switch (f) {
    case ActFunc::kCopy: return xf;
    case ActFunc::kExp: return float(std::exp(x));
    case ActFunc::kLog: return float(std::log(x));
    case ActFunc::kSquare: return xf * xf;
    case ActFunc::kSqrt: return std::sqrt(xf);
    case ActFunc::kRsqrt: return float(1.0 / std::sqrt(x));
    case ActFunc::kReciprocal: return float(1.0 / x);
    case ActFunc::kRelu: return xf != xf ? xf : (xf > 0.0f ? xf : 0.0f);
    case ActFunc::kSigmoid: return float(1.0 / (1.0 + std::exp(-x)));
    case ActFunc::kTanh: return float(std::tanh(x));
    // 0.5 x (1 + erf(x / sqrt 2)) as erfc: 1 + erf cancels for x < -4 (all
    // digits lost below -8.3), erfc keeps the relative accuracy.
    case ActFunc::kGelu: return float(0.5 * x * std::erfc(x * -0.70710678118654752440));
    case ActFunc::kSilu: return float(x / (1.0 + std::exp(-x)));
    case ActFunc::kAbs: return std::fabs(xf);
  }
  return xf;
}

// ---- Reductions (tensor_reduce, the activation accumulator, bn_stats) ----
// One fixed order, so every SIMD width (and the scalar code) gives the same
// bits: element j of the sequence goes to partial j % kReduceLanes, each
// partial folds its elements in order from the identity, p = alu(op, p, x),
// and the partials then combine by halving: p[l] = alu(op, p[l], p[l + w]) for
// w = 32, 16, ..., 1. 64 partials = four AVX-512 registers of fp32: four
// independent add chains cover the add latency (Zen 5: 2 adds per cycle,
// latency 3); narrower targets keep more registers.
inline constexpr int kReduceLanes = 64;

// Reduction of x(0), ..., x(n - 1) with op (add, max, min) in that order.
template <class Get>
float reduce(AluOp op, int64_t n, Get&& x) {
  std::array<float, kReduceLanes> p;
  p.fill(reduce_identity(op));
  for (int64_t j = 0; j < n; ++j) {
    float& lane = p[size_t(j % kReduceLanes)];
    lane = alu(op, lane, x(j));
  }
  for (int w = kReduceLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) p[size_t(l)] = alu(op, p[size_t(l)], p[size_t(l + w)]);
  return p[0];
}

// bn_stats / bn_aggr statistics: count, mean and M2 (the sum of squared
// deviations from the mean), all fp32.
struct Moments {
  float count = 0.0f, mean = 0.0f, m2 = 0.0f;
};

// Moments of x(0..n-1) in two passes: mean = reduce(add, x) / n, then
// M2 = reduce(add, (x - mean)^2), each product and sum rounded. bn_stats
// writes moments(even-indexed elements), then moments(odd-indexed ones).
template <class Get>
Moments moments(int64_t n, Get&& x) {
  Moments r;
  if (n == 0) return r;
  r.count = float(n);
  r.mean = reduce(AluOp::kAdd, n, x) / r.count;
  r.m2 = reduce(AluOp::kAdd, n, [&](int64_t j) {
    const float d = x(j) - r.mean;
    return d * d;
  });
  return r;
}

// Chan et al.'s pairwise update, in fp32, one rounding per operation:
//   n = na + nb, d = mb - ma, mean = ma + d * (nb / n),
//   M2 = (M2a + M2b) + (d * d) * ((na * nb) / n).
// An empty side leaves the other unchanged. bn_aggr folds its (count, mean,
// M2) triples in order from an empty Moments and writes (mean, M2 / count),
// the population variance; no samples at all gives (NaN, NaN).
inline Moments combine(const Moments& a, const Moments& b) {
  if (b.count == 0.0f) return a;
  if (a.count == 0.0f) return b;
  Moments r;
  r.count = a.count + b.count;
  const float d = b.mean - a.mean;
  const float fb = b.count / r.count;
  const float shift = d * fb;
  r.mean = a.mean + shift;
  const float nab = a.count * b.count;
  const float w = nab / r.count;
  const float dd = d * d;
  const float cross = dd * w;
  const float m2s = a.m2 + b.m2;
  r.m2 = m2s + cross;
  return r;
}

// iota / affine_select: the pattern's value at partition p (relative to the
// destination's first partition) and free index i of the destination, in
// int32 arithmetic that wraps (GpSimd's integer ALU). affine_select keeps
// src where alu(cmp, float(value), 0) != 0, else writes its fill.
inline int32_t affine_value(const Affine& a, int64_t p, const std::array<int64_t, 4>& i) {
  uint32_t v = uint32_t(a.base) + uint32_t(a.channel) * uint32_t(p);
  for (size_t d = 0; d < i.size(); ++d) v += uint32_t(a.free[d]) * uint32_t(i[d]);
  return int32_t(v);
}

}  // namespace ncore
