// The interpreter: every instruction against hand-computed values (exact
// where the data make it exact), casts for every dtype pair, PSUM
// accumulation, bn_stats/bn_aggr against double, poison reports, the
// adversarial schedule catching dropped dependencies, deadlock, fp32-only
// mode, binding errors, hostile programs, determinism, and replay speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <ncore/isa/emit/emitter.h>
#include <ncore/isa/sim/interpreter.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32;
constexpr DType bf16 = DType::kBF16;
constexpr DType f16 = DType::kF16;
constexpr DType i32 = DType::kI32;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Host tensors by name, encoded in their dtype.
class Io {
 public:
  void in(const std::string& name, DType t, const std::vector<float>& vals) {
    Tensor& x = map_[name];
    x.dtype = t;
    x.bytes.resize(vals.size() * size_t(dtype_size(t)));
    for (size_t i = 0; i < vals.size(); ++i) encode(t, vals[i], &x.bytes[i * size_t(dtype_size(t))]);
  }
  void raw(const std::string& name, DType t, std::vector<uint8_t> bytes) {
    map_[name] = Tensor{t, std::move(bytes)};
  }
  // An output of n elements, filled with a byte pattern no result should match.
  void out(const std::string& name, DType t, size_t n) {
    map_[name] = Tensor{t, std::vector<uint8_t>(n * size_t(dtype_size(t)), 0xA5)};
  }
  std::vector<float> get(const std::string& name) const {
    const Tensor& x = map_.at(name);
    std::vector<float> v(x.bytes.size() / size_t(dtype_size(x.dtype)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = decode(x.dtype, &x.bytes[i * size_t(dtype_size(x.dtype))]);
    return v;
  }
  const std::vector<uint8_t>& bytes(const std::string& name) const { return map_.at(name).bytes; }
  void bind(Interpreter& it) {
    for (auto& [name, x] : map_) it.bind(name, x.bytes.data(), x.bytes.size());
  }
  // Binds, runs, and returns the interpreter's stats.
  InterpStats run(const Program& p, InterpOptions opt = {}) {
    Interpreter it(p, opt);
    bind(it);
    it.run();
    return it.stats();
  }

 private:
  struct Tensor {
    DType dtype = f32;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Tensor> map_;
};

// Replaces the dependency lists (CSR) of a program.
void set_deps(Program& p, const std::vector<std::vector<uint32_t>>& deps) {
  p.dep_begin = {0};
  p.dep_ids.clear();
  for (const auto& d : deps) {
    p.dep_ids.insert(p.dep_ids.end(), d.begin(), d.end());
    p.dep_begin.push_back(uint32_t(p.dep_ids.size()));
  }
}

// Removes the edge i -> d, which must exist.
void drop_dep(Program& p, uint32_t i, uint32_t d) {
  std::vector<std::vector<uint32_t>> deps;
  bool found = false;
  for (size_t k = 0; k < p.instrs.size(); ++k) {
    deps.emplace_back();
    for (uint32_t x : p.deps(k)) {
      if (k == i && x == d) found = true;
      else deps.back().push_back(x);
    }
  }
  ASSERT_TRUE(found) << "no dependency #" << i << " -> #" << d;
  set_deps(p, deps);
}

std::vector<float> iota_values(size_t n, float start = 0.0f, float step = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * float(i);
  return v;
}

std::string error_of(const Program& p, Io& io, InterpOptions opt = {}) {
  try {
    io.run(p, opt);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------- DMA and casts ----------------

TEST(Dma, RoundTripAndStridedHbmViews) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {4, 6});
    auto y = nc.hbm("y", f32, {4, 6}, HbmKind::kOutput);
    auto z = nc.hbm("z", f32, {3, 2}, HbmKind::kOutput);
    auto w = nc.hbm("w", f32, {6, 4}, HbmKind::kOutput);
    auto v = nc.hbm("v", f32, {6}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 4, {6});
    auto u = nc.sbuf(f32, 3, {2});
    auto s = nc.sbuf(f32, 6, {4});
    auto r = nc.sbuf(f32, 6, {1});
    nc.dma(t, x);
    nc.dma(y, t);
    nc.dma(u, x.slice(0, 1, 4).slice(1, 2, 4));  // rows 1..3, columns 2..3
    nc.dma(z, u);
    nc.dma(s, x.transpose());  // dim 0 of the [6, 4] view -> partitions
    nc.dma(w, s);
    nc.dma(r, x.index(0, 2));  // a 1-D view: one element per partition
    nc.dma(v, r);
  });
  Io io;
  const std::vector<float> x = iota_values(24);
  io.in("x", f32, x);
  io.out("y", f32, 24);
  io.out("z", f32, 6);
  io.out("w", f32, 24);
  io.out("v", f32, 6);
  io.run(p);
  EXPECT_EQ(io.get("y"), x);
  EXPECT_EQ(io.get("z"), (std::vector<float>{8, 9, 14, 15, 20, 21}));
  std::vector<float> xt(24);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) xt[size_t(j * 4 + i)] = x[size_t(i * 6 + j)];
  EXPECT_EQ(io.get("w"), xt);
  EXPECT_EQ(io.get("v"), (std::vector<float>{12, 13, 14, 15, 16, 17}));
}

TEST(Dma, TransposeLoad) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", bf16, {4, 3});  // [F, P]
    auto y = nc.hbm("y", bf16, {3, 4}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 3, {4});
    nc.dma_transpose(t, x);
    nc.dma(y, t);
  });
  Io io;
  io.in("x", bf16, iota_values(12, 0.5f));
  io.out("y", bf16, 12);
  io.run(p);
  EXPECT_EQ(io.get("y"),
            (std::vector<float>{0.5, 3.5, 6.5, 9.5, 1.5, 4.5, 7.5, 10.5, 2.5, 5.5, 8.5, 11.5}));
}

// SBUF -> SBUF with blocks: src [F, B P] -> dst[p, b F + f] = src[f, b P + p],
// bits; in fp32-only mode the unrounded values travel with them.
TEST(Dma, TransposeSbufBlocks) {
  constexpr int64_t F = 4, B = 2, P = 3;
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {F, B * P});
    auto y = nc.hbm("y", f32, {P, B * F}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, F, {B, P});
    auto u = nc.sbuf(bf16, P, {B, F});
    auto o = nc.sbuf(f32, P, {B * F});
    nc.dma(t, x);
    nc.dma_transpose(u, t);
    nc.tensor_copy(o, u);
    nc.dma(y, o);
  });
  std::vector<float> x = iota_values(F * B * P, 0.5f);
  x[1] = 1.0f + 0x1p-10f;  // not a bf16 value
  std::vector<float> want(size_t(P * B * F));
  for (int64_t q = 0; q < P; ++q)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t f = 0; f < F; ++f) want[size_t(q * B * F + b * F + f)] = x[size_t(f * B * P + b * P + q)];
  for (bool fp32_only : {false, true}) {
    Io io;
    io.in("x", f32, x);
    io.out("y", f32, P * B * F);
    io.run(p, {.fp32_only = fp32_only});
    std::vector<float> expect = want;
    if (!fp32_only)
      for (float& e : expect) e = round_to(bf16, e);
    EXPECT_EQ(io.get("y"), expect) << "fp32_only " << fp32_only;
  }
}

// Values exercising rounding (ties, overflow, subnormals), signs and specials.
std::vector<float> cast_probe_values() {
  return {0.0f,        -0.0f,       1.0f,         -2.5f,       1.0f + 0x1p-8f, 1.0f + 0x3p-8f,
          3.140625f,   17.0f,       19.0f,        247.0f,      248.0f,         65519.0f,
          65520.0f,    -300.75f,    16777217.0f,  0x1p-20f,    0x1p-10f,       1e30f,
          -1e30f,      kInf,        -kInf,        kNaN,        2.5f,           -3.5f};
}

// Every (src, dst) dtype pair on three paths: cast on load (DMA into a tile
// of dst's dtype), tensor_copy between tiles, cast on store (DMA from a tile
// of src's dtype to HBM of dst's). Each must equal encode(dst, decode(src)),
// and be bit-exact when the dtypes match.
TEST(Cast, EveryDtypePairOnEveryPath) {
  const std::vector<float> vals = cast_probe_values();
  const int64_t n = int64_t(vals.size());
  for (DType s : kAllDTypes) {
    for (DType d : kAllDTypes) {
      Program p = emit(kTrn2, [&](DeviceCore& nc) {
        auto x = nc.hbm("x", s, {1, n});
        auto y_load = nc.hbm("y_load", d, {1, n}, HbmKind::kOutput);
        auto y_copy = nc.hbm("y_copy", d, {1, n}, HbmKind::kOutput);
        auto y_store = nc.hbm("y_store", d, {1, n}, HbmKind::kOutput);
        auto ts = nc.sbuf(s, 1, {n});
        auto td = nc.sbuf(d, 1, {n});
        auto td2 = nc.sbuf(d, 1, {n});
        nc.dma(td, x);
        nc.dma(y_load, td);
        nc.dma(ts, x);
        nc.tensor_copy(td2, ts);
        nc.dma(y_copy, td2);
        nc.dma(y_store, ts);
      });
      Io io;
      io.in("x", s, vals);
      for (const char* y : {"y_load", "y_copy", "y_store"}) io.out(y, d, vals.size());
      io.run(p);
      const std::vector<uint8_t>& xin = io.bytes("x");
      std::vector<uint8_t> want(vals.size() * size_t(dtype_size(d)));
      for (size_t i = 0; i < vals.size(); ++i) {
        if (s == d)
          std::memcpy(&want[i * size_t(dtype_size(d))], &xin[i * size_t(dtype_size(s))],
                      size_t(dtype_size(d)));
        else
          encode(d, decode(s, &xin[i * size_t(dtype_size(s))]), &want[i * size_t(dtype_size(d))]);
      }
      for (const char* y : {"y_load", "y_copy", "y_store"})
        EXPECT_EQ(io.bytes(y), want) << dtype_name(s) << " -> " << dtype_name(d) << " via " << y;
    }
  }
}

// Round to nearest even on write, by hand.
TEST(Cast, RoundsToNearestEvenOnWrite) {
  struct Case {
    DType t;
    std::vector<float> in, want;
  };
  const std::vector<Case> cases = {
      {bf16, {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -(1.0f + 0x1p-8f)}, {1.0f, 1.0f + 0x1p-6f, -1.0f}},
      {f16, {1.0f + 0x1p-11f, 65519.0f, 65520.0f}, {1.0f, 65504.0f, kInf}},
      {DType::kFP8E4M3, {17.0f, 19.0f, 247.0f, 248.0f}, {16.0f, 20.0f, 240.0f, kInf}},
      {DType::kFP8E5M2, {4.5f, 5.5f, 0x1.8p-16f}, {4.0f, 6.0f, 0x1p-15f}},
      {i32, {2.5f, 3.5f, -2.5f, 3e9f}, {2.0f, 4.0f, -2.0f, 2147483647.0f}},
  };
  for (const Case& c : cases) {
    const int64_t n = int64_t(c.in.size());
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto x = nc.hbm("x", f32, {1, n});
      auto y = nc.hbm("y", f32, {1, n}, HbmKind::kOutput);
      auto t = nc.sbuf(c.t, 1, {n});
      nc.dma(t, x);
      nc.dma(y, t);
    });
    Io io;
    io.in("x", f32, c.in);
    io.out("y", f32, c.in.size());
    io.run(p);
    EXPECT_EQ(io.get("y"), c.want) << dtype_name(c.t);
  }
}

// ---------------- Tensor engine ----------------

// stationary [K=3, M=2], moving [K=3, N=4]; dst = st^T @ mv, then accumulated again.
TEST(Matmul, SmallIntegersExactAndAccumulate) {
  for (DType t : {f32, bf16, f16, DType::kFP8E4M3}) {
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto a = nc.hbm("a", t, {3, 2});
      auto b = nc.hbm("b", t, {3, 4});
      auto y1 = nc.hbm("y1", f32, {2, 4}, HbmKind::kOutput);
      auto y2 = nc.hbm("y2", f32, {2, 4}, HbmKind::kOutput);
      auto st = nc.sbuf(t, 3, {2});
      auto mv = nc.sbuf(t, 3, {4});
      auto acc = nc.psum(f32, 2, {4});
      auto o = nc.sbuf(f32, 2, {4});
      nc.dma(st, a);
      nc.dma(mv, b);
      nc.matmul(acc, st, mv, false);
      nc.tensor_copy(o, acc);
      nc.dma(y1, o);
      nc.matmul(acc, st, mv, true);
      nc.tensor_copy(o, acc);
      nc.dma(y2, o);
    });
    Io io;
    io.in("a", t, {1, 2, 3, 4, 5, 6});
    io.in("b", t, {1, 0, 2, -1, 0, 1, 1, 2, 2, -1, 0, 1});
    io.out("y1", f32, 8);
    io.out("y2", f32, 8);
    const InterpStats st = io.run(p);
    EXPECT_EQ(io.get("y1"), (std::vector<float>{11, -2, 5, 10, 14, -2, 8, 12})) << dtype_name(t);
    EXPECT_EQ(io.get("y2"), (std::vector<float>{22, -4, 10, 20, 28, -4, 16, 24})) << dtype_name(t);
    EXPECT_EQ(st.matmul_macs, 2u * 3 * 2 * 4);
  }
}

// Each product rounds to fp32 before the add: with x = 1 + 2^-12,
// (-(1 + 2^-11)) + fl(x * x) = 0, while an FMA would give 2^-24. [4, 40]
// covers the register-blocked kernel and its edges at every vector width.
TEST(Matmul, NoFusedMultiplyAdd) {
  constexpr int M = 4, N = 40;
  const float x = 1.0f + 0x1p-12f;
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto a = nc.hbm("a", f32, {2, M});
    auto b = nc.hbm("b", f32, {2, N});
    auto y = nc.hbm("y", f32, {M, N}, HbmKind::kOutput);
    auto st = nc.sbuf(f32, 2, {M});
    auto mv = nc.sbuf(f32, 2, {N});
    auto acc = nc.psum(f32, M, {N});
    auto o = nc.sbuf(f32, M, {N});
    nc.dma(st, a);
    nc.dma(mv, b);
    nc.matmul(acc, st, mv, false);
    nc.tensor_copy(o, acc);
    nc.dma(y, o);
  });
  Io io;
  std::vector<float> a(2 * M, 1.0f), b(2 * N, -(1.0f + 0x1p-11f));
  std::fill(a.begin() + M, a.end(), x);
  std::fill(b.begin() + N, b.end(), x);
  io.in("a", f32, a);
  io.in("b", f32, b);
  io.out("y", f32, M * N);
  io.run(p);
  EXPECT_EQ(io.get("y"), std::vector<float>(M * N, 0.0f));
}

// dst + (sum over k), not ((dst + p0) + p1): 2^24 + (1 + 1) = 2^24 + 2,
// whereas adding the products one by one into 2^24 would round each away.
TEST(Matmul, AccumulateAddsTheWholeSumToPsum) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto a = nc.hbm("a", f32, {2, 1});
    auto b = nc.hbm("b", f32, {2, 1});
    auto y = nc.hbm("y", f32, {1, 1}, HbmKind::kOutput);
    auto st = nc.sbuf(f32, 2, {1});
    auto mv = nc.sbuf(f32, 2, {1});
    auto acc = nc.psum(f32, 1, {1});
    auto o = nc.sbuf(f32, 1, {1});
    nc.dma(st, a);
    nc.dma(mv, b);
    nc.memset(acc, 0x1p24f);
    nc.matmul(acc, st, mv, true);
    nc.tensor_copy(o, acc);
    nc.dma(y, o);
  });
  Io io;
  io.in("a", f32, {1, 1});
  io.in("b", f32, {1, 1});
  io.out("y", f32, 1);
  io.run(p);
  EXPECT_EQ(io.get("y")[0], 0x1p24f + 2.0f);
}

TEST(Transpose, PeTransposeToF32AndSixteenBit) {
  for (DType out : {f32, bf16}) {
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto x = nc.hbm("x", bf16, {3, 4});
      auto y = nc.hbm("y", f32, {4, 3}, HbmKind::kOutput);
      auto s = nc.sbuf(bf16, 3, {4});
      auto ps = nc.psum(out, 4, {3});
      auto o = nc.sbuf(f32, 4, {3});
      nc.dma(s, x);
      nc.transpose(ps, s);
      nc.tensor_copy(o, ps);
      nc.dma(y, o);
    });
    Io io;
    io.in("x", bf16, iota_values(12, 0.5f));
    io.out("y", f32, 12);
    io.run(p);
    EXPECT_EQ(io.get("y"), (std::vector<float>{0.5, 4.5, 8.5, 1.5, 5.5, 9.5, 2.5, 6.5, 10.5, 3.5,
                                               7.5, 11.5}))
        << dtype_name(out);
  }
}

// ---------------- Vector / Scalar / GpSimd ----------------

// Runs body(nc, x_tile, y_tile, out) on a [P, F] f32 input "x" (and "y") and
// returns output "o" of the given dtype and size.
template <class Body>
std::vector<float> run_elementwise(int P, int64_t F, const std::vector<float>& x,
                                   const std::vector<float>& y, DType out_dtype, int64_t out_f,
                                   Body body, InterpOptions opt = {}) {
  Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto hx = nc.hbm("x", f32, {P, F});
    auto hy = nc.hbm("y", f32, {P, F});
    auto ho = nc.hbm("o", out_dtype, {P, out_f}, HbmKind::kOutput);
    auto tx = nc.sbuf(f32, P, {F});
    auto ty = nc.sbuf(f32, P, {F});
    auto to = nc.sbuf(out_dtype, P, {out_f});
    nc.dma(tx, hx);
    nc.dma(ty, hy);
    body(nc, tx, ty, to);
    nc.dma(ho, to);
  });
  Io io;
  io.in("x", f32, x);
  io.in("y", f32, y.empty() ? std::vector<float>(x.size(), 0.0f) : y);
  io.out("o", out_dtype, size_t(P * out_f));
  io.run(p, opt);
  return io.get("o");
}

TEST(TensorTensor, EveryAluOp) {
  const std::vector<float> a = {3, -2, 5, 7, 0, 1};
  const std::vector<float> b = {4, -2, 2, 7, 1, -1};
  const std::map<AluOp, std::vector<float>> want = {
      {AluOp::kBypass, {3, -2, 5, 7, 0, 1}},   {AluOp::kAdd, {7, -4, 7, 14, 1, 0}},
      {AluOp::kSubtract, {-1, 0, 3, 0, -1, 2}}, {AluOp::kMultiply, {12, 4, 10, 49, 0, -1}},
      {AluOp::kDivide, {0.75, 1, 2.5, 1, 0, -1}}, {AluOp::kMax, {4, -2, 5, 7, 1, 1}},
      {AluOp::kMin, {3, -2, 2, 7, 0, -1}},     {AluOp::kIsEqual, {0, 1, 0, 1, 0, 0}},
      {AluOp::kNotEqual, {1, 0, 1, 0, 1, 1}},  {AluOp::kIsLt, {1, 0, 0, 0, 1, 0}},
      {AluOp::kIsLe, {1, 1, 0, 1, 1, 0}},      {AluOp::kIsGt, {0, 0, 1, 0, 0, 1}},
      {AluOp::kIsGe, {0, 1, 1, 1, 0, 1}},
  };
  ASSERT_EQ(int(want.size()), kNumAluOps);
  for (const auto& [op, w] : want) {
    for (Engine e : {Engine::kVector, Engine::kGpSimd}) {
      auto run = [&] {
        return run_elementwise(2, 3, a, b, f32, 3, [&](DeviceCore& nc, auto& x, auto& y, auto& o) {
          nc.tensor_tensor(o, x, y, op, e);
        });
      };
      // GpSimd adds and multiplies only (NKI's operator table).
      if (alu_allowed(e, Opcode::kTensorTensor, op, AluOp::kBypass)) EXPECT_EQ(run(), w) << alu_name(op) << " on " << engine_name(e);
      else EXPECT_THROW(run(), Error) << alu_name(op) << " on " << engine_name(e);
    }
  }
}

TEST(TensorTensor, RoundsTheFp32ResultOnceToTheDestination) {
  // 1 + 2^-8 is exact in fp32 and a tie in bf16: stored as 1.0.
  const auto got = run_elementwise(1, 2, {1.0f, 1.0f}, {0x1p-8f, 0x3p-8f}, bf16, 2,
                                   [](DeviceCore& nc, auto& x, auto& y, auto& o) {
                                     nc.tensor_tensor(o, x, y, AluOp::kAdd);
                                   });
  EXPECT_EQ(got, (std::vector<float>{1.0f, 1.0f + 0x1p-6f}));
}

TEST(TensorScalar, ImmediatesColumnsAndReverse) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  // (10 - x) * 2, reverse on the first stage only.
  auto got = run_elementwise(2, 3, x, {}, f32, 3, [](DeviceCore& nc, auto& t, auto&, auto& o) {
    nc.tensor_scalar(o, t, AluOp::kSubtract, 10.0f, AluOp::kMultiply, 2.0f, true, false);
  });
  EXPECT_EQ(got, (std::vector<float>{18, 16, 14, 12, 10, 8}));
  // Per-partition columns: partition p uses column values y[p, 0], y[p, 1].
  const std::vector<float> y = {100, 3, 0, 200, -1, 0};
  got = run_elementwise(2, 3, x, y, f32, 3, [](DeviceCore& nc, auto& t, auto& c, auto& o) {
    nc.tensor_scalar(o, t, AluOp::kAdd, c.slice(0, 0, 1), AluOp::kDivide, c.slice(0, 1, 2),
                     false, true);
  });
  // (x + c0) then c1 / that (reverse): 3 / 101, 3 / 102, ...; -1 / 204, ...
  EXPECT_EQ(got, (std::vector<float>{3.0f / 101, 3.0f / 102, 3.0f / 103, -1.0f / 204,
                                     -1.0f / 205, -1.0f / 206}));
  // ScalarE and GpSimd take the same instruction with their own ops: x * c0 + c1.
  for (Engine e : {Engine::kScalar, Engine::kGpSimd}) {
    got = run_elementwise(2, 3, x, y, f32, 3, [&](DeviceCore& nc, auto& t, auto& c, auto& o) {
      nc.tensor_scalar(o, t, AluOp::kMultiply, c.slice(0, 0, 1), AluOp::kAdd, c.slice(0, 1, 2),
                       false, false, e);
    });
    EXPECT_EQ(got, (std::vector<float>{103, 203, 303, 799, 999, 1199})) << engine_name(e);
  }
}

TEST(ScalarTensorTensor, ScalarThenTensorWithColumnsAndReverse) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const std::vector<float> y = {2, 4, 8, -1, 0.5f, 3};
  // (x - 1.5) * y with an immediate scalar.
  auto got = run_elementwise(2, 3, x, y, f32, 3, [](DeviceCore& nc, auto& t, auto& u, auto& o) {
    nc.scalar_tensor_tensor(o, t, AluOp::kSubtract, 1.5f, AluOp::kMultiply, u);
  });
  EXPECT_EQ(got, (std::vector<float>{-1, 2, 12, -2.5f, 1.75f, 13.5f}));
  // Partition p's scalar is y[p, 0]; both stages reversed: y / (y[p, 0] - x).
  got = run_elementwise(2, 3, x, y, f32, 3, [](DeviceCore& nc, auto& t, auto& u, auto& o) {
    nc.scalar_tensor_tensor(o, t, AluOp::kSubtract, u.slice(0, 0, 1), AluOp::kDivide, u, true, true);
  });
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(got, (std::vector<float>{2.0f, inf, -8.0f, -1.0f / -5, 0.5f / -6, 3.0f / -7}));
}

// Each stage rounds: x = s = 1 + 2^-12, t = -(1 + 2^-11) gives exactly 0
// (an FMA would give 2^-24).
TEST(ScalarTensorTensor, StagesRoundSeparately) {
  const float x = 1.0f + 0x1p-12f, b = -(1.0f + 0x1p-11f);
  const auto got = run_elementwise(1, 1, {x}, {b}, f32, 1, [&](DeviceCore& nc, auto& t, auto& u, auto& o) {
    nc.scalar_tensor_tensor(o, t, AluOp::kMultiply, x, AluOp::kAdd, u);
  });
  EXPECT_EQ(got[0], 0.0f);
  // A bf16 destination rounds the fp32 result once more (RNE).
  const auto b16 = run_elementwise(1, 2, {1.0f, 1.0f}, {0x1p-8f, 0x3p-8f}, bf16, 2,
                                   [](DeviceCore& nc, auto& t, auto& u, auto& o) {
                                     nc.scalar_tensor_tensor(o, t, AluOp::kMultiply, 1.0f, AluOp::kAdd, u);
                                   });
  EXPECT_EQ(b16, (std::vector<float>{1.0f, 1.0f + 0x1p-6f}));
}

// (x * s) + b rounds twice: with x = s = 1 + 2^-12 and b = -(1 + 2^-11) the
// result is 0 (an FMA would give 2^-24), on tensor_scalar and activation.
TEST(Arithmetic, ScaleThenBiasRoundsTwice) {
  const float x = 1.0f + 0x1p-12f, b = -(1.0f + 0x1p-11f);
  auto got = run_elementwise(1, 1, {x}, {}, f32, 1, [&](DeviceCore& nc, auto& t, auto&, auto& o) {
    nc.tensor_scalar(o, t, AluOp::kMultiply, x, AluOp::kAdd, b);
  });
  EXPECT_EQ(got[0], 0.0f);
  got = run_elementwise(1, 1, {x}, {}, f32, 1, [&](DeviceCore& nc, auto& t, auto&, auto& o) {
    nc.activation(o, ActFunc::kCopy, t, {.scale = x, .bias = b});
  });
  EXPECT_EQ(got[0], 0.0f);
}

TEST(TensorReduce, AddMaxMinOverTrailingAxesWithNegate) {
  // Per partition a [2, 3] block: partition 0 = 1..6, partition 1 = 7..12.
  const std::vector<float> x = iota_values(12, 1.0f);
  auto reduce = [&](AluOp op, int axes, bool negate, int64_t out_f) {
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto hx = nc.hbm("x", f32, {2, 6});
      auto ho = nc.hbm("o", f32, {2, out_f}, HbmKind::kOutput);
      auto t = nc.sbuf(f32, 2, {2, 3});
      auto o = nc.sbuf(f32, 2, {out_f});
      nc.dma(t, hx);
      nc.tensor_reduce(o, op, t, axes, negate);
      nc.dma(ho, o);
    });
    Io io;
    io.in("x", f32, x);
    io.out("o", f32, size_t(2 * out_f));
    io.run(p);
    return io.get("o");
  };
  EXPECT_EQ(reduce(AluOp::kAdd, 1, false, 2), (std::vector<float>{6, 15, 24, 33}));
  EXPECT_EQ(reduce(AluOp::kMax, 1, false, 2), (std::vector<float>{3, 6, 9, 12}));
  EXPECT_EQ(reduce(AluOp::kMin, 1, true, 2), (std::vector<float>{-1, -4, -7, -10}));
  EXPECT_EQ(reduce(AluOp::kAdd, 2, true, 1), (std::vector<float>{-21, -57}));
}

TEST(TensorReduce, MaxPropagatesNaN) {
  const auto got = run_elementwise(1, 3, {1.0f, kNaN, 2.0f}, {}, f32, 1,
                                   [](DeviceCore& nc, auto& t, auto&, auto& o) {
                                     nc.tensor_reduce(o, AluOp::kMax, t);
                                   });
  EXPECT_TRUE(std::isnan(got[0]));
}

TEST(Activation, FunctionOfScaledBiasedInputWithColumns) {
  // relu(x * 2 + bias[p]) with bias column = y[p, 0].
  const std::vector<float> x = {-1, 0, 1, 2, -3, 3, 0.5, 1};
  const std::vector<float> y = {-1, 0, 0, 0, 4, 0, 0, 0};
  auto got = run_elementwise(2, 4, x, y, f32, 4, [](DeviceCore& nc, auto& t, auto& c, auto& o) {
    nc.activation(o, ActFunc::kRelu, t, {.scale = 2.0f, .bias = c.slice(0, 0, 1)});
  });
  EXPECT_EQ(got, (std::vector<float>{0, 0, 1, 3, 0, 10, 5, 6}));
  // exp with a scale column: isa/semantics.h activate of fl(x * s) (bias 0).
  got = run_elementwise(2, 4, x, y, f32, 4, [](DeviceCore& nc, auto& t, auto& c, auto& o) {
    nc.activation(o, ActFunc::kExp, t, {.scale = c.slice(0, 0, 1)});
  });
  for (int i = 0; i < 8; ++i) {
    const float s = y[size_t(i / 4 * 4)];
    const float arg = x[size_t(i)] * s;
    EXPECT_EQ(got[size_t(i)], activate(ActFunc::kExp, arg + 0.0f)) << i;
  }
}

// accum sums the fp32 results before they round to dst's dtype.
TEST(Activation, AccumSumsUnroundedResults) {
  const float v = 1.0f + 0x1p-9f;  // rounds to 1.0 in bf16
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto hx = nc.hbm("x", f32, {2, 4});
    auto ho = nc.hbm("o", bf16, {2, 4}, HbmKind::kOutput);
    auto ha = nc.hbm("a", f32, {2, 1}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 2, {4});
    auto o = nc.sbuf(bf16, 2, {4});
    auto acc = nc.sbuf(f32, 2, {1});
    nc.dma(t, hx);
    nc.activation(o, ActFunc::kCopy, t, {.accum = Tile(acc)});
    nc.dma(ho, o);
    nc.dma(ha, acc);
  });
  Io io;
  io.in("x", f32, {v, v, v, v, 1, 2, 3, 4});
  io.out("o", bf16, 8);
  io.out("a", f32, 2);
  io.run(p);
  EXPECT_EQ(io.get("o"), (std::vector<float>{1, 1, 1, 1, 1, 2, 3, 4}));
  EXPECT_EQ(io.get("a"), (std::vector<float>{4.0f + 0x1p-7f, 10.0f}));
}

TEST(Memset, RoundsTheImmediateToEachDtype) {
  const std::vector<std::pair<DType, float>> want = {
      {f32, 1.0f + 0x1p-9f}, {bf16, 1.0f}, {f16, 1.0f + 0x1p-9f}, {DType::kFP8E4M3, 1.0f},
      {DType::kFP8E5M2, 1.0f}, {i32, 1.0f}};
  for (auto [t, w] : want) {
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto y = nc.hbm("y", f32, {2, 3}, HbmKind::kOutput);
      auto s = nc.sbuf(t, 2, {3});
      nc.memset(s, 1.0f + 0x1p-9f, Engine::kGpSimd);
      nc.dma(y, s);
    });
    Io io;
    io.out("y", f32, 6);
    io.run(p);
    EXPECT_EQ(io.get("y"), std::vector<float>(6, w)) << dtype_name(t);
  }
}

// value = base + channel * p + free0 * i0 + free1 * i1, p relative to the tile's first partition.
TEST(Iota, AffinePatternInI32AndF32) {
  for (DType t : {i32, f32}) {
    Program p = emit(kTrn2, [&](DeviceCore& nc) {
      auto y = nc.hbm("y", t, {32, 6}, HbmKind::kOutput);
      auto s = nc.sbuf(t, 64, {2, 3});
      nc.iota(s.partitions(32, 32), Affine{.base = 5, .channel = 10, .free = {100, 1, 0, 0}});
      nc.dma(y, s.partitions(32, 32));
    });
    Io io;
    io.out("y", t, 32 * 6);
    io.run(p);
    std::vector<float> want;
    for (int q = 0; q < 32; ++q)
      for (int i0 = 0; i0 < 2; ++i0)
        for (int i1 = 0; i1 < 3; ++i1) want.push_back(float(5 + 10 * q + 100 * i0 + i1));
    EXPECT_EQ(io.get("y"), want) << dtype_name(t);
  }
}

TEST(Iota, I32IsExactBeyondFloatPrecision) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto y = nc.hbm("y", i32, {1, 2}, HbmKind::kOutput);
    auto s = nc.sbuf(i32, 1, {2});
    nc.iota(s, Affine{.base = 16777217, .channel = 0, .free = {2, 0, 0, 0}});
    nc.dma(y, s);
  });
  Io io;
  io.out("y", i32, 2);
  io.run(p);
  int32_t got[2];
  std::memcpy(got, io.bytes("y").data(), sizeof got);
  EXPECT_EQ(got[0], 16777217);
  EXPECT_EQ(got[1], 16777219);
}

TEST(AffineSelect, CausalMask) {
  // Keep src where p - i >= 0, else fill.
  const auto got = run_elementwise(4, 4, std::vector<float>(16, 7.0f), {}, f32, 4,
                                   [](DeviceCore& nc, auto& t, auto&, auto& o) {
                                     nc.affine_select(o, t, Affine{.base = 0, .channel = 1,
                                                                   .free = {-1, 0, 0, 0}},
                                                      AluOp::kIsGe, -9.0f);
                                   });
  EXPECT_EQ(got, (std::vector<float>{7, -9, -9, -9, 7, 7, -9, -9, 7, 7, 7, -9, 7, 7, 7, 7}));
}

TEST(CopyEngines, TensorCopyOnEachAllowedEngineAndStats) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {2, 2});
    auto y = nc.hbm("y", f32, {2, 2}, HbmKind::kOutput);
    auto a = nc.sbuf(f32, 2, {2});
    auto b = nc.sbuf(f32, 2, {2});
    nc.dma(a, x);
    nc.tensor_copy(b, a, Engine::kVector);
    nc.tensor_copy(a, b, Engine::kScalar);
    nc.tensor_copy(b, a, Engine::kGpSimd);
    nc.dma(y, b);
  });
  Io io;
  io.in("x", f32, {1, 2, 3, 4});
  io.out("y", f32, 4);
  const InterpStats st = io.run(p);
  EXPECT_EQ(io.get("y"), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(st.instrs[size_t(Engine::kVector)], 1u);
  EXPECT_EQ(st.instrs[size_t(Engine::kScalar)], 1u);
  EXPECT_EQ(st.instrs[size_t(Engine::kGpSimd)], 1u);
  EXPECT_EQ(st.instrs[size_t(Engine::kDma)], 2u);
  EXPECT_EQ(st.opcodes[size_t(Opcode::kTensorCopy)], 3u);
  EXPECT_EQ(st.dma_elements, 8u);
}

// ---------------- bn_stats / bn_aggr ----------------

TEST(BatchNorm, ExactOnSmallIntegers) {
  // One partition, 1..8: even-indexed 1,3,5,7 (mean 4, M2 20), odd 2,4,6,8
  // (mean 5, M2 20); all: mean 4.5, population variance 5.25.
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {1, 8});
    auto hs = nc.hbm("stats", f32, {1, 6}, HbmKind::kOutput);
    auto ha = nc.hbm("aggr", f32, {1, 2}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 1, {8});
    auto s = nc.sbuf(f32, 1, {6});
    auto a = nc.sbuf(f32, 1, {2});
    nc.dma(t, x);
    nc.bn_stats(s, t);
    nc.bn_aggr(a, s);
    nc.dma(hs, s);
    nc.dma(ha, a);
  });
  Io io;
  io.in("x", f32, iota_values(8, 1.0f));
  io.out("stats", f32, 6);
  io.out("aggr", f32, 2);
  io.run(p);
  EXPECT_EQ(io.get("stats"), (std::vector<float>{4, 4, 20, 4, 5, 20}));
  EXPECT_EQ(io.get("aggr"), (std::vector<float>{4.5f, 5.25f}));
}

// Two bn_stats over halves of each row, combined by bn_aggr, against a
// double-precision mean and population variance. Error bounds: the in-order
// fp32 sums of n terms (n = 500 per row, <= n/2 per group) err by at most
// (n - 1) u times the sum of magnitudes, plus a few roundings in the divisions
// and Chan's combination; so |mean err| <= (n + 4) u max|x| and, as the two-pass
// M2 of positive terms adds 3 roundings each, |var err| <= (n + 8) u var
// + mean err^2.
TEST(BatchNorm, StatsAndAggrAgainstDouble) {
  constexpr int P = 4, N = 1000, H = N / 2;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> u(2.0f, 4.0f);
  std::vector<float> x(size_t(P * N));
  for (float& v : x) v = u(rng);
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto hx = nc.hbm("x", f32, {P, N});
    auto ha = nc.hbm("aggr", f32, {P, 2}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, P, {N});
    auto s = nc.sbuf(f32, P, {12});
    auto a = nc.sbuf(f32, P, {2});
    nc.dma(t, hx);
    nc.bn_stats(s.slice(0, 0, 6), t.slice(0, 0, H));
    nc.bn_stats(s.slice(0, 6, 12), t.slice(0, H, N));
    nc.bn_aggr(a, s);
    nc.dma(ha, a);
  });
  Io io;
  io.in("x", f32, x);
  io.out("aggr", f32, P * 2);
  io.run(p);
  const std::vector<float> got = io.get("aggr");
  const double unit = unit_roundoff(f32);
  for (int q = 0; q < P; ++q) {
    double mean = 0, var = 0;
    for (int i = 0; i < N; ++i) mean += x[size_t(q * N + i)];
    mean /= N;
    for (int i = 0; i < N; ++i) var += (x[size_t(q * N + i)] - mean) * (x[size_t(q * N + i)] - mean);
    var /= N;
    const double mean_tol = (H + 4) * unit * 4.0;
    const double var_tol = (H + 8) * unit * var + mean_tol * mean_tol;
    EXPECT_NEAR(got[size_t(2 * q)], mean, mean_tol) << q;
    EXPECT_NEAR(got[size_t(2 * q + 1)], var, var_tol) << q;
  }
}

// ---------------- poison ----------------

TEST(Poison, UnwrittenSbufReadNamesInstructionOperandPartitionAndLine) {
  int line = 0;
  Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto y = nc.hbm("y", f32, {64, 8}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 64, {8});
    nc.memset(t.partitions(0, 32), 1.0f);
    nc.dma(y, t); line = __LINE__;
  });
  for (bool adversarial : {false, true}) {
    Io io;
    io.out("y", f32, 64 * 8);
    const std::string msg = error_of(p, io, {.adversarial = adversarial});
    EXPECT_NE(msg.find("#1 dma: src reads uninitialised sbuf partition 32 byte 0"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find(cat("interpreter_test.cc:", line)), std::string::npos) << msg;
  }
}

// An SBUF dma_transpose reads across partitions: the first unwritten element
// it gathers is named (dst row 0 reads element 0 of each src row first).
TEST(Poison, SbufTransposeNamesTheUnwrittenElement) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto y = nc.hbm("y", bf16, {8, 4}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 4, {8});
    auto u = nc.sbuf(bf16, 8, {4});
    nc.memset(t.partitions(0, 2), 1.0f);
    nc.dma_transpose(u, t);
    nc.dma(y, u);
  });
  Io io;
  io.out("y", bf16, 32);
  const std::string msg = error_of(p, io);
  EXPECT_NE(msg.find("#1 dma_transpose: src reads uninitialised sbuf partition 2 byte 0 "
                     "(row 2, element 0 of the operand)"),
            std::string::npos)
      << msg;
}

TEST(Poison, PartlyWrittenRowNamesTheFirstUnwrittenByte) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto y = nc.hbm("y", f32, {1, 1}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 1, {8});
    auto s = nc.sbuf(f32, 1, {1});
    nc.memset(t.slice(0, 0, 5), 1.0f);
    nc.tensor_reduce(s, AluOp::kAdd, t);
    nc.dma(y, s);
  });
  Io io;
  io.out("y", f32, 1);
  const std::string msg = error_of(p, io);
  EXPECT_NE(msg.find("#1 tensor_reduce: src reads uninitialised sbuf partition 0 byte 10 "
                     "(row 0, element 5 of the operand)"),
            std::string::npos)
      << msg;
}

TEST(Poison, HbmOutputReadBeforeWrittenAndScratch) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto y = nc.hbm("y", f32, {2, 2}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 2, {2});
    nc.dma(t, y);
  });
  Io io;
  io.out("y", f32, 4);
  std::string msg = error_of(p, io);
  EXPECT_NE(msg.find("#0 dma: src reads uninitialised hbm tensor 'y' element 0"), std::string::npos)
      << msg;

  // Scratch the caller does not bind is allocated, and uninitialised until written.
  Program q = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {2, 2});
    auto s = nc.hbm("s", f32, {2, 2}, HbmKind::kScratch);
    auto y = nc.hbm("y", f32, {2, 2}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 2, {2});
    nc.dma(t, x);
    nc.dma(s.slice(0, 0, 1), t.partitions(0, 1));
    nc.dma(t, s);
    nc.dma(y, t);
  });
  Io io2;
  io2.in("x", f32, {1, 2, 3, 4});
  io2.out("y", f32, 4);
  msg = error_of(q, io2);
  EXPECT_NE(msg.find("#2 dma: src reads uninitialised hbm tensor 's' element 2 (row 1, element 0"),
            std::string::npos)
      << msg;
}

// A new allocation is uninitialised even where an earlier buffer wrote the
// same bytes: accumulating into a reused PSUM bank without a first
// non-accumulating matmul is caught.
TEST(Poison, FreshAllocationOverOldBytesIsUninitialised) {
  int64_t first_addr = -1, second_addr = -2;
  Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto a = nc.hbm("a", f32, {2, 2});
    auto y = nc.hbm("y", f32, {2, 2}, HbmKind::kOutput);
    auto st = nc.sbuf(f32, 2, {2});
    auto o = nc.sbuf(f32, 2, {2});
    nc.dma(st, a);
    {
      auto acc = nc.psum(f32, 2, {2});
      first_addr = acc.addr;
      nc.matmul(acc, st, st, false);
      nc.tensor_copy(o, acc);
    }
    auto acc = nc.psum(f32, 2, {2});
    second_addr = acc.addr;
    nc.matmul(acc, st, st, true);
    nc.tensor_copy(o, acc);
    nc.dma(y, o);
  });
  ASSERT_EQ(first_addr, second_addr);
  Io io;
  io.in("a", f32, {1, 2, 3, 4});
  io.out("y", f32, 4);
  const std::string msg = error_of(p, io);
  EXPECT_NE(msg.find("#3 matmul: dst reads uninitialised psum partition 0 byte 0"),
            std::string::npos)
      << msg;
}

// No false alarm: readers of the old buffer's other granules may still be
// pending when the new buffer's first writer runs.
TEST(Poison, ReusedBufferWithPendingReadersOfOtherGranulesIsClean) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {128, 128});
    auto y1 = nc.hbm("y1", f32, {128, 64}, HbmKind::kOutput);
    auto y2 = nc.hbm("y2", f32, {128, 64}, HbmKind::kOutput);
    auto y3 = nc.hbm("y3", f32, {128, 16}, HbmKind::kOutput);
    {
      auto a = nc.sbuf(f32, 128, {128});  // 8 granules of 64 B per partition
      nc.dma(a, x);
      nc.dma(y1, a.slice(0, 0, 64));
      nc.dma(y2, a.slice(0, 64, 128));
    }
    auto b = nc.sbuf(f32, 128, {128});
    nc.memset(b.slice(0, 0, 16), 5.0f);
    nc.dma(y3, b.slice(0, 0, 16));
  });
  const std::vector<float> x = iota_values(128 * 128);
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    Io io;
    io.in("x", f32, x);
    io.out("y1", f32, 128 * 64);
    io.out("y2", f32, 128 * 64);
    io.out("y3", f32, 128 * 16);
    ASSERT_NO_THROW(io.run(p, {.seed = seed})) << seed;
    const auto y2 = io.get("y2");
    for (int r = 0; r < 128; ++r) ASSERT_EQ(y2[size_t(r * 64)], x[size_t(r * 128 + 64)]) << seed;
    EXPECT_EQ(io.get("y3"), std::vector<float>(128 * 16, 5.0f));
  }
}

// ---------------- scheduling ----------------

// x -> t (DMA), u = 2 t (vector), u -> y (DMA).
Program scale_program() {
  return emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {128, 64});
    auto y = nc.hbm("y", f32, {128, 64}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    nc.dma(t, x);
    nc.tensor_scalar(u, t, AluOp::kMultiply, 2.0f);
    nc.dma(y, u);
  });
}

TEST(Schedule, DroppedReadAfterWriteIsCaught) {
  Program p = scale_program();
  ASSERT_EQ(std::vector<uint32_t>(p.deps(1).begin(), p.deps(1).end()), std::vector<uint32_t>{0});
  const std::vector<float> x = iota_values(128 * 64);
  std::vector<float> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = 2 * x[i];
  for (uint64_t seed = 1; seed <= 8; ++seed) {  // with the dependency: always right
    Io io;
    io.in("x", f32, x);
    io.out("y", f32, x.size());
    io.run(p, {.seed = seed});
    EXPECT_EQ(io.get("y"), want) << seed;
  }
  drop_dep(p, 1, 0);
  int caught = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Io io;
    io.in("x", f32, x);
    io.out("y", f32, x.size());
    const std::string msg = error_of(p, io, {.seed = seed});
    if (!msg.empty()) {
      EXPECT_NE(msg.find("#1 tensor_scalar: src reads uninitialised"), std::string::npos) << msg;
      ++caught;
    } else {
      caught += io.get("y") != want;
    }
  }
  EXPECT_GT(caught, 0);
  // Program order never exposes it.
  Io io;
  io.in("x", f32, x);
  io.out("y", f32, x.size());
  io.run(p, {.adversarial = false});
  EXPECT_EQ(io.get("y"), want);
}

TEST(Schedule, DroppedWriteAfterReadGivesAWrongResult) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto y = nc.hbm("y", f32, {32, 16}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 32, {16});
    auto u = nc.sbuf(f32, 32, {16});
    nc.memset(t, 1.0f);                         // 0 vector
    nc.tensor_copy(u, t, Engine::kGpSimd);      // 1 gpsimd: reads t
    nc.memset(t, 2.0f);                         // 2 vector: WAR on 1
    nc.dma(y, u);                               // 3
  });
  ASSERT_EQ(std::vector<uint32_t>(p.deps(2).begin(), p.deps(2).end()),
            (std::vector<uint32_t>{0, 1}));
  drop_dep(p, 2, 1);
  int wrong = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Io io;
    io.out("y", f32, 32 * 16);
    io.run(p, {.seed = seed});
    wrong += io.get("y") != std::vector<float>(32 * 16, 1.0f);
  }
  EXPECT_GT(wrong, 0);
}

TEST(Schedule, DeadlockIsAnErrorAndForwardWaitsAcrossEnginesAreFine) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 32, {16});
    auto u = nc.sbuf(f32, 32, {16});
    nc.memset(t, 1.0f);                  // 0 vector
    nc.memset(u, 2.0f, Engine::kGpSimd); // 1 gpsimd
    nc.memset(u, 3.0f);                  // 2 vector
  });
  Program cross = p;
  set_deps(cross, {{1}, {}, {1}});  // 0 waits for a later instruction on another engine
  Interpreter ok(cross);
  ok.run();
  EXPECT_EQ(ok.schedule()[0], 1u);

  set_deps(p, {{2}, {}, {}});  // 0 waits for 2, queued behind it on the same engine
  for (bool adversarial : {false, true}) {
    Interpreter it(p, {.adversarial = adversarial});
    try {
      it.run();
      ADD_FAILURE() << "no deadlock reported";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("#0 memset: deadlock: waits for #2 memset"), std::string::npos) << msg;
    }
  }
}

// A program with real freedom: after the load, eight independent
// instructions (one 64 B granule each) spread over three engines.
Program wide_program() {
  return emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {32, 16});
    auto y = nc.hbm("y", f32, {32, 128}, HbmKind::kOutput);
    auto t = nc.sbuf(f32, 32, {128});
    auto s = nc.sbuf(f32, 32, {16});
    nc.dma(s, x);
    for (int k = 0; k < 8; ++k) {
      const Tile part = t.slice(0, 16 * k, 16 * k + 16);
      if (k % 3 == 0) {
        nc.activation(part, ActFunc::kCopy, s, {.bias = float(k)});
      } else {
        const Engine e = k % 3 == 1 ? Engine::kGpSimd : Engine::kVector;
        nc.tensor_scalar(part, s, AluOp::kAdd, float(k), AluOp::kBypass, 0.0f, false, false, e);
      }
    }
    nc.dma(y, t);
  });
}

TEST(Schedule, SameSeedSameScheduleAndResult) {
  const Program p = wide_program();
  const std::vector<float> x = iota_values(32 * 16);
  auto run = [&](uint64_t seed, std::vector<uint32_t>& order) {
    Interpreter it(p, {.seed = seed});
    Io io;
    io.in("x", f32, x);
    io.out("y", f32, 32 * 128);
    io.bind(it);
    it.run();
    order.assign(it.schedule().begin(), it.schedule().end());
    return io.get("y");
  };
  std::set<std::vector<uint32_t>> orders;
  std::vector<float> first;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    std::vector<uint32_t> o1, o2;
    const auto y1 = run(seed, o1), y2 = run(seed, o2);
    EXPECT_EQ(o1, o2) << seed;
    EXPECT_EQ(y1, y2) << seed;
    if (seed == 1) first = y1;
    EXPECT_EQ(y1, first) << "race-free program, seed " << seed;
    orders.insert(o1);
  }
  EXPECT_GT(orders.size(), 1u) << "the seeds never changed the schedule";
  Interpreter in_order(p, {.adversarial = false});
  Io io;
  io.in("x", f32, x);
  io.out("y", f32, 32 * 128);
  io.bind(in_order);
  in_order.run();
  std::vector<uint32_t> order(in_order.schedule().begin(), in_order.schedule().end());
  EXPECT_EQ(order, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  const std::vector<float> y = io.get("y");
  for (int k = 0; k < 8; ++k) EXPECT_EQ(y[size_t(16 * k + 3)], x[3] + float(k)) << k;
  EXPECT_EQ(in_order.stats().reordered, 0u);
}

// ---------------- fp32-only mode ----------------

TEST(Fp32Only, KeepsWhatABf16StoreWouldRound) {
  const float v = 1.0f + 0x1p-10f;  // bf16 keeps 7 fraction bits: rounds to 1.0
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {1, 2});
    auto y = nc.hbm("y", f32, {1, 2}, HbmKind::kOutput);
    auto z = nc.hbm("z", bf16, {1, 2}, HbmKind::kOutput);
    auto w = nc.hbm("w", f32, {1, 2}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 1, {2});
    auto u = nc.sbuf(bf16, 1, {2});
    auto f = nc.sbuf(f32, 1, {2});
    nc.dma(t, x);                               // cast into SBUF
    nc.tensor_tensor(u, t, t, AluOp::kAdd);     // 2v into bf16
    nc.tensor_copy(f, u);
    nc.dma(y, f);
    nc.dma(z, t);                               // HBM still rounds
    nc.dma(w, t);                               // bf16 tile -> f32 HBM: the kept value
  });
  for (bool fp32_only : {false, true}) {
    Io io;
    io.in("x", f32, {v, 3.0f});
    io.out("y", f32, 2);
    io.out("z", bf16, 2);
    io.out("w", f32, 2);
    io.run(p, {.fp32_only = fp32_only});
    const float kept = fp32_only ? v : 1.0f;
    EXPECT_EQ(io.get("y"), (std::vector<float>{2 * kept, 6.0f})) << fp32_only;
    EXPECT_EQ(io.get("z"), (std::vector<float>{1.0f, 3.0f})) << fp32_only;
    EXPECT_EQ(io.get("w"), (std::vector<float>{kept, 3.0f})) << fp32_only;
  }
}

TEST(Fp32Only, MatmulReadsTheUnroundedOperands) {
  const float v = 1.0f + 0x1p-10f;
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {1, 1});
    auto y = nc.hbm("y", f32, {1, 1}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 1, {1});
    auto acc = nc.psum(f32, 1, {1});
    auto o = nc.sbuf(f32, 1, {1});
    nc.dma(t, x);
    nc.matmul(acc, t, t, false);
    nc.tensor_copy(o, acc);
    nc.dma(y, o);
  });
  Io io;
  io.in("x", f32, {v});
  io.out("y", f32, 1);
  io.run(p, {.fp32_only = true});
  EXPECT_EQ(io.get("y")[0], v * v);
}

// ---------------- binding and hostile programs ----------------

TEST(Bind, UnboundWrongSizeUnknownAndNull) {
  const Program p = scale_program();
  std::vector<float> x(128 * 64), y(128 * 64);
  {
    Interpreter it(p);
    it.bind("x", x.data(), x.size() * 4);
    try {
      it.run();
      ADD_FAILURE() << "unbound output accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'y' is not bound"), std::string::npos)
          << e.what();
    }
  }
  Interpreter it(p);
  try {
    it.bind("x", x.data(), x.size() * 4 - 4);
    ADD_FAILURE() << "short buffer accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs 32768 bytes ([128, 64] f32), got 32764"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(it.bind("nope", x.data(), x.size() * 4), Error);
  EXPECT_THROW(it.bind(7u, x.data(), x.size() * 4), Error);
  EXPECT_THROW(it.bind("x", nullptr, x.size() * 4), Error);
  it.bind("x", x.data(), x.size() * 4);
  it.bind(uint32_t(p.find_tensor("y")), y.data(), y.size() * 4);
  EXPECT_NO_THROW(it.run());
}

TEST(Hostile, ConstructorValidatesEverything) {
  const Program good = scale_program();
  auto rejects = [](Program p, const std::string& needle) {
    try {
      Interpreter it(std::move(p));
      return std::string("accepted");
    } catch (const Error& e) {
      const std::string msg = e.what();
      return msg.find(needle) == std::string::npos ? msg : std::string();
    }
  };
  Program p = good;
  p.instrs[1].opnd[1].ap.shape[0] = 1 << 20;  // src beyond SBUF
  EXPECT_EQ(rejects(p, "tensor_scalar: src"), "");
  p = good;
  p.instrs[0].opnd[1].addr = 9;  // tensor id
  EXPECT_EQ(rejects(p, "tensor id 9 is not declared"), "");
  p = good;
  p.instrs[0].opnd[1].np = 64;  // HBM rows must be dim 0
  EXPECT_EQ(rejects(p, "dma: src"), "");
  p = good;
  p.dep_ids[0] = 99;
  EXPECT_EQ(rejects(p, "depends on #99"), "");
  p = good;
  p.dep_begin.pop_back();
  EXPECT_EQ(rejects(p, "dep_begin"), "");
  p = good;
  p.dep_begin[1] = 5;
  EXPECT_EQ(rejects(p, "deps"), "");
  p = good;
  p.allocs.push_back(AllocEvent{Space::kSbuf, false, 224 * 1024 - 64, 128, 0, {}});
  EXPECT_EQ(rejects(p, "allocs"), "");
  p = good;
  p.allocs.push_back(AllocEvent{Space::kPsum, false, 32, 64, 0, {}});
  EXPECT_EQ(rejects(p, "not a multiple of 64"), "");
  p = good;
  p.tensors[0].shape = {128, 0};
  EXPECT_EQ(rejects(p, "tensor 'x'"), "");
  p = good;
  p.tensors[0].shape = {int64_t{1} << 30, int64_t{1} << 30};
  EXPECT_EQ(rejects(p, "tensor 'x'"), "");
  p = good;
  p.target = TargetId(9);
  EXPECT_EQ(rejects(p, "target"), "");
  p = good;
  p.instrs[2].op = Opcode(200);
  EXPECT_EQ(rejects(p, "unknown opcode"), "");
  p = good;
  p.instrs[1].engine = Engine::kTensor;
  EXPECT_EQ(rejects(p, "cannot run on the tensor engine"), "");
  EXPECT_EQ(rejects(good, "nothing"), "accepted");
}

// One of (nearly) every instruction, for the fuzz below.
Program kitchen_sink() {
  return emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {64, 64});
    auto xt = nc.hbm("xt", bf16, {64, 64});
    auto y = nc.hbm("y", f32, {64, 64}, HbmKind::kOutput);
    auto s = nc.hbm("s", f32, {64, 64}, HbmKind::kScratch);
    auto a = nc.sbuf(f32, 64, {64});
    auto b = nc.sbuf(bf16, 64, {64});
    auto c = nc.sbuf(f32, 64, {64});
    auto col = nc.sbuf(f32, 64, {4});
    auto stats = nc.sbuf(f32, 64, {6});
    auto ps = nc.psum(f32, 64, {64});
    nc.dma(a, x);
    nc.dma_transpose(b, xt);
    nc.iota(col, Affine{.base = 1, .channel = 2, .free = {3, 0, 0, 0}});
    nc.matmul(ps, a, a, false);
    nc.tensor_copy(c, ps);
    nc.transpose(ps, b);
    nc.tensor_tensor(c, c, ps, AluOp::kAdd);
    nc.tensor_scalar(c, c, AluOp::kMultiply, col.slice(0, 0, 1), AluOp::kAdd, 1.0f);
    nc.activation(c, ActFunc::kTanh, c, {.scale = 0.01f, .accum = col.slice(0, 1, 2)});
    nc.tensor_reduce(col.slice(0, 2, 3), AluOp::kMax, c);
    nc.affine_select(c, c, Affine{.base = 0, .channel = 1, .free = {-1, 0, 0, 0}}, AluOp::kIsGe,
                     0.0f);
    nc.bn_stats(stats, c);
    nc.bn_aggr(col.slice(0, 2, 4), stats);
    nc.memset(a.slice(0, 0, 8), 2.0f, Engine::kGpSimd);
    nc.dma(s, c);
    nc.dma(a, s);
    nc.dma(y, a);
  });
}

// Random corruptions of a valid program (fields of instructions, operands,
// dependencies, allocations and tensor declarations, set to edge values)
// must be rejected with an Error or run; never crash (also checked under
// ASan/UBSan).
TEST(Hostile, FuzzedProgramsErrorOrRunNeverCrash) {
  const Program base = kitchen_sink();
  {
    Io io;
    io.in("x", f32, iota_values(64 * 64, 0.0f, 1.0f / 64));
    io.in("xt", bf16, iota_values(64 * 64, 0.0f, 1.0f / 64));
    io.out("y", f32, 64 * 64);
    ASSERT_NO_THROW(io.run(base));
  }
  const int64_t edge[] = {-1, 0, 1, 2, 3, 5, 31, 32, 63, 64, 65, 127, 128, 129, 4096, 65536,
                          int64_t{1} << 20, int64_t{1} << 31, int64_t{1} << 40, int64_t{1} << 62,
                          std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
  std::mt19937_64 rng(12345);
  auto pick = [&](uint64_t n) { return size_t(rng() % n); };
  auto value = [&]() { return edge[pick(std::size(edge))]; };
  int rejected = 0, ran = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    Program p = base;
    for (int m = 0, n = 1 + int(pick(3)); m < n; ++m) {
      Instr& in = p.instrs[pick(p.instrs.size())];
      Operand& o = in.opnd[pick(in.opnd.size())];
      const int d = int(pick(kMaxDims));
      const int64_t v = value();
      switch (pick(20)) {
        case 0: in.op = Opcode(uint8_t(v)); break;
        case 1: in.engine = Engine(uint8_t(v)); break;
        case 2: in.queue = uint8_t(v); break;
        case 3: in.flags = uint8_t(v); break;
        case 4: in.alu0 = AluOp(uint8_t(v)); break;
        case 5: in.func = ActFunc(uint8_t(v)); break;
        case 6: in.axes = int32_t(v); break;
        case 7: in.affine.free[size_t(d % 4)] = int32_t(v); break;
        case 8: o.space = Space(uint8_t(v)); break;
        case 9: o.dtype = DType(uint8_t(v)); break;
        case 10: o.p0 = int(v); break;
        case 11: o.np = int(v); break;
        case 12: o.addr = v; break;
        case 13: o.ap.offset = v; break;
        case 14: o.ap.ndim = int(v); break;
        case 15: o.ap.shape[size_t(d)] = v; break;
        case 16: o.ap.stride[size_t(d)] = v; break;
        case 17:
          if (!p.dep_ids.empty()) p.dep_ids[pick(p.dep_ids.size())] = uint32_t(v);
          break;
        case 18: {
          AllocEvent& e = p.allocs[pick(p.allocs.size())];
          (pick(2) ? e.addr : e.bytes) = v;
          if (pick(2)) e.before = uint32_t(v);
          break;
        }
        case 19: p.tensors[pick(p.tensors.size())].shape[0] = v; break;
      }
    }
    Io io;
    io.in("x", f32, iota_values(64 * 64, 0.0f, 1.0f / 64));
    io.in("xt", bf16, iota_values(64 * 64, 0.0f, 1.0f / 64));
    io.out("y", f32, 64 * 64);
    try {
      io.run(p, {.seed = uint64_t(trial)});
      ++ran;
    } catch (const Error&) {
      ++rejected;
    }
  }
  std::printf("[ fuzz ] %d corrupted programs rejected, %d ran\n", rejected, ran);
  EXPECT_GT(rejected, 300);
  EXPECT_GT(ran, 30);
}

// ---------------- speed ----------------

// C[512, 512] = A[512, 512] @ B[512, 512] as 4 x 4 matmuls of
// [128, 128] x [128, 512] accumulating over K in PSUM; AT = A^T is the
// stationary source. The result must equal, bit for bit, fp32 sums in the
// order the interpreter defines (each K tile summed in order, then added to
// PSUM); the replay time is reported per matmul.
TEST(Speed, Gemm512Replay) {
  constexpr int S = 512, T = 128, KT = S / T;
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto at = nc.hbm("at", f32, {S, S});
    auto b = nc.hbm("b", f32, {S, S});
    auto c = nc.hbm("c", f32, {S, S}, HbmKind::kOutput);
    std::vector<DeviceCore::BufferT> as, bs;
    for (int k = 0; k < KT; ++k) {
      as.push_back(nc.sbuf(f32, T, {S}));
      bs.push_back(nc.sbuf(f32, T, {S}));
      nc.dma(as.back(), at.slice(0, k * T, (k + 1) * T));
      nc.dma(bs.back(), b.slice(0, k * T, (k + 1) * T));
    }
    auto o = nc.sbuf(f32, T, {S});
    for (int m = 0; m < KT; ++m) {
      auto acc = nc.psum(f32, T, {S});
      for (int k = 0; k < KT; ++k)
        nc.matmul(acc, as[size_t(k)].slice(0, m * T, (m + 1) * T), bs[size_t(k)], k > 0);
      nc.tensor_copy(o, acc);
      nc.dma(c.slice(0, m * T, (m + 1) * T), o);
    }
  });
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> at(S * S), b(S * S), c(S * S);
  for (float& v : at) v = u(rng);
  for (float& v : b) v = u(rng);
  Interpreter it(p);
  it.bind("at", at.data(), at.size() * 4);
  it.bind("b", b.data(), b.size() * 4);
  it.bind("c", c.data(), c.size() * 4);
  const auto t0 = std::chrono::steady_clock::now();
  it.run();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t matmuls = it.stats().opcodes[size_t(Opcode::kMatmul)];
  std::printf("[ timing ] 512^3 f32 GEMM: %zu instructions replayed in %.1f ms (%.2f ms per "
              "[128x128]x[128x512] matmul, all instructions included)\n",
              p.instrs.size(), ms, ms / double(matmuls));
  EXPECT_EQ(matmuls, uint64_t(KT * KT));
  for (int i = 0; i < S; i += 37)
    for (int j = 0; j < S; j += 11) {
      float acc = 0.0f;
      for (int k0 = 0; k0 < S; k0 += T) {
        float part = 0.0f;
        for (int k = k0; k < k0 + T; ++k) {
          // volatile: rounded to fp32 before the add, even where GCC would fuse an FMA.
          const volatile float prod = at[size_t(k * S + i)] * b[size_t(k * S + j)];
          part = part + prod;
        }
        acc = k0 == 0 ? part : acc + part;
      }
      ASSERT_EQ(c[size_t(i * S + j)], acc) << i << ", " << j;
    }
}

}  // namespace
}  // namespace ncore
