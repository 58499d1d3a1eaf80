// The AVX512-BF16 path of the matmul instruction: C[a, b] = sum_k A[k, a] B[k, b]
// on bf16 inputs with vdpbf16ps, which multiplies bf16 pairs and adds both
// products to an fp32 lane: c[i] += x[2i] y[2i] + x[2i+1] y[2i+1].
//
// Layout: k-pairs are interleaved into 32-bit lanes. A is packed per call into
// [K/2][a] pairs (lo half = row 2k2, hi half = row 2k2+1), so one 32-bit
// broadcast feeds a whole vector; B is packed per panel of kNrv x 16 columns
// into [K/2][panel] pairs, in column order, so C needs no permutation. An odd
// K pairs its last row with zeros. The blocking is matmul.cc's: panels of B
// outermost (one panel, <= 8 KiB, stays in L1), blocks of kMr rows of A
// inside, C[kMr, kNrv x 16] in registers for all of K.
//
// Numerics: each bf16 x bf16 product is exact in fp32 (8-bit significands)
// and each of the K additions rounds to nearest even, so the fp32 bound
// gamma_K * sum_k |A||B| holds. vdpbf16ps also behaves as if DAZ and FTZ were
// set, whatever MXCSR says: a subnormal bf16 input counts as 0 (losing
// |A B| < 2^-126 |other factor|), and a product or sum below 2^-126 becomes 0
// (losing < 2^-126 each), so the bound gains
//   2^-126 * sum_k (|A[k,a]| + |B[k,b]| + 2).
// The final dst + C of accumulate is an ordinary (non-flushing) fp32 add.
//
// This file is compiled for AVX-512 (the pragma below) and must only run
// after matmul.cc has checked the CPU. So it defines nothing with external
// linkage but matmul_avx512bf16 and uses no C++ library templates or inline
// functions, whose AVX-512 copies the linker could keep for other callers.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include <ncore/reference/matmul_avx512bf16.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")

namespace ncore::cpu::matmul_detail {
namespace {

constexpr int kLanes = 16;  // fp32 lanes (= bf16 pairs) of a zmm register

// Register blocking: kMr x kNrv accumulators + kNrv vectors of B + 1
// broadcast of the 32 zmm registers. By measurement on Zen 4
// (bench/matmul_bench.cc, [128, 128] x [128, 512] bf16) 8 x 2, 6 x 4, 8 x 3
// and 16 x 1 are within noise (~90% of peak, the kernel itself ~97%) and
// 12 x 2 ~5% slower; 8 x 2 divides M = 128 and N = 512 exactly.
constexpr int kMr = 8;
constexpr int kNrv = 2;
constexpr int kPanel = kNrv * kLanes;  // columns of B per panel

// Blocks with fewer accumulators (tails, M = 1) split K into interleaved
// partial sums so that at least kMinChains dot products are in flight
// (vdpbf16ps latency ~6 x up to 2 per cycle, rounded to a power of 2).
constexpr int kMinChains = 8;
constexpr int kMaxSplitK = 4;

// Packing buffers live on the stack (41 KiB), sized by the instruction's
// limits: K <= 128 rows (64 pairs), A packed in chunks of <= 128 columns
// (M <= 128; only a swapped, short N is ever the broadcast operand).
constexpr int kMaxPairs = 64;
constexpr int kChunkA = 128;

constexpr int imin(int x, int y) { return x < y ? x : y; }

// out[j] = r0[j] | r1[j] << 16 for j < n (r1 == nullptr: zeros), 0 for
// n <= j < padded (a multiple of 16). One vpermt2w per 16 pairs; the masked
// loads do not touch memory past n.
void interleave(uint32_t* out, const uint16_t* r0, const uint16_t* r1, int n, int padded) {
  // 16-bit lane 2i takes r0[i], lane 2i+1 takes r1[i] (index + 32 selects r1),
  // for the low and the high 16 columns of a 32-column chunk.
  alignas(64) static constexpr uint16_t kLo[32] = {
      0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
      8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr uint16_t kHi[32] = {
      16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
      24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i lo_idx = _mm512_load_si512(kLo), hi_idx = _mm512_load_si512(kHi);
  for (int j = 0; j < padded; j += 2 * kLanes) {
    const int left = n - j;
    const __mmask32 m = left >= 2 * kLanes ? ~__mmask32(0)
                        : left > 0         ? __mmask32((uint64_t(1) << left) - 1)
                                           : __mmask32(0);
    const __m512i a = _mm512_maskz_loadu_epi16(m, r0 + j);
    const __m512i b = r1 ? _mm512_maskz_loadu_epi16(m, r1 + j) : _mm512_setzero_si512();
    _mm512_storeu_si512(out + j, _mm512_permutex2var_epi16(a, lo_idx, b));
    if (j + kLanes < padded)
      _mm512_storeu_si512(out + j + kLanes, _mm512_permutex2var_epi16(a, hi_idx, b));
  }
}

// c[i][j] (+)= sum_k2 dot(a[k2 * lda + i], b[k2 * ldb + j]) for i < Mr,
// j < Nrv * 16; c row i at c + i * ldc (floats).
template <int Mr, int Nrv>
__attribute__((noinline)) void kernel(const uint32_t* __restrict a, int lda,
                                      const uint32_t* __restrict b, int ldb, int pairs,
                                      float* __restrict c, int64_t ldc, bool add) {
  constexpr int kSplitRaw = (kMinChains + Mr * Nrv - 1) / (Mr * Nrv);
  constexpr int kSplit = kSplitRaw > kMaxSplitK ? kMaxSplitK : kSplitRaw;
  __m512 acc[kSplit][Mr][Nrv];
#pragma GCC unroll 4
  for (int s = 0; s < kSplit; ++s)
#pragma GCC unroll 16
    for (int i = 0; i < Mr; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < Nrv; ++j) acc[s][i][j] = _mm512_setzero_ps();

  int k2 = 0;
  for (; k2 + kSplit <= pairs; k2 += kSplit) {
#pragma GCC unroll 4
    for (int s = 0; s < kSplit; ++s) {
      const uint32_t* bk = b + (k2 + s) * ldb;
      const uint32_t* ak = a + (k2 + s) * lda;
      __m512bh bv[Nrv];
#pragma GCC unroll 4
      for (int j = 0; j < Nrv; ++j) bv[j] = (__m512bh)_mm512_load_si512(bk + j * kLanes);
#pragma GCC unroll 16
      for (int i = 0; i < Mr; ++i) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(ak[i]));
#pragma GCC unroll 4
        for (int j = 0; j < Nrv; ++j) acc[s][i][j] = _mm512_dpbf16_ps(acc[s][i][j], ai, bv[j]);
      }
    }
  }
  for (; k2 < pairs; ++k2) {
    const uint32_t* bk = b + k2 * ldb;
    const uint32_t* ak = a + k2 * lda;
#pragma GCC unroll 16
    for (int i = 0; i < Mr; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(ak[i]));
#pragma GCC unroll 4
      for (int j = 0; j < Nrv; ++j)
        acc[0][i][j] = _mm512_dpbf16_ps(
            acc[0][i][j], ai, (__m512bh)_mm512_load_si512(bk + j * kLanes));
    }
  }

#pragma GCC unroll 16
  for (int i = 0; i < Mr; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < Nrv; ++j) {
      __m512 sum = acc[0][i][j];
#pragma GCC unroll 4
      for (int s = 1; s < kSplit; ++s) sum = _mm512_add_ps(sum, acc[s][i][j]);
      float* ci = c + i * ldc + j * kLanes;
      if (add) sum = _mm512_add_ps(_mm512_loadu_ps(ci), sum);
      _mm512_storeu_ps(ci, sum);
    }
  }
}

using KernelFn = void (*)(const uint32_t*, int, const uint32_t*, int, int, float*, int64_t, bool);

// kKernels[mr - 1][nrv - 1]: every tail shape of a block.
template <int I>
struct KernelTable {
  static constexpr KernelFn at(int i) {
    return i == I ? &kernel<I / kNrv + 1, I % kNrv + 1> : KernelTable<I - 1>::at(i);
  }
};
template <>
struct KernelTable<-1> {
  static constexpr KernelFn at(int) { return nullptr; }
};

KernelFn kernel_for(int mr, int nrv) {
  return KernelTable<kMr * kNrv - 1>::at((mr - 1) * kNrv + (nrv - 1));
}

float* c_at(const F32Out& out, int a, int b) {
  const int64_t row = out.transposed ? b : a, col = out.transposed ? a : b;
  return reinterpret_cast<float*>(out.base + row * out.pitch) + col;
}

// Adds or copies the valid [rows, cols] corner of a kernel tile into C.
void store_tile(const float* tile, int rows, int cols, int a0, int b0, const F32Out& out) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      float* d = c_at(out, a0 + i, b0 + j);
      const float t = tile[i * kPanel + j];
      *d = out.accumulate ? *d + t : t;
    }
}

}  // namespace

void matmul_avx512bf16(const F32Out& out, const Bf16Rows& a, const Bf16Rows& b, int k) {
  auto row = [](const Bf16Rows& r, int kk) {
    return reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(r.base) +
                                             kk * r.pitch);
  };
  const int pairs = (k + 1) / 2;
  alignas(64) uint32_t a_pairs[kMaxPairs * kChunkA];  // [pairs][chunk]
  alignas(64) uint32_t b_pairs[kMaxPairs * kPanel];   // [pairs][kPanel]
  alignas(64) float tile[kMr * kPanel];

  for (int ac = 0; ac < a.count; ac += kChunkA) {
    const int na = imin(kChunkA, a.count - ac);
    const int lda = (na + kLanes - 1) / kLanes * kLanes;  // whole vectors per row
    for (int p = 0; p < pairs; ++p) {
      const uint16_t* hi = 2 * p + 1 < k ? row(a, 2 * p + 1) + ac : nullptr;
      interleave(a_pairs + p * lda, row(a, 2 * p) + ac, hi, na, lda);
    }
    for (int b0 = 0; b0 < b.count; b0 += kPanel) {
      const int cols = imin(kPanel, b.count - b0);
      const int nrv = (cols + kLanes - 1) / kLanes;
      for (int p = 0; p < pairs; ++p) {
        const uint16_t* hi = 2 * p + 1 < k ? row(b, 2 * p + 1) + b0 : nullptr;
        interleave(b_pairs + p * kPanel, row(b, 2 * p) + b0, hi, cols, nrv * kLanes);
      }
      const bool direct = cols == nrv * kLanes && !out.transposed;
      for (int a0 = 0; a0 < na; a0 += kMr) {
        const int mr = imin(kMr, na - a0);
        const KernelFn f = kernel_for(mr, nrv);
        if (direct) {
          f(a_pairs + a0, lda, b_pairs, kPanel, pairs, c_at(out, ac + a0, b0),
            out.pitch / int64_t(sizeof(float)), out.accumulate);
        } else {
          f(a_pairs + a0, lda, b_pairs, kPanel, pairs, tile, kPanel, false);
          store_tile(tile, mr, cols, ac + a0, b0, out);
        }
      }
    }
  }
}

}  // namespace ncore::cpu::matmul_detail

#pragma GCC pop_options
