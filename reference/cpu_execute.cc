// The SIMD CPU reference: ncore::cpu::execute runs one validated instruction
// on host views, compiled for every Highway target (foreach_target.h) and
// dispatched at run time to the best one the CPU supports. matmul has its own
// dispatch (matmul.cc); every other opcode is here:
//   cpu_convert-inl.h      dtype <-> fp32 runs, Stream (chunked operand walks)
//   cpu_math-inl.h         ALU ops, activation functions, fixed-order reduction
//   cpu_elementwise-inl.h  dma, tensor_copy, tensor_tensor, tensor_scalar,
//                          scalar_tensor_tensor, activation, memset, iota,
//                          affine_select
//   cpu_reduce-inl.h       tensor_reduce, bn_stats, bn_aggr
//   cpu_transpose-inl.h    transpose, dma_transpose
// Numerics are those of isa/semantics.h and isa/numerics.h, bit for bit except
// the transcendental activations (ulp bounds in cpu_math-inl.h): fp32
// arithmetic, RNE on every store, reductions in semantics.h's fixed order.
// Same-dtype dma / tensor_copy / dma_transpose move bits; the Tensor-engine
// transpose moves values. DMAs into HBM write long rows with streaming
// stores (the same bits, bypassing the caches). Operands that overlap other than as the same view
// behave as in the interpreter: a partition's inputs are read before it is
// written.

// Each product and each sum rounds on its own (isa/semantics.h). GCC fuses a
// Mul feeding an Add into an FMA on FMA targets by default (-ffp-contract=fast,
// also in ISO modes), Highway intrinsics included; this keeps them apart in
// every function of this TU. Explicit MulAdd (Highway's math library) still
// fuses.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <ncore/reference/cpu_ops.h>

#include <array>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ncore/reference/cpu_execute.cc"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <ncore/reference/cpu_convert-inl.h>
#include <ncore/reference/cpu_elementwise-inl.h>
#include <ncore/reference/cpu_math-inl.h>
#include <ncore/reference/cpu_reduce-inl.h>
#include <ncore/reference/cpu_transpose-inl.h>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {

void Execute(const Instr& in, const std::array<View, 5>& v) {
  switch (in.op) {
    case Opcode::kDma:
      if (in.opnd[0].space == Space::kHbm) return CopyToHbm(v[0], v[1]);
      return Copy(v[0], v[1]);
    case Opcode::kTensorCopy: return Copy(v[0], v[1]);
    case Opcode::kDmaTranspose: return Transpose(v[0], v[1], /*bits=*/true);
    case Opcode::kMatmul: return;  // execute() calls matmul() directly
    case Opcode::kTranspose: return Transpose(v[0], v[1], /*bits=*/false);
    case Opcode::kTensorTensor: return TensorTensor(in, v);
    case Opcode::kTensorScalar: return TensorScalar(in, v);
    case Opcode::kTensorReduce: return TensorReduce(in, v[0], v[1]);
    case Opcode::kActivation: return Activation(in, v);
    case Opcode::kMemset: return Memset(v[0], in.imm[0]);
    case Opcode::kIota: return Iota(in, v[0]);
    case Opcode::kAffineSelect: return AffineSelect(in, v);
    case Opcode::kBnStats: return BnStats(v[0], v[1]);
    case Opcode::kBnAggr: return BnAggr(v[0], v[1]);
    case Opcode::kScalarTensorTensor: return ScalarTensorTensor(in, v);
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ncore::cpu {

HWY_EXPORT(Execute);
HWY_EXPORT(TargetName);

void execute(const Instr& in, const std::array<View, 5>& v) {
  if (in.op == Opcode::kMatmul) return matmul(v[0], v[1], v[2], in.has(kAccumulate));
  HWY_DYNAMIC_DISPATCH(Execute)(in, v);
}

const char* execute_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace ncore::cpu
#endif  // HWY_ONCE
