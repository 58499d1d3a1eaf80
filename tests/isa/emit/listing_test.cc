// The assembly listing: header facts, one line per instruction with its
// mnemonic, operands, immediates, dependencies and kernel source line.
#include <gtest/gtest.h>

#include <limits>
#include <source_location>
#include <sstream>
#include <string>
#include <vector>

#include <ncore/isa/emit/emitter.h>
#include <ncore/isa/emit/listing.h>
#include <ncore/isa/emit/serialize.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32;
constexpr DType bf16 = DType::kBF16;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) out.push_back(line);
  return out;
}

// Instruction lines are the ones that do not start with ';', in program order.
std::vector<std::string> instr_lines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(text))
    if (!l.empty() && l[0] != ';') out.push_back(l);
  return out;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// This file as the listing names it ("emit/listing_test.cc" in a CMake build).
std::string this_file() { return std::string(short_path(std::source_location::current().file_name())); }
std::string at_line(int line) { return this_file() + ":" + std::to_string(line); }

struct Gemm {
  Program p;
  int dma_line = 0, matmul_line = 0, copy_line = 0, store_line = 0;
};

// Two K-tiles of a [128, 512] += [256, 128]^T [256, 512] product, stored.
Gemm small_gemm() {
  Gemm g;
  g.p = emit(kTrn2, [&](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {256, 128});
    auto b = nc.hbm("b", bf16, {256, 512});
    auto c = nc.hbm("c", f32, {128, 512}, HbmKind::kOutput);
    auto acc = nc.psum(f32, 128, {512});  // [M, N] f32
    for (int k = 0; k < 2; ++k) {
      auto st = nc.sbuf(bf16, 128, {128});  // [K, M]
      auto mv = nc.sbuf(bf16, 128, {512});  // [K, N]
      g.dma_line = __LINE__ + 1;
      nc.dma(st, a.slice(0, 128 * k, 128 * k + 128));
      nc.dma(mv, b.slice(0, 128 * k, 128 * k + 128));
      g.matmul_line = __LINE__ + 1;
      nc.matmul(acc, st, mv, k > 0);
    }
    auto out = nc.sbuf(f32, 128, {512});
    g.copy_line = __LINE__ + 1;
    nc.tensor_copy(out, acc);
    g.store_line = __LINE__ + 1;
    nc.dma(c, out);
  });
  return g;
}

TEST(Listing, HeaderNamesTargetTensorsAndBudgets) {
  const Gemm g = small_gemm();
  const std::string text = listing(g.p);
  EXPECT_TRUE(has(text, "trn2 (NeuronCore-v3), program 0 of 1")) << text;
  EXPECT_TRUE(has(text, "8 instructions (tensor 2, vector 1, scalar 0, gpsimd 0, dma 5)")) << text;
  EXPECT_TRUE(has(text, "SBUF peak " + std::to_string(g.p.sbuf_peak_bytes) + " of 229376 B")) << text;
  EXPECT_TRUE(has(text, "PSUM 1 of 8 banks")) << text;
  EXPECT_TRUE(has(text, "#0 a  input bf16 [256,128]")) << text;
  EXPECT_TRUE(has(text, "#2 c  output f32 [128,512]")) << text;
}

TEST(Listing, OneLinePerInstructionWithMnemonicDepsAndSource) {
  const Gemm g = small_gemm();
  const std::string text = listing(g.p);
  const std::vector<std::string> lines = instr_lines(text);
  ASSERT_EQ(lines.size(), g.p.instrs.size()) << text;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Instr& in = g.p.instrs[i];
    EXPECT_EQ(lines[i].rfind(std::string(7 - std::to_string(i).size(), ' ') + std::to_string(i) + "  ", 0), 0u)
        << lines[i];
    EXPECT_TRUE(has(lines[i], std::string(engine_name(in.engine)))) << lines[i];
    EXPECT_TRUE(has(lines[i], " " + std::string(opcode_name(in.op)) + " ")) << lines[i];
    EXPECT_TRUE(has(lines[i], "; " + g.p.where(in.loc))) << lines[i];
  }
  // 0 dma st, 1 dma mv, 2 matmul, 3 dma st, 4 dma mv, 5 matmul acc, 6 copy, 7 store
  EXPECT_TRUE(has(lines[0], "sbuf[0:128]@0x0 [128] bf16, a[0:128, :] bf16  q0")) << lines[0];
  EXPECT_TRUE(has(lines[0], at_line(g.dma_line))) << lines[0];
  EXPECT_TRUE(has(lines[3], "a[128:256, :] bf16")) << lines[3];
  EXPECT_TRUE(has(lines[2], "<- 0, 1  ; " + at_line(g.matmul_line))) << lines[2];
  EXPECT_FALSE(has(lines[2], " acc")) << lines[2];
  EXPECT_TRUE(has(lines[5], "psum[0:128]@0x0 [512] f32, sbuf[0:128]@0x0 [128] bf16, "
                            "sbuf[0:128]@0x100 [512] bf16  acc  <- 2, 3, 4"))
      << lines[5];
  EXPECT_TRUE(has(lines[6], "tensor_copy")) << lines[6];
  EXPECT_TRUE(has(lines[6], at_line(g.copy_line))) << lines[6];
  EXPECT_TRUE(has(lines[7], "c[:, :] f32, sbuf[0:128]@0x0 [512] f32")) << lines[7];
  EXPECT_TRUE(has(lines[7], at_line(g.store_line))) << lines[7];
  EXPECT_FALSE(has(lines[0], "<-")) << lines[0];
}

TEST(Listing, AllocationEventsAreInterleaved) {
  const Gemm g = small_gemm();
  const std::vector<std::string> lines = lines_of(listing(g.p));
  size_t first_alloc = lines.size(), first_instr = lines.size(), first_free = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (first_alloc == lines.size() && has(lines[i], ";        alloc psum @0x0 +2048 B")) first_alloc = i;
    if (first_instr == lines.size() && !lines[i].empty() && lines[i][0] != ';') first_instr = i;
    if (first_free == lines.size() && has(lines[i], ";        free  sbuf @0x100 +1024 B")) first_free = i;
  }
  EXPECT_LT(first_alloc, first_instr);
  ASSERT_LT(first_free, lines.size());
  EXPECT_TRUE(has(lines[first_free], "; allocated at " + this_file() + ":")) << lines[first_free];
  EXPECT_TRUE(has(lines[first_free - 1], " matmul ")) << lines[first_free - 1];
}

TEST(Listing, ImmediatesAndViews) {
  int act_line = 0;
  const Program p = emit(kTrn1, [&](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {64, 128});
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    auto col = nc.sbuf(f32, 128, {1});
    nc.dma(t, x.transpose());                                        // 0
    nc.tensor_scalar(u, t, AluOp::kMultiply, 2.5f, AluOp::kAdd, col);  // 1
    nc.tensor_reduce(col, AluOp::kMax, t.reshape({8, 8}).transpose(0, 1), 2, true);  // 2
    act_line = __LINE__ + 1;
    nc.activation(u, ActFunc::kExp, t, ActOpts{.scale = col, .bias = col, .accum = {}});  // 3
    nc.memset(t, -std::numeric_limits<float>::infinity());          // 4
    nc.iota(u, Affine{.base = 5, .channel = -2, .free = {3, 0, 0, 0}});  // 5
    nc.affine_select(u, t, Affine{.base = 0, .channel = 1, .free = {-1, 0, 0, 0}}, AluOp::kIsGe,
                     -1e30f);                                          // 6
    for (int i = 0; i < 12; ++i) nc.tensor_copy(u, t, Engine::kGpSimd);  // 7..18: read t
    nc.memset(t, 0.0f);  // 19: WAW on 4, WAR on 6..18 (1..3 read before 4 wrote)
  });
  const std::string text = listing(p);
  const std::vector<std::string> lines = instr_lines(text);
  ASSERT_EQ(lines.size(), 20u);
  EXPECT_TRUE(has(text, "trn1 (NeuronCore-v2)"));
  EXPECT_TRUE(has(lines[0], "x[:, :]->[128,64]:[1,128] f32")) << lines[0];
  EXPECT_TRUE(has(lines[1], "scalar1=sbuf[0:128]@0x200 [1] f32  (x multiply 2.5) add scalar1"))
      << lines[1];
  EXPECT_TRUE(has(lines[2], "[8,8]:[1,8] f32  max axes=2 negate")) << lines[2];
  EXPECT_TRUE(has(lines[3], "bias=sbuf[0:128]@0x200 [1] f32, scale=sbuf[0:128]@0x200 [1] f32  exp"))
      << lines[3];
  EXPECT_TRUE(has(lines[3], at_line(act_line))) << lines[3];
  EXPECT_TRUE(has(lines[4], "value=-inf")) << lines[4];
  EXPECT_TRUE(has(lines[5], "value=5 - 2*p + 3*i0")) << lines[5];
  EXPECT_TRUE(has(lines[6], "keep where p - i0 is_ge 0, else -1e+30")) << lines[6];
  EXPECT_TRUE(has(lines[19], "<- 4, 6, 7, 8, 9, 10, 11, 12 +6 more")) << lines[19];
}

TEST(Listing, ScalarTensorTensorAsItsExpression) {
  const Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    auto col = nc.sbuf(f32, 128, {1});
    nc.scalar_tensor_tensor(u, t, AluOp::kSubtract, col, AluOp::kMultiply, t);  // 0
    nc.scalar_tensor_tensor(u, t, AluOp::kSubtract, 1.5f, AluOp::kAdd, u, true, true);  // 1
  });
  const std::vector<std::string> lines = instr_lines(listing(p));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(has(lines[0], "scalar_tensor_tensor")) << lines[0];
  EXPECT_TRUE(has(lines[0], "tensor=sbuf[0:128]@0x0 [64] f32, scalar0=sbuf[0:128]@0x200 [1] f32  "
                            "(x subtract scalar0) multiply tensor"))
      << lines[0];
  EXPECT_TRUE(has(lines[1], "tensor add (1.5 subtract x)")) << lines[1];
}

TEST(Listing, LoadedProgramListsTheSame) {
  const Gemm g = small_gemm();
  EXPECT_EQ(listing(load(save(g.p))), listing(g.p));
}

}  // namespace
}  // namespace ncore
