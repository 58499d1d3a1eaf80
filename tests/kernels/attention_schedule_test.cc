// The attention schedule on its own (kernels/attention_schedule.h): over all
// program instances, every (query head, query row, key) pair the mask keeps is
// in exactly one step, and no step holds a pair it drops (causal steps end at
// the last key their Q tile sees; only the diagonal's tail, under two chunks,
// is masked); each Q tile's first and last flags mark its earliest and latest
// step; the DMA's P^T chunks are whole chunks of their step, all of them on
// the host.
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include <ncore/kernels/attention_schedule.h>

namespace ncore {
namespace {

struct ScheduleCase {
  int64_t b, hq, hkv, sq, skv, d;
  bool causal;
  int programs;
  AttentionPlace place;
};

class AttentionScheduleTest : public ::testing::TestWithParam<ScheduleCase> {};

TEST_P(AttentionScheduleTest, CoversEveryVisiblePairOnce) {
  const ScheduleCase c = GetParam();
  const AttentionShape sh{c.b, c.hq, c.hkv, c.sq, c.skv, c.d};
  const AttentionPlan p = plan_attention(kTrn2, sh, DType::kBF16, DType::kF32, c.place);
  const int64_t off = c.skv - c.sq;
  auto sees = [&](int64_t q, int64_t key) { return !c.causal || key <= q + off; };
  // Keys per (batch, head, query row) summed over the steps that hold them.
  std::map<std::tuple<int64_t, int64_t, int64_t>, int64_t> keys;
  for (int prog = 0; prog < c.programs; ++prog) {
    const AttentionSchedule sc(sh, p, c.causal, prog, c.programs);
    std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> span;  // (item, g) -> first, last entry
    for (int64_t s = 0; s < sc.size(); ++s) {
      const AttnStep& x = sc.sched[size_t(s)];
      if (!x.work) continue;
      const AttnItem& w = sc.item_of(s);
      const AttnQTile& y = w.tl[size_t(x.g)];
      ASSERT_GT(y.qt, 0);
      ASSERT_LE(x.kt, p.block_k);
      ASSERT_EQ(x.all % kAttnChunkK == 0 || x.all == x.kt, true) << "the unmasked keys are whole chunks";
      ASSERT_LT(x.kt - x.all, kAttnMaskKeys) << "only the diagonal's tail is masked";
      for (int64_t r = 0; r < y.qt; ++r) {
        int64_t n = 0;
        for (int64_t key = x.k0; key < x.k0 + x.kt; ++key) {
          if (key < x.k0 + x.all) {
            ASSERT_TRUE(sees(y.q0 + r, key)) << "an unmasked key the row does not see";
          }
          n += sees(y.q0 + r, key);
        }
        keys[{w.b, y.h, y.q0 + r}] += n;
      }
      // The last key of the step is seen by the tile's last row.
      ASSERT_TRUE(sees(y.q0 + y.qt - 1, x.k0 + x.kt - 1));
      auto [it, fresh] = span.try_emplace({x.it, x.g}, s, s);
      it->second.second = s;
      EXPECT_EQ(x.first, fresh);
      const AttnDmaPt dm = sc.dma_pt(s);
      EXPECT_LE(0, dm.c0);
      EXPECT_LE(dm.c0, dm.c1);
      EXPECT_LE(dm.c1 * kAttnChunkK, x.kt) << "DMA'd chunks are whole";
      if (c.place == AttentionPlace::kHost) {
        EXPECT_EQ(dm.c1, x.kt / kAttnChunkK);
      }
    }
    for (const auto& [key, fl] : span) EXPECT_TRUE(sc.sched[size_t(fl.second)].last);
  }
  for (int64_t b = 0; b < c.b; ++b)
    for (int64_t h = 0; h < c.hq; ++h)
      for (int64_t q = 0; q < c.sq; ++q) {
        int64_t want = 0;
        for (int64_t key = 0; key < c.skv; ++key) want += sees(q, key);
        const auto it = keys.find({b, h, q});
        EXPECT_EQ(it == keys.end() ? 0 : it->second, want) << "b" << b << " h" << h << " q" << q;
      }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionScheduleTest,
    ::testing::Values(ScheduleCase{1, 4, 1, 700, 700, 64, false, 1, AttentionPlace::kDevice},
                      ScheduleCase{1, 4, 1, 700, 700, 64, true, 1, AttentionPlace::kDevice},
                      ScheduleCase{2, 4, 2, 300, 1500, 128, true, 2, AttentionPlace::kDevice},
                      ScheduleCase{1, 2, 2, 1500, 300, 80, true, 3, AttentionPlace::kDevice},
                      ScheduleCase{1, 8, 2, 4200, 4200, 128, true, 2, AttentionPlace::kDevice},
                      ScheduleCase{1, 4, 1, 1100, 900, 96, true, 2, AttentionPlace::kHost},
                      ScheduleCase{1, 4, 4, 1024, 2048, 128, false, 1, AttentionPlace::kHost}),
    [](const ::testing::TestParamInfo<ScheduleCase>& i) {
      const ScheduleCase& c = i.param;
      return cat("b", c.b, "h", c.hq, "kv", c.hkv, "_q", c.sq, "_k", c.skv, "_d", c.d, c.causal ? "_causal" : "",
                 "_p", c.programs, c.place == AttentionPlace::kHost ? "_host" : "_device");
    });

}  // namespace
}  // namespace ncore
