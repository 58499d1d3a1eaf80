// Per-target arithmetic on fp32 rows: the ALU ops of isa/semantics.h alu(),
// the activation functions of activate(), and the fixed-order reduction of
// reduce(). Every op is its own rounding: Mul then Add, never MulAdd outside
// the approximations (the TU is compiled without FMA contraction, see
// cpu_execute.cc).
//
// Activations against activate() (evaluated in double, rounded once), in fp32
// ulps over all finite inputs (bound tested / measured on every target):
//   bit-identical: copy, square, sqrt, relu, abs; rsqrt and reciprocal (in
//     double, exactly as activate() does);
//   exp      Highway Exp, clamped where its exponent arithmetic wraps  1 / 1
//   log      Highway Log, plus IEEE's special cases                    4 / 1
//   tanh     Highway Tanh                                              4 / 3
//   sigmoid  1 / (1 + e) or e / (1 + e), e = exp(-|x|)                 3 / 2
//   silu     x / (1 + e) or x e / (1 + e)                              4 / 3
//   gelu     x Phi(x) in double (fits of Phi: relative error < 4e-12)  1 / 1
// Special inputs (NaN, +-inf, +-0, negatives for log / sqrt / rsqrt,
// overflow, underflow) give activate()'s infinity, signed zero or NaN.
// tests/reference/cpu_activation_test.cc derives and checks each bound.

#if defined(NCORE_REFERENCE_CPU_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_MATH_INL_H_
#undef NCORE_REFERENCE_CPU_MATH_INL_H_
#else
#define NCORE_REFERENCE_CPU_MATH_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>
#include <ncore/isa/opcodes.h>
#include <ncore/isa/semantics.h>
#include <ncore/reference/cpu_convert-inl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- Whole-vector loops with padded tails ----

// out[i] = f(a[i]) for i < n. The tail goes through padded copies, so no
// access passes either end of the caller's rows.
template <class D, class F>
HWY_INLINE void Map1(D d, float* out, const float* a, int64_t n, F f) {
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(d, a + i)), d, out + i);
  if (i < n) {
    HWY_ALIGN float ta[hn::MaxLanes(d)] = {};
    HWY_ALIGN float to[hn::MaxLanes(d)];
    std::memcpy(ta, a + i, size_t(n - i) * sizeof(float));
    hn::Store(f(hn::Load(d, ta)), d, to);
    std::memcpy(out + i, to, size_t(n - i) * sizeof(float));
  }
}

// out[i] = f(a[i], b[i]) for i < n, tails as Map1.
template <class D, class F>
HWY_INLINE void Map2(D d, float* out, const float* a, const float* b, int64_t n, F f) {
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  if (i < n) {
    HWY_ALIGN float ta[hn::MaxLanes(d)] = {};
    HWY_ALIGN float tb[hn::MaxLanes(d)] = {};
    HWY_ALIGN float to[hn::MaxLanes(d)];
    std::memcpy(ta, a + i, size_t(n - i) * sizeof(float));
    std::memcpy(tb, b + i, size_t(n - i) * sizeof(float));
    hn::Store(f(hn::Load(d, ta), hn::Load(d, tb)), d, to);
    std::memcpy(out + i, to, size_t(n - i) * sizeof(float));
  }
}

// The same over typed rows (f32 or bf16 in memory): out = f(a) and
// out = f(a, b), converting in registers. out may be a or b itself (in
// place: each vector is loaded before it is stored).
template <RowType TA, RowType TO, class D, class F>
HWY_INLINE void Map1T(D d, RowOut out, RowIn a, int64_t n, F f) {
  constexpr int64_t kA = RowSize(TA), kO = RowSize(TO);
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) StoreRow<TO>(d, f(LoadRow<TA>(d, a.p + i * kA)), out.p + i * kO);
  if (i < n) {
    HWY_ALIGN uint8_t ta[hn::MaxLanes(d) * 4] = {};
    HWY_ALIGN uint8_t to[hn::MaxLanes(d) * 4];
    std::memcpy(ta, a.p + i * kA, size_t((n - i) * kA));
    StoreRow<TO>(d, f(LoadRow<TA>(d, ta)), to);
    std::memcpy(out.p + i * kO, to, size_t((n - i) * kO));
  }
}

template <RowType TA, RowType TB, RowType TO, class D, class F>
HWY_INLINE void Map2T(D d, RowOut out, RowIn a, RowIn b, int64_t n, F f) {
  constexpr int64_t kA = RowSize(TA), kB = RowSize(TB), kO = RowSize(TO);
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N)
    StoreRow<TO>(d, f(LoadRow<TA>(d, a.p + i * kA), LoadRow<TB>(d, b.p + i * kB)), out.p + i * kO);
  if (i < n) {
    HWY_ALIGN uint8_t ta[hn::MaxLanes(d) * 4] = {};
    HWY_ALIGN uint8_t tb[hn::MaxLanes(d) * 4] = {};
    HWY_ALIGN uint8_t to[hn::MaxLanes(d) * 4];
    std::memcpy(ta, a.p + i * kA, size_t((n - i) * kA));
    std::memcpy(tb, b.p + i * kB, size_t((n - i) * kB));
    StoreRow<TO>(d, f(LoadRow<TA>(d, ta), LoadRow<TB>(d, tb)), to);
    std::memcpy(out.p + i * kO, to, size_t((n - i) * kO));
  }
}

// ---- ALU (semantics.h alu) ----

// alu(kOp, a, b) on vectors. max/min propagate NaN as the canonical quiet
// NaN (x86 maxps returns its second operand instead); not_equal is !(a == b)
// because Highway's Ne is the ordered compare (false for NaN).
template <AluOp kOp, class D, class V = hn::Vec<D>>
HWY_INLINE V AluV(D d, V a, V b) {
  const V one = hn::Set(d, 1.0f);
  if constexpr (kOp == AluOp::kBypass) {
    return a;
  } else if constexpr (kOp == AluOp::kAdd) {
    return hn::Add(a, b);
  } else if constexpr (kOp == AluOp::kSubtract) {
    return hn::Sub(a, b);
  } else if constexpr (kOp == AluOp::kMultiply) {
    return hn::Mul(a, b);
  } else if constexpr (kOp == AluOp::kDivide) {
    return hn::Div(a, b);
  } else if constexpr (kOp == AluOp::kMax || kOp == AluOp::kMin) {
    const V pick = kOp == AluOp::kMax ? hn::IfThenElse(hn::Gt(a, b), a, b)
                                      : hn::IfThenElse(hn::Lt(a, b), a, b);
    return hn::IfThenElse(hn::Or(hn::IsNaN(a), hn::IsNaN(b)),
                          hn::Set(d, std::numeric_limits<float>::quiet_NaN()), pick);
  } else if constexpr (kOp == AluOp::kIsEqual) {
    return hn::IfThenElseZero(hn::Eq(a, b), one);
  } else if constexpr (kOp == AluOp::kNotEqual) {
    return hn::IfThenZeroElse(hn::Eq(a, b), one);
  } else if constexpr (kOp == AluOp::kIsLt) {
    return hn::IfThenElseZero(hn::Lt(a, b), one);
  } else if constexpr (kOp == AluOp::kIsLe) {
    return hn::IfThenElseZero(a <= b, one);
  } else if constexpr (kOp == AluOp::kIsGt) {
    return hn::IfThenElseZero(hn::Gt(a, b), one);
  } else {
    static_assert(kOp == AluOp::kIsGe);
    return hn::IfThenElseZero(a >= b, one);
  }
}

// Calls f(std::integral_constant<AluOp, op>{}): one dispatch per row or
// chunk, outside the loops.
template <class F>
HWY_INLINE void WithAluOp(AluOp op, F&& f) {
  switch (op) {
#define NCORE_X(Name, mnemonic) \
  case AluOp::k##Name: return f(std::integral_constant<AluOp, AluOp::k##Name>());
    NCORE_ALU_OPS(NCORE_X)
#undef NCORE_X
  }
}

// out[i] = alu(op, a[i], b[i]).
inline void AluRows(AluOp op, RowOut out, RowIn a, RowIn b, int64_t n) {
  const hn::ScalableTag<float> d;
  WithAluOp(op, [&](auto k) {
    WithRowType(a.t, [&](auto ta) {
      WithRowType(b.t, [&](auto tb) {
        WithRowType(out.t, [&](auto to) {
          Map2T<decltype(ta)::value, decltype(tb)::value, decltype(to)::value>(
              d, out, a, b, n, [&](auto x, auto y) { return AluV<decltype(k)::value>(d, x, y); });
        });
      });
    });
  });
}

// out[i] = alu(op, a[i], s), or alu(op, s, a[i]) when reversed (literally: a
// reversed bypass yields s).
inline void AluScalar(AluOp op, RowOut out, RowIn a, float s, bool reverse, int64_t n) {
  const hn::ScalableTag<float> d;
  const auto vs = hn::Set(d, s);
  WithAluOp(op, [&](auto k) {
    constexpr AluOp kOp = decltype(k)::value;
    WithRowType(a.t, [&](auto ta) {
      WithRowType(out.t, [&](auto to) {
        constexpr RowType kA = decltype(ta)::value, kO = decltype(to)::value;
        if (reverse) {
          Map1T<kA, kO>(d, out, a, n, [&](auto x) { return AluV<kOp>(d, vs, x); });
        } else {
          Map1T<kA, kO>(d, out, a, n, [&](auto x) { return AluV<kOp>(d, x, vs); });
        }
      });
    });
  });
}

// Calls f(std::integral_constant<AluOp, op>{}) for add, subtract and
// multiply (the ops of fused tensor_scalar pairs); false for the others.
template <class F>
HWY_INLINE bool WithArithOp(AluOp op, F&& f) {
  switch (op) {
    case AluOp::kAdd: f(std::integral_constant<AluOp, AluOp::kAdd>()); return true;
    case AluOp::kSubtract: f(std::integral_constant<AluOp, AluOp::kSubtract>()); return true;
    case AluOp::kMultiply: f(std::integral_constant<AluOp, AluOp::kMultiply>()); return true;
    default: return false;
  }
}

// out[i] = alu(op1, alu(op0, a[i], s0), s1) in one pass, the intermediate
// an fp32 register (the value an fp32 buffer would hold between two
// passes): for op0, op1 in {add, subtract, multiply} (x - mean then * rstd,
// x * scale then + bias). Returns false, doing nothing, for other pairs.
inline bool AluScalarPair(AluOp op0, AluOp op1, RowOut out, RowIn a, float s0, float s1,
                          int64_t n) {
  const hn::ScalableTag<float> d;
  const auto v0 = hn::Set(d, s0), v1 = hn::Set(d, s1);
  bool inner = false;
  const bool outer = WithArithOp(op0, [&](auto k0) {
    inner = WithArithOp(op1, [&](auto k1) {
      WithRowType(a.t, [&](auto ta) {
        WithRowType(out.t, [&](auto to) {
          Map1T<decltype(ta)::value, decltype(to)::value>(d, out, a, n, [&](auto x) {
            return AluV<decltype(k1)::value>(d, AluV<decltype(k0)::value>(d, x, v0), v1);
          });
        });
      });
    });
  });
  return outer && inner;
}

// out[i] = alu(op1, alu(op0, a[i], s0), b[i]) in one pass, the
// intermediate an fp32 register (scalar_tensor_tensor's (x - mean) * gamma,
// (t * rstd) + beta): for op0, op1 in {add, subtract, multiply}. Returns
// false, doing nothing, for other pairs.
inline bool AluScalarTensorPair(AluOp op0, AluOp op1, RowOut out, RowIn a, float s0, RowIn b,
                                int64_t n) {
  const hn::ScalableTag<float> d;
  const auto v0 = hn::Set(d, s0);
  bool inner = false;
  const bool outer = WithArithOp(op0, [&](auto k0) {
    inner = WithArithOp(op1, [&](auto k1) {
      WithRowType(a.t, [&](auto ta) {
        WithRowType(b.t, [&](auto tb) {
          WithRowType(out.t, [&](auto to) {
            Map2T<decltype(ta)::value, decltype(tb)::value, decltype(to)::value>(
                d, out, a, b, n, [&](auto x, auto y) {
                  return AluV<decltype(k1)::value>(d, AluV<decltype(k0)::value>(d, x, v0), y);
                });
          });
        });
      });
    });
  });
  return outer && inner;
}

// ---- Activation functions (semantics.h activate) ----

template <class D, class V = hn::Vec<D>>
HWY_INLINE V KeepNaN(V x, V y) {
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// Highway's Exp reconstructs 2^q by exponent arithmetic that wraps for
// x > 104; 100 is already far past overflow (exp(88.73) = inf in fp32).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpF(D d, V x) {
  return KeepNaN<D>(x, hn::Exp(d, hn::Min(x, hn::Set(d, 100.0f))));
}

// Highway's Log covers (0, FLT_MAX]; the rest as IEEE log: +inf, -inf at
// +-0, NaN below 0.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V LogF(D d, V x) {
  const V zero = hn::Zero(d);
  const V inf = hn::Set(d, std::numeric_limits<float>::infinity());
  V r = hn::Log(d, x);
  r = hn::IfThenElse(hn::Eq(x, inf), inf, r);
  r = hn::IfThenElse(hn::Eq(x, zero), hn::Neg(inf), r);
  r = hn::IfThenElse(hn::Lt(x, zero), hn::Set(d, std::numeric_limits<float>::quiet_NaN()), r);
  return KeepNaN<D>(x, r);
}

// e * scale = exp(-|x|) in (0, 1], which never overflows. For |x| >= 64 the
// exponent is shifted by 64 ln 2 (e = exp(kShift - |x|), scale ~ 2^-64), so
// results below fp32's normal range are rounded once, from a normal e,
// instead of computed from a subnormal e that has lost its digits. The shift
// is exact there: kShift and every |x| >= 64 are multiples of 2^-17, and
// scale absorbs kShift's distance from 64 ln 2.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpNegAbs(D d, V x, V& scale) {
  constexpr float kShift = 44.361419677734375f;  // fp32(64 ln 2)
  constexpr float kScale = 0x1.fffffcp-65f;      // 2^-64 exp(64 ln 2 - kShift)
  const V a = hn::Abs(x);
  const auto far = a >= hn::Set(d, 64.0f);
  scale = hn::IfThenElse(far, hn::Set(d, kScale), hn::Set(d, 1.0f));
  // Highway's Exp directly: the argument is <= 0 (-inf gives 0); a NaN x
  // is restored by the callers.
  return hn::Exp(d, hn::IfThenElse(far, hn::Sub(hn::Set(d, kShift), a), hn::Neg(a)));
}

// 1 / (1 + exp(-x)) with e = exp(-|x|): 1 / (1 + e) for x >= 0, e / (1 + e)
// below, so no exp overflows and tiny results keep their digits.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SigmoidF(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  V scale;
  const V e = ExpNegAbs(d, x, scale);
  const V es = hn::Mul(e, scale);
  const V num = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), es, one);
  return KeepNaN<D>(x, hn::Div(num, hn::Add(one, es)));
}

// x / (1 + exp(-x)) as sigmoid: x / (1 + e), or x e / (1 + e) below 0
// (-inf gives -inf * 0 = NaN, as the definition does).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SiluF(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  V scale;
  const V e = ExpNegAbs(d, x, scale);
  const V num = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Mul(hn::Mul(x, e), scale), x);
  return KeepNaN<D>(x, hn::Div(num, hn::Add(one, hn::Mul(e, scale))));
}

// Highway's Tanh saturates to +-1 past 18.7 (inf included); NaN stays NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V TanhF(D d, V x) {
  return KeepNaN<D>(x, hn::Tanh(d, x));
}

// c[0] + c[1] x + ... by Horner's rule, unrolled (the coefficients become
// broadcast constants). MulAdd is fine: these are approximations evaluated
// in double, far below fp32's precision.
template <class D, class V, size_t kN, size_t... kI>
HWY_INLINE V HornerImpl(D d, V x, const double (&c)[kN], std::index_sequence<kI...>) {
  V acc = hn::Set(d, c[kN - 1]);
  ((acc = hn::MulAdd(acc, x, hn::Set(d, c[kN - 2 - kI]))), ...);
  return acc;
}
template <class D, class V, size_t kN>
HWY_INLINE V Horner(D d, V x, const double (&c)[kN]) {
  return HornerImpl(d, x, c, std::make_index_sequence<kN - 1>());
}

// gelu(x) = x Phi(x) in double, Phi the standard normal CDF:
//   |x| < 1.5: Phi = 1/2 + x S(x^2), S fitted on [0, 2.25] (rel. err 4e-13);
//   |x| >= 1.5: Phi(-a) = exp(-a^2 / 2) R(a), a = |x|, R fitted in
//     u = (2 / (a + 3) - kTSum) * kTScale on [1.5, 16] (rel. err 3.2e-12),
//     and Phi(x) = 1 - Phi(-x) for x > 0 (no cancellation: Phi(-x) < 0.067).
// Past |x| = 16, Phi(-a) < 1e-57 rounds gelu to +-0 (x = -inf: -inf * 0 =
// NaN, like the definition). Coefficients: Chebyshev interpolation at 13 and
// 10 nodes, converted to monomials, checked against mpmath on dense grids.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GeluD(D d, V x) {
  static constexpr double kS[] = {0.398942280401412,      -0.066490380065080096,
                                  0.0099735569832289164,  -0.001187328062363017,
                                  0.00011543424218628293, -9.4439091443742137e-06,
                                  6.6520208888162096e-07, -4.0734246028740964e-08,
                                  2.0788864851695894e-09, -6.8417510225241415e-11};
  static constexpr double kR[] = {
      0.088852388304859461,    0.085111322264081343,    0.025930570682067326,
      0.0054168836800489702,   0.00054739235773628228,  -5.75006497593514e-05,
      -2.2104004971854431e-05, 8.637802300113575e-07,   9.3673337581227761e-07,
      -4.6600674719323279e-08, -4.5460334306507791e-08, 3.921465368227404e-09,
      1.9693868918605273e-09};
  constexpr double kTSum = 0.27485380116959063;   // 1/19 + 1/4.5: t's range, summed
  constexpr double kTScale = 5.8965517241379315;  // 1 / (1/4.5 - 1/19)
  constexpr double kSmall = 1.5, kFar = 16.0, kShift = 3.0;
  const V one = hn::Set(d, 1.0);
  const V a = hn::Abs(x);
  const V ac = hn::Min(a, hn::Set(d, kFar));
  // t = 1 / (a + 3) without a double division (the costliest op here): an
  // fp32 quotient (x is an fp32, so a + 3 is exact in double and within
  // 2^-24 in fp32) and one Newton step, relative error < 2^-46.
  const V y = hn::Add(ac, hn::Set(d, kShift));
  const hn::Rebind<float, D> df;
  const V t0 = hn::PromoteTo(d, hn::Div(hn::Set(df, 1.0f), hn::DemoteTo(df, y)));
  const V t = hn::Mul(t0, hn::Sub(hn::Set(d, 2.0), hn::Mul(y, t0)));
  const V u = hn::Mul(hn::Sub(hn::Add(t, t), hn::Set(d, kTSum)), hn::Set(d, kTScale));
  const V gauss = hn::Exp(d, hn::Mul(hn::Mul(ac, ac), hn::Set(d, -0.5)));
  const V tail = hn::IfThenZeroElse(hn::Gt(a, hn::Set(d, kFar)), hn::Mul(gauss, Horner(d, u, kR)));
  const V big = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), tail, hn::Sub(one, tail));
  const V small = hn::Add(hn::Set(d, 0.5), hn::Mul(x, Horner(d, hn::Mul(x, x), kS)));
  return hn::Mul(x, hn::IfThenElse(hn::Lt(a, hn::Set(d, kSmall)), small, big));
}

// double -> fp32, RNE with IEEE overflow to inf. Highway's HWY_SCALAR
// DemoteTo clamps to +-FLT_MAX (inf included); the SIMD targets' cvtpd2ps is
// IEEE already.
template <class DF, class VD>
HWY_INLINE hn::Vec<DF> DemoteF64(DF df, VD v) {
#if HWY_TARGET == HWY_SCALAR
  const double x = hn::GetLane(v);
  // At or past FLT_MAX + ulp/2 the tie goes to the even 2^128: inf.
  const bool overflow = std::fabs(x) >= 0x1.ffffffp127;
  return hn::Set(df, overflow ? std::copysign(std::numeric_limits<float>::infinity(), float(x))
                              : static_cast<float>(x));
#else
  return hn::DemoteTo(df, v);
#endif
}

template <ActFunc kF, class D, class V = hn::Vec<D>>
HWY_INLINE V ActF(D d, V x) {
  if constexpr (kF == ActFunc::kCopy) {
    return x;
  } else if constexpr (kF == ActFunc::kExp) {
    return ExpF(d, x);
  } else if constexpr (kF == ActFunc::kLog) {
    return LogF(d, x);
  } else if constexpr (kF == ActFunc::kSquare) {
    return hn::Mul(x, x);
  } else if constexpr (kF == ActFunc::kSqrt) {
    return hn::Sqrt(x);
  } else if constexpr (kF == ActFunc::kRelu) {
    return hn::IfThenZeroElse(x <= hn::Zero(d), x);  // NaN stays, -0 -> +0
  } else if constexpr (kF == ActFunc::kSigmoid) {
    return SigmoidF(d, x);
  } else if constexpr (kF == ActFunc::kTanh) {
    return TanhF(d, x);
  } else if constexpr (kF == ActFunc::kSilu) {
    return SiluF(d, x);
  } else if constexpr (kF == ActFunc::kAbs) {
    return hn::Abs(x);
  } else if constexpr (kF == ActFunc::kRsqrt) {  // double lanes from here on
    return hn::Div(hn::Set(d, 1.0), hn::Sqrt(x));
  } else if constexpr (kF == ActFunc::kReciprocal) {
    return hn::Div(hn::Set(d, 1.0), x);
  } else {
    static_assert(kF == ActFunc::kGelu);
    return GeluD(d, x);
  }
}

template <class F>
HWY_INLINE void WithActFunc(ActFunc f, F&& fn) {
  switch (f) {
#define NCORE_X(Name, mnemonic) \
  case ActFunc::k##Name: return fn(std::integral_constant<ActFunc, ActFunc::k##Name>());
    NCORE_ACT_FUNCS(NCORE_X)
#undef NCORE_X
  }
}

// out[i] = activate(f, x[i] * scale + bias): the scale and the bias are two
// fp32 roundings, then f. Double-evaluated functions take half-width fp32
// vectors, promote, and round the result once to fp32.
inline void ActivationRow(ActFunc f, RowOut out, RowIn x, float scale, float bias, int64_t n) {
  WithActFunc(f, [&](auto k) {
    constexpr ActFunc kF = decltype(k)::value;
    WithRowType(x.t, [&](auto tx) {
      WithRowType(out.t, [&](auto to) {
        constexpr RowType kX = decltype(tx)::value, kO = decltype(to)::value;
        if constexpr (kF == ActFunc::kRsqrt || kF == ActFunc::kReciprocal || kF == ActFunc::kGelu) {
          const hn::ScalableTag<double> dd;
          const hn::Rebind<float, decltype(dd)> df;  // as many fp32 lanes as dd has
          const auto vs = hn::Set(df, scale), vb = hn::Set(df, bias);
          Map1T<kX, kO>(df, out, x, n, [&](auto v) {
            const auto t = hn::Add(hn::Mul(v, vs), vb);
            return DemoteF64(df, ActF<kF>(dd, hn::PromoteTo(dd, t)));
          });
        } else {
          const hn::ScalableTag<float> df;
          const auto vs = hn::Set(df, scale), vb = hn::Set(df, bias);
          Map1T<kX, kO>(df, out, x, n,
                        [&](auto v) { return ActF<kF>(df, hn::Add(hn::Mul(v, vs), vb)); });
        }
      });
    });
  });
}

// ---- Fixed-order reduction (semantics.h reduce) ----

// The kReduceLanes partials of reduce(): partial j lives in lane j % N of
// register j / N. Fold() continues the sequence where the last call ended,
// so every call but the last passes a multiple of kReduceLanes elements.
template <AluOp kOp>
class Partials {
  using D = hn::CappedTag<float, kReduceLanes>;
  static constexpr size_t kN = hn::MaxLanes(D());
  static constexpr size_t kRegs = size_t(kReduceLanes) / kN;
  static_assert(kReduceLanes % kN == 0);

 public:
  Partials() {
    for (auto& r : acc_) r = hn::Set(D(), reduce_identity(kOp));
  }

  void Fold(const float* x, int64_t n) {
    const D d;
    int64_t i = 0;
    for (; i + kReduceLanes <= n; i += kReduceLanes)
      for (size_t j = 0; j < kRegs; ++j)
        acc_[j] = AluV<kOp>(d, acc_[j], hn::LoadU(d, x + i + j * kN));
    if (i < n) {  // missing elements fold the identity: no change, exactly
      HWY_ALIGN float pad[kReduceLanes];
      std::fill(pad, pad + kReduceLanes, reduce_identity(kOp));
      std::memcpy(pad, x + i, size_t(n - i) * sizeof(float));
      for (size_t j = 0; j < kRegs; ++j) acc_[j] = AluV<kOp>(d, acc_[j], hn::Load(d, pad + j * kN));
    }
  }

  // The halving combination of the partials.
  float Finish() const {
    HWY_ALIGN float p[kReduceLanes];
    for (size_t j = 0; j < kRegs; ++j) hn::Store(acc_[j], D(), p + j * kN);
    for (int w = kReduceLanes / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) p[l] = alu(kOp, p[l], p[l + w]);
    return p[0];
  }

 private:
  hn::Vec<D> acc_[kRegs];
};

// Calls f(std::integral_constant<AluOp, op>{}) for a reduction op.
template <class F>
HWY_INLINE void WithReduceOp(AluOp op, F&& f) {
  switch (op) {
    case AluOp::kMax: return f(std::integral_constant<AluOp, AluOp::kMax>());
    case AluOp::kMin: return f(std::integral_constant<AluOp, AluOp::kMin>());
    default: return f(std::integral_constant<AluOp, AluOp::kAdd>());
  }
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
