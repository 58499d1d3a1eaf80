// Element types of the abstract NeuronCore and their sizes and names.
// Conversions (RNE, saturation, specials) live in numerics.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ncore {

// fp8_e4m3 is the IEEE-like variant the NeuronCore's legacy float8_e4m3 uses
// (ml_dtypes.float8_e4m3): bias 7, has inf, max finite 240 (facts §5).
enum class DType : uint8_t { kF32, kBF16, kF16, kFP8E4M3, kFP8E5M2, kI32 };

inline constexpr DType kAllDTypes[] = {DType::kF32,     DType::kBF16,
                                       DType::kF16,     DType::kFP8E4M3,
                                       DType::kFP8E5M2, DType::kI32};

constexpr int dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kBF16:
    case DType::kF16: return 2;
    case DType::kFP8E4M3:
    case DType::kFP8E5M2: return 1;
  }
  return 0;
}

constexpr bool is_float(DType t) { return t != DType::kI32; }

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kFP8E4M3: return "fp8_e4m3";
    case DType::kFP8E5M2: return "fp8_e5m2";
    case DType::kI32: return "i32";
  }
  return "?";
}

inline std::optional<DType> parse_dtype(std::string_view s) {
  for (DType t : kAllDTypes)
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

}  // namespace ncore
