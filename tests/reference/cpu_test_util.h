// Shared by the CPU reference tests (cpu_*_test.cc): an arena of operands
// with random contents, a scalar reference executor written from
// isa/semantics.h and isa/numerics.h (element by element, via
// AccessPattern::for_each, independent of the SIMD code's walks), and a check
// that runs an instruction on every compiled and supported Highway target and
// compares the whole arena with the reference's.
#pragma once

// The reference's products and sums must round one by one, like the engines
// (GCC would otherwise contract them into FMAs when FMA is enabled).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <ncore/isa/instr.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/semantics.h>
#include <ncore/reference/cpu_ops.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace ncore::test {

using cpu::View;

// ---- Access patterns ----

inline AccessPattern pattern(std::initializer_list<int64_t> shape,
                             std::initializer_list<int64_t> stride, int64_t offset = 0) {
  AccessPattern ap;
  ap.offset = offset;
  for (int64_t s : shape) ap.shape[ap.ndim++] = s;
  int d = 0;
  for (int64_t s : stride) ap.stride[d++] = s;
  return ap;
}

// Several walks over n elements (each a different shape, contiguity and
// order): dense 1-D, dense 3-D, strided, padded rows, transposed, 4-D with a
// size-1 dim, and (when `broadcast`) patterns that read elements repeatedly.
inline std::vector<AccessPattern> patterns(int64_t n, bool broadcast) {
  std::vector<AccessPattern> r;
  r.push_back(AccessPattern::dense({n}));
  r.push_back(pattern({n}, {3}, 1));  // strided, with an offset
  int64_t a = 1;
  for (int64_t f = 2; f * f <= n; ++f)
    if (n % f == 0) a = f;  // the largest factor up to sqrt(n)
  if (a > 1) {
    const int64_t b = n / a;
    r.push_back(AccessPattern::dense({1, a, b}));                 // merges into one run
    r.push_back(pattern({a, b}, {b + 5, 1}));                     // padded rows
    r.push_back(pattern({a, b}, {1, a}));                         // transposed: stride-a runs
    r.push_back(pattern({a, 1, b, 1}, {2 * b + 1, 7, 2, 1}, 2));  // 4-D, strided inner
    if (broadcast) r.push_back(pattern({a, b}, {1, 0}));          // each of a values b times
  }
  if (broadcast) r.push_back(pattern({n}, {0}, 4));  // one element n times
  return r;
}

// ---- Random contents ----

enum class Fill {
  kValues,    // moderate values, about 3% specials (NaN, +-inf, +-0, subnormal, huge)
  kBits,      // any bit pattern of the dtype (every NaN payload included)
  kPositive,  // (0, 16] and about 3% specials
  kFinite,    // moderate values, no specials
};

inline float special(std::mt19937& rng) {
  static const float kSpecials[] = {std::numeric_limits<float>::quiet_NaN(),
                                    -std::numeric_limits<float>::quiet_NaN(),
                                    std::numeric_limits<float>::infinity(),
                                    -std::numeric_limits<float>::infinity(),
                                    0.0f,
                                    -0.0f,
                                    1e-40f,
                                    -3e-39f,
                                    3e38f,
                                    -2e38f,
                                    1e6f,
                                    65504.0f,
                                    250.0f,
                                    57344.0f,
                                    0x1p25f + 3.0f};
  return kSpecials[rng() % (sizeof(kSpecials) / sizeof(kSpecials[0]))];
}

inline float random_value(std::mt19937& rng, Fill fill) {
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  const bool spec = fill != Fill::kFinite && rng() % 32 == 0;
  switch (fill) {
    case Fill::kPositive: return spec ? special(rng) : std::max(std::fabs(u(rng)) * 2.0f, 0x1p-10f);
    default: return spec ? special(rng) : u(rng);
  }
}

// Writes a random element of dtype t at q.
inline void random_element(DType t, uint8_t* q, std::mt19937& rng, Fill fill) {
  if (fill == Fill::kBits) {
    for (int i = 0; i < dtype_size(t); ++i) q[i] = uint8_t(rng());
    return;
  }
  if (t == DType::kI32) {  // mostly small, some beyond 2^24 (inexact in fp32)
    const int32_t i = rng() % 8 == 0 ? int32_t(rng()) : int32_t(rng() % 201) - 100;
    std::memcpy(q, &i, 4);
    return;
  }
  encode(t, random_value(rng, fill), q);
}

// ---- The arena ----

// An operand of a test case: `np` partitions of pattern `ap` at byte `off`
// of the arena, partition p at off + p * pitch bytes.
struct Spec {
  DType dtype = DType::kF32;
  int np = 0;
  AccessPattern ap;
  int64_t off = 0, pitch = 0;
};

struct Opnd {
  int id = -1;  // -1: an empty slot
};

// Per-slot comparison: bits, or within `ulps` of the reference (ordered
// distance in the slot's dtype); NaN matches NaN whatever the payload when
// any_nan (arithmetic may pick either operand's payload).
struct Tolerance {
  std::array<int64_t, 5> ulps{};
  bool any_nan = true;
};

inline int64_t ordered(DType t, uint32_t bits) {
  if (t == DType::kI32) return int64_t(int32_t(bits));
  const int nbits = 8 * dtype_size(t);
  const uint32_t sign = 1u << (nbits - 1);
  return (bits & sign) ? -int64_t(bits & (sign - 1)) : int64_t(bits);
}

inline bool is_nan_bits(DType t, const uint8_t* q) {
  return is_float(t) && std::isnan(decode(t, q));
}

class Arena {
 public:
  explicit Arena(uint32_t seed) : rng_(seed) {}

  std::mt19937& rng() { return rng_; }

  // A new operand over fresh bytes. pitch: bytes between partitions; -1 =
  // the pattern's extent plus a few elements, 0 = a partition broadcast.
  Opnd place(DType t, int np, const AccessPattern& ap, Fill fill = Fill::kValues,
             int64_t pitch = -1) {
    const int64_t esz = dtype_size(t);
    const int64_t extent = (ap.max_offset() + 1) * esz;
    Spec s{t, np, ap, 0, pitch < 0 ? extent + esz * int64_t(1 + rng_() % 5) : pitch};
    s.off = round_up(int64_t(bytes_.size()) + kGuard, 64) + esz * int64_t(rng_() % 3);
    const int64_t end = s.off + s.pitch * (np - 1) + extent + kGuard;
    const size_t old = bytes_.size();
    bytes_.resize(size_t(end));
    for (size_t i = old; i < bytes_.size(); ++i) bytes_[i] = uint8_t(rng_());
    specs_.push_back(s);
    fill_elements(s, fill);
    return Opnd{int(specs_.size() - 1)};
  }

  // An operand over the bytes of `of` (in place, or overlapping), from its
  // byte `shift` on; its elements keep their contents.
  Opnd alias(Opnd of, DType t, int np, const AccessPattern& ap, int64_t shift = 0,
             int64_t pitch = -2) {
    Spec s = specs_[size_t(of.id)];
    s.dtype = t;
    s.np = np;
    s.ap = ap;
    s.off += shift;
    if (pitch != -2) s.pitch = pitch;
    specs_.push_back(s);
    return Opnd{int(specs_.size() - 1)};
  }

  // Refills an operand's elements.
  void fill(Opnd o, Fill f) { fill_elements(specs_[size_t(o.id)], f); }
  // Sets element e (row-major) of partition p of o to v.
  void set(Opnd o, int p, int64_t e, float v) {
    const Spec& s = specs_[size_t(o.id)];
    const View w = view(bytes_, o);
    int64_t k = 0;
    w.ap.for_each([&](int64_t off) {
      if (k++ == e) encode(s.dtype, v, w.row(p) + off * dtype_size(s.dtype));
    });
  }

  View view(std::vector<uint8_t>& mem, Opnd o) const {
    View v;
    if (o.id < 0) return v;
    const Spec& s = specs_[size_t(o.id)];
    v.base = mem.data() + s.off + s.ap.offset * dtype_size(s.dtype);
    v.pitch = s.pitch;
    v.np = s.np;
    v.dtype = s.dtype;
    v.ap = s.ap;
    v.ap.offset = 0;
    return v;
  }
  std::array<View, 5> views(std::vector<uint8_t>& mem, const std::array<Opnd, 5>& o) const {
    std::array<View, 5> v;
    for (size_t i = 0; i < 5; ++i) v[i] = view(mem, o[i]);
    return v;
  }

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const Spec& spec(Opnd o) const { return specs_[size_t(o.id)]; }

 private:
  static constexpr int64_t kGuard = 64;  // untouched bytes around every operand
  static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

  void fill_elements(const Spec& s, Fill f) {
    const int64_t esz = dtype_size(s.dtype);
    for (int p = 0; p < s.np; ++p)
      s.ap.for_each([&](int64_t off) {
        random_element(s.dtype, bytes_.data() + s.off + p * s.pitch + off * esz, rng_, f);
      });
  }

  std::mt19937 rng_;
  std::vector<uint8_t> bytes_;
  std::vector<Spec> specs_;
};

// ---- The scalar reference ----

inline std::vector<int64_t> offsets(const AccessPattern& ap) {
  std::vector<int64_t> o;
  o.reserve(size_t(ap.size()));
  ap.for_each([&](int64_t x) { o.push_back(x); });
  return o;
}
inline float get(const View& v, int p, int64_t off) {
  return decode(v.dtype, v.row(p) + off * dtype_size(v.dtype));
}
inline void put(const View& v, int p, int64_t off, float x) {
  encode(v.dtype, x, v.row(p) + off * dtype_size(v.dtype));
}
inline std::vector<float> get_row(const View& v, int p, const std::vector<int64_t>& o) {
  std::vector<float> x(o.size());
  for (size_t i = 0; i < o.size(); ++i) x[i] = get(v, p, o[i]);
  return x;
}
inline void put_row(const View& v, int p, const std::vector<int64_t>& o,
                    const std::vector<float>& x) {
  for (size_t i = 0; i < o.size(); ++i) put(v, p, o[i], x[i]);
}
inline float scalar_at(const View& v, int p, float imm) { return v.empty() ? imm : get(v, p, 0); }

// The multi-index of every element of ap, row-major.
inline std::vector<std::array<int64_t, 4>> indices(const AccessPattern& ap) {
  std::vector<std::array<int64_t, 4>> r;
  std::array<int64_t, kMaxDims> idx{};
  for (int64_t e = 0; e < ap.size(); ++e) {
    std::array<int64_t, 4> i{};
    for (int d = 0; d < std::min(ap.ndim, 4); ++d) i[size_t(d)] = idx[size_t(d)];
    r.push_back(i);
    for (int d = ap.ndim - 1; d >= 0 && ++idx[size_t(d)] == ap.shape[d]; --d) idx[size_t(d)] = 0;
  }
  return r;
}

// Executes `in` element by element. Each partition's inputs are read before
// it is written (the interpreter's rule for overlapping operands).
inline void ref_execute(const Instr& in, const std::array<View, 5>& v) {
  const View& d = v[0];
  const View& s = v[1];
  const std::vector<int64_t> od = offsets(d.ap);
  const int64_t n = int64_t(od.size());
  switch (in.op) {
    case Opcode::kDma:
    case Opcode::kTensorCopy: {
      const std::vector<int64_t> os = offsets(s.ap);
      const int64_t esz = dtype_size(d.dtype);
      for (int p = 0; p < d.np; ++p) {
        if (d.dtype == s.dtype) {  // bits
          std::vector<uint8_t> raw(size_t(n * esz));
          for (int64_t i = 0; i < n; ++i)
            std::memcpy(&raw[size_t(i * esz)], s.row(p) + os[size_t(i)] * esz, size_t(esz));
          for (int64_t i = 0; i < n; ++i)
            std::memcpy(d.row(p) + od[size_t(i)] * esz, &raw[size_t(i * esz)], size_t(esz));
        } else {
          put_row(d, p, od, get_row(s, p, os));
        }
      }
      return;
    }
    case Opcode::kDmaTranspose:
    case Opcode::kTranspose: {  // dst row r, element b F + c = src row c, element b P + r
      const std::vector<int64_t> os = offsets(s.ap);
      const int64_t B = int64_t(os.size()) / d.np;  // blocks: > 1 only for an SBUF dma_transpose
      const int64_t esz = dtype_size(s.dtype);
      const bool bits = in.op == Opcode::kDmaTranspose;
      std::vector<std::vector<uint8_t>> raw(size_t(s.np));
      std::vector<std::vector<float>> val(size_t(s.np));
      for (int c = 0; c < s.np; ++c) {
        val[size_t(c)] = get_row(s, c, os);
        raw[size_t(c)].resize(size_t(int64_t(os.size()) * esz));
        for (size_t i = 0; i < os.size(); ++i)
          std::memcpy(&raw[size_t(c)][i * size_t(esz)], s.row(c) + os[i] * esz, size_t(esz));
      }
      for (int r = 0; r < d.np; ++r)
        for (int64_t b = 0; b < B; ++b)
          for (int c = 0; c < s.np; ++c) {
            const size_t to = size_t(b * s.np + c), from = size_t(b * d.np + r);
            if (bits)
              std::memcpy(d.row(r) + od[to] * esz, &raw[size_t(c)][from * size_t(esz)], size_t(esz));
            else
              put(d, r, od[to], val[size_t(c)][from]);
          }
      return;
    }
    case Opcode::kMatmul: ADD_FAILURE() << "matmul is tested by matmul_test"; return;
    case Opcode::kTensorTensor: {
      const std::vector<int64_t> oa = offsets(s.ap), ob = offsets(v[2].ap);
      for (int p = 0; p < d.np; ++p) {
        std::vector<float> x = get_row(s, p, oa);
        const std::vector<float> y = get_row(v[2], p, ob);
        for (size_t i = 0; i < x.size(); ++i) x[i] = alu(in.alu0, x[i], y[i]);
        put_row(d, p, od, x);
      }
      return;
    }
    case Opcode::kTensorScalar: {
      const std::vector<int64_t> os = offsets(s.ap);
      for (int p = 0; p < d.np; ++p) {
        const float s0 = scalar_at(v[3], p, in.imm[0]), s1 = scalar_at(v[4], p, in.imm[1]);
        std::vector<float> x = get_row(s, p, os);
        for (float& t : x) {
          t = in.has(kReverse0) ? alu(in.alu0, s0, t) : alu(in.alu0, t, s0);
          t = in.has(kReverse1) ? alu(in.alu1, s1, t) : alu(in.alu1, t, s1);
        }
        put_row(d, p, od, x);
      }
      return;
    }
    case Opcode::kScalarTensorTensor: {  // isa/semantics.h scalar_tensor_tensor
      const std::vector<int64_t> oa = offsets(s.ap), ob = offsets(v[2].ap);
      for (int p = 0; p < d.np; ++p) {
        const float s0 = scalar_at(v[3], p, in.imm[0]);
        std::vector<float> x = get_row(s, p, oa);
        const std::vector<float> y = get_row(v[2], p, ob);
        for (size_t i = 0; i < x.size(); ++i)
          x[i] = scalar_tensor_tensor(in.alu0, in.alu1, x[i], s0, y[i], in.has(kReverse0),
                                      in.has(kReverse1));
        put_row(d, p, od, x);
      }
      return;
    }
    case Opcode::kTensorReduce: {
      AccessPattern kept, block;
      for (int k = 0; k < s.ap.ndim; ++k) {
        AccessPattern& part = k < s.ap.ndim - in.axes ? kept : block;
        part.shape[part.ndim] = s.ap.shape[k];
        part.stride[part.ndim] = s.ap.stride[k];
        ++part.ndim;
      }
      const std::vector<int64_t> ok = offsets(kept), ob = offsets(block);
      for (int p = 0; p < d.np; ++p) {
        std::vector<float> y;
        for (int64_t base : ok) {
          const float r = reduce(in.alu0, int64_t(ob.size()),
                                 [&](int64_t j) { return get(s, p, base + ob[size_t(j)]); });
          y.push_back(in.has(kNegate) ? -r : r);
        }
        put_row(d, p, od, y);
      }
      return;
    }
    case Opcode::kActivation: {
      const std::vector<int64_t> os = offsets(s.ap);
      for (int p = 0; p < d.np; ++p) {
        const float scale = scalar_at(v[4], p, in.imm[0]), bias = scalar_at(v[3], p, in.imm[1]);
        std::vector<float> x = get_row(s, p, os);
        for (float& t : x) {
          const float scaled = t * scale;
          const float shifted = scaled + bias;
          t = activate(in.func, shifted);
        }
        const float sum = reduce(AluOp::kAdd, n, [&](int64_t j) { return x[size_t(j)]; });
        put_row(d, p, od, x);
        if (!v[2].empty()) put(v[2], p, 0, sum);
      }
      return;
    }
    case Opcode::kMemset:
      for (int p = 0; p < d.np; ++p)
        for (int64_t o : od) put(d, p, o, in.imm[0]);
      return;
    case Opcode::kIota:
    case Opcode::kAffineSelect: {
      const auto idx = indices(d.ap);
      const std::vector<int64_t> os = offsets(s.ap);
      for (int p = 0; p < d.np; ++p) {
        std::vector<float> x =
            in.op == Opcode::kAffineSelect ? get_row(s, p, os) : std::vector<float>();
        for (size_t i = 0; i < od.size(); ++i) {
          const int32_t a = affine_value(in.affine, p, idx[i]);
          if (in.op == Opcode::kIota) {
            if (d.dtype == DType::kI32)
              std::memcpy(d.row(p) + od[i] * 4, &a, 4);
            else
              put(d, p, od[i], float(a));
          } else if (alu(in.alu0, float(a), 0.0f) == 0.0f) {
            x[i] = in.imm[0];
          }
        }
        if (in.op == Opcode::kAffineSelect) put_row(d, p, od, x);
      }
      return;
    }
    case Opcode::kBnStats: {
      const std::vector<int64_t> os = offsets(s.ap);
      for (int p = 0; p < d.np; ++p) {
        const std::vector<float> x = get_row(s, p, os);
        const int64_t m = int64_t(x.size());
        const Moments e = moments((m + 1) / 2, [&](int64_t j) { return x[size_t(2 * j)]; });
        const Moments o = moments(m / 2, [&](int64_t j) { return x[size_t(2 * j + 1)]; });
        put_row(d, p, od, {e.count, e.mean, e.m2, o.count, o.mean, o.m2});
      }
      return;
    }
    case Opcode::kBnAggr: {
      const std::vector<int64_t> os = offsets(s.ap);
      for (int p = 0; p < d.np; ++p) {
        const std::vector<float> x = get_row(s, p, os);
        Moments all;
        for (size_t g = 0; g + 3 <= x.size(); g += 3)
          all = combine(all, Moments{x[g], x[g + 1], x[g + 2]});
        const float nan = std::numeric_limits<float>::quiet_NaN();
        put_row(d, p, od,
                {all.count == 0.0f ? nan : all.mean, all.count == 0.0f ? nan : all.m2 / all.count});
      }
      return;
    }
  }
}

// ---- Running on every target ----

inline std::vector<int64_t> targets() { return hwy::SupportedAndGeneratedTargets(); }

// Runs f(target) with dispatch forced to each compiled and supported target.
template <class F>
void for_each_target(F&& f) {
  for (int64_t t : targets()) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(hwy::TargetName(t));
    f(t);
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Which slots an instruction writes.
inline std::vector<int> written_slots(const Instr& in, const std::array<Opnd, 5>& o) {
  std::vector<int> w{0};
  if (in.op == Opcode::kActivation && o[2].id >= 0) w.push_back(2);
  return w;
}

// Compares the SIMD arena `got` with the reference arena `want`: elements of
// the written slots per `tol`, every other byte exactly.
inline ::testing::AssertionResult same_arena(const Arena& a, const std::array<Opnd, 5>& o,
                                             const std::vector<int>& slots,
                                             const std::vector<uint8_t>& want,
                                             const std::vector<uint8_t>& got,
                                             const Tolerance& tol) {
  std::vector<bool> covered(want.size(), false);
  std::string bad;
  int nbad = 0;
  for (int slot : slots) {
    const Spec& s = a.spec(o[size_t(slot)]);
    const int64_t esz = dtype_size(s.dtype);
    const std::vector<int64_t> off = offsets(s.ap);
    for (int p = 0; p < s.np; ++p)
      for (size_t e = 0; e < off.size(); ++e) {
        const int64_t pos = s.off + p * s.pitch + off[e] * esz;
        for (int64_t b = 0; b < esz; ++b) covered[size_t(pos + b)] = true;
        uint32_t wb = 0, gb = 0;
        std::memcpy(&wb, &want[size_t(pos)], size_t(esz));
        std::memcpy(&gb, &got[size_t(pos)], size_t(esz));
        if (wb == gb) continue;
        const bool wn = is_nan_bits(s.dtype, &want[size_t(pos)]);
        const bool gn = is_nan_bits(s.dtype, &got[size_t(pos)]);
        if (wn && gn && tol.any_nan) continue;
        // Different bits are at least 1 ulp apart (+0 and -0 included).
        const int64_t dist =
            std::max<int64_t>(std::abs(ordered(s.dtype, wb) - ordered(s.dtype, gb)), 1);
        if (!wn && !gn && dist <= tol.ulps[size_t(slot)]) continue;
        if (nbad++ < 8) {
          std::ostringstream os;
          os << "\n  slot " << slot << " partition " << p << " element " << e << ": want "
             << decode(s.dtype, &want[size_t(pos)]) << " (0x" << std::hex << wb << ") got "
             << decode(s.dtype, &got[size_t(pos)]) << " (0x" << gb << ")";
          bad += os.str();
        }
      }
  }
  for (size_t i = 0; i < want.size(); ++i)
    if (!covered[i] && want[i] != got[i] && nbad++ < 8)
      bad += "\n  byte " + std::to_string(i) + " outside the written elements changed";
  if (nbad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << nbad << " mismatches:" << bad;
}

// Runs `in` on operands `o` with the reference and on every target, and
// expects the same arena. after(views, target) may check more per target.
inline void check(const Arena& a, const Instr& in, const std::array<Opnd, 5>& o,
                  const Tolerance& tol = {},
                  const std::function<void(const std::array<View, 5>&)>& after = {}) {
  std::vector<uint8_t> want = a.bytes();
  ref_execute(in, a.views(want, o));
  const std::vector<int> slots = written_slots(in, o);
  for_each_target([&](int64_t target) {
    std::vector<uint8_t> got = a.bytes();
    const std::array<View, 5> v = a.views(got, o);
    cpu::execute(in, v);
    ASSERT_STREQ(cpu::execute_target_name(), hwy::TargetName(target));
    EXPECT_TRUE(same_arena(a, o, slots, want, got, tol))
        << opcode_name(in.op) << " alu0 " << alu_name(in.alu0) << " alu1 " << alu_name(in.alu1)
        << " func " << act_name(in.func);
    if (after) after(v);
  });
}

inline Instr make(Opcode op, AluOp alu0 = AluOp::kBypass) {
  Instr in;
  in.op = op;
  in.engine = default_engine(op);
  in.alu0 = alu0;
  return in;
}

}  // namespace ncore::test
