// The core's DMA engines and its share of HBM bandwidth, as shared resources.
//
// Each DMA engine "can process one DMA transfer at a time" (arch guide), so an
// engine is a timeline of busy intervals. A DMA is one transfer per engine it
// touches; each is placed in the first idle gap of its engine, at or after the
// DMA's data-ready time, that can hold it. DMAs reach the engines through many
// queues, served round-robin (facts §2), so a DMA ready early is not held back
// by one earlier in program order that still waits on a dependency.
//
// HBM is a ledger of bytes per time bucket, each bucket holding at most the
// core's HBM bandwidth times its width. A DMA's transfers move their HBM bytes
// at their engines' pace while the ledger has room; where it has not — other
// DMAs placed before took it — all of this DMA's active transfers slow down by
// the same factor, which stretches them. (DMAs placed first keep their share:
// placement order, not time order, decides who is throttled.) When all the
// engines at full speed cannot reach the ceiling the ledger is skipped.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <ncore/isa/cost/params.h>

namespace ncore::cost {

class DmaFabric {
 public:
  static constexpr uint32_t kNobody = std::numeric_limits<uint32_t>::max();
  // Gaps shorter than this are dropped: no transfer fits one (a descriptor
  // alone costs tens of ns).
  static constexpr double kMinGapNs = 1.0;
  // Idle gaps an engine remembers, the latest ones: a transfer that could have
  // used an older gap goes into a later one instead. Only a DMA ready long
  // before the DMAs around it in program order can lose that way; the bound
  // keeps placement O(kMaxGaps) and allocation-free.
  static constexpr size_t kMaxGaps = 64;

  explicit DmaFabric(const CostParams& c)
      : engines_(size_t(std::clamp(c.dma_engines, 1, 16))),
        bucket_ns_(c.hbm_bucket_ns > 0 ? c.hbm_bucket_ns : 64.0),
        bucket_bytes_(c.hbm_bytes_per_ns * bucket_ns_),
        hbm_limited_(c.hbm_bytes_per_ns > 0 &&
                     c.dma_bytes_per_ns * double(engines_.size()) > c.hbm_bytes_per_ns) {}

  // One engine's share of a DMA: `ns` of engine time moving `hbm_bytes`.
  struct Transfer {
    int engine = 0;
    double ns = 0;
    double hbm_bytes = 0;
  };
  struct Placement {
    double first_start = 0;      // when the first transfer starts moving data
    double end = 0;              // when the last one finishes
    uint32_t blocker = kNobody;  // whose transfer the last one waited behind, if any
  };

  // Places one DMA's transfers, none before `ready`; `owner` is its instruction.
  Placement place(std::span<const Transfer> xfers, double ready, uint32_t owner) {
    slots_.clear();
    for (const Transfer& x : xfers) slots_.push_back(find(x, ready));
    stretch(xfers);
    Placement out{std::numeric_limits<double>::infinity(), ready, kNobody};
    for (size_t k = 0; k < xfers.size(); ++k) {
      Slot& s = slots_[k];
      commit(xfers[k].engine, s, owner);
      out.first_start = std::min(out.first_start, s.start);
      if (s.end > out.end) {
        out.end = s.end;
        out.blocker = s.start > ready ? s.before : kNobody;
      }
    }
    if (xfers.empty()) out.first_start = ready;
    return out;
  }

  double busy_ns(int e) const { return engines_[size_t(e)].busy_ns; }

 private:
  struct Gap {
    double start, end;
    uint32_t before;  // owner of the busy interval that ends where the gap starts
  };
  struct EngineState {
    std::vector<Gap> gaps;  // idle [start, end) before `tail`, ascending, disjoint
    double tail = 0;        // idle from here on
    uint32_t tail_before = kNobody;
    double busy_ns = 0;
  };
  // Where a transfer goes: interior gap `gap` (or the tail when gap < 0),
  // [start, end) once stretched.
  struct Slot {
    long gap = -1;
    double start = 0, end = 0;
    uint32_t before = kNobody;
  };

  Slot find(const Transfer& x, double ready) const {
    const EngineState& en = engines_[size_t(x.engine)];
    auto it = std::lower_bound(en.gaps.begin(), en.gaps.end(), ready,
                               [](const Gap& g, double t) { return g.end <= t; });
    for (; it != en.gaps.end(); ++it) {
      const double s = std::max(it->start, ready);
      if (s + x.ns <= it->end) return {long(it - en.gaps.begin()), s, s + x.ns, it->before};
    }
    const double s = std::max(en.tail, ready);
    return {-1, s, s + x.ns, en.tail_before};
  }

  // Slows the DMA's transfers where the HBM ledger is short of room: bucket by
  // bucket, the active transfers' demand at engine pace is scaled down to the
  // room left, all by the same factor.
  void stretch(std::span<const Transfer> xfers) {
    if (!hbm_limited_) return;
    left_.assign(xfers.size(), 0.0);
    double t = std::numeric_limits<double>::infinity();
    size_t active = 0;
    for (size_t k = 0; k < xfers.size(); ++k) {
      if (xfers[k].hbm_bytes <= 0 || xfers[k].ns <= 0) continue;
      left_[k] = xfers[k].hbm_bytes;
      t = std::min(t, slots_[k].start);
      ++active;
    }
    while (active > 0) {
      size_t j = size_t(t / bucket_ns_);
      if (double(j + 1) * bucket_ns_ <= t) ++j;  // t on a bucket edge, rounded down
      if (j >= used_.size()) used_.resize(j + 1 + used_.size() / 2, 0.0);
      const double bucket_end = double(j + 1) * bucket_ns_;
      // Demand in [t, bucket_end) of the transfers running then, and when the
      // next one starts (the step ends there, so that demand stays constant).
      double demand = 0, step_end = bucket_end;
      for (size_t k = 0; k < xfers.size(); ++k) {
        if (left_[k] <= 0) continue;
        if (slots_[k].start > t) {
          step_end = std::min(step_end, slots_[k].start);
          continue;
        }
        demand += xfers[k].hbm_bytes / xfers[k].ns;
      }
      const double dt = step_end - t;
      const double room = std::max(0.0, bucket_bytes_ - used_[j]) * (dt / (bucket_end - t));
      const double f = demand * dt <= room ? 1.0 : room / (demand * dt);  // 0..1
      // The earliest finish within the step at the scaled pace ends the step.
      double step = dt;
      for (size_t k = 0; k < xfers.size(); ++k) {
        if (left_[k] <= 0 || slots_[k].start > t || f <= 0) continue;
        step = std::min(step, left_[k] / (xfers[k].hbm_bytes / xfers[k].ns * f));
      }
      double moved = 0;
      for (size_t k = 0; k < xfers.size(); ++k) {
        if (left_[k] <= 0 || slots_[k].start > t) continue;
        const double m = std::min(left_[k], xfers[k].hbm_bytes / xfers[k].ns * f * step);
        left_[k] -= m;
        moved += m;
        if (left_[k] <= xfers[k].hbm_bytes * 1e-12) {
          left_[k] = 0;
          slots_[k].end = t + step;
          --active;
        }
      }
      used_[j] += moved;
      t += step;
    }
  }

  void commit(int e, Slot& s, uint32_t owner) {
    EngineState& en = engines_[size_t(e)];
    if (s.gap >= 0 && s.end > en.gaps[size_t(s.gap)].end) {
      // Stretched past its gap: it goes after the last busy interval instead.
      const double len = s.end - s.start;
      s.start = std::max(en.tail, s.start);
      s.end = s.start + len;
      s.before = en.tail_before;
      s.gap = -1;
    }
    en.busy_ns += s.end - s.start;
    if (s.gap < 0) {
      if (s.start - en.tail >= kMinGapNs) en.gaps.push_back(Gap{en.tail, s.start, en.tail_before});
      en.tail = s.end;
      en.tail_before = owner;
    } else {
      // Split the gap: [g.start, start) and [end, g.end) stay idle.
      const auto it = en.gaps.begin() + s.gap;
      const Gap g = *it;
      const bool left = s.start - g.start >= kMinGapNs, right = g.end - s.end >= kMinGapNs;
      if (left && right) {
        it->end = s.start;
        en.gaps.insert(it + 1, Gap{s.end, g.end, owner});
      } else if (left) {
        it->end = s.start;
      } else if (right) {
        *it = Gap{s.end, g.end, owner};
      } else {
        en.gaps.erase(it);
      }
    }
    if (en.gaps.size() > kMaxGaps)
      en.gaps.erase(en.gaps.begin(), en.gaps.begin() + std::ptrdiff_t(en.gaps.size() - kMaxGaps));
  }

  std::vector<EngineState> engines_;
  double bucket_ns_, bucket_bytes_;
  bool hbm_limited_;
  std::vector<double> used_;  // HBM bytes per bucket
  std::vector<Slot> slots_;   // scratch for place()
  std::vector<double> left_;  // scratch for stretch()
};

}  // namespace ncore::cost
