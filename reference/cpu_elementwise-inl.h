// Per-target elementwise instructions: dma / tensor_copy, tensor_tensor,
// tensor_scalar, scalar_tensor_tensor, activation, memset, iota, affine_select.
//
// Each walks its partitions, and each partition in chunks of kChunk elements
// matched across operands in row-major order. Contiguous f32 / bf16 rows are
// read and written in place by the compute loops (converting in registers);
// any other operand is decoded to an fp32 chunk buffer in L1, or encoded
// (RNE) from one. When the destination shares bytes with a source other than
// as the very same view, chunks become whole rows, so a partition's inputs
// are all read before it is written (MayStream).

#if defined(NCORE_REFERENCE_CPU_ELEMENTWISE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_ELEMENTWISE_INL_H_
#undef NCORE_REFERENCE_CPU_ELEMENTWISE_INL_H_
#else
#define NCORE_REFERENCE_CPU_ELEMENTWISE_INL_H_
#endif

#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <ncore/isa/instr.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/semantics.h>
#include <ncore/reference/cpu_convert-inl.h>
#include <ncore/reference/cpu_math-inl.h>
#include <ncore/reference/cpu_ops.h>
#include <ncore/reference/cpu_walk.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Chunk buffers of one instruction: kChunk floats each (on the stack), or
// whole rows (on the heap) when the instruction must read a partition's
// inputs before writing it.
class Scratch {
 public:
  static constexpr int kBufs = 3;

  Scratch(int64_t row, bool whole_rows) : len_(whole_rows ? std::max(row, kChunk) : kChunk) {
    if (len_ > kChunk) heap_.resize(size_t(len_ * kBufs));
  }
  int64_t chunk() const { return len_; }
  float* buf(int i) { return len_ > kChunk ? heap_.data() + i * len_ : small_[i]; }

 private:
  int64_t len_;
  HWY_ALIGN float small_[kBufs][kChunk];
  std::vector<float> heap_;
};

// body(p, e0, len) for every partition p < np and chunk [e0, e0 + len) of n.
template <class Body>
HWY_INLINE void ForChunks(int np, int64_t n, int64_t chunk, Body&& body) {
  for (int p = 0; p < np; ++p)
    for (int64_t e0 = 0; e0 < n; e0 += chunk) body(p, e0, std::min(chunk, n - e0));
}

// A per-partition scalar operand: its [P, 1] f32 column if present, else imm.
inline float ScalarAt(const View& v, int p, float imm) {
  return v.empty() ? imm : decode(v.dtype, v.row(p));
}

// ---- dma / tensor_copy ----

// Same dtype: bits move unchanged, run against run.
inline void CopyRaw(const View& dst, const View& src) {
  const Stream d(dst), s(src);
  const int64_t n = d.size(), esz = d.esz();
  if (!MayStream(dst, src)) {
    std::vector<uint8_t> row(size_t(n * esz));
    for (int p = 0; p < dst.np; ++p) {
      s.ReadRaw(src.row(p), 0, n, row.data());
      d.WriteRaw(dst.row(p), 0, n, row.data());
    }
    return;
  }
  for (int p = 0; p < dst.np; ++p) {
    uint8_t* out = dst.row(p);
    const uint8_t* in = src.row(p);
    Cursor cd(d.walk(), 0), cs(s.walk(), 0);
    Run rd, rs;
    for (int64_t done = 0; done < n;) {
      if (rd.len == 0) rd = cd.next(n - done);
      if (rs.len == 0) rs = cs.next(n - done);
      const int64_t k = std::min(rd.len, rs.len);
      CopyElements(out + rd.offset * esz, rd.stride * esz, in + rs.offset * esz, rs.stride * esz, k,
                   esz);
      rd.offset += k * rd.stride;
      rd.len -= k;
      rs.offset += k * rs.stride;
      rs.len -= k;
      done += k;
    }
  }
}

// dst = src, through fp32 when the dtypes differ (RNE to dst's dtype).
inline void Copy(const View& dst, const View& src) {
  if (dst.dtype == src.dtype) return CopyRaw(dst, src);
  const Stream d(dst), s(src);
  const bool stream = MayStream(dst, src);
  Scratch sc(d.size(), !stream);
  ForChunks(dst.np, d.size(), sc.chunk(), [&](int p, int64_t e0, int64_t len) {
    // Decoding straight into a contiguous f32 destination saves a pass;
    // only safe when the source is not read from those bytes later.
    float* into = stream ? d.Target(p, e0, sc.buf(0)) : sc.buf(0);
    const float* x = s.Read(p, e0, len, into);
    // An f32 source is read in place: when it overlaps the destination, take
    // the whole row before writing any of it.
    if (!stream && x != into) x = static_cast<const float*>(std::memcpy(into, x, size_t(len) * 4));
    d.Write(p, e0, len, x);
  });
}

// A DMA into HBM sends its rows out with streaming (non-temporal) stores
// when each is at least this long: the written lines then bypass the caches,
// with no read-for-ownership of each line before it is overwritten (an
// ordinary store's hidden extra read: 1.5x the DRAM traffic of a copy).
// Shorter rows keep ordinary stores (a partial line gains nothing).
inline constexpr int64_t kStreamMinBytes = 4096;

// dst[0, n) = src[0, n) bytes, with streaming stores on every whole
// destination vector (the unaligned ends by memcpy).
inline void StreamBytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  const hn::ScalableTag<uint8_t> d;
  const int64_t N = int64_t(hn::Lanes(d));
  const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(dst) % uintptr_t(N));
  const int64_t head = std::min(n, (N - mis) % N);
  std::memcpy(dst, src, size_t(head));
  int64_t i = head;
  for (; i + N <= n; i += N) hn::Stream(hn::LoadU(d, src + i), d, dst + i);
  std::memcpy(dst + i, src + i, size_t(n - i));
}

// A DMA whose destination is HBM: the same bits as Copy(). Same-dtype,
// contiguous, non-overlapping rows of kStreamMinBytes or more stream out
// (StreamBytes); the stores are fenced before returning, so later
// instructions see them.
inline void CopyToHbm(const View& dst, const View& src) {
  const Stream d(dst), s(src);
  const int64_t bytes = d.size() * d.esz();
  if (dst.dtype != src.dtype || bytes < kStreamMinBytes || !d.walk().contiguous() ||
      !s.walk().contiguous() || !Disjoint(dst, src))
    return Copy(dst, src);
  for (int p = 0; p < dst.np; ++p) StreamBytes(dst.row(p), src.row(p), bytes);
  hwy::FlushStream();
}

// ---- tensor_tensor / tensor_scalar ----

inline void TensorTensor(const Instr& in, const std::array<View, 5>& v) {
  const Stream d(v[0]), a(v[1]), b(v[2]);
  const bool stream = MayStream(v[0], v[1]) && MayStream(v[0], v[2]);
  Scratch sc(d.size(), !stream);
  ForChunks(v[0].np, d.size(), sc.chunk(), [&](int p, int64_t e0, int64_t len) {
    const RowOut out = d.Out(p, e0, sc.buf(2), stream);
    AluRows(in.alu0, out, a.In(p, e0, len, sc.buf(0)), b.In(p, e0, len, sc.buf(1)), len);
    d.Commit(p, e0, len, out);
  });
}

// dst = (src op0 s0) op1 s1, each op one fp32 rounding; s0 / s1 are the
// [P, 1] columns in slots 3 / 4 or imm[0] / imm[1].
inline void TensorScalar(const Instr& in, const std::array<View, 5>& v) {
  const Stream d(v[0]), s(v[1]);
  const bool stream = MayStream(v[0], v[1]);
  Scratch sc(d.size(), !stream);
  // alu(bypass, t, s1) = t: the second pass would change nothing.
  const bool second = !(in.alu1 == AluOp::kBypass && !in.has(kReverse1));
  float s0 = 0.0f, s1 = 0.0f;
  ForChunks(v[0].np, d.size(), sc.chunk(), [&](int p, int64_t e0, int64_t len) {
    if (e0 == 0) {
      s0 = ScalarAt(v[3], p, in.imm[0]);
      s1 = ScalarAt(v[4], p, in.imm[1]);
    }
    const RowIn x = s.In(p, e0, len, sc.buf(0));
    const RowOut out = d.Out(p, e0, sc.buf(1), stream);
    if (!second) {
      AluScalar(in.alu0, out, x, s0, in.has(kReverse0), len);
    } else if (in.has(kReverse0) || in.has(kReverse1) ||
               !AluScalarPair(in.alu0, in.alu1, out, x, s0, s1, len)) {
      // The intermediate stays fp32: in an f32 destination, or a buffer.
      const RowOut mid = out.t == RowType::kF32
                             ? out
                             : RowOut{reinterpret_cast<uint8_t*>(sc.buf(1)), RowType::kF32};
      AluScalar(in.alu0, mid, x, s0, in.has(kReverse0), len);
      AluScalar(in.alu1, out, RowIn{mid.p, RowType::kF32}, s1, in.has(kReverse1), len);
    }
    d.Commit(p, e0, len, out);
  });
}

// dst = (data op0 s0) op1 tensor, each op one fp32 rounding; s0 is the
// [P, 1] column in slot 3 or imm[0].
inline void ScalarTensorTensor(const Instr& in, const std::array<View, 5>& v) {
  const Stream d(v[0]), a(v[1]), b(v[2]);
  const bool stream = MayStream(v[0], v[1]) && MayStream(v[0], v[2]);
  Scratch sc(d.size(), !stream);
  const bool reversed = in.has(kReverse0) || in.has(kReverse1);
  float s0 = 0.0f;
  ForChunks(v[0].np, d.size(), sc.chunk(), [&](int p, int64_t e0, int64_t len) {
    if (e0 == 0) s0 = ScalarAt(v[3], p, in.imm[0]);
    const RowIn x = a.In(p, e0, len, sc.buf(0)), t = b.In(p, e0, len, sc.buf(1));
    const RowOut out = d.Out(p, e0, sc.buf(2), stream);
    if (reversed || !AluScalarTensorPair(in.alu0, in.alu1, out, x, s0, t, len)) {
      // The fp32 intermediate in buf(0): x is either there already (decoded,
      // overwritten element by element) or read in place from its row.
      const RowOut mid{reinterpret_cast<uint8_t*>(sc.buf(0)), RowType::kF32};
      AluScalar(in.alu0, mid, x, s0, in.has(kReverse0), len);
      const RowIn m{mid.p, RowType::kF32};
      if (in.has(kReverse1)) {
        AluRows(in.alu1, out, t, m, len);
      } else {
        AluRows(in.alu1, out, m, t, len);
      }
    }
    d.Commit(p, e0, len, out);
  });
}

// ---- activation ----

// dst = func(src * scale + bias); the optional accum column (slot 2) gets
// reduce(add) of the fp32 results, written after the partition's row.
inline void Activation(const Instr& in, const std::array<View, 5>& v) {
  const Stream d(v[0]), s(v[1]);
  const bool stream = MayStream(v[0], v[1]);
  const bool accum = !v[2].empty();
  const int64_t n = d.size();
  Scratch sc(n, !stream);
  for (int p = 0; p < v[0].np; ++p) {
    const float scale = ScalarAt(v[4], p, in.imm[0]);
    const float bias = ScalarAt(v[3], p, in.imm[1]);
    Partials<AluOp::kAdd> sum;
    for (int64_t e0 = 0; e0 < n; e0 += sc.chunk()) {
      const int64_t len = std::min(sc.chunk(), n - e0);
      RowOut out = d.Out(p, e0, sc.buf(1), stream);
      if (accum && out.t != RowType::kF32)  // the sum wants the results before rounding
        out = RowOut{reinterpret_cast<uint8_t*>(sc.buf(1)), RowType::kF32};
      ActivationRow(in.func, out, s.In(p, e0, len, sc.buf(0)), scale, bias, len);
      if (accum) sum.Fold(reinterpret_cast<const float*>(out.p), len);
      d.Commit(p, e0, len, out);
    }
    if (accum) encode(v[2].dtype, sum.Finish(), v[2].row(p));
  }
}

// ---- memset ----

inline void Memset(const View& dst, float value) {
  const Stream d(dst);
  const int64_t n = d.size(), esz = d.esz();
  uint8_t elem[4];
  encode(dst.dtype, value, elem);
  // A chunk's worth of the encoded element, copied run by run.
  std::vector<uint8_t> pattern(size_t(std::min(n, kChunk) * esz));
  for (size_t i = 0; i < pattern.size(); i += size_t(esz))
    std::memcpy(&pattern[i], elem, size_t(esz));
  ForChunks(dst.np, n, kChunk, [&](int p, int64_t e0, int64_t len) {
    d.WriteRaw(dst.row(p), e0, len, pattern.data());
  });
}

// ---- iota / affine_select ----

// out[k] = affine_value(a, p, i) for elements [e0, e0 + len) of `ap` (the
// destination's own dims, not a simplified walk: the pattern's multipliers
// belong to them), in int32 arithmetic that wraps.
inline void AffineChunk(const Affine& a, const AccessPattern& ap, int p, int64_t e0, int64_t len,
                        int32_t* out) {
  const int nd = std::max(ap.ndim, 1);
  std::array<int64_t, kMaxDims> shape{}, idx{};
  std::array<uint32_t, kMaxDims> mult{};
  for (int d = 0; d < nd; ++d) {
    shape[d] = ap.ndim ? ap.shape[d] : 1;
    mult[d] = d < int(a.free.size()) ? uint32_t(a.free[size_t(d)]) : 0u;
  }
  int64_t e = e0;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = e % shape[d];
    e /= shape[d];
  }
  const uint32_t base = uint32_t(a.base) + uint32_t(a.channel) * uint32_t(p);
  const int in = nd - 1;
  for (int64_t k = 0; k < len;) {
    uint32_t outer = base;  // the value at idx with the innermost index 0
    for (int d = 0; d < in; ++d) outer += mult[d] * uint32_t(idx[d]);
    const int64_t run = std::min(len - k, shape[in] - idx[in]);
    for (int64_t j = 0; j < run; ++j)
      out[k + j] = int32_t(outer + mult[in] * uint32_t(idx[in] + j));
    k += run;
    idx[in] += run;
    for (int d = in; d > 0 && idx[d] == shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// dst[p, i] = affine value, exactly as int32, or as its nearest fp32.
inline void Iota(const Instr& in, const View& dst) {
  const Stream d(dst);
  HWY_ALIGN int32_t vals[kChunk];
  HWY_ALIGN float fl[kChunk];
  ForChunks(dst.np, d.size(), kChunk, [&](int p, int64_t e0, int64_t len) {
    AffineChunk(in.affine, dst.ap, p, e0, len, vals);
    if (dst.dtype == DType::kI32) {
      d.WriteRaw(dst.row(p), e0, len, reinterpret_cast<const uint8_t*>(vals));
    } else {
      for (int64_t k = 0; k < len; ++k) fl[k] = static_cast<float>(vals[k]);
      d.Write(p, e0, len, fl);
    }
  });
}

// dst = alu(cmp, float(value), 0) != 0 ? src : imm[0].
inline void AffineSelect(const Instr& in, const std::array<View, 5>& v) {
  const Stream d(v[0]), s(v[1]);
  const bool stream = MayStream(v[0], v[1]);
  Scratch sc(d.size(), !stream);
  std::vector<int32_t> vals(size_t(sc.chunk()));
  const hn::ScalableTag<float> df;
  const auto fill = hn::Set(df, in.imm[0]);
  const auto zero = hn::Zero(df);
  ForChunks(v[0].np, d.size(), sc.chunk(), [&](int p, int64_t e0, int64_t len) {
    const float* x = s.Read(p, e0, len, sc.buf(0));
    AffineChunk(in.affine, v[0].ap, p, e0, len, vals.data());
    float* value = sc.buf(1);
    for (int64_t k = 0; k < len; ++k) value[k] = static_cast<float>(vals[size_t(k)]);
    float* out = stream ? d.Target(p, e0, sc.buf(2)) : sc.buf(2);
    WithAluOp(in.alu0, [&](auto k) {
      Map2(df, out, x, value, len, [&](auto xv, auto val) {
        return hn::IfThenElse(hn::Eq(AluV<decltype(k)::value>(df, val, zero), zero), fill, xv);
      });
    });
    d.Write(p, e0, len, out);
  });
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
