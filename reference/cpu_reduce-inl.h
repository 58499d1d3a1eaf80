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
#include <array>
#include <cstdint>
#include <cstring>
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

// bn_stats's two reductions side by side. reduce() gives element j of a
// sequence to partial j % kReduceLanes; the even-indexed elements of a row
// form one sequence and the odd-indexed ones the other, so row element i
// feeds partial (i / 2) % kReduceLanes of sequence i % 2. Laid out as
// kPairLanes = 2 kReduceLanes lanes, row element i folds into lane
// i % kPairLanes, where lane 2l is the even sequence's partial l and lane
// 2l + 1 the odd one's: whole vectors of the row fold as they are, with no
// de-interleaving and no buffer, in the same order as reduce() for each
// sequence (the same bits).
inline constexpr int64_t kPairLanes = 2 * kReduceLanes;
static_assert(kChunk % kPairLanes == 0);

class PairPartials {
  using D = hn::CappedTag<float, kPairLanes>;
  static constexpr size_t kN = hn::MaxLanes(D());
  static constexpr size_t kRegs = size_t(kPairLanes) / kN;
  static_assert(kPairLanes % kN == 0);

 public:
  PairPartials() {
    for (auto& r : acc_) r = hn::Zero(D());  // reduce_identity(add)
  }

  // Folds f(x[i], parity) for i < n, where the row's element i is at lane i
  // of this and earlier calls: every call but the last passes a multiple of
  // kPairLanes elements. f gets a vector of fp32 elements and the parity (0
  // even, 1 odd) of its first lane; lanes past n fold the identity (+0,
  // which leaves every partial unchanged: a partial is never -0).
  template <RowType T, class F>
  void Fold(const uint8_t* x, int64_t n, F&& f) {
    const D d;
    constexpr int64_t kSize = RowSize(T);
    int64_t i = 0;
    for (; i + kPairLanes <= n; i += kPairLanes)
      for (size_t j = 0; j < kRegs; ++j)
        acc_[j] = hn::Add(acc_[j], f(LoadRow<T>(d, x + (i + int64_t(j * kN)) * kSize), Parity(j)));
    if (i < n) {
      HWY_ALIGN uint8_t pad[kPairLanes * 4] = {};
      std::memcpy(pad, x + i * kSize, size_t((n - i) * kSize));
      for (size_t j = 0; j < kRegs; ++j) {
        const int64_t live = n - i - int64_t(j * kN);
        if (live <= 0) break;
        const auto v = f(LoadRow<T>(d, pad + j * kN * kSize), Parity(j));
        acc_[j] = hn::Add(acc_[j], hn::IfThenElseZero(hn::FirstN(d, size_t(live)), v));
      }
    }
  }

  // The halving combination of each sequence's partials: {even, odd}.
  // Sequence partials l and l + w sit kPairLanes / 2 ... 2 lanes apart in
  // the pair layout, and both sequences' pairs at the same distance, so each
  // halving level is lanes [0, 2w) += lanes [2w, 4w): whole registers while
  // 2w >= kN, then lanes of the first one. Every lane sees the additions
  // reduce() makes, in its order.
  std::array<float, 2> Finish() const {
    hn::Vec<D> r[kRegs];
    for (size_t j = 0; j < kRegs; ++j) r[j] = acc_[j];
    size_t dist = kPairLanes / 2;  // lanes between the partials a level adds
    for (; dist >= kN && dist >= 2; dist /= 2)
      for (size_t j = 0; j < dist / kN; ++j) r[j] = hn::Add(r[j], r[j + dist / kN]);
    HWY_ALIGN float p[kN < 2 ? 2 : kN];  // the live lanes: at least the two results
    for (size_t j = 0; j * kN < 2; ++j) hn::Store(r[j], D(), p + j * kN);
    for (; dist >= 2; dist /= 2)
      for (size_t l = 0; l < dist; ++l) p[l] = p[l] + p[l + dist];
    return {p[0], p[1]};
  }

  // A vector whose even lanes hold `even` and odd lanes `odd`, for register
  // parity 0 (register j's first lane has parity Parity(j)).
  static hn::Vec<D> Alternating(float even, float odd, int parity) {
    HWY_ALIGN float v[kN];
    for (size_t l = 0; l < kN; ++l) v[l] = (l + size_t(parity)) % 2 ? odd : even;
    return hn::Load(D(), v);
  }

 private:
  static constexpr int Parity(size_t j) { return int(j * kN % 2); }

  hn::Vec<D> acc_[kRegs];
};

// bn_stats: dst[p, 0:6] = moments(even-indexed elements), moments(odd-indexed
// ones) of src row p (semantics.h moments: the sums, then the squared
// deviations from the means), both sequences folded together (PairPartials)
// straight from a contiguous f32 / bf16 row, or from decoded chunks.
inline void BnStats(const View& dst, const View& src) {
  const Stream s(src), d(dst);
  const int64_t n = s.size();
  HWY_ALIGN float buf[kChunk];
  using DP = hn::CappedTag<float, kPairLanes>;
  // Folds f over row p chunk by chunk (each chunk a multiple of kPairLanes
  // but the last, so the lanes continue).
  auto fold = [&](int p, PairPartials& acc, auto&& f) {
    for (int64_t e0 = 0; e0 < n; e0 += kChunk) {
      const int64_t len = std::min(kChunk, n - e0);
      const RowIn x = s.In(p, e0, len, buf);
      WithRowType(x.t, [&](auto t) { acc.Fold<decltype(t)::value>(x.p, len, f); });
    }
  };
  for (int p = 0; p < src.np; ++p) {
    Moments m[2];
    m[0].count = float((n + 1) / 2);
    m[1].count = float(n / 2);
    PairPartials sum;
    fold(p, sum, [](auto x, int) { return x; });
    const std::array<float, 2> sums = sum.Finish();
    for (int g = 0; g < 2; ++g)
      if (m[g].count != 0.0f) m[g].mean = sums[size_t(g)] / m[g].count;
    const hn::Vec<DP> mean[2] = {PairPartials::Alternating(m[0].mean, m[1].mean, 0),
                                 PairPartials::Alternating(m[0].mean, m[1].mean, 1)};
    PairPartials dev;
    fold(p, dev, [&](auto x, int parity) {
      const auto dv = hn::Sub(x, mean[parity]);
      return hn::Mul(dv, dv);
    });
    const std::array<float, 2> m2 = dev.Finish();
    for (int g = 0; g < 2; ++g)
      if (m[g].count != 0.0f) m[g].m2 = m2[size_t(g)];
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
