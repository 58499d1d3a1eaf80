// The matmul instruction on the CPU:
//   dst[M, N] (+)= stationary[K, M]^T @ moving[K, N], accumulated in fp32.
//
// It is computed as C[a, b] = sum_k A[k, a] * B[k, b], where A is the operand
// whose values are broadcast and B the one loaded as vectors: normally
// A = stationary and B = moving (C = dst); when N is shorter than a vector
// and the swap wastes fewer lanes, the roles swap (A = moving, B = stationary,
// C = dst^T), so a matrix-vector product (N = 1) still fills the vectors.
//
// Algorithm (an outer-product, register-blocked micro-kernel):
//   - A is broadcast in place when fp32, else decoded once per call into
//     packed fp32 rows [K][a].
//   - B is walked in panels of kNrv vectors of columns, outermost, so one
//     panel ([K, kNrv x lanes] fp32, <= 16 KiB) stays in L1 while every block
//     of kMr rows of A runs over it. fp32 panels are read in place; others
//     (and the partial last panel) are decoded into a zero-padded buffer.
//   - The micro-kernel keeps C[kMr, kNrv vectors] in registers for all of K
//     (K <= 128), so C is loaded and stored once per instruction: per k it
//     broadcasts kMr values of A and FMAs them with kNrv vectors of B.
//   - bf16 and fp8 (any mix of them) take the AVX512-BF16 path
//     (matmul_avx512bf16.cc: vdpbf16ps on k-pairs, same blocking) when the
//     CPU has it, the dispatched Highway target is AVX-512 and
//     set_bf16_path(kPortable) is not in force; f16, fp32 and every other
//     target use the portable path here.
// Views whose free pattern is not one contiguous, naturally aligned run are
// first gathered into packed buffers (dst: computed into one and scattered):
// the generic path, correct for any access pattern.
//
// Numerics: products of the narrow types are exact in fp32, and each of the K
// additions (FMA; mul + add on targets without FMA, where fp32 products add
// one rounding) rounds to nearest even, in whatever order the blocking
// chooses, so
//   |C - exact| <= gamma_K * sum_k |A[k,a]| |B[k,b]|,  gamma_K = K u / (1 - K u),
// u = 2^-24. accumulate computes dst + C: one more rounding (gamma_{K+1},
// |dst| added to the sum). vdpbf16ps also flushes subnormals; its extra term
// is in matmul_avx512bf16.cc.

#ifndef NCORE_REFERENCE_MATMUL_SHARED_
#define NCORE_REFERENCE_MATMUL_SHARED_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <ncore/isa/error.h>
#include <ncore/isa/numerics.h>
#include <ncore/reference/cpu_ops.h>
#include <ncore/reference/encode_avx512bf16.h>
#include <ncore/reference/matmul_avx512bf16.h>

namespace ncore::cpu::matmul_detail {

// One input operand ready for the kernels: row k at base + k * pitch bytes
// holds `count` contiguous, naturally aligned elements of `dtype`.
struct Rows {
  const uint8_t* base;
  int64_t pitch;
  DType dtype;
  int count;

  const uint8_t* row(int k) const { return base + k * pitch; }
};

// A whole instruction on packed operands, as C = A^T B.
struct Problem {
  F32Out out;  // C
  Rows a, b;   // A [K, a] broadcast, B [K, b] vectorized
  int k;
  bool bf16_intrinsics;  // the AVX512-BF16 path is allowed (CPU has it, not forced off)
};

}  // namespace ncore::cpu::matmul_detail

#endif  // NCORE_REFERENCE_MATMUL_SHARED_

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ncore/reference/matmul.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::matmul_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Register blocking. The accumulators C[kMr][kNrv] plus kNrv vectors of B and
// one broadcast of A must fit the register file: AVX-512 has 32 vector
// registers, AVX2 and SSE 16. Shapes chosen by measurement on Zen 4
// (bench/matmul_bench.cc, [128, 128] x [128, 512] fp32): on AVX-512, 8 x 2,
// 12 x 2, 6 x 4, 8 x 3 and 16 x 1 are within noise (~97% of peak); 8 x 2
// divides M = 128 and N = 512 exactly, so the full instruction has no tails.
// With 16 registers (measured on AVX2; SSE4 has as many) 4 x 3, all 16 used,
// beats 6 x 2, 5 x 2 and 4 x 2 by 9-28%.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kMr = 8;
constexpr size_t kNrv = 2;
#else
constexpr size_t kMr = 4;
constexpr size_t kNrv = 3;
#endif

// Independent FMA chains needed to hide latency: FMA latency 4 x up to 2
// vector FMAs per cycle (Zen 4/5, Ice Lake). Blocks with fewer accumulators
// (tails, M = 1, N = 1) split K into kMinChains / (rows x vectors), at most
// kMaxSplitK, interleaved partial sums (measured: 3-4% on M = 1 and N = 1,
// which are bound by L2 bandwidth).
constexpr size_t kMinChains = 8;
constexpr size_t kMaxSplitK = 4;

// ---------------------------------------------------------------------------
// Decoding to fp32.

// f16 codes -> f32, every code exact (subnormals, inf, NaN). Targets with F16C
// (AVX2 and up) convert in hardware; Highway 1.0.3's emulation for the others
// turns inf and NaN into finite values, so they use this integer version: the
// magnitude shifted into f32 position is the value * 2^-112 (biases 15 vs
// 127), exact for normals and subnormals alike, and exponent 31 maps to 255.
template <class D>  // D: fp32 lanes; h: as many 16-bit lanes
HWY_INLINE hn::Vec<D> PromoteF16(D df, hn::Vec<hn::Rebind<uint16_t, D>> h) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, D>(), h));
#else
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto bits = hn::PromoteTo(du, h);
  const auto mag = hn::And(bits, hn::Set(du, 0x7FFFu));
  const auto shifted = hn::ShiftLeft<13>(mag);
  const auto finite = hn::Mul(hn::BitCast(df, shifted), hn::Set(df, 0x1p112f));
  const auto is_special = hn::RebindMask(du, hn::Gt(hn::BitCast(di, mag), hn::Set(di, 0x7BFF)));
  const auto out = hn::IfThenElse(is_special, hn::Or(shifted, hn::Set(du, 0x7F800000u)),
                                  hn::BitCast(du, finite));
  return hn::BitCast(df, hn::Or(out, hn::ShiftLeft<16>(hn::And(bits, hn::Set(du, 0x8000u)))));
#endif
}

// fp8 -> f32 by way of f16: e5m2 is f16's upper byte; e4m3's 7 magnitude
// bits shifted into an f16 give the value * 2^-8 (bias 7 vs 15), exact, with
// e4m3's exponent-15 codes (inf 0x78, NaN above) fixed up after.
template <class D>  // D: fp32 lanes, one per fp8 code at p
HWY_INLINE hn::Vec<D> DecodeFp8(D df, DType t, const uint8_t* p) {
  const hn::Rebind<uint8_t, D> d8;
  const hn::Rebind<uint16_t, D> d16;
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto b16 = hn::PromoteTo(d16, hn::LoadU(d8, p));
  if (t == DType::kFP8E5M2) return PromoteF16(df, hn::ShiftLeft<8>(b16));
  constexpr uint32_t kE4M3Inf = 0x78;  // S.1111.000; S.1111.xxx (xxx != 0) is NaN
  const auto mag16 = hn::And(b16, hn::Set(d16, 0x7F));
  const auto scaled = hn::Mul(PromoteF16(df, hn::ShiftLeft<7>(mag16)), hn::Set(df, 256.0f));
  const auto mag = hn::BitCast(di, hn::PromoteTo(du, mag16));
  const auto special = hn::IfThenElse(hn::RebindMask(du, hn::Eq(mag, hn::Set(di, kE4M3Inf))),
                                      hn::Set(du, 0x7F800000u), hn::Set(du, 0x7FC00000u));
  const auto bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(mag, hn::Set(di, kE4M3Inf - 1))),
                                   special, hn::BitCast(du, scaled));
  const auto sign = hn::ShiftLeft<24>(hn::And(hn::PromoteTo(du, b16), hn::Set(du, 0x80u)));
  return hn::BitCast(df, hn::Or(bits, sign));
}

// Decodes `rows` rows of n elements (row r at src + r * pitch bytes) into
// fp32 rows of `padded` floats at dst + r * ld, zero beyond n; padded is n or
// n rounded up to whole vectors. load(d, p) decodes the lanes of descriptor d
// from p. A row's tail (< lanes) goes element by element: scalar decoding for
// the dtypes where that is one load, one-lane vectors for f16 (whose scalar
// decoding costs more than the kernel on short rows). Loops here are written
// so GCC does not turn them into memcpy/memset calls, which cost more than
// they save on rows this short. Instantiated per dtype: no per-element
// dispatch.
template <DType kType, class Load>
HWY_INLINE void DecodeRowsWith(Load load, const uint8_t* HWY_RESTRICT src, int64_t pitch,
                               size_t rows, size_t n, float* HWY_RESTRICT dst, size_t ld,
                               size_t padded) {
  const DF df;
  const hn::CappedTag<float, 1> d1;
  const size_t L = hn::Lanes(df);
  constexpr size_t kSize = size_t(dtype_size(kType));
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* HWY_RESTRICT s = src + int64_t(r) * pitch;
    float* HWY_RESTRICT d = dst + r * ld;
    size_t i = 0;
    for (; i + L <= n; i += L) hn::StoreU(load(df, s + i * kSize), df, d + i);
    if (padded > n) hn::StoreU(hn::Zero(df), df, d + padded - L);  // the tail's vector
    for (; i < n; ++i) {
      if constexpr (kType == DType::kF16) {
        hn::StoreU(load(d1, s + i * kSize), d1, d + i);
      } else {
        d[i] = decode(kType, s + i * kSize);
      }
    }
  }
}

HWY_NOINLINE void DecodeRows(DType t, const uint8_t* HWY_RESTRICT src, int64_t pitch, size_t rows,
                             size_t n, float* HWY_RESTRICT dst, size_t ld, size_t padded) {
  switch (t) {
    case DType::kF32:
      return DecodeRowsWith<DType::kF32>(
          [](auto d, const uint8_t* p) { return hn::LoadU(d, reinterpret_cast<const float*>(p)); },
          src, pitch, rows, n, dst, ld, padded);
    case DType::kBF16:
      return DecodeRowsWith<DType::kBF16>(
          [](auto d, const uint8_t* p) {
            const hn::Rebind<hwy::bfloat16_t, decltype(d)> dh;
            return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(p)));
          },
          src, pitch, rows, n, dst, ld, padded);
    case DType::kF16:
      return DecodeRowsWith<DType::kF16>(
          [](auto d, const uint8_t* p) {
            const hn::Rebind<uint16_t, decltype(d)> d16;
            return PromoteF16(d, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p)));
          },
          src, pitch, rows, n, dst, ld, padded);
    case DType::kFP8E4M3:
      return DecodeRowsWith<DType::kFP8E4M3>(
          [](auto d, const uint8_t* p) { return DecodeFp8(d, DType::kFP8E4M3, p); }, src, pitch,
          rows, n, dst, ld, padded);
    case DType::kFP8E5M2:
      return DecodeRowsWith<DType::kFP8E5M2>(
          [](auto d, const uint8_t* p) { return DecodeFp8(d, DType::kFP8E5M2, p); }, src, pitch,
          rows, n, dst, ld, padded);
    case DType::kI32:
      break;  // rejected by matmul()
  }
}

// ---------------------------------------------------------------------------
// The micro-kernel: c[i][j] (+)= sum_k a[k * lda + i] * b[k * ldb + j]
// for i < Mr, j < Nrv * lanes; c row i at c + i * ldc.

template <size_t Mr, size_t Nrv>
HWY_NOINLINE void Kernel(const float* HWY_RESTRICT a, size_t lda, const float* HWY_RESTRICT b,
                         size_t ldb, size_t k_count, float* HWY_RESTRICT c, size_t ldc,
                         bool add) {
  constexpr size_t kSplit = std::clamp<size_t>((kMinChains + Mr * Nrv - 1) / (Mr * Nrv), 1,
                                               kMaxSplitK);
  const DF df;
  const size_t L = hn::Lanes(df);
  // Plain fully unrolled loops (not lambdas, which GCC may not inline) so the
  // accumulator array lives in registers.
  VF acc[kSplit][Mr][Nrv];
  HWY_UNROLL(4)
  for (size_t s = 0; s < kSplit; ++s) {
    HWY_UNROLL(16)
    for (size_t i = 0; i < Mr; ++i) {
      HWY_UNROLL(4)
      for (size_t j = 0; j < Nrv; ++j) acc[s][i][j] = hn::Zero(df);
    }
  }
  size_t k = 0;
  for (; k + kSplit <= k_count; k += kSplit) {
    HWY_UNROLL(4)
    for (size_t s = 0; s < kSplit; ++s) {
      const float* HWY_RESTRICT bk = b + (k + s) * ldb;
      const float* HWY_RESTRICT ak = a + (k + s) * lda;
      VF bv[Nrv];
      HWY_UNROLL(4)
      for (size_t j = 0; j < Nrv; ++j) bv[j] = hn::LoadU(df, bk + j * L);
      HWY_UNROLL(16)
      for (size_t i = 0; i < Mr; ++i) {
        const VF ai = hn::Set(df, ak[i]);
        HWY_UNROLL(4)
        for (size_t j = 0; j < Nrv; ++j) acc[s][i][j] = hn::MulAdd(ai, bv[j], acc[s][i][j]);
      }
    }
  }
  for (; k < k_count; ++k) {
    const float* HWY_RESTRICT bk = b + k * ldb;
    const float* HWY_RESTRICT ak = a + k * lda;
    HWY_UNROLL(16)
    for (size_t i = 0; i < Mr; ++i) {
      const VF ai = hn::Set(df, ak[i]);
      HWY_UNROLL(4)
      for (size_t j = 0; j < Nrv; ++j)
        acc[0][i][j] = hn::MulAdd(ai, hn::LoadU(df, bk + j * L), acc[0][i][j]);
    }
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < Mr; ++i) {
    HWY_UNROLL(4)
    for (size_t j = 0; j < Nrv; ++j) {
      VF sum = acc[0][i][j];
      HWY_UNROLL(4)
      for (size_t s = 1; s < kSplit; ++s) sum = hn::Add(sum, acc[s][i][j]);
      float* HWY_RESTRICT ci = c + i * ldc + j * L;
      if (add) sum = hn::Add(hn::LoadU(df, ci), sum);
      hn::StoreU(sum, df, ci);
    }
  }
}

using KernelFn = void (*)(const float*, size_t, const float*, size_t, size_t, float*, size_t, bool);

// kKernels[mr - 1][nrv - 1]: every tail shape of a block.
template <size_t... I>
constexpr auto MakeKernelTable(std::index_sequence<I...>) {
  return std::array<KernelFn, sizeof...(I)>{&Kernel<I / kNrv + 1, I % kNrv + 1>...};
}
const auto kKernels = MakeKernelTable(std::make_index_sequence<kMr * kNrv>{});

KernelFn kernel_for(size_t mr, size_t nrv) { return kKernels[(mr - 1) * kNrv + (nrv - 1)]; }

// ---------------------------------------------------------------------------
// Scratch: per thread (SPMD grids run one core per thread), grown on demand.

float* Scratch(hwy::AlignedFreeUniquePtr<float[]>& buf, size_t& cap, size_t n) {
  if (cap < n) {
    buf = hwy::AllocateAligned<float>(n);
    if (!buf) throw std::bad_alloc();
    cap = n;
  }
  return buf.get();
}

// Adds or copies the valid [rows, cols] corner of a kernel tile into C.
void StoreTile(const float* tile, size_t ldt, size_t rows, size_t cols, size_t a0, size_t b0,
               const F32Out& out) {
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const size_t r = out.transposed ? b0 + j : a0 + i;
      const size_t col = out.transposed ? a0 + i : b0 + j;
      float* d = reinterpret_cast<float*>(out.base + int64_t(r) * out.pitch) + col;
      *d = out.accumulate ? *d + tile[i * ldt + j] : tile[i * ldt + j];
    }
  }
}

void MatmulPortable(const Problem& p) {
  const DF df;
  const size_t L = hn::Lanes(df);
  const size_t K = size_t(p.k), na = size_t(p.a.count), nb = size_t(p.b.count);

  // A [K][na] fp32, packed once.
  thread_local hwy::AlignedFreeUniquePtr<float[]> a_buf, b_buf;
  thread_local size_t a_cap = 0, b_cap = 0;
  const float* a;
  size_t lda;
  if (p.a.dtype == DType::kF32) {  // broadcast in place
    a = reinterpret_cast<const float*>(p.a.base);
    lda = size_t(p.a.pitch) / sizeof(float);
  } else {
    float* packed_a = Scratch(a_buf, a_cap, K * na);
    DecodeRows(p.a.dtype, p.a.base, p.a.pitch, K, na, packed_a, na, na);
    a = packed_a;
    lda = na;
  }

  const size_t panel = kNrv * L;  // columns of B per panel
  float* packed = Scratch(b_buf, b_cap, K * panel);
  alignas(64) float tile[kMr * kNrv * hn::MaxLanes(df)];
  const bool b_in_place = p.b.dtype == DType::kF32;
  for (size_t b0 = 0; b0 < nb; b0 += panel) {
    const size_t cols = std::min(panel, nb - b0);
    const size_t nrv = (cols + L - 1) / L;
    const bool full = cols == nrv * L;
    const float* b;
    size_t ldb;
    if (b_in_place && full) {
      b = reinterpret_cast<const float*>(p.b.base) + b0;
      ldb = size_t(p.b.pitch) / sizeof(float);
    } else {
      const size_t esize = size_t(dtype_size(p.b.dtype));
      DecodeRows(p.b.dtype, p.b.base + b0 * esize, p.b.pitch, K, cols, packed, panel, nrv * L);
      b = packed;
      ldb = panel;
    }
    const bool direct = full && !p.out.transposed;
    for (size_t a0 = 0; a0 < na; a0 += kMr) {
      const size_t mr = std::min(kMr, na - a0);
      if (direct) {
        float* c = reinterpret_cast<float*>(p.out.base + int64_t(a0) * p.out.pitch) + b0;
        kernel_for(mr, nrv)(a + a0, lda, b, ldb, K, c, size_t(p.out.pitch) / sizeof(float),
                            p.out.accumulate);
      } else {
        kernel_for(mr, nrv)(a + a0, lda, b, ldb, K, tile, panel, false);
        StoreTile(tile, panel, mr, cols, a0, b0, p.out);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The AVX512-BF16 path takes bf16 rows; fp8 operands are widened to bf16 first
// (exact: e4m3 and e5m2 values are all bf16 values, normal ones included).

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr bool kHasBf16Path = true;

// bf16 codes of the 256 codes of an fp8 type (exact), for row tails.
template <DType kType>
constexpr std::array<uint16_t, 256> kFp8ToBf16 = [] {
  std::array<uint16_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const uint8_t code = uint8_t(c);
    t[size_t(c)] = f32_to_bf16(kType == DType::kFP8E4M3 ? fp8_e4m3_to_f32(code)
                                                        : fp8_e5m2_to_f32(code));
  }
  return t;
}();

// fp8 rows [K][count] -> contiguous bf16 rows at dst (bits: the f32 bits' top
// half, exact here).
template <DType kType>
HWY_NOINLINE void Fp8RowsToBf16(const Rows& r, int K, uint16_t* HWY_RESTRICT dst) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t L = hn::Lanes(df), n = size_t(r.count);
  for (int k = 0; k < K; ++k) {
    const uint8_t* HWY_RESTRICT src = r.row(k);
    uint16_t* HWY_RESTRICT row = dst + size_t(k) * n;
    size_t i = 0;
    for (; i + L <= n; i += L) {
      const auto bits = hn::ShiftRight<16>(hn::BitCast(di, DecodeFp8(df, kType, src + i)));
      hn::StoreU(hn::DemoteTo(d16, hn::And(bits, hn::Set(di, 0xFFFF))), d16, row + i);
    }
    for (; i < n; ++i) row[i] = kFp8ToBf16<kType>[src[i]];
  }
}

// Rows of bf16 or fp8 as bf16 rows: in place, or widened into `buf`.
Bf16Rows ToBf16(const Rows& r, int K, hwy::AlignedFreeUniquePtr<uint16_t[]>& buf, size_t& cap) {
  if (r.dtype == DType::kBF16) return {reinterpret_cast<const uint16_t*>(r.base), r.pitch, r.count};
  const size_t n = size_t(r.count);
  if (cap < size_t(K) * n) {
    buf = hwy::AllocateAligned<uint16_t>(size_t(K) * n);
    if (!buf) throw std::bad_alloc();
    cap = size_t(K) * n;
  }
  if (r.dtype == DType::kFP8E4M3) {
    Fp8RowsToBf16<DType::kFP8E4M3>(r, K, buf.get());
  } else {
    Fp8RowsToBf16<DType::kFP8E5M2>(r, K, buf.get());
  }
  return {buf.get(), int64_t(n * sizeof(uint16_t)), r.count};
}

bool UseBf16Path(const Problem& p) {
  auto ok = [](DType t) {
    return t == DType::kBF16 || t == DType::kFP8E4M3 || t == DType::kFP8E5M2;
  };
  return p.bf16_intrinsics && ok(p.a.dtype) && ok(p.b.dtype);
}

void MatmulBf16(const Problem& p) {
  thread_local hwy::AlignedFreeUniquePtr<uint16_t[]> a_buf, b_buf;
  thread_local size_t a_cap = 0, b_cap = 0;
  matmul_avx512bf16(p.out, ToBf16(p.a, p.k, a_buf, a_cap), ToBf16(p.b, p.k, b_buf, b_cap), p.k);
}
#else
constexpr bool kHasBf16Path = false;
#endif

// Computes p with the roles of A and B swapped (C transposed) when B is a
// single partial vector of `lanes` and the swap wastes fewer lanes.
void MatmulOriented(Problem p, size_t lanes) {
  const size_t na = size_t(p.a.count), nb = size_t(p.b.count);
  auto round_up = [lanes](size_t n) { return (n + lanes - 1) / lanes * lanes; };
  if (nb < lanes && nb * round_up(na) < na * round_up(nb)) {
    std::swap(p.a, p.b);
    p.out.transposed = !p.out.transposed;
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (UseBf16Path(p)) return MatmulBf16(p);
#endif
  MatmulPortable(p);
}

void MatmulContiguous(const Problem& p) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  constexpr size_t kBf16Lanes = 16;  // fp32 lanes of the vdpbf16ps path's zmm
  if (UseBf16Path(p)) return MatmulOriented(p, kBf16Lanes);
#endif
  MatmulOriented(p, hn::Lanes(DF()));
}

int64_t DispatchedTarget() { return HWY_TARGET; }
bool TargetHasBf16Path() { return kHasBf16Path; }

}  // namespace HWY_NAMESPACE
}  // namespace ncore::cpu::matmul_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ncore::cpu {
namespace matmul_detail {

HWY_EXPORT(MatmulContiguous);
HWY_EXPORT(DispatchedTarget);
HWY_EXPORT(TargetHasBf16Path);

// Instruction limits, the largest across targets (facts §2): pmax,
// gemm_stationary_fmax and gemm_moving_fmax (= one PSUM bank of fp32). The
// AVX512-BF16 path's stack buffers rely on them.
constexpr int kMaxK = 128;
constexpr int kMaxM = 128;
constexpr int kMaxN = 512;

std::atomic<Bf16Path> g_bf16_path{Bf16Path::kAuto};

bool bf16_intrinsics_allowed() {
  static const bool cpu_has = __builtin_cpu_supports("avx512bf16");
  return cpu_has && g_bf16_path.load(std::memory_order_relaxed) == Bf16Path::kAuto;
}

// The kernels need each row contiguous and naturally aligned; anything else
// is gathered by the generic path.
bool is_packed(const View& v) {
  const int64_t esize = dtype_size(v.dtype);
  return v.ap.contiguous() && reinterpret_cast<uintptr_t>(v.base) % esize == 0 &&
         v.pitch % esize == 0;
}

// Copies the view's elements into a packed [np, count] buffer.
Rows gather(const View& v, std::vector<uint8_t>& buf) {
  const int64_t esize = dtype_size(v.dtype), count = v.ap.size();
  buf.resize(size_t(v.np * count * esize));
  uint8_t* out = buf.data();
  for (int p = 0; p < v.np; ++p) {
    const uint8_t* row = v.row(p);
    v.ap.for_each([&](int64_t off) {
      std::memcpy(out, row + off * esize, size_t(esize));
      out += esize;
    });
  }
  return {buf.data(), count * esize, v.dtype, int(count)};
}

Rows rows_of(const View& v) { return {v.base, v.pitch, v.dtype, int(v.ap.size())}; }

// The message is built only on failure: validation runs on every call.
template <class Message>
void check(bool ok, const char* operand, Message&& message) {
  if (!ok) throw Error("matmul", operand, message());
}

void validate(const View& dst, const View& st, const View& mv) {
  const View* views[] = {&dst, &st, &mv};
  const char* names[] = {"dst", "stationary", "moving"};
  for (int i = 0; i < 3; ++i) {
    const View& v = *views[i];
    check(!v.empty(), names[i], [] { return std::string("is missing"); });
    check(v.np >= 1, names[i], [&] { return cat("needs >= 1 partition, got ", v.np); });
    check(v.ap.ndim >= 1 && v.ap.ndim <= kMaxDims, names[i],
          [] { return std::string("needs a non-empty free access pattern"); });
    // Each dim within [1, kMaxN] also keeps the products below from overflowing.
    for (int d = 0; d < v.ap.ndim; ++d) {
      check(v.ap.shape[d] >= 1 && v.ap.shape[d] <= kMaxN, names[i], [&] {
        return cat("free dim ", d, " has size ", v.ap.shape[d], ", outside [1, ", kMaxN, "]");
      });
      check(v.ap.stride[d] >= 0, names[i],
            [&] { return cat("stride ", v.ap.stride[d], " is negative"); });
    }
  }
  check(dst.dtype == DType::kF32, "dst", [&] {
    return cat("must be f32 (PSUM accumulates in fp32), got ", dtype_name(dst.dtype));
  });
  for (int i = 1; i < 3; ++i)
    check(views[i]->dtype != DType::kI32, names[i],
          [] { return std::string("integer matmul is not supported"); });
  check((st.dtype == DType::kF32) == (mv.dtype == DType::kF32), "moving", [&] {
    return cat("fp32 pairs only with fp32: stationary ", dtype_name(st.dtype), ", moving ",
               dtype_name(mv.dtype));
  });
  check(st.np == mv.np, "moving", [&] {
    return cat("contraction (partition) size ", mv.np, " differs from stationary's ", st.np);
  });
  check(st.np <= kMaxK, "stationary",
        [&] { return cat("partition count ", st.np, " exceeds ", kMaxK); });
  check(st.ap.size() <= kMaxM, "stationary",
        [&] { return cat("free size ", st.ap.size(), " exceeds ", kMaxM); });
  check(mv.ap.size() <= kMaxN, "moving",
        [&] { return cat("free size ", mv.ap.size(), " exceeds ", kMaxN); });
  check(dst.np == st.ap.size(), "dst", [&] {
    return cat("has ", dst.np, " partitions, stationary free size is ", st.ap.size());
  });
  check(dst.ap.size() == mv.ap.size(), "dst", [&] {
    return cat("free size ", dst.ap.size(), " differs from moving's ", mv.ap.size());
  });
}

}  // namespace matmul_detail

bool encode_detail::avx512bf16_encode_allowed() { return matmul_detail::bf16_intrinsics_allowed(); }

void matmul(const View& dst, const View& stationary, const View& moving, bool accumulate) {
  using namespace matmul_detail;
  validate(dst, stationary, moving);
  thread_local std::vector<uint8_t> st_buf, mv_buf, dst_buf;
  const Rows st = is_packed(stationary) ? rows_of(stationary) : gather(stationary, st_buf);
  const Rows mv = is_packed(moving) ? rows_of(moving) : gather(moving, mv_buf);
  const int M = st.count, N = mv.count;

  // A dst that is not packed gets C in a [M, N] buffer, added or copied after.
  const bool dst_packed = is_packed(dst);
  F32Out out{dst.base, dst.pitch, false, accumulate};
  if (!dst_packed) {
    dst_buf.resize(size_t(M) * size_t(N) * sizeof(float));
    out = {dst_buf.data(), int64_t(N) * int64_t(sizeof(float)), false, false};
  }

  const Problem p{out, st, mv, stationary.np, bf16_intrinsics_allowed()};
  HWY_DYNAMIC_DISPATCH(MatmulContiguous)(p);

  if (!dst_packed) {
    const auto* c = reinterpret_cast<const float*>(dst_buf.data());
    for (int m = 0; m < M; ++m) {
      uint8_t* row = dst.row(m);
      const float* cm = c + int64_t(m) * N;
      int64_t j = 0;
      dst.ap.for_each([&](int64_t off) {
        float d = cm[j++];
        if (accumulate) d = decode(DType::kF32, row + off * 4) + d;
        encode(DType::kF32, d, row + off * 4);
      });
    }
  }
}

void set_bf16_path(Bf16Path path) {
  matmul_detail::g_bf16_path.store(path, std::memory_order_relaxed);
}

const char* bf16_path_name() {
  using namespace matmul_detail;
  if (HWY_DYNAMIC_DISPATCH(TargetHasBf16Path)() && bf16_intrinsics_allowed()) return "avx512bf16";
  return hwy::TargetName(HWY_DYNAMIC_DISPATCH(DispatchedTarget)());
}

}  // namespace ncore::cpu
#endif  // HWY_ONCE
