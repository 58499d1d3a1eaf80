// The scheduling part of the cost model: overlap of independent engines,
// serialisation by dependencies with the semaphore cost, static overheads of
// dependent chains, DMA engine sharing and queue order, the HBM ceiling,
// Tensor Engine utilisation and MBU, the critical path, determinism, and
// errors on malformed input.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include <ncore/isa/cost/model.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/kernels/gemm.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32, bf16 = DType::kBF16;
// trn1 clocks (GHz), DMA figures (facts §1-§2, params.h).
constexpr double kPe = 2.8, kVec = 1.12, kAct = 1.4, kPool = 1.4;
constexpr double kFixed = 1300, kBw1 = 17.0;
const double kDesc1 = (1 / 0.85 - 1) * 4096 / kBw1;

Program prog(const Target& t, const std::function<void(DeviceCore&)>& body) {
  return emit(t, body);
}

TEST(Overlap, IndependentEnginesRunConcurrently) {
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto st = nc.sbuf(bf16, 128, {128});
    auto mv = nc.sbuf(bf16, 128, {512});
    auto ps = nc.psum(f32, 128, {512});
    // Buffers live to the end, so no allocation reuses another's memory.
    auto c0 = nc.sbuf(f32, 128, {1024}), c1 = nc.sbuf(f32, 128, {1024});
    auto a0 = nc.sbuf(f32, 128, {2048}), a1 = nc.sbuf(f32, 128, {2048});
    auto io = nc.sbuf(DType::kI32, 128, {500});
    nc.matmul(ps, st, mv, false);  // 512 PE cycles
    nc.tensor_copy(c0, c1);        // 1024 DVE cycles
    nc.activation(a0, ActFunc::kExp, a1);
    nc.iota(io, Affine{});
  });
  ASSERT_EQ(p.dep_ids.size(), 0u);
  const CostReport r = model(p);
  const double want = std::max({512 / kPe, 1024 / kVec, 2048 / kAct, 650 / kPool});
  EXPECT_NEAR(r.latency_ns, want, 1e-9);
  for (const InstrTiming& t : r.timeline) EXPECT_EQ(t.start_ns, 0.0);
  EXPECT_NEAR(r.busy_fraction.at("scalar"), 1.0, 1e-12);
  EXPECT_NEAR(r.busy_fraction.at("tensor"), 512 / kPe / want, 1e-12);
}

TEST(Overlap, DependencySerialisesAndCostsASemaphore) {
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto st = nc.sbuf(bf16, 128, {128});
    auto mv = nc.sbuf(bf16, 128, {512});
    auto ps = nc.psum(f32, 128, {512});
    nc.matmul(ps, st, mv, false);
    nc.tensor_copy(nc.sbuf(bf16, 128, {512}), ps);  // reads the matmul's PSUM
  });
  ASSERT_EQ(p.deps(1).size(), 1u);
  const CostReport r = model(p);
  const double mm = 512 / kPe, sem = 100 / kVec, copy = 512 / kVec;
  EXPECT_NEAR(r.timeline[1].start_ns, mm + sem, 1e-9);
  EXPECT_NEAR(r.latency_ns, mm + sem + copy, 1e-9);
  // The semaphore is a parameter: zero removes it.
  CostParams c = CostParams::defaults(kTrn1);
  c.semaphore_cycles = 0;
  EXPECT_NEAR(model(p, c).latency_ns, mm + copy, 1e-9);
}

TEST(Overlap, AccumulatingMatmulsChainWithoutSemaphores) {
  // Same-engine dependencies cost nothing extra on TensorE.
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto st = nc.sbuf(bf16, 128, {128});
    auto mv = nc.sbuf(bf16, 128, {512});
    auto ps = nc.psum(f32, 128, {512});
    for (int k = 0; k < 8; ++k) nc.matmul(ps, st, mv, k > 0);
  });
  EXPECT_NEAR(model(p).latency_ns, 8 * 512 / kPe, 1e-9);
}

TEST(StaticOverheads, DependentTinyActivationsIssue264CyclesApart) {
  // The perf guide measured dependent 1-element ScalarE activations at
  // "189 ns (264 ScalarE cycles on NC-v2)" apart: MIN_II + 100 + 100.
  const int n = 10;
  const Program dep = prog(kTrn1, [](DeviceCore& nc) {
    auto x = nc.sbuf(f32, 128, {1});
    for (int i = 0; i < n; ++i) nc.activation(x, ActFunc::kExp, x);
  });
  const CostReport r = model(dep);
  EXPECT_NEAR(r.latency_ns, (164 + (n - 1) * 264) / kAct, 1e-9);
  EXPECT_NEAR(r.timeline[5].start_ns - r.timeline[4].start_ns, 264 / kAct, 1e-9);
  EXPECT_NEAR(264 / kAct, 189, 1);
  // Independent tiny activations only pay MIN_II + the small-N 100 each.
  const Program indep = prog(kTrn1, [](DeviceCore& nc) {
    // One element per 64 B granule: dependency tracking sees them apart.
    auto x = nc.sbuf(f32, 128, {n, 16}), y = nc.sbuf(f32, 128, {n, 16});
    for (int i = 0; i < n; ++i)
      nc.activation(y.index(0, i).slice(0, 0, 1), ActFunc::kExp, x.index(0, i).slice(0, 0, 1));
  });
  ASSERT_EQ(indep.dep_ids.size(), 0u);
  EXPECT_NEAR(model(indep).latency_ns, n * 164 / kAct, 1e-9);
}

// ---- DMA

double row_ns(int64_t bytes) { return kDesc1 + bytes / kBw1; }

TEST(Dma, ConcurrentDmasShareTheEngines) {
  // Two independent [128, 2048] bf16 loads: every engine moves both.
  const Program both = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 2048});
    auto b = nc.hbm("b", bf16, {128, 2048});
    auto ta = nc.sbuf(bf16, 128, {2048}), tb = nc.sbuf(bf16, 128, {2048});
    nc.dma(ta, a);
    nc.dma(tb, b);
  });
  ASSERT_NE(both.instrs[0].queue, both.instrs[1].queue);
  EXPECT_NEAR(model(both).latency_ns, kFixed + 2 * 8 * row_ns(4096), 1e-6);
  // Halves of the partitions use disjoint engines (8 partitions each): concurrent.
  const Program halves = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 2048});
    auto t = nc.sbuf(bf16, 128, {2048});
    nc.dma(t.partitions(0, 64), a.slice(0, 0, 64));
    nc.dma(t.partitions(64, 64), a.slice(0, 64, 128));
  });
  const CostReport r = model(halves);
  EXPECT_NEAR(r.latency_ns, kFixed + 8 * row_ns(4096), 1e-6);
  EXPECT_NEAR(r.busy_fraction.at("dma"), 8 * row_ns(4096) / r.latency_ns, 1e-9);
  for (int e = 0; e < 16; ++e) EXPECT_NEAR(r.dma_engine_busy_ns[size_t(e)], 8 * row_ns(4096), 1e-6);
}

TEST(Dma, OneQueueRunsItsDmasInOrder) {
  Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {64, 2048});
    auto b = nc.hbm("b", bf16, {64, 2048});
    auto t = nc.sbuf(bf16, 128, {2048});
    nc.dma(t.partitions(0, 64), a);
    nc.dma(t.partitions(64, 64), b);  // other engines: would overlap on another queue
  });
  EXPECT_NEAR(model(p).latency_ns, kFixed + 8 * row_ns(4096), 1e-6);
  p.instrs[1].queue = p.instrs[0].queue;
  const CostReport r = model(p);
  EXPECT_NEAR(r.timeline[1].start_ns, r.timeline[0].end_ns, 1e-9);
  EXPECT_NEAR(r.latency_ns, 2 * (kFixed + 8 * row_ns(4096)), 1e-6);
  ASSERT_EQ(r.dma_queues.size(), 1u);
  EXPECT_EQ(r.dma_queues[0].instrs, 2u);
  EXPECT_NEAR(r.dma_queues[0].bytes, 2 * 64 * 4096, 1e-9);
}

TEST(Dma, ComputeWaitsForTheLoadAndTheStoreForTheCompute) {
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {128, 512});
    auto y = nc.hbm("y", f32, {128, 512}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 128, {512});
    nc.dma(t, x);
    nc.activation(t, ActFunc::kExp, t);
    nc.dma(y, t);
  });
  const CostReport r = model(p);
  const double load = kFixed + 8 * row_ns(2048);
  EXPECT_NEAR(r.timeline[1].start_ns, load + 100 / kAct, 1e-6);
  EXPECT_NEAR(r.timeline[2].start_ns, r.timeline[1].end_ns, 1e-9);  // trigger cost is in kFixed
  EXPECT_NEAR(r.latency_ns, load + (100 + 512) / kAct + load, 1e-6);
  EXPECT_EQ(r.critical_path, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_NEAR(r.hbm_bytes, 2 * 128 * 2048, 1e-9);
  EXPECT_NEAR(r.mbu, r.hbm_bytes / (r.latency_ns * 410.0), 1e-12);
}

TEST(Dma, HbmCeilingIsSharedByConcurrentTransfers) {
  // One [128, 16384] bf16 load: 32 KiB rows, 4 MiB in all.
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 16384});
    nc.dma(nc.sbuf(bf16, 128, {16384}), a);
  });
  const double bytes = 128.0 * 32768, engine_bound = 8 * row_ns(32768);
  // trn1: 16 x 17 B/ns = 272 cannot reach 410 GB/s; the engines bound it.
  EXPECT_NEAR(model(p).latency_ns, kFixed + engine_bound, 1e-6);
  // A ceiling of 100 B/ns binds: the bytes take bytes / 100 however shared.
  CostParams c = CostParams::defaults(kTrn1);
  c.hbm_bytes_per_ns = 100;
  EXPECT_NEAR(model(p, c).latency_ns, kFixed + bytes / 100, 1e-3 * bytes / 100);
  // Two such loads on disjoint engines at once: each alone would exceed the
  // ceiling, so together they take all their bytes / 100.
  const Program two = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 16384});
    auto t = nc.sbuf(bf16, 128, {16384});
    nc.dma(t.partitions(0, 64), a.slice(0, 0, 64));
    nc.dma(t.partitions(64, 64), a.slice(0, 64, 128));
  });
  const CostReport r = model(two, c);
  EXPECT_NEAR(r.latency_ns, kFixed + bytes / 100, 1e-3 * bytes / 100);
  EXPECT_NEAR(r.mbu, bytes / (r.latency_ns * 100), 1e-12);
  EXPECT_LE(r.mbu, 1.0);
  // trn2: 16 x 23 B/ns slightly exceeds the 362.5 GB/s per core.
  const Program p2 = prog(kTrn2, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 65536});
    nc.dma(nc.sbuf(bf16, 128, {65536}), a);
  });
  const double desc2 = (1 / 0.85 - 1) * 4096 / 23.0;
  const double eng2 = 8 * (desc2 + 131072 / 23.0), hbm2 = 128.0 * 131072 / 362.5;
  ASSERT_GT(hbm2, eng2);
  EXPECT_NEAR(model(p2).latency_ns, kFixed + hbm2, 1e-3 * hbm2);
}

// ---- utilisation

TEST(Utilisation, BackToBackMatmulChainIsNearPeak) {
  for (const Target* t : {&kTrn1, &kTrn2}) {
    const Program p = prog(*t, [](DeviceCore& nc) {
      auto st = nc.sbuf(bf16, 128, {128});
      auto mv = nc.sbuf(bf16, 128, {512});
      auto ps = nc.psum(f32, 128, {512});
      for (int k = 0; k < 64; ++k) nc.matmul(ps, st, mv, k > 0);
    });
    const CostReport r = model(p);
    EXPECT_NEAR(r.matmul_flops, 64 * 2.0 * 128 * 128 * 512, 1);
    // 128 x 128 MACs per cycle at the TensorE clock vs the published peak.
    EXPECT_NEAR(r.te_utilization, t->tensor_ghz * 128 * 128 * 2 / (t->tensor_tflops_bf16 * 1e3),
                1e-9);
    EXPECT_GT(r.te_utilization, 0.99) << t->name;
    EXPECT_LE(r.te_utilization, 1.0) << t->name;
  }
  // fp32 is measured against the fp32 peak: the same chain is as well used.
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto st = nc.sbuf(f32, 128, {128});
    auto mv = nc.sbuf(f32, 128, {512});
    auto ps = nc.psum(f32, 128, {512});
    for (int k = 0; k < 16; ++k) nc.matmul(ps, st, mv, k > 0);
  });
  EXPECT_GT(model(p).te_utilization, 0.99);
}

TEST(Utilisation, StarvedTensorEngineShowsLowUtilisation) {
  // Every matmul waits for its own operand load: DMA-bound, TensorE mostly idle.
  const Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {128, 8 * 512});
    auto ps = nc.psum(f32, 128, {512});
    auto st = nc.sbuf(bf16, 128, {128});
    for (int k = 0; k < 8; ++k) {
      auto mv = nc.sbuf(bf16, 128, {512});
      nc.dma(mv, a.slice(1, 512 * k, 512 * (k + 1)));
      nc.matmul(ps, st, mv, k > 0);
    }
  });
  const CostReport r = model(p);
  EXPECT_LT(r.te_utilization, 0.2);
  // Data moves 8 x 822 ns of the time; the 1.3 us trigger latencies are idle.
  EXPECT_NEAR(r.busy_fraction.at("dma"), 8 * 8 * row_ns(1024) / r.latency_ns, 1e-9);
  // The critical path ends in the last matmul and runs through DMAs.
  ASSERT_FALSE(r.critical_path.empty());
  EXPECT_EQ(p.instrs[r.critical_path.back()].op, Opcode::kMatmul);
  EXPECT_TRUE(std::any_of(r.critical_path.begin(), r.critical_path.end(),
                          [&](uint32_t i) { return p.instrs[i].op == Opcode::kDma; }));
}

// ---- whole programs

TEST(Model, DeterministicAndFast) {
  const Program p = prog(kTrn2, [](DeviceCore& nc) {
    auto a = nc.hbm("A", bf16, {512, 1024});
    auto b = nc.hbm("B", bf16, {1024, 1536});
    auto c = nc.hbm("C", f32, {512, 1536}, HbmKind::kOutput);
    gemm(nc, c, a, b);
  });
  const CostReport r1 = model(p), r2 = model(p);
  EXPECT_GT(r1.latency_ns, 0);
  EXPECT_EQ(r1.latency_ns, r2.latency_ns);
  EXPECT_EQ(r1.critical_path, r2.critical_path);
  ASSERT_EQ(r1.timeline.size(), r2.timeline.size());
  for (size_t i = 0; i < r1.timeline.size(); ++i) {
    EXPECT_EQ(r1.timeline[i].start_ns, r2.timeline[i].start_ns);
    EXPECT_EQ(r1.timeline[i].end_ns, r2.timeline[i].end_ns);
  }
  // Every instruction starts after its dependencies end and runs on its track
  // alone; the critical path is a chain of predecessors.
  for (size_t i = 0; i < p.instrs.size(); ++i) {
    for (uint32_t d : p.deps(i)) EXPECT_GE(r1.timeline[i].start_ns, r1.timeline[d].end_ns);
    EXPECT_GE(r1.timeline[i].end_ns, r1.timeline[i].start_ns);
  }
  std::vector<double> free_at(TimelineTrack::kDmaBase + 256, 0.0);
  for (size_t i = 0; i < p.instrs.size(); ++i) {
    const InstrTiming& t = r1.timeline[i];
    EXPECT_GE(t.start_ns, free_at[size_t(t.track)]);
    free_at[size_t(t.track)] = t.end_ns;
  }
  EXPECT_EQ(r1.timeline[r1.critical_path.back()].end_ns, r1.latency_ns);
  for (size_t k = 1; k < r1.critical_path.size(); ++k)
    EXPECT_LT(r1.critical_path[k - 1], r1.critical_path[k]);
  for (const auto& [engine, f] : r1.busy_fraction) {
    EXPECT_GE(f, 0.0) << engine;
    EXPECT_LE(f, 1.0 + 1e-12) << engine;
  }
}

TEST(Model, EmptyProgram) {
  const CostReport r = model(prog(kTrn1, [](DeviceCore&) {}));
  EXPECT_EQ(r.latency_ns, 0.0);
  EXPECT_TRUE(r.critical_path.empty());
  EXPECT_EQ(r.te_utilization, 0.0);
}

TEST(Model, RejectsMalformedProgramsAndParameters) {
  Program p = prog(kTrn1, [](DeviceCore& nc) {
    auto x = nc.sbuf(f32, 128, {64});
    nc.memset(x, 1.0f);
    nc.activation(x, ActFunc::kExp, x);
  });
  Program fwd = p;
  fwd.dep_ids = {1};
  fwd.dep_begin = {0, 1, 1};  // instruction 0 waits for 1
  EXPECT_THROW(model(fwd), Error);
  Program torn = p;
  torn.dep_begin.pop_back();
  EXPECT_THROW(model(torn), Error);
  Program wrong_engine = p;
  wrong_engine.instrs[0].engine = Engine::kDma;
  EXPECT_THROW(model(wrong_engine), Error);
  CostParams c = CostParams::defaults(kTrn1);
  c.dma_bytes_per_ns = 0;
  EXPECT_THROW(model(p, c), Error);
  c = CostParams::defaults(kTrn1);
  c.vector_ghz = -1;
  EXPECT_THROW(model(p, c), Error);
  c = CostParams::defaults(kTrn1);
  c.dma_engines = 17;
  EXPECT_THROW(model(p, c), Error);
}

}  // namespace
}  // namespace ncore
