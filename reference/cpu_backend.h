// The CPU backend: executes each instruction at once, with SIMD (ncore::cpu),
// on host memory. SBUF and PSUM are per-core arenas with the target's
// capacities; HBM tensors are the caller's host buffers.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <ncore/isa/core.h>
#include <ncore/reference/cpu_ops.h>

namespace ncore {

class CpuBackend {
 public:
  // Partition pitch = capacity + 3 cache lines: rows of a tile then fall in
  // different L1 sets instead of all aliasing (224 KiB is a multiple of 4 KiB).
  static constexpr int64_t kPitchPad = 192;

  explicit CpuBackend(const Target& t)
      : sbuf_pitch_(t.sbuf_partition_bytes + kPitchPad),
        psum_pitch_(t.psum_partition_bytes() + kPitchPad),
        sbuf_bytes_(t.partitions * sbuf_pitch_),
        psum_bytes_(t.partitions * psum_pitch_),
        sbuf_(take_arena(sbuf_bytes_)),
        psum_(take_arena(psum_bytes_)) {}
  ~CpuBackend() {
    give_arena(sbuf_bytes_, std::move(sbuf_));
    give_arena(psum_bytes_, std::move(psum_));
  }
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;

  void on_file(uint32_t, std::string_view) {}
  void on_alloc(Space, int64_t, int64_t, SrcLoc) {}
  void on_free(Space, int64_t, int64_t) {}
  // The caller's buffer must hold decl.bytes(); nullptr gets a backend-owned,
  // zeroed one (scratch).
  void on_hbm(uint32_t id, const HbmDecl& decl, void* host) {
    if (!host) {
      owned_.emplace_back(new uint8_t[size_t(decl.bytes())]());
      host = owned_.back().get();
    }
    if (hbm_.size() <= id) hbm_.resize(id + 1);
    hbm_[id] = static_cast<uint8_t*>(host);
  }
  void submit(const Instr& in) {
    std::array<cpu::View, 5> v;
    for (size_t s = 0; s < v.size(); ++s) v[s] = resolve(in.opnd[s]);
    cpu::execute(in, v);
  }

  // Host address of an on-chip element, for tests and debugging.
  uint8_t* at(Space s, int p, int64_t byte) {
    return (s == Space::kSbuf ? sbuf_.get() + p * sbuf_pitch_ : psum_.get() + p * psum_pitch_) +
           byte;
  }
  uint8_t* hbm(uint32_t id) { return hbm_.at(id); }

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using ArenaPtr = std::unique_ptr<uint8_t, FreeDeleter>;
  struct Pool {
    std::mutex mu;
    std::vector<std::pair<int64_t, ArenaPtr>> free;  // (bytes, arena)
  };
  static Pool& pool() {
    static Pool p;
    return p;
  }

  // Arenas are reused across cores (launches are frequent; a fresh 30 MiB
  // arena costs page faults). 2 MiB aligned so the OS can back them with huge
  // pages. A fresh arena is filled with NaN (0xFF bytes) so reading
  // never-written memory shows in results; a reused one keeps stale data — the
  // interpreter, not the CPU path, is the tool that reports such reads.
  static ArenaPtr take_arena(int64_t bytes) {
    {
      Pool& p = pool();
      std::lock_guard<std::mutex> lock(p.mu);
      for (auto it = p.free.begin(); it != p.free.end(); ++it)
        if (it->first == bytes) {
          ArenaPtr a = std::move(it->second);
          p.free.erase(it);
          return a;
        }
    }
    constexpr size_t kAlign = size_t{2} << 20;
    const size_t n = (size_t(bytes) + kAlign - 1) / kAlign * kAlign;
    auto* raw = static_cast<uint8_t*>(std::aligned_alloc(kAlign, n));
    if (!raw) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(raw, n, MADV_HUGEPAGE);  // a hint: fewer TLB misses across 128 partitions
#endif
    std::memset(raw, 0xFF, n);
    return ArenaPtr(raw);
  }
  static void give_arena(int64_t bytes, ArenaPtr a) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    p.free.emplace_back(bytes, std::move(a));
  }

  cpu::View resolve(const Operand& o) const {
    cpu::View v;
    if (o.empty()) return v;
    const int64_t esz = dtype_size(o.dtype);
    v.dtype = o.dtype;
    if (o.on_chip()) {
      const bool sb = o.space == Space::kSbuf;
      v.pitch = sb ? sbuf_pitch_ : psum_pitch_;
      v.base = (sb ? sbuf_.get() : psum_.get()) + o.p0 * v.pitch + o.addr + o.ap.offset * esz;
      v.np = o.np;
      v.ap = o.ap;
      v.ap.offset = 0;
      return v;
    }
    v.base = hbm_[o.tensor()] + o.ap.offset * esz;
    v.np = int(o.ap.shape[0]);
    v.pitch = o.ap.stride[0] * esz;
    if (o.ap.ndim == 1) {
      v.ap = AccessPattern::dense({1});
    } else {
      v.ap.ndim = o.ap.ndim - 1;
      for (int d = 1; d < o.ap.ndim; ++d) {
        v.ap.shape[d - 1] = o.ap.shape[d];
        v.ap.stride[d - 1] = o.ap.stride[d];
      }
    }
    return v;
  }

  int64_t sbuf_pitch_, psum_pitch_;
  int64_t sbuf_bytes_, psum_bytes_;
  ArenaPtr sbuf_, psum_;
  std::vector<uint8_t*> hbm_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;
};

using CpuCore = Core<CpuBackend>;

// Runs body(CpuCore&) as an SPMD grid of `grid` program instances, one thread
// and one SBUF/PSUM arena each. The first exception is rethrown here.
template <class F>
void launch_cpu(const Target& t, int grid, F&& body) {
  if (grid < 1) throw Error("launch", "grid", cat("must be >= 1, got ", grid));
  std::exception_ptr first;
  std::mutex mu;
  auto run = [&](int id) {
    try {
      CpuCore nc(t);
      nc.set_grid(id, grid);
      body(nc);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!first) first = std::current_exception();
    }
  };
  if (grid == 1) {
    run(0);
  } else {
    std::vector<std::thread> threads;
    for (int i = 0; i < grid; ++i) threads.emplace_back(run, i);
    for (auto& th : threads) th.join();
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace ncore
