// The CPU reference's reductions on every compiled and supported Highway
// target, bit for bit against isa/semantics.h: tensor_reduce (add / max / min
// over trailing axes, negate), bn_stats (moments of the even and odd
// elements) and bn_aggr (Chan's combination), every source dtype and walk.
// The fixed reduction order makes every target agree exactly.

#include "cpu_test_util.h"

namespace ncore::test {
namespace {

// Source walks with 1 to 4 dims; reduce 1..ndim trailing axes.
std::vector<AccessPattern> reduce_sources() {
  return {AccessPattern::dense({1}),
          AccessPattern::dense({70}),
          AccessPattern::dense({3, 2100}),           // a row past two chunks
          pattern({4, 33}, {40, 1}),                 // padded rows
          pattern({5, 6}, {1, 5}),                   // transposed: strided blocks
          pattern({2, 3, 4, 5}, {70, 1, 18, 3}, 1),  // 4-D, permuted strides
          pattern({3, 1, 130}, {0, 9, 1}),           // the kept dim broadcast
          pattern({8, 64}, {64, 1}),                 // exactly one partial block
          pattern({1000}, {2})};
}

TEST(TensorReduce, OpsAxesDTypesWalks) {
  int iter = 0;
  for (AluOp op : {AluOp::kAdd, AluOp::kMax, AluOp::kMin})
    for (DType st : kAllDTypes)
      for (const AccessPattern& ap : reduce_sources())
        for (int axes = 1; axes <= ap.ndim; ++axes) {
          ++iter;
          Arena a{uint32_t(iter)};
          const int np = 3;
          const Opnd s = a.place(st, np, ap, iter % 3 ? Fill::kFinite : Fill::kValues);
          int64_t kept = 1;
          for (int d = 0; d < ap.ndim - axes; ++d) kept *= ap.shape[d];
          const DType dt =
              iter % 2 ? DType::kF32 : kAllDTypes[size_t(iter / 2) % std::size(kAllDTypes)];
          const Opnd d = a.place(dt, np,
                                 kept % 2 == 0 && kept > 2 ? pattern({2, kept / 2}, {1, 2})
                                                           : AccessPattern::dense({kept}));
          Instr in = make(Opcode::kTensorReduce, op);
          in.axes = axes;
          if (iter % 2) in.flags |= kNegate;
          SCOPED_TRACE(cat(alu_name(op), " axes ", axes, " ", dtype_name(dt), " <- ",
                           dtype_name(st), " iteration ", iter));
          check(a, in, {d, s});
        }
}

// Signed zeros, NaN and infinities: max(+0, -0) depends on the order of
// the operands, so only the fixed order gives the reference's bits.
TEST(TensorReduce, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<float>> rows = {
      {0.0f, -0.0f, 0.0f, -0.0f}, {-0.0f, 0.0f},         {-0.0f},
      {1.0f, nan, 2.0f},          {inf, -inf},           {-inf, -inf},
      {inf, 1.0f, inf},           {3e38f, 3e38f, -3e38f}};
  for (AluOp op : {AluOp::kAdd, AluOp::kMax, AluOp::kMin})
    for (const auto& row : rows)
      for (int64_t reps : {1, 33}) {  // 33 copies spread them over partials
        Arena a(9);
        const int64_t n = int64_t(row.size()) * reps;
        const Opnd s = a.place(DType::kF32, 2, AccessPattern::dense({n}));
        for (int p = 0; p < 2; ++p)
          for (int64_t e = 0; e < n; ++e) a.set(s, p, e, row[size_t(e) % row.size()]);
        const Opnd d = a.place(DType::kF32, 2, AccessPattern::dense({1}));
        Instr in = make(Opcode::kTensorReduce, op);
        in.axes = 1;
        Tolerance tol;
        tol.any_nan = false;  // alu() makes the canonical NaN
        check(a, in, {d, s}, tol);
      }
}

// The kernels' shapes: row max / sum of [128, 2048] f32 and bf16 tiles.
TEST(TensorReduce, LargeTiles) {
  for (DType st : {DType::kF32, DType::kBF16})
    for (AluOp op : {AluOp::kAdd, AluOp::kMax}) {
      Arena a(10);
      const Opnd s = a.place(st, 128, AccessPattern::dense({2048}), Fill::kFinite);
      const Opnd d = a.place(DType::kF32, 128, AccessPattern::dense({1}));
      Instr in = make(Opcode::kTensorReduce, op);
      in.axes = 1;
      in.flags = kNegate;
      check(a, in, {d, s});
      // [128, 16, 128] -> [128, 16].
      const Opnd s3 = a.place(st, 128, AccessPattern::dense({16, 128}), Fill::kFinite);
      const Opnd d3 = a.place(DType::kF32, 128, AccessPattern::dense({16}));
      check(a, in, {d3, s3});
    }
}

TEST(BnStats, DTypesWalksAndSizes) {
  int iter = 0;
  for (DType st : kAllDTypes)
    for (int64_t n : {1, 2, 3, 64, 127, 128, 511, 512}) {
      const std::vector<AccessPattern> aps = patterns(n, true);
      for (size_t i = 0; i < aps.size(); ++i) {
        ++iter;
        Arena a{uint32_t(iter)};
        const Opnd s = a.place(st, 5, aps[i], iter % 5 ? Fill::kFinite : Fill::kValues);
        const Opnd d =
            a.place(DType::kF32, 5, iter % 2 ? AccessPattern::dense({6}) : pattern({2, 3}, {4, 1}));
        SCOPED_TRACE(cat(dtype_name(st), " n ", n, " pattern ", i));
        check(a, make(Opcode::kBnStats), {d, s});
      }
    }
}

// Past the 512-element hardware limit the CPU still follows the definition
// (several chunks per row); and the layer-norm shape [128, 512] bf16.
TEST(BnStats, LongRowsAndLayerNormTile) {
  Arena a(31);
  const Opnd s = a.place(DType::kF32, 3, AccessPattern::dense({5000}), Fill::kFinite);
  const Opnd d = a.place(DType::kF32, 3, AccessPattern::dense({6}));
  check(a, make(Opcode::kBnStats), {d, s});
  const Opnd t = a.place(DType::kBF16, 128, AccessPattern::dense({512}), Fill::kFinite);
  const Opnd st = a.place(DType::kF32, 128, AccessPattern::dense({6}));
  check(a, make(Opcode::kBnStats), {st, t});
}

// bn_stats folds both sequences in one pass of whole vectors (128 lanes,
// even and odd partials interleaved): rows whose length leaves every
// remainder modulo 128 and crosses the 1024-element chunks of the decoded
// path, contiguous (read in place) and strided (decoded), with special
// values (NaN, infinities, signed zeros, huge values) in some rows.
TEST(BnStats, SinglePassAcrossLanesAndChunks) {
  int iter = 0;
  for (DType st : {DType::kF32, DType::kBF16, DType::kF16})
    for (int64_t n : {4, 5, 126, 129, 255, 640, 1023, 1025, 2047, 3001})
      for (bool strided : {false, true}) {
        ++iter;
        Arena a{uint32_t(500 + iter)};
        const AccessPattern ap = strided ? pattern({n}, {2}, 1) : AccessPattern::dense({n});
        const Opnd s = a.place(st, 4, ap, iter % 3 ? Fill::kFinite : Fill::kValues);
        const Opnd d = a.place(DType::kF32, 4, AccessPattern::dense({6}));
        SCOPED_TRACE(cat(dtype_name(st), " n ", n, strided ? " strided" : " contiguous"));
        check(a, make(Opcode::kBnStats), {d, s});
      }
  // A row of -0 (the partials stay +0, as reduce()'s do) and constant rows.
  Arena a(77);
  const Opnd s = a.place(DType::kF32, 3, AccessPattern::dense({300}), Fill::kFinite);
  for (int64_t e = 0; e < 300; ++e) {
    a.set(s, 0, e, -0.0f);
    a.set(s, 1, e, 3.25f);
  }
  const Opnd d = a.place(DType::kF32, 3, AccessPattern::dense({6}));
  check(a, make(Opcode::kBnStats), {d, s}, Tolerance{{}, /*any_nan=*/false});
}

// Fills o's rows with `triples` (count, mean, M2) triples, as bn_stats writes: counts
// small integers (some 0), means of either sign, M2 >= 0.
void fill_stats(Arena& a, Opnd o, int np, int64_t triples) {
  std::mt19937& rng = a.rng();
  std::uniform_real_distribution<float> mean(-5.0f, 5.0f), m2(0.0f, 100.0f);
  for (int p = 0; p < np; ++p)
    for (int64_t g = 0; g < triples; ++g) {
      const float count = rng() % 7 == 0 ? 0.0f : float(1 + rng() % 256);
      a.set(o, p, 3 * g, count);
      a.set(o, p, 3 * g + 1, count == 0.0f ? 0.0f : mean(rng));
      a.set(o, p, 3 * g + 2, count == 0.0f ? 0.0f : m2(rng));
    }
}

TEST(BnAggr, TriplesAndWalks) {
  int iter = 0;
  for (int64_t k : {1, 2, 5, 40})
    for (int walk = 0; walk < 3; ++walk) {
      ++iter;
      Arena a{uint32_t(iter)};
      const int np = 6;
      const AccessPattern src = walk == 0   ? AccessPattern::dense({6 * k})
                                : walk == 1 ? AccessPattern::dense({k, 6})
                                            : pattern({k, 6}, {8, 1}, 2);
      const Opnd s = a.place(DType::kF32, np, src);
      fill_stats(a, s, np, 2 * k);
      const Opnd d =
          a.place(DType::kF32, np, walk == 2 ? pattern({2}, {3}) : AccessPattern::dense({2}));
      SCOPED_TRACE(cat("k ", k, " walk ", walk));
      check(a, make(Opcode::kBnAggr), {d, s});
    }
  // No samples at all: (NaN, NaN).
  Arena a(3);
  const Opnd s = a.place(DType::kF32, 2, AccessPattern::dense({12}));
  for (int p = 0; p < 2; ++p)
    for (int64_t e = 0; e < 12; ++e) a.set(s, p, e, 0.0f);
  const Opnd d = a.place(DType::kF32, 2, AccessPattern::dense({2}));
  check(a, make(Opcode::kBnAggr), {d, s}, Tolerance{{}, /*any_nan=*/false});
}

// The layer-norm pipeline, bn_stats per chunk then bn_aggr, gives the mean
// and population variance of the row: within the fp32 error of the sums,
// |err| <= (depth + 3) u sum|x| / n for the mean (depth: additions deep in a
// fixed-order sum of n/2k terms, plus the combine steps) and the same
// relative to sum x^2 / n for the variance; u = 2^-24.
TEST(BnAggr, LayerNormPipelineMatchesDouble) {
  for (int k : {1, 3, 8}) {
    const int64_t chunk = 500;
    std::mt19937 rng{uint32_t(k)};
    std::uniform_real_distribution<float> u(-3.0f, 5.0f);
    const int np = 4;
    std::vector<float> x(size_t(np * k * chunk)), stats(size_t(np * k * 6)), out(size_t(np * 2));
    for (float& v : x) v = u(rng);
    for (int c = 0; c < k; ++c) {  // stats[p, c, :] = bn_stats(x[p, c * chunk : (c + 1) * chunk])
      std::array<View, 5> v;
      v[0].base = reinterpret_cast<uint8_t*>(stats.data() + c * 6);
      v[0].pitch = 4 * k * 6;
      v[0].np = np;
      v[0].ap = AccessPattern::dense({6});
      v[1].base = reinterpret_cast<uint8_t*>(x.data() + c * chunk);
      v[1].pitch = 4 * k * chunk;
      v[1].np = np;
      v[1].ap = AccessPattern::dense({chunk});
      cpu::execute(make(Opcode::kBnStats), v);
    }
    std::array<View, 5> v;
    v[0].base = reinterpret_cast<uint8_t*>(out.data());
    v[0].pitch = 8;
    v[0].np = np;
    v[0].ap = AccessPattern::dense({2});
    v[1].base = reinterpret_cast<uint8_t*>(stats.data());
    v[1].pitch = 4 * k * 6;
    v[1].np = np;
    v[1].ap = AccessPattern::dense({k * 6});
    cpu::execute(make(Opcode::kBnAggr), v);
    for (int p = 0; p < np; ++p) {
      const int64_t n = k * chunk;
      double sum = 0, sum_abs = 0, sum_sq = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double xi = x[size_t(p * n + i)];
        sum += xi;
        sum_abs += std::fabs(xi);
      }
      const double mean = sum / double(n);
      for (int64_t i = 0; i < n; ++i) {
        const double dv = x[size_t(p * n + i)] - mean;
        sum_sq += dv * dv;
      }
      const double depth = double(chunk / 2 / kReduceLanes + 6) + 3.0 * 2 * k;
      const double tol = (depth + 3) * 0x1p-24;
      EXPECT_NEAR(out[size_t(2 * p)], mean, tol * sum_abs / double(n)) << "k " << k;
      EXPECT_NEAR(out[size_t(2 * p + 1)], sum_sq / double(n), tol * 4 * sum_sq / double(n))
          << "k " << k;
    }
  }
}

}  // namespace
}  // namespace ncore::test
