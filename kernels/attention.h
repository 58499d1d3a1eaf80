// Flash attention forward: O = softmax(Q K^T * scale + mask) V, optionally
// the log-sum-exp LSE = log(sum_j exp(scale * q.k_j)) over the visible keys.
//
// Q [B, Hq, Sq, D], K and V [B, Hkv, Skv, D] in HBM, D <= 128; grouped-query
// attention when Hkv < Hq (query head h reads kv head h / (Hq / Hkv)).
// Causal masking is bottom-right aligned, as FlashAttention's: query i sees
// keys j <= i + Skv - Sq, so a query that sees no key (Sq > Skv) gets O = 0
// and LSE = -inf.
//
// Tiling (NKI flash_fwd, nki-kernels-and-pain-points.md 1.2): 128-row Q tiles
// and key blocks of one or two 512-key sub-tiles (two where P^T is 16-bit in
// PSUM, so that the per-update work below is paid once per 1024 keys). One
// step = one (Q tile, key block) pair:
//   S[128q, kt]    = matmul(stationary Q^T[D, 128q], moving K^T[D, 512k])  per sub-tile, a PSUM bank each
//   m_new          = max(m, rowmax S)                                       online softmax
//   P[128q, kt]    = exp(scale S - scale m_new), rowsum fused in the exp
//   alpha          = exp(scale m - scale m_new)
//   P^T[128k, 128q] per 128-key chunk: TensorE transposes into PSUM, copied to
//                  SBUF; on trn2 half a full step's chunks by a DMA transpose
//                  SBUF -> SBUF instead (the DMA queues have the time), two
//                  steps' in one instruction where the rings allow
//   pv[128q, D]    = sum over chunks matmul(stationary P^T, moving V[128k, D])
//   o = o alpha + pv,  l = l alpha + rowsum                                 fp32 in SBUF
// and at the end of a Q tile O = o * (1 / l), LSE = scale m + log l. P is bf16
// for bf16 inputs (the PV matmul's input dtype), fp32 for fp32 inputs.
// The running max is kept as nb = -scale m, the bias of both exps.
//
// Engines: DMA loads Q^T and K^T transposed (dma_transpose where the target
// has it, else natural loads + TensorE transposes) and V naturally, and on
// trn2 transposes part of P (on the CPU path all of it: the host plan);
// TensorE runs QK^T, the other P transposes and PV; VectorE the row max,
// the running max's update (a min: GpSimd only adds and multiplies) and
// o += pv; ScalarE the exps (P with its row sum;
// 4 steps' alphas at once), 1 / l and log l, and the P^T evacuation from
// PSUM; GpSimd (which cannot read PSUM) the causal mask (affine_select), the
// other [P, 1] state updates, o *= alpha and O = o * (1 / l).
// docs/attention.md has the per-step engine budget.
//
// Causal: key blocks wholly above the diagonal are skipped, and a step stops
// at the last key its Q tile sees (kt < the block); in a step the diagonal
// crosses, the keys past its whole chunks every row sees are copied to SBUF
// and masked to -inf there. -inf rather than a large
// finite fill: exp(-inf) is exactly 0 for every scale and score magnitude,
// while a finite fill F leaks exp(scale (F - m)) > 0 once |m| nears |F| and
// overflows when scale |F| does. The one hazard of -inf, a row with no
// visible key yet (m = -inf, so exp(-inf + inf) = NaN), cannot arise: nb
// starts at FLT_MAX and is updated as min(nb, -scale rowmax), so it stays
// finite and exp(-inf + nb) = 0.
//
// Schedule (kernels/attention_schedule.h: which steps, in what order, which
// P^T chunks go by DMA): a work item is one (batch, kv head, block of Q
// rows): all the group's query heads over several Q tiles, so each K/V block
// load serves every Q tile of the item. Items are dealt round-robin to the
// SPMD program instances. A program's items' steps run as one eight-stage software
// pipeline (kAttnStages in attention_plan.h) that does not drain between
// items (on the CPU path, which runs one instruction at a time, each step's
// stages in order instead: the host plan); K/V blocks are prefetched one
// ahead and the next item's Q^T one item ahead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <ncore/isa/core.h>
#include <ncore/kernels/attention_plan.h>
#include <ncore/kernels/attention_schedule.h>

namespace ncore {

class CpuBackend;  // reference/cpu_backend.h: the CPU path takes the host plan

template <NeuronCore Nc>
void flash_attention(Nc& nc, const HbmTensor& o, const HbmTensor& q, const HbmTensor& k,
                     const HbmTensor& v, const AttentionOptions& opt = {}, Loc loc = Loc::current()) {
  const Target& t = nc.target();
  const AttentionShape sh = attention_shape(o, q, k, v, opt, loc);
  constexpr bool kOnHost = std::is_same_v<Nc, Core<CpuBackend>>;
  const AttentionPlan p = plan_attention(t, sh, q.dtype, o.dtype,
                                         kOnHost ? AttentionPlace::kHost : AttentionPlace::kDevice);
  const float scale = opt.scale.value_or(float(1.0 / std::sqrt(double(sh.d))));
  const float kInf = std::numeric_limits<float>::infinity();
  const float kNbStart = std::numeric_limits<float>::max();  // nb before any key: finite (see top)
  const int64_t G = p.tiles, group = sh.group(), off = sh.skv - sh.sq, BK = p.block_k;
  const int64_t chunks = BK / kAttnChunkK;  // per block
  const int d = int(sh.d);
  const DType in = q.dtype, f32 = DType::kF32;

  auto qT = nc.sbuf(in, 128, {2, G, kAttnTileQ});                  // [D, item, tile, 128q] Q^T
  auto kT = nc.sbuf(in, 128, {kAttnKvRing, BK});                   // [D, slot, BK keys] K^T
  auto vv = nc.sbuf(in, 128, {kAttnKvRing, chunks, sh.d});         // [128k, slot, chunk, D] V
  auto pp = nc.sbuf(p.p_dtype, 128, {kAttnPRing, BK});             // [128q, slot, BK keys] P
  auto pts = nc.sbuf(p.p_dtype, 128, {kAttnPtRing, chunks, kAttnTileQ});  // [128k, slot, chunk, 128q] P^T
  // [128q, slot, (-, max of the unmasked keys, masked keys)]: the max column
  // right before the diagonal's masked keys, so one reduce takes both.
  auto sm = nc.sbuf(f32, 128, {kAttnMaskRing, kAttnColSlot + kAttnMaskKeys});
  auto acc = nc.sbuf(f32, 128, {2, G, sh.d});                      // [128q, item, tile, D] o
  auto st = nc.sbuf(f32, 128, {2, G, kAttnColSlot});               // [128q, item, tile, (l, nb, nb, -)]
  auto cols = nc.sbuf(f32, 128, {kAttnColRing, 3 * kAttnColSlot}); // [128q, slot, (max, -, sum, -, masked sum, -)]
  auto alph = nc.sbuf(f32, 128, {kAttnAlphaRing, kAttnColSlot});   // [128q, slot, (alpha of 4 steps, -)]
  auto fin = nc.sbuf(f32, 128, {2});                               // [128q, (1 / l, log l)]
  auto ost = nc.sbuf(o.dtype, 128, {2, G, sh.d});                  // [128q, item, tile, D] O
  auto lst = nc.sbuf(f32, 128, {2, G});                            // [128q, item, tile] LSE
  std::optional<decltype(nc.sbuf(in, 1, {1}))> nat;                // [128, chunk, D] rows to transpose
  if (p.pe_transpose) nat.emplace(nc.sbuf(in, 128, {kAttnTileK / kAttnChunkK, sh.d}));
  auto sp = nc.psum(f32, 128, {kAttnScoreSlots, BK});              // [128q, slot, BK keys] S, a bank per sub-tile
  auto ptp = nc.psum(p.pt_psum_dtype, 128, {p.pt_psum_slots, chunks, kAttnTileQ});  // P^T
  auto pvp = nc.psum(f32, 128, {kAttnPvRing, sh.d});               // [128q, slot, D] pv
  std::optional<decltype(nc.psum(f32, 1, {1}))> tp;                // [D, 512k] Q/K transposes
  if (p.pe_transpose) tp.emplace(nc.psum(f32, 128, {kAttnTileK}));

  // dst[D, n] = rows [r0, r0 + n) of the [S, D] matrix m, transposed.
  auto load_transposed = [&](const Tile& dst, const HbmTensor& m, int64_t r0, int64_t n) {
    if (!p.pe_transpose) return nc.dma_transpose(dst, m.slice(0, r0, r0 + n));
    for (int64_t s0 = 0; s0 < n; s0 += kAttnTileK) {  // a PSUM bank of transposes at a time
      const int64_t sn = std::min(kAttnTileK, n - s0);
      for (int64_t c0 = 0; c0 < sn; c0 += kAttnChunkK) {
        const int ck = int(std::min(kAttnChunkK, sn - c0));
        const Tile nrow = nat->partitions(0, ck).index(0, c0 / kAttnChunkK);  // [ck, D]
        nc.dma(nrow, m.slice(0, r0 + s0 + c0, r0 + s0 + c0 + ck));
        nc.transpose(tp->partitions(0, d).slice(0, c0, c0 + ck), nrow);
      }
      nc.tensor_copy(dst.slice(0, s0, s0 + sn), tp->partitions(0, d).slice(0, 0, sn));
    }
  };

  AttentionSchedule sc(sh, p, opt.causal, nc.program_id(), nc.num_programs());
  std::vector<AttnStep>& sched = sc.sched;  // nb_old / nb_new are set as stage_exp issues a step
  const std::vector<AttnItem>& items = sc.items;
  const int64_t n = sc.size();

  // V [128k, chunk, D] of the block whose K^T was loaded last, a chunk per
  // DMA, issued a few at a time (load_v) so they do not hold up the P^T DMAs in a burst.
  struct VLoad {
    HbmTensor vh;  // [Skv, D]
    int64_t k0 = 0, kt = 0, slot = 0, c0 = 0;  // keys [k0, k0 + kt), the next at k0 + c0
  };
  std::optional<VLoad> vload;
  auto load_v = [&](int64_t n) {  // the next n chunks
    for (; vload && n > 0 && vload->c0 < vload->kt; --n, vload->c0 += kAttnChunkK) {
      const int ck = int(std::min(kAttnChunkK, vload->kt - vload->c0));
      nc.dma(vv.partitions(0, ck).index(0, vload->slot).index(0, vload->c0 / kAttnChunkK),
             vload->vh.slice(0, vload->k0 + vload->c0, vload->k0 + vload->c0 + ck));
    }
  };
  // K^T [D, kt] of block kb of item w into ring slot `slot`; its V after the previous block's.
  auto load_kv = [&](const AttnItem& w, int64_t kb, int64_t slot) {
    const HbmTensor kh = k.index(0, w.b).index(0, w.hkv);  // [Skv, D]
    const int64_t k0 = kb * BK, kt = std::min(BK, sh.skv - k0);
    load_transposed(kT.partitions(0, d).index(0, slot).slice(0, 0, kt), kh, k0, kt);
    load_v(chunks);
    vload = VLoad{v.index(0, w.b).index(0, w.hkv), k0, kt, slot, 0};
  };

  std::vector<int> par(static_cast<size_t>(2 * G));  // which nb column of a tile (by slot) is current
  std::vector<char> q_loaded(items.size() * size_t(G));  // Q^T tiles of each item issued
  int64_t pt_dealt = 0, pt_vector = 0;  // P^T chunks so far, and those VectorE evacuated
  auto item_of = [&](int64_t s) -> const AttnItem& { return sc.item_of(s); };
  auto kv_slot = [&](const AttnItem& w, int64_t kb) { return sc.kv_slot(w, kb); };
  // Block kb + 1 while kb runs; at the last, the next item's first.
  auto prefetch_kv = [&](int64_t it, int64_t kb) {
    const AttnItem& w = items[size_t(it)];
    if (kb + 1 < w.nkb) load_kv(w, kb + 1, kv_slot(w, kb + 1));
    else if (size_t(it + 1) < items.size() && items[size_t(it + 1)].kv_prefetched)
      load_kv(items[size_t(it + 1)], 0, kv_slot(w, kb + 1));
  };
  auto state = [&](const AttnItem& w, int64_t g, int qt) {  // [qt, (l, nb, nb)]
    return st.partitions(0, qt).index(0, w.qs).index(0, g);
  };
  auto o_acc = [&](const AttnItem& w, int64_t g, int qt) {  // [qt, D]
    return acc.partitions(0, qt).index(0, w.qs).index(0, g);
  };
  auto col = [&](const Tile& t, int64_t i) { return t.slice(0, i, i + 1); };  // [qt, 1]
  auto qt_of = [&](int64_t s) { return sc.qt_of(s); };
  auto kt_of = [&](int64_t s) { return sc.kt_of(s); };
  auto dma_pt = [&](int64_t s) { return sc.dma_pt(s); };

  // Q^T of tile g of item it, once.
  auto load_q = [&](int64_t it, int64_t g) {
    const AttnItem& w = items[size_t(it)];
    const AttnQTile& y = w.tl[size_t(g)];
    if (y.qt && !std::exchange(q_loaded[size_t(it * G + g)], 1))
      load_transposed(qT.partitions(0, d).index(0, w.qs).index(0, g).slice(0, 0, y.qt),
                      q.index(0, w.b).index(0, y.h), y.q0, y.qt);
  };
  // Stage 0: S = Q^T' K^T a sub-tile at a time. Loads go out a few at a
  // time, not in bursts that would hold up the P^T DMAs: a block's first
  // step issues what is left of the block's V and the next block's K^T, the
  // others a chunk of the next block's V; in block 0, the next item's Q^T
  // tile by tile.
  auto stage_qk = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    const AttnItem& w = item_of(s);
    if (x.block_start) {
      load_v(chunks);
      prefetch_kv(x.it, x.kb);
    } else {
      load_v(1);
    }
    if (x.kb == 0 && size_t(x.it + 1) < items.size()) load_q(x.it + 1, x.g);
    const Tile S = sp.partitions(0, qt_of(s)).index(0, s % kAttnScoreSlots);  // [qt, BK] f32
    const Tile kts = kT.partitions(0, d).index(0, kv_slot(w, x.kb)).slice(0, x.k0 - x.kb * BK, BK);
    const Tile qts = qT.partitions(0, d).index(0, w.qs).index(0, x.g).slice(0, 0, qt_of(s));
    for (int64_t k0 = 0; k0 < x.kt; k0 += kAttnTileK) {
      const int64_t k1 = std::min(x.kt, k0 + kAttnTileK);
      nc.matmul(S.slice(0, k0, k1), qts, kts.slice(0, k0, k1), false);
    }
  };
  // The scores the softmax reads: the keys every row sees in PSUM [qt, all],
  // the diagonal's masked copy in SBUF [qt, kt - all].
  auto scores = [&](int64_t s) {
    return sp.partitions(0, qt_of(s)).index(0, s % kAttnScoreSlots).slice(0, 0, sched[size_t(s)].all);
  };
  auto mask_slot = [&](int64_t s) {  // [qt, kAttnColSlot + kAttnMaskKeys]
    return sm.partitions(0, qt_of(s)).index(0, s % kAttnMaskRing);
  };
  auto masked = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    return mask_slot(s).slice(0, kAttnColSlot, kAttnColSlot + x.kt - x.all);
  };
  auto cols_of = [&](int64_t s) {  // [qt, 3 x kAttnColSlot]: rowmax, rowsum, masked rowsum at 0, 16, 32
    return cols.partitions(0, qt_of(s)).index(0, s % kAttnColRing);
  };
  enum : int64_t { kRowmax = 0, kRowsum = kAttnColSlot, kMaskedSum = 2 * kAttnColSlot };
  // [128q, alpha_group]: the alphas of entries [4j, 4j + 4) on the device,
  // one entry's on the host (ScalarE exponentiates nb_new - nb in place, in
  // one instruction).
  auto alpha_group = [&](int64_t s) {
    return alph.index(0, s / p.alpha_group % kAttnAlphaRing).slice(0, 0, p.alpha_group);
  };
  auto alpha_of = [&](int64_t s) {  // [qt, 1]
    return col(alpha_group(s).partitions(0, qt_of(s)), s % p.alpha_group);
  };
  // Stage 1, first in its iteration: the diagonal's masked keys to SBUF.
  // Were it behind this iteration's evacuations and exp on ScalarE, the
  // select and the rowmax would wait for them (VectorE idle).
  auto stage_mask_copy = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    if (x.diag())
      nc.tensor_copy(masked(s), sp.partitions(0, qt_of(s)).index(0, s % kAttnScoreSlots).slice(0, x.all, x.kt),
                     Engine::kScalar);
  };
  // Stage 1: the mask on the diagonal, rowmax. With both parts, the unmasked
  // keys' max lands in the column before the masked ones and one more reduce
  // takes both.
  auto stage_max = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    const AttnQTile& y = item_of(s).tl[size_t(x.g)];
    const Tile rowmax = col(cols_of(s), kRowmax);
    if (!x.diag()) return nc.tensor_reduce(rowmax, AluOp::kMax, scores(s));
    // key k0 + all + j is visible to row q0 + p iff (q0 + off - k0 - all) + p - j >= 0
    nc.affine_select(masked(s), masked(s), Affine{int32_t(y.q0 + off - x.k0 - x.all), 1, {-1}},
                     AluOp::kIsGe, -kInf);
    if (x.all == 0) return nc.tensor_reduce(rowmax, AluOp::kMax, masked(s));
    nc.tensor_reduce(col(mask_slot(s), kAttnColSlot - 1), AluOp::kMax, scores(s));
    nc.tensor_reduce(rowmax, AluOp::kMax, mask_slot(s).slice(0, kAttnColSlot - 1, kAttnColSlot + x.kt - x.all));
  };
  // Stage 2: nb_new = min(-scale rowmax, nb), the running max as the exps'
  // bias; P = exp(scale S + nb_new) with its row sum; nb_new - nb into the
  // alpha group (stage_alpha exponentiates it); the DMA queues start on
  // their P^T chunks (a pair's at its second step), at least three
  // iterations ahead of the PV that reads them (a DMA's ~1.3 us trigger
  // latency).
  auto stage_exp = [&](int64_t s) {
    AttnStep& x = sched[size_t(s)];
    const AttnItem& w = item_of(s);
    const AttnQTile& y = w.tl[size_t(x.g)];
    const Tile stg = state(w, x.g, y.qt), c = cols_of(s);
    int& pr = par[size_t(w.qs * G + x.g)];
    x.nb_old = 1 + pr;
    x.nb_new = 2 - pr;
    pr ^= 1;
    const Tile nb = col(stg, x.nb_old), nb_new = col(stg, x.nb_new);
    nc.tensor_scalar(nb_new, col(c, kRowmax), AluOp::kMultiply, -scale, AluOp::kMin,
                     x.first ? Scalar(kNbStart) : Scalar(nb));  // VectorE: GpSimd has no min
    const Tile P = pp.partitions(0, y.qt).index(0, s % kAttnPRing);  // [qt, BK]
    // The unmasked keys from PSUM, then the masked ones from SBUF; the first
    // exp's row sum goes to l at a tile's first step, a second one to its own
    // column (stage_pv adds it).
    const Tile sum = x.first ? col(stg, 0) : col(c, kRowsum);
    if (x.all > 0)
      nc.activation(P.slice(0, 0, x.all), ActFunc::kExp, scores(s), {.scale = scale, .bias = nb_new, .accum = sum});
    if (x.diag())
      nc.activation(P.slice(0, x.all, x.kt), ActFunc::kExp, masked(s),
                    {.scale = scale, .bias = nb_new, .accum = x.all > 0 ? col(c, kMaskedSum) : sum});
    if (!x.first)
      nc.tensor_scalar(alpha_of(s), nb, AluOp::kMultiply, -1.0f, AluOp::kAdd, nb_new, false, false,
                       Engine::kGpSimd);  // nb_new - nb: GpSimd adds and multiplies only (-nb is exact)
    const AttnDmaPt dm = dma_pt(s);
    if (dm.paired && s % 2) {  // [128q, 2 nd x 128k] -> [128k, 2 nd x 128q] across the slots of s - 1, s
      const int64_t nd = p.dma_pt_chunks, c0 = (s - 1) % kAttnPtRing * chunks + chunks - nd;
      const int64_t k0 = (s - 1) % kAttnPRing * BK + BK - nd * kAttnChunkK;
      nc.dma_transpose(pts.reshape({kAttnPtRing * chunks, kAttnTileQ}).slice(0, c0, c0 + 2 * nd),
                       pp.reshape({kAttnPRing * BK}).slice(0, k0, k0 + 2 * nd * kAttnChunkK)
                           .reshape({2 * nd, kAttnChunkK}));
    } else if (dm.c1 > dm.c0 && !dm.paired) {  // [qt, nd x 128k] -> [128k, nd x qt]
      nc.dma_transpose(pts.index(0, s % kAttnPtRing).slice(0, dm.c0, dm.c1).slice(1, 0, y.qt),
                       P.slice(0, dm.c0 * kAttnChunkK, dm.c1 * kAttnChunkK).reshape({dm.c1 - dm.c0, kAttnChunkK}));
    }
  };
  // Stage 2, after the last entry of an alpha group: alpha = exp(nb_new - nb)
  // of its (up to) 4 steps in one ScalarE instruction (a [P, 1] exp costs
  // more than a 128-key chunk's, all fixed cost: paid once per 4 steps). Its
  // first step reads the alphas in stage 6, an iteration later.
  auto stage_alpha = [&](int64_t s) {
    for (int64_t e = s / p.alpha_group * p.alpha_group; e <= s; ++e)
      if (sched[size_t(e)].work && !sched[size_t(e)].first) {
        nc.activation(alpha_group(s), ActFunc::kExp, alpha_group(s));
        return;
      }
  };
  // Stage 3: P^T per 128-key chunk into PSUM (those the DMA does not).
  auto stage_transpose = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    const int qt = qt_of(s);
    const Tile P = pp.partitions(0, qt).index(0, s % kAttnPRing);  // [qt, BK]
    const Tile ptq = ptp.index(0, s % p.pt_psum_slots);             // [128k, chunk, 128q]
    const AttnDmaPt dm = dma_pt(s);
    for (int64_t c0 = 0; c0 < x.kt; c0 += kAttnChunkK) {
      const int ck = int(std::min(kAttnChunkK, x.kt - c0));
      if (c0 / kAttnChunkK >= dm.c0 && c0 / kAttnChunkK < dm.c1) continue;
      nc.transpose(ptq.partitions(0, ck).index(0, c0 / kAttnChunkK).slice(0, 0, qt), P.slice(0, c0, c0 + ck));
    }
  };
  // Stage 4: P^T from PSUM to SBUF, VectorE's share of the chunks first, the rest on ScalarE.
  auto stage_evacuate = [&](int64_t s) {
    const int qt = qt_of(s);
    const AttnDmaPt dm = dma_pt(s);
    // Whole chunks [lo, hi) in PSUM (the DMA's are at one end), then a partial one.
    const int64_t full = kt_of(s) / kAttnChunkK, rem = kt_of(s) % kAttnChunkK;
    const int64_t lo = dm.c0 == 0 ? dm.c1 : 0, hi = dm.c0 > 0 ? dm.c0 : full, n = hi - lo + (rem > 0);
    const Tile ptq = ptp.index(0, s % p.pt_psum_slots), pt = pts.index(0, s % kAttnPtRing);
    const int64_t nv = (pt_dealt + n) * kAttnPtVectorShareNum / kAttnPtVectorShareDen - pt_vector;
    pt_dealt += n;
    pt_vector += nv;
    auto copy = [&](int64_t c0, int64_t c1, Engine e) {  // full chunks [c0, c1)
      if (c0 < c1) nc.tensor_copy(pt.slice(0, c0, c1).slice(1, 0, qt), ptq.slice(0, c0, c1).slice(1, 0, qt), e);
    };
    const int64_t mid = lo + std::min(hi - lo, nv);
    copy(lo, mid, Engine::kVector);
    copy(mid, hi, Engine::kScalar);
    if (rem)
      nc.tensor_copy(pt.partitions(0, int(rem)).index(0, full).slice(0, 0, qt),
                     ptq.partitions(0, int(rem)).index(0, full).slice(0, 0, qt),
                     nv > full ? Engine::kVector : Engine::kScalar);
  };
  // Stage 6: pv = sum over chunks of P^T' V, accumulated in PSUM; l = l alpha + rowsum, o *= alpha.
  auto stage_pv = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    const AttnItem& w = item_of(s);
    const int qt = qt_of(s);
    const Tile pt = pts.index(0, s % kAttnPtRing);
    const Tile vs = vv.index(0, kv_slot(w, x.kb)).slice(0, (x.k0 - x.kb * BK) / kAttnChunkK, chunks);
    for (int64_t c0 = 0; c0 < x.kt; c0 += kAttnChunkK) {
      const int ck = int(std::min(kAttnChunkK, x.kt - c0));
      nc.matmul(pvp.partitions(0, qt).index(0, s % kAttnPvRing),  // [qt, D] f32
                pt.partitions(0, ck).index(0, c0 / kAttnChunkK).slice(0, 0, qt),
                vs.partitions(0, ck).index(0, c0 / kAttnChunkK), c0 > 0);
    }
    const Tile l = col(state(w, x.g, qt), 0);
    if (!x.first) {
      const Tile ot = o_acc(w, x.g, qt), alpha = alpha_of(s);
      nc.tensor_scalar(l, l, AluOp::kMultiply, alpha, AluOp::kAdd, col(cols_of(s), kRowsum), false, false,
                       Engine::kGpSimd);
      nc.tensor_scalar(ot, ot, AluOp::kMultiply, alpha, AluOp::kBypass, 0.0f, false, false, Engine::kGpSimd);
    }
    if (x.diag() && x.all > 0)  // the masked keys' row sum
      nc.tensor_tensor(l, l, col(cols_of(s), kMaskedSum), AluOp::kAdd, Engine::kGpSimd);
  };
  // O = o * (1 / l) and LSE = log l - nb of Q tile g into the output stage:
  // the [qt, D] product on GpSimd (VectorE and ScalarE are the busy engines;
  // GpSimd adds and multiplies only, so the reciprocal is ScalarE's).
  auto finalize = [&](const AttnItem& w, const AttnStep& x) {
    const AttnQTile& y = w.tl[size_t(x.g)];
    const Tile stg = state(w, x.g, y.qt), l = col(stg, 0), nb = col(stg, x.nb_new);
    const Tile out = ost.partitions(0, y.qt).index(0, w.qs).index(0, x.g);         // [qt, D]
    const Tile lse = lst.partitions(0, y.qt).index(0, w.qs).slice(0, x.g, x.g + 1);  // [qt, 1]
    const Tile rl = fin.partitions(0, y.qt).slice(0, 0, 1), logl = fin.partitions(0, y.qt).slice(0, 1, 2);
    nc.activation(rl, ActFunc::kReciprocal, l);
    nc.tensor_scalar(out, o_acc(w, x.g, y.qt), AluOp::kMultiply, rl, AluOp::kBypass, 0.0f, false, false,
                     Engine::kGpSimd);
    if (opt.lse) {
      nc.activation(logl, ActFunc::kLog, l);
      nc.tensor_scalar(lse, nb, AluOp::kMultiply, -1.0f, AluOp::kAdd, logl, false, false,
                       Engine::kGpSimd);  // log l - nb
    }
    if (opt.causal && y.q0 + off < 0) {  // rows q0 + p + off < 0 see no key: 0 and -inf
      const Affine sees{int32_t(y.q0 + off), 1, {0}};
      nc.affine_select(out, out, sees, AluOp::kIsGe, 0.0f);
      if (opt.lse) nc.affine_select(lse, lse, sees, AluOp::kIsGe, -kInf);
    }
  };
  // Stage 7: o += pv (o = pv at the tile's first step).
  auto stage_update = [&](int64_t s) {
    const AttnStep& x = sched[size_t(s)];
    const int qt = qt_of(s);
    const Tile ot = o_acc(item_of(s), x.g, qt), pv = pvp.partitions(0, qt).index(0, s % kAttnPvRing);
    if (x.first) nc.tensor_copy(ot, pv);
    else nc.tensor_tensor(ot, ot, pv, AluOp::kAdd);
  };
  // An item's start (at its first entry's stage 0): its Q^T tiles the item
  // before did not load, and its first K/V block unless that item prefetched it.
  auto start_item = [&](const AttnItem& w, int64_t it) {
    for (int64_t g = 0; g < G; ++g) load_q(it, g);
    if (w.nkb > 0 && !w.kv_prefetched) load_kv(w, 0, kv_slot(w, 0));
  };
  // O and LSE of the group's heads on the Q tile of g0, one DMA each.
  auto store = [&](const AttnItem& w, int64_t g0) {
    const AttnQTile& y = w.tl[size_t(g0)];
    const int64_t h0 = w.hkv * group;
    nc.dma(o.index(0, w.b).slice(0, h0, h0 + group).slice(1, y.q0, y.q0 + y.qt).transpose(0, 1),
           ost.partitions(0, y.qt).index(0, w.qs).slice(0, g0, g0 + group));  // [qt, group, D]
    if (opt.lse)
      nc.dma(opt.lse->index(0, w.b).slice(0, h0, h0 + group).slice(1, y.q0, y.q0 + y.qt).transpose(0, 1),
             lst.partitions(0, y.qt).index(0, w.qs).slice(0, g0, g0 + group));  // [qt, group]
  };
  // An item's end (after its last entry's stage 7): Q tiles no key reaches
  // are 0 / -inf, stored here (the others after their last head's finalize).
  auto end_item = [&](const AttnItem& w) {
    for (int64_t g0 = 0; g0 < G; g0 += group) {
      if (!w.tl[size_t(g0)].qt || w.seen[size_t(g0)]) continue;  // a Q tile's heads see the same keys
      for (int64_t g = g0; g < g0 + group; ++g) {
        const int qt = w.tl[size_t(g)].qt;
        nc.memset(ost.partitions(0, qt).index(0, w.qs).index(0, g), 0.0f);
        if (opt.lse) nc.memset(lst.partitions(0, qt).index(0, w.qs).slice(0, g, g + 1), -kInf);
      }
      store(w, g0);
    }
  };

  // Iteration i issues stage k of entry i - k, later stages first (but the
  // mask copy and finalize): within an iteration a stage then reads what an
  // earlier step's stage wrote before a later step's overwrites it (the nb
  // ping-pong of a one-tile item).
  // An alpha group's exp reads all its rows and columns, also those no step
  // of the group wrote (first steps, short Q tiles): they must hold a value.
  nc.memset(alph, 0.0f, Engine::kGpSimd);
  // The host plan: each entry's stages in order, then its item's end.
  for (int64_t s = 0; s < n && !p.pipelined; ++s) {
    const AttnStep& x = sched[size_t(s)];
    if (s == 0 || x.it != sched[size_t(s - 1)].it) start_item(items[size_t(x.it)], x.it);
    if (x.work) {
      stage_qk(s);
      stage_mask_copy(s);
      stage_max(s);
      stage_exp(s);
      stage_alpha(s);
      stage_transpose(s);
      stage_evacuate(s);
      stage_pv(s);
      stage_update(s);
      if (x.last) {
        finalize(item_of(s), x);
        if (x.g % group == group - 1) store(item_of(s), x.g - group + 1);
      }
    }
    if (sc.last_of[size_t(x.it)] == s) end_item(items[size_t(x.it)]);
  }
  for (int64_t i = 0; i < n + kAttnStages - 1 && p.pipelined; ++i) {
    auto at = [&](int64_t k) { return i - k >= 0 && i - k < n && sched[size_t(i - k)].work; };
    if (at(1)) stage_mask_copy(i - 1);
    if (at(7)) stage_update(i - 7);
    if (at(6)) stage_pv(i - 6);
    if (at(4)) stage_evacuate(i - 4);
    if (at(3)) stage_transpose(i - 3);
    if (at(2)) stage_exp(i - 2);
    if (i - 2 >= 0 && i - 2 < n && ((i - 2) % p.alpha_group == p.alpha_group - 1 || i - 2 == n - 1))
      stage_alpha(i - 2);
    if (at(1)) stage_max(i - 1);
    if (i < n && (i == 0 || sched[size_t(i)].it != sched[size_t(i - 1)].it))
      start_item(items[size_t(sched[size_t(i)].it)], sched[size_t(i)].it);
    if (at(0)) stage_qk(i);
    // The step's finalize and its item's end, last in the iteration: GpSimd
    // then waits for this iteration's o += pv behind its own earlier stages.
    if (at(7) && sched[size_t(i - 7)].last) {
      const AttnStep& x = sched[size_t(i - 7)];
      finalize(item_of(i - 7), x);
      // Its Q tile's output as soon as its heads are done (a block orders
      // them by head), not all at the item's end: the DMA queues see one
      // store at a time between the P transposes.
      if (x.g % group == group - 1) store(item_of(i - 7), x.g - group + 1);
    }
    if (i - 7 >= 0 && i - 7 < n) {
      const int64_t it = sched[size_t(i - 7)].it;
      if (sc.last_of[size_t(it)] == i - 7) end_item(items[size_t(it)]);
    }
  }
}

}  // namespace ncore
