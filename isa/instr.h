// One instruction as the front-end validated it: what every backend consumes
// (the CPU reference executes it, the emitter records it into a Program).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ncore/isa/opcodes.h>
#include <ncore/isa/tile.h>

namespace ncore {

// A source location as an index into the owner's file table plus a line.
struct SrcLoc {
  uint32_t file = 0;
  uint32_t line = 0;
};

enum class HbmKind : uint8_t { kInput, kOutput, kScratch };

// Elements of a row-major tensor of this shape.
inline int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// A tensor in HBM, as the core's (and a Program's) tensor table records it.
struct HbmDecl {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  HbmKind kind = HbmKind::kInput;

  int64_t numel() const { return shape_numel(shape); }
  int64_t bytes() const { return numel() * dtype_size(dtype); }
};

// value(p, i_0..i_3) = base + channel * p + sum_d free[d] * i_d, with p the
// partition index relative to the destination's first partition (iota,
// affine_select).
struct Affine {
  int32_t base = 0;
  int32_t channel = 0;
  std::array<int32_t, 4> free{};
};

enum InstrFlag : uint8_t {
  kAccumulate = 1 << 0,  // matmul: add into PSUM instead of overwriting
  kNegate = 1 << 1,      // tensor_reduce: negate the result
  kReverse0 = 1 << 2,    // tensor_scalar / scalar_tensor_tensor: scalar0 op data
  kReverse1 = 1 << 3,    // tensor_scalar: scalar1 op x; scalar_tensor_tensor: tensor op x
};

struct Instr {
  Opcode op = Opcode::kMemset;
  Engine engine = Engine::kVector;
  uint8_t queue = 0;  // DMA queue (dma engine * queues_per_engine + queue), DMA only
  uint8_t flags = 0;
  AluOp alu0 = AluOp::kBypass;
  AluOp alu1 = AluOp::kBypass;
  ActFunc func = ActFunc::kCopy;
  int32_t axes = 0;  // tensor_reduce: number of trailing free axes reduced
  std::array<float, 2> imm{};
  Affine affine;
  std::array<Operand, 5> opnd;  // roles per opcode: see opcodes.h
  SrcLoc loc;

  bool has(InstrFlag f) const { return flags & f; }
  const Operand& dst() const { return opnd[0]; }
};

// Operand slots an opcode writes. Everything else non-empty is read; matmul
// with kAccumulate also reads its destination.
constexpr bool writes_slot(Opcode op, int slot) {
  return slot == 0 || (op == Opcode::kActivation && slot == 2);
}

// Calls f(const Operand&, bool is_write) for every memory access of `in`.
template <class F>
void for_each_access(const Instr& in, F&& f) {
  for (int s = 0; s < int(in.opnd.size()); ++s) {
    const Operand& o = in.opnd[s];
    if (o.empty()) continue;
    if (writes_slot(in.op, s)) {
      if (in.op == Opcode::kMatmul && in.has(kAccumulate)) f(o, false);
      f(o, true);
    } else {
      f(o, false);
    }
  }
}

}  // namespace ncore
