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
// All scalar conversions are integer bit manipulation on std::bit_cast, free
// of branches but for selects, constexpr, and independent of the FP
// environment (rounding mode, FTZ/DAZ), since they sit in hot scalar loops.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

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

// m / 2^s rounded to nearest, ties to even; 1 <= s <= 31.
constexpr uint32_t rne_shift(uint32_t m, int s) {
  const uint32_t half = 1u << (s - 1);
  const uint32_t rem = m & ((half << 1) - 1);
  const uint32_t q = m >> s;
  return q + static_cast<uint32_t>((rem > half) | ((rem == half) & (q & 1u)));
}

// f32 bits -> Ieee<E, M> bits. nan_mag is the magnitude bits to return when
// u is a NaN (the caller's per-format choice).
template <int E, int M>
constexpr uint32_t narrow(uint32_t u, uint32_t nan_mag) {
  using F = Ieee<E, M>;
  const uint32_t sign = (u >> 31) << (E + M);
  const uint32_t a = u & kF32Abs;
  const int e32 = static_cast<int>(a >> kF32ManBits);
  // The 24-bit significand; f32 subnormals have no implicit bit and the same
  // scale as exponent field 1.
  const uint32_t m = (a & 0x7FFFFFu) | (static_cast<uint32_t>(e32 != 0) << kF32ManBits);
  const int e = std::max(e32, 1) - kF32Bias + F::kBias;  // target exponent field
  // Below the target's min normal the target ulp stays 2^(1-bias-M), so one
  // more bit drops per binade. m < 2^24 rounds to 0 for any s >= 25.
  const int s = std::min(F::kDrop + std::max(1 - e, 0), 25);
  // rne_shift keeps the implicit bit, which carries 1 into the exponent:
  // hence e - 1. Carries from rounding walk into the exponent and on to inf.
  const uint32_t r = (static_cast<uint32_t>(std::max(e - 1, 0)) << M) + rne_shift(m, s);
  return sign | (a > kF32Inf ? nan_mag : std::min(r, F::kInf));
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
  const uint32_t mag = a > F::kInf ? nan_bits : a == F::kInf ? kF32Inf : a > F::kManMask ? normal : sub;
  return sign | mag;
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
  return static_cast<uint16_t>((u & numerics_detail::kF32Abs) > numerics_detail::kF32Inf ? nan : rounded);
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
  const uint32_t a = std::bit_cast<uint32_t>(f) & numerics_detail::kF32Abs;
  if (a > numerics_detail::kF32Inf) return 0;
  if (f >= 0x1p31f) return std::numeric_limits<int32_t>::max();
  if (f <= -0x1p31f) return std::numeric_limits<int32_t>::min();
  // |f| < 2^31: the truncation is exact and so is the fraction f - t (both
  // are floats of f's binade or below).
  int32_t t = static_cast<int32_t>(f);
  const float frac = f - static_cast<float>(t);
  const bool odd = (t & 1) != 0;
  if (frac > 0.5f || (frac == 0.5f && odd)) ++t;
  if (frac < -0.5f || (frac == -0.5f && odd)) --t;
  return t;
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

// Reads one element of type t at p (any alignment) as f32. i32 rounds to the
// nearest float above 2^24.
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

// Unit roundoff u = 2^-(p) for p significand bits (implicit bit included):
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
