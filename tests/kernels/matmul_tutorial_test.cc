// The NKI matmul tutorial kernels three ways: the CPU reference and the
// interpreter's replay of the emitted program against a float64 golden within
// the derived error bound (exactly, on small-integer data), and the program's
// structure (instruction counts and SBUF budget the tutorial states); plus bad
// shapes and options.
#include <gtest/gtest.h>

#include <random>

#include <golden.h>
#include <ncore/host.h>
#include <ncore/kernels/matmul_tutorial.h>

namespace ncore {
namespace {

using golden::MatD;
using golden::MatF;
constexpr DType f32 = DType::kF32, bf16 = DType::kBF16;

enum class Kernel { kTiled, kHoist, kBlockFree, kFully };
const char* name(Kernel k) {
  switch (k) {
    case Kernel::kTiled: return "tiled";
    case Kernel::kHoist: return "hoist_load";
    case Kernel::kBlockFree: return "block_free";
    case Kernel::kFully: return "fully_blocked";
  }
  return "?";
}

struct Case {
  Kernel kernel;
  int64_t m, n, k;
  DType in, out;
  FullyBlockedOptions fully = {};
};

std::string label(const Case& c) {
  return cat(name(c.kernel), "_", c.m, "x", c.n, "x", c.k, "_", dtype_name(c.in), "_to_",
             dtype_name(c.out), c.fully.acc ? cat("_acc_", dtype_name(*c.fully.acc)) : "");
}

// Small blocks so that every fully_blocked loop runs more than once at test sizes.
constexpr FullyBlockedOptions kSmallBlocks{
    .tiles_in_block_m = 2, .tiles_in_block_n = 1, .tiles_in_block_k = 2};

auto kernel_fn(const Case& c) {
  return [c](auto& nc, std::vector<HbmTensor>& t) {
    switch (c.kernel) {
      case Kernel::kTiled: return matmul_tiled(nc, t[2], t[0], t[1]);
      case Kernel::kHoist: return matmul_hoist_load(nc, t[2], t[0], t[1]);
      case Kernel::kBlockFree: return matmul_block_free(nc, t[2], t[0], t[1]);
      case Kernel::kFully: return matmul_fully_blocked(nc, t[2], t[0], t[1], c.fully);
    }
  };
}

struct Data {
  MatF lhsT, rhs;  // [K, M], [K, N] as the kernel sees them (rounded to the input dtype)
  std::vector<uint8_t> lhsT_enc, rhs_enc, out_enc;
};

Data make_data(const Case& c, uint64_t seed, bool integer) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> small(-2, 2);
  auto fill = [&](MatF& m, std::vector<uint8_t>& enc, int64_t rows, int64_t cols) {
    m.resize(rows, cols);
    enc.resize(size_t(m.size() * dtype_size(c.in)));
    for (int64_t i = 0; i < m.size(); ++i) {
      encode(c.in, integer ? float(small(rng)) : u(rng), enc.data() + i * dtype_size(c.in));
      m.data()[i] = decode(c.in, enc.data() + i * dtype_size(c.in));
    }
  };
  Data d;
  fill(d.lhsT, d.lhsT_enc, c.k, c.m);
  fill(d.rhs, d.rhs_enc, c.k, c.n);
  d.out_enc.assign(size_t(c.m * c.n * dtype_size(c.out)), 0xff);  // NaN-ish until written
  return d;
}

std::vector<HostTensor> io(const Case& c, Data& d) {
  return {{"lhsT", d.lhsT_enc.data(), c.in, {c.k, c.m}},
          {"rhs", d.rhs_enc.data(), c.in, {c.k, c.n}},
          {"result", d.out_enc.data(), c.out, {c.m, c.n}, HbmKind::kOutput}};
}

MatF decode_out(const Case& c, const Data& d) {
  MatF out(c.m, c.n);
  for (int64_t i = 0; i < out.size(); ++i)
    out.data()[i] = decode(c.out, d.out_enc.data() + i * dtype_size(c.out));
  return out;
}

// The golden product and the bound the kernel's arithmetic guarantees.
//   tiled, hoist_load, block_free: one fp32 sum of K products in PSUM, rounded
//     once to the output: golden::gemm's bound.
//   fully_blocked: an fp32 PSUM sum of BK products per K block (gamma_BK(u32)),
//     then NB = K / BK additions into the accumulator, each rounding to the
//     accumulator dtype after an fp32 add (u_a + u32 (1 + u_a) per add; the
//     memset-zeroed first add counts), a recursive sum bounded by
//     gamma_NB(u_add) times the sum of |block partials| <= (1 + gamma_BK) |A||B|;
//     then one rounding to the output dtype if it differs.
golden::GemmGolden expected(const Case& c, const Data& d) {
  const MatF a = d.lhsT.transpose();
  if (c.kernel != Kernel::kFully) return golden::gemm(a, d.rhs, c.out);
  const DType acc = c.fully.acc.value_or(c.in);
  const int64_t bk = 128 * c.fully.tiles_in_block_k, nb = c.k / bk;
  const double u32 = unit_roundoff(f32), ua = unit_roundoff(acc), uo = unit_roundoff(c.out);
  const double u_add = acc == f32 ? u32 : ua + u32 * (1 + ua);
  const double e_psum = golden::gamma(bk, u32);
  const double e_acc = golden::gamma(nb, u_add) * (1 + e_psum);
  const double u_store = acc == c.out ? 0.0 : uo;
  const MatD ad = a.cast<double>(), bd = d.rhs.cast<double>();
  golden::GemmGolden g;
  g.c = ad * bd;
  g.bound = ((e_psum + e_acc) * (1 + u_store)) * (ad.cwiseAbs() * bd.cwiseAbs()) +
            u_store * g.c.cwiseAbs();
  g.bound.array() += double(c.k + 1) * std::ldexp(1.0, -126);
  return g;
}

const Case kCases[] = {
    {Kernel::kTiled, 256, 1024, 384, bf16, f32},
    {Kernel::kTiled, 128, 512, 256, bf16, bf16},
    {Kernel::kHoist, 256, 1024, 384, bf16, f32},
    {Kernel::kHoist, 256, 512, 256, f32, f32},
    {Kernel::kBlockFree, 512, 2048, 256, bf16, f32},
    {Kernel::kBlockFree, 256, 1024, 128, bf16, bf16},
    {Kernel::kFully, 512, 1024, 768, bf16, bf16, kSmallBlocks},  // the tutorial's bf16 accumulator
    {Kernel::kFully,
     512,
     1024,
     768,
     bf16,
     f32,
     {.tiles_in_block_m = 2, .tiles_in_block_n = 1, .tiles_in_block_k = 2, .acc = f32}},
    {Kernel::kFully,
     256,
     1024,
     512,
     f32,
     f32,
     {.tiles_in_block_m = 1, .tiles_in_block_n = 2, .tiles_in_block_k = 1}},
};

class TutorialCase : public ::testing::TestWithParam<Case> {};

TEST_P(TutorialCase, CpuMatchesGolden) {
  const Case c = GetParam();
  Data d = make_data(c, 3, false);
  run_cpu(io(c, d), kernel_fn(c));
  const auto g = expected(c, d);
  EXPECT_LE(golden::worst_ratio(decode_out(c, d), g.c, g.bound), 1.0) << label(c);
}

TEST_P(TutorialCase, InterpreterReplayMatchesGolden) {
  const Case c = GetParam();
  for (const Target* t : {&kTrn1, &kTrn2}) {
    Data d = make_data(c, 5, false);
    const auto tensors = io(c, d);
    run_program(build_program(*t, tensors, kernel_fn(c)), tensors);
    const auto g = expected(c, d);
    EXPECT_LE(golden::worst_ratio(decode_out(c, d), g.c, g.bound), 1.0)
        << label(c) << " " << t->name;
  }
}

// Products of integers in -2..2 are -4..4 and |sums| <= 4K < 2^24: exact in
// fp32. Only cases whose output and accumulator are fp32 can hold them (bf16
// holds integers up to 256).
class ExactCase : public ::testing::TestWithParam<Case> {};

TEST_P(ExactCase, SmallIntegersAreExactOnCpuAndInterpreter) {
  const Case c = GetParam();
  ASSERT_EQ(c.out, f32);
  ASSERT_TRUE(c.kernel != Kernel::kFully || c.fully.acc.value_or(c.in) == f32);
  const MatD want = [&] {
    Data d = make_data(c, 9, true);
    return MatD(d.lhsT.transpose().cast<double>() * d.rhs.cast<double>());
  }();
  Data cpu = make_data(c, 9, true);
  run_cpu(io(c, cpu), kernel_fn(c));
  EXPECT_EQ(decode_out(c, cpu).cast<double>(), want) << label(c);
  Data dev = make_data(c, 9, true);
  const auto tensors = io(c, dev);
  run_program(build_program(kTrn1, tensors, kernel_fn(c)), tensors);
  EXPECT_EQ(decode_out(c, dev).cast<double>(), want) << label(c);
}

TEST_P(TutorialCase, ProgramFollowsTheTutorialsLoops) {
  const Case c = GetParam();
  Data d;  // shapes only
  const auto tensors = io(c, d);
  const Program p = build_program(kTrn1, tensors, kernel_fn(c));
  const int64_t mt = c.m / 128, nt = c.n / 512, kt = c.k / 128;
  EXPECT_EQ(int64_t(p.count(Opcode::kMatmul)), mt * nt * kt);
  int64_t loads = 0, stores = 0;
  for (const Instr& in : p.instrs)
    if (in.op == Opcode::kDma) (in.dst().space == Space::kHbm ? stores : loads) += 1;
  switch (c.kernel) {
    case Kernel::kTiled:  // both operands per matmul; one store per output tile
      EXPECT_EQ(loads, 2 * mt * nt * kt);
      EXPECT_EQ(stores, mt * nt);
      break;
    case Kernel::kHoist:  // lhsT once per m, rhs once per (m, n)
      EXPECT_EQ(loads, mt * kt + mt * nt * kt);
      EXPECT_EQ(stores, mt * nt);
      break;
    case Kernel::kBlockFree:  // per 2-tile M block and per (M block, 2-tile N block)
      EXPECT_EQ(loads, mt * kt + (mt / 2) * nt * kt);
      EXPECT_EQ(stores, mt * nt);
      break;
    case Kernel::kFully: {  // [128, BLOCK_N] rhs and [128, BLOCK_M] lhsT loads, K-tile each
      const int64_t nbn = c.n / (512 * c.fully.tiles_in_block_n),
                    nbm = c.m / (128 * c.fully.tiles_in_block_m);
      EXPECT_EQ(loads, nbn * kt * (1 + nbm));
      EXPECT_EQ(stores, nbn * mt);  // one packed [128, BLOCK_N] store per M tile
      EXPECT_EQ(int64_t(p.count(Opcode::kTensorTensor)),
                mt * nt * (c.k / (128 * c.fully.tiles_in_block_k)));
      EXPECT_EQ(int64_t(p.count(Opcode::kMemset)), nbn * mt * c.fully.tiles_in_block_n);
      break;
    }
  }
  EXPECT_LE(p.sbuf_peak_bytes, kTrn1.sbuf_partition_bytes);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TutorialCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return label(info.param); });
INSTANTIATE_TEST_SUITE_P(Shapes, ExactCase,
                         ::testing::Values(kCases[0], kCases[3], kCases[4], kCases[7], kCases[8]),
                         [](const auto& info) { return label(info.param); });

TEST(TutorialSbuf, TutorialShapeFitsTrn1AsTheTutorialBudgets) {
  // [4096, 8192] @ [8192, 8192] bf16: block_free holds all of K for a 256 x
  // 1024 block (32 + 128 KiB, single-buffered); fully_blocked's bf16
  // accumulator is 64 KiB, leaving room for double-buffered operand sets.
  auto peak = [](auto kernel) {
    const std::vector<HostTensor> t = {{"lhsT", nullptr, bf16, {8192, 4096}},
                                       {"rhs", nullptr, bf16, {8192, 8192}},
                                       {"result", nullptr, bf16, {4096, 8192}, HbmKind::kOutput}};
    return build_program(kTrn1, t, kernel).sbuf_peak_bytes;
  };
  const int64_t block_free =
      peak([](auto& nc, auto& t) { matmul_block_free(nc, t[2], t[0], t[1]); });
  EXPECT_EQ(block_free, (32 + 128) * 1024 + 2 * 1024);
  const int64_t fully = peak([](auto& nc, auto& t) { matmul_fully_blocked(nc, t[2], t[0], t[1]); });
  EXPECT_EQ(fully, 64 * 1024 + 2 * (16 + 32) * 1024 + 2 * 2048);
  const int64_t fully32 =
      peak([](auto& nc, auto& t) { matmul_fully_blocked(nc, t[2], t[0], t[1], {.acc = f32}); });
  EXPECT_EQ(fully32, 128 * 1024 + (16 + 32) * 1024 + 2 * 4096);
}

TEST(TutorialErrors, ShapesAndOptionsAreChecked) {
  auto build = [](int64_t m, int64_t n, int64_t k, int64_t k2, auto kernel) {
    const std::vector<HostTensor> t = {{"lhsT", nullptr, bf16, {k, m}},
                                       {"rhs", nullptr, bf16, {k2, n}},
                                       {"result", nullptr, f32, {m, n}, HbmKind::kOutput}};
    return build_program(kTrn2, t, kernel);
  };
  auto tiled = [](auto& nc, auto& t) { matmul_tiled(nc, t[2], t[0], t[1]); };
  try {
    build(200, 512, 128, 128, tiled);
    FAIL() << "M = 200 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.instruction(), "matmul_tiled");
    EXPECT_EQ(e.operand(), "lhsT");
    EXPECT_NE(std::string(e.what()).find("M = 200 must be a multiple of 128"), std::string::npos)
        << e.what();
    EXPECT_NE(e.location().find("matmul_tutorial_test.cc"), std::string::npos) << e.location();
  }
  EXPECT_THROW(build(128, 512, 256, 128, tiled), Error);  // K mismatch
  EXPECT_THROW(
      build(128, 512, 128, 128, [](auto& nc, auto& t) { matmul_block_free(nc, t[2], t[0], t[1]); }),
      Error);  // M not a multiple of 256
  EXPECT_THROW(build(256, 512, 128, 128,
                     [](auto& nc, auto& t) {
                       matmul_fully_blocked(nc, t[2], t[0], t[1], {.tiles_in_block_k = 0});
                     }),
               Error);
  EXPECT_THROW(
      build(128, 512, 128, 128,
            [](auto& nc, auto& t) { matmul_hoist_load(nc, t[2], t[0], t[1], {.bufs = 0}); }),
      Error);
  EXPECT_THROW(build(2048, 1024, 1024, 1024,
                     [](auto& nc, auto& t) {
                       matmul_fully_blocked(nc, t[2], t[0], t[1], {.tiles_in_block_m = 64});
                     }),
               Error);  // M = 2048 is not a multiple of 64 x 128
}

}  // namespace
}  // namespace ncore
