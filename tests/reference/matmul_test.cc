// The CPU matmul instruction (reference/matmul.cc, matmul_avx512bf16.cc):
// dst[M, N] (+)= stationary[K, M]^T moving[K, N], fp32 accumulation.
//
// MatmulTest runs on every compiled Highway target (the dispatcher restricted
// by hwy::SetSupportedTargetsForTest) and, for the narrow types, on both bf16
// paths: kAuto (vdpbf16ps where the CPU and target allow) and kPortable.
//   - Exact: small-integer data (|v| <= 4, exact in every dtype) make every
//     partial sum an integer below 2^24, so any correct summation order gives
//     the double-precision result exactly. Shapes sweep K, M and N over all
//     values 1..max (all blocking tails, both orientations of the kernel).
//   - Bounded: random data against a double reference within the derived
//     bound gamma_{K+1} (|dst0| + sum_k |s||m|), gamma_n = n u / (1 - n u),
//     u = 2^-24 (K fp32 roundings, one more for accumulate), plus, on the
//     vdpbf16ps path, its DAZ/FTZ term 2^-126 sum_k (|s| + |m| + 2).
//   - The generic path: strided, broadcast, multi-dim and misaligned views.
//   - NaN/inf propagation, subnormal flushing, errors on bad operands.
// Buffers are NaN-filled around the views (like the backend's arenas), so a
// read outside a view that reaches a result shows up.

#include <gtest/gtest.h>

#include <hwy/highway.h>
#include <hwy/targets.h>
#include <hwy/tests/hwy_gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <ncore/isa/error.h>
#include <ncore/isa/numerics.h>
#include <ncore/reference/cpu_backend.h>
#include <ncore/reference/cpu_ops.h>

namespace ncore::cpu {
// gtest names parameterized tests with this.
void PrintTo(Bf16Path p, std::ostream* os) { *os << (p == Bf16Path::kAuto ? "auto" : "portable"); }
}  // namespace ncore::cpu

namespace ncore {
namespace {

using cpu::Bf16Path;
using cpu::View;

// Instruction limits (facts §2): partitions, stationary and moving free sizes.
constexpr int kMaxK = 128, kMaxM = 128, kMaxN = 512;
constexpr double kU = 0x1p-24;           // fp32 unit roundoff
constexpr double kFlushUnit = 0x1p-126;  // fp32 min normal: what DAZ/FTZ flush below
constexpr int kShownMismatches = 4;      // enough to see a pattern, not a flood
constexpr float kInf = std::numeric_limits<float>::infinity();

double gamma_n(int n) { return n * kU / (1.0 - n * kU); }

// An operand in host memory: np rows `pitch` bytes apart, each walking `ap`.
// Memory around and between the elements is NaN (0xFF bytes).
struct HostOperand {
  std::vector<uint8_t> mem;
  View view;
  std::vector<int64_t> offsets;  // element offsets of the free pattern, row-major

  // pad: bytes between rows beyond the pattern's span; misalign: bytes added
  // to the base address (forces the generic path when not a multiple of the
  // element size).
  HostOperand(int np, DType t, const AccessPattern& ap, int64_t pad = 64, int64_t misalign = 0) {
    const int64_t esize = dtype_size(t);
    const int64_t pitch = (ap.max_offset() + 1) * esize + pad;
    mem.assign(size_t(np * pitch + misalign), 0xFF);  // nothing past the last row's pad
    view = View{mem.data() + misalign, pitch, np, t, ap};
    ap.for_each([&](int64_t off) { offsets.push_back(off); });
  }
  HostOperand(int np, DType t, int free) : HostOperand(np, t, AccessPattern::dense({free})) {}

  int free() const { return int(offsets.size()); }
  uint8_t* at(int p, int j) const {
    return view.row(p) + offsets[size_t(j)] * dtype_size(view.dtype);
  }
  float get(int p, int j) const { return decode(view.dtype, at(p, j)); }
  void set(int p, int j, float v) const { encode(view.dtype, v, at(p, j)); }
  void fill(const std::function<float()>& f) const {
    for (int p = 0; p < view.np; ++p)
      for (int j = 0; j < free(); ++j) set(p, j, f());
  }
};

// The double-precision result and its error bound for the operands' values
// (dst read before the call).
struct Expected {
  int M = 0, N = 0;
  std::vector<double> value, bound;
  double at(int m, int n) const { return value[size_t(m) * N + n]; }
};

Expected reference(const HostOperand& dst, const HostOperand& st, const HostOperand& mv,
                   bool accumulate, bool flushes) {
  const int K = st.view.np, M = st.free(), N = mv.free();
  Expected e{M, N, std::vector<double>(size_t(M) * N), std::vector<double>(size_t(M) * N)};
  std::vector<double> s(size_t(K) * M), v(size_t(K) * N);
  for (int k = 0; k < K; ++k) {
    for (int m = 0; m < M; ++m) s[size_t(k) * M + m] = st.get(k, m);
    for (int n = 0; n < N; ++n) v[size_t(k) * N + n] = mv.get(k, n);
  }
  // Row by row with k outside n, so the inner loops run over contiguous n.
  std::vector<double> sum(static_cast<size_t>(N)), mag(sum), flush(sum);
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      sum[size_t(n)] = accumulate ? dst.get(m, n) : 0.0;
      mag[size_t(n)] = std::abs(sum[size_t(n)]);
      flush[size_t(n)] = 0.0;
    }
    for (int k = 0; k < K; ++k) {
      const double a = s[size_t(k) * M + m];
      const double* b = &v[size_t(k) * N];
      for (int n = 0; n < N; ++n) {
        sum[size_t(n)] += a * b[n];
        mag[size_t(n)] += std::abs(a * b[n]);
        flush[size_t(n)] += std::abs(a) + std::abs(b[n]) + 2.0;
      }
    }
    for (int n = 0; n < N; ++n) {
      e.value[size_t(m) * N + n] = sum[size_t(n)];
      e.bound[size_t(m) * N + n] =
          gamma_n(K + 1) * mag[size_t(n)] + (flushes ? kFlushUnit * flush[size_t(n)] : 0.0);
    }
  }
  return e;
}

bool bf16_capable(DType t) {
  return t == DType::kBF16 || t == DType::kFP8E4M3 || t == DType::kFP8E5M2;
}
bool takes_vdpbf16ps(DType a, DType b) {
  return bf16_capable(a) && bf16_capable(b) &&
         std::string(cpu::bf16_path_name()) == "avx512bf16";
}

std::string describe(const HostOperand& st, const HostOperand& mv, bool accumulate) {
  return cat("[K=", st.view.np, ", M=", st.free(), "] ", dtype_name(st.view.dtype), " x [",
             mv.view.np, ", N=", mv.free(), "] ", dtype_name(mv.view.dtype),
             accumulate ? " accumulate" : "", " on ",
             hwy::TargetName(hwy::SupportedAndGeneratedTargets()[0]), " (bf16 path ",
             cpu::bf16_path_name(), ")");
}

// Runs the instruction and compares: exactly, or within the derived bound.
testing::AssertionResult run_and_check(const HostOperand& dst, const HostOperand& st,
                                       const HostOperand& mv, bool accumulate, bool exact) {
  const Expected e =
      reference(dst, st, mv, accumulate, takes_vdpbf16ps(st.view.dtype, mv.view.dtype));
  cpu::matmul(dst.view, st.view, mv.view, accumulate);
  int bad = 0;
  std::string shown;
  for (int m = 0; m < e.M; ++m)
    for (int n = 0; n < e.N; ++n) {
      const double got = dst.get(m, n), want = e.at(m, n);
      const bool ok = exact ? got == want
                            : std::abs(got - want) <= e.bound[size_t(m) * e.N + n];
      if (ok) continue;
      if (bad++ < kShownMismatches)
        shown += cat("\n  dst[", m, ", ", n, "] = ", got, ", want ", want,
                     exact ? "" : cat(" +- ", e.bound[size_t(m) * e.N + n]));
    }
  if (bad == 0) return testing::AssertionSuccess();
  return testing::AssertionFailure() << describe(st, mv, accumulate) << ": " << bad
                                     << " mismatches" << shown;
}

// Integers in [-4, 4]: exact in every input dtype (fp8_e5m2 has 3 significant
// bits), products <= 16, and K <= 128 sums stay far below 2^24.
std::function<float()> small_ints(std::mt19937& rng) {
  return [&rng] { return float(int(rng() % 9) - 4); };
}
std::function<float()> uniform(std::mt19937& rng) {
  return [&rng] { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); };
}

// One instruction on fresh operands; dst starts as integers (accumulate) or
// NaN poison (overwrite must not read it).
testing::AssertionResult check_shape(DType st_type, DType mv_type, int K, int M, int N,
                                     bool accumulate, bool exact, std::mt19937& rng) {
  HostOperand st(K, st_type, M), mv(K, mv_type, N), dst(M, DType::kF32, N);
  const auto gen = exact ? small_ints(rng) : uniform(rng);
  st.fill(gen);
  mv.fill(gen);
  if (accumulate) dst.fill(gen);
  return run_and_check(dst, st, mv, accumulate, exact);
}

struct DTypePair {
  DType st, mv;
};
// Every input dtype, and mixes of the narrow ones (fp32 pairs only with fp32).
constexpr DTypePair kPairs[] = {
    {DType::kF32, DType::kF32},         {DType::kBF16, DType::kBF16},
    {DType::kF16, DType::kF16},         {DType::kFP8E4M3, DType::kFP8E4M3},
    {DType::kFP8E5M2, DType::kFP8E5M2}, {DType::kBF16, DType::kFP8E4M3},
    {DType::kFP8E5M2, DType::kBF16},    {DType::kF16, DType::kFP8E4M3},
    {DType::kBF16, DType::kF16},
};

// Parameterized by Highway target (SetUp restricts the dispatcher to it) and
// bf16 path.
class MatmulTest : public hwy::TestWithParamTargetAndT<Bf16Path> {
 protected:
  void SetUp() override {
    hwy::TestWithParamTargetAndT<Bf16Path>::SetUp();
    cpu::set_bf16_path(GetParam());
  }
  void TearDown() override {
    cpu::set_bf16_path(Bf16Path::kAuto);
    hwy::TestWithParamTargetAndT<Bf16Path>::TearDown();
  }
  using Param = std::tuple<int64_t, Bf16Path>;
  static int64_t target() { return std::get<0>(testing::TestWithParam<Param>::GetParam()); }
  static Bf16Path path() { return std::get<1>(testing::TestWithParam<Param>::GetParam()); }
  // kPortable differs from kAuto only for bf16/fp8 inputs: other dtype pairs
  // run once, under kAuto.
  static bool covers(DTypePair p) {
    return path() == Bf16Path::kAuto || (bf16_capable(p.st) && bf16_capable(p.mv));
  }
  std::mt19937 rng{12345};
};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P_T(MatmulTest,
                                      testing::Values(Bf16Path::kAuto, Bf16Path::kPortable));

// Every K, M and N from 1 to its maximum (the others at values with tails in
// both blocking dims), for fp32 and bf16, alternating accumulate.
TEST_P(MatmulTest, ExactEveryExtent) {
  for (DTypePair p : {kPairs[0], kPairs[1]}) {
    if (!covers(p)) continue;
    int i = 0;
    for (int K = 1; K <= kMaxK; ++K)
      ASSERT_TRUE(check_shape(p.st, p.mv, K, 9, 33, ++i % 2, true, rng));
    for (int M = 1; M <= kMaxM; ++M)
      ASSERT_TRUE(check_shape(p.st, p.mv, 5, M, 17, ++i % 2, true, rng));
    for (int N = 1; N <= kMaxN; ++N)
      ASSERT_TRUE(check_shape(p.st, p.mv, 3, 9, N, ++i % 2, true, rng));
    // Short N with long M: the kernel swaps roles (vectorizes over M).
    for (int N = 1; N <= 17; ++N)
      ASSERT_TRUE(check_shape(p.st, p.mv, 7, kMaxM, N, ++i % 2, true, rng));
  }
}

// Every dtype pair over shapes made of blocking-tail extents, and the full
// instruction, with and without accumulate.
TEST_P(MatmulTest, ExactDTypesAndTails) {
  const int ks[] = {1, 2, 3, 16, 17, 64, 127, 128};
  const int ms[] = {1, 2, 7, 8, 9, 12, 13, 16, 17, 33, 127, 128};
  const int ns[] = {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 255, 257, 511, 512};
  for (DTypePair p : kPairs) {
    if (!covers(p)) continue;
    for (bool acc : {false, true}) {
      ASSERT_TRUE(check_shape(p.st, p.mv, kMaxK, kMaxM, kMaxN, acc, true, rng));
      for (int t = 0; t < 24; ++t) {
        const int K = ks[rng() % std::size(ks)], M = ms[rng() % std::size(ms)],
                  N = ns[rng() % std::size(ns)];
        ASSERT_TRUE(check_shape(p.st, p.mv, K, M, N, acc, true, rng));
      }
    }
  }
}

// Random data within the derived error bound.
TEST_P(MatmulTest, WithinErrorBound) {
  const int shapes[][3] = {{128, 128, 512}, {127, 100, 300}, {1, 7, 33},
                           {128, 128, 1},   {128, 1, 512},   {64, 13, 47}};
  for (DTypePair p : kPairs) {
    if (!covers(p)) continue;
    for (const auto& s : shapes)
      for (bool acc : {false, true})
        ASSERT_TRUE(check_shape(p.st, p.mv, s[0], s[1], s[2], acc, false, rng));
  }
}

// The bound is not vacuous: fp32 data rounded to bf16 on the way in (a
// plausible bug) would break it for most outputs, while the kernel meets it.
TEST_P(MatmulTest, BoundRejectsBf16RoundedInputs) {
  const int K = 64, M = 16, N = 16;
  HostOperand st(K, DType::kF32, M), mv(K, DType::kF32, N), dst(M, DType::kF32, N);
  st.fill(uniform(rng));
  mv.fill(uniform(rng));
  ASSERT_TRUE(run_and_check(dst, st, mv, false, false));
  const Expected e = reference(dst, st, mv, false, false);
  int broken = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double narrowed = 0.0;
      for (int k = 0; k < K; ++k)
        narrowed += double(round_to(DType::kBF16, st.get(k, m))) *
                    double(round_to(DType::kBF16, mv.get(k, n)));
      broken += std::abs(narrowed - e.at(m, n)) > e.bound[size_t(m) * N + n];
    }
  EXPECT_GT(broken, M * N * 9 / 10);
}

// accumulate=false ignores (NaN) dst; accumulate=true adds to it.
TEST_P(MatmulTest, AccumulateAddsOverwriteIgnores) {
  for (DTypePair p : {kPairs[0], kPairs[1], kPairs[2], kPairs[3]}) {
    if (!covers(p)) continue;
    const int K = 33, M = 20, N = 70;
    HostOperand st(K, p.st, M), mv(K, p.mv, N), dst(M, DType::kF32, N);
    st.fill(small_ints(rng));
    mv.fill(small_ints(rng));
    ASSERT_TRUE(run_and_check(dst, st, mv, false, true));  // over NaN poison
    std::vector<float> once(size_t(M) * N);
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) once[size_t(m) * N + n] = dst.get(m, n);
    cpu::matmul(dst.view, st.view, mv.view, true);
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n)
        ASSERT_EQ(dst.get(m, n), 2 * once[size_t(m) * N + n]) << m << ", " << n;
  }
}

// Views the kernels cannot read in place go through the generic (gather)
// path; multi-dim patterns that flatten to a row stay on the fast path.
TEST_P(MatmulTest, GenericPathViews) {
  auto strided = [](int64_t n, int64_t stride) {
    AccessPattern ap = AccessPattern::dense({n});
    ap.stride[0] = stride;
    return ap;
  };
  AccessPattern gaps = AccessPattern::dense({4, 9});  // 4 runs of 9 with gaps of 3
  gaps.stride[0] = 12;
  AccessPattern bcast = AccessPattern::dense({3, 1}).broadcast(1, 12, "test");  // [3, 12] stride 0
  const AccessPattern flat2d = AccessPattern::dense({4, 9});                     // contiguous 2-D
  AccessPattern transposed = AccessPattern::dense({6, 6}).transpose(0, 1, "test");

  for (DTypePair p : {kPairs[0], kPairs[1], kPairs[3], kPairs[7]}) {
    if (!covers(p)) continue;
    const int K = 19;
    struct Case {
      AccessPattern st, mv, dst;
      int64_t st_misalign, mv_misalign, dst_misalign;
    };
    const Case cases[] = {
        {strided(10, 2), gaps, strided(36, 3), 0, 0, 0},
        {transposed, bcast, AccessPattern::dense({36}), 0, 0, 0},
        {AccessPattern::dense({36}), flat2d, flat2d, 0, 0, 0},
        {AccessPattern::dense({8}), AccessPattern::dense({40}), AccessPattern::dense({40}), 1, 1,
         2},
        {flat2d, transposed, gaps, 0, 0, 0},
    };
    for (const Case& c : cases)
      for (bool acc : {false, true}) {
        HostOperand st(K, p.st, c.st, 64, c.st_misalign), mv(K, p.mv, c.mv, 64, c.mv_misalign);
        HostOperand dst(st.free(), DType::kF32, c.dst, 64, c.dst_misalign);
        ASSERT_EQ(dst.free(), mv.free());
        st.fill(small_ints(rng));
        mv.fill(small_ints(rng));
        if (acc) dst.fill(small_ints(rng));
        ASSERT_TRUE(run_and_check(dst, st, mv, acc, true));
        // dst's gaps stay untouched (still the NaN fill).
        if (c.dst.stride[c.dst.ndim - 1] > 1) {
          uint32_t gap;
          std::memcpy(&gap, dst.at(0, 0) + 4, 4);
          EXPECT_EQ(gap, 0xFFFFFFFFu);
        }
      }
  }
}

// Rows packed back to back with nothing after the last one: a read past a
// view's end leaves the buffer, which a sanitizer build (ASan) reports.
TEST_P(MatmulTest, TightBuffers) {
  const int shapes[][3] = {{1, 1, 1}, {3, 9, 33}, {5, 17, 1}, {2, 128, 7}, {7, 7, 63}, {4, 3, 512}};
  for (DTypePair p : kPairs) {
    if (!covers(p)) continue;
    for (const auto& sh : shapes) {
      const int K = sh[0], M = sh[1], N = sh[2];
      HostOperand st(K, p.st, AccessPattern::dense({M}), 0),
          mv(K, p.mv, AccessPattern::dense({N}), 0),
          dst(M, DType::kF32, AccessPattern::dense({N}), 0);
      st.fill(small_ints(rng));
      mv.fill(small_ints(rng));
      dst.fill(small_ints(rng));
      ASSERT_TRUE(run_and_check(dst, st, mv, true, true));
    }
  }
}

// IEEE special values propagate as in an fp32 dot product: inf * finite is
// inf, inf * 0 and NaN * anything are NaN, +inf + -inf is NaN.
TEST_P(MatmulTest, NanAndInfPropagate) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16, DType::kFP8E4M3, DType::kFP8E5M2}) {
    if (!covers({t, t})) continue;
    for (int N : {40, 3}) {  // both orientations (N = 3 vectorizes over M)
      const int K = 6, M = 20;
      HostOperand st(K, t, M), mv(K, t, N), dst(M, DType::kF32, N);
      st.fill([] { return 1.0f; });
      mv.fill([] { return 2.0f; });
      st.set(1, 3, kInf);     // row 3: +inf
      st.set(2, 5, kInf);     // row 5: +inf ...
      st.set(3, 5, -kInf);    // ... + -inf = NaN
      st.set(4, 7, kInf);     // row 7: inf, but inf * 0 in column 1
      mv.set(4, 1, 0.0f);
      const float nan = std::numeric_limits<float>::quiet_NaN();
      mv.set(5, 2, nan);      // column 2: NaN
      cpu::matmul(dst.view, st.view, mv.view, false);
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          const float got = dst.get(m, n);
          const bool want_nan = n == 2 || m == 5 || (m == 7 && n == 1);
          const bool want_inf = !want_nan && (m == 3 || m == 7);
          const float finite = n == 1 ? 10.0f : 12.0f;  // sum_k 1 * 2, one k zero in column 1
          const std::string where = cat(dtype_name(t), " N=", N, " dst[", m, ", ", n, "] = ", got);
          if (want_nan) {
            EXPECT_TRUE(std::isnan(got)) << where;
          } else if (want_inf) {
            EXPECT_EQ(got, kInf) << where;
          } else {
            EXPECT_EQ(got, finite) << where;
          }
        }
    }
  }
}

// vdpbf16ps flushes subnormal inputs (DAZ): a bf16 subnormal times a large
// value is lost there and exact elsewhere; either way within the bound.
TEST_P(MatmulTest, Bf16SubnormalsWithinDazBound) {
  if (!covers({DType::kBF16, DType::kBF16})) return;
  const int K = 2, M = 3, N = 17;
  HostOperand st(K, DType::kBF16, M), mv(K, DType::kBF16, N), dst(M, DType::kF32, N);
  st.fill([] { return 0x1p-130f; });  // bf16 subnormal (min normal 2^-126)
  mv.fill([] { return 0x1p100f; });
  ASSERT_EQ(st.get(0, 0), 0x1p-130f);
  ASSERT_TRUE(run_and_check(dst, st, mv, false, false));
  const float want = takes_vdpbf16ps(DType::kBF16, DType::kBF16) ? 0.0f : 0x1p-29f;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) EXPECT_EQ(dst.get(m, n), want) << m << ", " << n;
}

// kAuto takes vdpbf16ps exactly when the CPU has AVX512-BF16 and the
// dispatched target is AVX-512.
TEST_P(MatmulTest, Bf16PathName) {
  const bool avx512 = target() == HWY_AVX3 || target() == HWY_AVX3_DL;
  const bool want = avx512 && __builtin_cpu_supports("avx512bf16") && path() == Bf16Path::kAuto;
  const std::string name = cpu::bf16_path_name();
  EXPECT_EQ(name, want ? "avx512bf16" : hwy::TargetName(target()));
  rng.seed(1);  // and one matmul so the dispatcher is initialized
  ASSERT_TRUE(check_shape(DType::kBF16, DType::kBF16, 3, 3, 3, false, true, rng));
}

// The backend's real arenas: ~224 KiB partition pitch, PSUM rows, every
// partition and the full instruction.
TEST(MatmulArena, FullInstructionOnCpuBackendArenas) {
  CpuBackend be(kTrn2);
  const int64_t sbuf_pitch = kTrn2.sbuf_partition_bytes + CpuBackend::kPitchPad;
  const int64_t psum_pitch = kTrn2.psum_partition_bytes() + CpuBackend::kPitchPad;
  std::mt19937 rng(7);
  for (DTypePair p : {kPairs[0], kPairs[1]}) {
    for (bool acc : {false, true}) {
      const int K = kMaxK, M = kMaxM, N = kMaxN;
      // stationary at byte 1024, moving at byte 8192, dst in PSUM bank 3.
      const View st{be.at(Space::kSbuf, 0, 1024), sbuf_pitch, K, p.st, AccessPattern::dense({M})};
      const View mv{be.at(Space::kSbuf, 0, 8192), sbuf_pitch, K, p.mv, AccessPattern::dense({N})};
      const View dst{be.at(Space::kPsum, 0, 3 * 2048), psum_pitch, M, DType::kF32,
                     AccessPattern::dense({N})};
      std::vector<double> s(size_t(K) * M), v(size_t(K) * N), d(size_t(M) * N);
      const auto gen = small_ints(rng);
      for (int k = 0; k < K; ++k) {
        for (int m = 0; m < M; ++m) {
          s[size_t(k) * M + m] = gen();
          encode(p.st, float(s[size_t(k) * M + m]), st.row(k) + m * dtype_size(p.st));
        }
        for (int n = 0; n < N; ++n) {
          v[size_t(k) * N + n] = gen();
          encode(p.mv, float(v[size_t(k) * N + n]), mv.row(k) + n * dtype_size(p.mv));
        }
      }
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          d[size_t(m) * N + n] = acc ? gen() : 0.0;
          encode(DType::kF32, acc ? float(d[size_t(m) * N + n]) : NAN, dst.row(m) + n * 4);
        }
      cpu::matmul(dst, st, mv, acc);
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          double want = d[size_t(m) * N + n];
          for (int k = 0; k < K; ++k) want += s[size_t(k) * M + m] * v[size_t(k) * N + n];
          ASSERT_EQ(decode(DType::kF32, dst.row(m) + n * 4), want)
              << dtype_name(p.st) << " dst[" << m << ", " << n << "]";
        }
    }
  }
}

// Bad operands are ncore::Errors naming the operand, never a crash.
TEST(MatmulErrors, BadOperandsThrow) {
  auto expect_error = [](const View& dst, const View& st, const View& mv, const char* operand,
                         const char* needle) {
    try {
      cpu::matmul(dst, st, mv, false);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.instruction(), "matmul");
      EXPECT_EQ(e.operand(), operand) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  HostOperand st(8, DType::kBF16, 4), mv(8, DType::kBF16, 6), dst(4, DType::kF32, 6);
  HostOperand big_m(8, DType::kBF16, kMaxM + 1), big_n(8, DType::kBF16, kMaxN + 1);
  HostOperand big_k(kMaxK + 1, DType::kBF16, 4), big_k_mv(kMaxK + 1, DType::kBF16, 6);
  HostOperand short_k(7, DType::kBF16, 6), dst_bf16(4, DType::kBF16, 6), dst_m(5, DType::kF32, 6);
  HostOperand dst_n(4, DType::kF32, 7), st_f32(8, DType::kF32, 4), mv_i32(8, DType::kI32, 6);
  expect_error(dst.view, st.view, short_k.view, "moving", "contraction");
  expect_error(dst.view, big_m.view, mv.view, "stationary", "exceeds 128");
  expect_error(dst.view, st.view, big_n.view, "moving", "size 513");
  expect_error(dst.view, big_k.view, big_k_mv.view, "stationary", "exceeds 128");
  expect_error(dst_bf16.view, st.view, mv.view, "dst", "must be f32");
  expect_error(dst_m.view, st.view, mv.view, "dst", "partitions");
  expect_error(dst_n.view, st.view, mv.view, "dst", "free size");
  expect_error(dst.view, st_f32.view, mv.view, "moving", "fp32 pairs only with fp32");
  expect_error(dst.view, st.view, mv_i32.view, "moving", "integer");
  expect_error(View{}, st.view, mv.view, "dst", "missing");
  View empty_free = mv.view;
  empty_free.ap = AccessPattern{};
  expect_error(dst.view, st.view, empty_free, "moving", "non-empty");
  View zero_dim = mv.view;
  zero_dim.ap.shape[0] = 0;
  expect_error(dst.view, st.view, zero_dim, "moving", "outside [1, 512]");
  View negative_dims = mv.view;  // (-2) x (-3) would pass a size check
  negative_dims.ap = AccessPattern::dense({2, 3});
  negative_dims.ap.shape = {-2, -3};
  expect_error(dst.view, st.view, negative_dims, "moving", "outside [1, 512]");
  View negative_stride = st.view;
  negative_stride.ap.stride[0] = -1;
  expect_error(dst.view, negative_stride, mv.view, "stationary", "negative");
}

}  // namespace
}  // namespace ncore
