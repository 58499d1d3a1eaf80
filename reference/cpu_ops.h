// The interface of ncore::cpu, the Highway dynamic-dispatch library: one entry
// that executes a validated instruction on resolved host views. The CPU
// backend (cpu_backend.h) resolves operands; the .cc files here implement the
// instructions for every compiled SIMD target.
#pragma once

#include <array>
#include <cstdint>

#include <ncore/isa/instr.h>

namespace ncore::cpu {

// A resolved operand: element e of partition p lives at
//   base + p * pitch + ap_offset(e) * dtype_size(dtype),
// where ap_offset walks `ap` (whose own offset is already folded into base, so
// ap.offset == 0). HBM views map their dim 0 to partitions: pitch = stride[0]
// bytes (0 for a partition broadcast) and ap = the remaining dims ([1] if none).
struct View {
  uint8_t* base = nullptr;
  int64_t pitch = 0;
  int np = 0;
  DType dtype = DType::kF32;
  AccessPattern ap;

  bool empty() const { return base == nullptr; }
  uint8_t* row(int p) const { return base + p * pitch; }
};

// Executes `in` (already validated by the front-end) on views resolved per
// operand slot (empty slots have base == nullptr).
void execute(const Instr& in, const std::array<View, 5>& v);
// The Highway target execute() dispatches to now ("AVX3_DL", "AVX2", ...):
// tests check that each target they force is the one that ran.
const char* execute_target_name();

// The matmul instruction: dst[M, N] (+)= stationary[K, M]^T @ moving[K, N] in fp32.
void matmul(const View& dst, const View& stationary, const View& moving, bool accumulate);

// bf16 matmuls use AVX512-BF16 vdpbf16ps, and contiguous f32 -> bf16 encodes
// vcvtneps2bf16 (same bits), when the CPU has it and the chosen Highway
// target is AVX-512; kPortable forces the Highway paths (for tests).
enum class Bf16Path { kAuto, kPortable };
void set_bf16_path(Bf16Path path);
// Which path the next bf16 matmul takes: "avx512bf16" or the Highway target name.
const char* bf16_path_name();

}  // namespace ncore::cpu
