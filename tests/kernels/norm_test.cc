// LayerNorm and RMSNorm three ways: the CPU reference (1 and 2 threads) vs
// the float64 golden with its derived bound, the interpreter's replay of the
// emitted program on trn2 and trn1 vs the golden, and structural checks of
// the program (instruction counts per tile, SBUF budget, plans). Plus exact
// cases (constant rows give beta), special values (NaN, inf, values past the
// fp32 statistics' range), the per-instruction limit, SPMD dealing, a
// schedule-independence check and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <norm_golden.h>
#include <ncore/host.h>
#include <ncore/isa/cost/model.h>
#include <ncore/kernels/norm.h>

namespace ncore {
namespace {

using golden::MatF;

struct Case {
  NormKind kind;
  std::vector<int64_t> shape;  // X's shape; the last dim is D
  DType x = DType::kF32, y = DType::kF32;
};

int64_t dim_d(const Case& c) { return c.shape.back(); }
int64_t rows_of(const Case& c) {
  int64_t r = 1;
  for (size_t k = 0; k + 1 < c.shape.size(); ++k) r *= c.shape[k];
  return r;
}

std::string name(const Case& c) {
  std::string s = norm_name(c.kind);
  for (int64_t d : c.shape) s += cat("_", d);
  return s + cat("_", dtype_name(c.x), "_to_", dtype_name(c.y));
}

// A host tensor as the kernel sees it: its encoding and the decoded values.
struct Host {
  std::vector<uint8_t> enc;
  std::vector<float> val;
  DType dt = DType::kF32;
  void set(size_t i, float v) {
    encode(dt, v, enc.data() + i * size_t(dtype_size(dt)));
    val[i] = decode(dt, enc.data() + i * size_t(dtype_size(dt)));
  }
};

Host host(DType dt, int64_t n) {
  Host h;
  h.dt = dt;
  h.enc.resize(size_t(n * dtype_size(dt)));
  h.val.resize(size_t(n));
  return h;
}

struct Problem {
  Case c;
  Host x, gamma, beta;
  std::vector<uint8_t> y;  // Y's bytes
  float eps = kNormDefaultEps;

  MatF x_mat() const { return Eigen::Map<const MatF>(x.val.data(), rows_of(c), dim_d(c)); }
  MatF y_mat() const {
    MatF m(rows_of(c), dim_d(c));
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = decode(c.y, y.data() + i * dtype_size(c.y));
    return m;
  }
  void clear_y() { std::fill(y.begin(), y.end(), uint8_t{0xFF}); }  // NaN in f32 and bf16
  std::vector<HostTensor> io() {
    std::vector<HostTensor> t = {{"X", x.enc.data(), c.x, c.shape},
                                 {"gamma", gamma.enc.data(), c.x, {dim_d(c)}},
                                 {"beta", beta.enc.data(), c.x, {dim_d(c)}},
                                 {"Y", y.data(), c.y, c.shape, HbmKind::kOutput}};
    if (c.kind == NormKind::kRms) t.erase(t.begin() + 2);
    return t;
  }
};

// x ~ U(-1, 1) + offset per row (rows differ in mean and spread), gamma ~
// U(0.5, 1.5) with random sign, beta ~ U(-1, 1); all rounded to X's dtype.
Problem make_problem(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t rows = rows_of(c), d = dim_d(c);
  Problem p{c, host(c.x, rows * d), host(c.x, d), host(c.x, d), {}};
  for (int64_t r = 0; r < rows; ++r) {
    const float offset = 3.0f * u(rng), spread = 0.1f + std::abs(u(rng));
    for (int64_t j = 0; j < d; ++j) p.x.set(size_t(r * d + j), offset + spread * u(rng));
  }
  for (int64_t j = 0; j < d; ++j) {
    p.gamma.set(size_t(j), (u(rng) < 0 ? -1.0f : 1.0f) * (1.0f + 0.5f * u(rng)));
    p.beta.set(size_t(j), u(rng));
  }
  p.y.resize(size_t(rows * d * dtype_size(c.y)));
  p.clear_y();
  return p;
}

auto kernel(NormKind kind, float eps) {
  return [kind, eps](auto& nc, std::vector<HbmTensor>& t) {
    if (kind == NormKind::kLayer) layernorm(nc, t[3], t[0], t[1], t[2], eps);
    else rmsnorm(nc, t[2], t[0], t[1], eps);
  };
}

golden::NormGolden golden_of(const Problem& p, const golden::NormShape& shape = {}) {
  if (p.c.kind == NormKind::kLayer)
    return golden::layernorm(p.x_mat(), p.gamma.val, p.beta.val, p.eps, p.c.y, shape);
  return golden::rmsnorm(p.x_mat(), p.gamma.val, p.eps, p.c.y, shape);
}

// The rmsnorm accumulator pieces of a plan, for the golden's summation depth.
golden::NormShape shape_of(const NormPlan& plan) {
  golden::NormShape s;
  s.rms_piece = std::min(plan.block, plan.op_chunk);
  s.rms_pieces = std::max<int64_t>(plan.pieces, 1);
  return s;
}

NormDtypes dtypes_of(const Case& c) { return {c.x, c.y, c.x, c.x}; }

NormPlan plan_for(const Target& t, const Case& c, NormPlace place) {
  return plan_norm(t, c.kind, rows_of(c), dim_d(c), dtypes_of(c), place);
}

// The bound's depth must cover whichever plan ran: the larger of host and device.
golden::NormShape worst_shape(const Case& c, const std::vector<const Target*>& targets) {
  golden::NormShape s;
  s.rms_piece = 0;
  s.rms_pieces = 1;
  for (const Target* t : targets)
    for (NormPlace pl : {NormPlace::kHost, NormPlace::kDevice}) {
      const golden::NormShape one = shape_of(plan_for(*t, c, pl));
      s.rms_piece = std::max(s.rms_piece, one.rms_piece);
      s.rms_pieces = std::max(s.rms_pieces, one.rms_pieces);
    }
  return s;
}

const Case kCases[] = {
    {NormKind::kLayer, {200, 7}},
    {NormKind::kRms, {200, 7}},
    {NormKind::kLayer, {513}},  // 1-D: one row
    {NormKind::kRms, {513}},
    {NormKind::kLayer, {3, 5, 1}},  // D = 1
    {NormKind::kRms, {3, 5, 1}},
    {NormKind::kLayer, {2, 65, 512}},
    {NormKind::kRms, {2, 65, 512}, DType::kBF16, DType::kBF16},
    {NormKind::kLayer, {130, 513}, DType::kBF16, DType::kBF16},
    {NormKind::kLayer, {130, 513}, DType::kBF16, DType::kF32},
    {NormKind::kRms, {130, 513}, DType::kBF16, DType::kF32},
    {NormKind::kLayer, {129, 4096}},
    {NormKind::kRms, {129, 4096}},
    {NormKind::kLayer, {40, 4097}, DType::kBF16, DType::kBF16},  // rows of odd byte length
    {NormKind::kRms, {40, 4097}},
    {NormKind::kLayer, {3, 16384}},  // streamed: two row buffers do not fit beside gamma / beta
    {NormKind::kRms, {3, 16384}},
    {NormKind::kLayer, {2, 16384}, DType::kBF16, DType::kBF16},
    {NormKind::kRms, {2, 16384}, DType::kBF16, DType::kBF16},
    {NormKind::kLayer, {2, 70000}},  // beyond one instruction's 64K free elements: streamed
    {NormKind::kRms, {2, 70000}, DType::kBF16, DType::kF32},
};

class NormCase : public ::testing::TestWithParam<Case> {};

TEST_P(NormCase, CpuMatchesGoldenOneAndTwoThreads) {
  const Case c = GetParam();
  Problem p = make_problem(c, 7);
  const auto g = golden_of(p, worst_shape(c, {&kTrn2}));
  for (int threads : {1, 2}) {
    p.clear_y();
    run_cpu(p.io(), kernel(c.kind, p.eps), {.threads = threads});
    EXPECT_LE(golden::norm_worst_ratio(p.y_mat(), g.y, g.bound), 1.0)
        << name(c) << " threads " << threads;
  }
}

TEST_P(NormCase, InterpreterReplayMatchesGoldenAndCpu) {
  const Case c = GetParam();
  Problem p = make_problem(c, 11);
  const auto g = golden_of(p, worst_shape(c, {&kTrn2, &kTrn1}));
  run_cpu(p.io(), kernel(c.kind, p.eps));
  const std::vector<uint8_t> cpu = p.y;
  for (const Target* t : {&kTrn2, &kTrn1}) {
    p.clear_y();
    run_program(build_program(*t, p.io(), kernel(c.kind, p.eps)), p.io());
    EXPECT_LE(golden::norm_worst_ratio(p.y_mat(), g.y, g.bound), 1.0) << name(c) << " " << t->name;
    // Same operations in the same order per row: the same bits, whenever the
    // rmsnorm sums are split into the same pieces (layernorm's bn_stats
    // chunks never depend on the plan).
    const NormPlan host = plan_for(kTrn2, c, NormPlace::kHost), dev = plan_for(*t, c, NormPlace::kDevice);
    if (c.kind == NormKind::kLayer || host.pieces == dev.pieces) {
      EXPECT_TRUE(p.y == cpu) << name(c) << " " << t->name << ": CPU and interpreter differ";
    }
  }
}

// The column ranges of one instruction-sized piece of `cl` columns that get
// their own instructions: GpSimd's last columns (gpsimd_share; layernorm's
// in two halves), then VectorE's, in PSUM-slot-sized ranges when the plan
// passes them through PSUM. {columns, on GpSimd}.
std::vector<std::pair<int64_t, bool>> step_ranges(const NormPlan& plan, int64_t cl, bool ln) {
  std::vector<std::pair<int64_t, bool>> r;
  const int64_t cg = norm_detail::split_cols(cl, plan.gpsimd_share), v = cl - cg;
  if (ln) {
    for (const auto& [lo, hi] : norm_detail::gpsimd_halves(v, cl)) r.push_back({hi - lo, true});
  } else if (cg > 0) {
    r.push_back({cg, true});
  }
  const int64_t slot = plan.psum_cols > 0 ? plan.psum_cols : v;
  for (int64_t a = 0; a < v; a += slot) r.push_back({std::min(slot, v - a), false});
  return r;
}

// Instruction counts per row tile, from the plan's fields and the shape alone.
TEST_P(NormCase, ProgramStructure) {
  const Case c = GetParam();
  Problem p = make_problem(c, 1);
  const int64_t rows = rows_of(c), d = dim_d(c);
  const bool ln = c.kind == NormKind::kLayer;
  for (const Target* t : kAllTargets) {
    const Program prog = build_program(*t, p.io(), kernel(c.kind, p.eps));
    const NormPlan plan = plan_for(*t, c, NormPlace::kDevice);
    const int64_t tiles = (rows + t->partitions - 1) / t->partitions;
    const int64_t blocks = (d + plan.block - 1) / plan.block;
    // Per row tile, over its instruction-sized pieces and their ranges
    // (GpSimd's, then VectorE's): a range's first cs = split_cols(m,
    // scalar_share) columns go to ScalarE, the rest stay on VectorE.
    //   layernorm  GpSimd range (a half): two activations, two GpSimd tensor_tensor;
    //              VectorE range: scalar_tensor_tensor (x - mean) * gamma,
    //              then an activation + tensor_tensor for cs > 0 and a second
    //              scalar_tensor_tensor for cs < m.
    //   rmsnorm    every range: an activation for cs > 0, a tensor_scalar for
    //              cs < m, then one tensor_tensor on its range's engine.
    int64_t pieces = 0, ranges_g = 0, ranges_v = 0, split_s = 0, split_v = 0;
    for (int64_t b0 = 0; b0 < d; b0 += plan.block) {
      const int64_t len = std::min(plan.block, d - b0);
      for (int64_t c0 = 0; c0 < len; c0 += plan.op_chunk) {
        ++pieces;
        for (const auto& [m, gpsimd] : step_ranges(plan, std::min(plan.op_chunk, len - c0), ln)) {
          (gpsimd ? ranges_g : ranges_v) += 1;
          if (ln && gpsimd) continue;
          const int64_t cs = norm_detail::split_cols(m, plan.scalar_share);
          split_s += cs > 0;
          split_v += cs < m;
        }
      }
    }
    // -mean is computed when a whole piece would give GpSimd columns.
    const bool gpsimd_any =
        norm_detail::split_cols(std::min({d, plan.block, plan.op_chunk}), plan.gpsimd_share) > 0;
    const int64_t chunks = (d + t->bn_stats_fmax - 1) / t->bn_stats_fmax;
    const int64_t loads = plan.resident ? 1 : 2 * blocks;   // X blocks read per tile
    const int64_t param_tensors = ln ? 2 : 1;                 // gamma (and beta)
    const int64_t per_tile_params = plan.params_resident ? 0 : blocks * param_tensors;
    SCOPED_TRACE(cat(name(c), " ", t->name, " block ", plan.block, plan.resident ? " resident" : " streamed",
                     " shares ", plan.scalar_share, " ", plan.gpsimd_share));
    EXPECT_EQ(plan.rows, int(std::min<int64_t>(rows, t->partitions)));
    EXPECT_EQ(int64_t(prog.count(Opcode::kDma)), tiles * (loads + blocks + per_tile_params) +
                                                      (plan.params_resident ? param_tensors : 0));
    EXPECT_EQ(prog.count(Opcode::kMemset), 1u);  // the eps column, once
    if (ln) {
      EXPECT_EQ(int64_t(prog.count(Opcode::kBnStats)), tiles * chunks);
      EXPECT_EQ(int64_t(prog.count(Opcode::kBnAggr)), tiles);
      EXPECT_EQ(int64_t(prog.count(Opcode::kActivation)),
                tiles * (1 + (gpsimd_any ? 1 : 0) + 2 * ranges_g + split_s));
      EXPECT_EQ(int64_t(prog.count(Opcode::kScalarTensorTensor)), tiles * (ranges_v + split_v));
      EXPECT_EQ(int64_t(prog.count(Opcode::kTensorTensor)), tiles * (2 * ranges_g + split_s));
      EXPECT_EQ(prog.count(Opcode::kTensorScalar), 0u);
      EXPECT_EQ(plan.bn_chunks, chunks);
    } else {
      // squares per piece, rsqrt per tile, one activation per ScalarE step.
      EXPECT_EQ(int64_t(prog.count(Opcode::kActivation)), tiles * (pieces + 1 + split_s));
      EXPECT_EQ(int64_t(prog.count(Opcode::kTensorReduce)), pieces > 1 ? tiles : 0);
      EXPECT_EQ(int64_t(prog.count(Opcode::kTensorScalar)), tiles * split_v);
      EXPECT_EQ(int64_t(prog.count(Opcode::kTensorTensor)), tiles * (ranges_g + ranges_v));
      EXPECT_EQ(prog.count(Opcode::kScalarTensorTensor), 0u);
      EXPECT_EQ(plan.pieces, pieces);
    }
    // Every output element is written exactly once.
    int64_t out_elems = 0;
    for (const Instr& in : prog.instrs)
      if (in.op == Opcode::kDma && in.dst().space == Space::kHbm) out_elems += in.dst().ap.size();
    EXPECT_EQ(out_elems, rows * d);
    // Engines: activations on ScalarE, tensor_scalar and scalar_tensor_tensor
    // on VectorE, tensor_tensor on VectorE or (NeuronCore-v3 only) GpSimd.
    int64_t on_gpsimd = 0;
    for (const Instr& in : prog.instrs) {
      if (in.op == Opcode::kActivation) {
        EXPECT_EQ(in.engine, Engine::kScalar);
      }
      if (in.op == Opcode::kTensorScalar || in.op == Opcode::kScalarTensorTensor) {
        EXPECT_EQ(in.engine, Engine::kVector);
      }
      on_gpsimd += in.engine == Engine::kGpSimd;
    }
    EXPECT_EQ(on_gpsimd, tiles * (ln ? 2 : 1) * ranges_g);
    if (t->nc_version < 3) {
      EXPECT_EQ(on_gpsimd, 0);
      if (ln) {
        EXPECT_EQ(split_s, 0) << "no ScalarE * rstd where it saves VectorE nothing";
      }
    }
    EXPECT_EQ(prog.sbuf_peak_bytes, plan.sbuf_bytes);
    EXPECT_LE(prog.sbuf_peak_bytes, t->sbuf_partition_bytes);
    // NeuronCore-v3: two PSUM slots for VectorE's intermediates.
    EXPECT_EQ(plan.psum_cols > 0, t->nc_version >= 3);
    EXPECT_EQ(prog.psum_peak_banks,
              plan.psum_cols > 0 ? kNormPsumSlots * plan.psum_cols * 4 / t->psum_bank_bytes : 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return name(info.param); });

// ---- Plans ----

// The host runs one instruction at a time: no engine splits, and rmsnorm's
// x * rstd * gamma as one scalar_tensor_tensor (the same bits as the split
// step, which the CPU == interpreter tests check). The device keeps the
// split: one scalar_tensor_tensor costs VectorE 2N, the split step at most
// that with ScalarE and GpSimd sharing it.
TEST(NormPlan, HostPlansUseTheFewestInstructions) {
  const NormDtypes bf16{DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16};
  for (const Target* t : kAllTargets) {
    const NormPlan rms = plan_norm(*t, NormKind::kRms, 4096, 4096, bf16, NormPlace::kHost);
    const NormPlan ln = plan_norm(*t, NormKind::kLayer, 4096, 4096, bf16, NormPlace::kHost);
    EXPECT_TRUE(rms.rms_fused) << t->name;
    EXPECT_EQ(ln.scalar_share, 0.0) << t->name;
    EXPECT_EQ(ln.gpsimd_share, 0.0) << t->name;
    EXPECT_FALSE(plan_norm(*t, NormKind::kRms, 4096, 4096, bf16, NormPlace::kDevice).rms_fused)
        << t->name;
  }
}

TEST(NormPlan, ResidentWhenARowBlockFitsElseStreamed) {
  const NormDtypes f32{}, bf16{DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16};
  // D = 4096 f32: gamma, beta and three X + fp32 work buffers: 32 + 96 KiB.
  NormPlan p = plan_norm(kTrn1, NormKind::kLayer, 4096, 4096, f32, NormPlace::kDevice);
  EXPECT_TRUE(p.resident);
  EXPECT_EQ(p.bufs, kNormDeviceBufs);
  EXPECT_TRUE(p.work_tile);
  // D = 16384 f32: gamma + beta = 128 KiB leave room for one 64 KiB X buffer
  // only (trn2: 224 KiB): streamed, gamma / beta resident, on both targets.
  for (const Target* t : {&kTrn2, &kTrn1}) {
    p = plan_norm(*t, NormKind::kLayer, 4096, 16384, f32, NormPlace::kDevice);
    EXPECT_FALSE(p.resident) << t->name;
    EXPECT_TRUE(p.params_resident) << t->name;
    EXPECT_GE(p.bufs, 2);
    EXPECT_EQ(p.block % t->bn_stats_fmax, 0);
    EXPECT_LE(p.sbuf_bytes, t->sbuf_partition_bytes);
  }
  // Large D: gamma and beta stream too.
  p = plan_norm(kTrn1, NormKind::kLayer, 128, 40000, f32, NormPlace::kDevice);
  EXPECT_FALSE(p.resident);
  EXPECT_FALSE(p.params_resident);
  // bf16 D = 8192 rmsnorm: gamma 16 KiB + 3 x (X 16 KiB + fp32 work 32 KiB).
  p = plan_norm(kTrn2, NormKind::kRms, 4096, 8192, bf16, NormPlace::kDevice);
  EXPECT_TRUE(p.resident);
  EXPECT_EQ(p.bufs, 3);
  // Host: one buffer, layernorm in place, rows sized so the tile fits kHostTileBytes.
  p = plan_norm(kTrn2, NormKind::kLayer, 4096, 4096, f32, NormPlace::kHost);
  EXPECT_EQ(p.bufs, 1);
  EXPECT_FALSE(p.work_tile);
  EXPECT_LE(p.rows * p.sbuf_bytes, kHostTileBytes);
  EXPECT_GT((p.rows + 1) * p.sbuf_bytes, kHostTileBytes);
  p = plan_norm(kTrn2, NormKind::kRms, 100, 7, f32, NormPlace::kHost);
  EXPECT_EQ(p.rows, 100);
}

// The engine shares even out the engines' per-tile cycles (published costs):
// on trn2 GpSimd takes most of layernorm's columns (ScalarE doing their
// x - mean and * rstd) and ScalarE the * rstd of some of VectorE's;
// NeuronCore-v2 leaves GpSimd out, and ScalarE too for layernorm (its
// * rstd saves VectorE nothing there). On trn2 VectorE's tensor_tensor reads
// its intermediate from PSUM: N instead of 2N.
TEST(NormPlan, EngineSharesBalanceThePublishedCosts) {
  const NormDtypes bf16{DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16}, f32{};
  const NormShares ln2 = balance_engines(kTrn2, NormKind::kLayer, 4096, bf16);
  const NormShares ln1 = balance_engines(kTrn1, NormKind::kLayer, 4096, bf16);
  const NormShares rms2 = balance_engines(kTrn2, NormKind::kRms, 4096, bf16);
  EXPECT_EQ(ln1.gpsimd, 0.0);
  EXPECT_EQ(ln1.scalar, 0.0);
  EXPECT_GT(ln2.gpsimd, 0.5);
  EXPECT_LT(ln2.gpsimd, 1.0);
  EXPECT_GT(rms2.gpsimd, 0.0);
  // Per tile, cycles / GHz: VectorE and GpSimd finish within 5% of each other
  // (bf16: (x - mean) * gamma costs N; f32: 2N).
  for (const NormDtypes& dt : {bf16, f32}) {
    const NormShares sh = balance_engines(kTrn2, NormKind::kLayer, 4096, dt);
    const double n = 4096, chunks = 8, first = dt.x == DType::kBF16 ? n : 2 * n;
    const double vec =
        (n + 13.0 * 6 * chunks / 3 + 300 + (1 - sh.gpsimd) * (first + 2 * n - sh.scalar * n)) /
        kTrn2.vector_ghz;
    const double gps = sh.gpsimd * 4 * n / kTrn2.gpsimd_ghz;
    EXPECT_NEAR(vec / gps, 1.0, 0.05) << "scalar " << sh.scalar << " gpsimd " << sh.gpsimd;
  }
}

// The elementwise instructions split at the engine's free-size limit: a
// target whose limit is 1000 elements makes D = 2500 three pieces, reachable
// cheaply (the real limit is 64K elements).
TEST(Norm, ChunksAtTheEngineFreeSizeLimit) {
  Target small = kTrn2;
  small.engine_sbuf_fmax = 1000;
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
    const Case c{kind, {5, 2500}};
    Problem p = make_problem(c, 3);
    const NormPlan plan = plan_for(small, c, NormPlace::kDevice);
    EXPECT_EQ(plan.op_chunk, 1000);
    const auto g = golden_of(p, shape_of(plan));
    run_cpu(p.io(), kernel(kind, p.eps), {.rules = &small});
    EXPECT_LE(golden::norm_worst_ratio(p.y_mat(), g.y, g.bound), 1.0) << norm_name(kind) << " cpu";
    p.clear_y();
    const Program prog = build_program(small, p.io(), kernel(kind, p.eps));
    run_program(prog, p.io());
    EXPECT_LE(golden::norm_worst_ratio(p.y_mat(), g.y, g.bound), 1.0) << norm_name(kind) << " device";
    for (const Instr& in : prog.instrs) {
      if (in.op == Opcode::kTensorScalar || in.op == Opcode::kTensorTensor ||
          in.op == Opcode::kScalarTensorTensor ||
          (in.op == Opcode::kActivation && in.opnd[1].ap.size() > 1)) {
        EXPECT_LE(in.dst().ap.size(), 1000);
      }
    }
    // Three pieces (1000, 1000, 500): per VectorE range of each, layernorm's
    // (x - mean) * gamma and, unless ScalarE takes all its columns, a second
    // scalar_tensor_tensor; rmsnorm's three partial sums of squares.
    if (kind == NormKind::kLayer) {
      size_t stt = 0;
      for (int64_t cl : {1000, 1000, 500})
        for (const auto& [m, gpsimd] : step_ranges(plan, cl, true))
          if (!gpsimd) stt += 1 + size_t(norm_detail::split_cols(m, plan.scalar_share) < m);
      EXPECT_EQ(prog.count(Opcode::kScalarTensorTensor), stt);
    } else {
      EXPECT_EQ(prog.count(Opcode::kTensorReduce), 1u);
    }
  }
}

// The modelled trn2 time of [4096, 4096] against the memory roofline: the
// bytes a norm must move (X read, Y written, gamma / beta read once) over the
// core's HBM bandwidth. Pinned below the measured fractions (docs/norms.md:
// f32 0.94 layernorm, 0.95 rmsnorm; bf16 0.67 layernorm, whose ceiling is
// ~0.72, and 0.90 rmsnorm) so that a plan or pipeline regression shows.
TEST(NormPlan, ModelledTrn2RooflineFraction) {
  for (DType dt : {DType::kF32, DType::kBF16})
    for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
      const Case c{kind, {4096, 4096}};
      std::vector<HostTensor> io = {{"X", nullptr, dt, c.shape},
                                    {"gamma", nullptr, dt, {4096}},
                                    {"beta", nullptr, dt, {4096}},
                                    {"Y", nullptr, dt, c.shape, HbmKind::kOutput}};
      if (kind == NormKind::kRms) io.erase(io.begin() + 2);
      const Program prog = build_program(kTrn2, io, kernel(kind, kNormDefaultEps));
      const CostReport r = model(prog);
      double bytes = 0;
      for (const HostTensor& h : io) bytes += double(h.bytes());
      const double roofline_ns = bytes / CostParams::defaults(kTrn2).hbm_bytes_per_ns;
      const bool ln = kind == NormKind::kLayer;
      const double pinned = dt == DType::kF32 ? (ln ? 0.92 : 0.93) : (ln ? 0.65 : 0.88);
      EXPECT_GE(roofline_ns / r.latency_ns, pinned)
          << norm_name(kind) << " " << dtype_name(dt) << " modelled " << r.latency_ns / 1e3 << " us";
    }
}

// ---- Exact and special values ----

// A constant row has mean == x exactly when the bn_stats sums are exact (any
// value with at most 16 significant bits, e.g. every bf16), variance 0, so
// (x - mean) * gamma = 0 (finite gamma), * rstd = 0 and y = 0 + beta = beta,
// bit for bit.
TEST(LayerNorm, ConstantRowsGiveBetaExactly) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const Case c{NormKind::kLayer, {70, 1000}, dt, dt};
    Problem p = make_problem(c, 5);
    std::mt19937 rng(2);
    std::uniform_int_distribution<int> mant(-(1 << 15), 1 << 15), expo(-20, 20);
    for (int64_t r = 0; r < 70; ++r) {
      const float v = r == 0 ? 0.0f : std::ldexp(float(mant(rng)), expo(rng));  // <= 16 bits
      for (int64_t j = 0; j < 1000; ++j) p.x.set(size_t(r * 1000 + j), v);
    }
    auto check = [&](const char* path) {
      const MatF y = p.y_mat();
      for (int64_t r = 0; r < 70; ++r)
        for (int64_t j = 0; j < 1000; ++j)
          ASSERT_EQ(y(r, j), p.beta.val[size_t(j)]) << path << " " << dtype_name(dt) << " row " << r;
    };
    run_cpu(p.io(), kernel(c.kind, p.eps), {.threads = 2});
    check("cpu");
    for (const Target* t : {&kTrn2, &kTrn1}) {
      p.clear_y();
      run_program(build_program(*t, p.io(), kernel(c.kind, p.eps)), p.io());
      check(std::string(t->name).c_str());
    }
  }
}

// A NaN anywhere in a row makes that row NaN (it reaches the statistics);
// other rows are untouched. An inf makes a layernorm row NaN (inf - inf) and
// an rmsnorm row 0 except the inf itself (rstd = rsqrt(inf) = 0): exactly
// what the float64 definition gives, so the golden comparison covers it.
TEST(Norm, NanAndInfPropagate) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms})
    for (DType dt : {DType::kF32, DType::kBF16}) {
      const Case c{kind, {6, 600}, dt, dt};
      Problem p = make_problem(c, 9);
      p.x.set(1 * 600 + 17, nan);
      p.x.set(3 * 600 + 599, inf);
      p.x.set(4 * 600 + 0, -inf);
      const auto g = golden_of(p);
      for (int path = 0; path < 3; ++path) {
        p.clear_y();
        if (path == 0) run_cpu(p.io(), kernel(kind, p.eps));
        else run_program(build_program(path == 1 ? kTrn2 : kTrn1, p.io(), kernel(kind, p.eps)), p.io());
        const MatF y = p.y_mat();
        EXPECT_LE(golden::norm_worst_ratio(y, g.y, g.bound), 1.0) << norm_name(kind) << " path " << path;
        EXPECT_TRUE(y.row(1).array().isNaN().all());
        EXPECT_FALSE(y.row(0).array().isNaN().any());
        EXPECT_FALSE(y.row(5).array().isNaN().any());
      }
    }
  // NaN in gamma: that column only.
  const Case c{NormKind::kRms, {4, 300}};
  Problem p = make_problem(c, 4);
  p.gamma.set(100, nan);
  run_cpu(p.io(), kernel(c.kind, p.eps));
  const MatF y = p.y_mat();
  EXPECT_TRUE(y.col(100).array().isNaN().all());
  EXPECT_EQ(y.array().isNaN().count(), 4);
}

// Large values within fp32's range for the statistics stay within the bound:
// |x| up to 1.2e17 with D = 1024 gives sums of squares ~ 1e37 < FLT_MAX.
TEST(Norm, LargeValuesWithinTheStatisticsRange) {
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
    const Case c{kind, {5, 1024}};
    Problem p = make_problem(c, 6);
    for (size_t i = 0; i < p.x.val.size(); ++i) p.x.set(i, p.x.val[i] * 3e16f);
    const auto g = golden_of(p);
    run_cpu(p.io(), kernel(kind, p.eps));
    EXPECT_LE(golden::norm_worst_ratio(p.y_mat(), g.y, g.bound), 1.0) << norm_name(kind);
  }
}

// Past the range the fp32 statistics overflow (documented in docs/norms.md):
// at |x| ~ 1e30, (x - mean)^2 and x^2 are inf, so var = inf and rstd = 0:
// layernorm gives beta exactly, rmsnorm gives zeros. The same on every path.
TEST(Norm, ValuesPastTheStatisticsRangeGiveBetaOrZero) {
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
    const Case c{kind, {3, 700}};
    Problem p = make_problem(c, 8);
    for (size_t i = 0; i < p.x.val.size(); ++i) p.x.set(i, p.x.val[i] * 1e30f);
    for (int path = 0; path < 2; ++path) {
      p.clear_y();
      if (path == 0) run_cpu(p.io(), kernel(kind, p.eps));
      else run_program(build_program(kTrn2, p.io(), kernel(kind, p.eps)), p.io());
      const MatF y = p.y_mat();
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t j = 0; j < 700; ++j)
          ASSERT_EQ(y(r, j), kind == NormKind::kLayer ? p.beta.val[size_t(j)] : 0.0f)
              << norm_name(kind) << " path " << path << " (" << r << ", " << j << ")";
    }
  }
}

// ---- SPMD and schedules ----

// Each program instance of a 3-instance grid writes only its dealt row
// tiles; together they write every row once, matching the single-instance result.
TEST(Norm, RowTilesAreDealtToProgramInstances) {
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
    const Case c{kind, {300, 96}};
    Problem p = make_problem(c, 12);
    run_program(build_program(kTrn2, p.io(), kernel(kind, p.eps)), p.io());
    const std::vector<uint8_t> whole = p.y;
    p.clear_y();
    int64_t written = 0;
    for (int id = 0; id < 3; ++id) {
      std::vector<HostTensor> io = p.io();
      const Program prog = emit(
          kTrn2,
          [&](DeviceCore& nc) {
            std::vector<HbmTensor> t;
            for (const HostTensor& h : io) t.push_back(nc.hbm(h.name, h.dtype, h.shape, h.kind));
            kernel(kind, p.eps)(nc, t);
          },
          id, 3);
      for (const Instr& in : prog.instrs)
        if (in.op == Opcode::kDma && in.dst().space == Space::kHbm) written += in.dst().ap.size();
      run_program(prog, io);  // 300 rows = tiles of 128, 128, 44: one per instance
    }
    EXPECT_EQ(written, 300 * 96);
    EXPECT_TRUE(p.y == whole) << norm_name(kind);
  }
}

// The result does not depend on the interpreter's (adversarial) schedule:
// every dependency the double buffering needs is in the program.
TEST(Norm, ResultIsScheduleIndependent) {
  for (NormKind kind : {NormKind::kLayer, NormKind::kRms}) {
    const Case c{kind, {400, 1500}, DType::kBF16, DType::kBF16};
    Problem p = make_problem(c, 13);
    for (const Target* t : {&kTrn2, &kTrn1}) {
      const Program prog = build_program(*t, p.io(), kernel(kind, p.eps));
      std::vector<uint8_t> first;
      for (uint64_t seed = 1; seed <= 3; ++seed) {
        p.clear_y();
        run_program(prog, p.io(), {.seed = seed});
        if (seed == 1) first = p.y;
        else EXPECT_TRUE(p.y == first) << norm_name(kind) << " " << t->name << " seed " << seed;
      }
    }
  }
}

// ---- Bad input ----

TEST(Norm, BadInputIsAnErrorNamingTheOperand) {
  std::vector<float> buf(1 << 12);
  auto expect_error = [&](NormKind kind, std::vector<HostTensor> io, const char* operand,
                          const char* text, float eps = kNormDefaultEps) {
    try {
      run_cpu(io, kernel(kind, eps));
      ADD_FAILURE() << "no error for operand " << operand;
    } catch (const Error& e) {
      EXPECT_EQ(e.instruction(), norm_name(kind));
      EXPECT_EQ(e.operand(), operand);
      EXPECT_THAT(e.what(), ::testing::HasSubstr(text));
      EXPECT_THAT(e.what(), ::testing::HasSubstr("norm_test.cc:"));
    }
  };
  auto io = [&](std::vector<int64_t> x, int64_t g, int64_t b, std::vector<int64_t> y,
                DType xt = DType::kF32, DType yt = DType::kF32, DType gt = DType::kF32) {
    return std::vector<HostTensor>{{"X", buf.data(), xt, x},
                                   {"gamma", buf.data(), gt, {g}},
                                   {"beta", buf.data(), DType::kF32, {b}},
                                   {"Y", buf.data(), yt, y, HbmKind::kOutput}};
  };
  auto rms_io = [&](std::vector<HostTensor> v) {
    v.erase(v.begin() + 2);
    return v;
  };
  const NormKind L = NormKind::kLayer, R = NormKind::kRms;
  expect_error(L, io({4, 8}, 7, 8, {4, 8}), "gamma", "must be [8] (D of X)");
  expect_error(L, io({4, 8}, 8, 9, {4, 8}), "beta", "must be [8] (D of X)");
  expect_error(R, rms_io(io({4, 8}, 9, 8, {4, 8})), "gamma", "must be [8] (D of X)");
  expect_error(L, io({4, 8}, 8, 8, {4, 9}), "Y", "must have X's shape");
  expect_error(R, rms_io(io({2, 4, 8}, 8, 8, {8, 8})), "Y", "must have X's shape");
  expect_error(L, io({4, 8}, 8, 8, {4, 8}, DType::kI32), "X", "dtype must be f32 or bf16, got i32");
  expect_error(L, io({4, 8}, 8, 8, {4, 8}, DType::kBF16, DType::kF16), "Y",
               "dtype must be X's (bf16) or f32, got f16");
  expect_error(R, rms_io(io({4, 8}, 8, 8, {4, 8}, DType::kF32, DType::kBF16)), "Y",
               "dtype must be X's (f32) or f32, got bf16");
  expect_error(R, rms_io(io({4, 8}, 8, 8, {4, 8}, DType::kF32, DType::kF32, DType::kFP8E4M3)),
               "gamma", "dtype must be f32 or bf16");
  expect_error(L, io({4, 8}, 8, 8, {4, 8}), "eps", "must be finite and >= 0, got -1", -1.0f);
  expect_error(R, rms_io(io({4, 8}, 8, 8, {4, 8})), "eps", "must be finite and >= 0, got nan",
               std::numeric_limits<float>::quiet_NaN());
  // Views a caller can build: a strided X, and an empty last dim.
  auto view_error = [&](auto make_x, const char* text) {
    std::vector<HostTensor> t = io({8, 8}, 8, 8, {8, 8});
    try {
      run_cpu(t, [&](auto& nc, std::vector<HbmTensor>& h) {
        layernorm(nc, h[3], make_x(h[0]), h[1], h[2]);
      });
      ADD_FAILURE() << "no error: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.operand(), "X");
      EXPECT_THAT(e.what(), ::testing::HasSubstr(text));
    }
  };
  view_error([](const HbmTensor& x) { return x.transpose(0, 1); }, "must be a contiguous");
  view_error(
      [](const HbmTensor& x) {
        HbmTensor v = x;
        v.ap.shape[1] = 0;
        return v;
      },
      "last dim D must be >= 1, got 0");
}

}  // namespace
}  // namespace ncore
