// The cost model's parameters: every number the model uses, with its source.
// "facts §N" is ../shared/reference/neuroncore-facts.md; "arch guide" is
// aws-neuron-sdk nki/guides/architecture/trainium_inferentia2_arch.rst; "perf
// guide" is nki/deep-dives/nki_perf_guide.rst; "bandwidth guide" is
// nki/deep-dives/nki-dma-bandwidth-guide.rst; "DMA overview" is
// nki/get-started/about/nki-dma-overview.rst. Where sources disagree the
// comment says which one is taken; every value can be overridden.
#pragma once

#include <cstdint>

#include <ncore/isa/target.h>

namespace ncore {

struct CostParams {
  TargetId target = TargetId::kTrn2;
  int nc_version = 3;

  // --- Engine clocks, GHz (isa/target.h, facts §1) ---
  double tensor_ghz = 2.4, vector_ghz = 0.96, scalar_ghz = 1.2, gpsimd_ghz = 1.2;

  // --- TensorE (facts §3 nc_matmul / nc_transpose, old nki.isa docstrings) ---
  // matmul: max(min(kPeLoadCap, stationary free), moving free) cycles; the
  // LoadStationary runs in the background, so only its first 64 columns can
  // show (the arch guide's MM_INIT_LATENCY, 64 cycles on NC-v2).
  int pe_load_cap_cycles = 64;
  // fp32 inputs take 4 passes (facts §3, arch guide "roughly 4x higher").
  double pe_fp32_factor = 4.0;
  // transpose: max(P, min(64, F)) cycles; fp32 costs as an fp32 matmul on v2,
  // and v3's is_transpose path is "FP32 2x faster" (facts §3), so 2x there.
  double pe_transpose_fp32_factor = 2.0;
  // Dense peaks, TFLOPS per core (facts §1): the denominators of TE utilisation.
  double tensor_tflops_16bit = 79.0, tensor_tflops_fp32 = 19.75;

  // --- Vector / Scalar / GpSimd (facts §3, arch guide "Cost Model") ---
  int min_ii_cycles = 64;  // MIN_II: minimum instruction initiation interval
  // "+~100 cycles when N < 128 or instructions depend back-to-back" (arch
  // guide: "a static instruction overhead of 100 engine cycles"). Both apply,
  // additively, on VectorE and ScalarE: the perf guide measured dependent
  // 1-element ScalarE activations at 264 cycles apart = 64 + 100 + 100.
  int small_n = 128;
  int small_n_cycles = 100;
  int dependent_cycles = 100;
  // iota / affine_select: 150 + N GpSimd cycles (facts §3).
  int gpsimd_fixed_cycles = 150;
  // "If the most-minor F dimension stride exceeds 16 bytes, the achievable
  // bandwidth ... will be half ... roughly 50% performance hit" (arch guide,
  // facts §2): such an operand doubles a Vector/Scalar/GpSimd instruction.
  int strided_access_bytes = 16;
  double strided_access_factor = 2.0;
  // NC-v3 VectorE fast modes (facts §3): 4x for S->S contiguous 16-bit
  // tensor_copy / tensor_scalar, 2x for all-bf16 tensor_tensor in SBUF.
  bool vector_fast_modes = true;

  // --- Cross-engine synchronisation ---
  // An instruction waiting on another engine's semaphore starts this many of
  // its own cycles after the producer finishes. No source gives the number;
  // we take the arch guide's 100-cycle static overhead of a dependent
  // instruction (a consumer cannot start reading before the producer's output
  // is committed, and the semaphore only adds to that). DMA triggers pay
  // dma_fixed_ns instead, which already counts from the semaphore.
  int semaphore_cycles = 100;

  // --- DMA (facts §2, bandwidth guide, DMA overview, arch guide) ---
  int dma_engines = 16;               // per core
  int partitions_per_dma_engine = 8;  // 128 partitions / 16 engines (DMA overview)
  // Per-engine bandwidth, bytes/ns. The bandwidth guide's 17 (trn1) / 23 (trn2)
  // B/ns is taken over the DMA overview's 27.2 GB/s for both generations: it is
  // per generation and is the newer document; the DMA overview's own NC-v3
  // measurement (32 KiB on one engine in 1,416 ns = 23.1 B/ns) agrees with it.
  double dma_bytes_per_ns = 23.0;
  // Trigger to data movement: "descriptor setup, synchronization, and
  // semaphore-to-start latency (~1300 ns cross-engine)" (bandwidth guide). A
  // latency: the engines move other transfers meanwhile.
  double dma_fixed_ns = 1300.0;
  // Per DMA buffer (contiguous chunk, "descriptor") overhead, in engine time.
  // Derived: large transfers (4 KiB per partition = 32 KiB per engine) reach
  // "close to 85% DMA throughput utilization" (perf guide Opt #9), so a 4 KiB
  // descriptor costs 4096 / bw / 0.85 and the overhead is 0.15/0.85 of its
  // data time: 42.5 ns on trn1, 31.4 ns on trn2. The same curve gives 74% at
  // 2 KiB ("approaches peak"), 26% at 256 B ("severely overhead-bound").
  double dma_descriptor_ns = 31.4;
  // NC-v3 DMA transpose: HBM -> SBUF at ~90% of copy throughput, SBUF -> SBUF
  // at ~50% (facts §2); without it (NC-v2) a transposing DMA is one
  // descriptor per element (and an SBUF source is invalid).
  bool dma_transpose_hw = true;
  double dma_transpose_efficiency = 0.9;
  double dma_transpose_sbuf_efficiency = 0.5;

  // --- HBM (facts §1) ---
  // Per core: trn1/inf2 820 GB/s per 2-core chip; trn2 2.9 TB/s per 8 cores.
  // Shared by all concurrent transfers; 0 disables the ceiling.
  double hbm_bytes_per_ns = 362.5;
  // Time resolution of the HBM ledger that shares the ceiling among concurrent
  // transfers: a fraction of the shortest useful transfer (~1 us).
  double hbm_bucket_ns = 64.0;

  static CostParams defaults(const Target& t) {
    CostParams p;
    p.target = t.id;
    p.nc_version = t.nc_version;
    p.tensor_ghz = t.tensor_ghz;
    p.vector_ghz = t.vector_ghz;
    p.scalar_ghz = t.scalar_ghz;
    p.gpsimd_ghz = t.gpsimd_ghz;
    p.pe_transpose_fp32_factor = t.nc_version >= 3 ? 2.0 : 4.0;
    p.tensor_tflops_16bit = t.tensor_tflops_bf16;
    p.tensor_tflops_fp32 = t.tensor_tflops_fp32;
    p.min_ii_cycles = t.min_ii_cycles;
    p.vector_fast_modes = t.nc_version >= 3;
    p.dma_engines = t.dma_engines;
    p.partitions_per_dma_engine = t.partitions / t.dma_engines;
    p.dma_bytes_per_ns = t.dma_engine_gbps;  // GB/s == bytes/ns
    p.dma_fixed_ns = t.dma_fixed_ns;
    p.dma_descriptor_ns = descriptor_ns_for(t.dma_engine_gbps);
    p.dma_transpose_hw = t.dma_transpose_hw;
    p.hbm_bytes_per_ns = t.hbm_gbps_per_core;
    return p;
  }

  // The derivation above: a 4 KiB descriptor runs at kLargeTransferEfficiency.
  static constexpr double kLargeDescriptorBytes = 4096.0;
  static constexpr double kLargeTransferEfficiency = 0.85;
  static double descriptor_ns_for(double bytes_per_ns) {
    return (1.0 / kLargeTransferEfficiency - 1.0) * kLargeDescriptorBytes / bytes_per_ns;
  }
};

}  // namespace ncore
