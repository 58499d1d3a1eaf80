// The target's rules for every instruction. The front-end checks each call
// before a backend sees it; the Program loader checks every loaded instruction
// the same way, so a hostile file cannot reach the interpreter.
#pragma once

#include <ostream>
#include <span>
#include <string>

#include <ncore/isa/instr.h>
#include <ncore/isa/target.h>

namespace ncore {

// Operand slot names for messages, per opcode (see opcodes.h).
inline const char* slot_name(Opcode op, int slot) {
  static const char* const kDefault[5] = {"dst", "src", "in1", "aux0", "aux1"};
  switch (op) {
    case Opcode::kMatmul: {
      static const char* const n[5] = {"dst", "stationary", "moving", "-", "-"};
      return n[slot];
    }
    case Opcode::kTensorTensor: {
      static const char* const n[5] = {"dst", "in0", "in1", "-", "-"};
      return n[slot];
    }
    case Opcode::kTensorScalar: {
      static const char* const n[5] = {"dst", "src", "-", "scalar0", "scalar1"};
      return n[slot];
    }
    case Opcode::kScalarTensorTensor: {
      static const char* const n[5] = {"dst", "data", "tensor", "scalar0", "-"};
      return n[slot];
    }
    case Opcode::kActivation: {
      static const char* const n[5] = {"dst", "src", "accum", "bias", "scale"};
      return n[slot];
    }
    default: return kDefault[slot];
  }
}

// Operand slots an opcode uses (roles in opcodes.h); the others must be empty,
// so a loaded program cannot smuggle accesses that no backend performs.
constexpr bool uses_slot(Opcode op, int slot) {
  switch (op) {
    case Opcode::kMemset:
    case Opcode::kIota: return slot == 0;
    case Opcode::kMatmul:
    case Opcode::kTensorTensor: return slot <= 2;
    case Opcode::kTensorScalar: return slot != 2;
    case Opcode::kScalarTensorTensor: return slot <= 3;
    case Opcode::kActivation: return true;
    default: return slot <= 1;
  }
}

namespace detail {

struct Checker {
  const Target& t;
  std::span<const HbmDecl> tensors;
  const Instr& in;
  const std::string& at;

  std::string what() const { return std::string(opcode_name(in.op)); }
  [[noreturn]] void fail(int slot, const std::string& problem) const {
    throw Error(what(), slot < 0 ? "" : slot_name(in.op, slot), problem, at);
  }
  // The problem's pieces are formatted only on failure: every instruction of
  // the CPU path passes here, and eager messages cost ~10 us per instruction.
  template <class... Pieces>
  void require(bool ok, int slot, const Pieces&... problem) const {
    if (!ok) fail(slot, cat(problem...));
  }
  // An operand shown in a message, formatted only when the message is.
  struct Shown {
    const Operand& x;
    friend std::ostream& operator<<(std::ostream& os, const Shown& s) { return os << s.x.str(); }
  };
  const Operand& o(int slot) const { return in.opnd[slot]; }

  // Shape and bounds of one operand, whatever the opcode.
  void operand(int slot) const {
    const Operand& x = o(slot);
    if (x.empty()) return;
    const AccessPattern& ap = x.ap;
    require(int(x.dtype) <= int(DType::kI32), slot, "has unknown dtype ", int(x.dtype));
    if (x.on_chip()) {
      require(ap.ndim >= 1 && ap.ndim <= t.max_free_dims, slot, "free rank ", ap.ndim,
              " outside 1..", t.max_free_dims, " (", t.name, ")");
    } else {
      require(x.space == Space::kHbm, slot, "has unknown memory space ", int(x.space));
      require(ap.ndim >= 1 && ap.ndim <= kMaxDims, slot, "rank ", ap.ndim, " outside 1..",
              kMaxDims);
    }
    // Each dim's extent and the element count stay within kMaxElems, so the
    // sums and products below (and in every backend) cannot overflow.
    int64_t count = 1;
    for (int d = 0; d < ap.ndim; ++d) {
      require(ap.shape[d] >= 1 && ap.shape[d] <= kMaxElems / count, slot, "dim ", d, " size ",
              ap.shape[d], " is not in 1..", kMaxElems / count, " (", kMaxElems,
              " elements in all)");
      count *= ap.shape[d];
      require(ap.stride[d] >= 0 && ap.stride[d] <= kMaxElems / ap.shape[d], slot, "dim ", d,
              " stride ", ap.stride[d], " is not in 0..", kMaxElems / ap.shape[d]);
    }
    require(ap.offset >= 0 && ap.offset <= kMaxElems, slot, "offset ", ap.offset, " is not in 0..",
            kMaxElems);
    const int64_t esz = dtype_size(x.dtype);
    if (x.on_chip()) {
      require(x.p0 >= 0 && x.np >= 1 && int64_t{x.p0} + x.np <= t.partitions, slot, "partitions [",
              x.p0, ", ", int64_t{x.p0} + x.np, ") outside [0, ", t.partitions, ") (", t.name, ")");
      const int64_t cap =
          x.space == Space::kSbuf ? t.sbuf_partition_bytes : t.psum_partition_bytes();
      require(x.addr >= 0 && x.addr <= cap, slot, "address ", x.addr, " is outside the ", cap,
              " B ", space_name(x.space), " partition (", t.name, ")");
      const int64_t lo = x.addr + ap.min_offset() * esz, hi = x.addr + (ap.max_offset() + 1) * esz;
      require(hi <= cap, slot, "bytes [", lo, ", ", hi, ") exceed the ", cap, " B ",
              space_name(x.space), " partition (", t.name, ")");
    } else {
      require(x.addr >= 0 && x.addr < int64_t(tensors.size()), slot, "tensor id ", x.addr,
              " is not declared (", tensors.size(), " tensors)");
      // A DMA maps dim 0 to partitions, so np must be it (Operand(HbmTensor) sets it).
      require(x.p0 == 0 && x.np == ap.shape[0], slot, "partitions [", x.p0, ", ",
              int64_t{x.p0} + x.np, ") differ from dim 0 [0, ", ap.shape[0], ")");
      const HbmDecl& d = tensors[size_t(x.addr)];
      require(d.dtype == x.dtype, slot, "dtype ", dtype_name(x.dtype), " differs from tensor '",
              d.name, "' (", dtype_name(d.dtype), ")");
      require(ap.max_offset() < d.numel(), slot, "view reaches element ", ap.max_offset(),
              " of tensor '", d.name, "' with ", d.numel(), " elements");
    }
  }

  // Compute engines see partitions in quadrant-aligned groups (facts §2).
  void partition_start(int slot) const {
    const Operand& x = o(slot);
    if (!x.on_chip()) return;
    bool ok = x.np > 64 ? x.p0 == 0 : x.np > 32 ? (x.p0 == 0 || x.p0 == 64) : x.p0 % 32 == 0;
    require(ok, slot, "partition start ", x.p0, " is illegal for ", x.np,
            " partitions (65-128 start at 0, 33-64 at 0/64, <=32 at 0/32/64/96)");
  }

  void space_is(int slot, Space s) const {
    require(o(slot).space == s, slot, "must be in ", space_name(s), ", got ",
            space_name(o(slot).space));
  }
  void present(int slot) const { require(!o(slot).empty(), slot, "is missing"); }
  void absent(int slot) const {
    require(o(slot).empty(), -1, "operand slot ", slot, " is unused and must be empty, got ",
            Shown{o(slot)});
  }
  void same_partitions(int a, int b) const {
    require(o(a).np == o(b).np, b, "has ", o(b).np, " partitions, ", slot_name(in.op, a), " has ",
            o(a).np);
  }
  void same_free(int a, int b) const {
    require(o(a).free_size() == o(b).free_size(), b, "free size ", o(b).free_size(),
            " differs from ", slot_name(in.op, a), "'s ", o(a).free_size());
  }
  // tensor_tensor's and scalar_tensor_tensor's two tensor inputs (slots 1,
  // 2): dst's partitions and free size, at most one of them in PSUM.
  void two_tensor_inputs(const char* both_in_psum) const {
    present(1);
    present(2);
    same_partitions(0, 1);
    same_partitions(0, 2);
    same_free(0, 1);
    same_free(0, 2);
    require(!(o(1).space == Space::kPsum && o(2).space == Space::kPsum), 2, both_in_psum);
  }
  void column(int slot) const {  // a [P, 1] fp32 per-partition scalar
    const Operand& x = o(slot);
    if (x.empty()) return;
    require(x.on_chip(), slot, "must be an SBUF/PSUM tile");
    require(x.free_size() == 1 && x.dtype == DType::kF32, slot, "must be a [P, 1] f32 column, got ",
            Shown{x});
    same_partitions(1, slot);
  }
  void free_limit(int slot) const {
    const Operand& x = o(slot);
    if (!x.on_chip()) return;
    const int64_t lim = x.space == Space::kPsum ? t.engine_psum_fmax : t.engine_sbuf_fmax;
    require(x.free_size() <= lim, slot, "free size ", x.free_size(), " exceeds ", lim, " from ",
            space_name(x.space), " (", t.name, ")");
  }
  void one_bank(int slot) const {
    const Operand& x = o(slot);
    const int64_t bank = t.psum_bank_bytes, esz = dtype_size(x.dtype);
    const int64_t lo = x.addr + x.ap.min_offset() * esz,
                  hi = x.addr + (x.ap.max_offset() + 1) * esz;
    require(lo / bank == (hi - 1) / bank, slot, "bytes [", lo, ", ", hi, ") cross a ", bank,
            " B PSUM bank (", t.name, ")");
  }

  void run() const {
    require(int(in.op) < kNumOpcodes, -1, "unknown opcode ", int(in.op), " (", kNumOpcodes,
            " opcodes)");
    require(int(in.engine) < kNumEngines, -1, "unknown engine ", int(in.engine), " (", kNumEngines,
            " engines)");
    require(engine_allowed(in.op, in.engine), -1, "cannot run on the ", engine_name(in.engine),
            " engine");
    require(int(in.alu0) < kNumAluOps && int(in.alu1) < kNumAluOps, -1, "unknown ALU op ",
            int(in.alu0), "/", int(in.alu1), " (", kNumAluOps, " ops)");
    require(int(in.func) < kNumActFuncs, -1, "unknown activation function ", int(in.func), " (",
            kNumActFuncs, " functions)");
    for (int s = 0; s < 5; ++s) operand(s);
    present(0);
    for (int s = 0; s < 5; ++s)
      if (!uses_slot(in.op, s)) absent(s);
    const bool compute = in.engine != Engine::kDma;
    for (int s = 0; s < 5 && compute; ++s) {
      partition_start(s);
      if (in.engine == Engine::kGpSimd)
        require(o(s).space != Space::kPsum, s, "is in psum, which GpSimd cannot access");
      if (in.engine == Engine::kVector || in.engine == Engine::kScalar ||
          in.engine == Engine::kGpSimd)
        free_limit(s);
      require(o(s).empty() || o(s).on_chip(), s, "must be an SBUF/PSUM tile");
    }
    switch (in.op) {
      case Opcode::kDma: {
        present(1);
        for (int s : {0, 1})
          require(o(s).space == Space::kHbm || o(s).space == Space::kSbuf, s,
                  "DMA reaches HBM and SBUF only, got ", space_name(o(s).space));
        same_partitions(0, 1);
        same_free(0, 1);
        break;
      }
      case Opcode::kDmaTranspose: {
        space_is(0, Space::kSbuf);
        const Operand &d = o(0), &s = o(1);
        require(s.space == Space::kHbm || s.space == Space::kSbuf, 1, "must be in hbm or sbuf, got ",
                space_name(s.space));
        if (s.space == Space::kHbm) {
          require(s.ap.ndim == 2, 1, "must be a 2-D [F, P] view, got rank ", s.ap.ndim);
          require(d.np == s.ap.shape[1] && d.free_size() == s.ap.shape[0], 0, "must be [",
                  s.ap.shape[1], ", ", s.ap.shape[0], "] to hold the transpose, got ", Shown{d});
        } else {  // [F, B P] -> [P, B F] (facts section 2: the NC-v3 DMA transpose)
          require(t.dma_transpose_hw, 1, "in sbuf needs the NeuronCore-v3 DMA transpose (",
                  t.name, " has none)");
          require(s.free_size() % d.np == 0, 0, "has ", d.np,
                  " partitions, which do not divide src's free size ", s.free_size());
          require(d.free_size() == s.free_size() / d.np * s.np, 0, "free size ", d.free_size(),
                  " must be ", s.free_size() / d.np, " blocks x src's ", s.np, " partitions");
          const Tile dt = d.tile(), st = s.tile();
          const bool rows = dt.p0 < st.p0 + st.np && st.p0 < dt.p0 + dt.np;
          require(!(rows && dt.byte_lo() < st.byte_hi() && st.byte_lo() < dt.byte_hi()), 0,
                  "overlaps src (a transposing DMA cannot work in place)");
        }
        require(d.dtype == s.dtype, 0, "dtype ", dtype_name(d.dtype), " must equal src's ",
                dtype_name(s.dtype), " (no cast in a transposing DMA)");
        require(dtype_size(s.dtype) == 2 || dtype_size(s.dtype) == 4, 1,
                "dtype must be 2 or 4 bytes, got ", dtype_name(s.dtype));
        break;
      }
      case Opcode::kMatmul: {
        present(1);
        present(2);
        space_is(0, Space::kPsum);
        space_is(1, Space::kSbuf);
        space_is(2, Space::kSbuf);
        const Operand &d = o(0), &st = o(1), &mv = o(2);
        require(d.dtype == DType::kF32, 0, "must be f32 (PSUM accumulates in fp32), got ",
                dtype_name(d.dtype));
        require(st.np == mv.np, 2, "contraction (partition) size ", mv.np,
                " differs from stationary's ", st.np);
        require(st.free_size() <= t.gemm_stationary_fmax, 1, "free size ", st.free_size(),
                " exceeds ", t.gemm_stationary_fmax, " (", t.name, ")");
        require(mv.free_size() <= t.gemm_moving_fmax, 2, "free size ", mv.free_size(), " exceeds ",
                t.gemm_moving_fmax, " (", t.name, ")");
        require(d.np == st.free_size(), 0, "has ", d.np, " partitions, stationary free size is ",
                st.free_size());
        require(d.free_size() == mv.free_size(), 0, "free size ", d.free_size(),
                " differs from moving's ", mv.free_size());
        for (int s : {1, 2})
          require(o(s).dtype != DType::kI32, s, "integer matmul is not supported");
        require((st.dtype == DType::kF32) == (mv.dtype == DType::kF32), 2,
                "fp32 pairs only with fp32: stationary ", dtype_name(st.dtype), ", moving ",
                dtype_name(mv.dtype));
        one_bank(0);
        break;
      }
      case Opcode::kTranspose: {
        present(1);
        space_is(0, Space::kPsum);
        space_is(1, Space::kSbuf);
        const Operand &d = o(0), &s = o(1);
        require(s.free_size() <= t.pe_transpose_max, 1, "free size ", s.free_size(), " exceeds ",
                t.pe_transpose_max, " (", t.name, ")");
        require(d.np == s.free_size() && d.free_size() == s.np, 0, "must be [", s.free_size(), ", ",
                s.np, "], got ", Shown{d});
        require(d.dtype == DType::kF32 ||
                    (t.transpose_16bit_out && d.dtype == s.dtype && dtype_size(d.dtype) == 2),
                0, "dtype ", dtype_name(d.dtype), " not allowed: f32",
                t.transpose_16bit_out ? " or the 16-bit src dtype" : "", " (", t.name, ")");
        require(s.dtype != DType::kI32, 1, "integer transpose is not supported");
        one_bank(0);
        break;
      }
      case Opcode::kTensorCopy:
      case Opcode::kAffineSelect:
        present(1);
        same_partitions(0, 1);
        same_free(0, 1);
        if (in.op == Opcode::kAffineSelect)
          require(is_comparison(in.alu0), -1, "comparison must be is_*/not_equal, got ",
                  alu_name(in.alu0));
        break;
      case Opcode::kTensorTensor:
        two_tensor_inputs("both inputs in PSUM (at most one may be)");
        require(alu_allowed(in.engine, in.op, in.alu0, AluOp::kBypass), -1, "op ", alu_name(in.alu0),
                " cannot run on the ", engine_name(in.engine), " engine (add and multiply only)");
        break;
      case Opcode::kTensorScalar:
        present(1);
        same_partitions(0, 1);
        same_free(0, 1);
        column(3);
        column(4);
        require(alu_allowed(in.engine, in.op, in.alu0, in.alu1), -1, "ops ", alu_name(in.alu0), ", ",
                alu_name(in.alu1), " cannot run on the ", engine_name(in.engine), " engine (",
                in.engine == Engine::kScalar ? "multiply + add, multiply or add only"
                                             : "add and multiply only",
                ")");
        break;
      case Opcode::kScalarTensorTensor:
        two_tensor_inputs("is in PSUM with data (at most one of them may be)");
        column(3);
        // Both stages are required: with one it is a tensor_scalar or tensor_tensor.
        require(in.alu0 != AluOp::kBypass && in.alu1 != AluOp::kBypass, -1,
                "ops must both be arithmetic, got ", alu_name(in.alu0), ", ", alu_name(in.alu1));
        require(alu_allowed(in.engine, in.op, in.alu0, in.alu1), -1, "ops ", alu_name(in.alu0), ", ",
                alu_name(in.alu1), " cannot run on the ", engine_name(in.engine), " engine");
        break;
      case Opcode::kTensorReduce: {
        present(1);
        const Operand &d = o(0), &s = o(1);
        require(in.alu0 == AluOp::kAdd || in.alu0 == AluOp::kMax || in.alu0 == AluOp::kMin, -1,
                "reduction must be add, max or min, got ", alu_name(in.alu0));
        require(in.axes >= 1 && in.axes <= s.ap.ndim, 1, "reduces ", in.axes,
                " trailing axes of a rank-", s.ap.ndim, " free pattern");
        int64_t kept = 1;
        for (int k = 0; k < s.ap.ndim - in.axes; ++k) kept *= s.ap.shape[k];
        same_partitions(0, 1);
        require(d.free_size() == kept, 0, "free size ", d.free_size(), " must be ", kept,
                " (src's kept dims)");
        break;
      }
      case Opcode::kActivation:
        present(1);
        same_partitions(0, 1);
        same_free(0, 1);
        column(2);
        column(3);
        column(4);
        require(t.nc_version >= 3 || !o(3).empty() || in.imm[1] == 0.0f, 3,
                "must be a [P, 1] tile on ", t.name, " (scalar bias is NeuronCore-v3 only)");
        break;
      case Opcode::kMemset:
        break;
      case Opcode::kIota:
        require(o(0).dtype == DType::kI32 || o(0).dtype == DType::kF32, 0,
                "must be i32 or f32, got ", dtype_name(o(0).dtype));
        break;
      case Opcode::kBnStats:
        present(1);
        same_partitions(0, 1);
        require(o(0).dtype == DType::kF32 && o(0).free_size() == 6, 0, "must be [P, 6] f32, got ",
                Shown{o(0)});
        require(o(1).free_size() <= t.bn_stats_fmax, 1, "free size ", o(1).free_size(), " exceeds ",
                t.bn_stats_fmax, " (", t.name, ")");
        break;
      case Opcode::kBnAggr:
        present(1);
        same_partitions(0, 1);
        require(o(0).dtype == DType::kF32 && o(0).free_size() == 2, 0, "must be [P, 2] f32, got ",
                Shown{o(0)});
        require(o(1).dtype == DType::kF32 && o(1).free_size() % 6 == 0, 1,
                "must be [P, 6k] f32 bn_stats output, got ", Shown{o(1)});
        break;
    }
  }
};

}  // namespace detail

// Throws ncore::Error if `in` breaks a rule of `t`; `at` is its source line.
inline void validate(const Target& t, std::span<const HbmDecl> tensors, const Instr& in,
                     const std::string& at) {
  detail::Checker{t, tensors, in, at}.run();
}

}  // namespace ncore
