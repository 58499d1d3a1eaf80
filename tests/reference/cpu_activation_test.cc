// The CPU reference's activation instruction on every compiled and supported
// Highway target: func(src * scale + bias) with immediates or [P, 1] columns,
// every dtype and walk, the accumulator, and the accuracy of the
// transcendental functions against isa/semantics.h activate().
//
// Bit-exact: copy, square, sqrt, rsqrt, reciprocal, relu, abs (and every
// accumulator of them). Ulp bounds (fp32 results, every finite input; the
// reference activate() is correctly rounded up to double's rounding, so
// half an ulp of each bound is the reference's own rounding):
//   exp      1  Highway Exp's documented bound (hwy/contrib/math).
//   log      4  Highway Log's documented bound.
//   tanh     4  Highway Tanh's documented bound.
//   sigmoid  3  e = exp(-|x|) (1 ulp), 1 + e (1/2; e's error enters at most
//               halved), the division (1/2), the reference (1/2).
//   silu     4  sigmoid's terms plus the rounding of x * e.
//   gelu     1  evaluated in double (fits of relative error < 4e-12), rounded
//               once: only the two roundings can disagree.
// Narrower destinations: 1 ulp of the destination dtype (the fp32 results are
// far closer than that, and rounding is monotone). Special inputs (NaN, +-inf,
// +-0, negatives for log/sqrt/rsqrt, overflow and underflow) give the same
// class of result as activate(): the same infinity or signed zero, NaN for NaN.

#include "cpu_test_util.h"

namespace ncore::test {
namespace {

constexpr ActFunc kExact[] = {ActFunc::kCopy,  ActFunc::kSquare,     ActFunc::kSqrt,
                              ActFunc::kRsqrt, ActFunc::kReciprocal, ActFunc::kRelu,
                              ActFunc::kAbs};

struct Approx {
  ActFunc f;
  int64_t ulps;
  float lo, hi;  // the swept input range (every finite fp32 behaves alike outside)
};
constexpr Approx kApprox[] = {
    {ActFunc::kExp, 1, -110.0f, 90.0f},   {ActFunc::kLog, 4, 0.0f, 3.4e38f},
    {ActFunc::kTanh, 4, -30.0f, 30.0f},   {ActFunc::kSigmoid, 3, -200.0f, 100.0f},
    {ActFunc::kSilu, 4, -200.0f, 100.0f}, {ActFunc::kGelu, 1, -20.0f, 1e4f},
};

int64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  const uint32_t ua = std::bit_cast<uint32_t>(a), ub = std::bit_cast<uint32_t>(b);
  if (ua == ub) return 0;
  return std::max<int64_t>(std::abs(ordered(DType::kF32, ua) - ordered(DType::kF32, ub)), 1);
}

// Inputs over [lo, hi]: a uniform grid, a log-uniform grid of both signs
// (tiny and subnormal magnitudes included), and random floats.
std::vector<float> sweep(float lo, float hi, std::mt19937& rng) {
  std::vector<float> x;
  const int kGrid = 1 << 15;
  for (int i = 0; i < kGrid; ++i) x.push_back(lo + (hi - lo) * (float(i) + 0.5f) / float(kGrid));
  for (int i = 0; i < kGrid; ++i) {
    const float m = std::exp2(-149.0f + 277.0f * float(i) / float(kGrid));
    if (m >= std::max(std::fabs(lo), std::fabs(hi))) break;
    if (m <= hi) x.push_back(m);
    if (-m >= lo) x.push_back(-m);
  }
  std::uniform_real_distribution<float> u(lo, hi);
  for (int i = 0; i < kGrid; ++i) x.push_back(u(rng));
  return x;
}

// Runs f on x (one partition, contiguous f32) on the current target.
std::vector<float> run(ActFunc f, const std::vector<float>& x) {
  std::vector<float> in = x, out(x.size());
  Instr ins = make(Opcode::kActivation);
  ins.func = f;
  ins.imm[0] = 1.0f;
  ins.imm[1] = -0.0f;  // x * 1 + -0 is x, signed zeros included
  std::array<View, 5> v;
  v[0].base = reinterpret_cast<uint8_t*>(out.data());
  v[0].np = 1;
  v[0].ap = AccessPattern::dense({int64_t(x.size())});
  v[1] = v[0];
  v[1].base = reinterpret_cast<uint8_t*>(in.data());
  cpu::execute(ins, v);
  return out;
}

TEST(Activation, TranscendentalUlpBounds) {
  std::mt19937 rng(3);
  for (const Approx& a : kApprox) {
    const std::vector<float> x = sweep(a.lo, a.hi, rng);
    for_each_target([&](int64_t target) {
      const std::vector<float> y = run(a.f, x);
      int64_t worst = 0;
      float at = 0.0f;
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t d = ulp_distance(y[i], activate(a.f, x[i]));
        if (d > worst) {
          worst = d;
          at = x[i];
        }
      }
      EXPECT_LE(worst, a.ulps) << act_name(a.f) << " at x = " << at << ": got " << run(a.f, {at})[0]
                               << ", want " << activate(a.f, at);
      RecordProperty(cat(act_name(a.f), "_", hwy::TargetName(target), "_max_ulp"), int(worst));
    });
  }
}

TEST(Activation, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float max = std::numeric_limits<float>::max();
  const std::vector<float> x = {
      nan,    -nan,  inf,    -inf,   0.0f,   -0.0f,  1e-45f,  -1e-45f, 1e-38f,   -3.0f,
      max,    -max,  88.72f, 88.73f, 89.0f,  -87.5f, -103.9f, -104.5f, -150.0f,  1e30f,
      -1e30f, 18.7f, 18.8f,  -16.5f, -14.0f, -40.0f, 64.0f,   -64.0f,  -63.999f, 200.0f};
  for (ActFunc f : {ActFunc::kExp, ActFunc::kLog, ActFunc::kTanh, ActFunc::kSigmoid, ActFunc::kSilu,
                    ActFunc::kGelu, ActFunc::kSqrt, ActFunc::kRsqrt, ActFunc::kReciprocal,
                    ActFunc::kRelu, ActFunc::kSquare, ActFunc::kAbs}) {
    int64_t bound = 0;
    for (const Approx& a : kApprox)
      if (a.f == f) bound = a.ulps;
    for_each_target([&](int64_t) {
      const std::vector<float> y = run(f, x);
      for (size_t i = 0; i < x.size(); ++i) {
        const float want = activate(f, x[i]);
        SCOPED_TRACE(cat(act_name(f), "(", x[i], "): want ", want, " got ", y[i]));
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(y[i]));
        } else if (std::isinf(want) || want == 0.0f) {
          EXPECT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(want));
        } else {
          EXPECT_LE(ulp_distance(y[i], want), bound);
        }
      }
    });
  }
}

// Exact functions: every dtype pair and walk, immediate and column scale and
// bias, with the accumulator; all bit for bit.
TEST(Activation, ExactFunctionsEveryDTypeAndWalk) {
  int iter = 0;
  for (ActFunc f : kExact)
    for (DType st : kAllDTypes)
      for (int64_t n : {1, 24, 2310}) {
        const std::vector<AccessPattern> dst_aps = patterns(n, false);
        const std::vector<AccessPattern> src_aps = patterns(n, true);
        for (size_t i = 0; i < dst_aps.size(); i += 2) {
          ++iter;
          Arena a{uint32_t(iter)};
          const DType dt = kAllDTypes[size_t(iter) % std::size(kAllDTypes)];
          const int np = n > 100 ? 2 : 3;
          const Opnd s = a.place(
              st, np, src_aps[(i + 1) % src_aps.size()],
              f == ActFunc::kSqrt || f == ActFunc::kRsqrt ? Fill::kPositive : Fill::kValues);
          const Opnd d = a.place(dt, np, dst_aps[i]);
          Instr in = make(Opcode::kActivation);
          in.func = f;
          in.imm[0] = iter % 3 ? 1.0f : -0.75f;
          in.imm[1] = iter % 2 ? 0.0f : 0.5f;
          std::array<Opnd, 5> o{d, s};
          o[2] = a.place(DType::kF32, np, AccessPattern::dense({1}));
          if (iter % 4 == 0) o[3] = a.place(DType::kF32, np, AccessPattern::dense({1}));
          if (iter % 5 == 0) o[4] = a.place(DType::kF32, np, AccessPattern::dense({1}));
          SCOPED_TRACE(cat(act_name(f), " ", dtype_name(dt), " <- ", dtype_name(st), " n ", n,
                           " pattern ", i));
          check(a, in, o);
        }
      }
}

// Transcendental functions through the instruction: walks, narrow dtypes,
// scale and bias columns; the accumulator must be reduce(add) of the very
// fp32 results written (f32 destinations show them).
TEST(Activation, TranscendentalWalksDTypesAccum) {
  int iter = 0;
  for (const Approx& ap : kApprox)
    for (DType dt : {DType::kF32, DType::kBF16, DType::kFP8E4M3, DType::kF16})
      for (int64_t n : {1, 60, 2310}) {
        ++iter;
        Arena a{uint32_t(iter)};
        const std::vector<AccessPattern> aps = patterns(n, true);
        const DType st = kAllDTypes[size_t(iter) % 5];  // float dtypes
        const int np = 3;
        const Opnd s = a.place(st, np, aps[size_t(iter) % aps.size()],
                               ap.f == ActFunc::kLog ? Fill::kPositive : Fill::kValues);
        const Opnd d = a.place(dt, np, patterns(n, false)[0]);
        const Opnd acc = a.place(DType::kF32, np, AccessPattern::dense({1}));
        const Opnd bias = a.place(DType::kF32, np, AccessPattern::dense({1}), Fill::kFinite);
        Instr in = make(Opcode::kActivation);
        in.func = ap.f;
        in.imm[0] = 0.5f;
        Tolerance tol;
        tol.ulps[0] = dt == DType::kF32 ? ap.ulps : 1;
        tol.ulps[2] = INT64_MAX / 2;  // checked below against the written results
        const std::array<Opnd, 5> o{d, s, acc, bias};
        SCOPED_TRACE(cat(act_name(ap.f), " ", dtype_name(dt), " <- ", dtype_name(st), " n ", n));
        check(a, in, o, tol, [&](const std::array<View, 5>& v) {
          if (dt != DType::kF32) return;
          for (int p = 0; p < np; ++p) {
            const float want = reduce(AluOp::kAdd, n, [&](int64_t j) { return get(v[0], p, j); });
            const float got = get(v[2], p, 0);
            EXPECT_TRUE(std::bit_cast<uint32_t>(want) == std::bit_cast<uint32_t>(got) ||
                        (std::isnan(want) && std::isnan(got)))
                << "partition " << p << ": accum " << got << ", sum of results " << want;
          }
        });
      }
}

// Softmax's exp(x - max) over [128, 2048] f32 with a bias column and the row
// sums, in place and not; past many chunks.
TEST(Activation, LargeTileExpAccum) {
  Arena a(5);
  const Opnd x = a.place(DType::kF32, 128, AccessPattern::dense({2048}), Fill::kFinite);
  const Opnd bias = a.place(DType::kF32, 128, AccessPattern::dense({1}), Fill::kFinite);
  const Opnd sum = a.place(DType::kF32, 128, AccessPattern::dense({1}));
  const Opnd y = a.place(DType::kBF16, 128, AccessPattern::dense({2048}));
  Instr in = make(Opcode::kActivation);
  in.func = ActFunc::kExp;
  in.imm[0] = 0.125f;
  Tolerance tol;
  tol.ulps[0] = 1;  // bf16 destination
  // The sums add the same number of terms in the same order, but each term
  // may be 1 ulp off (exp > 0, so sum |y| = S): |sum - sum'| <= 2^-23 S from
  // the terms, plus gamma_k S for each sum's roundings (k = 2048 / 64 + 6 = 38
  // additions deep): (2 + 2 * 38) 2^-24 S, at most 78 ulps of S.
  tol.ulps[2] = 78;
  check(a, in, {y, x, sum, bias}, tol);
  check(a, in, {x, x, sum, bias}, tol);
}

}  // namespace
}  // namespace ncore::test
