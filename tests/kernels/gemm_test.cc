// GEMM three ways: the CPU reference vs the float64 golden, the interpreter's
// replay of the emitted program vs the golden, and structural checks of the
// program; plus exact integer cases, bad input, and the interpreter catching a
// dropped dependency.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include <golden.h>
#include <ncore/host.h>
#include <ncore/isa/cost/model.h>
#include <ncore/kernels/gemm.h>

namespace ncore {
namespace {

using golden::MatF;

struct Case {
  int64_t m, n, k;
  DType dtype;
  bool a_transposed = false;
};

std::string name(const Case& c) {
  return cat(c.m, "x", c.n, "x", c.k, "_", dtype_name(c.dtype), c.a_transposed ? "_at" : "");
}

// Inputs rounded to the dtype, as the kernel sees them: f32 values + encoding.
struct Inputs {
  MatF a, b;  // a: [M, K] (or [K, M] when transposed), b: [K, N]
  std::vector<uint8_t> a_enc, b_enc;
};

Inputs make_inputs(const Case& c, uint64_t seed, bool integer = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> small(-3, 3);
  auto fill = [&](MatF& m, std::vector<uint8_t>& enc) {
    enc.resize(size_t(m.size() * dtype_size(c.dtype)));
    for (int64_t i = 0; i < m.size(); ++i) {
      const float v = integer ? float(small(rng)) : u(rng);
      encode(c.dtype, v, enc.data() + i * dtype_size(c.dtype));
      m.data()[i] = decode(c.dtype, enc.data() + i * dtype_size(c.dtype));
    }
  };
  Inputs in;
  in.a.resize(c.a_transposed ? c.k : c.m, c.a_transposed ? c.m : c.k);
  in.b.resize(c.k, c.n);
  fill(in.a, in.a_enc);
  fill(in.b, in.b_enc);
  return in;
}

std::vector<HostTensor> io_for(const Case& c, Inputs& in, MatF& out) {
  out.resize(c.m, c.n);
  out.setConstant(std::numeric_limits<float>::quiet_NaN());
  return {{"A", in.a_enc.data(), c.dtype, {in.a.rows(), in.a.cols()}},
          {"B", in.b_enc.data(), c.dtype, {c.k, c.n}},
          {"C", out.data(), DType::kF32, {c.m, c.n}, HbmKind::kOutput}};
}

auto gemm_kernel(const Case& c) {
  return [at = c.a_transposed](auto& nc, std::vector<HbmTensor>& t) {
    gemm(nc, t[2], t[0], t[1], {.a_transposed = at});
  };
}

MatF a_rowmajor(const Case& c, const Inputs& in) {
  return c.a_transposed ? MatF(in.a.transpose()) : in.a;
}

const Case kCases[] = {
    {1, 1, 1, DType::kF32},          {1, 1, 1, DType::kBF16},
    {130, 513, 129, DType::kF32},    {130, 513, 129, DType::kBF16},
    {257, 1000, 1100, DType::kF32},  {257, 1000, 1100, DType::kBF16},  // two K blocks
    {64, 96, 300, DType::kF32, true}, {200, 77, 1500, DType::kBF16, true},
    {3, 5, 9000, DType::kF32},       {3, 5, 9000, DType::kBF16},       // K > 8192
};

class GemmCase : public ::testing::TestWithParam<Case> {};

TEST_P(GemmCase, CpuMatchesGoldenOneAndTwoThreads) {
  const Case c = GetParam();
  Inputs in = make_inputs(c, 7);
  const auto g = golden::gemm(a_rowmajor(c, in), in.b, DType::kF32);
  for (int threads : {1, 2}) {
    MatF out;
    run_cpu(io_for(c, in, out), gemm_kernel(c), {.threads = threads});
    EXPECT_LE(golden::worst_ratio(out, g.c, g.bound), 1.0) << name(c) << " threads " << threads;
  }
}

TEST_P(GemmCase, InterpreterReplayMatchesGolden) {
  const Case c = GetParam();
  Inputs in = make_inputs(c, 11);
  const auto g = golden::gemm(a_rowmajor(c, in), in.b, DType::kF32);
  for (const Target* t : {&kTrn2, &kTrn1}) {
    MatF out;
    const auto io = io_for(c, in, out);
    run_program(build_program(*t, io, gemm_kernel(c)), io);
    EXPECT_LE(golden::worst_ratio(out, g.c, g.bound), 1.0) << name(c) << " " << t->name;
  }
}

TEST_P(GemmCase, ProgramStructure) {
  const Case c = GetParam();
  Inputs in;
  MatF out;
  in.a.resize(c.a_transposed ? c.k : c.m, c.a_transposed ? c.m : c.k);
  for (const Target* t : kAllTargets) {
    const Program p = build_program(*t, io_for(c, in, out), gemm_kernel(c));
    const GemmPlan plan =
        plan_gemm(*t, c.m, c.n, c.k, c.dtype, c.dtype, DType::kF32, {.a_transposed = c.a_transposed});
    // One matmul per (M tile, N tile, K tile): blocks tile M, N, K exactly.
    auto tiles = [](int64_t extent, int64_t block, int64_t tile) {
      int64_t n = 0;
      for (int64_t b0 = 0; b0 < extent; b0 += block)
        n += (std::min(block, extent - b0) + tile - 1) / tile;
      return n;
    };
    const int64_t mt = tiles(c.m, plan.bm, kGemmTileM), nt = tiles(c.n, plan.bn, kGemmTileN),
                  kt = tiles(c.k, plan.bk, kGemmTileK);
    EXPECT_EQ(int64_t(p.count(Opcode::kMatmul)), mt * nt * kt) << name(c) << " " << t->name;
    // Each C row tile leaves by one DMA per N block.
    const int64_t nblocks = (c.n + plan.bn - 1) / plan.bn;
    int64_t dma_out = 0;
    for (const Instr& in : p.instrs)
      dma_out += in.op == Opcode::kDma && in.dst().space == Space::kHbm;
    EXPECT_EQ(dma_out, mt * nblocks);
    EXPECT_EQ(p.sbuf_peak_bytes, plan.sbuf_bytes);
    EXPECT_LE(p.sbuf_peak_bytes, t->sbuf_partition_bytes);
    // Two accumulation banks, plus two for PE transposes where A needs them.
    const bool pe_transpose = gemm_uses_pe_transpose(*t, {.a_transposed = c.a_transposed});
    EXPECT_EQ(p.psum_peak_banks, pe_transpose ? 4 : 2);
    EXPECT_EQ(p.count(Opcode::kTranspose) > 0, pe_transpose);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return name(info.param); });

// Small integers make every partial sum exact in fp32: all paths agree exactly.
TEST(Gemm, ExactWithIntegerData) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const Case c{150, 600, 1300, dt};
    Inputs in = make_inputs(c, 3, /*integer=*/true);
    const MatF want = (in.a.cast<double>() * in.b.cast<double>()).cast<float>();
    MatF cpu, dev;
    run_cpu(io_for(c, in, cpu), gemm_kernel(c), {.threads = 2});
    const auto io = io_for(c, in, dev);
    run_program(build_program(kTrn2, io, gemm_kernel(c)), io);
    EXPECT_TRUE(cpu == want) << dtype_name(dt);
    EXPECT_TRUE(dev == want) << dtype_name(dt);
  }
}

TEST(Gemm, Bf16OutputIsRoundedOnce) {
  const Case c{40, 50, 700, DType::kBF16};
  Inputs in = make_inputs(c, 5);
  const auto g = golden::gemm(in.a, in.b, DType::kBF16);
  std::vector<uint16_t> out(size_t(c.m * c.n));
  std::vector<HostTensor> io = {{"A", in.a_enc.data(), c.dtype, {c.m, c.k}},
                                {"B", in.b_enc.data(), c.dtype, {c.k, c.n}},
                                {"C", out.data(), DType::kBF16, {c.m, c.n}, HbmKind::kOutput}};
  for (int path = 0; path < 2; ++path) {
    if (path == 0) run_cpu(io, gemm_kernel(c));
    else run_program(build_program(kTrn2, io, gemm_kernel(c)), io);
    MatF got(c.m, c.n);
    for (int64_t i = 0; i < got.size(); ++i) got.data()[i] = bf16_to_f32(out[size_t(i)]);
    EXPECT_LE(golden::worst_ratio(got, g.c, g.bound), 1.0) << (path ? "trn2" : "cpu");
  }
}

TEST(Gemm, BadShapesAreErrorsNamingTheOperand) {
  auto expect_error = [](std::vector<int64_t> a, std::vector<int64_t> b, std::vector<int64_t> c,
                         const char* operand, const char* text) {
    std::vector<float> buf(1 << 16);
    std::vector<HostTensor> io = {{"A", buf.data(), DType::kF32, a},
                                  {"B", buf.data(), DType::kF32, b},
                                  {"C", buf.data(), DType::kF32, c, HbmKind::kOutput}};
    try {
      run_cpu(io, [](auto& nc, auto& t) { gemm(nc, t[2], t[0], t[1]); });
      ADD_FAILURE() << "no error for operand " << operand;
    } catch (const Error& e) {
      EXPECT_EQ(e.instruction(), "gemm");
      EXPECT_EQ(e.operand(), operand);
      EXPECT_THAT(e.what(), ::testing::HasSubstr(text));
      EXPECT_THAT(e.what(), ::testing::HasSubstr("gemm_test.cc:"));
    }
  };
  expect_error({4, 5}, {6, 7}, {4, 7}, "B", "has 6 rows, A has K = 5");
  expect_error({4, 5}, {5, 7}, {4, 8}, "C", "must be [4, 7], got [4, 8]");
  expect_error({4, 5, 1}, {5, 7}, {4, 7}, "A", "must be 2-D");
}

// Dropping one RAW dependency (the first matmul on the last DMA that loads one
// of its operands) must be caught: with DMA queues slow, the matmul runs as soon
// as its other, earlier producers have, before the load it no longer waits for,
// and reads never-written SBUF (or stale data).
TEST(Gemm, InterpreterCatchesADroppedDependency) {
  const Case c{128, 512, 256, DType::kF32};
  Inputs in = make_inputs(c, 9);
  MatF out;
  const auto io = io_for(c, in, out);
  Program p = build_program(kTrn2, io, gemm_kernel(c));
  size_t mm = 0;
  while (p.instrs[mm].op != Opcode::kMatmul) ++mm;
  uint32_t victim = UINT32_MAX;
  for (uint32_t d : p.deps(mm))
    if (p.instrs[d].engine == Engine::kDma && (victim == UINT32_MAX || d > victim)) victim = d;
  std::vector<uint32_t> kept;
  int dropped = 0;
  for (uint32_t d : p.deps(mm)) {
    if (d == victim) {
      ++dropped;
      continue;
    }
    kept.push_back(d);
  }
  ASSERT_EQ(dropped, 1) << "no DMA dependency found to drop";
  // Rebuild the CSR with the edge removed.
  std::vector<uint32_t> begin{0}, ids;
  for (size_t i = 0; i < p.instrs.size(); ++i) {
    if (i == mm) ids.insert(ids.end(), kept.begin(), kept.end());
    else for (uint32_t d : p.deps(i)) ids.push_back(d);
    begin.push_back(uint32_t(ids.size()));
  }
  p.dep_begin = begin;
  p.dep_ids = ids;
  const auto g = golden::gemm(in.a, in.b, DType::kF32);
  // Seed 1 makes every DMA queue slow (isa/sim/scheduler.h): the matmul runs as
  // soon as its remaining dependency allows, before the load it no longer waits for.
  try {
    run_program(p, io, {.seed = 1});
    EXPECT_GT(golden::worst_ratio(out, g.c, g.bound), 1.0) << "dropped dependency not caught";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("matmul"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("uninitialised"));
  }
  // With the dependency kept, every adversarial mode computes the right result.
  const Program intact = build_program(kTrn2, io, gemm_kernel(c));
  for (uint64_t seed = 0; seed < 8; ++seed) {
    run_program(intact, io, {.seed = seed});
    EXPECT_LE(golden::worst_ratio(out, g.c, g.bound), 1.0) << "seed " << seed;
  }
}

// The modelled Tensor Engine utilisation of the production GEMM, bf16, at
// [4096,8192]@[8192,8192] and the Llama-3-8B prefill shapes (M = 2048): on trn2
// with A as [M, K], on trn1 with A^T given (trn1 has no transposing DMA; see
// docs/gemm.md). The model is deterministic: this pins the tuning, it times nothing.
TEST(Gemm, ModelledTensorEngineUtilisation) {
  struct Shape {
    int64_t m, n, k;
  };
  for (const Target* t : {&kTrn2, &kTrn1}) {
    const bool at = t->id == TargetId::kTrn1;
    for (Shape s : {Shape{4096, 8192, 8192}, Shape{2048, 4096, 4096}, Shape{2048, 14336, 4096},
                    Shape{2048, 4096, 14336}}) {
      const std::vector<HostTensor> io = {
          {"A", nullptr, DType::kBF16, at ? std::vector<int64_t>{s.k, s.m} : std::vector<int64_t>{s.m, s.k}},
          {"B", nullptr, DType::kBF16, {s.k, s.n}},
          {"C", nullptr, DType::kF32, {s.m, s.n}, HbmKind::kOutput}};
      const Program p = build_program(*t, io, [at](auto& nc, auto& x) {
        gemm(nc, x[2], x[0], x[1], {.a_transposed = at});
      });
      EXPECT_GE(model(p).te_utilization, 0.95) << t->name << " " << s.m << "x" << s.n << "x" << s.k;
    }
  }
}

}  // namespace
}  // namespace ncore
