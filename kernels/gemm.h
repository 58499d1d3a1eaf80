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
// K block, two panels alternating): it is built during the first N block, K
// block by K block, and reused by every later N block, so A is transposed once
// and only B streams. plan_gemm picks the block sizes by a roofline estimate.
//
// Engines: DMA streams B blocks as [K tile, N], double-buffered and issued one
// step ahead, and builds the panel with a transposing DMA where the target has
// one (trn2), else with natural loads of A plus TensorE transposes
// (trn1/inf2); TensorE runs the matmuls; VectorE evacuates PSUM (copy for the
// first K block, add after) and casts the result. SPMD: (M block, N block)
// pairs are dealt round-robin to program instances. docs/gemm.md has the
// modelled figures and what limits them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

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
  int panels;          // 1 for a full-K panel (built once per M block), else 2 (rebuilt per K block)
  int accs;            // fp32 accumulators alternating between (M, N) blocks: 1 or 2
  int64_t sbuf_bytes;  // per partition, every buffer the kernel allocates
  double est_us;       // the planner's roofline estimate of the kernel's time
};

// A DMA row of b bytes per partition moves at ~b / (b + 723) of the engines'
// rate: the per-descriptor cost that gives the perf guide's ~85% at 4 KiB.
inline constexpr double kDmaRowOverheadBytes = 723.0;
inline constexpr double kPlanOccupancy = 0.8;
// Estimates within 2% tie (the estimate is not that precise): the earlier,
// larger-block plan wins, which also suits the CPU path (fewer B copies).
inline constexpr double kPlanTie = 0.02;

// Among the plans whose buffers fit SBUF, the one with the smallest roofline
// estimate, max(TensorE, DMA / 0.8, VectorE / 0.8) plus the stalls a plan adds
// (a queue that must stay busy behind TensorE's needs slack to absorb the
// dependency waits, so DMA and VectorE count at 80% attainable occupancy):
//   TensorE: the matmuls at the dense peak, plus 128 cycles per A transpose
//     where A needs TensorE transposes (once per M block with a full-K panel,
//     once per (M, N) block otherwise);
//   DMA: B streams M / BM times, A once (full-K panel) or N / BN times, C once,
//     each at the row-size efficiency above, against the core's DMA engines;
//   VectorE: one PSUM evacuation per (M tile, N tile, K block), 2 x 512 cycles
//     (two inputs), and one 4-transpose copy per 4 transposes;
//   stalls: the first blocks' loads (nothing overlaps them) and, with one
//     accumulator, each (M, N) block's C stores.
// Ties (kPlanTie) keep the first plan in the order below: full-K panel, large
// BK, BM, BN.
// Where A needs TensorE transposes, a full-K panel always wins if one fits.
inline GemmPlan plan_gemm(const Target& t, int64_t m, int64_t n, int64_t k, DType a, DType b,
                          DType c, const GemmOptions& opt = {}) {
  auto up = [](int64_t v, int64_t q) { return (v + q - 1) / q * q; };
  auto blocks = [](int64_t v, int64_t q) { return double((v + q - 1) / q); };
  const int64_t ea = dtype_size(a), eb = dtype_size(b), ec = dtype_size(c);
  const bool pe_t = gemm_uses_pe_transpose(t, opt);
  const double dma_bps = t.dma_engines * t.dma_engine_gbps * 1e9;
  auto dma_s = [&](double bytes, double row) {
    return bytes / (dma_bps * row / (row + kDmaRowOverheadBytes));
  };
  auto buf = [&](int64_t bytes) { return up(bytes, Allocator::kAlign); };
  auto sized = [&](int64_t bm, int64_t bn, int64_t bk, bool full_k, int accs) {
    GemmPlan p{std::min(bm, up(m, kGemmTileM)), std::min(bn, up(n, kGemmTileN)),
               std::min(bk, up(k, kGemmTileK)), 0, 0, accs, 0, 0.0};
    p.kp = full_k ? up(k, kGemmTileK) : p.bk;
    p.panels = p.kp >= k ? 1 : 2;
    const bool multi_k = k > p.bk;
    p.sbuf_bytes = p.panels * buf(p.kp / kGemmTileK * p.bm * ea)  // A panel [K tile, kp/128, BM]
                   + 2 * buf(p.bk / kGemmTileK * p.bn * eb)       // B block x2 [K tile, kt, BN]
                   + accs * buf(multi_k ? p.bm / kGemmTileM * p.bn * 4 : 4)  // fp32 accumulators
                   + 2 * buf(p.bn * ec)                            // output stage x2
                   + (pe_t ? 2 * buf(p.bk * ea) : 0);              // A rows x2
    // The roofline estimate.
    const double a_reads = p.panels == 1 ? 1.0 : blocks(n, p.bn);
    const double peak = (a == DType::kF32 ? t.tensor_tflops_fp32 : t.tensor_tflops_bf16) * 1e12;
    const double transposes = pe_t ? blocks(m, kGemmTileM) * blocks(k, kGemmTileK) * a_reads : 0;
    const double pe = 2.0 * m * n * k / peak + transposes * 128 / (t.tensor_ghz * 1e9);
    const double a_row = double(opt.a_transposed ? p.bm * ea : p.bk * ea);
    const double dma = dma_s(double(k) * n * eb * blocks(m, p.bm), double(p.bn * eb)) +
                       dma_s(double(m) * k * ea * a_reads, a_row) +
                       dma_s(double(m) * n * ec, double(p.bn * ec));
    const double tiles = blocks(m, kGemmTileM) * blocks(n, kGemmTileN);
    const double vec = (tiles * blocks(k, p.bk) * 2 * 512 + transposes / 4 * 512) /
                       (t.vector_ghz * 1e9);
    const double fill = dma_s(double(p.bk) * (p.bm * ea + p.bn * eb), double(p.bn * eb));
    const double c_stalls = accs == 1 && multi_k
                                ? blocks(m, p.bm) * blocks(n, p.bn) *
                                      dma_s(double(p.bm) * p.bn * 4, double(p.bn * 4))
                                : 0.0;
    p.est_us = (std::max({pe, dma / kPlanOccupancy, vec / kPlanOccupancy}) + fill + c_stalls) * 1e6;
    return p;
  };
  GemmPlan best{};
  bool found = false;
  for (bool full_k : {true, false})
    for (int64_t bk : {1024, 512, 128})
      for (int64_t bm : {2048, 1024, 512, 256, 128})
        for (int64_t bn : {2048, 1024, 512})
          for (int accs : {2, 1}) {
            const GemmPlan p = sized(bm, bn, bk, full_k, accs);
            if (p.sbuf_bytes > t.sbuf_partition_bytes) continue;
            // Rebuilding a TensorE-transposed panel per K block costs more than
            // the estimate sees (PE <-> VectorE round trips per transpose group):
            // only when no full-K panel fits.
            if (pe_t && !full_k && found && best.panels == 1) continue;
            if (!found || p.est_us < best.est_us * (1.0 - kPlanTie)) best = p;
            found = true;
          }
  return found ? best : sized(kGemmTileM, kGemmTileN, kGemmTileK, false, 1);
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

  // [K tile, kp/128, BM]; two alternate when the panel is rebuilt per K block.
  using Buf = decltype(nc.sbuf(DType::kF32, 1, {1}));
  std::vector<Buf> panels;
  for (int i = 0; i < p.panels; ++i) panels.push_back(nc.sbuf(a.dtype, 128, {p.kp / kGemmTileK, p.bm}));
  Tile panel = panels[0];  // the one being filled and read
  std::array b_blk = {nc.sbuf(b.dtype, 128, {kt_per_block, p.bn}),   // [K tile, kt, BN]
                      nc.sbuf(b.dtype, 128, {kt_per_block, p.bn})};
  std::array out = {nc.sbuf(c.dtype, 128, {p.bn}), nc.sbuf(c.dtype, 128, {p.bn})};
  // Accumulators alternate by (M block, N block) when there are two, so the
  // next block's sums do not wait for this block's C stores.
  std::vector<Buf> acc;
  for (int i = 0; i < p.accs; ++i)
    acc.push_back(nc.sbuf(DType::kF32, 128, {multi_k ? mt_per_block : 1, multi_k ? p.bn : 1}));
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

  // This program's steps, one per (M block, N block, K block) in loop order;
  // (M block, N block) pairs are dealt round-robin to the program instances.
  struct Step {
    int64_t m0, bm, n0, bn, kb, bk;
  };
  std::vector<Step> steps;
  for (int64_t m0 = 0, pair = 0; m0 < M; m0 += p.bm)
    for (int64_t n0 = 0; n0 < N; n0 += p.bn, ++pair)
      if (pair % nc.num_programs() == nc.program_id())
        for (int64_t kb = 0; kb < K; kb += p.bk)
          steps.push_back({m0, std::min(p.bm, M - m0), n0, std::min(p.bn, N - n0), kb,
                           std::min(p.bk, K - kb)});

  // B block of step s -> b_blk[s % 2]. Issued one step ahead, so it never
  // queues behind the previous step's C stores on the DMA engines.
  auto load_b = [&](size_t s) {
    const Step& st = steps[s];
    for (int64_t ki = 0; ki * kGemmTileK < st.bk; ++ki) {
      const int64_t k0 = st.kb + ki * kGemmTileK, kt = std::min(kGemmTileK, K - k0);
      nc.dma(b_blk[s % 2].partitions(0, int(kt)).index(0, ki).slice(0, 0, st.bn),
             b.slice(0, k0, k0 + kt).slice(1, st.n0, st.n0 + st.bn));
    }
  };

  int64_t stage = 0, bank = 0, blocks = 0, rebuilds = 0;
  int64_t panel_m0 = -1, panel_k0 = -1, filled_to = 0;  // the panel holds A[m0, K [k0, filled_to))
  if (!steps.empty()) load_b(0);
  for (size_t s = 0; s < steps.size(); ++s) {
    const auto [m0, bm, n0, bn, kb, bk] = steps[s];
    if (panel_m0 != m0 || kb < panel_k0 || kb + bk > panel_k0 + p.kp) {
      panel_m0 = m0;  // (re)start the panel: once per M block when kp covers K
      panel_k0 = kb;
      filled_to = kb;
      panel = panels[size_t(++rebuilds % p.panels)];
    }
    if (filled_to < kb + bk) {
      build_panel(m0, bm, kb, bk, (kb - panel_k0) / kGemmTileK);
      filled_to = kb + bk;
    }
    if (s + 1 < steps.size()) load_b(s + 1);  // after this step's panel, which TensorE needs first
    if (kb == 0) ++blocks;
    const Tile& acc_blk = acc[size_t(blocks % p.accs)];
    const int64_t slot0 = (kb - panel_k0) / kGemmTileK;
    const Tile& bb = b_blk[s % 2];
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

}  // namespace ncore
