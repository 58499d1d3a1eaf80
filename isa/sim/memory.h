// The interpreter's memories: byte planes (SBUF, PSUM, one per HBM tensor)
// with per-byte written-ness, so a read of a never-written byte is caught, and
// in fp32-only mode an fp32 shadow of every on-chip element.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <ncore/isa/dtype.h>
#include <ncore/isa/tile.h>

namespace ncore::sim {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
using ZeroedArray = std::unique_ptr<T[], FreeDeleter>;

// calloc, not new T[]() : the OS maps zero pages lazily, so the 28 MiB SBUF
// (and its 5x larger fp32-only shadow) costs only the pages a program touches.
template <class T>
ZeroedArray<T> zeroed(int64_t n) {
  void* p = std::calloc(size_t(n > 0 ? n : 1), sizeof(T));
  if (!p) throw std::bad_alloc();
  return ZeroedArray<T>(static_cast<T*>(p));
}

// One bit per byte of a plane: set once the byte has been written.
class Bitmap {
 public:
  void reset(int64_t bits) { w_.assign(size_t((bits + 63) / 64), 0); }
  void clear_all() { std::fill(w_.begin(), w_.end(), uint64_t{0}); }
  void set(int64_t lo, int64_t hi) {
    apply(lo, hi, [](uint64_t& w, uint64_t m) { w |= m; });
  }
  void clear(int64_t lo, int64_t hi) {
    apply(lo, hi, [](uint64_t& w, uint64_t m) { w &= ~m; });
  }
  // The first unset bit in [lo, hi), or -1 if all are set.
  int64_t first_unset(int64_t lo, int64_t hi) const {
    if (lo >= hi) return -1;
    const int64_t first = lo >> 6, last = (hi - 1) >> 6;
    for (int64_t i = first; i <= last; ++i) {
      const uint64_t missing = ~w_[size_t(i)] & mask(i, first, last, lo, hi);
      if (missing) return i * 64 + std::countr_zero(missing);
    }
    return -1;
  }

 private:
  static uint64_t mask(int64_t i, int64_t first, int64_t last, int64_t lo, int64_t hi) {
    uint64_t m = ~uint64_t{0};
    if (i == first) m &= ~uint64_t{0} << (lo & 63);
    if (i == last) m &= ~uint64_t{0} >> (63 - ((hi - 1) & 63));
    return m;
  }
  template <class F>
  void apply(int64_t lo, int64_t hi, F f) {
    if (lo >= hi) return;
    const int64_t first = lo >> 6, last = (hi - 1) >> 6;
    for (int64_t i = first; i <= last; ++i) f(w_[size_t(i)], mask(i, first, last, lo, hi));
  }
  std::vector<uint64_t> w_;
};

// fp32-only mode: the unrounded fp32 value of each on-chip element, kept at
// the byte where the element starts. tag[a] = 1 + dtype of the element last
// stored at a, or 0 once a later store overlapped any of its bytes; a read
// with another dtype or alignment then decodes the stored bytes instead, so
// reinterpreting views stays well defined.
class Shadow {
 public:
  static constexpr int kMaxElemBytes = 4;  // f32/i32: the widest dtype

  explicit Shadow(int64_t bytes) : val_(zeroed<float>(bytes)), tag_(zeroed<uint8_t>(bytes)) {}

  void store(int64_t a, DType t, float v) {
    // Elements start at most kMaxElemBytes - 1 bytes earlier and still reach a.
    for (int64_t k = 1; k < kMaxElemBytes && k <= a; ++k) {
      const uint8_t g = tag_[a - k];
      if (g && dtype_size(DType(g - 1)) > k) tag_[a - k] = 0;
    }
    tag_[a] = uint8_t(1 + int(t));
    val_[a] = v;
    for (int k = 1; k < dtype_size(t); ++k) tag_[a + k] = 0;
  }
  bool load(int64_t a, DType t, float& v) const {
    if (tag_[a] != 1 + int(t)) return false;
    v = val_[a];
    return true;
  }

 private:
  ZeroedArray<float> val_;
  ZeroedArray<uint8_t> tag_;
};

// A byte-addressed memory. On chip: all partitions of one space, partition p
// at bytes [p * pitch, (p + 1) * pitch). HBM: one tensor's bytes (the bound
// host buffer).
struct Plane {
  std::string name;           // "sbuf", "psum" or "hbm tensor 'x'", for messages
  Space space = Space::kNone;
  uint8_t* data = nullptr;
  int64_t bytes = 0;
  int64_t pitch = 0;          // on chip: bytes per partition
  Bitmap written;
  bool all_written = false;   // an input tensor: every byte holds data
  Shadow* shadow = nullptr;   // fp32-only mode, on chip
};

}  // namespace ncore::sim
