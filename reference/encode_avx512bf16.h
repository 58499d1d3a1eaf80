// Internal to the CPU reference's f32 -> bf16 encode (cpu_convert-inl.h):
// the interface of the AVX512-BF16 path, which lives in its own translation
// unit because its code must only run on CPUs with avx512bf16. Keep this
// header free of inline functions (see matmul_avx512bf16.h).
#pragma once

#include <cstdint>

namespace ncore::cpu::encode_detail {

// Whether encode_bf16_avx512bf16 may run: the CPU has avx512bf16 and
// set_bf16_path(kPortable) is not in force (one switch for both bf16 paths;
// defined in matmul.cc). The caller must also run on an AVX-512 Highway
// target, which means the OS enables AVX-512 state.
bool avx512bf16_encode_allowed();

// out[0, n) = the bf16 codes of in[0, n), rounded as isa/numerics.h's
// f32_to_bf16 does, bit for bit.
void encode_bf16_avx512bf16(uint16_t* out, const float* in, int64_t n);

}  // namespace ncore::cpu::encode_detail
