// The CPU reference's data movement: dma / tensor_copy (every dtype pair, any
// walks, partition broadcast, overlap), dma_transpose, transpose, memset,
// iota, affine_select, and the walk (Cursor) they all rely on. Each case runs
// on every compiled and supported Highway target against the scalar
// reference of cpu_test_util.h, bit for bit.

#include <ncore/reference/cpu_walk.h>

#include <cstdio>

#include "cpu_test_util.h"

namespace ncore::test {
namespace {

// ---- Dispatch ----

// Every compiled and supported target runs when forced (check() relies on
// it), the baseline fallback included, so narrow targets get tested too.
TEST(Targets, ForcedTargetIsTheOneThatRuns) {
  std::string names;
  bool baseline = false;
  for_each_target([&](int64_t t) {
    Arena a(1);
    const Opnd d = a.place(DType::kF32, 1, AccessPattern::dense({5}));
    std::vector<uint8_t> mem = a.bytes();
    cpu::execute(make(Opcode::kMemset), a.views(mem, {d}));
    EXPECT_STREQ(cpu::execute_target_name(), hwy::TargetName(t));
    names += cat(names.empty() ? "" : " ", hwy::TargetName(t));
    baseline |= t == HWY_STATIC_TARGET;
  });
  EXPECT_TRUE(baseline) << "the baseline target " << hwy::TargetName(HWY_STATIC_TARGET)
                        << " did not run";
  RecordProperty("targets", names);
  std::printf("CPU reference targets tested: %s\n", names.c_str());
}

// ---- Walk / Cursor ----

// Any chunking of a Cursor's runs visits exactly AccessPattern::for_each's
// elements, in its order, for patterns with size-1 dims, zero strides,
// mergeable and unmergeable dims.
TEST(Walk, RunsMatchForEach) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    AccessPattern ap;
    ap.ndim = 1 + int(rng() % 5);
    int64_t stride = int64_t(rng() % 3);  // dense-ish so dims merge often
    for (int d = ap.ndim - 1; d >= 0; --d) {
      ap.shape[d] = 1 + int64_t(rng() % 5);
      ap.stride[d] = rng() % 4 == 0 ? int64_t(rng() % 7) : stride;
      stride = ap.stride[d] * ap.shape[d] + (rng() % 3 == 0 ? 1 : 0);
    }
    const std::vector<int64_t> want = offsets(ap);
    const cpu::Walk w = cpu::Walk::of(ap);
    ASSERT_EQ(w.size, ap.size());
    const int64_t start = int64_t(rng() % uint32_t(want.size()));
    cpu::Cursor c(w, start);
    std::vector<int64_t> got;
    while (int64_t(got.size()) < ap.size() - start) {
      const int64_t left = ap.size() - start - int64_t(got.size());
      const cpu::Run r = c.next(1 + int64_t(rng() % uint32_t(left)));
      ASSERT_GE(r.len, 1);
      for (int64_t k = 0; k < r.len; ++k) got.push_back(r.offset + k * r.stride);
    }
    ASSERT_EQ(got, std::vector<int64_t>(want.begin() + start, want.end())) << "iteration " << iter;
  }
}

TEST(Walk, DenseViewsBecomeOneRun) {
  const cpu::Walk w = cpu::Walk::of(AccessPattern::dense({2, 1, 3, 4}));
  EXPECT_TRUE(w.contiguous());
  EXPECT_EQ(w.ndim, 1);
  EXPECT_EQ(w.shape[0], 24);
  EXPECT_FALSE(cpu::Walk::of(pattern({2, 3}, {4, 1})).contiguous());
  EXPECT_TRUE(cpu::Walk::of(pattern({1}, {9})).contiguous());
}

// ---- dma / tensor_copy ----

// Every (dst, src) dtype pair over walks of different shapes with the same
// element count; same dtypes move bits (any payload), others round RNE.
TEST(Copy, EveryDTypePairAndWalk) {
  for (Opcode op : {Opcode::kTensorCopy, Opcode::kDma}) {
    for (DType dt : kAllDTypes)
      for (DType st : kAllDTypes)
        for (int64_t n : {1, 7, 60, 2310}) {
          const std::vector<AccessPattern> dst_aps = patterns(n, false);
          const std::vector<AccessPattern> src_aps = patterns(n, true);
          for (size_t i = 0; i < dst_aps.size(); ++i) {
            Arena a(uint32_t(n * 131 + i));
            const bool same = dt == st;
            const int np = n > 100 ? 2 : 3;
            const Opnd s = a.place(st, np, src_aps[(i * 3 + 1) % src_aps.size()],
                                   same ? Fill::kBits : Fill::kValues);
            const Opnd d = a.place(dt, np, dst_aps[i]);
            Tolerance tol;
            tol.any_nan = !same;
            SCOPED_TRACE(cat(opcode_name(op), " ", dtype_name(dt), " <- ", dtype_name(st), " n ", n,
                             " pattern ", i));
            check(a, make(op), {d, s}, tol);
          }
        }
  }
}

// A DMA into HBM writes long contiguous rows with streaming stores (from
// kStreamMinBytes = 4 KiB per row): the same bits as any copy, whatever the
// alignment of the rows' ends; short rows, strided walks, casts and
// overlapping operands take the ordinary path. Only the destination slot's
// Space decides (the views are resolved already).
TEST(Copy, DmaIntoHbmStreamsTheSameBits) {
  Instr in = make(Opcode::kDma);
  in.opnd[0].space = Space::kHbm;
  int iter = 0;
  for (DType t : {DType::kF32, DType::kBF16, DType::kFP8E4M3})
    for (int64_t bytes : {4095, 4096, 4160, 20000 + 7}) {
      const int64_t n = bytes / dtype_size(t);
      for (int walk = 0; walk < 3; ++walk) {
        Arena a(uint32_t(++iter));
        const AccessPattern src_ap = walk == 2 ? pattern({n}, {2}) : AccessPattern::dense({n});
        const int64_t src_pitch = walk == 1 ? 0 : -1;  // 1: every partition reads one row
        const Opnd s = a.place(t, 3, src_ap, Fill::kBits, src_pitch);
        const Opnd d = a.place(t, 3, AccessPattern::dense({n}));
        SCOPED_TRACE(cat(dtype_name(t), " row bytes ", n * dtype_size(t), " walk ", walk));
        check(a, in, {d, s});
      }
    }
  // A cast, and a destination overlapping its source (in place, shifted).
  Arena a(99);
  const Opnd s = a.place(DType::kF32, 2, AccessPattern::dense({3000}));
  const Opnd d = a.place(DType::kBF16, 2, AccessPattern::dense({3000}));
  check(a, in, {d, s}, Tolerance{{}, /*any_nan=*/true});
  for (int64_t shift : {0, 64, -4}) {
    Arena b(uint32_t(100 + shift));
    const Opnd base = b.place(DType::kF32, 2, AccessPattern::dense({2100}), Fill::kBits);
    const Opnd dd = b.alias(base, DType::kF32, 2, pattern({2000}, {1}, 20));
    const Opnd ss = b.alias(base, DType::kF32, 2, pattern({2000}, {1}, 20 + shift / 4));
    SCOPED_TRACE(cat("overlap shift ", shift));
    check(b, in, {dd, ss});
  }
}

// A source whose partitions all read the same row (an HBM view with dim-0
// stride 0), into contiguous and strided destinations.
TEST(Copy, PartitionBroadcast) {
  for (DType st : {DType::kF32, DType::kBF16, DType::kFP8E4M3})
    for (DType dt : {DType::kF32, DType::kBF16}) {
      Arena a(11);
      const Opnd s = a.place(st, 5, AccessPattern::dense({300}), Fill::kValues, /*pitch=*/0);
      const Opnd d = a.place(dt, 5, pattern({300}, {2}));
      SCOPED_TRACE(cat(dtype_name(dt), " <- ", dtype_name(st)));
      check(a, make(Opcode::kDma), {d, s});
    }
}

// Whole-tile copies of the sizes kernels use, past several chunks.
TEST(Copy, LargeTiles) {
  const std::pair<DType, DType> pairs[] = {{DType::kBF16, DType::kF32},
                                           {DType::kF32, DType::kBF16},
                                           {DType::kF32, DType::kF32},
                                           {DType::kFP8E4M3, DType::kF32},
                                           {DType::kF32, DType::kI32}};
  for (const auto& [dt, st] : pairs) {
    Arena a(12);
    const Opnd s = a.place(st, 128, AccessPattern::dense({4100}));
    const Opnd d = a.place(dt, 128, AccessPattern::dense({4100}));
    SCOPED_TRACE(cat(dtype_name(dt), " <- ", dtype_name(st)));
    check(a, make(Opcode::kTensorCopy), {d, s});
  }
}

// In place (the same view: a no-op for bits, a rounding for a cast through a
// same-size view of other dtype) and overlapping views: each partition's
// inputs are read before it is written, as in the interpreter.
TEST(Copy, OverlappingOperands) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kI32}) {
    for (int64_t shift : {0, 1, 3, -2}) {
      for (int64_t n : {50, 2100}) {
        Arena a(uint32_t(13 + n));
        const Opnd base = a.place(t, 3, AccessPattern::dense({n + 8}), Fill::kValues);
        const Opnd d = a.alias(base, t, 3, pattern({n}, {1}, 4));
        const Opnd s = a.alias(base, t, 3, pattern({n}, {1}, 4 + shift));
        SCOPED_TRACE(cat(dtype_name(t), " shift ", shift, " n ", n));
        check(a, make(Opcode::kTensorCopy), {d, s});
        // A reversed (transposed) view of the same bytes.
        const Opnd r = a.alias(base, t, 3, pattern({2, n / 2}, {1, 2}, 4));
        check(a, make(Opcode::kTensorCopy), {d, r});
      }
    }
  }
  // f32 <- i32 over the same bytes (a same-size cast in place).
  Arena a(14);
  const Opnd ints = a.place(DType::kI32, 2, AccessPattern::dense({2000}));
  const Opnd flts = a.alias(ints, DType::kF32, 2, AccessPattern::dense({2000}));
  check(a, make(Opcode::kTensorCopy), {flts, ints});
}

// bf16 / fp8 overflow rounds to inf; NaN stays NaN; ties round to even.
TEST(Copy, RoundingEdges) {
  const float values[] = {0x1.fefffep127f,
                          0x1.ff0000p127f,
                          3.0e38f,
                          240.0f,
                          247.9f,
                          248.0f,
                          1.0f + 0x1p-8f,
                          1.0f + 0x3p-8f,
                          1e-40f,
                          -0.0f,
                          std::numeric_limits<float>::quiet_NaN(),
                          -1e30f,
                          2147483520.0f,
                          2147483648.0f,
                          -2147483904.0f,
                          0.5f,
                          1.5f,
                          2.5f,
                          -2.5f};
  for (DType dt : kAllDTypes) {
    Arena a(15);
    const int64_t n = int64_t(std::size(values));
    const Opnd s = a.place(DType::kF32, 2, AccessPattern::dense({n}));
    for (int p = 0; p < 2; ++p)
      for (int64_t e = 0; e < n; ++e) a.set(s, p, e, p ? -values[e] : values[e]);
    const Opnd d = a.place(dt, 2, AccessPattern::dense({n}));
    SCOPED_TRACE(dtype_name(dt));
    check(a, make(Opcode::kTensorCopy), {d, s});
  }
}

// ---- dma_transpose / transpose ----

// dst[P, F] = src[F, P] (HBM, rows F of P elements, perhaps itself a
// transposed view), bits for 2- and 4-byte dtypes.
TEST(Transpose, DmaTranspose) {
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32, DType::kI32})
    for (int P : {1, 5, 128})
      for (int F : {1, 3, 70, 130}) {
        Arena a(uint32_t(P * 1000 + F));
        const Opnd s = a.place(t, F, pattern({P}, {2}), Fill::kBits);  // strided rows
        const Opnd d = a.place(t, P, AccessPattern::dense({F}));
        Tolerance tol;
        tol.any_nan = false;
        SCOPED_TRACE(cat(dtype_name(t), " P ", P, " F ", F));
        check(a, make(Opcode::kDmaTranspose), {d, s}, tol);
        // The src as a transposed view of a row-major [P, F] tensor.
        Arena b(uint32_t(P * 1000 + F + 1));
        const Opnd s2 = b.place(t, F, pattern({P}, {F}), Fill::kBits, int64_t(dtype_size(t)));
        const Opnd d2 = b.place(t, P, pattern({F}, {3}));
        check(b, make(Opcode::kDmaTranspose), {d2, s2}, tol);
        // Contiguous rows on both sides: the register-tiled fast path.
        Arena c(uint32_t(P * 1000 + F + 2));
        const Opnd s3 = c.place(t, F, AccessPattern::dense({P}), Fill::kBits);
        const Opnd d3 = c.place(t, P, AccessPattern::dense({F}));
        check(c, make(Opcode::kDmaTranspose), {d3, s3}, tol);
      }
}

// An SBUF dma_transpose of B blocks side by side: dst[P, B F] with
// dst[r, b F + c] = src[c, b P + r], bits; contiguous rows (per-block fast
// path) and padded [B, P] / [B, F] walks (the general path).
TEST(Transpose, DmaTransposeBlocks) {
  for (DType t : {DType::kBF16, DType::kF32})
    for (int B : {2, 3})
      for (int P : {1, 16, 128})
        for (int F : {1, 9, 128}) {
          Tolerance tol;
          tol.any_nan = false;
          SCOPED_TRACE(cat(dtype_name(t), " B ", B, " P ", P, " F ", F));
          Arena a(uint32_t(B * 100000 + P * 1000 + F));
          const Opnd s = a.place(t, F, AccessPattern::dense({B * P}), Fill::kBits);
          const Opnd d = a.place(t, P, AccessPattern::dense({B * F}));
          check(a, make(Opcode::kDmaTranspose), {d, s}, tol);
          Arena b(uint32_t(B * 100000 + P * 1000 + F + 1));
          const Opnd s2 = b.place(t, F, pattern({B, P}, {P + 3, 1}), Fill::kBits);
          const Opnd d2 = b.place(t, P, pattern({B, F}, {F + 5, 1}));
          check(b, make(Opcode::kDmaTranspose), {d2, s2}, tol);
        }
}

// dst[F, P] = src[P, F] on the Tensor engine: values, RNE to dst's dtype.
TEST(Transpose, TensorEngine) {
  const std::pair<DType, DType> pairs[] = {
      {DType::kF32, DType::kF32},     {DType::kF32, DType::kBF16},    {DType::kF32, DType::kF16},
      {DType::kF32, DType::kFP8E4M3}, {DType::kF32, DType::kFP8E5M2}, {DType::kBF16, DType::kBF16},
      {DType::kF16, DType::kF16}};
  for (const auto& [dt, st] : pairs)
    for (int P : {1, 17, 128})
      for (int F : {1, 9, 128}) {
        Arena a(uint32_t(P * 100 + F));
        const Opnd s =
            a.place(st, P, F > 1 ? pattern({F / 3 + 1, 3}, {5, 1}) : AccessPattern::dense({1}));
        const int64_t f = a.spec(s).ap.size();
        const Opnd d = a.place(dt, int(f), AccessPattern::dense({P}));
        SCOPED_TRACE(cat(dtype_name(dt), " <- ", dtype_name(st), " P ", P, " F ", f));
        check(a, make(Opcode::kTranspose), {d, s});
      }
}

// Contiguous rows take the blocked fast path where the element map is exact
// without fp32 (f32 -> f32, bf16 -> bf16 canonicalising NaN, bf16 -> f32):
// bit for bit the scalar definition, every NaN payload included.
TEST(Transpose, TensorEngineContiguousRows) {
  const std::pair<DType, DType> pairs[] = {{DType::kF32, DType::kF32},
                                           {DType::kBF16, DType::kBF16},
                                           {DType::kF32, DType::kBF16},
                                           {DType::kF16, DType::kF16}};
  for (const auto& [dt, st] : pairs)
    for (int P : {1, 17, 128})
      for (int F : {1, 9, 40, 128}) {
        Arena a(uint32_t(P * 100 + F + 7));
        const Opnd s = a.place(st, P, AccessPattern::dense({F}), Fill::kBits);
        const Opnd d = a.place(dt, F, AccessPattern::dense({P}));
        Tolerance tol;
        tol.any_nan = false;
        SCOPED_TRACE(cat(dtype_name(dt), " <- ", dtype_name(st), " P ", P, " F ", F));
        check(a, make(Opcode::kTranspose), {d, s}, tol);
      }
}

// ---- memset ----

TEST(Memset, EveryDTypeAndWalk) {
  const float values[] = {0.0f,
                          -0.0f,
                          1.5f,
                          3.3f,
                          -250.0f,
                          1e10f,
                          -1e10f,
                          70000.0f,
                          std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()};
  for (DType t : kAllDTypes)
    for (float value : values)
      for (int64_t n : {1, 13, 2050}) {
        const std::vector<AccessPattern> aps = patterns(n, false);
        for (size_t i = 0; i < aps.size(); ++i) {
          Arena a(uint32_t(n + i));
          const Opnd d = a.place(t, 3, aps[i]);
          Instr in = make(Opcode::kMemset);
          in.imm[0] = value;
          SCOPED_TRACE(cat(dtype_name(t), " value ", value, " n ", n, " pattern ", i));
          check(a, in, {d});
        }
      }
}

// ---- iota / affine_select ----

TEST(Iota, PatternsAndWrapping) {
  const Affine affines[] = {
      {0, 1, {0, 0, 0, 0}},               // partition index
      {3, -2, {1, 0, 0, 0}},              // base + channel p + i0
      {-7, 5, {100, -3, 11, 2}},          // all four dims
      {2147483000, 1000, {97, 1, 0, 0}},  // wraps past INT32_MAX
      {16777215, 1, {1, 2, 3, 4}},        // beyond 2^24: f32 rounds
  };
  for (DType t : {DType::kI32, DType::kF32})
    for (size_t k = 0; k < std::size(affines); ++k)
      for (int64_t n : {1, 24, 2310}) {
        const std::vector<AccessPattern> aps = patterns(n, false);
        for (size_t i = 0; i < aps.size(); ++i) {
          Arena a(uint32_t(n + i));
          const Opnd d = a.place(t, 4, aps[i]);
          Instr in = make(Opcode::kIota);
          in.engine = Engine::kGpSimd;
          in.affine = affines[k];
          SCOPED_TRACE(cat(dtype_name(t), " affine ", k, " n ", n, " pattern ", i));
          check(a, in, {d});
        }
      }
}

TEST(AffineSelect, ComparisonsDTypesWalks) {
  const AluOp cmps[] = {AluOp::kIsEqual, AluOp::kNotEqual, AluOp::kIsLt,
                        AluOp::kIsLe,    AluOp::kIsGt,     AluOp::kIsGe};
  const Affine causal{0, 1, {-1, 0, 0, 0}};  // p - i >= 0: keep the lower triangle
  const Affine mixed{5, -1, {2, -3, 1, 0}};
  for (AluOp cmp : cmps)
    for (DType t : kAllDTypes)
      for (int64_t n : {1, 60, 2310}) {
        const std::vector<AccessPattern> dst_aps = patterns(n, false);
        const std::vector<AccessPattern> src_aps = patterns(n, true);
        for (size_t i = 0; i < dst_aps.size(); ++i) {
          Arena a(uint32_t(n * 7 + i));
          const Opnd s = a.place(t, 6, src_aps[(i + 2) % src_aps.size()]);
          const Opnd d = a.place(i % 2 ? DType::kF32 : t, 6, dst_aps[i]);
          Instr in = make(Opcode::kAffineSelect, cmp);
          in.engine = Engine::kGpSimd;
          in.affine = i % 2 ? mixed : causal;
          in.imm[0] = i % 3 == 0 ? -std::numeric_limits<float>::infinity() : -3.5f;
          SCOPED_TRACE(cat(alu_name(cmp), " ", dtype_name(t), " n ", n, " pattern ", i));
          check(a, in, {d, s});
        }
      }
}

// In place, as attention masks are applied.
TEST(AffineSelect, InPlace) {
  Arena a(21);
  const Opnd t = a.place(DType::kF32, 128, AccessPattern::dense({512}));
  Instr in = make(Opcode::kAffineSelect, AluOp::kIsGe);
  in.engine = Engine::kGpSimd;
  in.affine = Affine{0, 1, {-1, 0, 0, 0}};
  in.imm[0] = -1e30f;
  check(a, in, {t, t});
}

}  // namespace
}  // namespace ncore::test
