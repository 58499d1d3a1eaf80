// isa/allocator.h: first fit with 64 B alignment, coalescing, the PSUM bank
// rules, capacity errors, and random alloc/free sequences against a
// brute-force byte-map model that finds the lowest legal address itself.
#include <ncore/isa/allocator.h>
#include <ncore/isa/core.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace ncore {
namespace {

constexpr uint32_t kSeed = 7321;  // fixed: a failure must reproduce
constexpr int64_t kKiB = 1024;
constexpr int64_t kBank = 2 * kKiB;  // PSUM bank per partition (facts §2)

std::string expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << p << "\"";
    return msg;
  }
  ADD_FAILURE() << "did not throw; expected an error with \"" << *parts.begin() << "\"";
  return {};
}

TEST(AllocatorTest, FirstFitReusesTheLowestHoleThatFits) {
  Allocator a(kTrn2);
  const int64_t x = a.alloc(Space::kSbuf, 100, "t:1");  // 128 B reserved
  const int64_t y = a.alloc(Space::kSbuf, 64, "t:2");
  const int64_t z = a.alloc(Space::kSbuf, 256, "t:3");
  EXPECT_EQ(x, 0);
  EXPECT_EQ(y, 128);
  EXPECT_EQ(z, 192);
  a.free(Space::kSbuf, y);  // hole [128, 192)
  EXPECT_EQ(a.alloc(Space::kSbuf, 65, "t:4"), 448) << "65 B rounds to 128: too big for the hole";
  EXPECT_EQ(a.alloc(Space::kSbuf, 64, "t:5"), 128) << "fits the hole exactly";
  a.free(Space::kSbuf, x);  // hole [0, 128)
  EXPECT_EQ(a.alloc(Space::kSbuf, 1, "t:6"), 0) << "lowest address first";
  EXPECT_EQ(a.alloc(Space::kSbuf, 1, "t:7"), 64);
}

TEST(AllocatorTest, SizesRoundUpTo64Bytes) {
  Allocator a(kTrn1);
  for (int64_t bytes :
       {int64_t{0}, int64_t{1}, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{1000}}) {
    const int64_t before = a.in_use_bytes(Space::kSbuf);
    const int64_t addr = a.alloc(Space::kSbuf, bytes, "t:1");
    EXPECT_EQ(addr % Allocator::kAlign, 0) << bytes;
    const int64_t reserved =
        std::max<int64_t>((bytes + 63) / 64 * 64, 64);  // 0 B still takes a granule
    EXPECT_EQ(a.in_use_bytes(Space::kSbuf) - before, reserved) << bytes;
  }
}

TEST(AllocatorTest, FreeCoalescesNeighbours) {
  Allocator a(kTrn2);
  const int64_t cap = a.capacity(Space::kSbuf);
  const int64_t third = cap / 3 / 64 * 64;
  const int64_t x = a.alloc(Space::kSbuf, third, "t:1");
  const int64_t y = a.alloc(Space::kSbuf, third, "t:2");
  const int64_t z = a.alloc(Space::kSbuf, cap - 2 * third, "t:3");
  EXPECT_EQ(a.in_use_bytes(Space::kSbuf), cap);
  // Free the outer two, then the middle: only a merge of all three fits `cap`.
  a.free(Space::kSbuf, x);
  a.free(Space::kSbuf, z);
  expect_error([&] { a.alloc(Space::kSbuf, 2 * third, "t:4"); }, {"do not fit"});
  a.free(Space::kSbuf, y);
  EXPECT_EQ(a.in_use_bytes(Space::kSbuf), 0);
  EXPECT_EQ(a.alloc(Space::kSbuf, cap, "t:5"), 0);
  // Freeing something not live (twice, or never allocated) changes nothing.
  a.free(Space::kSbuf, 0);
  a.free(Space::kSbuf, 0);
  a.free(Space::kSbuf, 12345);
  EXPECT_EQ(a.in_use_bytes(Space::kSbuf), 0);
  EXPECT_EQ(a.alloc(Space::kSbuf, cap, "t:6"), 0);
}

TEST(AllocatorTest, CapacityErrorNamesRequestFreeCapacityTargetAndLine) {
  for (const Target* t : kAllTargets) {
    Allocator a(*t);
    const int64_t cap = t->sbuf_partition_bytes;
    a.alloc(Space::kSbuf, 1000, "t:1");  // 1024 reserved
    const std::string msg = expect_error(
        [&] { a.alloc(Space::kSbuf, cap, "kernels/gemm.h:57"); },
        {"sbuf alloc: buffer ", cat(cap, " bytes per partition"),
         cat(cap - 1024, " of ", cap, " free"), cat("(", t->name, ")"), " at kernels/gemm.h:57"});
    EXPECT_FALSE(msg.empty());
    // PSUM: 8 banks of 2 KiB per partition.
    expect_error([&] { a.alloc(Space::kPsum, 16 * kKiB + 1, "k.h:9"); },
                 {"psum alloc", "16385 bytes per partition do not fit: 16384 of 16384 free",
                  cat("(", t->name, ")"), "at k.h:9"});
  }
  // Huge and negative requests are errors, not overflows.
  Allocator a(kTrn2);
  expect_error([&] { a.alloc(Space::kSbuf, INT64_MAX, "k.h:1"); },
               {"9223372036854775807 bytes per partition do not fit"});
  expect_error([&] { a.alloc(Space::kSbuf, -64, "k.h:2"); }, {"sbuf alloc", "-64", "negative"});
  expect_error([&] { a.alloc(Space::kHbm, 64, "k.h:3"); }, {"must be sbuf or psum, got hbm"});
}

// Through the front-end the capacity error carries the kernel's own line.
struct NullBackend {
  explicit NullBackend(const Target&) {}
  void on_file(uint32_t, std::string_view) {}
  void on_hbm(uint32_t, const HbmDecl&, void*) {}
  void on_alloc(Space, int64_t, int64_t, SrcLoc) {}
  void on_free(Space, int64_t, int64_t) {}
  void submit(const Instr&) {}
};

TEST(AllocatorTest, CoreAllocationErrorCarriesTheCallersLine) {
  Core<NullBackend> trn1(kTrn1);
  Core<NullBackend> trn2(kTrn2);
  // 200 KiB per partition: fits trn2's 224 KiB SBUF, not trn1's 192 KiB.
  auto big2 = trn2.sbuf(DType::kF32, 128, {200 * 256});
  EXPECT_EQ(big2.addr, 0);
  const int line = __LINE__ + 1;  // the sbuf() call's line, which the error must name
  auto too_big = [&] { auto b = trn1.sbuf(DType::kF32, 128, {200 * 256}); };
  expect_error(too_big, {"sbuf alloc: buffer 204800 bytes per partition do not fit: 196608 of "
                         "196608 free (trn1)",
                         cat("allocator_test.cc:", line)});
  // A free shape whose product overflows int64 is an error, not a wrap-around.
  expect_error(
      [&] {
        auto b = trn2.sbuf(DType::kF32, 128, {200000, 200000, 200000, 200000});
      },
      {"sbuf: free shape dim 200000 is not in 1..", "elements in all"});
  // Buffers free themselves: the whole capacity is back after scope exit.
  { auto a = trn1.sbuf(DType::kBF16, 128, {96 * 1024}); }
  auto again = trn1.sbuf(DType::kBF16, 128, {96 * 1024});
  EXPECT_EQ(again.addr, 0);
}

TEST(AllocatorTest, PsumSmallAllocationsNeverStraddleABank) {
  Allocator a(kTrn2);
  EXPECT_EQ(a.alloc(Space::kPsum, 1536, "t:1"), 0);
  // 1024 B would fit at 1536 but cross into bank 1: it starts at bank 1 instead.
  EXPECT_EQ(a.alloc(Space::kPsum, 1024, "t:2"), kBank);
  // 512 B fits the rest of bank 0 exactly.
  EXPECT_EQ(a.alloc(Space::kPsum, 512, "t:3"), 1536);
  EXPECT_EQ(a.alloc(Space::kPsum, 1024, "t:4"), kBank + 1024);
  EXPECT_EQ(a.psum_peak_banks(), 2);
  EXPECT_EQ(a.peak_bytes(Space::kPsum), 2 * kBank);
}

TEST(AllocatorTest, PsumLargeAllocationsTakeWholeBanks) {
  Allocator a(kTrn1);
  EXPECT_EQ(a.alloc(Space::kPsum, 64, "t:1"), 0);
  // 2049 B needs two banks and starts on a bank boundary.
  EXPECT_EQ(a.alloc(Space::kPsum, kBank + 1, "t:2"), kBank);
  EXPECT_EQ(a.in_use_bytes(Space::kPsum), 64 + 2 * kBank);
  EXPECT_EQ(a.psum_peak_banks(), 3);
  EXPECT_EQ(a.peak_bytes(Space::kPsum), 3 * kBank);
  // The rest of bank 0 still serves small requests.
  EXPECT_EQ(a.alloc(Space::kPsum, 2048 - 64, "t:3"), 64);
}

TEST(AllocatorTest, PsumHasEightBanks) {
  for (const Target* t : kAllTargets) {
    Allocator a(*t);
    std::vector<int64_t> addrs;
    for (int b = 0; b < 8; ++b) addrs.push_back(a.alloc(Space::kPsum, 2048, "t:1"));
    for (int b = 0; b < 8; ++b) EXPECT_EQ(addrs[size_t(b)], b * kBank);
    EXPECT_EQ(a.psum_peak_banks(), 8);
    EXPECT_EQ(a.peak_bytes(Space::kPsum), 8 * kBank);
    expect_error([&] { a.alloc(Space::kPsum, 4, "t:2"); }, {"psum alloc", "0 of 16384 free"});
    // Peaks are high-water marks: freeing does not lower them.
    for (int64_t addr : addrs) a.free(Space::kPsum, addr);
    EXPECT_EQ(a.psum_peak_banks(), 8);
    EXPECT_EQ(a.alloc(Space::kPsum, 8 * kBank, "t:3"), 0) << "freed banks coalesce";
  }
}

// ---------------------------------------------------------------------------
// The model: a map of 64 B granules (every reserved size and address is a
// multiple of 64), and first fit found by trying every address from 0 up.
class Model {
 public:
  static constexpr int64_t kGranule = 64;

  Model(const Target& t, Space s)
      : space_(s),
        bank_(t.psum_bank_bytes),
        used_(size_t((s == Space::kSbuf ? t.sbuf_partition_bytes : t.psum_partition_bytes()) /
                     kGranule),
              0) {}

  // Bytes reserved for a request: 64 B granules; PSUM over one bank takes whole banks.
  int64_t reserved(int64_t bytes) const {
    int64_t need = std::max<int64_t>((bytes + kGranule - 1) / kGranule * kGranule, kGranule);
    if (space_ == Space::kPsum && need > bank_) need = (need + bank_ - 1) / bank_ * bank_;
    return need;
  }
  bool legal_at(int64_t a, int64_t need) const {
    if (a + need > capacity()) return false;
    if (space_ == Space::kPsum) {
      if (need > bank_ && a % bank_ != 0) return false;
      if (need <= bank_ && a / bank_ != (a + need - 1) / bank_) return false;
    }
    for (int64_t g = a / kGranule; g < (a + need) / kGranule; ++g)
      if (used_[size_t(g)]) return false;
    return true;
  }
  int64_t first_fit(int64_t need) const {
    for (int64_t a = 0; a + need <= capacity(); a += kGranule)
      if (legal_at(a, need)) return a;
    return -1;
  }
  void mark(int64_t a, int64_t need, bool v) {
    for (int64_t g = a / kGranule; g < (a + need) / kGranule; ++g) {
      ASSERT_NE(bool(used_[size_t(g)]), v)
          << "byte " << g * kGranule << (v ? " already live" : " not live");
      used_[size_t(g)] = v;
    }
  }
  int banks_in_use() const {
    const int64_t per_bank = bank_ / kGranule;
    int n = 0;
    for (int64_t b = 0; b * per_bank < int64_t(used_.size()); ++b)
      n += std::any_of(used_.begin() + b * per_bank, used_.begin() + (b + 1) * per_bank,
                       [](char c) { return c != 0; });
    return n;
  }

 private:
  int64_t capacity() const { return int64_t(used_.size()) * kGranule; }
  Space space_;
  int64_t bank_;
  std::vector<char> used_;
};

void random_sequence(const Target& t, Space s, uint32_t seed, int steps, int64_t max_request) {
  SCOPED_TRACE(cat(t.name, " ", space_name(s), " seed ", seed));
  std::mt19937 rng(seed);
  Allocator a(t);
  Model m(t, s);
  std::map<int64_t, int64_t> live;  // addr -> reserved bytes
  int64_t peak = 0, in_use = 0;
  int peak_banks = 0, failures = 0;
  for (int i = 0; i < steps; ++i) {
    const bool do_free = !live.empty() && std::bernoulli_distribution(0.45)(rng);
    if (do_free) {
      auto it = std::next(live.begin(),
                          std::uniform_int_distribution<long>(0, long(live.size()) - 1)(rng));
      a.free(s, it->first);
      m.mark(it->first, it->second, false);
      in_use -= it->second;
      live.erase(it);
    } else {
      // Mostly small, sometimes up to the limit: both fits and misfits occur.
      const int64_t bytes = std::bernoulli_distribution(0.8)(rng)
                                ? std::uniform_int_distribution<int64_t>(1, max_request / 8)(rng)
                                : std::uniform_int_distribution<int64_t>(1, max_request)(rng);
      const int64_t need = m.reserved(bytes);
      const int64_t expect = m.first_fit(need);
      if (expect < 0) {
        expect_error([&] { a.alloc(s, bytes, "k.h:1"); },
                     {cat(bytes, " bytes per partition do not fit")});
        ++failures;
      } else {
        const int64_t got = a.alloc(s, bytes, "k.h:1");
        ASSERT_EQ(got, expect) << "step " << i << ": " << bytes << " B";
        m.mark(got, need, true);
        if (testing::Test::HasFatalFailure()) return;
        live[got] = need;
        in_use += need;
        peak = std::max(peak, got + need);
      }
    }
    if (s == Space::kPsum) peak_banks = std::max(peak_banks, m.banks_in_use());
    ASSERT_EQ(a.in_use_bytes(s), in_use) << "step " << i;
    ASSERT_LE(a.in_use_bytes(s), a.capacity(s));
    ASSERT_EQ(a.peak_bytes(s), peak) << "step " << i;
    ASSERT_LE(a.peak_bytes(s), a.capacity(s));
    if (s == Space::kPsum) {
      ASSERT_EQ(a.psum_peak_banks(), peak_banks) << "step " << i;
    }
  }
  EXPECT_GT(failures, 0) << "the sequence never filled the space";
  EXPECT_GT(int(live.size()) + failures, 10);
}

TEST(AllocatorTest, RandomSbufSequencesMatchTheBruteForceModel) {
  for (const Target* t : kAllTargets)
    for (uint32_t k = 0; k < 3; ++k) random_sequence(*t, Space::kSbuf, kSeed + k, 1500, 48 * kKiB);
}

TEST(AllocatorTest, RandomPsumSequencesMatchTheBruteForceModel) {
  for (const Target* t : kAllTargets)
    for (uint32_t k = 0; k < 3; ++k)
      random_sequence(*t, Space::kPsum, kSeed + 100 + k, 3000, 5 * kKiB);
}

}  // namespace
}  // namespace ncore
