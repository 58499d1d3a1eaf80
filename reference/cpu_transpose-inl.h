// Per-target transposes: the Tensor-engine transpose (dst[F, P] = src[P, F],
// values: decoded, then RNE to dst's dtype, as the interpreter does) and
// dma_transpose (dst[P, F] = src[F, P], bits). Both are
//   dst row r, element c = src row c, element r   (r < dst.np, c < src.np),
// since dma_transpose's [F, P] HBM view resolves to F rows of P elements.

#if defined(NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#undef NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#else
#define NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#endif

#include <hwy/highway.h>
#include <ncore/reference/cpu_convert-inl.h>
#include <ncore/reference/cpu_ops.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {

// Source rows per pass: a [64, R] tile of R <= 128 (pmax) fp32 is 32 KiB,
// L1-resident while its columns are gathered.
inline constexpr int64_t kTransposeTile = 64;

// dst row f, element p = conv(src row p, element f) for the rows and columns
// [p0, p1) x [f0, f1), one fixed-size load and store per element.
template <class TS, class TD, class Conv>
void TransposeScalar(const View& dst, const View& src, int64_t p0, int64_t p1, int64_t f0,
                     int64_t f1, Conv conv) {
  for (int64_t f = f0; f < f1; ++f) {
    uint8_t* d = dst.row(int(f));
    for (int64_t p = p0; p < p1; ++p) {
      TS x;
      std::memcpy(&x, src.row(int(p)) + f * int64_t(sizeof(TS)), sizeof(TS));
      const TD y = conv(x);
      std::memcpy(d + p * int64_t(sizeof(TD)), &y, sizeof(TD));
    }
  }
}

#if HWY_TARGET != HWY_SCALAR
// Lanes x lanes register transpose of `T` (2 or 4 bytes) by 128-bit
// interleaves: rows of src at (p0 + i, f0 ..) become rows of dst at (f0 + j, p0 ..).
template <class T>
HWY_INLINE void TransposeTile(const View& dst, const View& src, int64_t p0, int64_t f0) {
  const hn::FixedTag<uint32_t, 4> d32;
  const hn::FixedTag<uint64_t, 2> d64;
  const auto lo64 = [&](auto a, auto b) {
    return hn::InterleaveLower(d64, hn::BitCast(d64, a), hn::BitCast(d64, b));
  };
  const auto hi64 = [&](auto a, auto b) {
    return hn::InterleaveUpper(d64, hn::BitCast(d64, a), hn::BitCast(d64, b));
  };
  const auto load = [&](auto d, int64_t i) {
    return hn::LoadU(d, reinterpret_cast<const T*>(src.row(int(p0 + i)) + f0 * int64_t(sizeof(T))));
  };
  const auto store = [&](auto v, int64_t j) {
    const hn::FixedTag<T, 16 / sizeof(T)> d;
    hn::StoreU(hn::BitCast(d, v), d, reinterpret_cast<T*>(dst.row(int(f0 + j)) + p0 * int64_t(sizeof(T))));
  };
  if constexpr (sizeof(T) == 4) {
    const auto r0 = load(d32, 0), r1 = load(d32, 1), r2 = load(d32, 2), r3 = load(d32, 3);
    const auto t0 = hn::InterleaveLower(d32, r0, r1), t1 = hn::InterleaveUpper(d32, r0, r1);
    const auto t2 = hn::InterleaveLower(d32, r2, r3), t3 = hn::InterleaveUpper(d32, r2, r3);
    store(lo64(t0, t2), 0);
    store(hi64(t0, t2), 1);
    store(lo64(t1, t3), 2);
    store(hi64(t1, t3), 3);
  } else {
    const hn::FixedTag<uint16_t, 8> d16;
    decltype(hn::Zero(d16)) r[8];
    for (int i = 0; i < 8; ++i) r[i] = load(d16, i);
    decltype(hn::Zero(d32)) t[8], u[8];
    for (int i = 0; i < 4; ++i) {  // pairs of rows, 16-bit interleave
      t[2 * i] = hn::BitCast(d32, hn::InterleaveLower(d16, r[2 * i], r[2 * i + 1]));
      t[2 * i + 1] = hn::BitCast(d32, hn::InterleaveUpper(d16, r[2 * i], r[2 * i + 1]));
    }
    for (int i = 0; i < 2; ++i)  // quads of rows, 32-bit interleave
      for (int h = 0; h < 2; ++h) {
        u[4 * i + 2 * h] = hn::InterleaveLower(d32, t[4 * i + h], t[4 * i + 2 + h]);
        u[4 * i + 2 * h + 1] = hn::InterleaveUpper(d32, t[4 * i + h], t[4 * i + 2 + h]);
      }
    for (int j = 0; j < 4; ++j) {  // all eight rows, 64-bit interleave: columns 2j, 2j + 1
      store(lo64(u[j], u[4 + j]), 2 * j);
      store(hi64(u[j], u[4 + j]), 2 * j + 1);
    }
  }
}
#endif

// dst row f, element p = src row p, element f as bits (T of 2 or 4 bytes),
// for rows that are single stride-1 runs: register tiles within cache blocks
// of two lines per row on each side (L1-resident on the arena's 224 KiB
// partition pitch); ragged edges element by element.
template <class T>
void TransposeBits(const View& dst, const View& src) {
  constexpr int64_t kBlock = 128 / int64_t(sizeof(T));
  const int64_t P = src.np, F = dst.np;
  const auto same = [](T x) { return x; };
#if HWY_TARGET != HWY_SCALAR
  constexpr int64_t kTile = 16 / int64_t(sizeof(T));
#else
  constexpr int64_t kTile = kBlock;  // no vectors: the block is the tile
#endif
  const int64_t pt = P / kTile * kTile, ft = F / kTile * kTile;
  for (int64_t p0 = 0; p0 < pt; p0 += kBlock)
    for (int64_t f0 = 0; f0 < ft; f0 += kBlock)
      for (int64_t p = p0; p < std::min(pt, p0 + kBlock); p += kTile)
        for (int64_t f = f0; f < std::min(ft, f0 + kBlock); f += kTile) {
#if HWY_TARGET != HWY_SCALAR
          TransposeTile<T>(dst, src, p, f);
#else
          TransposeScalar<T, T>(dst, src, p, std::min(pt, p + kTile), f, std::min(ft, f + kTile), same);
#endif
        }
  TransposeScalar<T, T>(dst, src, pt, P, 0, F, same);
  TransposeScalar<T, T>(dst, src, 0, pt, ft, F, same);
}

// The fast cases: contiguous rows and an element map that is exact without
// fp32 (bits of 2 or 4 bytes; f32 -> f32; bf16 -> bf16, whose round trip
// through fp32 only canonicalises NaNs to sign | 0x7FC0, as f32_to_bf16 does;
// bf16 -> f32, a shift). Returns false for everything else. The general path
// below gathers through a variable-size memcpy and an fp32 round trip, ~10x
// slower on the attention kernel's 128 x 128 bf16 P blocks.
inline bool TransposeFast(const View& dst, const View& src, bool bits) {
  if (!Walk::of(dst.ap).contiguous() || !Walk::of(src.ap).contiguous()) return false;
  const bool same_type = bits || dst.dtype == src.dtype;
  if (same_type && dtype_size(src.dtype) == 4 && (bits || src.dtype == DType::kF32)) {
    TransposeBits<uint32_t>(dst, src);
  } else if (same_type && dtype_size(src.dtype) == 2 && bits) {
    TransposeBits<uint16_t>(dst, src);
  } else if (src.dtype == DType::kBF16 && dst.dtype == DType::kBF16) {
    TransposeBits<uint16_t>(dst, src);
    const hn::ScalableTag<uint16_t> d;
    const auto abs = hn::Set(d, 0x7FFF), inf = hn::Set(d, 0x7F80), sign = hn::Set(d, 0x8000),
               qnan = hn::Set(d, 0x7FC0);
    const int64_t n = dst.ap.size(), lanes = int64_t(hn::Lanes(d));
    for (int p = 0; p < dst.np; ++p) {
      uint16_t* row = reinterpret_cast<uint16_t*>(dst.row(p));
      int64_t i = 0;
      for (; i + lanes <= n; i += lanes) {  // NaN: |h| > inf, as unsigned
        const auto h = hn::LoadU(d, row + i);
        const auto nan = hn::Lt(inf, hn::And(h, abs));
        hn::StoreU(hn::IfThenElse(nan, hn::Or(hn::And(h, sign), qnan), h), d, row + i);
      }
      for (; i < n; ++i)
        if ((row[i] & 0x7FFFu) > 0x7F80u) row[i] = uint16_t((row[i] & 0x8000u) | 0x7FC0u);
    }
  } else if (src.dtype == DType::kBF16 && dst.dtype == DType::kF32) {
    TransposeScalar<uint16_t, uint32_t>(dst, src, 0, src.np, 0, dst.np,
                                        [](uint16_t h) { return uint32_t(h) << 16; });
  } else {
    return false;
  }
  return true;
}

inline void Transpose(const View& dst, const View& src, bool bits) {
  if (TransposeFast(dst, src, bits)) return;
  const Stream d(dst), s(src);
  const int64_t rows = dst.np, esz = bits ? s.esz() : int64_t(sizeof(float));
  std::vector<uint8_t> tile(size_t(kTransposeTile * rows * esz));
  std::vector<uint8_t> col(size_t(kTransposeTile * esz));
  for (int64_t c0 = 0; c0 < src.np; c0 += kTransposeTile) {
    const int64_t cn = std::min(kTransposeTile, src.np - c0);
    for (int64_t c = 0; c < cn; ++c) {  // tile row c = src row c0 + c, elements [0, rows)
      uint8_t* t = tile.data() + c * rows * esz;
      if (bits) {
        s.ReadRaw(src.row(int(c0 + c)), 0, rows, t);
      } else {
        float* f = reinterpret_cast<float*>(t);
        const float* x = s.Read(int(c0 + c), 0, rows, f);
        if (x != f) std::memcpy(f, x, size_t(rows) * sizeof(float));
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cn; ++c)
        std::memcpy(col.data() + c * esz, tile.data() + (c * rows + r) * esz, size_t(esz));
      if (bits) {
        d.WriteRaw(dst.row(int(r)), c0, cn, col.data());
      } else {
        d.Write(int(r), c0, cn, reinterpret_cast<const float*>(col.data()));
      }
    }
  }
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
