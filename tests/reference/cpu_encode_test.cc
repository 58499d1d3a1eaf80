// The CPU reference's f32 -> bf16 encode: the AVX512-BF16 path
// (encode_avx512bf16.cc, vcvtneps2bf16 with a fallback for the inputs where
// it differs) against isa/numerics.h's f32_to_bf16, bit for bit, and the
// instructions that encode through it on both Bf16Paths (AVX512-BF16 where
// the CPU has it, the portable Highway path) against the scalar reference.

#include <ncore/reference/encode_avx512bf16.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu_test_util.h"

namespace ncore::test {
namespace {

using cpu::Bf16Path;

// f32 bit patterns where the encode has an edge: signed zeros, subnormals
// (the smallest, the largest, ties, and ones rounding up to the min normal),
// the min normal, ties to even both ways, max finite (rounding to inf) and
// the largest values rounding to bf16's max, infinities, quiet and signalling
// NaNs with and without payload, both signs.
std::vector<uint32_t> edge_bits() {
  const uint32_t magnitudes[] = {
      0x00000000u, 0x00000001u, 0x00000002u, 0x00008000u, 0x00018000u, 0x00007FFFu,
      0x00008001u, 0x00010000u, 0x007F7FFFu, 0x007F8000u, 0x007FFFFFu, 0x00800000u,
      0x00808000u, 0x00818000u, 0x3F800000u, 0x3F808000u, 0x3F818000u, 0x3F808001u,
      0x3F807FFFu, 0x3F7FFFFFu, 0x7F7F7FFFu, 0x7F7F8000u, 0x7F7EFFFFu, 0x7F7E8000u,
      0x7F7FFFFFu, 0x7F800000u, 0x7F800001u, 0x7F8FFFFFu, 0x7FBFFFFFu, 0x7FC00000u,
      0x7FC00001u, 0x7FC12345u, 0x7FFFFFFFu, 0x7FFF8000u, 0x7FFF0000u};
  std::vector<uint32_t> r;
  for (uint32_t m : magnitudes) {
    r.push_back(m);
    r.push_back(m | 0x80000000u);
  }
  return r;
}

bool avx512bf16_usable() {
  return __builtin_cpu_supports("avx512bf16") && (hwy::SupportedTargets() & HWY_AVX3) != 0;
}

// encode_bf16_avx512bf16(in) == f32_to_bf16 lane by lane, and nothing past
// the end is written.
void expect_matches_numerics(const std::vector<uint32_t>& bits, const std::string& what) {
  const int64_t n = int64_t(bits.size());
  std::vector<float> in(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) in[i] = std::bit_cast<float>(bits[i]);
  constexpr uint16_t kCanary = 0xA5A5;
  std::vector<uint16_t> out(bits.size() + 16, kCanary);
  cpu::encode_detail::encode_bf16_avx512bf16(out.data(), in.data(), n);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 8; ++i) {
    const uint16_t want = f32_to_bf16(in[size_t(i)]);
    if (out[size_t(i)] != want) {
      ++bad;
      ADD_FAILURE() << what << " element " << i << " of " << n << ": f32 0x" << std::hex
                    << bits[size_t(i)] << " -> 0x" << out[size_t(i)] << ", want 0x" << want;
    }
  }
  for (size_t i = bits.size(); i < out.size(); ++i)
    ASSERT_EQ(out[i], kCanary) << what << ": wrote past the end (n " << n << ")";
}

// Every edge value in every lane of a vector of ordinary values (so both the
// instruction's vectors and the fallback's run next to each other).
TEST(Avx512Bf16Encode, EdgeValuesInEveryLane) {
  if (!avx512bf16_usable()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (uint32_t e : edge_bits()) {
    std::vector<uint32_t> bits;
    for (int lane = 0; lane < 16; ++lane) {
      for (int i = 0; i < 16; ++i) bits.push_back(i == lane ? e : 0x3F808000u + uint32_t(i) * 0x10000u);
      for (int i = 0; i < 16; ++i) bits.push_back(0xC1234567u + uint32_t(i) * 0x8000u);  // no edge
    }
    expect_matches_numerics(bits, cat("edge 0x", std::hex, e));
  }
}

// Every sign, exponent and top-7 mantissa bits (the upper 16 bits, all
// 65536) with low halves at and around the rounding tie, zero, the extremes
// and random: every class of input, in runs that mix classes within vectors.
TEST(Avx512Bf16Encode, EveryUpperHalf) {
  if (!avx512bf16_usable()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  std::mt19937 rng(11);
  for (uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, 0x4000u, 0xC000u}) {
    std::vector<uint32_t> bits(1u << 16);
    for (uint32_t hi = 0; hi < (1u << 16); ++hi) bits[hi] = hi << 16 | lo;
    expect_matches_numerics(bits, cat("low half 0x", std::hex, lo));
  }
  std::vector<uint32_t> bits(1u << 16);
  for (uint32_t hi = 0; hi < (1u << 16); ++hi) bits[hi] = hi << 16 | (rng() & 0xFFFFu);
  expect_matches_numerics(bits, "random low halves");
}

// Runs of every length up to 3 vectors: the masked tail reads and writes only
// its n elements; edge values land in the tail too.
TEST(Avx512Bf16Encode, EveryLength) {
  if (!avx512bf16_usable()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const std::vector<uint32_t> edges = edge_bits();
  std::mt19937 rng(5);
  for (int n = 1; n <= 48; ++n) {
    std::vector<uint32_t> bits(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) bits[size_t(i)] = rng() % 3 == 0 ? edges[rng() % edges.size()] : rng();
    expect_matches_numerics(bits, cat("n ", n));
  }
}

// The switch covers the encode: kPortable turns the AVX512-BF16 path off.
TEST(Avx512Bf16Encode, FollowsTheBf16Path) {
  cpu::set_bf16_path(Bf16Path::kPortable);
  EXPECT_FALSE(cpu::encode_detail::avx512bf16_encode_allowed());
  cpu::set_bf16_path(Bf16Path::kAuto);
  EXPECT_EQ(cpu::encode_detail::avx512bf16_encode_allowed(),
            bool(__builtin_cpu_supports("avx512bf16")));
}

class EncodePath : public testing::TestWithParam<Bf16Path> {
 protected:
  void SetUp() override { cpu::set_bf16_path(GetParam()); }
  void TearDown() override { cpu::set_bf16_path(Bf16Path::kAuto); }
};

// tensor_copy f32 -> bf16 over contiguous rows (the runs the vector encode
// takes) of edge values among random bit patterns, every NaN payload
// included: the same bits as the scalar reference on every target, NaNs too.
TEST_P(EncodePath, CopyToBf16SameBits) {
  const std::vector<uint32_t> edges = edge_bits();
  for (int64_t n : {33, 100, 1024, 2310}) {
    Arena a{uint32_t(n)};
    const Opnd s = a.place(DType::kF32, 3, AccessPattern::dense({n}), Fill::kBits);
    for (int p = 0; p < 3; ++p)
      for (int64_t e = p; e < n; e += 7)
        a.set(s, p, e, std::bit_cast<float>(edges[size_t(e) % edges.size()]));
    const Opnd d = a.place(DType::kBF16, 3, AccessPattern::dense({n}));
    Tolerance exact;
    exact.any_nan = false;
    SCOPED_TRACE(cat("n ", n));
    check(a, make(Opcode::kTensorCopy), {d, s}, exact);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, EncodePath, testing::Values(Bf16Path::kAuto, Bf16Path::kPortable),
                         [](const testing::TestParamInfo<Bf16Path>& i) {
                           return std::string(i.param == Bf16Path::kAuto ? "Auto" : "Portable");
                         });

// exp into bf16 with its row sum (the attention kernel's P: the fp32 results
// feed the sum, then are encoded into the row): both paths give the same
// bytes on every target.
TEST(Avx512Bf16Encode, ActivationSameBitsOnBothPaths) {
  Instr in = make(Opcode::kActivation);
  in.func = ActFunc::kExp;
  for (int64_t n : {64, 515, 2048}) {
    Arena a(uint32_t(n + 1));
    const Opnd s = a.place(DType::kF32, 4, AccessPattern::dense({n}));
    const Opnd d = a.place(DType::kBF16, 4, AccessPattern::dense({n}));
    const Opnd sum = a.place(DType::kF32, 4, AccessPattern::dense({1}));
    SCOPED_TRACE(cat("n ", n));
    for_each_target([&](int64_t) {
      std::vector<uint8_t> got[2] = {a.bytes(), a.bytes()};
      for (int k = 0; k < 2; ++k) {
        cpu::set_bf16_path(k == 0 ? Bf16Path::kAuto : Bf16Path::kPortable);
        cpu::execute(in, a.views(got[k], {d, s, sum}));
      }
      cpu::set_bf16_path(Bf16Path::kAuto);
      EXPECT_TRUE(got[0] == got[1]);
    });
  }
}

}  // namespace
}  // namespace ncore::test
