// Internal to the matmul instruction (reference/matmul.cc): the interface of
// the AVX512-BF16 path, which lives in its own translation unit because its
// code must only run on CPUs with avx512bf16. Keep this header free of inline
// functions: the .cc compiles everything it defines for AVX-512, and an inline
// function compiled there could be the copy the linker keeps for everyone.
#pragma once

#include <cstdint>

namespace ncore::cpu::matmul_detail {

// One bf16 operand of C[a, b] = sum_k A[k, a] * B[k, b]: row k (a partition)
// at base + k * pitch bytes holds `count` contiguous bf16 values.
struct Bf16Rows {
  const uint16_t* base;
  int64_t pitch;
  int count;
};

// The fp32 result: C[a, b] is stored at base + a * pitch + b * 4 bytes, or at
// base + b * pitch + a * 4 when `transposed`; `accumulate` adds C to what is
// there (dst + C, one rounding), else overwrites.
struct F32Out {
  uint8_t* base;
  int64_t pitch;
  bool transposed;
  bool accumulate;
};

// C = A^T B with A [k, a] broadcast and B [k, b] vectorized, 1 <= k <= 128
// (the partition count), a, b >= 1. Rows must be 2-byte aligned. Only call
// when __builtin_cpu_supports("avx512bf16") and the OS enables AVX-512 state
// (Highway's AVX3 target was chosen).
void matmul_avx512bf16(const F32Out& out, const Bf16Rows& a, const Bf16Rows& b, int k);

}  // namespace ncore::cpu::matmul_detail
