// The AVX512-BF16 path of the f32 -> bf16 encode: vcvtneps2bf16 rounds 16
// fp32 lanes to bf16, nearest even, whatever MXCSR says. It matches
// isa/numerics.h's f32_to_bf16 on every input but two kinds (Intel SDM,
// convert_fp32_to_bfloat16):
//   - f32 subnormals count as 0 (DAZ); numerics.h rounds them to the bf16
//     subnormals (same exponent range as f32), keeping them;
//   - NaNs keep their payload's top bits with the quiet bit set;
//     numerics.h makes every NaN sign | 0x7FC0.
// A vector holding either kind (one vfpclassps test) is rounded by integer
// arithmetic instead, the formula of cpu_convert-inl.h's ToBF16. Normal
// inputs never round to a bf16 subnormal (the exponent ranges match), so the
// output side has nothing to flush.
//
// Compiled for AVX-512 (the pragma below); runs only after the caller has
// checked the CPU. As in matmul_avx512bf16.cc it defines nothing with
// external linkage but the header's function and uses no inline functions or
// library templates, whose AVX-512 copies the linker could keep for others.

#include <immintrin.h>

#include <cstdint>

#include <ncore/reference/encode_avx512bf16.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

namespace ncore::cpu::encode_detail {
namespace {

constexpr int kLanes = 16;  // fp32 lanes of a zmm register

// vfpclassps categories where vcvtneps2bf16 differs: QNaN, denormal, SNaN.
constexpr int kQNaN = 0x01, kDenormal = 0x20, kSNaN = 0x80;
constexpr int kDiffers = kQNaN | kDenormal | kSNaN;

// f32_to_bf16 by integer arithmetic: add just under half a bf16 ulp plus
// the kept lsb (ties to even; carries run into the exponent and on to inf),
// NaN -> sign | 0x7FC0. Returns the codes in the low 16 16-bit lanes.
__m512i exact(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i half = _mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF));
  const __mmask16 odd = _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x10000));  // kept lsb
  const __m512i rounded = _mm512_mask_add_epi32(half, odd, half, _mm512_set1_epi32(1));
  const __m512i nan = _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(int(0x80000000u))),
                                      _mm512_set1_epi32(0x7FC00000));
  const __mmask16 is_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  const __m512i r = _mm512_mask_blend_epi32(is_nan, rounded, nan);
  // 16-bit lane i takes lane 2i + 1, the upper half of r's 32-bit lane i.
  const __m512i upper = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 31, 29, 27,
                                         25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_permutexvar_epi16(upper, r);
}

// out[j] = the code of v's lane j for the lanes in m (16-bit lanes of 32).
void store(uint16_t* out, __mmask32 m, __m512 v) {
  if (_mm512_fpclass_ps_mask(v, kDiffers) != 0) {
    _mm512_mask_storeu_epi16(out, m, exact(v));
  } else {
    _mm256_mask_storeu_epi16(out, __mmask16(m), (__m256i)_mm512_cvtneps_pbh(v));  // same bits
  }
}

}  // namespace

void encode_bf16_avx512bf16(uint16_t* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(out + i, 0xFFFF, _mm512_loadu_ps(in + i));
  if (i < n) {  // masked: no access past n; the zero lanes need no fallback
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    store(out + i, m, _mm512_maskz_loadu_ps(m, in + i));
  }
}

}  // namespace ncore::cpu::encode_detail

#pragma GCC pop_options
