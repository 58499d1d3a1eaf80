// Flash attention three ways: the CPU reference vs the float64 golden (1 and
// 2 threads, bit-identical to each other), the interpreter's replay of the
// emitted program on trn2 and trn1 vs the golden, and structural checks of the
// program against counts derived from the mask alone; plus the edge cases
// (rows that see no key, logits of 1e4, NaN), bad input, and SBUF/PSUM
// capacity at Skv = 32K.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include <attention_golden.h>
#include <ncore/host.h>
#include <ncore/kernels/attention.h>

namespace ncore {
namespace {

struct Case {
  int64_t b, hq, hkv, sq, skv, d;
  bool causal;
  DType dtype;
  DType out = DType::kF32;
  std::optional<float> scale = std::nullopt;
};

std::string name(const Case& c) {
  return cat("b", c.b, "h", c.hq, "kv", c.hkv, "_q", c.sq, "_k", c.skv, "_d", c.d,
             c.causal ? "_causal_" : "_", dtype_name(c.dtype), c.out != DType::kF32 ? "_out_" : "",
             c.out != DType::kF32 ? dtype_name(c.out) : "");
}

float scale_of(const Case& c) { return c.scale.value_or(float(1.0 / std::sqrt(double(c.d)))); }

// Inputs rounded to the dtype, as the kernel sees them: fp32 values + encoding.
struct Inputs {
  std::vector<float> q, k, v;
  std::vector<uint8_t> qe, ke, ve;
};

void encode_into(DType dt, const std::vector<float>& x, std::vector<uint8_t>& enc) {
  enc.resize(x.size() * size_t(dtype_size(dt)));
  for (size_t i = 0; i < x.size(); ++i) encode(dt, x[i], enc.data() + i * size_t(dtype_size(dt)));
}

// q ~ U(-q_amp, q_amp), k and v ~ U(-1, 1), rounded to the dtype.
Inputs make_inputs(const Case& c, uint64_t seed, float q_amp = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Inputs in;
  auto fill = [&](std::vector<float>& x, int64_t n, float amp) {
    x.resize(size_t(n));
    for (float& e : x) e = round_to(c.dtype, amp * u(rng));
  };
  fill(in.q, c.b * c.hq * c.sq * c.d, q_amp);
  fill(in.k, c.b * c.hkv * c.skv * c.d, 1.0f);
  fill(in.v, c.b * c.hkv * c.skv * c.d, 1.0f);
  return in;
}

void encode_all(const Case& c, Inputs& in) {
  encode_into(c.dtype, in.q, in.qe);
  encode_into(c.dtype, in.k, in.ke);
  encode_into(c.dtype, in.v, in.ve);
}

// The golden and its bound for the plan `path` runs ("cpu" runs trn2's host plan).
golden::AttentionGolden golden_of(const Case& c, const Inputs& in, const std::string& path) {
  const Target& t = path == "cpu" ? kTrn2 : *find_target(path);
  const AttentionPlace place = path == "cpu" ? AttentionPlace::kHost : AttentionPlace::kDevice;
  const int64_t block =
      plan_attention(t, {c.b, c.hq, c.hkv, c.sq, c.skv, c.d}, c.dtype, c.out, place).block_k;
  return golden::attention({c.b, c.hq, c.hkv, c.sq, c.skv, c.d, c.causal, scale_of(c), c.dtype, c.out, block},
                           in.q.data(), in.k.data(), in.v.data());
}

// Outputs of one run, O decoded to fp32.
struct Outputs {
  std::vector<float> o, lse;
};

std::vector<HostTensor> io_for(const Case& c, Inputs& in, std::vector<uint8_t>& o,
                               std::vector<float>& lse) {
  o.assign(size_t(c.b * c.hq * c.sq * c.d * dtype_size(c.out)), 0xFF);  // NaN until written
  lse.assign(size_t(c.b * c.hq * c.sq), std::numeric_limits<float>::quiet_NaN());
  return {{"Q", in.qe.data(), c.dtype, {c.b, c.hq, c.sq, c.d}},
          {"K", in.ke.data(), c.dtype, {c.b, c.hkv, c.skv, c.d}},
          {"V", in.ve.data(), c.dtype, {c.b, c.hkv, c.skv, c.d}},
          {"O", o.data(), c.out, {c.b, c.hq, c.sq, c.d}, HbmKind::kOutput},
          {"LSE", lse.data(), DType::kF32, {c.b, c.hq, c.sq}, HbmKind::kOutput}};
}

auto attention_kernel(const Case& c) {
  return [c](auto& nc, std::vector<HbmTensor>& t) {
    flash_attention(nc, t[3], t[0], t[1], t[2], {.causal = c.causal, .scale = c.scale, .lse = t[4]});
  };
}

// "cpu" (threads) or a device target's interpreted program.
Outputs run(const Case& c, Inputs& in, const std::string& path, int threads = 1) {
  std::vector<uint8_t> o;
  Outputs out;
  const auto io = io_for(c, in, o, out.lse);
  if (path == "cpu") run_cpu(io, attention_kernel(c), {.threads = threads});
  else run_program(build_program(*find_target(path), io, attention_kernel(c)), io);
  out.o.resize(o.size() / size_t(dtype_size(c.out)));
  for (size_t i = 0; i < out.o.size(); ++i) out.o[i] = decode(c.out, o.data() + i * size_t(dtype_size(c.out)));
  return out;
}

void expect_within(const Case& c, const Outputs& got, const golden::AttentionGolden& g,
                   const std::string& what) {
  int64_t at = -1;
  const double r = golden::worst_ratio(got.o.data(), g.o, g.o_bound, &at);
  EXPECT_LE(r, 1.0) << name(c) << " " << what << ": O worst at " << at << ": got "
                    << (at >= 0 ? got.o[size_t(at)] : 0.0f) << " want "
                    << (at >= 0 ? g.o[size_t(at)] : 0.0) << " bound "
                    << (at >= 0 ? g.o_bound[size_t(at)] : 0.0);
  at = -1;
  const double rl = golden::worst_ratio(got.lse.data(), g.lse, g.lse_bound, &at);
  EXPECT_LE(rl, 1.0) << name(c) << " " << what << ": LSE worst at " << at << ": got "
                     << (at >= 0 ? got.lse[size_t(at)] : 0.0f) << " want "
                     << (at >= 0 ? g.lse[size_t(at)] : 0.0);
}

const Case kCases[] = {
    {1, 1, 1, 1, 1, 64, false, DType::kF32},
    {1, 2, 2, 200, 200, 64, false, DType::kF32},       // tails of 128 and 512
    {1, 2, 2, 200, 200, 64, true, DType::kBF16},
    {1, 2, 1, 130, 700, 80, true, DType::kBF16},       // Sq < Skv, GQA 2:1, D = 80
    {1, 2, 2, 900, 600, 96, true, DType::kF32},        // Sq > Skv: 300 rows see no key
    {1, 2, 2, 300, 1100, 96, false, DType::kBF16},     // three sub-tiles, the last 76 keys
    {2, 8, 2, 160, 160, 128, true, DType::kBF16},      // GQA 8:2, B = 2, D = 128
    {1, 2, 1, 260, 260, 128, false, DType::kF32, DType::kF32, 0.3f},  // explicit scale
    {1, 2, 2, 150, 150, 64, true, DType::kBF16, DType::kBF16},        // bf16 output
    {1, 8, 2, 900, 300, 64, true, DType::kBF16},  // work items whose Q tiles all see no key
};

class AttentionCase : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCase, CpuMatchesGoldenOneAndTwoThreadsBitIdentical) {
  const Case c = GetParam();
  Inputs in = make_inputs(c, 7);
  encode_all(c, in);
  const auto g = golden_of(c, in, "cpu");
  const Outputs one = run(c, in, "cpu", 1);
  expect_within(c, one, g, "cpu");
  // Each Q tile runs the same instructions on whichever thread gets it.
  const Outputs two = run(c, in, "cpu", 2);
  EXPECT_EQ(std::memcmp(one.o.data(), two.o.data(), one.o.size() * sizeof(float)), 0) << name(c);
  EXPECT_EQ(std::memcmp(one.lse.data(), two.lse.data(), one.lse.size() * sizeof(float)), 0) << name(c);
}

TEST_P(AttentionCase, InterpreterReplayMatchesGolden) {
  const Case c = GetParam();
  Inputs in = make_inputs(c, 11);
  encode_all(c, in);
  for (const char* t : {"trn2", "trn1"}) expect_within(c, run(c, in, t), golden_of(c, in, t), t);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return name(info.param); });

// Scaled scores up to ~1e4: the running max keeps every exp in range, so O
// and LSE stay finite and within the (wide, Delta-dominated) bound.
TEST(Attention, LargeLogitsDoNotOverflow) {
  for (DType dt : {DType::kF32, DType::kBF16})
    for (bool causal : {false, true}) {
      const Case c{1, 2, 2, 200, 600, 64, causal, dt};
      Inputs in = make_inputs(c, 3, /*q_amp=*/1e4f);
      encode_all(c, in);
      double max_logit = 0.0;
      for (int64_t r = 0; r < c.sq; ++r)
        for (int64_t j = 0; j < c.skv; ++j) {
          double dot = 0.0;
          for (int64_t e = 0; e < c.d; ++e) dot += double(in.q[size_t(r * c.d + e)]) * in.k[size_t(j * c.d + e)];
          max_logit = std::max(max_logit, std::fabs(dot * scale_of(c)));
        }
      ASSERT_GT(max_logit, 1e4) << "the data must reach the magnitude under test";
      for (const char* path : {"cpu", "trn2"}) {
        const Outputs out = run(c, in, path);
        expect_within(c, out, golden_of(c, in, path), path);
        for (float x : out.o) ASSERT_TRUE(std::isfinite(x)) << name(c) << " " << path;
        for (float x : out.lse) ASSERT_TRUE(std::isfinite(x)) << name(c) << " " << path;
      }
    }
}

// Causal with Sq > Skv: query i < Sq - Skv sees no key and gets O = 0, LSE =
// -inf exactly — even with a NaN in V, which every other row sees.
TEST(Attention, RowsThatSeeNoKeyAreZeroAndMinusInf) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const Case c{1, 2, 1, 900, 600, 64, true, dt};
    const int64_t blind = c.sq - c.skv;
    for (bool nan_v : {false, true}) {
      Inputs in = make_inputs(c, 5);
      if (nan_v) std::fill(in.v.begin(), in.v.begin() + c.d, std::numeric_limits<float>::quiet_NaN());
      encode_all(c, in);
      for (const char* path : {"cpu", "trn2", "trn1"}) {
        const Outputs out = run(c, in, path);
        expect_within(c, out, golden_of(c, in, path), path);
        for (int64_t h = 0; h < c.hq; ++h)
          for (int64_t i = 0; i < c.sq; ++i) {
            const float* row = out.o.data() + (h * c.sq + i) * c.d;
            const float lse = out.lse[size_t(h * c.sq + i)];
            if (i < blind) {
              ASSERT_TRUE(std::all_of(row, row + c.d, [](float x) { return x == 0.0f; }))
                  << path << " row " << i;
              ASSERT_EQ(lse, -std::numeric_limits<float>::infinity()) << path << " row " << i;
            } else {
              ASSERT_TRUE(std::isfinite(lse)) << path << " row " << i;
              ASSERT_EQ(std::isnan(row[0]), nan_v) << path << " row " << i;
            }
          }
      }
    }
  }
}

// A NaN reaches exactly the outputs that depend on it: Q[h0, 5] -> that row;
// K[kv1, 600] -> every row of heads 2, 3 that sees key 600; V[kv0, 100, 9] ->
// column 9 of heads 0, 1 (non-causal only: masked keys of a diagonal sub-tile
// still enter PV as 0 * v, see docs/attention.md).
TEST(Attention, NanPropagatesToTheAffectedOutputs) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (DType dt : {DType::kF32, DType::kBF16})
    for (bool causal : {false, true}) {
      const Case c{1, 4, 2, 700, 700, 64, causal, dt};
      Inputs in = make_inputs(c, 13);
      in.q[size_t(5 * c.d + 3)] = nan;
      in.k[size_t((1 * c.skv + 600) * c.d + 7)] = nan;
      if (!causal) in.v[size_t(100 * c.d + 9)] = nan;
      encode_all(c, in);
      for (const char* path : {"cpu", "trn2"}) {
        const auto g = golden_of(c, in, path);
        int64_t nans = 0;
        for (double x : g.o) nans += std::isnan(x);
        ASSERT_GT(nans, 0);
        ASSERT_LT(nans, int64_t(g.o.size()));
        expect_within(c, run(c, in, path), g, path);
      }
    }
}

// Without an LSE output the kernel computes the same O, bit for bit.
TEST(Attention, LseIsOptional) {
  const Case c{1, 2, 2, 300, 700, 64, true, DType::kBF16};
  Inputs in = make_inputs(c, 17);
  encode_all(c, in);
  const Outputs with = run(c, in, "cpu");
  std::vector<uint8_t> o;
  std::vector<float> lse;
  auto io = io_for(c, in, o, lse);
  io.pop_back();
  run_cpu(io, [&](auto& nc, auto& t) { flash_attention(nc, t[3], t[0], t[1], t[2], {.causal = true}); });
  EXPECT_EQ(std::memcmp(o.data(), with.o.data(), o.size()), 0);
  const Program p = build_program(kTrn2, io, [&](auto& nc, auto& t) {
    flash_attention(nc, t[3], t[0], t[1], t[2], {.causal = true});
  });
  for (const Instr& i : p.instrs) EXPECT_NE(i.func == ActFunc::kLog && i.op == Opcode::kActivation, true);
}

TEST(Attention, BadInputIsAnErrorNamingTheOperand) {
  struct Bad {
    std::vector<int64_t> q, k, v, o, lse;
    DType qt = DType::kF32, kt = DType::kF32, ot = DType::kF32;
    float scale = 0.125f;
    const char* operand;
    const char* text;
  };
  const std::vector<Bad> bad = {
      {{1, 2, 8, 200}, {1, 2, 8, 200}, {1, 2, 8, 200}, {1, 2, 8, 200}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "Q", "head dim D = 200 exceeds 128"},
      {{1, 2, 8, 64}, {1, 2, 8, 32}, {1, 2, 8, 32}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "K", "must be [1, Hkv, Skv, 64]"},
      {{1, 8, 8, 64}, {1, 3, 8, 64}, {1, 3, 8, 64}, {1, 8, 8, 64}, {1, 8, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "K", "3 heads, which do not divide Q's 8"},
      {{2, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {2, 2, 8, 64}, {2, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "K", "must be [2, Hkv, Skv, 64]"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 9, 64}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "V", "must have K's shape [1, 2, 8, 64]"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 7, 64}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "O", "must have Q's shape [1, 2, 8, 64]"},
      {{2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "Q", "must be 4-D [B, H, S, D], got [2, 8, 64]"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 9},
       DType::kF32, DType::kF32, DType::kF32, 0.125f, "LSE", "must be [1, 2, 8] f32"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kF32, DType::kBF16, DType::kF32, 0.125f, "K", "dtype bf16 differs from Q's"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kBF16, DType::kBF16, DType::kF16, 0.125f, "O", "dtype must be f32 or Q's bf16"},
      {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8},
       DType::kF32, DType::kF32, DType::kF32, -1.0f, "scale", "must be finite and > 0"},
  };
  std::vector<float> buf(1 << 16);
  for (const Bad& b : bad) {
    std::vector<HostTensor> io = {{"Q", buf.data(), b.qt, b.q},
                                  {"K", buf.data(), b.kt, b.k},
                                  {"V", buf.data(), b.kt, b.v},
                                  {"O", buf.data(), b.ot, b.o, HbmKind::kOutput},
                                  {"LSE", buf.data(), DType::kF32, b.lse, HbmKind::kOutput}};
    auto kernel = [&](auto& nc, auto& t) {
      flash_attention(nc, t[3], t[0], t[1], t[2], {.scale = b.scale, .lse = t[4]});
    };
    for (int path = 0; path < 2; ++path) {
      try {
        if (path == 0) run_cpu(io, kernel);
        else build_program(kTrn2, io, kernel);
        ADD_FAILURE() << "no error for " << b.operand << ": " << b.text;
      } catch (const Error& e) {
        EXPECT_EQ(e.instruction(), "flash_attention");
        EXPECT_EQ(e.operand(), b.operand);
        EXPECT_THAT(e.what(), ::testing::HasSubstr(b.text));
        EXPECT_THAT(e.what(), ::testing::HasSubstr("attention_test.cc:"));
      }
    }
  }
}

// ---- Program structure, from the mask alone ----

struct Counts {
  int64_t steps = 0, diag = 0, two_part = 0, matmul = 0, p_transposes = 0, p_dma_steps = 0, p_dma_chunks = 0,
          tiles_with_steps = 0, blind_row_tiles = 0, keyless_tiles = 0, k_block_loads = 0,
          k_chunk_loads = 0, q_tiles = 0;
};

// Brute force over every (query, key) pair, per (Q tile, key block of the
// plan): one step, whose keys end after the last key any of the tile's rows
// sees; if some row does not see one of them (the causal diagonal), the step
// is masked past the whole chunks every row sees, and where there are such
// chunks it has two parts (two exps).
Counts expected_counts(const Case& c, const AttentionPlan& plan) {
  const int64_t off = c.skv - c.sq, qn = (c.sq + 127) / 128, bk = plan.block_k;
  const int64_t kn = (c.skv + bk - 1) / bk;
  auto sees = [&](int64_t i, int64_t j) { return !c.causal || j <= i + off; };
  Counts n;
  auto step = [&](int64_t kt, bool masked, bool two_part) {
    const int64_t chunks = (kt + 127) / 128;
    const bool dma = plan.dma_pt_chunks && kt % 128 == 0 && chunks > plan.dma_pt_chunks;
    n.steps += 1;
    n.diag += masked;
    n.two_part += two_part;
    n.matmul += (kt + 511) / 512 + chunks;
    n.p_transposes += chunks - (dma ? plan.dma_pt_chunks : 0);
    n.p_dma_steps += dma;
    n.p_dma_chunks += dma ? plan.dma_pt_chunks : 0;
  };
  std::vector<int64_t> last_kb(size_t(qn), -1);
  for (int64_t qi = 0; qi < qn; ++qi) {
    const int64_t q0 = qi * 128, q1 = std::min(q0 + 128, c.sq);
    for (int64_t kb = 0; kb < kn; ++kb) {
      const int64_t k0 = kb * bk, k1 = std::min(k0 + bk, c.skv);
      int64_t end = k0, every = k1;  // past the last key some row sees; keys [k0, every) all rows see
      for (int64_t i = q0; i < q1; ++i) {
        int64_t seen = k0;
        for (int64_t j = k0; j < k1; ++j)
          if (sees(i, j)) seen = j + 1;
        end = std::max(end, seen);
        every = std::min(every, seen);
      }
      if (end == k0) continue;
      step(end - k0, every < end, every < end && (every - k0) / 128 > 0);
      last_kb[size_t(qi)] = kb;
    }
    bool blind = false;
    for (int64_t i = q0; i < q1; ++i) blind |= !sees(i, 0);
    if (last_kb[size_t(qi)] >= 0) {
      n.tiles_with_steps += 1;
      n.blind_row_tiles += blind;
    } else {
      n.keyless_tiles += 1;
    }
  }
  for (int64_t b0 = 0; b0 < qn; b0 += plan.q_tiles_per_item) {  // key blocks loaded per item
    int64_t nkb = 0;
    for (int64_t qi = b0; qi < std::min(qn, b0 + plan.q_tiles_per_item); ++qi)
      nkb = std::max(nkb, last_kb[size_t(qi)] + 1);
    n.k_block_loads += nkb;
    for (int64_t kb = 0; kb < nkb; ++kb) n.k_chunk_loads += (std::min(bk * (kb + 1), c.skv) - bk * kb + 127) / 128;
  }
  const int64_t heads = c.b * c.hq, kv_heads = c.b * c.hkv;
  for (int64_t* x : {&n.steps, &n.diag, &n.two_part, &n.matmul, &n.p_transposes, &n.p_dma_steps, &n.p_dma_chunks,
                     &n.tiles_with_steps, &n.blind_row_tiles, &n.keyless_tiles})
    *x *= heads;
  n.k_block_loads *= kv_heads;
  n.k_chunk_loads *= kv_heads;
  n.q_tiles = heads * qn;
  return n;
}

size_t count_act(const Program& p, ActFunc f) {
  size_t n = 0;
  for (const Instr& i : p.instrs) n += i.op == Opcode::kActivation && i.func == f;
  return n;
}

Program program_for(const Target& t, const Case& c) {
  Inputs in;
  in.qe.resize(1);
  in.ke.resize(1);
  in.ve.resize(1);
  std::vector<uint8_t> o;
  std::vector<float> lse;
  return build_program(t, io_for(c, in, o, lse), attention_kernel(c));
}

class AttentionStructure : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionStructure, InstructionCountsFollowTheMask) {
  const Case c = GetParam();
  for (const Target* t : kAllTargets) {
    const Program p = program_for(*t, c);
    const AttentionPlan plan = plan_attention(*t, {c.b, c.hq, c.hkv, c.sq, c.skv, c.d}, c.dtype, c.out);
    const Counts n = expected_counts(c, plan);
    const std::string at = name(c) + " " + std::string(t->name);
    EXPECT_EQ(int64_t(p.count(Opcode::kMatmul)), n.matmul) << at;
    // P transposes on TensorE, plus where there is no transposing DMA one per
    // Q tile and one per K chunk; by DMA, Q^T per tile, K^T per block and P^T.
    EXPECT_EQ(int64_t(p.count(Opcode::kTranspose)),
              n.p_transposes + (plan.pe_transpose ? n.q_tiles + n.k_chunk_loads : 0)) << at;
    // P^T by DMA (SBUF sources): the plan's chunks of every step with more
    // whole chunks, one instruction per step or per pair of steps.
    int64_t p_dma = 0, p_dma_chunks = 0;
    for (const Instr& i : p.instrs)
      if (i.op == Opcode::kDmaTranspose && i.opnd[1].space == Space::kSbuf) {
        p_dma += 1;
        p_dma_chunks += i.opnd[1].free_size() / 128;
      }
    EXPECT_EQ(p_dma_chunks, n.p_dma_chunks) << at;
    EXPECT_LE(p_dma, n.p_dma_steps) << at;
    EXPECT_GE(2 * p_dma, n.p_dma_steps) << at;
    EXPECT_EQ(int64_t(p.count(Opcode::kDmaTranspose)),
              plan.pe_transpose ? 0 : n.q_tiles + n.k_block_loads + p_dma)
        << at;
    // exp: P per step (two for a masked step with unmasked chunks), and the
    // alphas of the steps after a tile's first, up to kAttnAlphaGroup of them
    // an instruction; 1 / l and log l per tile.
    const int64_t alpha_steps = n.steps - n.tiles_with_steps;
    const int64_t alpha_exps = int64_t(count_act(p, ActFunc::kExp)) - n.steps - n.two_part;
    EXPECT_GE(alpha_exps * kAttnAlphaGroup, alpha_steps) << at;
    EXPECT_LE(alpha_exps, alpha_steps) << at;
    EXPECT_EQ(int64_t(count_act(p, ActFunc::kReciprocal)), n.tiles_with_steps) << at;
    EXPECT_EQ(int64_t(count_act(p, ActFunc::kLog)), n.tiles_with_steps) << at;
    // Row maxes: one per step, and a second where a masked step has unmasked chunks.
    EXPECT_EQ(int64_t(p.count(Opcode::kTensorReduce)), n.steps + n.two_part) << at;
    // Masks: the diagonal steps' scores, and O and LSE of tiles with rows that see no key.
    EXPECT_EQ(int64_t(p.count(Opcode::kAffineSelect)), n.diag + 2 * n.blind_row_tiles) << at;
    EXPECT_EQ(int64_t(p.count(Opcode::kMemset)), 2 * n.keyless_tiles + 1) << at;  // + the alpha groups once
    int64_t out_dmas = 0;
    for (const Instr& i : p.instrs) out_dmas += i.op == Opcode::kDma && i.dst().space == Space::kHbm;
    EXPECT_EQ(out_dmas, 2 * c.b * c.hkv * ((c.sq + 127) / 128)) << at;  // O and LSE per (kv head, Q tile)
    EXPECT_EQ(p.sbuf_peak_bytes, plan.sbuf_bytes) << at;
    EXPECT_LE(p.sbuf_peak_bytes, t->sbuf_partition_bytes) << at;
    EXPECT_EQ(p.psum_peak_banks, plan.psum_banks) << at;
    EXPECT_LE(p.psum_peak_banks, t->psum_banks) << at;
  }
}

const Case kStructureCases[] = {
    {1, 2, 2, 200, 200, 64, true, DType::kBF16},
    {1, 2, 1, 130, 1300, 80, true, DType::kBF16},
    {1, 2, 2, 900, 600, 96, true, DType::kF32},
    {2, 8, 2, 300, 1100, 128, false, DType::kBF16},
    {1, 1, 1, 2048, 2048, 64, true, DType::kBF16},
    {1, 8, 2, 900, 300, 64, true, DType::kBF16},
};
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionStructure, ::testing::ValuesIn(kStructureCases),
                         [](const auto& info) { return name(info.param); });

// Causal skipping at Sq = Skv = 2048 on trn2 (1024-key blocks, 4 of a step's
// 8 P^T chunks by DMA when it has more than 4 whole chunks): 16 Q tiles x 2
// blocks = 32 steps of 10 matmuls (2 QK^T + 8 PV) without the mask. With it,
// Q tile t (rows 128t..) sees keys [0, 128t + 128): its diagonal block is
// one masked step of u + 1 chunks, u = t mod 8 (ceil((u + 1) / 4) + u + 1
// matmuls: 12 + 36 over u = 0..7), and tiles 8..15 add a full step of block
// 0: 2 x 48 + 80 = 176 matmuls, 24 steps, 16 masked. P^T on TensorE: 32 x 4
// = 128 without the mask; with it the diagonal steps' u + 1 chunks, but 4
// where u + 1 > 4 (2 x (10 + 10)), and 8 x 4: 72. P^T DMA transposes:
// without the mask 16, one per pair of full steps; with it, in schedule
// order (block 0: tiles 0..7 diagonal, 8..15 full; block 1: tiles 8..15
// diagonal), one per diagonal step with u = 4..6 (6), the full pairs 8..15
// (4), and the u = 7 steps 7 and 23 (full, but their partners are not): 12.
TEST(Attention, CausalSkipsKeysNoRowSees) {
  Case c{1, 1, 1, 2048, 2048, 64, false, DType::kBF16};
  const Program full = program_for(kTrn2, c);
  c.causal = true;
  const Program causal = program_for(kTrn2, c);
  EXPECT_EQ(full.count(Opcode::kMatmul), 320u);
  EXPECT_EQ(causal.count(Opcode::kMatmul), 176u);
  EXPECT_EQ(full.count(Opcode::kTranspose), 128u);
  EXPECT_EQ(causal.count(Opcode::kTranspose), 72u);
  EXPECT_EQ(full.count(Opcode::kDmaTranspose), 16u + 2u + 16u);  // Q^T per tile, K^T per block, P^T
  EXPECT_EQ(causal.count(Opcode::kDmaTranspose), 16u + 2u + 12u);
  EXPECT_EQ(full.count(Opcode::kAffineSelect), 0u);
  EXPECT_EQ(causal.count(Opcode::kAffineSelect), 16u);
  EXPECT_LT(causal.instrs.size() * 10, full.instrs.size() * 9);
}

// K and V stream through fixed rings: SBUF and PSUM do not grow with Skv,
// and D = 128 at Skv = 32K fits every target.
TEST(Attention, CapacityIsIndependentOfSkv) {
  for (const Target* t : kAllTargets)
    for (DType dt : {DType::kF32, DType::kBF16}) {
      const Program small = program_for(*t, {1, 1, 1, 128, 1024, 128, false, dt});
      const Program large = program_for(*t, {1, 1, 1, 128, 32768, 128, true, dt});
      EXPECT_EQ(small.sbuf_peak_bytes, large.sbuf_peak_bytes) << t->name;
      EXPECT_LE(large.sbuf_peak_bytes, t->sbuf_partition_bytes) << t->name;
      EXPECT_EQ(small.psum_peak_banks, large.psum_peak_banks) << t->name;
      EXPECT_LE(large.psum_peak_banks, t->psum_banks) << t->name;
      // 256 PV chunks and 64 QK^T sub-tiles (the diagonal's masked keys share their block's step).
      EXPECT_EQ(large.count(Opcode::kMatmul), 256u + 64u) << t->name;
    }
}

}  // namespace
}  // namespace ncore
