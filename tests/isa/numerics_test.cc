// isa/numerics.h against ml_dtypes / numpy, bit for bit: every encoding of
// every format decoded, a 435k-value f32 sample encoded (every upper half of
// an f32 with six lower halves, every sampled rounding midpoint, specials,
// PRNG values). Tables: tools/gen_dtype_tables.py; layout:
// tests/data/dtypes/README.md.
#include <ncore/isa/numerics.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#ifndef NCORE_TEST_DATA_DIR
#error "NCORE_TEST_DATA_DIR must be the absolute path of tests/data (the build defines it)"
#endif

namespace ncore {
namespace {

constexpr char kRegenerate[] = "regenerate with: python3 tools/gen_dtype_tables.py";
constexpr uint32_t kVersion = 1;        // tools/gen_dtype_tables.py kVersion
constexpr size_t kHeaderBytes = 24;     // "NCDT", version, count, elem bytes, hash
constexpr int kShownMismatches = 8;     // enough to see a pattern, not a flood

// Compile-time spot checks: the conversions are usable in constant expressions.
static_assert(f32_to_bf16(1.0f) == 0x3F80);
static_assert(f32_to_f16(65520.0f) == 0x7C00);  // max + ulp/2 ties to inf
static_assert(f32_to_fp8_e4m3(247.99998f) == 0x77 && f32_to_fp8_e4m3(248.0f) == 0x78);
static_assert(f32_to_fp8_e5m2(0x1p-17f) == 0x00 && f32_to_fp8_e5m2(0x1.8p-16f) == 0x02);
static_assert(fp8_e4m3_to_f32(0x01) == 0x1p-9f && f16_to_f32(0x0001) == 0x1p-24f);
static_assert(f32_to_i32(2.5f) == 2 && f32_to_i32(-3.5f) == -4);
static_assert(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xFC00);
static_assert(f32_to_fp8_e5m2(std::numeric_limits<float>::quiet_NaN()) == 0x7E);
static_assert(f32_to_i32(std::numeric_limits<float>::quiet_NaN()) == 0);

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }
bool is_nan_bits(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

// One data file: a 24-byte header, then count little-endian elements.
struct Table {
  std::string path;
  uint32_t count = 0;
  uint32_t elem_bytes = 0;
  uint64_t input_hash = 0;
  std::vector<unsigned char> data;

  uint32_t at(size_t i) const {
    uint32_t v = 0;
    for (uint32_t b = 0; b < elem_bytes; ++b) v |= uint32_t{data[i * elem_bytes + b]} << (8 * b);
    return v;
  }
};

uint32_t le32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// Reads tests/data/dtypes/<name>; a failed AssertionResult says what is wrong.
::testing::AssertionResult load(const std::string& name, uint32_t elem_bytes, Table* t) {
  t->path = std::string(NCORE_TEST_DATA_DIR) + "/dtypes/" + name;
  std::ifstream in(t->path, std::ios::binary);
  if (!in)
    return ::testing::AssertionFailure() << "cannot open dtype table " << t->path << " ("
                                         << kRegenerate << ")";
  std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.size() < kHeaderBytes || std::string(raw.begin(), raw.begin() + 4) != "NCDT")
    return ::testing::AssertionFailure() << t->path << ": not an NCDT table (" << raw.size()
                                         << " bytes; " << kRegenerate << ")";
  const uint32_t version = le32(&raw[4]);
  t->count = le32(&raw[8]);
  t->elem_bytes = le32(&raw[12]);
  t->input_hash = uint64_t{le32(&raw[16])} | uint64_t{le32(&raw[20])} << 32;
  if (version != kVersion)
    return ::testing::AssertionFailure() << t->path << ": version " << version << ", expected "
                                         << kVersion << " (" << kRegenerate << ")";
  if (t->elem_bytes != elem_bytes)
    return ::testing::AssertionFailure() << t->path << ": element size " << t->elem_bytes
                                         << ", expected " << elem_bytes;
  if (raw.size() != kHeaderBytes + size_t{t->count} * elem_bytes)
    return ::testing::AssertionFailure() << t->path << ": " << raw.size() << " bytes, header says "
                                         << t->count << " x " << elem_bytes << " + "
                                         << kHeaderBytes << " (" << kRegenerate << ")";
  t->data.assign(raw.begin() + kHeaderBytes, raw.end());
  return ::testing::AssertionSuccess();
}

// ---- The f32 sample: mirrors sample_bits() in tools/gen_dtype_tables.py. ----

struct SplitMix64 {  // Steele, Lea, Flood 2014
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

constexpr uint32_t kLowHalves[] = {0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF};
constexpr uint64_t kSeedLow = 0x6E636F72652D6C6Full;     // "ncore-lo"
constexpr uint64_t kSeedRandom = 0x6E636F72652D7264ull;  // "ncore-rd"
constexpr int kRandomCount = 16384;
constexpr uint32_t kFixedSpecials[] = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  // +-0, +-inf
    0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFFFFFFFF,  // quiet NaNs
    0x7F800001, 0xFF800001, 0x7FA00000, 0x7FBFFFFF,  // signaling NaNs
    0x7F802000, 0x7F801FFF, 0xFF80E000,              // NaN payloads at / below f16's cut
    0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF,  // f32 denormal extremes
    0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,  // f32 min normal, max
};

struct Format {
  const char* name;
  DType type;
  int exp_bits, man_bits;
  uint32_t (*encode)(float);  // widened to uint32_t
  float (*decode)(uint32_t);
};

const Format kFormats[] = {
    {"bf16", DType::kBF16, 8, 7, [](float f) -> uint32_t { return f32_to_bf16(f); },
     [](uint32_t h) { return bf16_to_f32(static_cast<uint16_t>(h)); }},
    {"f16", DType::kF16, 5, 10, [](float f) -> uint32_t { return f32_to_f16(f); },
     [](uint32_t h) { return f16_to_f32(static_cast<uint16_t>(h)); }},
    {"fp8_e4m3", DType::kFP8E4M3, 4, 3, [](float f) -> uint32_t { return f32_to_fp8_e4m3(f); },
     [](uint32_t h) { return fp8_e4m3_to_f32(static_cast<uint8_t>(h)); }},
    {"fp8_e5m2", DType::kFP8E5M2, 5, 2, [](float f) -> uint32_t { return f32_to_fp8_e5m2(f); },
     [](uint32_t h) { return fp8_e5m2_to_f32(static_cast<uint8_t>(h)); }},
};

void PrintTo(const Format& f, std::ostream* os) { *os << f.name; }

int bias(const Format& f) { return (1 << (f.exp_bits - 1)) - 1; }
uint32_t inf_code(const Format& f) { return ((1u << f.exp_bits) - 1) << f.man_bits; }
uint32_t sign_bit(const Format& f) { return 1u << (f.exp_bits + f.man_bits); }
int code_bytes(const Format& f) { return (f.exp_bits + f.man_bits + 1) / 8; }

// f32 bits of non-negative code k, the inf code read as the power of two it
// would be if finite (gen_dtype_tables.py f32_bits_of_encoding).
uint32_t f32_bits_of_encoding(uint32_t k, const Format& f) {
  const uint32_t e = k >> f.man_bits, m = k & ((1u << f.man_bits) - 1);
  if (e == 0) return bits(static_cast<float>(m) * std::ldexp(1.0f, 1 - bias(f) - f.man_bits));
  return ((e - bias(f) + 127) << 23) | (m << (23 - f.man_bits));
}

bool boundary_keep(uint32_t k, const Format& f) {
  if (code_bytes(f) == 1) return true;
  const uint32_t low = k & 0x3F;
  return low == 0x00 || low == 0x01 || low == 0x3E || low == 0x3F;
}

std::vector<uint32_t> make_sample() {
  std::vector<uint32_t> out;
  SplitMix64 rng{kSeedLow};
  for (uint32_t hi = 0; hi < (1u << 16); ++hi) {
    for (uint32_t lo : kLowHalves) out.push_back(hi << 16 | lo);
    out.push_back(hi << 16 | static_cast<uint32_t>(rng.next() & 0xFFFF));
  }
  out.insert(out.end(), std::begin(kFixedSpecials), std::end(kFixedSpecials));
  for (const Format& f : kFormats) {
    for (uint32_t k = 0; k < inf_code(f); ++k) {
      if (!boundary_keep(k, f)) continue;
      const uint32_t mid = (f32_bits_of_encoding(k, f) + f32_bits_of_encoding(k + 1, f)) >> 1;
      for (uint32_t b : {mid, mid - 1, mid + 1}) {
        out.push_back(b);
        out.push_back(b | 0x80000000u);
      }
    }
  }
  rng = SplitMix64{kSeedRandom};
  for (int i = 0; i < kRandomCount; ++i) {
    uint32_t u = static_cast<uint32_t>(rng.next() >> 32);
    if (i & 1) {
      const uint32_t e = 97 + ((u >> 23) & 0xFF) % 52;
      u = (u & 0x807FFFFFu) | e << 23;
    }
    out.push_back(u);
  }
  return out;
}

const std::vector<uint32_t>& sample() {
  static const std::vector<uint32_t> s = make_sample();
  return s;
}

uint64_t fnv1a64(const std::vector<uint32_t>& words) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint32_t w : words)
    for (int b = 0; b < 4; ++b) h = (h ^ ((w >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
  return h;
}

// Counts mismatches; prints the first few in full and a total at the end.
class Mismatches {
 public:
  explicit Mismatches(std::string what) : what_(std::move(what)) {}
  void add(const std::string& detail) {
    if (++count_ <= kShownMismatches) ADD_FAILURE() << what_ << ": " << detail;
  }
  ~Mismatches() { EXPECT_EQ(count_, 0u) << what_ << ": mismatches in total"; }

 private:
  std::string what_;
  size_t count_ = 0;
};

class NumericsTable : public ::testing::TestWithParam<Format> {};

// Every encoding decodes to the table's f32 bits; NaN encodings to a NaN
// with exactly the reference's bits.
TEST_P(NumericsTable, DecodeEveryEncoding) {
  const Format& f = GetParam();
  Table t;
  ASSERT_TRUE(load(std::string("decode_") + f.name + ".bin", 4, &t));
  ASSERT_EQ(t.count, 1u << (8 * code_bytes(f))) << t.path;
  Mismatches bad(std::string("decode ") + f.name);
  for (uint32_t code = 0; code < t.count; ++code) {
    const uint32_t want = t.at(code), got = bits(f.decode(code));
    const bool nan_code = (code & (sign_bit(f) - 1)) > inf_code(f);
    if (got != want || nan_code != is_nan_bits(got))
      bad.add("code " + hex(code) + " -> " + hex(got) + ", ml_dtypes " + hex(want));
  }
}

// The whole sample encodes to the table's codes, NaN patterns included.
TEST_P(NumericsTable, EncodeSample) {
  const Format& f = GetParam();
  Table t;
  ASSERT_TRUE(load(std::string("encode_") + f.name + ".bin", code_bytes(f), &t));
  const std::vector<uint32_t>& s = sample();
  ASSERT_EQ(t.input_hash, fnv1a64(s))
      << t.path << " was written for another sample than make_sample() builds; the PRNG or the "
      << "sample definition differs from tools/gen_dtype_tables.py";
  ASSERT_EQ(t.count, s.size()) << t.path;
  Mismatches bad(std::string("encode ") + f.name);
  for (size_t i = 0; i < s.size(); ++i) {
    const uint32_t want = t.at(i), got = f.encode(from_bits(s[i]));
    if (got != want)
      bad.add("sample[" + std::to_string(i) + "] f32 " + hex(s[i]) + " -> " + hex(got) +
              ", reference " + hex(want));
  }
}

// encode(decode(x)) == x for every non-NaN code (so also +-0 and +-inf).
TEST_P(NumericsTable, RoundTripEveryEncoding) {
  const Format& f = GetParam();
  Mismatches bad(std::string("round trip ") + f.name);
  for (uint32_t code = 0; code < (1u << (8 * code_bytes(f))); ++code) {
    if ((code & (sign_bit(f) - 1)) > inf_code(f)) continue;
    const uint32_t back = f.encode(f.decode(code));
    if (back != code) bad.add(hex(code) + " -> " + hex(back));
  }
}

// NaN in, NaN out, sign kept; the reference's quiet pattern.
TEST_P(NumericsTable, NaNKeepsSign) {
  const Format& f = GetParam();
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFFFFFFFFu}) {
    const uint32_t code = f.encode(from_bits(nan));
    EXPECT_GT(code & (sign_bit(f) - 1), inf_code(f)) << f.name << " " << hex(nan) << " -> " << hex(code);
    EXPECT_EQ((code & sign_bit(f)) != 0, (nan >> 31) != 0) << f.name << " " << hex(nan);
  }
}

// max_finite and the overflow threshold: max + ulp(max)/2 is a tie that goes
// to inf (max's mantissa is odd), one f32 ulp below it rounds to max.
TEST_P(NumericsTable, MaxFiniteAndOverflow) {
  const Format& f = GetParam();
  const uint32_t max_code = inf_code(f) - 1;
  const float max = f.decode(max_code);
  EXPECT_EQ(static_cast<double>(max), max_finite(f.type)) << f.name;
  const float tie = from_bits((f32_bits_of_encoding(max_code, f) +
                               f32_bits_of_encoding(inf_code(f), f)) >> 1);
  for (float sign : {1.0f, -1.0f}) {
    const uint32_t s = sign < 0 ? sign_bit(f) : 0;
    EXPECT_EQ(f.encode(sign * tie), s | inf_code(f)) << f.name << " " << sign * tie;
    EXPECT_EQ(f.encode(sign * std::nextafter(tie, 0.0f)), s | max_code) << f.name;
    EXPECT_EQ(f.encode(sign * std::numeric_limits<float>::max()), s | inf_code(f)) << f.name;
    EXPECT_EQ(f.encode(sign * std::numeric_limits<float>::infinity()), s | inf_code(f)) << f.name;
  }
}

// unit_roundoff u bounds the relative error of round_to in the normal range;
// the sharp bound u / (1 + u) is attained at the tie just above a power of
// two, which the sample holds for every binade.
TEST_P(NumericsTable, UnitRoundoffBoundsError) {
  const Format& f = GetParam();
  const double u = unit_roundoff(f.type);
  const double min_normal = std::ldexp(1.0, 1 - bias(f));
  double worst = 0;
  for (uint32_t b : sample()) {
    const double v = from_bits(b);
    if (!(std::fabs(v) >= min_normal && std::fabs(v) <= max_finite(f.type))) continue;
    const double err = std::fabs(static_cast<double>(round_to(f.type, static_cast<float>(v))) - v);
    worst = std::max(worst, err / std::fabs(v));
    ASSERT_LE(err, u * std::fabs(v)) << f.name << " at " << v;
  }
  EXPECT_EQ(worst, u / (1 + u)) << f.name << ": the sharp bound is not reached";
}

INSTANTIATE_TEST_SUITE_P(AllFormats, NumericsTable, ::testing::ValuesIn(kFormats),
                         [](const auto& p) { return std::string(p.param.name); });

// A missing table fails with the path and how to regenerate, not a crash.
TEST(NumericsData, MissingFileIsAClearFailure) {
  Table t;
  const ::testing::AssertionResult r = load("no_such_table.bin", 4, &t);
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("no_such_table.bin"), std::string::npos) << r.message();
  EXPECT_NE(std::string(r.message()).find("gen_dtype_tables.py"), std::string::npos) << r.message();
}

// Generic decode/encode (through unaligned bytes) and round_to agree with the
// per-format functions for every DType over the whole sample.
TEST(NumericsGeneric, AgreesWithSpecificFunctions) {
  unsigned char buf[8];  // elements go to buf + 1: never aligned for 2/4 bytes
  for (DType t : kAllDTypes) {
    Mismatches bad(std::string("generic ") + std::string(dtype_name(t)));
    for (uint32_t b : sample()) {
      const float v = from_bits(b);
      uint32_t want_code = 0;  // the stored bytes, little-endian, zero-extended
      float want_value = 0;    // what decode reads back
      switch (t) {
        case DType::kF32: want_code = b; want_value = v; break;
        case DType::kBF16: want_code = f32_to_bf16(v); want_value = bf16_to_f32(f32_to_bf16(v)); break;
        case DType::kF16: want_code = f32_to_f16(v); want_value = f16_to_f32(f32_to_f16(v)); break;
        case DType::kFP8E4M3:
          want_code = f32_to_fp8_e4m3(v);
          want_value = fp8_e4m3_to_f32(f32_to_fp8_e4m3(v));
          break;
        case DType::kFP8E5M2:
          want_code = f32_to_fp8_e5m2(v);
          want_value = fp8_e5m2_to_f32(f32_to_fp8_e5m2(v));
          break;
        case DType::kI32:
          want_code = static_cast<uint32_t>(f32_to_i32(v));
          want_value = static_cast<float>(f32_to_i32(v));
          break;
      }
      std::memset(buf, 0xA5, sizeof buf);
      encode(t, v, buf + 1);
      uint32_t code = 0;
      std::memcpy(&code, buf + 1, dtype_size(t));  // little-endian host
      const bool guard_ok = buf[0] == 0xA5 && buf[1 + dtype_size(t)] == 0xA5;
      const uint32_t dec = bits(decode(t, buf + 1)), rt = bits(round_to(t, v));
      if (code != want_code || !guard_ok || dec != bits(want_value) || rt != bits(want_value))
        bad.add("f32 " + hex(b) + ": encode " + hex(code) + " (want " + hex(want_code) +
                (guard_ok ? "" : ", wrote outside the element") + "), decode " + hex(dec) +
                ", round_to " + hex(rt) + " (want " + hex(bits(want_value)) + ")");
    }
  }
}

TEST(NumericsConstants, UnitRoundoffAndMaxFinite) {
  EXPECT_EQ(unit_roundoff(DType::kF32), std::ldexp(1.0, -24));
  EXPECT_EQ(unit_roundoff(DType::kI32), 0.0);
  EXPECT_EQ(max_finite(DType::kF32), static_cast<double>(std::numeric_limits<float>::max()));
  EXPECT_EQ(max_finite(DType::kI32), static_cast<double>(std::numeric_limits<int32_t>::max()));
}

TEST(NumericsI32, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_i32(0.5f), 0);
  EXPECT_EQ(f32_to_i32(1.5f), 2);
  EXPECT_EQ(f32_to_i32(2.5f), 2);
  EXPECT_EQ(f32_to_i32(-0.5f), 0);
  EXPECT_EQ(f32_to_i32(-1.5f), -2);
  EXPECT_EQ(f32_to_i32(-2.5f), -2);
  EXPECT_EQ(f32_to_i32(std::nextafter(0.5f, 1.0f)), 1);
  EXPECT_EQ(f32_to_i32(std::nextafter(0.5f, 0.0f)), 0);
  EXPECT_EQ(f32_to_i32(std::nextafter(-2.5f, -3.0f)), -3);
  EXPECT_EQ(f32_to_i32(8388607.5f), 8388608);    // 2^23 - 1/2: last binade with halves
  EXPECT_EQ(f32_to_i32(-8388606.5f), -8388606);
  EXPECT_EQ(f32_to_i32(16777217.0f), 16777216);  // not a float: 2^24 + 1 is 2^24
  EXPECT_EQ(f32_to_i32(0x1p-149f), 0);
}

TEST(NumericsI32, SaturatesAndMapsSpecials) {
  constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
  constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(f32_to_i32(0x1p31f), kMax);                           // 2^31: just out of range
  EXPECT_EQ(f32_to_i32(std::nextafter(0x1p31f, 0.0f)), 2147483520);  // largest float below
  EXPECT_EQ(f32_to_i32(-0x1p31f), kMin);                          // exactly INT32_MIN
  EXPECT_EQ(f32_to_i32(std::nextafter(-0x1p31f, -INFINITY)), kMin);
  EXPECT_EQ(f32_to_i32(std::nextafter(-0x1p31f, 0.0f)), -2147483520);
  EXPECT_EQ(f32_to_i32(1e30f), kMax);
  EXPECT_EQ(f32_to_i32(-1e30f), kMin);
  EXPECT_EQ(f32_to_i32(INFINITY), kMax);
  EXPECT_EQ(f32_to_i32(-INFINITY), kMin);
  EXPECT_EQ(f32_to_i32(NAN), 0);
  EXPECT_EQ(f32_to_i32(-NAN), 0);
  EXPECT_EQ(f32_to_i32(from_bits(0x7F800001u)), 0);  // signaling
  EXPECT_EQ(f32_to_i32(-0.0f), 0);
  EXPECT_EQ(round_to(DType::kI32, 0x1p31f), 0x1p31f);  // INT32_MAX reads back as 2^31
  EXPECT_EQ(round_to(DType::kI32, NAN), 0.0f);
}

// Exhaustive over all 2^32 f32 would take minutes; every f32 near the
// integer grid is in the sample, so check RNE against a double reference.
TEST(NumericsI32, MatchesDoubleReferenceOnSample) {
  Mismatches bad("f32_to_i32");
  for (uint32_t b : sample()) {
    const float v = from_bits(b);
    int32_t want = 0;
    if (!std::isnan(v)) {
      const double r = std::nearbyint(static_cast<double>(v));  // default mode: RNE
      want = r >= 0x1p31 ? std::numeric_limits<int32_t>::max()
             : r < -0x1p31 ? std::numeric_limits<int32_t>::min()
                           : static_cast<int32_t>(r);
    }
    if (f32_to_i32(v) != want)
      bad.add(hex(b) + " -> " + std::to_string(f32_to_i32(v)) + ", want " + std::to_string(want));
  }
}

}  // namespace
}  // namespace ncore
