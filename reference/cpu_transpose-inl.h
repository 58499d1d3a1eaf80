// Per-target transposes: the Tensor-engine transpose (dst[F, P] = src[P, F],
// values: decoded, then RNE to dst's dtype, as the interpreter does) and
// dma_transpose (dst[P, F] = src[F, P], bits). Both are
//   dst row r, element b F + c = src row c, element b P + r
// (r < P = dst.np, c < F = src.np), since dma_transpose's [F, P] HBM view
// resolves to F rows of P elements; B = 1 but for an SBUF dma_transpose of
// B blocks side by side (src [F, B P] -> dst [P, B F]).

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

// bf16 bits as the fp32 round trip leaves them: a NaN becomes sign | 0x7FC0
// (f32_to_bf16's canonical quiet NaN), everything else is unchanged.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V CanonicalBf16Nan(D d, V h) {
  const auto nan = hn::Lt(hn::Set(d, 0x7F80), hn::And(h, hn::Set(d, 0x7FFF)));  // |h| > inf
  return hn::IfThenElse(nan, hn::Or(hn::And(h, hn::Set(d, 0x8000)), hn::Set(d, 0x7FC0)), h);
}

#if HWY_TARGET != HWY_SCALAR
// Vectors of the register tiles: 32 bytes where the target has them (AVX2
// and up: half the shuffles per element of 16-byte tiles), else 16.
inline constexpr size_t kTileVectorBytes = HWY_MAX_BYTES >= 32 ? 32 : 16;

// The transpose network within each 16-byte block of N = 16 / sizeof(T)
// vectors: block j of output i holds element i of block j of every input
// (16-bit interleave, then 32-, then 64-bit, Highway's per-block ops).
template <class T, class D>
HWY_INLINE void TransposeBlocks(D d, hn::Vec<D>* v) {
  const hn::Repartition<uint32_t, D> d32;
  const hn::Repartition<uint64_t, D> d64;
  const auto lo64 = [&](auto a, auto b) {
    return hn::BitCast(d, hn::InterleaveLower(d64, hn::BitCast(d64, a), hn::BitCast(d64, b)));
  };
  const auto hi64 = [&](auto a, auto b) {
    return hn::BitCast(d, hn::InterleaveUpper(d64, hn::BitCast(d64, a), hn::BitCast(d64, b)));
  };
  if constexpr (sizeof(T) == 4) {
    const auto t0 = hn::InterleaveLower(d32, hn::BitCast(d32, v[0]), hn::BitCast(d32, v[1]));
    const auto t1 = hn::InterleaveUpper(d32, hn::BitCast(d32, v[0]), hn::BitCast(d32, v[1]));
    const auto t2 = hn::InterleaveLower(d32, hn::BitCast(d32, v[2]), hn::BitCast(d32, v[3]));
    const auto t3 = hn::InterleaveUpper(d32, hn::BitCast(d32, v[2]), hn::BitCast(d32, v[3]));
    v[0] = lo64(t0, t2);
    v[1] = hi64(t0, t2);
    v[2] = lo64(t1, t3);
    v[3] = hi64(t1, t3);
  } else {
    hn::Vec<decltype(d32)> t[8], u[8];
    for (int i = 0; i < 4; ++i) {  // pairs of rows, 16-bit interleave
      t[2 * i] = hn::BitCast(d32, hn::InterleaveLower(d, v[2 * i], v[2 * i + 1]));
      t[2 * i + 1] = hn::BitCast(d32, hn::InterleaveUpper(d, v[2 * i], v[2 * i + 1]));
    }
    for (int i = 0; i < 2; ++i)  // quads of rows, 32-bit interleave
      for (int h = 0; h < 2; ++h) {
        u[4 * i + 2 * h] = hn::InterleaveLower(d32, t[4 * i + h], t[4 * i + 2 + h]);
        u[4 * i + 2 * h + 1] = hn::InterleaveUpper(d32, t[4 * i + h], t[4 * i + 2 + h]);
      }
    for (int j = 0; j < 4; ++j) {  // all eight rows, 64-bit interleave: columns 2j, 2j + 1
      v[2 * j] = lo64(u[j], u[4 + j]);
      v[2 * j + 1] = hi64(u[j], u[4 + j]);
    }
  }
}

// An L x L register transpose of T (2 or 4 bytes; L lanes per tile vector):
// src rows p0 + i, elements f0 .. become dst rows f0 + j, elements p0 ...
// With two 16-byte blocks per vector, the per-block network runs on the top
// and bottom halves of the rows and ConcatLowerLower/UpperUpper pair the
// results. `canonical` applies CanonicalBf16Nan to the stored lanes.
// The pitches are locals: read through the Views, they were reloaded after
// every store (which might alias them), ~9% of a [128, 512] bf16 transpose.
template <class T>
HWY_INLINE void TransposeTile(const View& dst, const View& src, int64_t p0, int64_t f0,
                              bool canonical) {
  const hn::FixedTag<T, kTileVectorBytes / sizeof(T)> d;
  constexpr size_t L = kTileVectorBytes / sizeof(T), N = 16 / sizeof(T);  // N rows per block network
  hn::Vec<decltype(d)> v[L];
  const int64_t src_pitch = src.pitch, dst_pitch = dst.pitch;
  const uint8_t* s = src.base + p0 * src_pitch + f0 * int64_t(sizeof(T));
  for (size_t i = 0; i < L; ++i, s += src_pitch) v[i] = hn::LoadU(d, reinterpret_cast<const T*>(s));
  for (size_t i = 0; i < L; i += N) TransposeBlocks<T>(d, v + i);
  uint8_t* const out = dst.base + f0 * dst_pitch + p0 * int64_t(sizeof(T));
  auto store = [&](hn::Vec<decltype(d)> x, size_t j) {
    if constexpr (sizeof(T) == 2)
      if (canonical) x = CanonicalBf16Nan(d, x);
    hn::StoreU(x, d, reinterpret_cast<T*>(out + int64_t(j) * dst_pitch));
  };
  if constexpr (L == N) {
    for (size_t j = 0; j < L; ++j) store(v[j], j);
  } else {
    for (size_t j = 0; j < N; ++j) {
      store(hn::ConcatLowerLower(d, v[N + j], v[j]), j);
      store(hn::ConcatUpperUpper(d, v[N + j], v[j]), N + j);
    }
  }
}
#endif

// dst row f, element p = src row p, element f as bits (T of 2 or 4 bytes),
// or with bf16 NaNs canonicalised, for rows that are single stride-1 runs:
// register tiles within cache blocks of two lines per row on each side
// (L1-resident on the arena's 224 KiB partition pitch); ragged edges element
// by element.
template <class T>
void TransposeBits(const View& dst, const View& src, bool canonical) {
  constexpr int64_t kBlock = 128 / int64_t(sizeof(T));
  const int64_t P = src.np, F = dst.np;
  const auto edge = [canonical](T x) {
    if constexpr (sizeof(T) == 2) {
      if (canonical && (x & 0x7FFFu) > 0x7F80u) return T((x & 0x8000u) | 0x7FC0u);
    }
    return x;
  };
#if HWY_TARGET != HWY_SCALAR
  constexpr int64_t kTile = int64_t(kTileVectorBytes / sizeof(T));
#else
  constexpr int64_t kTile = kBlock;  // no vectors: the block is the tile
#endif
  const int64_t pt = P / kTile * kTile, ft = F / kTile * kTile;
  for (int64_t p0 = 0; p0 < pt; p0 += kBlock)
    for (int64_t f0 = 0; f0 < ft; f0 += kBlock)
      for (int64_t p = p0; p < std::min(pt, p0 + kBlock); p += kTile)
        for (int64_t f = f0; f < std::min(ft, f0 + kBlock); f += kTile) {
#if HWY_TARGET != HWY_SCALAR
          TransposeTile<T>(dst, src, p, f, canonical);
#else
          TransposeScalar<T, T>(dst, src, p, std::min(pt, p + kTile), f, std::min(ft, f + kTile), edge);
#endif
        }
  TransposeScalar<T, T>(dst, src, pt, P, 0, F, edge);
  TransposeScalar<T, T>(dst, src, 0, pt, ft, F, edge);
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
    TransposeBits<uint32_t>(dst, src, false);
  } else if (same_type && dtype_size(src.dtype) == 2 && (bits || src.dtype == DType::kBF16)) {
    TransposeBits<uint16_t>(dst, src, !bits);
  } else if (src.dtype == DType::kBF16 && dst.dtype == DType::kF32) {
    TransposeScalar<uint16_t, uint32_t>(dst, src, 0, src.np, 0, dst.np,
                                        [](uint16_t h) { return uint32_t(h) << 16; });
  } else {
    return false;
  }
  return true;
}

// Block b of a batched transpose: src elements [b P, (b + 1) P) of every
// row, dst elements [b F, (b + 1) F); contiguous rows only.
inline View Block(const View& v, int64_t b, int64_t n) {
  View r = v;
  r.base += b * n * dtype_size(v.dtype);
  r.ap = AccessPattern::dense({n});
  return r;
}

inline void Transpose(const View& dst, const View& src, bool bits) {
  const int64_t P = dst.np, F = src.np, B = src.ap.size() / P;
  if (B == 1 && TransposeFast(dst, src, bits)) return;
  if (B > 1 && Walk::of(dst.ap).contiguous() && Walk::of(src.ap).contiguous()) {
    bool fast = true;
    for (int64_t b = 0; b < B && fast; ++b) fast = TransposeFast(Block(dst, b, F), Block(src, b, P), bits);
    if (fast) return;  // every block or none: the same dtypes
  }
  const Stream d(dst), s(src);
  const int64_t esz = bits ? s.esz() : int64_t(sizeof(float));
  std::vector<uint8_t> tile(size_t(kTransposeTile * P * esz));
  std::vector<uint8_t> col(size_t(kTransposeTile * esz));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c0 = 0; c0 < F; c0 += kTransposeTile) {
      const int64_t cn = std::min(kTransposeTile, F - c0);
      for (int64_t c = 0; c < cn; ++c) {  // tile row c = src row c0 + c, elements [b P, b P + P)
        uint8_t* t = tile.data() + c * P * esz;
        if (bits) {
          s.ReadRaw(src.row(int(c0 + c)), b * P, P, t);
        } else {
          float* f = reinterpret_cast<float*>(t);
          const float* x = s.Read(int(c0 + c), b * P, P, f);
          if (x != f) std::memcpy(f, x, size_t(P) * sizeof(float));
        }
      }
      for (int64_t r = 0; r < P; ++r) {
        for (int64_t c = 0; c < cn; ++c)
          std::memcpy(col.data() + c * esz, tile.data() + (c * P + r) * esz, size_t(esz));
        if (bits) {
          d.WriteRaw(dst.row(int(r)), b * F + c0, cn, col.data());
        } else {
          d.Write(int(r), b * F + c0, cn, reinterpret_cast<const float*>(col.data()));
        }
      }
    }
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
