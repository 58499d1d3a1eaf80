// Golden references: Eigen in double precision, and the error bounds the
// kernels are held to. Tests and benchmarks only.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <limits>

#include <ncore/isa/numerics.h>

namespace ncore::golden {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, 3.1).
inline double gamma(int64_t n, double u) { return n * u / (1.0 - n * u); }

// C = A @ B and the elementwise bound on |C_kernel - C| for a kernel that
// accumulates K products in fp32 in any order and rounds the result once to
// `out` dtype:  |err| <= gamma_K(u32) (|A||B|)_ij (1 + u_out) + u_out |C_ij| + tiny,
// where `tiny` covers flushing subnormal products and sums (vdpbf16ps is DAZ/FTZ):
// at most K + 1 flushes of magnitude below 2^-126 each.
struct GemmGolden {
  MatD c;      // [M, N] exact-ish product of the (already rounded) inputs
  MatD bound;  // [M, N]
};

inline GemmGolden gemm(const MatF& a, const MatF& b, DType out) {
  const MatD ad = a.cast<double>(), bd = b.cast<double>();
  const int64_t k = a.cols();
  const double u32 = unit_roundoff(DType::kF32), uo = unit_roundoff(out);
  const double tiny = double(k + 1) * std::ldexp(1.0, -126);
  GemmGolden g;
  g.c = ad * bd;
  g.bound = (gamma(k, u32) * (1.0 + uo)) * (ad.cwiseAbs() * bd.cwiseAbs()) +
            uo * g.c.cwiseAbs();
  g.bound.array() += tiny;
  return g;
}

// max_ij |got_ij - want_ij| / bound_ij: <= 1 means within the bound. NaN in
// `got` where `want` is finite counts as infinitely wrong.
inline double worst_ratio(const MatF& got, const MatD& want, const MatD& bound) {
  double worst = 0.0;
  for (int64_t i = 0; i < got.rows(); ++i)
    for (int64_t j = 0; j < got.cols(); ++j) {
      const double e = std::abs(double(got(i, j)) - want(i, j));
      const double r = std::isnan(e) ? std::numeric_limits<double>::infinity() : e / bound(i, j);
      worst = std::max(worst, r);
    }
  return worst;
}

}  // namespace ncore::golden
