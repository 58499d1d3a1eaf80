// Calibration of the cost model against published hardware numbers: the four
// NKI matmul tutorial kernels (kernels/matmul_tutorial.h) on
// [4096, 8192] @ [8192, 8192], modelled and compared with
//   - the tutorial's trn1 latencies (bf16, P99 of nki.benchmark, Neuron 2.20:
//     aws-neuron-sdk general/nki/tutorials/matrix_multiplication.rst) and
//     hardware FLOPs utilisation;
//   - the profiler-driven guide's engine activity (Neuron Explorer summary,
//     nki/guides/tutorials/kernel-optimization.rst), which runs on trn2
//     (platform_target="trn2") with the fp32 arrays its driver builds. Its
//     TensorE is ~100% busy in hoist_load, which on trn2 only fp32 allows (a
//     bf16 rhs tile cannot arrive in the 213 ns a bf16 matmul takes). In fp32,
//     block_free and fully_blocked need more than trn2's 224 KiB SBUF
//     partition (the guide's compiler must have spilled, which we do not
//     model), so those two are modelled in bf16.
// The model's parameters are derived from documented hardware facts, not
// fitted to these numbers; docs/cost-model.md explains every miss.
#pragma once

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ncore/isa/cost/model.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/kernels/matmul_tutorial.h>

namespace ncore {

struct CalibrationRow {
  std::string kernel;  // tiled, hoist_load, block_free, fully_blocked
  std::string target;  // trn1, trn2
  std::string dtype;   // input and output dtype
  // Published; NaN / empty where the source gives nothing.
  double published_ms = std::numeric_limits<double>::quiet_NaN();
  double published_hfu = std::numeric_limits<double>::quiet_NaN();  // 0..1
  std::map<std::string, double> published_busy;                     // engine -> 0..1
  // Modelled.
  double modelled_ms = 0;
  double ratio = std::numeric_limits<double>::quiet_NaN();  // modelled / published latency
  double modelled_te_utilization = 0;
  std::map<std::string, double> modelled_busy;  // engine -> 0..1, as CostReport
  size_t instructions = 0;
};

struct CalibrationOverrides {
  // Default: CostParams::defaults(target).
  std::optional<CostParams> trn1 = std::nullopt, trn2 = std::nullopt;
};

namespace calibration_detail {

inline constexpr int64_t kM = 4096, kN = 8192, kK = 8192;  // the tutorial's benchmark shape

struct Published {
  const char* kernel;
  double trn1_ms;                           // tutorial latency table
  double trn1_hfu;                          // tutorial "Hardware FLOPs Utilization"
  std::map<std::string, double> trn2_busy;  // profiler guide: DMA / PE / VectorE active
  DType trn2_dtype;                         // fp32 (the guide's) where it fits in SBUF, else bf16
};

inline const std::vector<Published>& published() {
  static const std::vector<Published> kRows = {
      {"tiled", 51.80, 0.1098, {{"dma", 0.9993}, {"tensor", 0.8728}}, DType::kF32},
      {"hoist_load", 42.96, 0.1324, {{"dma", 0.9973}, {"tensor", 0.9985}}, DType::kF32},
      {"block_free", 22.07, 0.2651, {{"dma", 0.9570}, {"tensor", 0.9952}}, DType::kBF16},
      // clang-format off
      {"fully_blocked", 6.97, 0.8524, {{"dma", 0.2154}, {"tensor", 0.9950}, {"vector", 0.1055}},
       DType::kBF16},
      // clang-format on
  };
  return kRows;
}

inline Program tutorial_program(const Target& t, const std::string& kernel, DType dtype) {
  return emit(t, [&](DeviceCore& nc) {
    const HbmTensor lhsT = nc.hbm("lhsT", dtype, {kK, kM});
    const HbmTensor rhs = nc.hbm("rhs", dtype, {kK, kN});
    const HbmTensor result = nc.hbm("result", dtype, {kM, kN}, HbmKind::kOutput);
    if (kernel == "tiled")
      matmul_tiled(nc, result, lhsT, rhs);
    else if (kernel == "hoist_load")
      matmul_hoist_load(nc, result, lhsT, rhs);
    else if (kernel == "block_free")
      matmul_block_free(nc, result, lhsT, rhs);
    else
      matmul_fully_blocked(nc, result, lhsT, rhs);
  });
}

}  // namespace calibration_detail

// The tutorial kernels at the tutorial's shape: four trn1 rows (published
// latency and HFU) then four trn2 rows (published engine activity).
inline std::vector<CalibrationRow> calibrate(const CalibrationOverrides& over = {}) {
  namespace cd = calibration_detail;
  std::vector<CalibrationRow> rows;
  for (const Target* t : {&kTrn1, &kTrn2}) {
    const bool trn1 = t->id == TargetId::kTrn1;
    const CostParams params = (trn1 ? over.trn1 : over.trn2).value_or(CostParams::defaults(*t));
    for (const cd::Published& pub : cd::published()) {
      const DType dtype = trn1 ? DType::kBF16 : pub.trn2_dtype;
      const Program p = cd::tutorial_program(*t, pub.kernel, dtype);
      const CostReport r = model(p, params);
      CalibrationRow row;
      row.kernel = pub.kernel;
      row.target = std::string(t->name);
      row.dtype = std::string(dtype_name(dtype));
      if (trn1) {
        row.published_ms = pub.trn1_ms;
        row.published_hfu = pub.trn1_hfu;
      } else {
        row.published_busy = pub.trn2_busy;
      }
      row.modelled_ms = r.latency_ns / 1e6;
      if (trn1) row.ratio = row.modelled_ms / row.published_ms;
      row.modelled_te_utilization = r.te_utilization;
      row.modelled_busy = r.busy_fraction;
      row.instructions = p.instrs.size();
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

// The rows as a Markdown table (docs/cost-model.md has it); busy columns are
// "published / modelled".
inline std::string calibration_table(const std::vector<CalibrationRow>& rows) {
  auto num = [](double v, const char* f) {
    if (std::isnan(v)) return std::string("–");
    char b[32];
    std::snprintf(b, sizeof b, f, v);
    return std::string(b);
  };
  auto pct = [&](double v) { return num(100 * v, "%.1f"); };
  auto busy = [&](const std::map<std::string, double>& m, const char* e) {
    auto it = m.find(e);
    return it == m.end() ? std::string("–") : pct(it->second);
  };
  std::string s =
      "| kernel | target | published ms | modelled ms | ratio | HFU published / TE util "
      "modelled % | DMA busy % | PE busy % | Vector busy % |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  for (const CalibrationRow& r : rows) {
    s += "| " + r.kernel + " | " + r.target + " " + r.dtype + " | " + num(r.published_ms, "%.2f") +
         " | " + num(r.modelled_ms, "%.2f") + " | " + num(r.ratio, "%.2f") + " | " +
         pct(r.published_hfu) + " / " + pct(r.modelled_te_utilization) + " | ";
    for (const char* e : {"dma", "tensor", "vector"})
      s += busy(r.published_busy, e) + " / " + busy(r.modelled_busy, e) + " | ";
    s.pop_back();
    s += "\n";
  }
  return s;
}

}  // namespace ncore
