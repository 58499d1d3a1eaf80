// The CPU reference's tensor_tensor, tensor_scalar and scalar_tensor_tensor: every ALU op, every
// dtype, walks of different shapes per operand, column scalars and reversed
// operands, on every compiled and supported Highway target, bit for bit
// against isa/semantics.h alu() (NaN matches NaN: x86 picks either operand's
// payload when both are NaN).

#include "cpu_test_util.h"

namespace ncore::test {
namespace {

constexpr AluOp kAllAluOps[] = {AluOp::kBypass,   AluOp::kAdd,  AluOp::kSubtract, AluOp::kMultiply,
                                AluOp::kDivide,   AluOp::kMax,  AluOp::kMin,      AluOp::kIsEqual,
                                AluOp::kNotEqual, AluOp::kIsLt, AluOp::kIsLe,     AluOp::kIsGt,
                                AluOp::kIsGe};

// Values that make ALU ops interesting: equal pairs (comparisons), NaN
// (max/min propagate it, not_equal is true), signed zeros (max/min pick by
// operand order), infinities, 0 / 0.
void salt(Arena& a, Opnd x, Opnd y, int np, int64_t n) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<float, float> pairs[] = {{nan, 1.0f},   {1.0f, nan},  {nan, nan}, {0.0f, -0.0f},
                                           {-0.0f, 0.0f}, {2.0f, 2.0f}, {inf, inf}, {-inf, 3.0f},
                                           {0.0f, 0.0f},  {5.0f, -inf}};
  for (int p = 0; p < np; ++p)
    for (size_t k = 0; k < std::size(pairs); ++k) {
      const int64_t e = int64_t((k * 7 + size_t(p)) % size_t(n));
      a.set(x, p, e, pairs[k].first);
      a.set(y, p, e, pairs[k].second);
    }
}

TEST(TensorTensor, EveryOpDTypeAndWalk) {
  for (AluOp op : kAllAluOps)
    for (DType t : kAllDTypes)
      for (int64_t n : {1, 17, 60, 2310}) {
        const std::vector<AccessPattern> dst_aps = patterns(n, false);
        const std::vector<AccessPattern> src_aps = patterns(n, true);
        for (size_t i = 0; i < dst_aps.size(); ++i) {
          Arena a(uint32_t(n * 31 + i));
          const int np = n > 100 ? 2 : 3;
          // Mixed dtypes: in1 and dst cycle through the others.
          const DType t1 = kAllDTypes[(size_t(t) + i) % std::size(kAllDTypes)];
          const Opnd x = a.place(t, np, src_aps[i % src_aps.size()]);
          // Every fourth case reads in1 from one row for all partitions (pitch 0).
          const Opnd y = a.place(i % 2 ? t : t1, np, src_aps[(i + 3) % src_aps.size()],
                                 Fill::kValues, i % 4 == 3 ? 0 : -1);
          const Opnd d = a.place(i % 3 ? t : t1, np, dst_aps[i]);
          if (is_float(t) && is_float(t1) && n >= 10) salt(a, x, y, np, n);
          SCOPED_TRACE(cat(alu_name(op), " ", dtype_name(t), " n ", n, " pattern ", i));
          check(a, make(Opcode::kTensorTensor, op), {d, x, y});
        }
      }
}

// The kernels' shapes: [128, 2048] f32 and bf16, in place and not.
TEST(TensorTensor, LargeTilesInPlace) {
  for (DType t : {DType::kF32, DType::kBF16})
    for (AluOp op : {AluOp::kAdd, AluOp::kMultiply, AluOp::kMax, AluOp::kSubtract}) {
      Arena a(41);
      const Opnd x = a.place(t, 128, AccessPattern::dense({2048}));
      const Opnd y = a.place(t, 128, AccessPattern::dense({2048}));
      SCOPED_TRACE(cat(alu_name(op), " ", dtype_name(t)));
      check(a, make(Opcode::kTensorTensor, op), {x, x, y});
      check(a, make(Opcode::kTensorTensor, op), {y, x, y});
      // in1 a [P, 1] column broadcast along the free dim.
      const Opnd c = a.place(t, 128, pattern({2048}, {0}));
      const Opnd d = a.place(t, 128, AccessPattern::dense({2048}));
      check(a, make(Opcode::kTensorTensor, op), {d, x, c});
    }
}

// dst overlapping an input at a shift: the partition's inputs are read first.
TEST(TensorTensor, OverlapShifted) {
  for (int64_t n : {40, 3000})
    for (int64_t dst_at : {0, 3}) {  // dst behind or ahead of in0
      Arena a{uint32_t(n + dst_at)};
      const Opnd base = a.place(DType::kF32, 2, AccessPattern::dense({n + 4}));
      const Opnd d = a.alias(base, DType::kF32, 2, pattern({n}, {1}, dst_at));
      const Opnd x = a.alias(base, DType::kF32, 2, pattern({n}, {1}, 3 - dst_at));
      const Opnd y = a.place(DType::kBF16, 2, AccessPattern::dense({n}));
      SCOPED_TRACE(cat("n ", n, " dst at ", dst_at));
      check(a, make(Opcode::kTensorTensor, AluOp::kAdd), {d, x, y});
      check(a, make(Opcode::kTensorTensor, AluOp::kSubtract), {d, y, x});
    }
}

// On-chip operands interleave across partitions (every buffer spans all of
// them at the same pitch), so their footprints overlap while their rows do
// not: such operands take the chunked paths, with the same bits. Rows that
// overlap another partition's row (a view shifted by whole pitches) give
// the partition-ordered result: partition p reads what partition p - 1 wrote.
TEST(Elementwise, OperandsInterleavedAcrossPartitions) {
  Instr square = make(Opcode::kActivation);
  square.func = ActFunc::kSquare;
  Instr scale = make(Opcode::kTensorScalar, AluOp::kSubtract);
  scale.alu1 = AluOp::kMultiply;
  scale.imm[0] = 0.5f;
  scale.imm[1] = 3.0f;
  for (DType t : {DType::kF32, DType::kBF16})
    for (int64_t n : {40, 2500}) {
      Arena a{uint32_t(n) + uint32_t(t)};
      const int64_t esz = dtype_size(t);
      // Two disjoint views in each row of one buffer, and a third buffer.
      const Opnd base = a.place(t, 4, AccessPattern::dense({2 * n + 16}), Fill::kFinite);
      const Opnd lo = a.alias(base, t, 4, AccessPattern::dense({n}));
      const Opnd hi = a.alias(base, t, 4, AccessPattern::dense({n}), (n + 16) * esz);
      const Opnd other = a.place(t, 4, AccessPattern::dense({n}), Fill::kFinite);
      const Opnd acc = a.place(DType::kF32, 4, AccessPattern::dense({1}));
      // The same rows shifted by one partition: dst row p is src row p + 1.
      const int64_t pitch = a.spec(base).pitch;
      const Opnd up = a.alias(base, t, 3, AccessPattern::dense({n}), pitch);
      const Opnd down = a.alias(base, t, 3, AccessPattern::dense({n}));
      SCOPED_TRACE(cat(dtype_name(t), " n ", n));
      check(a, make(Opcode::kTensorTensor, AluOp::kMultiply), {hi, lo, other});
      check(a, make(Opcode::kTensorTensor, AluOp::kAdd), {lo, hi, hi});
      check(a, scale, {hi, lo});
      check(a, square, {lo, hi, acc});
      check(a, make(Opcode::kTensorCopy), {hi, lo});
      check(a, make(Opcode::kTensorTensor, AluOp::kAdd), {up, down, down});
      check(a, make(Opcode::kTensorTensor, AluOp::kAdd), {down, up, up});
      check(a, scale, {up, down});
      check(a, square, {up, down, acc});
    }
  // A narrower destination inside a wider source's row (bf16 from byte 3n
  // of an f32 row of 4n bytes): they overlap in each partition, so the
  // whole row is read first.
  const int64_t n = 2500;
  Arena a(7);
  const Opnd base = a.place(DType::kF32, 3, AccessPattern::dense({2 * n}), Fill::kFinite);
  const Opnd wide = a.alias(base, DType::kF32, 3, AccessPattern::dense({n}));
  const Opnd narrow = a.alias(base, DType::kBF16, 3, AccessPattern::dense({n}), 3 * n);
  {
    SCOPED_TRACE("narrow copy");
    check(a, make(Opcode::kTensorCopy), {narrow, wide});
  }
  SCOPED_TRACE("narrow add");
  check(a, make(Opcode::kTensorTensor, AluOp::kAdd), {narrow, wide, wide});
}

TEST(TensorScalar, EveryOpPairFlagsAndDType) {
  int iter = 0;
  for (AluOp op0 : kAllAluOps)
    for (AluOp op1 : kAllAluOps)
      for (int flags = 0; flags < 4; ++flags) {
        ++iter;
        const DType t = kAllDTypes[size_t(iter) % std::size(kAllDTypes)];
        const DType td = kAllDTypes[size_t(iter / 7) % std::size(kAllDTypes)];
        const int64_t n = iter % 5 == 0 ? 1100 : 24;
        Arena a{uint32_t(iter)};
        const std::vector<AccessPattern> aps = patterns(n, true);
        const Opnd x = a.place(t, 4, aps[size_t(iter) % aps.size()]);
        const std::vector<AccessPattern> dst_aps = patterns(n, false);
        const Opnd d = a.place(td, 4, dst_aps[size_t(iter / 3) % dst_aps.size()]);
        Instr in = make(Opcode::kTensorScalar, op0);
        in.alu1 = op1;
        if (flags & 1) in.flags |= kReverse0;
        if (flags & 2) in.flags |= kReverse1;
        std::array<Opnd, 5> o{d, x};
        // Scalars: immediates (some special) or [P, 1] f32 columns.
        const float imms[] = {2.5f,
                              -0.0f,
                              0.0f,
                              std::numeric_limits<float>::quiet_NaN(),
                              -std::numeric_limits<float>::infinity(),
                              3.0f,
                              -1.25f};
        in.imm[0] = imms[size_t(iter) % std::size(imms)];
        in.imm[1] = imms[size_t(iter / 2) % std::size(imms)];
        if (iter % 3 == 0) o[3] = a.place(DType::kF32, 4, AccessPattern::dense({1}));
        if (iter % 4 == 1) o[4] = a.place(DType::kF32, 4, AccessPattern::dense({1}));
        SCOPED_TRACE(cat(alu_name(op0), " ", alu_name(op1), " flags ", flags, " ", dtype_name(td),
                         " <- ", dtype_name(t)));
        check(a, in, o);
      }
}

// Every op pair (the fused add / subtract / multiply pairs and the two-pass
// rest), both flags, mixed dtypes and walks, immediates and columns.
TEST(ScalarTensorTensor, EveryOpPairFlagsAndDType) {
  int iter = 0;
  for (AluOp op0 : kAllAluOps)
    for (AluOp op1 : kAllAluOps)
      for (int flags = 0; flags < 4; ++flags) {
        ++iter;
        const DType t = kAllDTypes[size_t(iter) % std::size(kAllDTypes)];
        const DType tt = kAllDTypes[size_t(iter / 5) % std::size(kAllDTypes)];
        const DType td = kAllDTypes[size_t(iter / 7) % std::size(kAllDTypes)];
        const int64_t n = iter % 5 == 0 ? 1100 : 24;
        Arena a{uint32_t(iter + 1000)};
        const std::vector<AccessPattern> aps = patterns(n, true);
        const Opnd x = a.place(t, 4, aps[size_t(iter) % aps.size()]);
        const Opnd y = a.place(tt, 4, aps[size_t(iter + 2) % aps.size()]);
        const std::vector<AccessPattern> dst_aps = patterns(n, false);
        const Opnd d = a.place(td, 4, dst_aps[size_t(iter / 3) % dst_aps.size()]);
        if (is_float(t) && is_float(tt) && n >= 10) salt(a, x, y, 4, n);
        Instr in = make(Opcode::kScalarTensorTensor, op0);
        in.alu1 = op1;
        if (flags & 1) in.flags |= kReverse0;
        if (flags & 2) in.flags |= kReverse1;
        const float imms[] = {2.5f, -0.0f, 0.0f, std::numeric_limits<float>::quiet_NaN(),
                              -std::numeric_limits<float>::infinity(), 3.0f, -1.25f};
        in.imm[0] = imms[size_t(iter) % std::size(imms)];
        std::array<Opnd, 5> o{d, x, y};
        if (iter % 3 == 0) o[3] = a.place(DType::kF32, 4, AccessPattern::dense({1}));
        SCOPED_TRACE(cat(alu_name(op0), " ", alu_name(op1), " flags ", flags, " ", dtype_name(td),
                         " <- ", dtype_name(t), ", ", dtype_name(tt)));
        check(a, in, o);
      }
}

// The layernorm shapes: (x - mean) * gamma and (t * rstd) + beta on f32 /
// bf16 rows of 2048, in place and not, one input from a shared row.
TEST(ScalarTensorTensor, LargeTiles) {
  for (DType t : {DType::kF32, DType::kBF16})
    for (DType td : {DType::kF32, DType::kBF16}) {
      Arena a(53);
      const Opnd x = a.place(t, 128, AccessPattern::dense({2048}));
      const Opnd g = a.place(t, 128, AccessPattern::dense({2048}), Fill::kValues, 0);
      const Opnd d = a.place(td, 128, AccessPattern::dense({2048}));
      const Opnd s0 = a.place(DType::kF32, 128, AccessPattern::dense({1}));
      for (auto [op0, op1] : {std::pair{AluOp::kSubtract, AluOp::kMultiply},
                              std::pair{AluOp::kMultiply, AluOp::kAdd}}) {
        Instr in = make(Opcode::kScalarTensorTensor, op0);
        in.alu1 = op1;
        SCOPED_TRACE(cat(dtype_name(td), " <- ", dtype_name(t), " ", alu_name(op0)));
        check(a, in, {d, x, g, s0});
        check(a, in, {x, x, g, s0});  // in place
      }
    }
}

// A product then a sum, as in TensorScalar.NoFusedMultiplyAdd: two roundings.
TEST(ScalarTensorTensor, NoFusedMultiplyAdd) {
  Arena a(54);
  const Opnd x = a.place(DType::kF32, 1, AccessPattern::dense({64}), Fill::kFinite);
  const Opnd y = a.place(DType::kF32, 1, AccessPattern::dense({64}), Fill::kFinite);
  for (int64_t e = 0; e < 64; ++e) {
    a.set(x, 0, e, 1.0f + float(e + 1) * 0x1p-23f);
    a.set(y, 0, e, -1.0f);
  }
  const Opnd d = a.place(DType::kF32, 1, AccessPattern::dense({64}));
  Instr in = make(Opcode::kScalarTensorTensor, AluOp::kMultiply);
  in.alu1 = AluOp::kAdd;
  in.imm[0] = 1.0f + 0x1p-23f;
  check(a, in, {d, x, y});
  for_each_target([&](int64_t) {
    std::vector<uint8_t> mem = a.bytes();
    const auto v = a.views(mem, {d, x, y});
    cpu::execute(in, v);
    float got;
    std::memcpy(&got, v[0].row(0), 4);
    EXPECT_EQ(got, 0x1p-22f);  // fl(fl((1 + 2^-23)^2) - 1); an FMA keeps 2^-46 more
  });
}

// The kernels' shapes, with the fast paths: f32 / bf16 rows, mult then add.
TEST(TensorScalar, LargeTiles) {
  for (DType t : {DType::kF32, DType::kBF16})
    for (DType td : {DType::kF32, DType::kBF16}) {
      Arena a(51);
      const Opnd x = a.place(t, 128, AccessPattern::dense({2048}));
      const Opnd d = a.place(td, 128, AccessPattern::dense({2048}));
      const Opnd s0 = a.place(DType::kF32, 128, AccessPattern::dense({1}));
      Instr in = make(Opcode::kTensorScalar, AluOp::kMultiply);
      in.alu1 = AluOp::kAdd;
      in.imm[1] = 0.375f;
      SCOPED_TRACE(cat(dtype_name(td), " <- ", dtype_name(t)));
      check(a, in, {d, x, {}, s0});
      check(a, in, {x, x, {}, s0});  // in place
    }
}

// A product then a sum on data where an FMA would round differently: the
// result must be the two-rounding one on every target (FMA ones included).
TEST(TensorScalar, NoFusedMultiplyAdd) {
  Arena a(52);
  const Opnd x = a.place(DType::kF32, 1, AccessPattern::dense({64}), Fill::kFinite);
  for (int64_t e = 0; e < 64; ++e) a.set(x, 0, e, 1.0f + float(e + 1) * 0x1p-23f);
  const Opnd d = a.place(DType::kF32, 1, AccessPattern::dense({64}));
  Instr in = make(Opcode::kTensorScalar, AluOp::kMultiply);
  in.alu1 = AluOp::kSubtract;
  in.imm[0] = 1.0f + 0x1p-23f;
  in.imm[1] = 1.0f;
  check(a, in, {d, x});
  // The check would pass if the reference fused too: pin one value.
  for_each_target([&](int64_t) {
    std::vector<uint8_t> mem = a.bytes();
    const auto v = a.views(mem, {d, x});
    cpu::execute(in, v);
    float got;
    std::memcpy(&got, v[0].row(0), 4);
    // (1 + 2^-23)^2 rounds to 1 + 2^-22 (the 2^-46 is lost), so minus 1 is 2^-22;
    // an FMA would keep it: 2^-22 + 2^-46.
    EXPECT_EQ(got, 0x1p-22f);
  });
}

}  // namespace
}  // namespace ncore::test
