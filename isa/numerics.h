// Element-type numerics: conversions between f32 and the narrower DTypes.
//
// f32 -> narrower rounds to nearest even on the exact f32 value (one rounding,
// never via an intermediate type), keeps the target's subnormals (no flush),
// and overflows as IEEE RNE does: |v| >= max + ulp(max)/2 becomes inf, below
// that rounds to max. inf stays inf; NaN stays NaN with its sign. Widening is
// exact. Every bit pattern, NaNs included, matches ml_dtypes (bf16, fp8) and
// numpy (f16); tests/isa/numerics_test.cc checks them against tables written
// by tools/gen_dtype_tables.py.
//
// The scalar conversions sit in hot loops: bit manipulation on std::bit_cast,
// constexpr, without branches (both sides computed, one selected). Where a
// variable shift would be needed (subnormal targets, float -> int) one float
// add lets the FPU round instead; that assumes the default rounding mode
// (round to nearest even), and is exact with or without FTZ/DAZ.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include <ncore/isa/dtype.h>

namespace ncore {
namespace numerics_detail {

// f32 facts (IEEE 754 binary32): 8 exponent bits, bias 127, 23 stored
// mantissa bits.
inline constexpr uint32_t kF32Abs = 0x7FFFFFFFu;   // all but the sign bit
inline constexpr uint32_t kF32Inf = 0x7F800000u;   // |x| above this is NaN
inline constexpr uint32_t kF32QNaN = 0x7FC00000u;  // canonical quiet NaN
inline constexpr int kF32Bias = 127;
inline constexpr int kF32ManBits = 23;

// An IEEE-like binary format with E exponent and M mantissa bits: bias
// 2^(E-1)-1, exponent field all ones = inf (mantissa 0) or NaN. bf16, f16,
// float8_e4m3 and float8_e5m2 all follow it (ml_dtypes finfo, IEEE 754).
template <int E, int M>
struct Ieee {
  static constexpr int kBias = (1 << (E - 1)) - 1;
  static constexpr int kDrop = kF32ManBits - M;  // f32 mantissa bits cut off
  static constexpr uint32_t kSign = 1u << (E + M);
  static constexpr uint32_t kInf = ((1u << E) - 1) << M;
  static constexpr uint32_t kManMask = (1u << M) - 1;
};

// m / 2^s rounded to nearest, ties to even (1 <= s; wraps if m + 2^s does).
// Adding just under half, plus the kept lsb, carries exactly when the cut
// bits exceed half or equal it with an odd lsb.
template <class T>
constexpr T rne_shift(T m, int s) {
  return (m + ((T{1} << (s - 1)) - 1) + ((m >> s) & 1)) >> s;
}

// c ? a : b by masks: GCC turns ?: chains here into jumps, which mispredict
// on mixed-range data and block vectorization.
constexpr uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(c);
  return (a & mask) | (b & ~mask);
}

// f32 bits -> Ieee<E, M> bits; nan_mag is the caller's NaN (magnitude bits).
// Both the normal and the subnormal result are computed and one selected, so
// mixed-range data costs no mispredicts and loops vectorize.
template <int E, int M>
constexpr uint32_t narrow(uint32_t u, uint32_t nan_mag) {
  using F = Ieee<E, M>;
  // f32 subnormals must round to 0 for the DAZ note below (not so for bf16).
  static_assert(F::kBias < 64, "narrow() is for formats with a narrower range than f32");
  const uint32_t sign = (u >> 31) << (E + M);
  const uint32_t a = u & kF32Abs;
  // Normal target: rebias the exponent, round kDrop bits off. Rounding
  // carries walk into the exponent and on to inf, so clamping at inf is
  // exactly IEEE overflow. (Wraps below the min normal; not selected then.)
  const uint32_t n = a - (static_cast<uint32_t>(kF32Bias - F::kBias) << kF32ManBits);
  const uint32_t normal = std::min(rne_shift(n, F::kDrop), F::kInf);
  // Subnormal target, |v| < 2^(1-bias): kSubMagic's ulp is the target's
  // subnormal ulp 2^(1-bias-M), so the float add rounds |v| to it (RNE, the
  // default mode) and the code is the bit distance from kSubMagic. Reaching
  // 2^M ulps is the min normal's code. f32 subnormals read as 0 under DAZ,
  // which is also their correct result. The clamp keeps NaN and inf, whose
  // result is not selected, out of the add: constant evaluation rejects them.
  constexpr uint32_t kSubMagic = static_cast<uint32_t>(kF32Bias + kF32ManBits + 1 - F::kBias - M)
                                 << kF32ManBits;  // 2^(24-bias-M)
  const uint32_t min_normal = static_cast<uint32_t>(kF32Bias - F::kBias + 1) << kF32ManBits;
  const float tiny = std::bit_cast<float>(std::min(a, min_normal));
  const uint32_t sub = std::bit_cast<uint32_t>(tiny + std::bit_cast<float>(kSubMagic)) - kSubMagic;
  return sign | select(a > kF32Inf, nan_mag, select(a < min_normal, sub, normal));
}

// Ieee<E, M> bits -> f32 bits for finite values and inf; NaNs give nan_bits
// (sign added here).
template <int E, int M>
constexpr uint32_t widen(uint32_t h, uint32_t nan_bits) {
  using F = Ieee<E, M>;
  const uint32_t sign = (h & F::kSign) << (31 - E - M);
  const uint32_t a = h & (F::kSign - 1);
  // Subnormal: a * 2^(1-bias-M); the int -> float and the power-of-two scale
  // are both exact, and neither input nor output is an f32 subnormal.
  constexpr float kSubUlp = 1.0f / static_cast<float>(1ull << (F::kBias - 1 + M));
  const uint32_t sub = std::bit_cast<uint32_t>(static_cast<float>(a) * kSubUlp);
  const uint32_t normal = (a << F::kDrop) + (static_cast<uint32_t>(kF32Bias - F::kBias) << kF32ManBits);
  const uint32_t finite = select(a > F::kManMask, normal, sub);
  return sign | select(a >= F::kInf, select(a == F::kInf, kF32Inf, nan_bits), finite);
}

template <int E, int M, uint32_t kNaN>
constexpr std::array<uint32_t, 256> widen_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t h = 0; h < 256; ++h) t[h] = widen<E, M>(h, kNaN);
  return t;
}

// fp8 -> f32 bits. A 1 KB table is one L1 load, cheaper than the selects.
inline constexpr std::array<uint32_t, 256> kE4M3ToF32 = widen_table<4, 3, kF32QNaN>();
inline constexpr std::array<uint32_t, 256> kE5M2ToF32 = widen_table<5, 2, kF32QNaN>();

}  // namespace numerics_detail

// bf16: f32's upper half (8 exponent bits, 7 mantissa bits), max finite
// 0x7F7F = 3.39e38. NaN -> sign | 0x7FC0, the payload dropped (ml_dtypes /
// Eigen float_to_bfloat16_rtne).
constexpr uint16_t f32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  // Add just under half a bf16 ulp, plus 1 when the kept lsb is odd: ties go
  // to even and the carry runs into the exponent, up to inf.
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = ((u >> 16) & 0x8000u) | 0x7FC0u;
  return static_cast<uint16_t>(
      numerics_detail::select((u & numerics_detail::kF32Abs) > numerics_detail::kF32Inf, nan, rounded));
}

// Exact: bf16 is a truncated f32, so NaN payloads carry over too.
constexpr float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// f16: IEEE binary16 (5 exponent bits, bias 15, 10 mantissa bits), max finite
// 65504. NaN keeps the sign and the top 10 payload bits, or 1 if those are
// all zero so it stays a NaN; signaling NaNs are not quieted (numpy
// npy_floatbits_to_halfbits, the reference of the tables).
constexpr uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t payload = (u & 0x7FFFFFu) >> 13;
  const uint32_t nan = 0x7C00u | std::max(payload, 1u);
  return static_cast<uint16_t>(numerics_detail::narrow<5, 10>(u, nan));
}

// Exact; NaN payloads shift back into place (numpy's halfbits_to_floatbits).
constexpr float f16_to_f32(uint16_t h) {
  const uint32_t payload = static_cast<uint32_t>(h & 0x3FFu) << 13;
  return std::bit_cast<float>(numerics_detail::widen<5, 10>(h, numerics_detail::kF32Inf | payload));
}

// fp8_e4m3: ml_dtypes.float8_e4m3, the IEEE-like variant (bias 7, inf =
// S.1111.000, NaN = S.1111.xxx, xxx != 0), max finite 0x77 = 240, min
// subnormal 2^-9. NaN -> sign | 0x7C (S.1111.100), ml_dtypes' quiet NaN.
constexpr uint8_t f32_to_fp8_e4m3(float f) {
  return static_cast<uint8_t>(numerics_detail::narrow<4, 3>(std::bit_cast<uint32_t>(f), 0x7Cu));
}

// Exact; every NaN decodes to sign | 0x7FC00000, as in ml_dtypes.
constexpr float fp8_e4m3_to_f32(uint8_t h) {
  return std::bit_cast<float>(numerics_detail::kE4M3ToF32[h]);
}

// fp8_e5m2: ml_dtypes.float8_e5m2, f16's upper byte (bias 15), max finite
// 0x7B = 57344, min subnormal 2^-16. NaN -> sign | 0x7E (S.11111.10), ml_dtypes'
// quiet NaN.
constexpr uint8_t f32_to_fp8_e5m2(float f) {
  return static_cast<uint8_t>(numerics_detail::narrow<5, 2>(std::bit_cast<uint32_t>(f), 0x7Eu));
}

// Exact; every NaN decodes to sign | 0x7FC00000, as in ml_dtypes.
constexpr float fp8_e5m2_to_f32(uint8_t h) {
  return std::bit_cast<float>(numerics_detail::kE5M2ToF32[h]);
}

// Round to nearest even, saturate to [INT32_MIN, INT32_MAX], NaN -> 0.
constexpr int32_t f32_to_i32(float f) {
  using numerics_detail::select;
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t a = u & numerics_detail::kF32Abs;
  // |f| < 2^23: 2^23 has an ulp of 1, so adding it rounds |f| to an integer
  // (RNE, the default mode), read back as the bit distance. Other inputs
  // are zeroed first so that NaN never reaches the add (see narrow()).
  const float small_in = std::bit_cast<float>(select(a < 0x4B000000u, a, 0u));
  const uint32_t small = std::bit_cast<uint32_t>(small_in + 0x1p23f) - 0x4B000000u;
  // 2^23 <= |f| < 2^31: already an integer, so truncation is exact; larger
  // inputs are zeroed first to keep the conversion defined.
  const uint32_t big = static_cast<uint32_t>(
      static_cast<int32_t>(std::bit_cast<float>(select(a < 0x4F000000u, a, 0u))));
  const uint32_t mag = select(a < 0x4B000000u, small, big);
  const uint32_t neg = u >> 31;
  uint32_t r = select(neg != 0, 0u - mag, mag);
  r = select(a >= 0x4F000000u, 0x7FFFFFFFu + neg, r);  // |f| >= 2^31: INT32_MAX or INT32_MIN
  return static_cast<int32_t>(select(a > numerics_detail::kF32Inf, 0u, r));
}

// The value v becomes when stored as t and read back: decode(encode(v)).
// For i32 that is the float nearest the rounded, saturated integer.
constexpr float round_to(DType t, float v) {
  switch (t) {
    case DType::kF32: return v;
    case DType::kBF16: return bf16_to_f32(f32_to_bf16(v));
    case DType::kF16: return f16_to_f32(f32_to_f16(v));
    case DType::kFP8E4M3: return fp8_e4m3_to_f32(f32_to_fp8_e4m3(v));
    case DType::kFP8E5M2: return fp8_e5m2_to_f32(f32_to_fp8_e5m2(v));
    case DType::kI32: return static_cast<float>(f32_to_i32(v));
  }
  return v;
}

// Reads one element of type t at p (any alignment) as f32. i32 magnitudes
// above 2^24 round to the nearest float.
inline float decode(DType t, const void* p) {
  switch (t) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case DType::kBF16:
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, p, sizeof h);
      return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    case DType::kFP8E4M3: return fp8_e4m3_to_f32(*static_cast<const uint8_t*>(p));
    case DType::kFP8E5M2: return fp8_e5m2_to_f32(*static_cast<const uint8_t*>(p));
    case DType::kI32: {
      int32_t i;
      std::memcpy(&i, p, sizeof i);
      return static_cast<float>(i);
    }
  }
  return 0.0f;
}

// Writes v as one element of type t at p (any alignment).
inline void encode(DType t, float v, void* p) {
  switch (t) {
    case DType::kF32: std::memcpy(p, &v, sizeof v); return;
    case DType::kBF16:
    case DType::kF16: {
      const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(p, &h, sizeof h);
      return;
    }
    case DType::kFP8E4M3: *static_cast<uint8_t*>(p) = f32_to_fp8_e4m3(v); return;
    case DType::kFP8E5M2: *static_cast<uint8_t*>(p) = f32_to_fp8_e5m2(v); return;
    case DType::kI32: {
      const int32_t i = f32_to_i32(v);
      std::memcpy(p, &i, sizeof i);
      return;
    }
  }
}

// Unit roundoff u = 2^-p for p significand bits (implicit bit included):
// RNE's relative error bound in the normal range. 0 for i32 (absolute error
// 1/2 instead).
constexpr double unit_roundoff(DType t) {
  switch (t) {
    case DType::kF32: return 0x1p-24;
    case DType::kBF16: return 0x1p-8;
    case DType::kF16: return 0x1p-11;
    case DType::kFP8E4M3: return 0x1p-4;
    case DType::kFP8E5M2: return 0x1p-3;
    case DType::kI32: return 0.0;
  }
  return 0.0;
}

// Largest finite value: (2 - 2^-M) * 2^emax for the floats.
constexpr double max_finite(DType t) {
  switch (t) {
    case DType::kF32: return 0x1.fffffep127;
    case DType::kBF16: return 0x1.fep127;
    case DType::kF16: return 65504.0;
    case DType::kFP8E4M3: return 240.0;
    case DType::kFP8E5M2: return 57344.0;
    case DType::kI32: return 2147483647.0;
  }
  return 0.0;
}

}  // namespace ncore
