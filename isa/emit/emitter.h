// The device emitter: a Core backend that records a kernel instance as a
// Program — instructions in program order, SBUF/PSUM allocation events and the
// dependencies deps.h infers — instead of executing it.
//
//   Program p = emit(kTrn2, [&](DeviceCore& nc) { my_kernel(nc, ...); });
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string_view>
#include <utility>

#include <ncore/isa/core.h>
#include <ncore/isa/emit/deps.h>
#include <ncore/isa/emit/program.h>

namespace ncore {

class Emitter {
 public:
  explicit Emitter(const Target& t) : target_(t), deps_(t) { prog_.target = t.id; }

  // The file and tensor tables are the Core's; finish() copies them.
  void on_file(uint32_t, std::string_view) {}
  void on_hbm(uint32_t, const HbmDecl&, void*) {}

  void on_alloc(Space s, int64_t addr, int64_t bytes, SrcLoc loc) {
    live(s)[addr] = Live{bytes, loc};
    prog_.allocs.push_back(AllocEvent{s, false, addr, bytes, next_id(), loc});
  }
  // The Core does not pass the size or source line of a free; both come from
  // the matching allocation (a free event's loc is where the buffer was made).
  void on_free(Space s, int64_t addr, int64_t) {
    auto& m = live(s);
    auto it = m.find(addr);
    if (it == m.end()) return;
    prog_.allocs.push_back(AllocEvent{s, true, addr, it->second.bytes, next_id(), it->second.loc});
    m.erase(it);
  }

  void submit(const Instr& in) {
    const uint32_t id = next_id();
    if (count_ % kChunk == 0) chunks_.emplace_back(std::make_unique<Instr[]>(kChunk));
    chunks_.back()[count_ % kChunk] = in;
    ++count_;
    deps_.add(id, in, prog_.dep_ids);
    prog_.dep_begin.push_back(uint32_t(prog_.dep_ids.size()));
  }

  size_t size() const { return count_; }

  // Moves the recording out and starts a fresh one.
  Program take() {
    Program p = std::move(prog_);
    p.instrs.reserve(count_);
    for (size_t c = 0; c < chunks_.size(); ++c) {
      const size_t n = std::min(kChunk, count_ - c * kChunk);
      p.instrs.insert(p.instrs.end(), chunks_[c].get(), chunks_[c].get() + n);
      chunks_[c].reset();
    }
    chunks_.clear();
    count_ = 0;
    prog_ = Program{};
    prog_.target = target_.id;
    deps_ = DepTracker(target_);
    live_[0].clear();
    live_[1].clear();
    return p;
  }

 private:
  struct Live {
    int64_t bytes;
    SrcLoc loc;
  };
  std::map<int64_t, Live>& live(Space s) { return live_[s == Space::kSbuf ? 0 : 1]; }
  uint32_t next_id() const {
    if (count_ >= size_t(DepTracker::kNone))
      throw Error("emit", "", cat("program exceeds ", DepTracker::kNone - 1, " instructions"));
    return uint32_t(count_);
  }

  // Instructions are ~650 B; a growing std::vector would copy and page in
  // about twice the final size. Fixed chunks are filled once and copied once
  // into an exactly reserved vector.
  static constexpr size_t kChunk = 4096;

  const Target& target_;
  Program prog_;  // everything but instrs while recording
  std::vector<std::unique_ptr<Instr[]>> chunks_;
  size_t count_ = 0;
  DepTracker deps_;
  std::map<int64_t, Live> live_[2];  // SBUF, PSUM: addr -> live allocation
};

static_assert(CoreBackend<Emitter>);

using DeviceCore = Core<Emitter>;
static_assert(NeuronCore<DeviceCore>);

// The recorded program with the Core's tables, grid position and peaks; the
// emitter starts a new, empty one. Buffers still alive stay allocated in the
// program (no free event) and their later frees are not recorded anywhere.
inline Program finish(DeviceCore& nc) {
  Program p = nc.backend().take();
  p.target = nc.target().id;
  p.program_id = nc.program_id();
  p.num_programs = nc.num_programs();
  p.files = nc.files();
  p.tensors.assign(nc.tensors().begin(), nc.tensors().end());
  p.sbuf_peak_bytes = nc.allocator().peak_bytes(Space::kSbuf);
  p.psum_peak_banks = nc.allocator().psum_peak_banks();
  return p;
}

// Runs body(DeviceCore&) on a fresh core of `t`, as instance `program_id` of a
// `num_programs` grid, and returns its program. The body's buffers are freed
// when it returns, so their frees are recorded.
template <class F>
Program emit(const Target& t, F&& body, int program_id = 0, int num_programs = 1) {
  DeviceCore nc(t);
  nc.set_grid(program_id, num_programs);
  std::forward<F>(body)(nc);
  return finish(nc);
}

}  // namespace ncore
