// Dependency inference: which earlier instructions an instruction must wait
// for, as the Neuron compiler's semaphores enforce. An instruction depends on
//   RAW  the last writer of memory it reads,
//   WAW  the last writer of memory it writes,
//   WAR  the readers, since that last write, of memory it writes,
// where "memory" is tracked conservatively (a false dependency costs a little
// overlap; a missing one is a race, so there are none):
//   SBUF/PSUM  a shadow table of 64 B x 32-partition cells. An access covers
//              the cells of its partition range [p0, p0 + np) and of its byte
//              bounding range [addr + min_offset * esz, addr + (max_offset + 1) * esz).
//   HBM        per tensor, the element bounding range [min_offset, max_offset + 1)
//              of the view, against an interval map of last writers and a list
//              of reads not yet covered by a later write.
// Only the latest writer of each cell/interval is kept: a new writer depends on
// the old one (WAW) and on its readers (WAR), so later accesses reach them
// transitively. Freeing memory does not reset its cells, which is what makes a
// reallocated buffer's first write wait for the old buffer's readers.
//
// Cost (n = instructions): an SBUF/PSUM access is O(cells touched) — a
// [128, 512] f32 tile is 4 x 32 = 128 cells — plus, for a write, the readers it
// retires; each recorded read is retired at most once, so reads and writes are
// O(1) amortized per cell. An HBM read is O(log W + k) (W write intervals of the
// tensor, k overlapping); an HBM write is O(log W + k + R), R the reads of that
// tensor not yet covered by a write (0 for pure inputs and pure outputs, small
// for scratch tiles that are rewritten whole). Duplicates are removed with a
// per-instruction stamp, O(1) each; each instruction's list is sorted.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <vector>

#include <ncore/isa/allocator.h>
#include <ncore/isa/error.h>
#include <ncore/isa/instr.h>
#include <ncore/isa/target.h>

namespace ncore {

class DepTracker {
 public:
  // Compute engines address partitions in quadrant-aligned groups of 32
  // (facts §2, validate.h partition_start): cells this tall lose no precision
  // for them; only DMAs of part of a quadrant are tracked conservatively.
  static constexpr int kQuadrant = 32;
  // The allocator's alignment: two allocations never share a cell.
  static constexpr int64_t kGranule = Allocator::kAlign;
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  explicit DepTracker(const Target& t)
      : quadrants_((t.partitions + kQuadrant - 1) / kQuadrant),
        shadow_{Shadow(quadrants_, t.sbuf_partition_bytes),
                Shadow(quadrants_, t.psum_partition_bytes())},
        partitions_(t.partitions) {}

  // Records the accesses of instruction `id` — ids are 0, 1, 2, ... in program
  // order — and appends what it waits for to `deps`: earlier ids, each once,
  // ascending. `in` must have passed validate() (the Core and load() ensure it):
  // its extents are trusted not to overflow and its tensor ids to be small.
  void add(uint32_t id, const Instr& in, std::vector<uint32_t>& deps) {
    if (id != seen_.size())
      throw Error("dependency tracking", "", cat("instruction id ", id, " out of order, expected ",
                                                 seen_.size()));
    seen_.push_back(kNone);
    cur_ = id;
    out_ = &deps;
    const size_t first = deps.size();
    // Writes first: a cell the instruction also reads (accumulate, in place)
    // then has it as writer, so the read costs nothing and its RAW dependency
    // is the write's WAW one.
    std::array<const Operand*, 2 * kSlots> reads{};
    int n_reads = 0;
    for_each_access(in, [&](const Operand& o, bool write) {
      if (write) access(o, true);
      else reads[size_t(n_reads++)] = &o;
    });
    for (int i = 0; i < n_reads; ++i) access(*reads[size_t(i)], false);
    std::sort(deps.begin() + std::ptrdiff_t(first), deps.end());
    out_ = nullptr;
  }

 private:
  struct Cell {
    uint32_t writer = kNone;
    std::vector<uint32_t> readers;  // since `writer`, each at most once in a row
  };
  struct Shadow {
    Shadow(int quadrants, int64_t bytes)
        : granules(bytes / kGranule), capacity(bytes), cells(size_t(quadrants * granules)) {}
    int64_t granules;
    int64_t capacity;
    std::vector<Cell> cells;  // [quadrant][granule]
  };
  struct Interval {
    int64_t hi;
    uint32_t writer;
  };
  struct Read {
    int64_t lo, hi;
    uint32_t id;
  };
  struct HbmState {
    std::map<int64_t, Interval> writers;  // lo -> [lo, hi) last written by writer; disjoint
    std::vector<Read> reads;              // not yet covered by a later write
  };

  static constexpr int kSlots = int(std::tuple_size_v<decltype(Instr::opnd)>);

  void access(const Operand& o, bool write) {
    if (o.on_chip()) on_chip(o, write);
    else if (o.space == Space::kHbm) hbm(o, write);
  }

  void need(uint32_t dep) {
    if (dep == kNone || dep == cur_ || seen_[dep] == cur_) return;
    seen_[dep] = cur_;
    out_->push_back(dep);
  }

  void on_chip(const Operand& o, bool write) {
    Shadow& sh = shadow_[o.space == Space::kSbuf ? 0 : 1];
    const int64_t esz = dtype_size(o.dtype);
    const int64_t lo = o.addr + o.ap.min_offset() * esz;
    const int64_t hi = o.addr + (o.ap.max_offset() + 1) * esz;
    if (lo < 0 || hi > sh.capacity || hi <= lo || o.p0 < 0 || o.np < 1 ||
        o.p0 + o.np > partitions_)
      throw Error("dependency tracking", o.str(),
                  cat("bytes [", lo, ", ", hi, ") or partitions [", o.p0, ", ", o.p0 + o.np,
                      ") outside ", space_name(o.space)));
    const int64_t g0 = lo / kGranule, g1 = (hi - 1) / kGranule;
    const int q0 = o.p0 / kQuadrant, q1 = (o.p0 + o.np - 1) / kQuadrant;
    for (int q = q0; q <= q1; ++q) {
      Cell* c = sh.cells.data() + q * sh.granules + g0;
      for (int64_t g = g0; g <= g1; ++g, ++c) {
        need(c->writer);
        if (write) {
          for (uint32_t r : c->readers) need(r);
          c->readers.clear();
          c->writer = cur_;
        } else if (c->writer != cur_ && (c->readers.empty() || c->readers.back() != cur_)) {
          c->readers.push_back(cur_);
        }
      }
    }
  }

  void hbm(const Operand& o, bool write) {
    const uint32_t t = o.tensor();
    if (t >= hbm_.size()) hbm_.resize(size_t(t) + 1);
    HbmState& st = hbm_[t];
    const int64_t lo = o.ap.min_offset(), hi = o.ap.max_offset() + 1;
    // The first interval that may overlap [lo, hi).
    auto it = st.writers.upper_bound(lo);
    if (it != st.writers.begin() && std::prev(it)->second.hi > lo) --it;
    auto end = it;
    for (; end != st.writers.end() && end->first < hi; ++end) need(end->second.writer);
    if (!write) {
      st.reads.push_back(Read{lo, hi, cur_});
      return;
    }
    // Keep the parts of the first and last overlapping intervals outside [lo, hi).
    if (it != end) {
      const int64_t first_lo = it->first;
      const Interval first = it->second;
      const Interval last = std::prev(end)->second;
      st.writers.erase(it, end);
      if (first_lo < lo) st.writers.emplace(first_lo, Interval{lo, first.writer});
      if (last.hi > hi) st.writers.emplace(hi, last);
    }
    st.writers.emplace(lo, Interval{hi, cur_});
    // WAR; a read inside [lo, hi) is now reached through this write.
    size_t kept = 0;
    for (const Read& r : st.reads) {
      if (r.lo < hi && lo < r.hi) need(r.id);
      if (!(lo <= r.lo && r.hi <= hi)) st.reads[kept++] = r;
    }
    st.reads.resize(kept);
  }

  int quadrants_;
  Shadow shadow_[2];  // SBUF, PSUM
  int partitions_;
  std::vector<HbmState> hbm_;
  std::vector<uint32_t> seen_;  // seen_[i] == cur_: i is already in cur_'s list
  uint32_t cur_ = 0;
  std::vector<uint32_t>* out_ = nullptr;
};

// Dependencies of a whole instruction list in Program's CSR form, for
// programs built without the emitter (hand-written tests, transformed programs).
// Every instruction must have passed validate().
inline void infer_deps(const Target& t, std::span<const Instr> instrs,
                       std::vector<uint32_t>& dep_begin, std::vector<uint32_t>& dep_ids) {
  DepTracker tracker(t);
  dep_begin.assign(1, 0);
  dep_ids.clear();
  for (size_t i = 0; i < instrs.size(); ++i) {
    tracker.add(uint32_t(i), instrs[i], dep_ids);
    dep_begin.push_back(uint32_t(dep_ids.size()));
  }
}

}  // namespace ncore
