// The order in which the interpreter runs a Program's instructions: legal,
// and as hostile as a seed makes it. Each compute engine runs its own
// instructions in program order, and so does each DMA queue; an instruction
// runs once all its dependencies have.
//
// The adversary models the races real timing produces: each seed makes some
// queues "slow" — they run only when no fast queue can, and then the earliest
// such instruction first, as a lagging engine completes in order — while fast
// queues race ahead (the ready head latest in program order with probability
// 1/2, else a random one). A missing dependency P -> C with P slow and C fast
// then lets C run before P, so it shows up as a wrong result or a read of
// uninitialised memory rather than going unnoticed. seed % 4 picks which
// queues are slow: 0 none, 1 every DMA queue (catches loads a consumer does
// not wait for), 2 every compute engine (catches overwrites of buffers still
// being read), 3 a random half of all queues.
//
// A dependency may point forward (a wait on a later instruction of another
// queue); one that can never be met — a cycle, or a wait on an instruction
// queued behind the waiter — leaves nothing ready: a deadlock, reported as
// an Error naming the stuck instruction and what it waits for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include <ncore/isa/emit/program.h>
#include <ncore/isa/error.h>

namespace ncore::sim {

struct ScheduleStats {
  uint64_t reordered = 0;  // instructions run while an earlier one (program order) had not
  uint64_t max_ready = 0;  // most queue heads ready at once: the schedule's freedom
};

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, fully specified, so a
// seed gives the same schedule on every platform (std::uniform_int_distribution
// is implementation-defined).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t s_;
};

class Scheduler {
 public:
  // Tensor, Vector, Scalar and GpSimd each have one in-order stream; every
  // value of Instr::queue (a uint8_t) is its own in-order DMA queue.
  static constexpr int kComputeQueues = kNumEngines - 1;
  static constexpr int kDmaQueues = 256;
  static constexpr int kQueues = kComputeQueues + kDmaQueues;

  // `p` must have passed the interpreter's checks (deps in range).
  explicit Scheduler(const Program& p) : prog_(p) {
    const size_t n = p.instrs.size();
    queue_of_.resize(n);
    slot_of_.resize(n);
    initial_wait_.resize(n);
    std::vector<uint32_t> fanout(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      const Instr& in = p.instrs[i];
      const int q = in.engine == Engine::kDma ? kComputeQueues + in.queue : int(in.engine);
      queue_of_[i] = uint16_t(q);
      slot_of_[i] = uint32_t(queues_[size_t(q)].size());
      queues_[size_t(q)].push_back(uint32_t(i));
      initial_wait_[i] = uint32_t(p.deps(i).size());
      for (uint32_t d : p.deps(i)) ++fanout[d + 1];
    }
    // Reverse edges in CSR form: who waits for instruction d.
    for (size_t i = 0; i < n; ++i) fanout[i + 1] += fanout[i];
    waiter_begin_ = fanout;
    waiters_.resize(fanout[n]);
    for (size_t i = 0; i < n; ++i)
      for (uint32_t d : p.deps(i)) waiters_[fanout[d]++] = uint32_t(i);
  }

  // Calls exec(i) for every instruction in a legal order: adversarial, from
  // `seed`, or else the earliest ready instruction first (program order
  // whenever dependencies point backwards). Throws an Error on deadlock.
  template <class Exec>
  void run(bool adversarial, uint64_t seed, Exec&& exec) {
    const size_t n = prog_.instrs.size();
    SplitMix64 rng(seed);
    std::vector<char> slow(kQueues, 0);
    if (adversarial)
      for (int q = 0; q < kQueues; ++q) {
        const bool dma = q >= kComputeQueues;
        switch (seed % 4) {
          case 1: slow[size_t(q)] = dma; break;
          case 2: slow[size_t(q)] = !dma; break;
          case 3: slow[size_t(q)] = char(rng.next() & 1); break;
          default: break;
        }
      }
    std::vector<uint32_t> wait = initial_wait_;
    std::vector<uint32_t> head(kQueues, 0);
    std::vector<char> done(n, 0);
    std::vector<uint32_t> ready;
    order_.clear();
    stats_ = {};
    auto is_head = [&](uint32_t i) { return head[queue_of_[i]] == slot_of_[i]; };
    for (const auto& q : queues_)
      if (!q.empty() && wait[q[0]] == 0) ready.push_back(q[0]);
    size_t earliest = 0;  // smallest instruction not yet run
    while (order_.size() < n) {
      if (ready.empty()) deadlock(done, head);
      stats_.max_ready = std::max<uint64_t>(stats_.max_ready, ready.size());
      const size_t pick = choose(ready, adversarial, slow, rng);
      const uint32_t i = ready[pick];
      ready[pick] = ready.back();
      ready.pop_back();
      exec(size_t(i));
      order_.push_back(i);
      done[i] = 1;
      if (i != earliest) ++stats_.reordered;
      while (earliest < n && done[earliest]) ++earliest;
      for (uint32_t k = waiter_begin_[i]; k < waiter_begin_[i + 1]; ++k) {
        const uint32_t w = waiters_[k];
        if (--wait[w] == 0 && is_head(w)) ready.push_back(w);
      }
      const auto& q = queues_[queue_of_[i]];
      const uint32_t next = ++head[queue_of_[i]];
      if (next < q.size() && wait[q[next]] == 0) ready.push_back(q[next]);
    }
  }

  // Instruction indices in the order the last run executed them.
  std::span<const uint32_t> order() const { return order_; }
  const ScheduleStats& stats() const { return stats_; }

 private:
  size_t choose(const std::vector<uint32_t>& ready, bool adversarial,
                const std::vector<char>& slow, SplitMix64& rng) const {
    // The latest (or earliest) ready instruction among the fast (or slow) queues.
    auto extreme = [&](bool latest, bool of_slow) {
      size_t best = SIZE_MAX;
      for (size_t k = 0; k < ready.size(); ++k) {
        if (bool(slow[queue_of_[ready[k]]]) != of_slow) continue;
        if (best == SIZE_MAX || (latest ? ready[k] > ready[best] : ready[k] < ready[best]))
          best = k;
      }
      return best;
    };
    if (!adversarial) return extreme(false, false);
    const size_t fast_latest = extreme(true, false);
    if (fast_latest == SIZE_MAX) return extreme(false, true);  // only slow queues can run
    const uint64_t r = rng.next();
    if (r & 1) return fast_latest;
    size_t nth = size_t((r >> 1) % ready.size());  // a random fast one
    for (size_t k = 0;; k = (k + 1) % ready.size())
      if (!slow[queue_of_[ready[k]]] && nth-- == 0) return k;
  }

  // Nothing is ready but instructions remain: name the earliest stuck queue
  // head and the dependency it waits for.
  [[noreturn]] void deadlock(const std::vector<char>& done, const std::vector<uint32_t>& head) const {
    uint32_t stuck = UINT32_MAX;
    for (int q = 0; q < kQueues; ++q)
      if (head[size_t(q)] < queues_[size_t(q)].size())
        stuck = std::min(stuck, queues_[size_t(q)][head[size_t(q)]]);
    uint32_t dep = stuck;
    for (uint32_t d : prog_.deps(stuck))
      if (!done[d]) {
        dep = d;
        break;
      }
    const Instr& in = prog_.instrs[stuck];
    const Instr& on = prog_.instrs[dep];
    throw Error(cat("#", stuck, " ", opcode_name(in.op)), "",
                cat("deadlock: waits for #", dep, " ", opcode_name(on.op), " (",
                    prog_.where(on.loc), "), which cannot run before it; ",
                    prog_.instrs.size() - order_.size(), " instructions left"),
                prog_.where(in.loc));
  }

  const Program& prog_;
  std::vector<uint32_t> queues_[kQueues];
  std::vector<uint16_t> queue_of_;
  std::vector<uint32_t> slot_of_;
  std::vector<uint32_t> initial_wait_;
  std::vector<uint32_t> waiter_begin_, waiters_;
  std::vector<uint32_t> order_;
  ScheduleStats stats_;
};

}  // namespace ncore::sim
