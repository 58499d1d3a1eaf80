// Tiles, HBM tensors and access patterns.
//
// A Tile is a view of SBUF or PSUM: partitions [p0, p0 + np) and, in every one
// of them, the same free-dim access pattern starting at byte `addr`
// (no partition striding: facts §2). An HbmTensor is a strided view of a tensor
// in device memory (host memory on the CPU path). Views are free and checked:
// a view can never reach outside the view it was made from.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <ncore/isa/dtype.h>
#include <ncore/isa/error.h>

namespace ncore {

enum class Space : uint8_t { kNone, kHbm, kSbuf, kPsum };

constexpr const char* space_name(Space s) {
  switch (s) {
    case Space::kNone: return "none";
    case Space::kHbm: return "hbm";
    case Space::kSbuf: return "sbuf";
    case Space::kPsum: return "psum";
  }
  return "?";
}

// Up to 5 dims: enough for [B, H, S, D] HBM tensors plus one split dim.
inline constexpr int kMaxDims = 5;
// Bound on any view's element count, extent and offset: 2^40 elements (4 TiB
// of fp32) is beyond any HBM, and keeps every product of sizes and strides
// (5 dims) far from int64 overflow.
inline constexpr int64_t kMaxElems = int64_t{1} << 40;

// An affine walk over elements in row-major order:
//   element(i_0, ..., i_{n-1}) = offset + sum_d i_d * stride[d],  0 <= i_d < shape[d].
// Units are elements of the owner's dtype. Strides are >= 0 (0 broadcasts).
struct AccessPattern {
  int64_t offset = 0;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};

  static AccessPattern dense(std::initializer_list<int64_t> dims, int64_t offset = 0) {
    AccessPattern ap;
    ap.offset = offset;
    for (int64_t d : dims) ap.shape[ap.ndim++] = d;
    int64_t s = 1;
    for (int d = ap.ndim - 1; d >= 0; --d) {
      ap.stride[d] = s;
      s *= ap.shape[d];
    }
    return ap;
  }

  int64_t size() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }
  // Smallest and largest element offsets touched (size() > 0 assumed).
  int64_t min_offset() const { return offset; }
  int64_t max_offset() const {
    int64_t m = offset;
    for (int d = 0; d < ndim; ++d) m += (shape[d] - 1) * stride[d];
    return m;
  }
  // Row-major dense from `offset`: the whole walk is one contiguous run.
  bool contiguous() const {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (shape[d] != 1 && stride[d] != s) return false;
      s *= shape[d];
    }
    return true;
  }
  // Length of the innermost contiguous run (1 if the last stride is not 1).
  int64_t inner_run() const { return ndim && stride[ndim - 1] == 1 ? shape[ndim - 1] : 1; }

  // Calls f(element_offset) for every element, in row-major order.
  template <class F>
  void for_each(F&& f) const {
    std::array<int64_t, kMaxDims> idx{};
    const int64_t n = size();
    int64_t off = offset;
    for (int64_t e = 0; e < n; ++e) {
      f(off);
      for (int d = ndim - 1; d >= 0; --d) {
        off += stride[d];
        if (++idx[d] < shape[d]) break;
        off -= stride[d] * shape[d];
        idx[d] = 0;
      }
    }
  }
  // Calls f(first_element_offset, length) for each innermost row, in row-major
  // order. A row's elements are first + k * stride[ndim - 1] for k < length:
  // contiguous only when that stride is 1 (see inner_run()).
  template <class F>
  void for_each_row(F&& f) const {
    if (ndim == 0) return f(offset, int64_t{1});
    AccessPattern outer = *this;
    outer.ndim = ndim - 1;
    const int64_t len = shape[ndim - 1];
    outer.for_each([&](int64_t off) { f(off, len); });
  }

  bool operator==(const AccessPattern& o) const {
    if (offset != o.offset || ndim != o.ndim) return false;
    for (int d = 0; d < ndim; ++d)
      if (shape[d] != o.shape[d] || stride[d] != o.stride[d]) return false;
    return true;
  }

  // --- View algebra; `what` names the view for error messages. ---
  AccessPattern slice(int dim, int64_t start, int64_t stop, const char* what) const {
    check_dim(dim, what);
    if (start >= stop)
      throw Error(what, "slice", cat("[", start, ", ", stop, ") of dim ", dim, " is empty"));
    if (start < 0 || stop > shape[dim])
      throw Error(what, "slice", cat("[", start, ", ", stop, ") of dim ", dim,
                                     " is outside [0, ", shape[dim], ")"));
    AccessPattern r = *this;
    r.offset += start * stride[dim];
    r.shape[dim] = stop - start;
    return r;
  }
  AccessPattern index(int dim, int64_t i, const char* what) const {
    check_dim(dim, what);
    if (i < 0 || i >= shape[dim])  // checked here: i + 1 below must not overflow
      throw Error(what, "index", cat(i, " of dim ", dim, " is outside [0, ", shape[dim], ")"));
    AccessPattern r = slice(dim, i, i + 1, what);
    if (r.ndim == 1) return r;
    for (int d = dim; d + 1 < r.ndim; ++d) {
      r.shape[d] = r.shape[d + 1];
      r.stride[d] = r.stride[d + 1];
    }
    --r.ndim;
    return r;
  }
  AccessPattern reshape(std::initializer_list<int64_t> dims, const char* what) const {
    if (!contiguous())
      throw Error(what, "reshape", "needs a contiguous view, got a strided one");
    if (dims.size() == 0 || dims.size() > kMaxDims)
      throw Error(what, "reshape", cat("rank must be 1..", kMaxDims, ", got ", dims.size()));
    // Checked before dense() multiplies: the product must not overflow.
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d <= 0) throw Error(what, "reshape", cat("dims must be positive, got ", d));
      if (d > kMaxElems / n)
        throw Error(what, "reshape",
                    cat("must keep ", size(), " elements, got more than ", kMaxElems));
      n *= d;
    }
    if (n != size())
      throw Error(what, "reshape", cat("must keep ", size(), " elements, got ", n));
    return dense(dims, offset);
  }
  AccessPattern transpose(int d0, int d1, const char* what) const {
    check_dim(d0, what);
    check_dim(d1, what);
    AccessPattern r = *this;
    std::swap(r.shape[d0], r.shape[d1]);
    std::swap(r.stride[d0], r.stride[d1]);
    return r;
  }
  // Size-1 dim `dim` repeated n times (stride 0).
  AccessPattern broadcast(int dim, int64_t n, const char* what) const {
    check_dim(dim, what);
    if (shape[dim] != 1)
      throw Error(what, "broadcast", cat("dim ", dim, " must have size 1, got ", shape[dim]));
    const int64_t room = kMaxElems / std::max<int64_t>(size(), 1);  // hand-built views may be empty
    if (n <= 0 || n > room)
      throw Error(what, "broadcast",
                  cat("count must be in 1..", room, " (", kMaxElems, " elements in all), got ", n));
    AccessPattern r = *this;
    r.shape[dim] = n;
    r.stride[dim] = 0;
    return r;
  }

 private:
  // The test stays inline and the throw out of line, so the compiler sees
  // that an index past kMaxDims never reaches shape[] (no -Warray-bounds).
  void check_dim(int dim, const char* what) const {
    if (dim < 0 || dim >= ndim || dim >= kMaxDims) bad_dim(dim, what);
  }
  [[noreturn]] void bad_dim(int dim, const char* what) const {
    throw Error(what, "view", cat("dim ", dim, " outside rank ", ndim));
  }
};

// A view of SBUF or PSUM: [np, free.shape...] with the partition dim first.
struct Tile {
  Space space = Space::kNone;
  DType dtype = DType::kF32;
  int p0 = 0;          // first partition
  int np = 0;          // partition count
  int64_t addr = 0;    // byte address, within each partition, of free element offset 0
  AccessPattern free;  // free dims, in elements of dtype, relative to addr

  int64_t free_size() const { return free.size(); }
  int64_t shape(int free_dim) const { return free.shape[free_dim]; }
  // Byte range [lo, hi) touched in each partition.
  int64_t byte_lo() const { return addr + free.min_offset() * dtype_size(dtype); }
  int64_t byte_hi() const { return addr + (free.max_offset() + 1) * dtype_size(dtype); }

  Tile partitions(int start, int count) const {
    const int64_t stop = int64_t{start} + count;  // int64: start + count must not overflow
    if (count <= 0)
      throw Error("tile", "partitions", cat("[", start, ", ", stop, ") is empty"));
    if (start < 0 || stop > np)
      throw Error("tile", "partitions", cat("[", start, ", ", stop, ") is outside [0, ", np, ")"));
    Tile r = *this;
    r.p0 += start;
    r.np = count;
    return r;
  }
  Tile slice(int dim, int64_t start, int64_t stop) const {
    return with(free.slice(dim, start, stop, "tile"));
  }
  Tile index(int dim, int64_t i) const { return with(free.index(dim, i, "tile")); }
  Tile reshape(std::initializer_list<int64_t> free_dims) const {
    return with(free.reshape(free_dims, "tile"));
  }
  Tile flatten() const { return with(free.reshape({free.size()}, "tile")); }
  Tile transpose(int d0, int d1) const { return with(free.transpose(d0, d1, "tile")); }
  // A size-1 free dim read n times (stride 0), e.g. a [P, 1] column as [P, N].
  Tile broadcast(int dim, int64_t n) const { return with(free.broadcast(dim, n, "tile")); }

  std::string str() const {  // "sbuf[0:128, 512] bf16 @0x400"
    std::string s = cat(space_name(space), "[", p0, ":", p0 + np);
    for (int d = 0; d < free.ndim; ++d) s += cat(", ", free.shape[d]);
    return s + cat("] ", dtype_name(dtype));
  }

 private:
  Tile with(const AccessPattern& ap) const {
    Tile r = *this;
    r.free = ap;
    return r;
  }
};

// A view of a tensor in HBM. `id` indexes the core's (and the Program's)
// tensor table; `numel` is the underlying tensor's size, which bounds every view.
struct HbmTensor {
  uint32_t id = 0;
  DType dtype = DType::kF32;
  int64_t numel = 0;
  AccessPattern ap;

  int ndim() const { return ap.ndim; }
  int64_t shape(int d) const { return ap.shape[d]; }
  int64_t size() const { return ap.size(); }

  HbmTensor slice(int dim, int64_t start, int64_t stop) const {
    return with(ap.slice(dim, start, stop, "hbm"));
  }
  HbmTensor index(int dim, int64_t i) const { return with(ap.index(dim, i, "hbm")); }
  HbmTensor reshape(std::initializer_list<int64_t> dims) const {
    return with(ap.reshape(dims, "hbm"));
  }
  HbmTensor transpose(int d0 = 0, int d1 = 1) const { return with(ap.transpose(d0, d1, "hbm")); }
  HbmTensor broadcast(int dim, int64_t n) const { return with(ap.broadcast(dim, n, "hbm")); }

  std::string str() const {
    std::string s = cat("hbm#", id, "[");
    for (int d = 0; d < ap.ndim; ++d) s += cat(d ? ", " : "", ap.shape[d]);
    return s + cat("] ", dtype_name(dtype));
  }

 private:
  HbmTensor with(const AccessPattern& a) const {
    HbmTensor r = *this;
    r.ap = a;
    return r;
  }
};

// What an instruction records about one operand: a Tile or an HbmTensor view.
//   SBUF/PSUM: partitions [p0, p0 + np), byte `addr`, `ap` = free dims.
//   HBM: `addr` = tensor id, `ap` = all dims; a DMA maps dim 0 to partitions.
struct Operand {
  Space space = Space::kNone;
  DType dtype = DType::kF32;
  int p0 = 0, np = 0;
  int64_t addr = 0;
  AccessPattern ap;

  Operand() = default;
  Operand(const Tile& t)  // NOLINT: implicit, so engine calls take tiles and tensors alike
      : space(t.space), dtype(t.dtype), p0(t.p0), np(t.np), addr(t.addr), ap(t.free) {}
  Operand(const HbmTensor& h)  // NOLINT
      : space(Space::kHbm), dtype(h.dtype), p0(0), np(h.ap.ndim ? int(h.ap.shape[0]) : 1),
        addr(h.id), ap(h.ap) {}

  bool empty() const { return space == Space::kNone; }
  bool on_chip() const { return space == Space::kSbuf || space == Space::kPsum; }
  Tile tile() const { return Tile{space, dtype, p0, np, addr, ap}; }
  uint32_t tensor() const { return uint32_t(addr); }
  // Elements per partition: the free size of a tile; for HBM, all dims after dim 0.
  int64_t free_size() const {
    if (on_chip()) return ap.size();
    int64_t n = 1;
    for (int d = 1; d < ap.ndim; ++d) n *= ap.shape[d];
    return n;
  }
  std::string str() const {
    return on_chip() ? tile().str() : HbmTensor{tensor(), dtype, 0, ap}.str();
  }
  bool operator==(const Operand& o) const {
    return space == o.space && dtype == o.dtype && p0 == o.p0 && np == o.np &&
           addr == o.addr && ap == o.ap;
  }
};

}  // namespace ncore
