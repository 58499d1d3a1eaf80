// GEMM: C[M, N] = A[M, K] @ B[K, N], any M, N, K >= 1.
//
// Tiling follows NKI's fully blocked matmul (nki-kernels-and-pain-points.md
// 1.1): blocks of BM x BN x BK; within a block, 128-row M tiles (stationary
// free), 512-column N tiles (moving free) and 128-deep K tiles (partitions)
// accumulate in one PSUM bank per (M tile, N tile). Unlike the tutorial, the
// accumulator across K blocks is fp32 in SBUF, so bf16 inputs never see a
// bf16 partial sum.
//
// Loop order M block -> N block -> K block. A's M block is kept transposed in
// SBUF as a panel [K tile, K/128, BM] covering all of K when it fits (else one
// K block): it is built during the first N block, K block by K block, and
// reused by every later N block, so A is transposed once and only B streams.
//
// Engines: DMA streams B blocks as [K tile, N] (double-buffered so the next
// block's DMA overlaps this block's matmuls) and builds the panel with a
// transposing DMA where the target has one (trn2), else with natural loads of
// A plus TensorE transposes (trn1/inf2); TensorE runs the matmuls; VectorE
// evacuates PSUM (copy for the first K block, add after) and casts the result.
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

inline constexpr int64_t kGemmTileM = 128;  // stationary free size limit (facts §2)
inline constexpr int64_t kGemmTileN = 512;  // moving free size = one PSUM bank of fp32
inline constexpr int64_t kGemmTileK = 128;  // contraction on the partitions
inline constexpr int64_t kTransposesPerBank = 4;  // [128, 128] fp32 transposes in a 2 KiB bank

// A needs TensorE transposes when it is [M, K] and the target has no transposing DMA.
inline bool gemm_uses_pe_transpose(const Target& t, const GemmOptions& opt) {
  return !opt.a_transposed && !t.dma_transpose_hw;
}

// Block sizes in elements, chosen so every buffer fits SBUF.
struct GemmPlan {
  int64_t bm, bn, bk;
  int64_t kp;          // K extent of the A panel: all of K (rounded up to a tile), or bk
  int64_t sbuf_bytes;  // per partition, every buffer the kernel allocates
};

// Preference: a panel over all of K (A transposed once); then the largest BK:
// each K block ends in a VectorE evacuation of every PSUM tile (2 x 512
// cycles, two inputs), which hides behind the block's matmuls (BK/128 x 512
// TensorE cycles) only when BK/128 > 2 f_tensor / f_vector = 5 on trn1 and
// trn2, i.e. BK = 1024; then the largest BM (B streams M / BM times); then BN
// (2 KiB bf16 rows per DMA partition at 1024).
inline GemmPlan plan_gemm(const Target& t, int64_t m, int64_t n, int64_t k, DType a, DType b,
                          DType c, const GemmOptions& opt = {}) {
  auto up = [](int64_t v, int64_t q) { return (v + q - 1) / q * q; };
  const int64_t ea = dtype_size(a), eb = dtype_size(b), ec = dtype_size(c);
  auto buf = [&](int64_t bytes) { return up(bytes, Allocator::kAlign); };
  auto sized = [&](int64_t bm, int64_t bn, int64_t bk, bool full_k) {
    GemmPlan p{std::min(bm, up(m, kGemmTileM)), std::min(bn, up(n, kGemmTileN)),
               std::min(bk, up(k, kGemmTileK)), 0, 0};
    p.kp = full_k ? up(k, kGemmTileK) : p.bk;
    p.sbuf_bytes = buf(p.kp / kGemmTileK * p.bm * ea)                 // A panel [K tile, kp/128, BM]
                   + 2 * buf(p.bk / kGemmTileK * p.bn * eb)           // B block x2 [K tile, kt, BN]
                   + 2 * buf(k > p.bk ? p.bm / kGemmTileM * p.bn * 4 : 4)  // fp32 accumulator x2
                   + 2 * buf(p.bn * ec)                                // output stage x2
                   + (gemm_uses_pe_transpose(t, opt) ? 2 * buf(p.bk * ea) : 0);  // A rows x2
    return p;
  };
  for (bool full_k : {true, false})
    for (int64_t bk : {1024, 512, 128})
      for (int64_t bm : {2048, 1024, 512, 256, 128})
        for (int64_t bn : {1024, 512}) {
          const GemmPlan p = sized(bm, bn, bk, full_k);
          if (p.sbuf_bytes <= t.sbuf_partition_bytes) return p;
        }
  return sized(kGemmTileM, kGemmTileN, kGemmTileK, false);
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
  const bool multi_k = K > p.bk, f32_out = c.dtype == DType::kF32;
  const bool pe_transpose = gemm_uses_pe_transpose(t, opt);

  auto panel = nc.sbuf(a.dtype, 128, {p.kp / kGemmTileK, p.bm});     // [K tile, kp/128, BM]
  std::array b_blk = {nc.sbuf(b.dtype, 128, {kt_per_block, p.bn}),   // [K tile, kt, BN]
                      nc.sbuf(b.dtype, 128, {kt_per_block, p.bn})};
  std::array out = {nc.sbuf(c.dtype, 128, {p.bn}), nc.sbuf(c.dtype, 128, {p.bn})};
  // Two accumulators alternate by (M block, N block) so the next block's sums
  // do not wait for this block's C stores.
  std::array acc = {nc.sbuf(DType::kF32, 128, {multi_k ? mt_per_block : 1, multi_k ? p.bn : 1}),
                    nc.sbuf(DType::kF32, 128, {multi_k ? mt_per_block : 1, multi_k ? p.bn : 1})};
  // Two PSUM banks alternate so TensorE fills one while VectorE drains the other.
  std::array ps = {nc.psum(DType::kF32, 128, {kGemmTileN}),           // [M tile, N tile] fp32
                   nc.psum(DType::kF32, 128, {kGemmTileN})};

  // Panel K tiles for A[m0 : m0+bm, k0 : k0+bk] (one K block), K on partitions.
  int64_t tp_phase = 0;
  auto build_panel = [&](int64_t m0, int64_t bm, int64_t k0, int64_t bk, int64_t slot0) {
    if (!pe_transpose) {
      for (int64_t ki = 0; ki * kGemmTileK < bk; ++ki) {
        const int64_t k = k0 + ki * kGemmTileK, kt = std::min(kGemmTileK, K - k);
        const Tile dst = panel.partitions(0, int(kt)).index(0, slot0 + ki).slice(0, 0, bm);
        if (opt.a_transposed) nc.dma(dst, a.slice(0, k, k + kt).slice(1, m0, m0 + bm));
        else nc.dma_transpose(dst, a.slice(0, m0, m0 + bm).slice(1, k, k + kt));  // [bm, kt]
      }
      return;
    }
    // 128 rows of A at a time as loaded, [rt, bk], then TensorE transposes,
    // four per PSUM bank so one VectorE copy drains four.
    std::array rows = {nc.sbuf(a.dtype, 128, {p.bk}), nc.sbuf(a.dtype, 128, {p.bk})};
    std::array tp = {nc.psum(DType::kF32, 128, {kTransposesPerBank, kGemmTileM}),  // [kt, 4, rt]
                     nc.psum(DType::kF32, 128, {kTransposesPerBank, kGemmTileM})};
    const int64_t ktiles = (bk + kGemmTileK - 1) / kGemmTileK;
    for (int64_t r = 0, i = 0; r < bm; r += kGemmTileM, ++i) {
      const int rt = int(std::min(kGemmTileM, bm - r));
      const Tile nat = rows[size_t(i % 2)].partitions(0, rt);
      nc.dma(nat.slice(0, 0, bk), a.slice(0, m0 + r, m0 + r + rt).slice(1, k0, k0 + bk));
      for (int64_t g = 0, nj = 0; g < ktiles; g += nj, ++tp_phase) {
        // Only K's last tile can be short: it forms a group of its own.
        const int kt = int(std::min(kGemmTileK, bk - g * kGemmTileK));
        nj = 0;
        while (nj < kTransposesPerBank && g + nj < ktiles &&
               std::min(kGemmTileK, bk - (g + nj) * kGemmTileK) == kt)
          ++nj;
        const Tile tt = tp[size_t(tp_phase % 2)].partitions(0, kt);        // [kt, 4, 128]
        for (int64_t j = 0; j < nj; ++j) {
          const int64_t c = (g + j) * kGemmTileK;
          nc.transpose(tt.index(0, j).slice(0, 0, rt), nat.slice(0, c, c + kt));
        }
        nc.tensor_copy(panel.partitions(0, kt).slice(0, slot0 + g, slot0 + g + nj).slice(1, r, r + rt),
                       tt.slice(0, 0, nj).slice(1, 0, rt));
      }
    }
  };

  int64_t pair = 0, phase = 0, stage = 0, bank = 0, blocks = 0;
  for (int64_t m0 = 0; m0 < M; m0 += p.bm) {
    const int64_t bm = std::min(p.bm, M - m0);
    int64_t panel_k0 = -1, filled_to = 0;  // the panel holds K [panel_k0, filled_to) of this block
    for (int64_t n0 = 0; n0 < N; n0 += p.bn, ++pair) {
      if (pair % nc.num_programs() != nc.program_id()) continue;
      const int64_t bn = std::min(p.bn, N - n0);
      const Tile& acc_blk = acc[size_t(blocks++ % 2)];
      for (int64_t kb = 0; kb < K; kb += p.bk, ++phase) {
        const int64_t bk = std::min(p.bk, K - kb);
        if (panel_k0 < 0 || kb < panel_k0 || kb + bk > panel_k0 + p.kp) {
          panel_k0 = kb;  // (re)start the panel here: once per M block when kp covers K
          filled_to = kb;
        }
        if (filled_to < kb + bk) {
          build_panel(m0, bm, kb, bk, (kb - panel_k0) / kGemmTileK);
          filled_to = kb + bk;
        }
        const int64_t slot0 = (kb - panel_k0) / kGemmTileK;
        const Tile& bb = b_blk[size_t(phase % 2)];
        for (int64_t ki = 0; ki * kGemmTileK < bk; ++ki) {
          const int64_t k0 = kb + ki * kGemmTileK, kt = std::min(kGemmTileK, K - k0);
          nc.dma(bb.partitions(0, int(kt)).index(0, ki).slice(0, 0, bn),
                 b.slice(0, k0, k0 + kt).slice(1, n0, n0 + bn));
        }
        const bool last_k = kb + p.bk >= K;
        for (int64_t mi = 0; mi * kGemmTileM < bm; ++mi) {
          const int64_t mt = std::min(kGemmTileM, bm - mi * kGemmTileM), s0 = mi * kGemmTileM;
          const Tile o = out[size_t(stage % 2)].partitions(0, int(mt));      // [mt, BN]
          const Tile acc_row = acc_blk.partitions(0, int(mt)).index(0, multi_k ? mi : 0);
          for (int64_t ni = 0; ni * kGemmTileN < bn; ++ni, ++bank) {
            const int64_t c0 = ni * kGemmTileN, nt = std::min(kGemmTileN, bn - c0);
            const Tile pt = ps[size_t(bank % 2)].partitions(0, int(mt)).slice(0, 0, nt);
            for (int64_t ki = 0; ki * kGemmTileK < bk; ++ki) {
              const int kt = int(std::min(kGemmTileK, bk - ki * kGemmTileK));
              nc.matmul(pt, panel.partitions(0, kt).index(0, slot0 + ki).slice(0, s0, s0 + mt),
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
          const int64_t r0 = m0 + s0;
          const Tile src = multi_k && f32_out ? acc_row : o;
          nc.dma(c.slice(0, r0, r0 + mt).slice(1, n0, n0 + bn), src.slice(0, 0, bn));
          ++stage;
        }
      }
    }
  }
}

}  // namespace ncore
