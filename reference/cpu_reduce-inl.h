// Per-target reductions: tensor_reduce, bn_stats, bn_aggr, in the fixed
// order of isa/semantics.h reduce() (Partials), so the results are the same
// bits on every target. Each partition's outputs are written after all of
// its inputs are read.

#if defined(NCORE_REFERENCE_CPU_REDUCE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_REDUCE_INL_H_
#undef NCORE_REFERENCE_CPU_REDUCE_INL_H_
#else
#define NCORE_REFERENCE_CPU_REDUCE_INL_H_
#endif

#include <hwy/highway.h>
#include <ncore/isa/instr.h>
#include <ncore/isa/semantics.h>
#include <ncore/reference/cpu_convert-inl.h>
#include <ncore/reference/cpu_math-inl.h>
#include <ncore/reference/cpu_ops.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dst[p, k] = (+-) reduce(op, block k of src row p): the trailing in.axes
// free dims of src form a block, the leading ones index k (row-major).
inline void TensorReduce(const Instr& in, const View& dst, const View& src) {
  const AccessPattern& ap = src.ap;
  const int kept_dims = ap.ndim - in.axes;
  AccessPattern kept, block;  // kept.ndim == 0: one block
  for (int d = 0; d < ap.ndim; ++d) {
    AccessPattern& part = d < kept_dims ? kept : block;
    part.shape[part.ndim] = ap.shape[d];
    part.stride[part.ndim] = ap.stride[d];
    ++part.ndim;
  }
  View bv = src;
  bv.ap = block;
  const Stream s(bv), d(dst);
  const int64_t n = s.size(), esz = s.esz();
  std::vector<float> out(size_t(kept.size()));
  HWY_ALIGN float buf[kChunk];
  const bool negate = in.has(kNegate);
  WithReduceOp(in.alu0, [&](auto k) {
    for (int p = 0; p < src.np; ++p) {
      const uint8_t* row = src.row(p);
      size_t j = 0;
      kept.for_each([&](int64_t off) {
        Partials<decltype(k)::value> acc;
        for (int64_t e0 = 0; e0 < n; e0 += kChunk) {
          const int64_t len = std::min(kChunk, n - e0);
          acc.Fold(s.ReadAt(row + off * esz, e0, len, buf), len);
        }
        const float r = acc.Finish();
        out[j++] = negate ? -r : r;
      });
      d.Write(p, 0, int64_t(out.size()), out.data());
    }
  });
}

// bn_stats: dst[p, 0:6] = moments(even-indexed elements), moments(odd-indexed
// ones) of src row p (semantics.h moments: two passes).
inline void BnStats(const View& dst, const View& src) {
  const Stream s(src), d(dst);
  const int64_t n = s.size();
  HWY_ALIGN float buf[kChunk];
  HWY_ALIGN float half[2][kChunk / 2];  // even, odd elements of a chunk
  HWY_ALIGN float sq[kChunk / 2];
  const hn::ScalableTag<float> df;
  // Splits a chunk into its even and odd elements (it starts at an even
  // element, kChunk being even).
  auto split = [&](const float* x, int64_t len) {
    const int64_t N = int64_t(hn::Lanes(df));
    int64_t i = 0;
    for (; i + 2 * N <= len; i += 2 * N) {
      hn::Vec<decltype(df)> even, odd;
      hn::LoadInterleaved2(df, x + i, even, odd);
      hn::StoreU(even, df, half[0] + i / 2);
      hn::StoreU(odd, df, half[1] + i / 2);
    }
    for (; i < len; ++i) half[i & 1][i >> 1] = x[i];
  };
  for (int p = 0; p < src.np; ++p) {
    Moments m[2];
    m[0].count = float((n + 1) / 2);
    m[1].count = float(n / 2);
    Partials<AluOp::kAdd> sum[2];
    for (int64_t e0 = 0; e0 < n; e0 += kChunk) {
      const int64_t len = std::min(kChunk, n - e0);
      split(s.Read(p, e0, len, buf), len);
      sum[0].Fold(half[0], (len + 1) / 2);
      sum[1].Fold(half[1], len / 2);
    }
    for (int g = 0; g < 2; ++g)
      if (m[g].count != 0.0f) m[g].mean = sum[g].Finish() / m[g].count;
    Partials<AluOp::kAdd> dev[2];
    for (int64_t e0 = 0; e0 < n; e0 += kChunk) {
      const int64_t len = std::min(kChunk, n - e0);
      split(s.Read(p, e0, len, buf), len);
      for (int g = 0; g < 2; ++g) {
        const int64_t cnt = g == 0 ? (len + 1) / 2 : len / 2;
        const auto mean = hn::Set(df, m[g].mean);
        Map1(df, sq, half[g], cnt, [&](auto x) {
          const auto dv = hn::Sub(x, mean);
          return hn::Mul(dv, dv);
        });
        dev[g].Fold(sq, cnt);
      }
    }
    for (int g = 0; g < 2; ++g)
      if (m[g].count != 0.0f) m[g].m2 = dev[g].Finish();
    const float stats[6] = {m[0].count, m[0].mean, m[0].m2, m[1].count, m[1].mean, m[1].m2};
    d.Write(p, 0, 6, stats);
  }
}

// bn_aggr: dst[p, 0:2] = (mean, variance) of the (count, mean, M2) triples of
// src row p folded in order with semantics.h combine(); (NaN, NaN) if empty.
inline void BnAggr(const View& dst, const View& src) {
  const Stream s(src), d(dst);
  const int64_t n = s.size();
  std::vector<float> row(size_t(std::max<int64_t>(n, 1)));
  for (int p = 0; p < src.np; ++p) {
    const float* x = s.Read(p, 0, n, row.data());
    Moments all;
    for (int64_t g = 0; g + 3 <= n; g += 3) all = combine(all, Moments{x[g], x[g + 1], x[g + 2]});
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float out[2] = {all.count == 0.0f ? nan : all.mean,
                          all.count == 0.0f ? nan : all.m2 / all.count};
    d.Write(p, 0, 2, out);
  }
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
