// Per-target dtype <-> fp32 conversion of runs, and Stream: one operand read
// or written chunk by chunk in its row-major element order.
//
// Every value is computed in fp32 and every store rounds (RNE) to the
// destination dtype with isa/numerics.h's exact rules. f32 and bf16 runs of
// stride 1 convert with SIMD; bf16 rounding is integer arithmetic, because
// Highway 1.0.3's f32 -> bf16 DemoteTo truncates, except that contiguous
// bf16 runs use vcvtneps2bf16 where the CPU has it (encode_avx512bf16.cc:
// vectors with subnormals or NaNs, where it differs, take the integer path).
// The other dtypes and strided runs go through numerics.h's scalar
// conversions, which the compiler vectorises where it can.

#if defined(NCORE_REFERENCE_CPU_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_CONVERT_INL_H_
#undef NCORE_REFERENCE_CPU_CONVERT_INL_H_
#else
#define NCORE_REFERENCE_CPU_CONVERT_INL_H_
#endif

#include <hwy/highway.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/semantics.h>
#include <ncore/reference/cpu_ops.h>
#include <ncore/reference/cpu_walk.h>
#include <ncore/reference/encode_avx512bf16.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// ---- bf16 and typed rows ----

// f32_to_bf16 on a vector: add just under half a bf16 ulp plus the kept lsb
// (ties to even; carries run into the exponent and on to inf), keep the upper
// half; NaN -> sign | 0x7FC0.
template <class D>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, D>> ToBF16(D /*d*/, hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> du16;
  const auto u = hn::BitCast(du, v);
  const auto hi = hn::ShiftRight<16>(u);
  const auto rounded =
      hn::ShiftRight<16>(hn::Add(hn::Add(u, hn::Set(du, 0x7FFFu)), hn::And(hi, hn::Set(du, 1u))));
  const auto nan = hn::Or(hn::And(hi, hn::Set(du, 0x8000u)), hn::Set(du, 0x7FC0u));
  const auto r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nan, rounded);
  return hn::DemoteTo(du16, hn::BitCast(di, r));  // every lane fits 16 bits: exact
}

// Contiguous f32 and bf16 rows (the kernels' common case) are read and
// written by the compute loops themselves: one pass, no chunk buffer.
enum class RowType : uint8_t { kF32, kBF16 };
struct RowIn {
  const uint8_t* p;
  RowType t;
};
struct RowOut {
  uint8_t* p;
  RowType t;
};
constexpr int64_t RowSize(RowType t) { return t == RowType::kF32 ? 4 : 2; }

// One vector of fp32 from f32 or bf16 elements at p (any alignment).
template <RowType T, class D>
HWY_INLINE hn::Vec<D> LoadRow(D d, const uint8_t* p) {
  if constexpr (T == RowType::kF32) {
    return hn::LoadU(d, reinterpret_cast<const float*>(p));
  } else {
    const hn::RebindToUnsigned<D> du;
    const hn::Rebind<uint16_t, D> du16;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(
                              du, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p)))));
  }
}

// One vector of fp32 to f32 or bf16 (RNE) elements at p.
template <RowType T, class D>
HWY_INLINE void StoreRow(D d, hn::Vec<D> v, uint8_t* p) {
  if constexpr (T == RowType::kF32) {
    hn::StoreU(v, d, reinterpret_cast<float*>(p));
  } else {
    hn::StoreU(ToBF16(d, v), hn::Rebind<uint16_t, D>(), reinterpret_cast<uint16_t*>(p));
  }
}

// out[0, n) = the bf16 elements at in, exactly.
inline void DecodeBF16(float* out, const uint8_t* in, int64_t n) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadRow<RowType::kBF16>(df, in + 2 * i), df, out + i);
  for (; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, in + 2 * i, 2);
    out[i] = bf16_to_f32(b);
  }
}

// Shorter runs (columns, tails) stay here rather than pay the AVX512-BF16
// path's out-of-line call and check; two vectors, not tuned.
inline constexpr int64_t kMinAvx512Bf16Encode = 32;

// The bf16 elements at out = RNE(in[0, n)): by vcvtneps2bf16 where allowed
// (encode_avx512bf16.cc, same bits), else here.
inline void EncodeBF16(uint8_t* out, const float* in, int64_t n) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (n >= kMinAvx512Bf16Encode && encode_detail::avx512bf16_encode_allowed()) {
    encode_detail::encode_bf16_avx512bf16(reinterpret_cast<uint16_t*>(out), in, n);
    return;
  }
#endif
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) StoreRow<RowType::kBF16>(df, hn::LoadU(df, in + i), out + 2 * i);
  for (; i < n; ++i) {
    const uint16_t b = f32_to_bf16(in[i]);
    std::memcpy(out + 2 * i, &b, 2);
  }
}

// Calls f(std::integral_constant<RowType, t>{}).
template <class F>
HWY_INLINE void WithRowType(RowType t, F&& f) {
  if (t == RowType::kF32) return f(std::integral_constant<RowType, RowType::kF32>());
  return f(std::integral_constant<RowType, RowType::kBF16>());
}

// ---- any dtype, any run ----

template <int kSize, class Load>
HWY_INLINE void DecodeLoop(float* out, const uint8_t* p, int64_t step, int64_t n, Load load) {
  if (step == kSize) {  // a constant stride lets the compiler vectorise
    for (int64_t i = 0; i < n; ++i) out[i] = load(p + i * kSize);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = load(p + i * step);
  }
}

// out[0, r.len) = the run's elements of `row`, as fp32.
inline void DecodeRun(float* out, const uint8_t* row, const Run& r, DType t) {
  const int64_t esz = dtype_size(t);
  const uint8_t* p = row + r.offset * esz;
  if (r.stride == 0 || r.len == 1) {  // one element, perhaps read many times
    std::fill(out, out + r.len, decode(t, p));
    return;
  }
  const int64_t step = r.stride * esz;
  switch (t) {
    case DType::kF32:
      if (r.stride == 1) {
        std::memcpy(out, p, size_t(r.len) * 4);
        return;
      }
      return DecodeLoop<4>(out, p, step, r.len, [](const uint8_t* q) {
        float v;
        std::memcpy(&v, q, 4);
        return v;
      });
    case DType::kBF16:
      if (r.stride == 1) return DecodeBF16(out, p, r.len);
      return DecodeLoop<2>(out, p, step, r.len, [](const uint8_t* q) {
        uint16_t h;
        std::memcpy(&h, q, 2);
        return bf16_to_f32(h);
      });
    case DType::kF16:
      return DecodeLoop<2>(out, p, step, r.len, [](const uint8_t* q) {
        uint16_t h;
        std::memcpy(&h, q, 2);
        return f16_to_f32(h);
      });
    case DType::kFP8E4M3:
      return DecodeLoop<1>(out, p, step, r.len,
                           [](const uint8_t* q) { return fp8_e4m3_to_f32(*q); });
    case DType::kFP8E5M2:
      return DecodeLoop<1>(out, p, step, r.len,
                           [](const uint8_t* q) { return fp8_e5m2_to_f32(*q); });
    case DType::kI32:
      return DecodeLoop<4>(out, p, step, r.len, [](const uint8_t* q) {
        int32_t i;
        std::memcpy(&i, q, 4);
        return static_cast<float>(i);
      });
  }
}

template <int kSize, class Store>
HWY_INLINE void EncodeLoop(uint8_t* p, int64_t step, const float* in, int64_t n, Store store) {
  if (step == kSize) {
    for (int64_t i = 0; i < n; ++i) store(p + i * kSize, in[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) store(p + i * step, in[i]);
  }
}

// The run's elements of `row` = in[0, r.len) rounded to t. A stride-0 run
// writes one element many times: the last value wins, as in element order.
inline void EncodeRun(uint8_t* row, const Run& r, const float* in, DType t) {
  const int64_t esz = dtype_size(t);
  uint8_t* p = row + r.offset * esz;
  if (r.stride == 0 || r.len == 1) {
    encode(t, in[r.len - 1], p);
    return;
  }
  const int64_t step = r.stride * esz;
  switch (t) {
    case DType::kF32:
      if (r.stride == 1) {
        std::memcpy(p, in, size_t(r.len) * 4);
        return;
      }
      return EncodeLoop<4>(p, step, in, r.len, [](uint8_t* q, float v) { std::memcpy(q, &v, 4); });
    case DType::kBF16:
      if (r.stride == 1) return EncodeBF16(p, in, r.len);
      return EncodeLoop<2>(p, step, in, r.len, [](uint8_t* q, float v) {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(q, &h, 2);
      });
    case DType::kF16:
      return EncodeLoop<2>(p, step, in, r.len, [](uint8_t* q, float v) {
        const uint16_t h = f32_to_f16(v);
        std::memcpy(q, &h, 2);
      });
    case DType::kFP8E4M3:
      return EncodeLoop<1>(p, step, in, r.len,
                           [](uint8_t* q, float v) { *q = f32_to_fp8_e4m3(v); });
    case DType::kFP8E5M2:
      return EncodeLoop<1>(p, step, in, r.len,
                           [](uint8_t* q, float v) { *q = f32_to_fp8_e5m2(v); });
    case DType::kI32:
      return EncodeLoop<4>(p, step, in, r.len, [](uint8_t* q, float v) {
        const int32_t i = f32_to_i32(v);
        std::memcpy(q, &i, 4);
      });
  }
}

// Raw element copies (same dtype on both sides: bits move unchanged).
inline void CopyElements(uint8_t* dst, int64_t dst_step, const uint8_t* src, int64_t src_step,
                         int64_t n, int64_t esz) {
  if (dst_step == esz && src_step == esz) {
    std::memmove(dst, src, size_t(n * esz));
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * dst_step, src + i * src_step, size_t(esz));
}

// ---- Stream ----

// Elements per chunk: 1024 fp32 = 4 KiB per buffer. An instruction keeps at
// most 4 chunk buffers, so every pass over a chunk stays in L1 (48 KiB on
// Zen 5, 32 KiB on older cores). A multiple of kReduceLanes, so reductions
// resume on the same partial at every chunk.
inline constexpr int64_t kChunk = 1024;
static_assert(kChunk % kReduceLanes == 0);

// One operand, walked chunk by chunk in each partition. A contiguous f32
// operand is used in place (no copy either way); the others are decoded into
// / encoded from the caller's chunk buffer.
class Stream {
 public:
  explicit Stream(const View& v)
      : v_(v),
        w_(Walk::of(v.ap)),
        direct_(v.dtype == DType::kF32 && w_.contiguous()),
        typed_(w_.contiguous() && (v.dtype == DType::kF32 || v.dtype == DType::kBF16)) {}

  const View& view() const { return v_; }
  const Walk& walk() const { return w_; }
  int64_t size() const { return w_.size; }  // elements per partition
  int64_t esz() const { return dtype_size(v_.dtype); }

  // Elements [e0, e0 + len) of partition p as fp32: in place, or in buf.
  const float* Read(int p, int64_t e0, int64_t len, float* buf) const {
    return ReadAt(v_.row(p), e0, len, buf);
  }
  // The same for the pattern placed at `row` (tensor_reduce walks sub-blocks).
  const float* ReadAt(const uint8_t* row, int64_t e0, int64_t len, float* buf) const {
    if (direct_) return reinterpret_cast<const float*>(row) + e0;
    Cursor c(w_, e0);
    for (int64_t k = 0; k < len;) {
      const Run r = c.next(len - k);
      DecodeRun(buf + k, row, r, v_.dtype);
      k += r.len;
    }
    return buf;
  }

  // Where to compute elements [e0, ...) of partition p: in place, or buf.
  float* Target(int p, int64_t e0, float* buf) const {
    return direct_ ? reinterpret_cast<float*>(v_.row(p)) + e0 : buf;
  }

  // Elements [e0, e0 + len) of partition p = vals rounded to the dtype
  // (nothing to do when vals is already the destination).
  void Write(int p, int64_t e0, int64_t len, const float* vals) const {
    uint8_t* row = v_.row(p);
    if (direct_) {
      float* dst = reinterpret_cast<float*>(row) + e0;
      if (dst != vals) std::memcpy(dst, vals, size_t(len) * 4);
      return;
    }
    Cursor c(w_, e0);
    for (int64_t k = 0; k < len;) {
      const Run r = c.next(len - k);
      EncodeRun(row, r, vals + k, v_.dtype);
      k += r.len;
    }
  }

  // Elements [e0, e0 + len) of partition p for the typed loops: in place
  // when the row is contiguous f32 or bf16, else decoded into buf.
  RowIn In(int p, int64_t e0, int64_t len, float* buf) const {
    if (typed_) return {v_.row(p) + e0 * esz(), row_type()};
    return {reinterpret_cast<const uint8_t*>(Read(p, e0, len, buf)), RowType::kF32};
  }
  // Where the typed loops put elements [e0, ...) of partition p: in place
  // when allowed and the row is contiguous f32 or bf16, else buf (fp32).
  RowOut Out(int p, int64_t e0, float* buf, bool in_place) const {
    if (typed_ && in_place) return {v_.row(p) + e0 * esz(), row_type()};
    return {reinterpret_cast<uint8_t*>(buf), RowType::kF32};
  }
  // Completes Out(): rounds buf into the row, unless written in place.
  void Commit(int p, int64_t e0, int64_t len, const RowOut& o) const {
    if (o.p == v_.row(p) + e0 * esz()) return;
    Write(p, e0, len, reinterpret_cast<const float*>(o.p));
  }

  // Raw elements (esz() bytes each) [e0, e0 + len) of partition p to / from
  // a packed byte buffer.
  void ReadRaw(const uint8_t* row, int64_t e0, int64_t len, uint8_t* out) const {
    const int64_t esz = this->esz();
    Cursor c(w_, e0);
    for (int64_t k = 0; k < len;) {
      const Run r = c.next(len - k);
      CopyElements(out + k * esz, esz, row + r.offset * esz, r.stride * esz, r.len, esz);
      k += r.len;
    }
  }
  void WriteRaw(uint8_t* row, int64_t e0, int64_t len, const uint8_t* in) const {
    const int64_t esz = this->esz();
    Cursor c(w_, e0);
    for (int64_t k = 0; k < len;) {
      const Run r = c.next(len - k);
      if (r.stride == 0) {  // the last of the run's values wins
        std::memcpy(row + r.offset * esz, in + (k + r.len - 1) * esz, size_t(esz));
      } else {
        CopyElements(row + r.offset * esz, r.stride * esz, in + k * esz, esz, r.len, esz);
      }
      k += r.len;
    }
  }

 private:
  RowType row_type() const { return v_.dtype == DType::kBF16 ? RowType::kBF16 : RowType::kF32; }

  View v_;
  Walk w_;
  bool direct_;  // contiguous f32: used in place by every loop
  bool typed_;   // contiguous f32 or bf16: used in place by the typed loops
};

// Byte range [lo, hi) an operand touches over all its partitions, as
// addresses (operands may live in unrelated allocations).
struct Footprint {
  uintptr_t lo, hi;
};
inline Footprint FootprintOf(const View& v) {
  const int64_t esz = dtype_size(v.dtype);
  const int64_t last = v.pitch * (v.np - 1);  // pitch >= 0
  const uintptr_t lo = reinterpret_cast<uintptr_t>(v.base);
  return {lo, lo + uintptr_t(last + (v.ap.max_offset() + 1) * esz)};
}

// Whether a walk visits no element twice: with its dims sorted by stride,
// each stride clears the extent of the smaller ones (sufficient, and exact for
// the views kernels build).
inline bool Injective(const Walk& w) {
  std::array<int, kMaxDims> order{};
  for (int d = 0; d < w.ndim; ++d) {  // insertion sort: at most kMaxDims dims
    int k = d;
    for (; k > 0 && w.stride[order[k - 1]] > w.stride[d]; --k) order[k] = order[k - 1];
    order[k] = d;
  }
  int64_t extent = 1;  // elements spanned by the dims placed so far
  for (int k = 0; k < w.ndim; ++k) {
    const int d = order[k];
    if (w.shape[d] > 1 && w.stride[d] < extent) return false;
    extent = w.stride[d] * (w.shape[d] - 1) + extent;
  }
  return true;
}

// Whether two operands touch no common byte (by their footprints).
inline bool Disjoint(const View& a, const View& b) {
  const Footprint fa = FootprintOf(a), fb = FootprintOf(b);
  return fa.hi <= fb.lo || fb.hi <= fa.lo;
}

// Whether partition p of `a` and partition p of `b` share no byte, for every
// p. Views with the same pitch (operands of one on-chip space) are offset by
// the same distance in every partition, so one comparison decides; SBUF
// buffers interleave across partitions, so their footprints always overlap
// while their rows do not.
inline bool RowsDisjoint(const View& a, const View& b) {
  if (a.pitch != b.pitch) return Disjoint(a, b);
  const int64_t ea = (a.ap.max_offset() + 1) * dtype_size(a.dtype);
  const int64_t eb = (b.ap.max_offset() + 1) * dtype_size(b.dtype);
  const int64_t d = int64_t(reinterpret_cast<uintptr_t>(b.base) - reinterpret_cast<uintptr_t>(a.base));
  return d >= ea || d <= -eb;
}

// Whether an instruction may stream in chunks (write chunk k, then read
// chunk k + 1): yes unless a partition's destination shares bytes with the
// same partition's source other than as the very same view visiting each
// element once (then every element is read before it is overwritten).
// Otherwise it reads all of a partition's inputs before writing that
// partition, as the interpreter does. Partitions run in order either way, so
// a destination row overlapping another partition's source row gives the
// same bits on both paths.
inline bool MayStream(const View& dst, const View& src) {
  if (src.empty() || RowsDisjoint(dst, src)) return true;
  if (dst.base != src.base || dst.pitch != src.pitch || dst.dtype != src.dtype) return false;
  const Walk wd = Walk::of(dst.ap), ws = Walk::of(src.ap);
  if (wd.ndim != ws.ndim || !Injective(wd)) return false;
  for (int d = 0; d < wd.ndim; ++d)
    if (wd.shape[d] != ws.shape[d] || wd.stride[d] != ws.stride[d]) return false;
  return true;
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
