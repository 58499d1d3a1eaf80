// A hand-fused LayerNorm / RMSNorm loop: norm_bench's estimate of what any CPU
// norm can reach on this machine, next to the copy.
//
// Per row: one pass for the statistics, one for the output, the row still in
// L1 from the first, Y written with streaming stores. That is a copy's memory
// traffic (X read once, Y written once) and the least compute a norm can do,
// with no instruction boundaries. It is a throughput yardstick, not a
// reference: fp32 sums of x and x^2 in one pass, var = E[x^2] - mean^2, bf16
// rounded by RNE. AVX-512 when the translation unit is built for it (norm_bench
// is built with -march=native), else plain loops with ordinary stores.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace ncore::bench {

struct FusedNorm {
  bool rms = false;
  bool bf16 = false;  // X, gamma, beta and Y bf16, else f32
  int64_t d = 0;
  const void* gamma = nullptr;
  const void* beta = nullptr;  // layernorm only
  float eps = 1e-5f;
};

namespace fused_detail {

inline float load1(const void* p, int64_t i, bool bf16) {
  if (!bf16) return static_cast<const float*>(p)[i];
  const uint32_t bits = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline void store1(void* p, int64_t i, float v, bool bf16) {
  if (!bf16) {
    static_cast<float*>(p)[i] = v;
    return;
  }
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  static_cast<uint16_t*>(p)[i] = uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
inline __m512 load16(const void* p, int64_t i, bool bf16) {
  if (!bf16) return _mm512_loadu_ps(static_cast<const float*>(p) + i);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// Streams 16 results to an aligned destination (RNE to bf16).
inline void stream16(void* p, int64_t i, __m512 v, bool bf16) {
  if (!bf16) return _mm512_stream_ps(static_cast<float*>(p) + i, v);
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  _mm256_stream_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(p) + i), _mm512_cvtepi32_epi16(r));
}
#endif

}  // namespace fused_detail

// Rows [r0, r1) of Y = norm(X), [rows, d] row-major.
inline void fused_norm(const FusedNorm& f, const void* x, void* y, int64_t r0, int64_t r1) {
  using namespace fused_detail;
  const int64_t esz = f.bf16 ? 2 : 4, d = f.d;
  for (int64_t r = r0; r < r1; ++r) {
    const void* xr = static_cast<const uint8_t*>(x) + r * d * esz;
    void* yr = static_cast<uint8_t*>(y) + r * d * esz;
    int64_t i = 0;
    float sum = 0, sq = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const bool aligned = reinterpret_cast<uintptr_t>(yr) % 64 == 0;
    __m512 vs = _mm512_setzero_ps(), vq = _mm512_setzero_ps();
    for (; i + 16 <= d; i += 16) {
      const __m512 v = load16(xr, i, f.bf16);
      vs = _mm512_add_ps(vs, v);
      vq = _mm512_fmadd_ps(v, v, vq);
    }
    sum = _mm512_reduce_add_ps(vs);
    sq = _mm512_reduce_add_ps(vq);
#endif
    for (; i < d; ++i) {
      const float v = load1(xr, i, f.bf16);
      sum += v;
      sq += v * v;
    }
    const float mean = f.rms ? 0.0f : sum / float(d);
    const float rstd = 1.0f / std::sqrt((f.rms ? sq / float(d) : sq / float(d) - mean * mean) + f.eps);
    i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (aligned) {
      const __m512 m = _mm512_set1_ps(mean), s = _mm512_set1_ps(rstd);
      for (; i + 16 <= d; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(load16(xr, i, f.bf16), m), s);
        v = _mm512_mul_ps(v, load16(f.gamma, i, f.bf16));
        if (!f.rms) v = _mm512_add_ps(v, load16(f.beta, i, f.bf16));
        stream16(yr, i, v, f.bf16);
      }
    }
#endif
    for (; i < d; ++i) {
      float v = (load1(xr, i, f.bf16) - mean) * rstd * load1(f.gamma, i, f.bf16);
      if (!f.rms) v += load1(f.beta, i, f.bf16);
      store1(yr, i, v, f.bf16);
    }
  }
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

}  // namespace ncore::bench
