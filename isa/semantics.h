// The scalar definition of every elementwise operation: the interpreter runs
// these, and the CPU reference is tested against them. Arithmetic is fp32 as in
// the Vector and Scalar engines (facts §3); each step rounds (no contraction:
// scale-then-bias is two roundings, as two ALU stages are).
#pragma once

#include <cmath>
#include <limits>

#include <ncore/isa/opcodes.h>

namespace ncore {

// max/min propagate NaN (unlike x86 maxps), so a NaN input is never hidden.
inline float alu(AluOp op, float a, float b) {
  switch (op) {
    case AluOp::kBypass: return a;
    case AluOp::kAdd: return a + b;
    case AluOp::kSubtract: return a - b;
    case AluOp::kMultiply: return a * b;
    case AluOp::kDivide: return a / b;
    case AluOp::kMax: return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN()
                                                : (a > b ? a : b);
    case AluOp::kMin: return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN()
                                                : (a < b ? a : b);
    case AluOp::kIsEqual: return a == b ? 1.0f : 0.0f;
    case AluOp::kNotEqual: return a != b ? 1.0f : 0.0f;
    case AluOp::kIsLt: return a < b ? 1.0f : 0.0f;
    case AluOp::kIsLe: return a <= b ? 1.0f : 0.0f;
    case AluOp::kIsGt: return a > b ? 1.0f : 0.0f;
    case AluOp::kIsGe: return a >= b ? 1.0f : 0.0f;
  }
  return a;
}

// Identity element of a reduction ALU op (add, max, min).
inline float reduce_identity(AluOp op) {
  switch (op) {
    case AluOp::kMax: return -std::numeric_limits<float>::infinity();
    case AluOp::kMin: return std::numeric_limits<float>::infinity();
    default: return 0.0f;
  }
}

// Activation functions, evaluated in double and rounded once to fp32: the
// reference is (nearly) correctly rounded; the device's piecewise polynomials
// and the CPU's SIMD approximations are held to it with per-function ulp bounds.
inline float activate(ActFunc f, float xf) {
  const double x = xf;
  switch (f) {
    case ActFunc::kCopy: return xf;
    case ActFunc::kExp: return float(std::exp(x));
    case ActFunc::kLog: return float(std::log(x));
    case ActFunc::kSquare: return xf * xf;
    case ActFunc::kSqrt: return std::sqrt(xf);
    case ActFunc::kRsqrt: return float(1.0 / std::sqrt(x));
    case ActFunc::kReciprocal: return float(1.0 / x);
    case ActFunc::kRelu: return xf != xf ? xf : (xf > 0.0f ? xf : 0.0f);
    case ActFunc::kSigmoid: return float(1.0 / (1.0 + std::exp(-x)));
    case ActFunc::kTanh: return float(std::tanh(x));
    case ActFunc::kGelu: return float(0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)));
    case ActFunc::kSilu: return float(x / (1.0 + std::exp(-x)));
    case ActFunc::kAbs: return std::fabs(xf);
  }
  return xf;
}

}  // namespace ncore
