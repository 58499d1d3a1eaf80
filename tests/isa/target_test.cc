// isa/target.h against shared/reference/neuroncore-facts.md: every key
// number of the three targets, the consistency of the published TFLOPS with
// clock x 128 x 128 MACs x 2, and lookup by name.
#include <ncore/isa/target.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>

namespace ncore {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int kPeRows = 128, kPeCols = 128;  // the 128 x 128 systolic array (facts §1)
constexpr double kFlopsPerMac = 2.0;
// The docs print per-core TFLOPS rounded to whole numbers (92, 79), so the
// product of the clock and the array may differ from them by half a unit.
constexpr double kPublishedRounding = 0.5;

// The targets are compile-time constants: kernels may size tiles with them.
static_assert(kTrn1.partitions == 128 && kTrn2.partitions == 128);
static_assert(kTrn1.sbuf_partition_bytes == 192 * kKiB && kTrn2.sbuf_partition_bytes == 224 * kKiB);
static_assert(kInf2.nc_version == 2 && kTrn2.nc_version == 3);

TEST(TargetTest, OnChipMemory) {
  for (const Target* t : kAllTargets) {
    SCOPED_TRACE(std::string(t->name));
    EXPECT_EQ(t->partitions, 128);  // pmax
    EXPECT_EQ(t->psum_banks, 8);
    EXPECT_EQ(t->psum_bank_bytes, 2 * kKiB);
    EXPECT_EQ(t->psum_partition_bytes(), 16 * kKiB);
    EXPECT_EQ(int64_t{t->partitions} * t->psum_partition_bytes(), 2 * kMiB)
        << "PSUM 2 MiB per core";
    EXPECT_EQ(t->psum_bank_fmax * 4, t->psum_bank_bytes) << "a bank holds 512 fp32";
  }
  // SBUF: v2 24 MiB = 128 x 192 KiB, v3 28 MiB = 128 x 224 KiB.
  EXPECT_EQ(kTrn1.sbuf_partition_bytes, 192 * kKiB);
  EXPECT_EQ(kInf2.sbuf_partition_bytes, 192 * kKiB);
  EXPECT_EQ(kTrn2.sbuf_partition_bytes, 224 * kKiB);
  EXPECT_EQ(kTrn1.partitions * kTrn1.sbuf_partition_bytes, 24 * kMiB);
  EXPECT_EQ(kTrn2.partitions * kTrn2.sbuf_partition_bytes, 28 * kMiB);
}

TEST(TargetTest, TileLimits) {
  for (const Target* t : kAllTargets) {
    SCOPED_TRACE(std::string(t->name));
    EXPECT_EQ(t->gemm_stationary_fmax, 128);
    EXPECT_EQ(t->gemm_moving_fmax, 512);
    EXPECT_EQ(t->psum_bank_fmax, 512);
    EXPECT_EQ(t->pe_transpose_max, 128);
    EXPECT_EQ(t->bn_stats_fmax, 512);
    EXPECT_EQ(t->engine_sbuf_fmax, 64 * 1024);
    EXPECT_EQ(t->engine_psum_fmax, 4 * 1024);
    EXPECT_EQ(t->max_free_dims, 4);
    EXPECT_EQ(t->min_ii_cycles, 64);
    // PSUM's free limit for Vector/Scalar is all of PSUM in fp32.
    EXPECT_EQ(t->engine_psum_fmax * 4, t->psum_partition_bytes());
  }
  EXPECT_FALSE(kTrn1.transpose_16bit_out);
  EXPECT_FALSE(kInf2.transpose_16bit_out);
  EXPECT_TRUE(kTrn2.transpose_16bit_out);
}

TEST(TargetTest, Clocks) {
  for (const Target* t : {&kTrn1, &kInf2}) {
    SCOPED_TRACE(std::string(t->name));
    EXPECT_DOUBLE_EQ(t->tensor_ghz, 2.8);
    EXPECT_DOUBLE_EQ(t->vector_ghz, 1.12);
    EXPECT_DOUBLE_EQ(t->scalar_ghz, 1.4);
    EXPECT_DOUBLE_EQ(t->gpsimd_ghz, 1.4);
  }
  EXPECT_DOUBLE_EQ(kTrn2.tensor_ghz, 2.4);
  EXPECT_DOUBLE_EQ(kTrn2.vector_ghz, 0.96);
  EXPECT_DOUBLE_EQ(kTrn2.scalar_ghz, 1.2);
  EXPECT_DOUBLE_EQ(kTrn2.gpsimd_ghz, 1.2);
}

TEST(TargetTest, TensorThroughputIsClockTimesArray) {
  for (const Target* t : kAllTargets) {
    SCOPED_TRACE(std::string(t->name));
    const double tflops = t->tensor_ghz * 1e9 * kPeRows * kPeCols * kFlopsPerMac / 1e12;
    EXPECT_NEAR(t->tensor_tflops_bf16, tflops, kPublishedRounding);
    // fp32 matmul costs 4 passes (facts §3).
    EXPECT_DOUBLE_EQ(t->tensor_tflops_fp32 * 4, t->tensor_tflops_bf16);
  }
  EXPECT_DOUBLE_EQ(kTrn1.tensor_tflops_bf16, 92.0);
  EXPECT_DOUBLE_EQ(kTrn1.tensor_tflops_fp32, 23.0);
  EXPECT_DOUBLE_EQ(kTrn2.tensor_tflops_bf16, 79.0);
  // facts §1 prints 20 for v3 fp32: 79 / 4 = 19.75 rounds to it.
  EXPECT_NEAR(kTrn2.tensor_tflops_fp32, 20.0, kPublishedRounding);
}

TEST(TargetTest, VectorEngineWidth) {
  EXPECT_EQ(kTrn1.vector_elems_per_cycle, 128);  // v2: 128 lanes
  EXPECT_EQ(kTrn1.vector_elems_per_cycle_16bit, 128);
  EXPECT_EQ(kTrn2.vector_elems_per_cycle_16bit, 512);  // v3: 512 bf16/fp16 per cycle
  EXPECT_EQ(kTrn2.vector_elems_per_cycle, 256);        // 256 for other dtypes
}

TEST(TargetTest, DmaAndHbm) {
  for (const Target* t : kAllTargets) {
    SCOPED_TRACE(std::string(t->name));
    EXPECT_EQ(t->dma_engines, 16);
    EXPECT_EQ(t->dma_queues_per_engine, 16);
    EXPECT_DOUBLE_EQ(t->dma_fixed_ns, 1300.0);
  }
  // Bandwidth guide: 17 B/ns (trn1) and 23 B/ns (trn2) per engine = 272 / 368 GB/s per core.
  EXPECT_DOUBLE_EQ(kTrn1.dma_engines * kTrn1.dma_engine_gbps, 272.0);
  EXPECT_DOUBLE_EQ(kTrn2.dma_engines * kTrn2.dma_engine_gbps, 368.0);
  // HBM per core: 820 GB/s per 2-core trn1/inf2 chip; 2.9 TB/s per 8-core trn2 chip.
  EXPECT_DOUBLE_EQ(kTrn1.hbm_gbps_per_core * 2, 820.0);
  EXPECT_DOUBLE_EQ(kInf2.hbm_gbps_per_core * 2, 820.0);
  EXPECT_DOUBLE_EQ(kTrn2.hbm_gbps_per_core * 8, 2900.0);
  EXPECT_FALSE(kTrn1.dma_transpose_hw);
  EXPECT_TRUE(kTrn2.dma_transpose_hw);
}

TEST(TargetTest, Inf2IsTrn1sNeuronCore) {
  // Same NeuronCore-v2: only the identity differs.
  Target renamed = kInf2;
  renamed.id = kTrn1.id;
  renamed.name = kTrn1.name;
  EXPECT_EQ(renamed.sbuf_partition_bytes, kTrn1.sbuf_partition_bytes);
  EXPECT_EQ(renamed.tensor_tflops_bf16, kTrn1.tensor_tflops_bf16);
  EXPECT_EQ(renamed.hbm_gbps_per_core, kTrn1.hbm_gbps_per_core);
  EXPECT_EQ(renamed.dma_engine_gbps, kTrn1.dma_engine_gbps);
  EXPECT_EQ(renamed.transpose_16bit_out, kTrn1.transpose_16bit_out);
  EXPECT_NE(kInf2.id, kTrn1.id);
}

TEST(TargetTest, IdsNamesAndLookup) {
  EXPECT_EQ(kAllTargets.size(), 3u);
  std::set<std::string> names;
  for (const Target* t : kAllTargets) {
    names.insert(std::string(t->name));
    EXPECT_EQ(&target(t->id), t);
    EXPECT_EQ(find_target(t->name), t);
  }
  EXPECT_EQ(names, (std::set<std::string>{"trn1", "inf2", "trn2"}));
  EXPECT_EQ(find_target("trn1"), &kTrn1);
  EXPECT_EQ(find_target("inf2"), &kInf2);
  EXPECT_EQ(find_target("trn2"), &kTrn2);
  EXPECT_EQ(find_target("trn3"), nullptr);
  EXPECT_EQ(find_target("TRN2"), nullptr);
  EXPECT_EQ(find_target("trn"), nullptr);
  EXPECT_EQ(find_target("trn2 "), nullptr);
  EXPECT_EQ(find_target(""), nullptr);
}

}  // namespace
}  // namespace ncore
