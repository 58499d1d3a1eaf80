// The one opcode list. Everything that must know every instruction — the
// front-end, validation, emitter, binary format, listing, interpreter, CPU
// backend, cost model and tests — expands NCORE_OPCODES, so adding an
// instruction without teaching all of them fails to compile or test.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ncore {

enum class Engine : uint8_t { kTensor, kVector, kScalar, kGpSimd, kDma };
inline constexpr int kNumEngines = 5;

constexpr std::string_view engine_name(Engine e) {
  switch (e) {
    case Engine::kTensor: return "tensor";
    case Engine::kVector: return "vector";
    case Engine::kScalar: return "scalar";
    case Engine::kGpSimd: return "gpsimd";
    case Engine::kDma: return "dma";
  }
  return "?";
}

// X(Name, mnemonic, default engine). Operand roles (Instr::opnd[0..4]), dst first:
//   dma            dst, src                    (HBM/SBUF either side; cast if dtypes differ)
//   dma_transpose  dst[P,F] SBUF, src[F,P] HBM (2- or 4-byte dtypes); NeuronCore-v3
//                  also src[F, B P] SBUF -> dst[P, B F], B blocks side by side
//   matmul         dst[M,N] PSUM f32, stationary[K,M], moving[K,N]; flag kAccumulate
//   transpose      dst[F,P] PSUM, src[P,F] SBUF (TensorE, matmul by identity)
//   tensor_copy    dst, src
//   tensor_tensor  dst, in0, in1; alu0
//   tensor_scalar  dst, src, -, scalar0[P,1]?, scalar1[P,1]?; alu0, alu1, imm0/imm1
//                  when a scalar operand is empty; flags kReverse0/1 swap operands
//   scalar_tensor_tensor
//                  dst, data, tensor, scalar0[P,1]?; (data alu0 scalar0) alu1 tensor,
//                  imm0 when scalar0 is empty; tensor has data's shape; kReverse0
//                  computes scalar0 alu0 data, kReverse1 tensor alu1 (...)
//   tensor_reduce  dst, src; alu0 in {add, max, min}; iimm[0] trailing free axes; kNegate
//   activation     dst, src, accum[P,1] f32?, bias[P,1]?, scale[P,1]?; func;
//                  imm0 = scale, imm1 = bias when the operand is empty;
//                  accum receives the free-dim sum of the fp32 results
//   memset         dst; imm0 = value
//   iota           dst; iimm = Affine (base, channel, free multipliers)
//   affine_select  dst, src; alu0 = comparison of the affine value with 0,
//                  imm0 = fill where it is false; iimm = Affine
//   bn_stats       dst[P,6] f32, src[P,N<=512]
//   bn_aggr        dst[P,2] f32 (mean, var), src[P,6k] f32
#define NCORE_OPCODES(X)                                \
  X(Dma, dma, kDma)                                     \
  X(DmaTranspose, dma_transpose, kDma)                  \
  X(Matmul, matmul, kTensor)                            \
  X(Transpose, transpose, kTensor)                      \
  X(TensorCopy, tensor_copy, kVector)                   \
  X(TensorTensor, tensor_tensor, kVector)               \
  X(TensorScalar, tensor_scalar, kVector)               \
  X(TensorReduce, tensor_reduce, kVector)               \
  X(Activation, activation, kScalar)                    \
  X(Memset, memset, kVector)                            \
  X(Iota, iota, kGpSimd)                                \
  X(AffineSelect, affine_select, kGpSimd)               \
  X(BnStats, bn_stats, kVector)                         \
  X(BnAggr, bn_aggr, kVector)                           \
  X(ScalarTensorTensor, scalar_tensor_tensor, kVector)

enum class Opcode : uint8_t {
#define NCORE_X(Name, mnemonic, engine) k##Name,
  NCORE_OPCODES(NCORE_X)
#undef NCORE_X
};

inline constexpr int kNumOpcodes = 0
#define NCORE_X(Name, mnemonic, engine) +1
    NCORE_OPCODES(NCORE_X)
#undef NCORE_X
    ;

constexpr std::string_view opcode_name(Opcode op) {
  switch (op) {
#define NCORE_X(Name, mnemonic, engine) \
  case Opcode::k##Name: return #mnemonic;
    NCORE_OPCODES(NCORE_X)
#undef NCORE_X
  }
  return "?";
}

constexpr Engine default_engine(Opcode op) {
  switch (op) {
#define NCORE_X(Name, mnemonic, engine) \
  case Opcode::k##Name: return Engine::engine;
    NCORE_OPCODES(NCORE_X)
#undef NCORE_X
  }
  return Engine::kVector;
}

// Which engines may execute an opcode (facts §3: tensor_copy on V/S/GpSimd,
// tensor_scalar also on ScalarE and GpSimd, memset also on GpSimd, tensor_tensor
// also on GpSimd; scalar_tensor_tensor on VectorE only, as NKI documents it).
constexpr bool engine_allowed(Opcode op, Engine e) {
  switch (op) {
    case Opcode::kTensorCopy:
    case Opcode::kTensorScalar:
      return e == Engine::kVector || e == Engine::kScalar || e == Engine::kGpSimd;
    case Opcode::kMemset:
    case Opcode::kTensorTensor:
      return e == Engine::kVector || e == Engine::kGpSimd;
    default:
      return e == default_engine(op);
  }
}

// Elementwise ALU operations of the Vector/Scalar/GpSimd engines, all in fp32.
// Comparisons yield 1.0 or 0.0.
#define NCORE_ALU_OPS(X)                                                     \
  X(Bypass, bypass) X(Add, add) X(Subtract, subtract) X(Multiply, multiply)  \
  X(Divide, divide) X(Max, max) X(Min, min) X(IsEqual, is_equal)             \
  X(NotEqual, not_equal) X(IsLt, is_lt) X(IsLe, is_le) X(IsGt, is_gt)        \
  X(IsGe, is_ge)

enum class AluOp : uint8_t {
#define NCORE_X(Name, mnemonic) k##Name,
  NCORE_ALU_OPS(NCORE_X)
#undef NCORE_X
};

constexpr std::string_view alu_name(AluOp op) {
  switch (op) {
#define NCORE_X(Name, mnemonic) \
  case AluOp::k##Name: return #mnemonic;
    NCORE_ALU_OPS(NCORE_X)
#undef NCORE_X
  }
  return "?";
}

// Which ALU ops an engine's tensor_tensor / tensor_scalar /
// scalar_tensor_tensor may use (NKI's "Supported Math Operators" table: add
// and multiply run on Vector, GpSimd and Scalar; every other op on Vector
// only). ScalarE's tensor_scalar is
// further limited to op0 = multiply, op1 = add; op0 = multiply; op0 = add
// (facts section 3). kBypass is "no second op".
constexpr bool alu_allowed(Engine e, Opcode op, AluOp op0, AluOp op1) {
  const bool arith0 = op0 == AluOp::kAdd || op0 == AluOp::kMultiply;
  const bool arith1 = op1 == AluOp::kBypass || op1 == AluOp::kAdd || op1 == AluOp::kMultiply;
  switch (e) {
    case Engine::kVector: return true;
    case Engine::kGpSimd: return arith0 && (op != Opcode::kTensorScalar || arith1);
    case Engine::kScalar:
      return op == Opcode::kTensorScalar &&
             ((op0 == AluOp::kMultiply && (op1 == AluOp::kAdd || op1 == AluOp::kBypass)) ||
              (op0 == AluOp::kAdd && op1 == AluOp::kBypass));
    default: return false;
  }
}

constexpr bool is_comparison(AluOp op) { return op >= AluOp::kIsEqual; }

// Scalar-engine activation functions (facts §3). gelu is the exact erf form.
#define NCORE_ACT_FUNCS(X)                                                   \
  X(Copy, copy) X(Exp, exp) X(Log, log) X(Square, square) X(Sqrt, sqrt)      \
  X(Rsqrt, rsqrt) X(Reciprocal, reciprocal) X(Relu, relu) X(Sigmoid, sigmoid) \
  X(Tanh, tanh) X(Gelu, gelu) X(Silu, silu) X(Abs, abs)

enum class ActFunc : uint8_t {
#define NCORE_X(Name, mnemonic) k##Name,
  NCORE_ACT_FUNCS(NCORE_X)
#undef NCORE_X
};

constexpr std::string_view act_name(ActFunc f) {
  switch (f) {
#define NCORE_X(Name, mnemonic) \
  case ActFunc::k##Name: return #mnemonic;
    NCORE_ACT_FUNCS(NCORE_X)
#undef NCORE_X
  }
  return "?";
}

inline constexpr int kNumAluOps = int(AluOp::kIsGe) + 1;
inline constexpr int kNumActFuncs = int(ActFunc::kAbs) + 1;

}  // namespace ncore
