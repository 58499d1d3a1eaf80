// The calibration claims of docs/cost-model.md, so that a change to the model
// that moves them is caught: modelled / published trn1 latency of the four
// NKI tutorial kernels, the diagnosis of the two misses, and the qualitative
// engine activity of the profiler guide on trn2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <ncore/isa/cost/calibrate.h>

namespace ncore {
namespace {

const CalibrationRow& row(const std::vector<CalibrationRow>& rows, const std::string& kernel,
                          const std::string& target) {
  for (const CalibrationRow& r : rows)
    if (r.kernel == kernel && r.target == target) return r;
  throw std::runtime_error("no calibration row " + kernel + " " + target);
}

class Calibration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { rows_ = new std::vector<CalibrationRow>(calibrate()); }
  static void TearDownTestSuite() {
    delete rows_;
    rows_ = nullptr;
  }
  static const std::vector<CalibrationRow>& rows() { return *rows_; }
  static std::vector<CalibrationRow>* rows_;
};
std::vector<CalibrationRow>* Calibration::rows_ = nullptr;

TEST_F(Calibration, Trn1LatencyRatiosAsDocumented) {
  ASSERT_EQ(rows().size(), 8u);
  // Within [0.8, 1.25] of the published latency: the DMA-latency-bound tiled
  // kernel and the TensorE-bound fully blocked one.
  for (const char* k : {"tiled", "fully_blocked"}) {
    const CalibrationRow& r = row(rows(), k, "trn1");
    EXPECT_GE(r.ratio, 0.8) << k;
    EXPECT_LE(r.ratio, 1.25) << k;
  }
  // The two kernels bound by 1 KiB-per-partition DMAs are modelled about a
  // third too fast (docs: the published runs move ~105 GB/s whatever the
  // transfer size; the documented DMA efficiency curve allows ~160).
  for (const char* k : {"hoist_load", "block_free"}) {
    const CalibrationRow& r = row(rows(), k, "trn1");
    EXPECT_GE(r.ratio, 0.6) << k;
    EXPECT_LE(r.ratio, 0.75) << k;
  }
  for (const CalibrationRow& r : rows()) {
    if (r.target == "trn1") {
      EXPECT_NEAR(r.ratio, r.modelled_ms / r.published_ms, 1e-12);
    }
    EXPECT_GT(r.instructions, 30000u);
  }
}

TEST_F(Calibration, TensorEngineUtilisationOrdersTheKernelsLikeThePublishedHfu) {
  const char* order[] = {"tiled", "hoist_load", "block_free", "fully_blocked"};
  for (int i = 0; i + 1 < 4; ++i) {
    const CalibrationRow &a = row(rows(), order[i], "trn1"), &b = row(rows(), order[i + 1], "trn1");
    EXPECT_LT(a.published_hfu, b.published_hfu);
    EXPECT_LT(a.modelled_te_utilization, b.modelled_te_utilization) << order[i];
  }
  // Fully blocked is TensorE-bound: utilisation within 10 points of the published 85.2%.
  EXPECT_NEAR(row(rows(), "fully_blocked", "trn1").modelled_te_utilization, 0.852, 0.10);
}

TEST_F(Calibration, ProfilerGuideActivityOnTrn2) {
  // tiled: DMA-bound (the guide: DMA 99.9% busy, PE 87.3%).
  const CalibrationRow& tiled = row(rows(), "tiled", "trn2");
  EXPECT_GT(tiled.modelled_busy.at("dma"), tiled.modelled_busy.at("tensor"));
  // hoist_load: both DMA and PE busy most of the time (99.7%, 99.9%).
  const CalibrationRow& hoist = row(rows(), "hoist_load", "trn2");
  EXPECT_GT(hoist.modelled_busy.at("dma"), 0.9);
  EXPECT_GT(hoist.modelled_busy.at("tensor"), 0.75);
  // fully_blocked: TensorE-bound, DMA and VectorE far less busy (99.5 / 21.5 / 10.6%).
  const CalibrationRow& fully = row(rows(), "fully_blocked", "trn2");
  EXPECT_GT(fully.modelled_busy.at("tensor"), 0.9);
  EXPECT_LT(fully.modelled_busy.at("dma"), 0.5);
  EXPECT_LT(fully.modelled_busy.at("vector"), fully.modelled_busy.at("tensor") / 2);
  for (const CalibrationRow& r : rows())
    if (r.target == "trn2") {
      EXPECT_TRUE(std::isnan(r.published_ms));
      EXPECT_FALSE(r.published_busy.empty());
    }
}

TEST(CalibrationDiagnosis, AllFourAreDmaBoundAtAbout105GBs) {
  // Not the model: the check behind the docs' explanation of the misses. The
  // published trn1 runs move 103-106 GB/s of HBM traffic each; with DMA
  // engines limited to that aggregate (and nothing else changed) the model
  // lands within 3% of all four published latencies.
  CostParams c = CostParams::defaults(kTrn1);
  c.dma_bytes_per_ns = 105.0 / c.dma_engines;
  c.dma_descriptor_ns = 0;
  const auto rows = calibrate({.trn1 = c});
  for (const char* k : {"tiled", "hoist_load", "block_free", "fully_blocked"}) {
    const CalibrationRow& r = row(rows, k, "trn1");
    EXPECT_NEAR(r.ratio, 1.0, 0.03) << k;
  }
}

TEST(CalibrationTable, MarkdownHasOneLinePerRow) {
  std::vector<CalibrationRow> rows(2);
  rows[0].kernel = "tiled";
  rows[0].target = "trn1";
  rows[0].dtype = "bf16";
  rows[0].published_ms = 51.8;
  rows[0].modelled_ms = 46.4;
  rows[0].ratio = 46.4 / 51.8;
  rows[0].modelled_busy = {{"dma", 0.9}, {"tensor", 0.1}};
  rows[1] = rows[0];
  rows[1].target = "trn2";
  rows[1].published_ms = std::nan("");
  rows[1].ratio = std::nan("");
  rows[1].published_busy = {{"dma", 0.999}};
  const std::string t = calibration_table(rows);
  EXPECT_NE(t.find("| tiled | trn1 bf16 | 51.80 | 46.40 | 0.90 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| tiled | trn2 bf16 | – | 46.40 | – |"), std::string::npos) << t;
  EXPECT_NE(t.find("| 99.9 / 90.0 |"), std::string::npos) << t;
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), 4);
}

}  // namespace
}  // namespace ncore
