// The assembly listing of a Program, for kernel authors: one instruction per
// line, like a SASS dump, with the kernel source line each came from.
//
//   ; ncore program: trn2 (NeuronCore-v3), program 0 of 1
//   ; 8 instructions (tensor 2, vector 1, scalar 0, gpsimd 0, dma 5), 13 dependencies
//   ; SBUF peak 2048 of 229376 B per partition, PSUM 1 of 8 banks
//   ; tensors:
//   ;   #0 a  input bf16 [256,128]
//   ...
//   ;        alloc sbuf @0x0 +256 B                       ; kernels/gemm.h:40
//         3  dma    dma           sbuf[0:128]@0x0 [128] bf16, a[128:256, :] bf16  q2
//                                                           <- 0, 2  ; kernels/gemm.h:43
// (one line per instruction; wrapped here).
//
// Operands are dst first. On-chip: space[first:end partition]@byte address,
// then the free pattern [shape] (with :[strides] in elements when not dense),
// then the dtype. HBM: tensor name and the view as slices of the tensor
// (a[0:128, 512:1024]), or name+offset [shape]:[strides] when the view is not
// a box of the tensor. `<- i, j` lists the instructions this one waits for.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ncore/isa/emit/program.h>
#include <ncore/isa/validate.h>

namespace ncore {

namespace listing_detail {

// Dependencies shown per line; the rest are counted ("+37 more") so that a
// write retiring hundreds of readers stays one readable line.
inline constexpr size_t kMaxDepsShown = 8;
// Column where `<- deps` and `; source` start when the operands are shorter.
inline constexpr size_t kCommentColumn = 96;
// Field widths: instruction indices up to 10^7, then "gpsimd" and
// "affine_select", the longest engine and mnemonic, plus a space.
inline constexpr size_t kIndexWidth = 7, kEngineWidth = 7, kMnemonicWidth = 14;

inline void pad_right(std::string& s, std::string_view field, size_t width) {
  s += field;
  s.append(field.size() < width ? width - field.size() : 1, ' ');
}

inline std::string num(float v) {
  std::array<char, 32> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), res.ptr);
}

inline std::string hex(int64_t v) {
  std::array<char, 24> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v, 16);
  return "0x" + std::string(buf.data(), res.ptr);
}

inline std::string list(const int64_t* v, int n) {
  std::string s = "[";
  n = std::clamp(n, 0, kMaxDims);
  for (int i = 0; i < n; ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "]";
}

inline std::string pattern(const AccessPattern& ap) {
  std::string s = list(ap.shape.data(), ap.ndim);
  if (ap.ndim > kMaxDims || !ap.contiguous()) s += ":" + list(ap.stride.data(), ap.ndim);
  return s;
}

// The view as slices of the tensor's dims when every non-unit view dim walks
// one tensor dim (a box, possibly transposed); empty when it is not.
inline std::string as_slices(const AccessPattern& ap, const HbmDecl& d) {
  const int rank = int(d.shape.size());
  if (rank < 1 || rank > kMaxDims || ap.ndim < 1 || ap.ndim > kMaxDims) return {};
  for (int64_t n : d.shape)  // only a loaded or emitted program is listed exactly
    if (n < 1 || n > (int64_t{1} << 40)) return {};
  std::array<int64_t, kMaxDims> dense{}, start{}, extent{};
  int64_t s = 1;
  for (int j = rank - 1; j >= 0; --j) {
    dense[size_t(j)] = s;
    s *= d.shape[size_t(j)];
  }
  int64_t rem = ap.offset;
  for (int j = 0; j < rank; ++j) {
    start[size_t(j)] = rem / dense[size_t(j)];
    rem %= dense[size_t(j)];
    extent[size_t(j)] = 1;
  }
  if (start[0] >= d.shape[0]) return {};
  std::array<bool, kMaxDims> used{};
  bool in_order = true;  // walks the box in the tensor's own dim order, no broadcast
  int last = -1;
  for (int v = 0; v < ap.ndim; ++v) {
    const int64_t n = ap.shape[size_t(v)], st = ap.stride[size_t(v)];
    if (n == 1) continue;
    if (st == 0) {
      in_order = false;
      continue;
    }
    int j = 0;
    while (j < rank && (used[size_t(j)] || dense[size_t(j)] != st || d.shape[size_t(j)] == 1)) ++j;
    if (j == rank || start[size_t(j)] + n > d.shape[size_t(j)]) return {};
    used[size_t(j)] = true;
    extent[size_t(j)] = n;
    in_order &= j > last;
    last = j;
  }
  std::string out = d.name + "[";
  for (int j = 0; j < rank; ++j) {
    if (j) out += ", ";
    const int64_t b = start[size_t(j)], e = b + extent[size_t(j)];
    if (!used[size_t(j)]) out += std::to_string(b);
    else if (b == 0 && e == d.shape[size_t(j)]) out += ":";
    else out += std::to_string(b) + ":" + std::to_string(e);
  }
  out += "]";
  // A transposed or broadcast walk of the box: say how the view walks it.
  if (!in_order) out += "->" + list(ap.shape.data(), ap.ndim) + ":" +
                        list(ap.stride.data(), ap.ndim);
  return out;
}

inline std::string operand(const Program& p, const Operand& o) {
  const int64_t esz = dtype_size(o.dtype);
  if (o.on_chip()) {
    AccessPattern ap = o.ap;
    const int64_t byte = o.addr + ap.offset * esz;
    ap.offset = 0;
    return std::string(space_name(o.space)) + "[" + std::to_string(o.p0) + ":" +
           std::to_string(o.p0 + o.np) + "]@" + hex(byte) + " " + pattern(ap) + " " +
           std::string(dtype_name(o.dtype));
  }
  const bool known = o.addr >= 0 && o.addr < int64_t(p.tensors.size());
  std::string s;
  if (known) s = as_slices(o.ap, p.tensors[size_t(o.addr)]);
  if (s.empty()) {
    s = known ? p.tensors[size_t(o.addr)].name : "hbm#" + std::to_string(o.addr);
    if (o.ap.offset) s += "+" + std::to_string(o.ap.offset);
    s += " " + list(o.ap.shape.data(), o.ap.ndim) + ":" + list(o.ap.stride.data(), o.ap.ndim);
  }
  return s + " " + std::string(dtype_name(o.dtype));
}

// "base + channel*p + free[d]*i<d>" with the signs folded: "p - i0", "5 - 2*p + 3*i0".
inline std::string affine(const Affine& a) {
  std::string s = a.base != 0 ? std::to_string(a.base) : "";
  auto term = [&](int64_t coef, const std::string& var) {
    if (coef == 0) return;
    const int64_t mag = coef < 0 ? -coef : coef;
    s += s.empty() ? (coef < 0 ? "-" : "") : (coef < 0 ? " - " : " + ");
    s += mag == 1 ? var : std::to_string(mag) + "*" + var;
  };
  term(a.channel, "p");
  for (size_t d = 0; d < a.free.size(); ++d) term(a.free[d], std::string("i") += std::to_string(d));
  return s.empty() ? "0" : s;
}

// tensor_scalar as the expression it computes: "(x subtract s0) divide 2".
inline std::string scalar_expr(const Instr& in) {
  const std::string s0 = in.opnd[3].empty() ? num(in.imm[0]) : "scalar0";
  const std::string s1 = in.opnd[4].empty() ? num(in.imm[1]) : "scalar1";
  const std::string op0(alu_name(in.alu0)), op1(alu_name(in.alu1));
  std::string e = in.has(kReverse0) ? s0 + " " + op0 + " x" : "x " + op0 + " " + s0;
  if (in.alu1 != AluOp::kBypass)
    e = in.has(kReverse1) ? s1 + " " + op1 + " (" + e + ")" : "(" + e + ") " + op1 + " " + s1;
  return e;
}

// scalar_tensor_tensor likewise: "(x subtract scalar0) multiply tensor".
inline std::string stt_expr(const Instr& in) {
  const std::string s0 = in.opnd[3].empty() ? num(in.imm[0]) : "scalar0";
  const std::string op0(alu_name(in.alu0)), op1(alu_name(in.alu1));
  const std::string e = in.has(kReverse0) ? s0 + " " + op0 + " x" : "x " + op0 + " " + s0;
  return in.has(kReverse1) ? "tensor " + op1 + " (" + e + ")" : "(" + e + ") " + op1 + " tensor";
}

// Operands (dst first; auxiliary slots by role name) and immediates.
inline std::string body(const Program& p, const Instr& in) {
  std::string s;
  auto add_operand = [&](size_t slot, bool named) {
    const Operand& o = in.opnd[slot];
    if (o.empty()) return;
    if (!s.empty()) s += ", ";
    if (named) s += std::string(slot_name(in.op, int(slot))) + "=";
    s += operand(p, o);
  };
  const bool aux_named = in.op == Opcode::kTensorScalar || in.op == Opcode::kActivation ||
                         in.op == Opcode::kScalarTensorTensor;
  for (size_t slot = 0; slot < in.opnd.size(); ++slot)
    add_operand(slot, aux_named && slot >= 2);
  std::string imm;
  auto add = [&](const std::string& x) { imm += (imm.empty() ? "" : " ") + x; };
  switch (in.op) {
    case Opcode::kDma:
    case Opcode::kDmaTranspose: add("q" + std::to_string(in.queue)); break;
    case Opcode::kMatmul:
      if (in.has(kAccumulate)) add("acc");
      break;
    case Opcode::kTensorTensor: add(std::string(alu_name(in.alu0))); break;
    case Opcode::kTensorScalar: add(scalar_expr(in)); break;
    case Opcode::kScalarTensorTensor: add(stt_expr(in)); break;
    case Opcode::kTensorReduce:
      add(std::string(alu_name(in.alu0)) + " axes=" + std::to_string(in.axes));
      if (in.has(kNegate)) add("negate");
      break;
    case Opcode::kActivation:
      add(std::string(act_name(in.func)));
      if (in.opnd[4].empty()) add("scale=" + num(in.imm[0]));
      if (in.opnd[3].empty()) add("bias=" + num(in.imm[1]));
      break;
    case Opcode::kMemset: add("value=" + num(in.imm[0])); break;
    case Opcode::kIota: add("value=" + affine(in.affine)); break;
    case Opcode::kAffineSelect:
      add("keep where " + affine(in.affine) + " " + std::string(alu_name(in.alu0)) +
          " 0, else " + num(in.imm[0]));
      break;
    default: break;
  }
  return imm.empty() ? s : s + "  " + imm;
}

inline void pad_to(std::string& s, size_t line_start, size_t column) {
  if (s.size() - line_start < column) s.append(column - (s.size() - line_start), ' ');
  else s += "  ";
}

inline std::string alloc_line(const Program& p, const AllocEvent& e) {
  std::string s = std::string(";        ") + (e.is_free ? "free  " : "alloc ") +
                  space_name(e.space) + " @" + hex(e.addr) + " +" + std::to_string(e.bytes) +
                  " B";
  pad_to(s, 0, kCommentColumn);
  return s + "; " + (e.is_free ? "allocated at " : "") + p.where(e.loc) + "\n";
}

inline std::string kind_name(HbmKind k) {
  switch (k) {
    case HbmKind::kInput: return "input";
    case HbmKind::kOutput: return "output";
    case HbmKind::kScratch: return "scratch";
  }
  return "?";
}

inline std::string header(const Program& p) {
  const Target& t = p.target_info();
  std::array<size_t, kNumEngines> per_engine{};
  for (const Instr& in : p.instrs)
    if (int(in.engine) < kNumEngines) ++per_engine[size_t(in.engine)];
  std::string s = "; ncore program: " + std::string(t.name) + " (NeuronCore-v" +
                  std::to_string(t.nc_version) + "), program " + std::to_string(p.program_id) +
                  " of " + std::to_string(p.num_programs) + "\n";
  s += "; " + std::to_string(p.instrs.size()) + " instructions (";
  for (int e = 0; e < kNumEngines; ++e)
    s += (e ? ", " : "") + std::string(engine_name(Engine(e))) + " " +
         std::to_string(per_engine[size_t(e)]);
  s += "), " + std::to_string(p.dep_ids.size()) + " dependencies\n";
  s += "; SBUF peak " + std::to_string(p.sbuf_peak_bytes) + " of " +
       std::to_string(t.sbuf_partition_bytes) + " B per partition, PSUM " +
       std::to_string(p.psum_peak_banks) + " of " + std::to_string(t.psum_banks) + " banks\n";
  s += "; tensors:\n";
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const HbmDecl& d = p.tensors[i];
    s += ";   #" + std::to_string(i) + " " + d.name + "  " + kind_name(d.kind) + " " +
         std::string(dtype_name(d.dtype)) + " " +
         list(d.shape.data(), int(d.shape.size())) + "\n";
  }
  s += "; index  engine mnemonic      operands (dst first)  immediates  <- waits for  ; source\n";
  return s;
}

}  // namespace listing_detail

inline std::string listing(const Program& p) {
  namespace ld = listing_detail;
  std::string s = ld::header(p);
  size_t next_alloc = 0;
  auto allocs_before = [&](size_t i) {
    for (; next_alloc < p.allocs.size() && p.allocs[next_alloc].before <= i; ++next_alloc)
      s += ld::alloc_line(p, p.allocs[next_alloc]);
  };
  for (size_t i = 0; i < p.instrs.size(); ++i) {
    allocs_before(i);
    const Instr& in = p.instrs[i];
    const size_t line = s.size();
    const std::string idx = std::to_string(i);
    s.append(idx.size() < ld::kIndexWidth ? ld::kIndexWidth - idx.size() : 0, ' ');
    s += idx + "  ";
    ld::pad_right(s, engine_name(in.engine), ld::kEngineWidth);
    ld::pad_right(s, opcode_name(in.op), ld::kMnemonicWidth);
    s += ld::body(p, in);
    if (i + 1 < p.dep_begin.size() && p.dep_begin[i] <= p.dep_begin[i + 1] &&
        p.dep_begin[i + 1] <= p.dep_ids.size() && p.dep_begin[i] < p.dep_begin[i + 1]) {
      ld::pad_to(s, line, ld::kCommentColumn);
      const auto deps = p.deps(i);
      s += "<- ";
      for (size_t k = 0; k < deps.size() && k < ld::kMaxDepsShown; ++k)
        s += (k ? ", " : "") + std::to_string(deps[k]);
      if (deps.size() > ld::kMaxDepsShown)
        s += " +" + std::to_string(deps.size() - ld::kMaxDepsShown) + " more";
    }
    ld::pad_to(s, line, ld::kCommentColumn);
    s += "; " + p.where(in.loc) + "\n";
  }
  allocs_before(p.instrs.size());
  return s;
}

}  // namespace ncore
