// Walking one partition's free access pattern in runs, for the SIMD CPU
// reference. Every instruction matches its operands' elements in row-major
// order; a Cursor hands them out as runs (a start, a length and a stride), so
// the per-target code works on whole runs and only a contiguous run takes a
// SIMD fast path.
#pragma once

#include <ncore/isa/tile.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace ncore::cpu {

// An access pattern reduced to the fewest dims that walk the same elements in
// the same order: size-1 dims dropped, and a dim merged into its outer
// neighbour when stride[outer] == stride[inner] * shape[inner]. A dense view
// of any rank becomes one dim of stride 1, so contiguity is one test, and the
// runs of a Cursor are as long as they can be.
struct Walk {
  int ndim = 1;
  std::array<int64_t, kMaxDims> shape{1};  // innermost dim last
  std::array<int64_t, kMaxDims> stride{1};
  int64_t size = 1;

  static Walk of(const AccessPattern& ap) {
    Walk w;
    w.ndim = 0;
    for (int d = 0; d < ap.ndim; ++d) {
      if (ap.shape[d] == 1) continue;
      if (w.ndim > 0 && w.stride[w.ndim - 1] == ap.stride[d] * ap.shape[d]) {
        w.shape[w.ndim - 1] *= ap.shape[d];
        w.stride[w.ndim - 1] = ap.stride[d];
      } else {
        w.shape[w.ndim] = ap.shape[d];
        w.stride[w.ndim] = ap.stride[d];
        ++w.ndim;
      }
    }
    if (w.ndim == 0) {  // a single element
      w.ndim = 1;
      w.shape[0] = 1;
      w.stride[0] = 1;
    }
    w.size = 1;
    for (int d = 0; d < w.ndim; ++d) w.size *= w.shape[d];
    return w;
  }

  // One run of stride 1 covers every element.
  bool contiguous() const { return ndim == 1 && (stride[0] == 1 || shape[0] == 1); }
};

// `len` elements starting at element offset `offset`, `stride` elements apart.
struct Run {
  int64_t offset = 0;
  int64_t len = 0;
  int64_t stride = 1;
};

// Row-major iteration over a Walk, in runs along its innermost dim, resumable
// at any element: chunked loops seek to a chunk's first element and take runs
// until the chunk is full.
class Cursor {
 public:
  Cursor(const Walk& w, int64_t first) : w_(w) { seek(first); }

  void seek(int64_t e) {
    off_ = 0;
    for (int d = w_.ndim - 1; d >= 0; --d) {
      idx_[d] = e % w_.shape[d];
      e /= w_.shape[d];
      off_ += idx_[d] * w_.stride[d];
    }
  }

  // The next run, at most max_len long (the caller never asks past the end).
  Run next(int64_t max_len) {
    const int in = w_.ndim - 1;
    Run r;
    r.offset = off_;
    r.len = std::min(max_len, w_.shape[in] - idx_[in]);
    r.stride = w_.stride[in];
    idx_[in] += r.len;
    off_ += r.len * r.stride;
    for (int d = in; d > 0 && idx_[d] == w_.shape[d]; --d) {  // carry outwards
      off_ -= w_.shape[d] * w_.stride[d];
      idx_[d] = 0;
      ++idx_[d - 1];
      off_ += w_.stride[d - 1];
    }
    return r;
  }

 private:
  const Walk& w_;
  std::array<int64_t, kMaxDims> idx_{};
  int64_t off_ = 0;
};

}  // namespace ncore::cpu
