// SBUF and PSUM allocation with the target's capacity rules. An allocation
// reserves a byte range in every partition (as NKI does). A PSUM allocation of
// at most one bank never straddles a bank boundary; a larger one takes whole banks.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <string>

#include <ncore/isa/error.h>
#include <ncore/isa/target.h>
#include <ncore/isa/tile.h>

namespace ncore {

class Allocator {
 public:
  // 64 B: a cache line on the CPU path and the granule of dependency tracking,
  // so two allocations never share one.
  static constexpr int64_t kAlign = 64;

  explicit Allocator(const Target& t) : target_(t) {
    pool(Space::kSbuf).free[0] = t.sbuf_partition_bytes;
    pool(Space::kPsum).free[0] = t.psum_partition_bytes();
  }

  int64_t capacity(Space s) const {
    return s == Space::kSbuf ? target_.sbuf_partition_bytes : target_.psum_partition_bytes();
  }

  // First fit. Returns the byte address of `bytes` per partition; throws an
  // Error naming the request, what is free and the capacity if it does not fit.
  int64_t alloc(Space s, int64_t bytes, const std::string& at) {
    if (s != Space::kSbuf && s != Space::kPsum)
      throw Error("alloc", "buffer", cat("space must be sbuf or psum, got ", space_name(s)), at);
    if (bytes < 0)
      throw Error(std::string(space_name(s)) + " alloc", "buffer",
                  cat("size ", bytes, " bytes is negative"), at);
    if (bytes > capacity(s)) no_fit(s, bytes, at);  // before rounding can overflow
    const int64_t bank = target_.psum_bank_bytes;
    int64_t need = round_up(std::max<int64_t>(bytes, 1), kAlign);
    if (s == Space::kPsum && need > bank) need = round_up(need, bank);
    Pool& p = pool(s);
    for (auto it = p.free.begin(); it != p.free.end(); ++it) {
      const int64_t lo = it->first, hi = it->first + it->second;
      int64_t a = lo;
      if (s == Space::kPsum && (need > bank || a / bank != (a + need - 1) / bank))
        a = round_up(a, bank);
      if (a + need > hi) continue;
      p.free.erase(it);
      if (a > lo) p.free[lo] = a - lo;
      if (a + need < hi) p.free[a + need] = hi - (a + need);
      p.live[a] = need;
      p.in_use += need;
      p.peak = std::max(p.peak, a + need);
      if (s == Space::kPsum) psum_peak_banks_ = std::max(psum_peak_banks_, live_banks());
      return a;
    }
    no_fit(s, bytes, at);
  }

  void free(Space s, int64_t addr) {
    Pool& p = pool(s);
    auto it = p.live.find(addr);
    if (it == p.live.end()) return;
    const int64_t size = it->second;
    p.live.erase(it);
    p.in_use -= size;
    auto pos = p.free.emplace(addr, size).first;
    if (pos != p.free.begin()) {
      auto prev = std::prev(pos);
      if (prev->first + prev->second == pos->first) {
        prev->second += pos->second;
        p.free.erase(pos);
        pos = prev;
      }
    }
    auto next = std::next(pos);
    if (next != p.free.end() && pos->first + pos->second == next->first) {
      pos->second += next->second;
      p.free.erase(next);
    }
  }

  int64_t in_use_bytes(Space s) const { return pool(s).in_use; }
  // Highest byte address ever reserved: the program's per-partition budget.
  int64_t peak_bytes(Space s) const { return pool(s).peak; }
  // Most PSUM banks holding a live allocation at once.
  int psum_peak_banks() const { return psum_peak_banks_; }

 private:
  struct Pool {
    std::map<int64_t, int64_t> free;  // addr -> size, coalesced
    std::map<int64_t, int64_t> live;  // addr -> size
    int64_t in_use = 0;
    int64_t peak = 0;
  };
  static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
  [[noreturn]] void no_fit(Space s, int64_t bytes, const std::string& at) const {
    throw Error(std::string(space_name(s)) + " alloc", "buffer",
                cat(bytes, " bytes per partition do not fit: ", capacity(s) - pool(s).in_use,
                    " of ", capacity(s), " free (", target_.name, ")"),
                at);
  }
  Pool& pool(Space s) { return pools_[s == Space::kSbuf ? 0 : 1]; }
  const Pool& pool(Space s) const { return pools_[s == Space::kSbuf ? 0 : 1]; }

  int live_banks() const {
    const int64_t bank = target_.psum_bank_bytes;
    uint32_t mask = 0;
    for (auto& [a, size] : pool(Space::kPsum).live)
      for (int64_t b = a / bank; b <= (a + size - 1) / bank; ++b) mask |= 1u << b;
    return std::popcount(mask);
  }

  const Target& target_;
  Pool pools_[2];
  int psum_peak_banks_ = 0;
};

}  // namespace ncore
