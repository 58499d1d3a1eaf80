// What one instruction costs in isolation: compute instructions in cycles of
// their engine (the published formulas, facts §3), DMAs as transfers of rows
// (partitions) spread over the DMA engines. Waiting — dependencies, busy
// engines, shared HBM — is model.h's business.
//
// N is the elements per partition an instruction streams: the free size of its
// (largest) input, or of its destination when it has no input.
#pragma once

#include <algorithm>
#include <cstdint>

#include <ncore/isa/cost/params.h>
#include <ncore/isa/instr.h>

namespace ncore::cost {

inline double engine_ghz(const CostParams& c, Engine e) {
  switch (e) {
    case Engine::kTensor: return c.tensor_ghz;
    case Engine::kVector: return c.vector_ghz;
    case Engine::kScalar: return c.scalar_ghz;
    case Engine::kGpSimd: return c.gpsimd_ghz;
    case Engine::kDma: return 1.0;
  }
  return 1.0;
}

inline int64_t stream_elems(const Instr& in) {
  int64_t n = 0;
  for (int s = 1; s < int(in.opnd.size()); ++s) {
    const Operand& o = in.opnd[size_t(s)];
    // Per-partition [P, 1] scalars and the activation accumulator are not streamed.
    if (o.empty() || (in.op == Opcode::kActivation && s >= 2) ||
        ((in.op == Opcode::kTensorScalar || in.op == Opcode::kScalarTensorTensor) && s >= 3))
      continue;
    n = std::max(n, o.free_size());
  }
  return n > 0 ? n : in.dst().free_size();
}

// Vector and Scalar pay the arch guide's static overheads (params.h).
inline bool pays_static_overheads(Engine e) { return e == Engine::kVector || e == Engine::kScalar; }

namespace detail {

inline bool is16(DType t) { return t == DType::kBF16 || t == DType::kF16; }
inline bool s_to_s_contiguous(const Operand& dst, const Operand& src) {
  return dst.space == Space::kSbuf && src.space == Space::kSbuf && dst.ap.contiguous() &&
         src.ap.contiguous();
}

}  // namespace detail

// Cycles of a compute instruction by its formula, before static overheads.
inline double formula_cycles(const CostParams& c, const Instr& in) {
  const double n = double(stream_elems(in));
  const double min_ii = c.min_ii_cycles;
  const bool vector = in.engine == Engine::kVector;
  const bool fast = vector && c.vector_fast_modes;
  const Operand& dst = in.opnd[0];
  switch (in.op) {
    case Opcode::kMatmul: {
      const Operand &st = in.opnd[1], &mv = in.opnd[2];
      double cyc = std::max(std::min(double(c.pe_load_cap_cycles), double(st.free_size())),
                            double(mv.free_size()));
      if (st.dtype == DType::kF32 || mv.dtype == DType::kF32) cyc *= c.pe_fp32_factor;
      return cyc;
    }
    case Opcode::kTranspose: {
      const Operand& src = in.opnd[1];
      double cyc =
          std::max(double(src.np), std::min(double(c.pe_load_cap_cycles), double(src.free_size())));
      if (src.dtype == DType::kF32) cyc *= c.pe_transpose_fp32_factor;
      return cyc;
    }
    case Opcode::kTensorCopy:
    case Opcode::kTensorScalar: {
      const Operand& src = in.opnd[1];
      double cyc = n;
      if (fast && detail::s_to_s_contiguous(dst, src) && detail::is16(dst.dtype) &&
          detail::is16(src.dtype))
        cyc = n / 4;
      return std::max(min_ii, cyc);
    }
    case Opcode::kTensorTensor: {
      const Operand &a = in.opnd[1], &b = in.opnd[2];
      const bool one_in_psum = a.space == Space::kPsum || b.space == Space::kPsum;
      const bool all_bf16_sbuf = dst.dtype == DType::kBF16 && a.dtype == DType::kBF16 &&
                                 b.dtype == DType::kBF16 && a.space == Space::kSbuf &&
                                 b.space == Space::kSbuf;
      const bool contiguous = dst.ap.contiguous() && a.ap.contiguous() && b.ap.contiguous();
      const bool add_sub_mul =
          in.alu0 == AluOp::kAdd || in.alu0 == AluOp::kSubtract || in.alu0 == AluOp::kMultiply;
      // v2: N for one PSUM input or contiguous all-bf16 add/sub/mul in SBUF;
      // v3 fast mode: 2x over 2N for any all-bf16 SBUF operation.
      const bool single_pass =
          vector &&
          (one_in_psum || (all_bf16_sbuf && contiguous && add_sub_mul) || (fast && all_bf16_sbuf));
      return std::max(min_ii, single_pass ? n : 2 * n);
    }
    case Opcode::kScalarTensorTensor: {
      // The published row (facts §3): N when data and tensor are both bf16,
      // op0 = subtract, op1 = multiply and N is even, else 2N. No PSUM-input
      // or fast-mode rule is published for it, so none is applied. MIN_II
      // as for tensor_tensor, whose cost it shares ("approximately the same
      // latency as a regular tensor_tensor", NKI).
      const Operand &a = in.opnd[1], &b = in.opnd[2];
      const bool single_pass = a.dtype == DType::kBF16 && b.dtype == DType::kBF16 &&
                               in.alu0 == AluOp::kSubtract && in.alu1 == AluOp::kMultiply &&
                               stream_elems(in) % 2 == 0;
      return std::max(min_ii, single_pass ? n : 2 * n);
    }
    case Opcode::kTensorReduce: {
      const bool half = vector && in.opnd[1].dtype == DType::kBF16 &&
                        (in.alu0 == AluOp::kAdd || in.alu0 == AluOp::kMax);
      return std::max(min_ii, half ? n / 2 : n);
    }
    case Opcode::kActivation: return std::max(min_ii, n) + (in.opnd[2].empty() ? 0.0 : min_ii);
    case Opcode::kMemset: {
      const bool half = vector && in.imm[0] == 0.0f && detail::is16(dst.dtype);
      return std::max(min_ii, half ? n / 2 : n);
    }
    case Opcode::kIota:
    case Opcode::kAffineSelect: return c.gpsimd_fixed_cycles + n;
    case Opcode::kBnStats: return std::max(min_ii, n);
    case Opcode::kBnAggr: return std::max(min_ii, 13.0 * n / 3.0);
    case Opcode::kDma:
    case Opcode::kDmaTranspose: return 0.0;
  }
  return 0.0;
}

// Whether an operand's fastest-moving dim strides more than `bytes` bytes.
inline bool strided_beyond(const Operand& o, int bytes) {
  for (int d = o.ap.ndim - 1; d >= 0; --d)
    if (o.ap.shape[size_t(d)] > 1) return o.ap.stride[size_t(d)] * dtype_size(o.dtype) > bytes;
  return false;
}

// Cycles of a compute instruction on its own: its formula, doubled when an
// operand is read or written at half bandwidth (strided), plus the small-N
// overhead.
inline double compute_cycles(const CostParams& c, const Instr& in) {
  double cyc = formula_cycles(c, in);
  if (in.engine != Engine::kTensor) {
    bool strided = false;
    for (const Operand& o : in.opnd)
      strided |= o.on_chip() && strided_beyond(o, c.strided_access_bytes);
    if (strided) cyc *= c.strided_access_factor;
  }
  if (pays_static_overheads(in.engine) && stream_elems(in) < c.small_n) cyc += c.small_n_cycles;
  return cyc;
}

inline double compute_ns(const CostParams& c, const Instr& in) {
  return compute_cycles(c, in) / engine_ghz(c, in.engine);
}

// ---------------------------------------------------------------- DMA

// Elements of one contiguous run of the walk over dims [first, ndim): the
// innermost dims merged while each is dense over the ones inside it.
inline int64_t contiguous_run(const AccessPattern& ap, int first) {
  int64_t run = 1;
  for (int d = ap.ndim - 1; d >= first; --d) {
    if (ap.shape[size_t(d)] == 1) continue;
    if (ap.stride[size_t(d)] != run) break;
    run *= ap.shape[size_t(d)];
  }
  return run;
}

// A DMA as the hardware sees it: `rows` rows (SBUF partitions, or dim-0 rows
// between HBM tensors), each a list of contiguous chunks (DMA buffers).
// Row r is served by DMA engine ((first_row + r) / partitions_per_engine) mod
// engines: 8 partitions per engine (DMA overview).
struct DmaShape {
  int64_t rows = 0;
  int64_t first_row = 0;
  int64_t row_elems = 0;
  int64_t row_bytes = 0;        // bytes an engine moves per row (the wider side of a cast)
  int64_t row_descriptors = 0;  // contiguous chunks per row
  int64_t hbm_row_bytes = 0;    // HBM bytes read plus written per row
  double row_ns = 0;            // engine time per row
};

inline DmaShape dma_shape(const CostParams& c, const Instr& in) {
  const Operand &dst = in.opnd[0], &src = in.opnd[1];
  DmaShape s;
  const Operand& rows_side = dst.on_chip() ? dst : src;
  s.rows = dst.np;
  s.first_row = rows_side.on_chip() ? rows_side.p0 : 0;
  s.row_elems = dst.free_size();
  s.row_bytes = s.row_elems * std::max(dtype_size(dst.dtype), dtype_size(src.dtype));
  for (const Operand* o : {&dst, &src})
    if (o->space == Space::kHbm) s.hbm_row_bytes += s.row_elems * dtype_size(o->dtype);
  auto run_of = [](const Operand& o) { return contiguous_run(o.ap, o.on_chip() ? 0 : 1); };
  int64_t run = run_of(dst);
  const bool transpose = in.op == Opcode::kDmaTranspose;
  if (!transpose) {
    run = std::min(run, run_of(src));
  } else if (!c.dma_transpose_hw) {
    // Row p of the destination is column p of the [F, P] source: one element
    // per row of the source, so one descriptor per element unless P == 1.
    AccessPattern col;
    col.ndim = 1;
    col.shape[0] = src.ap.shape[0];
    col.stride[0] = src.ap.stride[0];
    run = std::min(run, contiguous_run(col, 0));
  }
  run = std::max<int64_t>(run, 1);
  s.row_descriptors = (s.row_elems + run - 1) / run;
  s.row_ns =
      double(s.row_descriptors) * c.dma_descriptor_ns + double(s.row_bytes) / c.dma_bytes_per_ns;
  if (transpose && c.dma_transpose_hw)
    s.row_ns /= src.space == Space::kSbuf ? c.dma_transpose_sbuf_efficiency : c.dma_transpose_efficiency;
  return s;
}

// Rows of `s` that DMA engine `e` serves.
inline int64_t rows_on_engine(const CostParams& c, const DmaShape& s, int e) {
  const int64_t per = std::max(c.partitions_per_dma_engine, 1);
  const int64_t engines = std::max(c.dma_engines, 1);
  const int64_t lo = s.first_row, hi = s.first_row + s.rows;
  const int64_t b_lo = lo / per, b_hi = (hi - 1) / per;  // row blocks, inclusive
  auto block_rows = [&](int64_t b) { return std::min(hi, (b + 1) * per) - std::max(lo, b * per); };
  auto owned = [&](int64_t b) { return b % engines == e; };
  if (b_lo == b_hi) return owned(b_lo) ? block_rows(b_lo) : 0;
  int64_t n = (owned(b_lo) ? block_rows(b_lo) : 0) + (owned(b_hi) ? block_rows(b_hi) : 0);
  // Full blocks b_lo + 1 .. b_hi - 1: those congruent to e mod engines.
  const int64_t first = b_lo + 1, last = b_hi - 1;
  if (first <= last) {
    const int64_t start = first + ((e - first % engines) + engines) % engines;
    if (start <= last) n += ((last - start) / engines + 1) * per;
  }
  return n;
}

}  // namespace ncore::cost
