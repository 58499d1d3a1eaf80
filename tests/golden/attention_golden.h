// Attention golden: softmax(Q K^T scale + mask) V and LSE in double, and the
// elementwise bound the flash-attention kernel (kernels/attention.h) is held to.
//
// The kernel's arithmetic, for one query row (u = 2^-24, fp32's unit roundoff):
//   S'_j  = q.k_j by matmul in fp32: |S'_j - S_j| <= gamma_D (|q|.|k_j|) + tiny;
//   nb    = round(-scale m'), m' = max_j S'_j (kept as the exps' bias);
//   P'_j  = exp(round(round(scale S'_j) + nb)): three roundings put an absolute
//           error <= 3.01 u scale (|S_j| + |m|) on the argument, the exp (CPU:
//           Highway Exp, 1 ulp = 2u relative, reference/cpu_math-inl.h and
//           tests/reference/cpu_activation_test.cc; interpreter: 1/2 ulp) a
//           relative 2u on the result; bf16 inputs round P to bf16 for the PV
//           matmul only (u_p = 2^-8; the row sum uses the fp32 values, so for
//           fp32 inputs u_p = 0);
//   alpha = exp(round(nb_new - nb_old)) per step after the first: the
//           argument's rounding matters only while |nb_new - nb_old| < 104
//           (beyond, exp underflows and the rescaled terms are < e^-100 of the
//           row's largest), so each alpha is within 104u + 2u (+ slack: 110u);
//   o     = o alpha + pv, pv a PSUM sum of at most kappa = min(Skv, block_k)
//           products (block_k: the keys of a step, 512 or 1024, the kernel's
//           plan): at most N1 = kappa + 1 + 2 n_t roundings on any term's
//           path, n_t = ceil(Skv / block_k) steps (one per key block);
//   l     = l alpha + rowsum, rowsum the exp's fused fp32 sum: relative error
//           gamma_N2, N2 = kappa + 2 n_t + c (positive terms), c = 1 causal:
//           the one step of a Q tile with both unmasked and masked keys (the
//           diagonal) sums them in two exps, and adds the masked keys' sum to
//           l separately;
//   O     = o * round(1 / l) (two roundings), then rounded to the output dtype.
// The argument errors, the exp's and the alphas' all multiply a term p_j in
// the numerator and in the denominator alike (the same fp32 value and the
// same alpha feed both), so they are a consistent perturbation
//   1 + eps = e^Delta (1 + 2u) (1 + 110u)^n_t,
//   Delta = max_j scale (gamma_D |q|.|k_j| + tiny) + 3.01 u scale (|S_j| + |m|),
// and a softmax-weighted mean moves by at most 2 eps / (1 - eps) times
// A_d = sum_j w_j |v_jd| (w = the exact softmax weights). Writing the rest
// out (|O| <= A, Z = sum_j w_j (1 + eps_j) in [1 - eps, 1 + eps]):
//   e1 = (2 eps + (1 + eps)(u_p + gamma_N1 (1 + u_p))) / (1 - eps),
//   f  = (1 + u)^2 / (1 - gamma_N2),
//   |O' - O| <= ((e1 f + f - 1) A (1 + u_out) + u_out |O| + tiny_o.
// LSE' = round(round(log l') - nb) with log l' within
//   e_l = -log((1 - eps)(1 - gamma_N2)) of log l (l = sum_j exp(scale (S_j - m)) >= 1):
//   |LSE' - LSE| <= (e_l + 8u (log l + e_l)) (1 + u) + u |LSE| + tiny,
// the 8u being the CPU log's 4 ulps. tiny covers products and P values
// flushed or underflowing below 2^-126 (vdpbf16ps is DAZ/FTZ; exp
// underflows), at most Skv of them, each < 2^-126 (1 + |v|) after the
// division by l >= 1: tiny_o = Skv (1 + max_j |v_jd|) 2^-120.
// Rows that see no key: O = 0 and LSE = -inf exactly (bound 0). A NaN
// anywhere in a row's scores makes its O and LSE NaN; a NaN in V makes the
// affected O columns NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <ncore/isa/dtype.h>
#include <ncore/isa/numerics.h>

namespace ncore::golden {

struct AttentionProblem {
  int64_t b = 1, hq = 1, hkv = 1, sq = 1, skv = 1, d = 1;
  bool causal = false;
  float scale = 1.0f;
  DType in = DType::kF32, out = DType::kF32;  // Q/K/V dtype, O dtype
  // Keys per kernel step (AttentionPlan::block_k); 0 bounds any plan: the
  // widest step's kappa with the narrowest step's count.
  int64_t block_k = 0;
};

struct AttentionGolden {
  std::vector<double> o, o_bound;      // [B, Hq, Sq, D]
  std::vector<double> lse, lse_bound;  // [B, Hq, Sq]
};

// q [B, Hq, Sq, D], k and v [B, Hkv, Skv, D]: the fp32 values the kernel sees
// (already rounded to the input dtype).
inline AttentionGolden attention(const AttentionProblem& pr, const float* q, const float* k,
                                 const float* v) {
  const double u = unit_roundoff(DType::kF32), u_out = unit_roundoff(pr.out);
  const double u_p = pr.in == DType::kBF16 ? unit_roundoff(DType::kBF16) : 0.0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const double flush = std::ldexp(1.0, -126);
  auto gamma = [&](int64_t n) { return double(n) * u / (1.0 - double(n) * u); };
  constexpr int64_t kNarrowest = 512, kWidest = 1024;  // kernels/attention.h's step widths
  const int64_t narrow = pr.block_k ? pr.block_k : kNarrowest, wide = pr.block_k ? pr.block_k : kWidest;
  const int64_t n_t = (pr.skv + narrow - 1) / narrow;
  const int64_t kappa = std::min(pr.skv, wide);
  const double g_d = gamma(pr.d), g_n1 = gamma(kappa + 1 + 2 * n_t),
               g_n2 = gamma(kappa + 2 * n_t + (pr.causal ? 1 : 0));
  const double scale = pr.scale;
  const int64_t off = pr.skv - pr.sq;
  const int64_t group = pr.hq / pr.hkv, D = pr.d;

  AttentionGolden g;
  g.o.assign(size_t(pr.b * pr.hq * pr.sq * D), 0.0);
  g.o_bound.assign(g.o.size(), 0.0);
  g.lse.assign(size_t(pr.b * pr.hq * pr.sq), -inf);
  g.lse_bound.assign(g.lse.size(), 0.0);
  const size_t nk = static_cast<size_t>(pr.skv);
  std::vector<double> s(nk), a(nk), w(nk), vmax(static_cast<size_t>(D));
  for (int64_t b = 0; b < pr.b; ++b)
    for (int64_t h = 0; h < pr.hq; ++h) {
      const float* kh = k + (b * pr.hkv + h / group) * pr.skv * D;
      const float* vh = v + (b * pr.hkv + h / group) * pr.skv * D;
      for (int64_t dd = 0; dd < D; ++dd) {
        vmax[size_t(dd)] = 0.0;
        for (int64_t j = 0; j < pr.skv; ++j)
          vmax[size_t(dd)] = std::max(vmax[size_t(dd)], std::fabs(double(vh[j * D + dd])));
      }
      for (int64_t i = 0; i < pr.sq; ++i) {
        const int64_t row = (b * pr.hq + h) * pr.sq + i;
        const float* qi = q + row * D;
        double* o = g.o.data() + row * D;
        double* ob = g.o_bound.data() + row * D;
        const int64_t nvis = pr.causal ? std::clamp<int64_t>(i + off + 1, 0, pr.skv) : pr.skv;
        if (nvis == 0) continue;  // sees no key: O = 0, LSE = -inf, exactly
        bool has_nan = false;
        double m = -inf;
        for (int64_t j = 0; j < nvis; ++j) {
          double dot = 0.0, adot = 0.0;
          for (int64_t dd = 0; dd < D; ++dd) {
            dot += double(qi[dd]) * double(kh[j * D + dd]);
            adot += std::fabs(double(qi[dd]) * double(kh[j * D + dd]));
          }
          s[size_t(j)] = dot;
          a[size_t(j)] = adot;
          has_nan |= std::isnan(dot);
          m = std::max(m, dot);
        }
        if (has_nan) {
          std::fill(o, o + D, nan);
          g.lse[size_t(row)] = nan;
          continue;
        }
        double l = 0.0, delta = 0.0;
        for (int64_t j = 0; j < nvis; ++j) {
          w[size_t(j)] = std::exp(scale * (s[size_t(j)] - m));
          l += w[size_t(j)];
          delta = std::max(delta, scale * (g_d * a[size_t(j)] + double(D + 1) * flush) +
                                      3.01 * u * scale * (std::fabs(s[size_t(j)]) + std::fabs(m)));
        }
        const double eps = std::exp(delta) * (1.0 + 2.0 * u) * std::pow(1.0 + 110.0 * u, double(n_t)) - 1.0;
        const double e1 = (2.0 * eps + (1.0 + eps) * (u_p + g_n1 * (1.0 + u_p))) / (1.0 - eps);
        const double f = (1.0 + u) * (1.0 + u) / (1.0 - g_n2);
        for (int64_t dd = 0; dd < D; ++dd) {
          double num = 0.0, absnum = 0.0;
          for (int64_t j = 0; j < nvis; ++j) {
            num += w[size_t(j)] * double(vh[j * D + dd]);
            absnum += w[size_t(j)] * std::fabs(double(vh[j * D + dd]));
          }
          o[dd] = num / l;
          const double A = absnum / l;
          const double tiny = double(pr.skv) * (1.0 + vmax[size_t(dd)]) * std::ldexp(1.0, -120);
          ob[dd] = (e1 * f + f - 1.0) * A * (1.0 + u_out) + u_out * std::fabs(o[dd]) + tiny;
        }
        const double lse = scale * m + std::log(l);
        const double e_l = -std::log((1.0 - eps) * (1.0 - g_n2));
        g.lse[size_t(row)] = lse;
        g.lse_bound[size_t(row)] =
            (e_l + 8.0 * u * (std::log(l) + e_l)) * (1.0 + u) + u * std::fabs(lse) + 1e-30;
      }
    }
  return g;
}

// max_i |got_i - want_i| / bound_i over n values: <= 1 means within the bound.
// Specials must match exactly: want NaN needs got NaN, want +-inf needs the
// same infinity, a zero bound needs got == want; anything else is infinitely
// wrong. `at`, if given, receives the index of the worst element.
inline double worst_ratio(const float* got, const std::vector<double>& want,
                          const std::vector<double>& bound, int64_t* at = nullptr) {
  const double inf = std::numeric_limits<double>::infinity();
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double x = got[i], w = want[i];
    double r;
    if (std::isnan(w)) r = std::isnan(x) ? 0.0 : inf;
    else if (std::isnan(x)) r = inf;
    else if (std::isinf(w) || bound[i] == 0.0) r = x == w ? 0.0 : inf;
    else r = std::fabs(x - w) / bound[i];
    if (r > worst) {
      worst = r;
      if (at) *at = int64_t(i);
    }
  }
  return worst;
}

}  // namespace ncore::golden
