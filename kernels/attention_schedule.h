// Flash attention's schedule: which steps a program instance runs, in what
// order, and which of a step's P^T chunks the DMA queues transpose. Plain
// data, no instructions: kernels/attention.h issues a step's stages from it.
//
// A work item is one (batch, kv head, block of Q rows): the GQA group's query
// heads over up to plan.q_tiles_per_item Q tiles, all sharing each K/V block
// load. Items are dealt round-robin to the SPMD instances (program_id), Q
// blocks in snake order across (batch, kv head) groups. An item's steps are
// key block major (each block loaded once); a step is one (Q tile, key block)
// pair. A program's items' steps form one stream, so the pipeline runs on
// across items instead of draining at each; the per-item buffers (Q^T, o,
// the tile state, the output stage) have two slots, taken in turn.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ncore/kernels/attention_plan.h>

namespace ncore {

struct AttnQTile {  // one Q tile of a work item
  int64_t h = 0, q0 = 0;
  int qt = 0;  // rows; 0: past the end of Q
};

struct AttnStep {  // keys [k0, k0 + kt) of block kb for Q tile g of item it
  int64_t kb = 0, g = 0, k0 = 0, kt = 0;
  int64_t all = 0;  // keys [k0, k0 + all) every row sees; the rest (causal diagonal, < 256) masked
  bool first = false, last = false;  // g's first and last step
  bool diag() const { return all < kt; }
  int64_t it = 0;
  bool work = false;         // false: an empty schedule entry
  bool block_start = false;  // the item's first step of block kb
  int64_t nb_old = 0, nb_new = 0;  // the tile's nb columns this step reads and writes (set as it is issued)
};

struct AttnItem {
  int64_t item, b, hkv, qs;      // qs: the item's slot in the two-slot buffers
  std::vector<AttnQTile> tl;
  std::vector<char> seen;        // tiles with a step
  int64_t kv_base = 0, nkb = 0;  // its block 0's place in the K/V ring; its blocks
  bool kv_prefetched = false;    // block 0 loaded by the item before
};

// P^T chunks [c0, c1) of a step that the DMA queues transpose.
struct AttnDmaPt {
  int64_t c0 = 0, c1 = 0;
  bool paired = false;  // with the other step of its pair, in one instruction
};

class AttentionSchedule {
 public:
  AttentionSchedule(const AttentionShape& sh, const AttentionPlan& p, bool causal, int64_t program_id,
                    int64_t num_programs)
      : sh_(sh), p_(p), causal_(causal), qblocks_((p.q_tiles + p.q_tiles_per_item - 1) / p.q_tiles_per_item) {
    const int64_t G = p.tiles;
    for (int64_t item = program_id, kv_base = 0; item < p.items; item += num_programs) {
      const int64_t it = int64_t(items.size());
      AttnItem w{item, item / qblocks_ / sh.hkv, item / qblocks_ % sh.hkv, it % 2, q_tiles_of(item), {}, kv_base};
      std::vector<AttnStep> steps = steps_of(w.tl);
      w.seen.assign(size_t(G), 0);
      for (AttnStep& s : steps) s.first = !std::exchange(w.seen[size_t(s.g)], 1);
      std::vector<char> later(static_cast<size_t>(G));
      for (auto s = steps.rbegin(); s != steps.rend(); ++s) s->last = !std::exchange(later[size_t(s->g)], 1);
      w.nkb = steps.empty() ? 0 : steps.back().kb + 1;
      w.kv_prefetched = it > 0 && items.back().nkb > 0 && w.nkb > 0;
      kv_base += w.nkb;
      // This item's slots were the item before the last's: that item's last
      // step's finalize (end of the iteration of its stage 7) must come before
      // this item's first step reaches stage 2 (the first state write), so a
      // short item's successor waits behind empty entries.
      if (it >= 2)
        while (int64_t(sched.size()) < last_of[size_t(it - 2)] + kAttnStages - 2) sched.push_back({.it = it});
      if (steps.empty()) sched.push_back({.it = it});  // an entry to issue its output at
      for (size_t i = 0; i < steps.size(); ++i) {
        steps[i].it = it;
        steps[i].work = true;
        steps[i].block_start = i == 0 || steps[i - 1].kb != steps[i].kb;
        sched.push_back(steps[i]);
      }
      last_of.push_back(int64_t(sched.size()) - 1);
      items.push_back(std::move(w));
    }
  }

  std::vector<AttnItem> items;
  std::vector<AttnStep> sched;   // the entries, in issue order
  std::vector<int64_t> last_of;  // each item's last entry

  int64_t size() const { return int64_t(sched.size()); }
  const AttnItem& item_of(int64_t s) const { return items[size_t(sched[size_t(s)].it)]; }
  int qt_of(int64_t s) const { return item_of(s).tl[size_t(sched[size_t(s)].g)].qt; }
  int64_t kt_of(int64_t s) const { return sched[size_t(s)].kt; }
  // The K/V ring slot of block kb of item w.
  int64_t kv_slot(const AttnItem& w, int64_t kb) const { return (w.kv_base + kb) % kAttnKvRing; }

  // The chunks of step s the DMA queues transpose, in a step of whole
  // chunks: on the host all; on the device the last dma_pt_chunks, or where
  // entries 2j and 2j + 1 are both full blocks of full Q tiles, the last of
  // 2j and the first of 2j + 1, one contiguous run of the P and P^T rings
  // (even sizes) that one DMA moves: a DMA transpose pays its per-row
  // overhead once for both.
  AttnDmaPt dma_pt(int64_t s) const {
    if (p_.dma_pt_whole) return {0, kt_of(s) / kAttnChunkK, false};
    auto eligible = [&](int64_t e) {
      const AttnStep& x = sched[size_t(e)];
      return x.work && x.kt % kAttnChunkK == 0 && x.kt / kAttnChunkK > p_.dma_pt_chunks;
    };
    auto whole = [&](int64_t e) { return eligible(e) && kt_of(e) == p_.block_k && qt_of(e) == kAttnTileQ; };
    const int64_t nd = p_.dma_pt_chunks, c = kt_of(s) / kAttnChunkK, partner = s ^ 1;
    if (!nd || !eligible(s)) return {};
    const bool paired = partner < size() && whole(s) && whole(partner);
    return paired && s % 2 ? AttnDmaPt{0, nd, true} : AttnDmaPt{c - nd, c, paired};
  }

 private:
  std::vector<AttnQTile> q_tiles_of(int64_t item) const {
    const int64_t G = p_.tiles, group = sh_.group();
    std::vector<AttnQTile> tl(static_cast<size_t>(G));
    // Q blocks run in snake order across (batch, kv head) groups: causal
    // items grow with qb, and round-robin dealing would otherwise give the
    // same instance the same qb in every group (all the light or all the
    // heavy items with two instances and two blocks).
    const int64_t hkv = item / qblocks_ % sh_.hkv, grp = item / qblocks_;
    const int64_t qb = grp % 2 ? qblocks_ - 1 - item % qblocks_ : item % qblocks_;
    for (int64_t g = 0; g < G; ++g) {  // g = (Q tile of the block) x group + head of the group
      AttnQTile& x = tl[size_t(g)];
      x.h = hkv * group + g % group;
      x.q0 = (qb * p_.q_tiles_per_item + g / group) * kAttnTileQ;
      x.qt = x.q0 < sh_.sq ? int(std::min(kAttnTileQ, sh_.sq - x.q0)) : 0;
    }
    return tl;
  }

  // An item's steps, key block major so each block is loaded once. A tile's
  // keys in a block end at the block's end, Skv, or (causal) past the last
  // key its last row sees. Where the causal diagonal crosses them, the keys
  // every row sees (whole chunks) stay in PSUM and only the rest, under two
  // chunks, is copied and masked: one step, so the diagonal pays no second
  // step's fixed costs (alpha, the [P, 1] updates, o += pv).
  std::vector<AttnStep> steps_of(const std::vector<AttnQTile>& tl) const {
    const int64_t BK = p_.block_k, off = sh_.skv - sh_.sq;
    std::vector<AttnStep> steps;
    for (int64_t kb = 0; kb < p_.k_blocks; ++kb) {
      const int64_t k0 = kb * BK;
      const size_t before = steps.size();
      for (int64_t g = 0; g < p_.tiles; ++g) {
        const AttnQTile& x = tl[size_t(g)];
        const int64_t seen = causal_ ? x.q0 + x.qt + off : sh_.skv;  // keys [0, seen) are seen by some row
        const int64_t kt = std::min({BK, sh_.skv - k0, seen - k0});
        if (!x.qt || kt <= 0) continue;
        const bool every = !causal_ || k0 + kt - 1 <= x.q0 + off;  // every row sees every key
        const int64_t all =
            every ? kt : std::clamp<int64_t>(x.q0 + off + 1 - k0, 0, kt) / kAttnChunkK * kAttnChunkK;
        steps.push_back({kb, g, k0, kt, all});
      }
      if (steps.size() == before) break;  // visibility only shrinks with kb
    }
    return steps;
  }

  AttentionShape sh_;
  AttentionPlan p_;
  bool causal_;
  int64_t qblocks_;
};

}  // namespace ncore
