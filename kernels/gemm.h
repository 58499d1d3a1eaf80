// GEMM: C[M, N] = A[M, K] @ B[K, N], any M, N, K >= 1.
//
// Tiling follows NKI's fully blocked matmul (nki-kernels-and-pain-points.md
// 1.1): blocks of BM x BN x BK; within a block, 128-row M tiles (stationary
// free), 512-column N tiles (moving free) and 128-deep K tiles (partitions)
// accumulate in one PSUM bank per (M tile, N tile). Unlike the tutorial, the
// accumulator across K blocks is fp32 in SBUF, so bf16 inputs never see a
// bf16 partial sum.
//
// Engines: DMA loads B blocks as [K tile, N] and A blocks transposed to
// [K tile, M] (a transposing DMA where the target has one, else natural loads
// plus TensorE transposes); TensorE runs the matmuls; VectorE evacuates PSUM
// (copy for the first K block, add after) and casts the result. Input blocks
// are double-buffered so the next block's DMA overlaps this block's matmuls.
// SPMD: (M block, N block) pairs are dealt round-robin to program instances.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include <ncore/isa/core.h>

namespace ncore {

struct GemmOptions {
  bool a_transposed = false;  // A is given as [K, M] (NKI's lhsT)
};

// Block sizes, in elements. Derived from the target, shape and dtypes so that
// the double-buffered inputs, the fp32 accumulator and the output stage fit SBUF.
struct GemmPlan {
  int64_t bm, bn, bk;
  int64_t sbuf_bytes;  // per partition
};

inline constexpr int64_t kGemmTileM = 128;  // stationary free size limit (facts §2)
inline constexpr int64_t kGemmTileN = 512;  // moving free size = one PSUM bank of fp32
inline constexpr int64_t kGemmTileK = 128;  // contraction on the partitions

// A needs TensorE transposes when it is [M, K] and the target has no transposing DMA.
inline bool gemm_uses_pe_transpose(const Target& t, const GemmOptions& opt) {
  return !opt.a_transposed && !t.dma_transpose_hw;
}

inline GemmPlan plan_gemm(const Target& t, int64_t m, int64_t n, int64_t k, DType a, DType b,
                          DType c, const GemmOptions& opt = {}) {
  auto up = [](int64_t v, int64_t q) { return (v + q - 1) / q * q; };
  const int64_t ea = dtype_size(a), eb = dtype_size(b), ec = dtype_size(c);
  // Preferred first: the tutorial's 2048 x 1024 x 1024 (683 FLOP/B), then smaller.
  static constexpr std::array<std::array<int64_t, 3>, 6> kCandidates = {{
      {2048, 1024, 1024}, {1024, 1024, 1024}, {1024, 1024, 512},
      {512, 1024, 512},   {512, 512, 512},    {128, 512, 128}}};
  auto sized = [&](int64_t bm, int64_t bn, int64_t bk) {
    GemmPlan p{std::min(bm, up(m, kGemmTileM)), std::min(bn, up(n, kGemmTileN)),
               std::min(bk, up(k, kGemmTileK)), 0};
    const int64_t ktiles = p.bk / kGemmTileK, mtiles = p.bm / kGemmTileM;
    auto buf = [&](int64_t bytes) { return up(bytes, Allocator::kAlign); };
    p.sbuf_bytes = 2 * buf(ktiles * p.bm * ea)     // A block, double-buffered  [K tile, kt, BM]
                   + 2 * buf(ktiles * p.bn * eb)   // B block, double-buffered  [K tile, kt, BN]
                   + buf(k > p.bk ? mtiles * p.bn * 4 : 4)  // fp32 accumulator [M tile, mt, BN]
                   + 2 * buf(p.bn * ec)            // output stage, double-buffered
                   + (gemm_uses_pe_transpose(t, opt) ? buf(kGemmTileK * ea) : 0);  // A rows to transpose
    return p;
  };
  for (const auto& cand : kCandidates) {
    const GemmPlan p = sized(cand[0], cand[1], cand[2]);
    if (p.sbuf_bytes <= t.sbuf_partition_bytes) return p;
  }
  return sized(kGemmTileM, kGemmTileN, kGemmTileK);
}

template <NeuronCore Nc>
void gemm(Nc& nc, const HbmTensor& c, const HbmTensor& a, const HbmTensor& b,
          const GemmOptions& opt = {}, Loc loc = Loc::current()) {
  const Target& t = nc.target();
  const bool at = opt.a_transposed;
  if (a.ndim() != 2 || b.ndim() != 2 || c.ndim() != 2)
    throw Error("gemm", a.ndim() != 2 ? "A" : b.ndim() != 2 ? "B" : "C",
                "must be 2-D", where(loc));
  const int64_t M = a.shape(at ? 1 : 0), K = a.shape(at ? 0 : 1), N = b.shape(1);
  if (b.shape(0) != K)
    throw Error("gemm", "B", cat("has ", b.shape(0), " rows, A has K = ", K), where(loc));
  if (c.shape(0) != M || c.shape(1) != N)
    throw Error("gemm", "C", cat("must be [", M, ", ", N, "], got [", c.shape(0), ", ",
                                 c.shape(1), "]"), where(loc));
  const GemmPlan p = plan_gemm(t, M, N, K, a.dtype, b.dtype, c.dtype, opt);
  const int64_t kt_per_block = p.bk / kGemmTileK, mt_per_block = p.bm / kGemmTileM;
  const bool multi_k = K > p.bk;
  const bool pe_transpose = gemm_uses_pe_transpose(t, opt);

  std::array a_blk = {nc.sbuf(a.dtype, 128, {kt_per_block, p.bm}),   // [K tile, kt, BM]
                      nc.sbuf(a.dtype, 128, {kt_per_block, p.bm})};
  std::array b_blk = {nc.sbuf(b.dtype, 128, {kt_per_block, p.bn}),   // [K tile, kt, BN]
                      nc.sbuf(b.dtype, 128, {kt_per_block, p.bn})};
  std::array out = {nc.sbuf(c.dtype, 128, {p.bn}), nc.sbuf(c.dtype, 128, {p.bn})};
  auto acc = nc.sbuf(DType::kF32, 128, {multi_k ? mt_per_block : 1, multi_k ? p.bn : 1});
  // Two PSUM banks alternate so TensorE fills one while VectorE drains the other.
  std::array ps = {nc.psum(DType::kF32, 128, {kGemmTileN}),           // [M tile, N tile] fp32
                   nc.psum(DType::kF32, 128, {kGemmTileN})};
  const bool f32_out = c.dtype == DType::kF32;

  // A[m0 : m0+mt, k0 : k0+kt] -> dst [kt, mt], K on partitions.
  auto load_a_tile = [&](const Tile& dst, int64_t m0, int64_t mt, int64_t k0, int64_t kt) {
    if (at) return nc.dma(dst, a.slice(0, k0, k0 + kt).slice(1, m0, m0 + mt));
    const HbmTensor rows = a.slice(0, m0, m0 + mt).slice(1, k0, k0 + kt);  // [mt, kt]
    if (!pe_transpose) return nc.dma_transpose(dst, rows);
    for (int64_t r = 0; r < mt; r += kGemmTileM) {  // TensorE transposes 128 rows at a time
      const int64_t rt = std::min(kGemmTileM, mt - r);
      auto nat = nc.sbuf(a.dtype, 128, {kGemmTileK});                 // [rt, kt] as loaded
      auto tp = nc.psum(DType::kF32, 128, {kGemmTileM});              // [kt, rt] fp32
      nc.dma(nat.partitions(0, int(rt)).slice(0, 0, kt), rows.slice(0, r, r + rt));
      nc.transpose(tp.partitions(0, int(kt)).slice(0, 0, rt),
                   nat.partitions(0, int(rt)).slice(0, 0, kt));
      nc.tensor_copy(dst.slice(0, r, r + rt), tp.partitions(0, int(kt)).slice(0, 0, rt));
    }
  };

  int64_t pair = 0, phase = 0, stage = 0, bank = 0;
  for (int64_t n0 = 0; n0 < N; n0 += p.bn) {
    for (int64_t m0 = 0; m0 < M; m0 += p.bm, ++pair) {
      if (pair % nc.num_programs() != nc.program_id()) continue;
      const int64_t bn = std::min(p.bn, N - n0), bm = std::min(p.bm, M - m0);
      for (int64_t kb = 0; kb < K; kb += p.bk, ++phase) {
        const int64_t bk = std::min(p.bk, K - kb);
        const Tile& ab = a_blk[phase % 2];
        const Tile& bb = b_blk[phase % 2];
        for (int64_t ki = 0; ki * kGemmTileK < bk; ++ki) {
          const int64_t k0 = kb + ki * kGemmTileK, kt = std::min(kGemmTileK, K - k0);
          const Tile b_dst = bb.partitions(0, int(kt)).index(0, ki).slice(0, 0, bn);
          nc.dma(b_dst, b.slice(0, k0, k0 + kt).slice(1, n0, n0 + bn));
          load_a_tile(ab.partitions(0, int(kt)).index(0, ki).slice(0, 0, bm), m0, bm, k0, kt);
        }
        const bool last_k = kb + p.bk >= K;
        for (int64_t mi = 0; mi * kGemmTileM < bm; ++mi) {
          const int64_t mt = std::min(kGemmTileM, bm - mi * kGemmTileM);
          const Tile o = out[stage % 2].partitions(0, int(mt));                // [mt, BN]
          const Tile acc_row = acc.partitions(0, int(mt)).index(0, multi_k ? mi : 0);
          for (int64_t ni = 0; ni * kGemmTileN < bn; ++ni, ++bank) {
            const int64_t c0 = ni * kGemmTileN, nt = std::min(kGemmTileN, bn - c0);
            const Tile pt = ps[bank % ps.size()].partitions(0, int(mt)).slice(0, 0, nt);
            for (int64_t ki = 0; ki * kGemmTileK < bk; ++ki) {
              const int kt = int(std::min(kGemmTileK, bk - ki * kGemmTileK));
              const int64_t s0 = mi * kGemmTileM;
              nc.matmul(pt, ab.partitions(0, kt).index(0, ki).slice(0, s0, s0 + mt),
                        bb.partitions(0, kt).index(0, ki).slice(0, c0, c0 + nt),
                        /*accumulate=*/ki > 0);
            }
            const Tile o_t = o.slice(0, c0, c0 + nt);
            if (!multi_k) {
              nc.tensor_copy(o_t, pt);  // PSUM -> SBUF, cast to C's dtype
              continue;
            }
            const Tile acc_t = acc_row.slice(0, c0, c0 + nt);
            if (kb == 0) nc.tensor_copy(acc_t, pt);
            else nc.tensor_tensor(acc_t, acc_t, pt, AluOp::kAdd);
            if (last_k && !f32_out) nc.tensor_copy(o_t, acc_t);
          }
          if (!last_k) continue;
          const int64_t r0 = m0 + mi * kGemmTileM;
          const Tile src = multi_k && f32_out ? acc_row : o;
          nc.dma(c.slice(0, r0, r0 + mt).slice(1, n0, n0 + bn), src.slice(0, 0, bn));
          ++stage;
        }
      }
    }
  }
}

}  // namespace ncore
