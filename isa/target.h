// The NeuronCore targets: trn1 and inf2 (NeuronCore-v2) and trn2 (NeuronCore-v3).
// Every number carries its source: "facts §N" is ../shared/reference/
// neuroncore-facts.md, which quotes the aws-neuron-sdk docs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ncore {

enum class TargetId : uint8_t { kTrn1, kInf2, kTrn2 };

struct Target {
  TargetId id;
  std::string_view name;
  int nc_version;  // 2 = NeuronCore-v2, 3 = NeuronCore-v3

  // --- On-chip memory (facts §2) ---
  int partitions;            // pmax: SBUF/PSUM partition count, 128
  int64_t sbuf_partition_bytes;  // 192 KiB (v2: 24 MiB / 128), 224 KiB (v3: 28 MiB / 128)
  int psum_banks;            // 8 banks per partition
  int psum_bank_bytes;       // 2 KiB per bank per partition = 512 fp32
  int psum_partition_bytes() const { return psum_banks * psum_bank_bytes; }

  // --- Tile limits (facts §2, nki.language.tile_size) ---
  int gemm_stationary_fmax;  // stationary free size (M) ≤ 128
  int gemm_moving_fmax;      // moving free size (N) ≤ 512
  int psum_bank_fmax;        // a PSUM tile's free size ≤ 512 fp32 (one bank)
  int pe_transpose_max;      // TensorE transpose ≤ 128 x 128 (facts §3)
  int bn_stats_fmax;         // bn_stats free size ≤ 512 (facts §2)
  int64_t engine_sbuf_fmax;  // Vector/Scalar free elements from SBUF ≤ 64K (v2 guide, facts §2)
  int64_t engine_psum_fmax;  // ... from PSUM ≤ 4K (v2 guide, facts §2)
  int max_free_dims;         // access patterns: up to 4-D per partition (facts §2)
  bool transpose_16bit_out;  // v3 PE transpose may write 16-bit PSUM (facts §3 is_transpose)

  // --- Engine clocks in GHz (facts §1, per-core engine table) ---
  double tensor_ghz;   // v2 2.8, v3 2.4
  double vector_ghz;   // v2 1.12, v3 0.96
  double scalar_ghz;   // v2 1.4, v3 1.2
  double gpsimd_ghz;   // v2 1.4, v3 1.2

  // --- Published per-core throughputs (facts §1) ---
  double tensor_tflops_bf16;  // v2 92 (2.8 GHz x 128x128 MAC x 2), v3 79 (2.4 GHz)
  double tensor_tflops_fp32;  // 1/4 of bf16: fp32 matmul costs 4x (facts §3)
  int vector_elems_per_cycle_16bit;  // v3: 512 bf16/fp16 elements per cycle
  int vector_elems_per_cycle;        // v3: 256 other dtypes; v2: 128 lanes

  // --- Instruction overheads (facts §3, old nki.isa docstrings) ---
  int min_ii_cycles;  // MIN_II ~ 64: minimum issue interval of Vector/Scalar instructions

  // --- DMA and HBM (facts §1, §2) ---
  int dma_engines;              // 16 DMA engines per core
  int dma_queues_per_engine;    // 16 queues per engine, served round-robin
  double dma_engine_gbps;       // per-engine bandwidth; bandwidth guide: 17 B/ns trn1,
                                // 23 B/ns trn2 (the DMA overview's 27.2 GB/s disagrees;
                                // we take the guide, which is per generation)
  double dma_fixed_ns;          // ~1,300 ns from semaphore to start, cross-engine
  double hbm_gbps_per_core;     // trn1/inf2: 820 GB/s per 2-core chip; trn2: 2.9 TB/s per 8 cores
  bool dma_transpose_hw;        // v3 DMA transpose ~90% of copy throughput (facts §2)
};

inline constexpr Target kTrn1{
    .id = TargetId::kTrn1, .name = "trn1", .nc_version = 2,
    .partitions = 128, .sbuf_partition_bytes = 192 * 1024, .psum_banks = 8,
    .psum_bank_bytes = 2048,
    .gemm_stationary_fmax = 128, .gemm_moving_fmax = 512, .psum_bank_fmax = 512,
    .pe_transpose_max = 128, .bn_stats_fmax = 512, .engine_sbuf_fmax = 65536,
    .engine_psum_fmax = 4096, .max_free_dims = 4, .transpose_16bit_out = false,
    .tensor_ghz = 2.8, .vector_ghz = 1.12, .scalar_ghz = 1.4, .gpsimd_ghz = 1.4,
    .tensor_tflops_bf16 = 92.0, .tensor_tflops_fp32 = 23.0,
    .vector_elems_per_cycle_16bit = 128, .vector_elems_per_cycle = 128,
    .min_ii_cycles = 64,
    .dma_engines = 16, .dma_queues_per_engine = 16, .dma_engine_gbps = 17.0,
    .dma_fixed_ns = 1300.0, .hbm_gbps_per_core = 410.0, .dma_transpose_hw = false};

// Inferentia2 has the same NeuronCore-v2 and the same 820 GB/s per 2-core chip.
inline constexpr Target kInf2 = [] {
  Target t = kTrn1;
  t.id = TargetId::kInf2;
  t.name = "inf2";
  return t;
}();

inline constexpr Target kTrn2{
    .id = TargetId::kTrn2, .name = "trn2", .nc_version = 3,
    .partitions = 128, .sbuf_partition_bytes = 224 * 1024, .psum_banks = 8,
    .psum_bank_bytes = 2048,
    .gemm_stationary_fmax = 128, .gemm_moving_fmax = 512, .psum_bank_fmax = 512,
    .pe_transpose_max = 128, .bn_stats_fmax = 512, .engine_sbuf_fmax = 65536,
    .engine_psum_fmax = 4096, .max_free_dims = 4, .transpose_16bit_out = true,
    .tensor_ghz = 2.4, .vector_ghz = 0.96, .scalar_ghz = 1.2, .gpsimd_ghz = 1.2,
    .tensor_tflops_bf16 = 79.0, .tensor_tflops_fp32 = 19.75,
    .vector_elems_per_cycle_16bit = 512, .vector_elems_per_cycle = 256,
    .min_ii_cycles = 64,
    .dma_engines = 16, .dma_queues_per_engine = 16, .dma_engine_gbps = 23.0,
    .dma_fixed_ns = 1300.0, .hbm_gbps_per_core = 362.5, .dma_transpose_hw = true};

inline constexpr std::array<const Target*, 3> kAllTargets = {&kTrn1, &kInf2, &kTrn2};

inline const Target& target(TargetId id) {
  switch (id) {
    case TargetId::kTrn1: return kTrn1;
    case TargetId::kInf2: return kInf2;
    case TargetId::kTrn2: return kTrn2;
  }
  return kTrn2;
}

inline const Target* find_target(std::string_view name) {
  for (const Target* t : kAllTargets)
    if (t->name == name) return t;
  return nullptr;
}

}  // namespace ncore
