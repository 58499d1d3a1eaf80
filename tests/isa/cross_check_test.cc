// The two backends against each other: the same small kernels run on the SIMD
// CPU reference and, emitted, in the interpreter. Everything the scalar
// definitions fix exactly (casts, ALU ops, reductions in the shared order,
// bn_stats, masks, copies and transposes) must agree bit for bit; transcendental
// activations within the CPU's tested ulp bounds; matmul within its bound.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <random>

#include <ncore/host.h>
#include <ncore/isa/numerics.h>

namespace ncore {
namespace {

constexpr int64_t kP = 96, kF = 200;  // partitions x free: tails for every SIMD width

using Body = std::function<void(CpuCore&, const std::vector<HbmTensor>&)>;

// x and y: [kP, kF] f32 inputs; out: [kP, kF] f32. Kernels are generic lambdas
// instantiated for both cores.
template <class Kernel>
std::pair<std::vector<float>, std::vector<float>> run_both(Kernel kernel, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> x(kP * kF), y(kP * kF);
  for (float& v : x) v = u(rng);
  for (float& v : y) v = u(rng);
  // A sprinkle of special values: they must propagate identically.
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, 65504.0f, 3e38f};
  for (size_t i = 0; i < std::size(special); ++i) x[i * 37] = special[i];
  auto io = [&](std::vector<float>& out) {
    out.assign(kP * kF, 0.0f);
    return std::vector<HostTensor>{{"x", x.data(), DType::kF32, {kP, kF}},
                                   {"y", y.data(), DType::kF32, {kP, kF}},
                                   {"out", out.data(), DType::kF32, {kP, kF}, HbmKind::kOutput}};
  };
  std::vector<float> cpu, dev;
  run_cpu(io(cpu), kernel);
  const auto dio = io(dev);
  run_program(build_program(kTrn2, dio, kernel), dio);
  return {cpu, dev};
}

// Loads x and y into SBUF tiles of `dt`, calls op(nc, dst, a, b) and stores dst.
template <class Op>
auto elementwise(DType dt, Op op) {
  return [dt, op](auto& nc, const std::vector<HbmTensor>& t) {
    auto a = nc.sbuf(dt, kP, {kF}), b = nc.sbuf(dt, kP, {kF}), d = nc.sbuf(DType::kF32, kP, {kF});
    nc.dma(a, t[0]);
    nc.dma(b, t[1]);
    nc.memset(d, 0.0f);
    op(nc, d, a, b);
    nc.dma(t[2], d);
  };
}

void expect_bitwise(const std::vector<float>& cpu, const std::vector<float>& dev,
                    const std::string& what) {
  int64_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const bool same = std::bit_cast<uint32_t>(cpu[i]) == std::bit_cast<uint32_t>(dev[i]) ||
                      (std::isnan(cpu[i]) && std::isnan(dev[i]));
    if (!same && bad++ < 3)
      ADD_FAILURE() << what << " [" << i / kF << ", " << i % kF << "]: cpu " << cpu[i]
                    << " interpreter " << dev[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

int64_t ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  if (a == b) return 0;
  auto key = [](float f) {
    const int32_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? int64_t(INT32_MIN) - i : int64_t(i);
  };
  return std::abs(key(a) - key(b));
}

TEST(CrossCheck, TensorTensorEveryAluOpAndDtype) {
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16, DType::kFP8E4M3})
    for (int op = 0; op < kNumAluOps; ++op) {
      auto [cpu, dev] = run_both(elementwise(dt, [op](auto& nc, auto& d, auto& a, auto& b) {
        nc.tensor_tensor(d, a, b, AluOp(op));
      }), 1 + op);
      expect_bitwise(cpu, dev, cat("tensor_tensor ", alu_name(AluOp(op)), " ", dtype_name(dt)));
    }
}

TEST(CrossCheck, TensorScalarImmediateAndColumnOperands) {
  for (bool reverse : {false, true})
    for (AluOp op0 : {AluOp::kSubtract, AluOp::kDivide, AluOp::kMax, AluOp::kIsGe}) {
      auto [cpu, dev] = run_both(elementwise(DType::kBF16, [=](auto& nc, auto& d, auto& a, auto& b) {
        auto col = nc.sbuf(DType::kF32, kP, {1});
        nc.tensor_copy(col, b.slice(0, 0, 1));
        nc.tensor_scalar(d, a, op0, Scalar(col), AluOp::kMultiply, 0.375f, reverse, !reverse);
      }), 7);
      expect_bitwise(cpu, dev, cat("tensor_scalar ", alu_name(op0), reverse ? " reversed" : ""));
    }
}

// The fused pairs (subtract / add / multiply, one SIMD pass on the CPU) and
// the two-pass rest, reversed or not, bf16 and f32 inputs.
TEST(CrossCheck, ScalarTensorTensorPairsAndFlags) {
  for (DType dt : {DType::kBF16, DType::kF32})
    for (int flags = 0; flags < 4; ++flags)
      for (auto [op0, op1] : {std::pair{AluOp::kSubtract, AluOp::kMultiply},
                              std::pair{AluOp::kMultiply, AluOp::kAdd},
                              std::pair{AluOp::kDivide, AluOp::kMax}}) {
        const bool r0 = flags & 1, r1 = flags & 2;
        auto [cpu, dev] = run_both(elementwise(dt, [=](auto& nc, auto& d, auto& a, auto& b) {
          auto col = nc.sbuf(DType::kF32, kP, {1});
          nc.tensor_copy(col, b.slice(0, 0, 1));
          nc.scalar_tensor_tensor(d, a, op0, Scalar(col), op1, b, r0, r1);
        }), 9);
        expect_bitwise(cpu, dev, cat("scalar_tensor_tensor ", alu_name(op0), " ", alu_name(op1),
                                     " flags ", flags, " ", dtype_name(dt)));
      }
}

TEST(CrossCheck, ReductionsInTheSharedOrder) {
  for (AluOp op : {AluOp::kAdd, AluOp::kMax, AluOp::kMin})
    for (int axes : {1, 2}) {
      auto [cpu, dev] = run_both(elementwise(DType::kF32, [=](auto& nc, auto& d, auto& a, auto&) {
        const Tile src = a.reshape({10, 20});
        nc.tensor_reduce(axes == 1 ? d.slice(0, 0, 10) : d.slice(0, 0, 1), op, src, axes,
                         /*negate=*/op == AluOp::kMin);
      }), 3);
      expect_bitwise(cpu, dev, cat("tensor_reduce ", alu_name(op), " axes ", axes));
    }
  auto [cpu, dev] = run_both(elementwise(DType::kF32, [](auto& nc, auto& d, auto& a, auto&) {
    auto stats = nc.sbuf(DType::kF32, kP, {6});
    nc.bn_stats(stats, a.slice(0, 0, 150));
    nc.bn_aggr(d.slice(0, 0, 2), stats);
  }), 4);
  expect_bitwise(cpu, dev, "bn_stats + bn_aggr");
}

TEST(CrossCheck, ActivationsWithBiasScaleAndAccumulator) {
  // ulp bounds of the CPU's SIMD functions, from tests/reference/cpu_activation_test.cc.
  const std::pair<ActFunc, int64_t> funcs[] = {
      {ActFunc::kCopy, 0}, {ActFunc::kSquare, 0}, {ActFunc::kRelu, 0}, {ActFunc::kAbs, 0},
      {ActFunc::kSqrt, 0}, {ActFunc::kRsqrt, 0}, {ActFunc::kReciprocal, 0}, {ActFunc::kExp, 1},
      {ActFunc::kLog, 4}, {ActFunc::kTanh, 4}, {ActFunc::kSigmoid, 3}, {ActFunc::kSilu, 4},
      {ActFunc::kGelu, 1}};
  for (auto [f, bound] : funcs) {
    auto [cpu, dev] = run_both(elementwise(DType::kF32, [f](auto& nc, auto& d, auto& a, auto& b) {
      auto bias = nc.sbuf(DType::kF32, kP, {1});
      auto sum = nc.sbuf(DType::kF32, kP, {1});
      nc.tensor_copy(bias, b.slice(0, 0, 1));
      nc.activation(d.slice(0, 0, kF - 1), f, a.slice(0, 0, kF - 1),
                    {.scale = 0.5f, .bias = bias, .accum = sum});
      nc.tensor_copy(d.slice(0, kF - 1, kF), sum);
    }), 5);
    int64_t worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i)
      if (i % kF != kF - 1) worst = std::max(worst, ulps(cpu[i], dev[i]));
    EXPECT_LE(worst, bound) << act_name(f);
    // The accumulator sums already-different values only when bound > 0.
    if (bound == 0) {
      for (int64_t p = 0; p < kP; ++p)
        EXPECT_EQ(ulps(cpu[p * kF + kF - 1], dev[p * kF + kF - 1]), 0) << act_name(f) << " sum";
    }
  }
}

TEST(CrossCheck, CastsMasksIotaAndTranspose) {
  for (DType dt : {DType::kBF16, DType::kF16, DType::kFP8E4M3, DType::kFP8E5M2, DType::kI32}) {
    auto [cpu, dev] = run_both(elementwise(dt, [](auto& nc, auto& d, auto& a, auto&) {
      nc.tensor_copy(d, a);
    }), 6);
    expect_bitwise(cpu, dev, cat("dma + tensor_copy through ", dtype_name(dt)));
  }
  auto [cpu, dev] = run_both(elementwise(DType::kF32, [](auto& nc, auto& d, auto& a, auto&) {
    auto idx = nc.sbuf(DType::kI32, kP, {kF});
    nc.iota(idx, Affine{.base = -50, .channel = 3, .free = {-1, 0, 0, 0}});
    nc.tensor_copy(d.slice(0, 0, kF / 2), idx.slice(0, 0, kF / 2));
    nc.affine_select(d.slice(0, kF / 2, kF), a.slice(0, kF / 2, kF),
                     Affine{.base = 7, .channel = 1, .free = {-1, 0, 0, 0}}, AluOp::kIsGe, -1e30f);
  }), 8);
  expect_bitwise(cpu, dev, "iota + affine_select");
  auto [tc, td] = run_both([](auto& nc, const std::vector<HbmTensor>& t) {
    auto a = nc.sbuf(DType::kBF16, kP, {kF});
    auto tp = nc.psum(DType::kF32, 128, {kP});
    auto out = nc.sbuf(DType::kF32, kP, {kF});
    nc.dma(a, t[0]);
    nc.memset(out, 0.0f);
    nc.transpose(tp, a.slice(0, 0, 128));
    nc.tensor_copy(out.slice(0, 0, 96), tp.partitions(0, kP).slice(0, 0, 96));
    nc.dma(t[2], out);
  }, 9);
  expect_bitwise(tc, td, "PE transpose");
  // SBUF -> SBUF dma_transpose, two blocks: a [96, 2 x 64] -> [64, 2 x 96], bits (NaN payloads too).
  auto [dc, dd] = run_both([](auto& nc, const std::vector<HbmTensor>& t) {
    auto a = nc.sbuf(DType::kBF16, kP, {kF});
    auto at = nc.sbuf(DType::kBF16, 64, {2, kP});
    auto out = nc.sbuf(DType::kF32, kP, {kF});
    nc.dma(a, t[0]);
    nc.memset(out, 0.0f);
    nc.dma_transpose(at, a.slice(0, 0, 128));
    nc.tensor_copy(out.partitions(0, 64).slice(0, 0, 2 * kP), at);
    nc.dma(t[2], out);
  }, 10);
  expect_bitwise(dc, dd, "SBUF dma_transpose");
}

}  // namespace
}  // namespace ncore
