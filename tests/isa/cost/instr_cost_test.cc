// Each instruction's modelled cost pinned to its published formula on each
// target: a one-instruction program's latency is the formula (plus, for a
// DMA, the fixed trigger latency). Expected values are computed here from the
// documented constants (docs/cost-model.md), not from the model's helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include <ncore/isa/cost/model.h>
#include <ncore/isa/emit/emitter.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32, bf16 = DType::kBF16, fp8 = DType::kFP8E4M3, i32 = DType::kI32;

// Documented constants (facts §1-§3, params.h).
struct Clocks {
  double pe, vec, act, pool;
};
Clocks clocks(const Target& t) {
  return t.nc_version == 2 ? Clocks{2.8, 1.12, 1.4, 1.4} : Clocks{2.4, 0.96, 1.2, 1.2};
}
double dma_bw(const Target& t) { return t.nc_version == 2 ? 17.0 : 23.0; }  // bytes/ns per engine
double desc_ns(const Target& t) { return (1 / 0.85 - 1) * 4096 / dma_bw(t); }
constexpr double kFixedNs = 1300;

double latency(const Target& t, const std::function<void(DeviceCore&)>& body) {
  const Program p = emit(t, body);
  EXPECT_EQ(p.instrs.size(), 1u);
  return model(p).latency_ns;
}

class PerTarget : public ::testing::TestWithParam<const Target*> {
 protected:
  const Target& t() const { return *GetParam(); }
  Clocks c() const { return clocks(t()); }
  bool v3() const { return t().nc_version >= 3; }
};

TEST_P(PerTarget, MatmulIsMaxOfCappedStationaryAndMoving) {
  // [K 128, M 128] x [128, N 512] bf16: max(min(64, 128), 512) = 512 cycles.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto st = nc.sbuf(bf16, 128, {128});
                        auto mv = nc.sbuf(bf16, 128, {512});
                        auto ps = nc.psum(f32, 128, {512});
                        nc.matmul(ps, st, mv, false);
                      }),
              512 / c().pe, 1e-9);
  // M 32, N 16: the stationary load shows, max(min(64, 32), 16) = 32.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto st = nc.sbuf(bf16, 128, {32});
                        auto mv = nc.sbuf(bf16, 128, {16});
                        auto ps = nc.psum(f32, 32, {16});
                        nc.matmul(ps, st, mv, false);
                      }),
              32 / c().pe, 1e-9);
  // M 128, N 16: capped at 64.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto st = nc.sbuf(fp8, 128, {128});
                        auto mv = nc.sbuf(fp8, 128, {16});
                        auto ps = nc.psum(f32, 128, {16});
                        nc.matmul(ps, st, mv, false);
                      }),
              64 / c().pe, 1e-9);
  // fp32 inputs: 4x.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto st = nc.sbuf(f32, 64, {128});
                        auto mv = nc.sbuf(f32, 64, {256});
                        auto ps = nc.psum(f32, 128, {256});
                        nc.matmul(ps, st, mv, true);
                      }),
              4 * 256 / c().pe, 1e-9);
}

TEST_P(PerTarget, PeTransposeIsMaxOfPartitionsAndCappedFree) {
  const DType out16 = v3() ? bf16 : f32;
  EXPECT_NEAR(latency(t(),
                      [&](DeviceCore& nc) {  // [128, 100] -> max(128, 64)
                        auto src = nc.sbuf(bf16, 128, {100});
                        auto dst = nc.psum(out16, 100, {128});
                        nc.transpose(dst, src);
                      }),
              128 / c().pe, 1e-9);
  EXPECT_NEAR(latency(t(),
                      [&](DeviceCore& nc) {  // [32, 40] -> max(32, 40)
                        auto src = nc.sbuf(bf16, 32, {40});
                        auto dst = nc.psum(out16, 40, {32});
                        nc.transpose(dst, src);
                      }),
              40 / c().pe, 1e-9);
  // fp32: as an fp32 matmul on v2 (4x); v3's transpose path is 2x faster.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto src = nc.sbuf(f32, 128, {128});
                        auto dst = nc.psum(f32, 128, {128});
                        nc.transpose(dst, src);
                      }),
              (v3() ? 2 : 4) * 128 / c().pe, 1e-9);
}

TEST_P(PerTarget, VectorCopyScalarAndFastModes) {
  auto copy = [&](DType d, DType s, Space from, Engine e) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(d, 128, {1024});
      auto src = from == Space::kPsum ? nc.psum(s, 128, {512, 2}) : nc.sbuf(s, 128, {1024});
      nc.tensor_copy(dst, src, e);
    });
  };
  EXPECT_NEAR(copy(f32, f32, Space::kSbuf, Engine::kVector), 1024 / c().vec, 1e-9);
  EXPECT_NEAR(copy(bf16, f32, Space::kPsum, Engine::kVector), 1024 / c().vec, 1e-9);
  // S -> S contiguous 16-bit: 4x on v3 (facts §3 perf mode), N on v2.
  EXPECT_NEAR(copy(bf16, bf16, Space::kSbuf, Engine::kVector), (v3() ? 256 : 1024) / c().vec, 1e-9);
  EXPECT_NEAR(copy(bf16, bf16, Space::kSbuf, Engine::kScalar), 1024 / c().act, 1e-9);
  EXPECT_NEAR(copy(bf16, bf16, Space::kSbuf, Engine::kGpSimd), 1024 / c().pool, 1e-9);
  // tensor_scalar: max(MIN_II, N), the same 4x mode.
  auto ts = [&](DType d, int64_t n) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(d, 128, {n});
      auto src = nc.sbuf(d, 128, {n});
      nc.tensor_scalar(dst, src, AluOp::kMultiply, 2.0f, AluOp::kAdd, 1.0f);
    });
  };
  EXPECT_NEAR(ts(f32, 2048), 2048 / c().vec, 1e-9);
  EXPECT_NEAR(ts(bf16, 2048), (v3() ? 512 : 2048) / c().vec, 1e-9);
}

TEST_P(PerTarget, TensorTensorOneOrTwoPasses) {
  auto tt = [&](DType d, Space in1, AluOp op) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(d, 128, {512});
      auto a = nc.sbuf(d, 128, {512});
      auto b = in1 == Space::kPsum ? nc.psum(f32, 128, {512}) : nc.sbuf(d, 128, {512});
      nc.tensor_tensor(dst, a, b, op);
    });
  };
  EXPECT_NEAR(tt(f32, Space::kSbuf, AluOp::kAdd), 2 * 512 / c().vec, 1e-9);  // 2N
  EXPECT_NEAR(tt(f32, Space::kPsum, AluOp::kAdd), 512 / c().vec, 1e-9);      // one input in PSUM
  EXPECT_NEAR(tt(bf16, Space::kSbuf, AluOp::kAdd), 512 / c().vec, 1e-9);     // all-bf16 add in SBUF
  // All-bf16 max: 2N on v2; v3's fast mode halves every all-bf16 SBUF op.
  EXPECT_NEAR(tt(bf16, Space::kSbuf, AluOp::kMax), (v3() ? 512 : 1024) / c().vec, 1e-9);
}

// facts §3 scalar_tensor_tensor: N when data and tensor are bf16, op0 =
// subtract, op1 = multiply and N is even, else 2N; no PSUM-input rule and no
// fast mode is published for it, so neither applies (unlike tensor_tensor).
TEST_P(PerTarget, ScalarTensorTensorFastOnlyForBf16SubtractMultiply) {
  auto stt = [&](DType data, DType tensor, Space in, AluOp op0, AluOp op1, int64_t n) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(f32, 128, {n});
      auto a = in == Space::kPsum ? nc.psum(data, 128, {n}) : nc.sbuf(data, 128, {n});
      auto b = nc.sbuf(tensor, 128, {n});
      auto col = nc.sbuf(f32, 128, {1});
      nc.scalar_tensor_tensor(dst, a, op0, col, op1, b);
    });
  };
  const AluOp sub = AluOp::kSubtract, mul = AluOp::kMultiply, add = AluOp::kAdd;
  EXPECT_NEAR(stt(bf16, bf16, Space::kSbuf, sub, mul, 512), 512 / c().vec, 1e-9);
  EXPECT_NEAR(stt(bf16, bf16, Space::kSbuf, sub, mul, 511), 2 * 511 / c().vec, 1e-9);  // N odd
  EXPECT_NEAR(stt(f32, bf16, Space::kSbuf, sub, mul, 512), 2 * 512 / c().vec, 1e-9);
  EXPECT_NEAR(stt(bf16, f32, Space::kSbuf, sub, mul, 512), 2 * 512 / c().vec, 1e-9);
  EXPECT_NEAR(stt(bf16, bf16, Space::kSbuf, mul, add, 512), 2 * 512 / c().vec, 1e-9);
  EXPECT_NEAR(stt(bf16, bf16, Space::kSbuf, mul, mul, 512), 2 * 512 / c().vec, 1e-9);
  EXPECT_NEAR(stt(f32, bf16, Space::kPsum, mul, add, 512), 2 * 512 / c().vec, 1e-9);  // PSUM data
}

TEST_P(PerTarget, ReduceActivationMemsetGpSimdBn) {
  auto reduce = [&](DType s, AluOp op) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(f32, 128, {4});
      auto src = nc.sbuf(s, 128, {4, 256});
      nc.tensor_reduce(dst, op, src);
    });
  };
  EXPECT_NEAR(reduce(bf16, AluOp::kAdd), 512 / c().vec, 1e-9);  // N/2 for bf16 add/max
  EXPECT_NEAR(reduce(bf16, AluOp::kMax), 512 / c().vec, 1e-9);
  EXPECT_NEAR(reduce(bf16, AluOp::kMin), 1024 / c().vec, 1e-9);
  EXPECT_NEAR(reduce(f32, AluOp::kAdd), 1024 / c().vec, 1e-9);

  auto act = [&](bool accum) {
    return latency(t(), [&](DeviceCore& nc) {
      auto dst = nc.sbuf(bf16, 128, {768});
      auto src = nc.psum(f32, 128, {384, 2});
      auto acc = nc.sbuf(f32, 128, {1});
      ActOpts o;
      if (accum) o.accum = acc;
      nc.activation(dst, ActFunc::kExp, src, o);
    });
  };
  EXPECT_NEAR(act(false), 768 / c().act, 1e-9);
  EXPECT_NEAR(act(true), (768 + 64) / c().act, 1e-9);  // + MIN_II read-out

  auto memset = [&](DType d, float v) {
    return latency(t(), [&](DeviceCore& nc) { nc.memset(nc.sbuf(d, 128, {1024}), v); });
  };
  EXPECT_NEAR(memset(f32, 0), 1024 / c().vec, 1e-9);
  EXPECT_NEAR(memset(bf16, 0), 512 / c().vec, 1e-9);  // zero in 16-bit: N/2
  EXPECT_NEAR(memset(bf16, 1), 1024 / c().vec, 1e-9);

  EXPECT_NEAR(latency(t(), [](DeviceCore& nc) { nc.iota(nc.sbuf(i32, 128, {1000}), Affine{}); }),
              (150 + 1000) / c().pool, 1e-9);
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto x = nc.sbuf(f32, 128, {300});
                        nc.affine_select(x, x, Affine{0, 1, {-1}}, AluOp::kIsGe, -1e30f);
                      }),
              (150 + 300) / c().pool, 1e-9);
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        nc.bn_stats(nc.sbuf(f32, 128, {6}), nc.sbuf(bf16, 128, {512}));
                      }),
              512 / c().vec, 1e-9);
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        nc.bn_aggr(nc.sbuf(f32, 128, {2}), nc.sbuf(f32, 128, {8, 6, 6}));
                      }),
              13.0 * 288 / 3 / c().vec, 1e-9);
}

TEST_P(PerTarget, StridesBeyondSixteenBytesHalveTheBandwidth) {
  // Every `stride`-th f32 of each partition: 4 B x stride between elements.
  auto copy = [&](int64_t stride, Engine e) {
    return latency(t(), [&](DeviceCore& nc) {
      auto src = nc.sbuf(f32, 128, {512, stride});
      auto dst = nc.sbuf(f32, 128, {512});
      nc.tensor_copy(dst, src.slice(1, 0, 1), e);
    });
  };
  EXPECT_NEAR(copy(4, Engine::kVector), 512 / c().vec, 1e-9);      // 16 B: full bandwidth
  EXPECT_NEAR(copy(8, Engine::kVector), 2 * 512 / c().vec, 1e-9);  // 32 B: half
  EXPECT_NEAR(copy(8, Engine::kScalar), 2 * 512 / c().act, 1e-9);
}

TEST_P(PerTarget, SmallInstructionsPayMinIiAndStaticOverhead) {
  // N = 64 < 128: max(MIN_II, 64) + 100 on VectorE and ScalarE.
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        nc.tensor_copy(nc.sbuf(f32, 128, {64}), nc.sbuf(f32, 128, {64}));
                      }),
              (64 + 100) / c().vec, 1e-9);
  EXPECT_NEAR(latency(t(),
                      [](DeviceCore& nc) {
                        auto x = nc.sbuf(f32, 128, {1});
                        nc.activation(x, ActFunc::kCopy, x);
                      }),
              (64 + 100) / c().act, 1e-9);
  // TensorE and GpSimd have their own fixed costs in their formulas.
  EXPECT_NEAR(latency(t(), [](DeviceCore& nc) { nc.iota(nc.sbuf(i32, 128, {1}), Affine{}); }),
              151 / c().pool, 1e-9);
}

// ---- DMA

double dma_latency(const Target& t, int partitions, int64_t row_elems, DType d) {
  return latency(t, [&](DeviceCore& nc) {
    auto src = nc.hbm("x", d, {partitions, row_elems});
    nc.dma(nc.sbuf(d, partitions, {row_elems}), src);
  });
}

TEST_P(PerTarget, DmaIsFixedLatencyPlusRowsOnTheBusiestEngine) {
  // [128, 512] bf16: 8 rows of 1 KiB on each of the 16 engines.
  const double row = desc_ns(t()) + 1024 / dma_bw(t());
  EXPECT_NEAR(dma_latency(t(), 128, 512, bf16), kFixedNs + 8 * row, 1e-6);
  // 4 partitions use one engine (DMA overview example 1: A[4, 4096] bf16).
  EXPECT_NEAR(dma_latency(t(), 4, 4096, bf16), kFixedNs + 4 * (desc_ns(t()) + 8192 / dma_bw(t())),
              1e-6);
  // 20 partitions: engines 0 and 1 take 8 rows, engine 2 takes 4.
  EXPECT_NEAR(dma_latency(t(), 20, 256, f32), kFixedNs + 8 * (desc_ns(t()) + 1024 / dma_bw(t())),
              1e-6);
}

TEST_P(PerTarget, DmaEfficiencyCliffBelowTwoKibPerPartition) {
  // Achieved over peak bandwidth for a [128, bytes] load, fixed latency aside.
  auto efficiency = [&](int64_t bytes) {
    const double ns = dma_latency(t(), 128, bytes, fp8) - kFixedNs;
    return 8 * bytes / dma_bw(t()) / ns;
  };
  EXPECT_LT(efficiency(256), 0.30);   // "severely overhead-bound"
  EXPECT_GT(efficiency(2048), 0.70);  // "approaches peak"
  EXPECT_LT(efficiency(2048), 0.80);
  EXPECT_NEAR(efficiency(4096), 0.85, 1e-9);  // "close to 85%" at 32 KiB per engine
  EXPECT_GT(efficiency(65536), 0.98);
  for (int64_t b = 64; b < 65536; b *= 2) EXPECT_LT(efficiency(b), efficiency(2 * b)) << b;
}

TEST_P(PerTarget, StridedDmaPaysOneDescriptorPerRun) {
  // Every other element of a row: 512 runs of one element each.
  const double got = latency(t(), [](DeviceCore& nc) {
    auto src = nc.hbm("x", f32, {128, 1024});
    nc.dma(nc.sbuf(f32, 128, {512}), src.reshape({128, 512, 2}).index(2, 0));
  });
  EXPECT_NEAR(got, kFixedNs + 8 * (512 * desc_ns(t()) + 2048 / dma_bw(t())), 1e-6);
  // A cast moves the wider side's bytes.
  const double cast = latency(t(), [](DeviceCore& nc) {
    auto src = nc.hbm("x", bf16, {128, 1024});
    nc.dma(nc.sbuf(f32, 128, {1024}), src);
  });
  EXPECT_NEAR(cast, kFixedNs + 8 * (desc_ns(t()) + 4096 / dma_bw(t())), 1e-6);
}

TEST_P(PerTarget, TransposingDmaElementGranularOnV2HardwareOnV3) {
  const double got = latency(t(), [](DeviceCore& nc) {
    auto src = nc.hbm("x", bf16, {256, 128});  // [F, P]
    nc.dma_transpose(nc.sbuf(bf16, 128, {256}), src);
  });
  const double copy_row = desc_ns(t()) + 512 / dma_bw(t());
  if (v3())
    EXPECT_NEAR(got, kFixedNs + 8 * copy_row / 0.9, 1e-6);  // ~90% of copy throughput
  else
    EXPECT_NEAR(got, kFixedNs + 8 * 256 * (desc_ns(t()) + 2 / dma_bw(t())), 1e-6);
}

// NC-v3 SBUF -> SBUF: the copy's row time at ~50% (facts section 2), a
// descriptor per destination row; blocks side by side make longer rows.
TEST(DmaTransposeSbuf, HalfOfCopyThroughputPerDestinationRow) {
  for (int64_t blocks : {1, 4}) {
    const double got = latency(kTrn2, [&](DeviceCore& nc) {
      auto src = nc.sbuf(bf16, 128, {blocks, 128});  // [F, B x P]
      nc.dma_transpose(nc.sbuf(bf16, 128, {blocks, 128}), src);
    });
    const double copy_row = desc_ns(kTrn2) + double(blocks) * 256 / dma_bw(kTrn2);
    EXPECT_NEAR(got, kFixedNs + 8 * copy_row / 0.5, 1e-6) << blocks;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, PerTarget, ::testing::ValuesIn(kAllTargets),
                         [](const auto& info) { return std::string(info.param->name); });

TEST(RowsOnEngine, MapsEightPartitionsPerEngineAndWrapsHbmRows) {
  const CostParams c = CostParams::defaults(kTrn2);
  cost::DmaShape s;
  s.first_row = 64;
  s.rows = 64;  // partitions 64..127: engines 8..15
  for (int e = 0; e < 16; ++e) EXPECT_EQ(cost::rows_on_engine(c, s, e), e >= 8 ? 8 : 0) << e;
  s.first_row = 3;
  s.rows = 10;  // 3..12: engine 0 rows 3..7, engine 1 rows 8..12
  EXPECT_EQ(cost::rows_on_engine(c, s, 0), 5);
  EXPECT_EQ(cost::rows_on_engine(c, s, 1), 5);
  EXPECT_EQ(cost::rows_on_engine(c, s, 2), 0);
  s.first_row = 0;
  s.rows = 1000;  // HBM rows wrap around the 16 engines every 128 rows
  int64_t total = 0;
  for (int e = 0; e < 16; ++e) {
    const int64_t r = cost::rows_on_engine(c, s, e);
    EXPECT_EQ(r, e < 13 ? 64 : 56) << e;  // 125 blocks of 8: engines 0..12 get 8, 13..15 get 7
    total += r;
  }
  EXPECT_EQ(total, 1000);
}

}  // namespace
}  // namespace ncore
