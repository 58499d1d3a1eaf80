// Device-model output shared by every kernel (`bench --target`, `profile`) and
// the `calibrate` command.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <ncore/isa/cost/calibrate.h>
#include <ncore/isa/cost/model.h>
#include <ncore/isa/cost/report.h>
#include <ncore/isa/cost/trace.h>

#include "common.h"

namespace ncore::cli {

int bench_device(const std::string& kernel, const Program& program, const nlohmann::json& shape,
                 bool json) {
  const CostReport r = model(program);
  if (json) {
    nlohmann::json j = {{"kernel", kernel},
                        {"target", std::string(program.target_info().name)},
                        {"latency_us", r.latency_ns / 1e3},
                        {"tflops", r.latency_ns > 0 ? r.matmul_flops / r.latency_ns / 1e3 : 0.0},
                        {"te_utilization", r.te_utilization},
                        {"mbu", r.mbu},
                        {"engines", r.busy_fraction},
                        {"instructions", program.instrs.size()}};
    j.update(shape);
    std::cout << j.dump() << "\n";
  } else {
    std::cout << kernel << " " << shape.dump() << "\n" << cost_summary(program, r);
  }
  return kExitOk;
}

int profile_device(const std::string& kernel, const Program& program, const std::string& path) {
  const CostReport r = model(program);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw Error("profile " + kernel, "--trace", "cannot open " + path + " for writing");
    f << chrome_trace(program, r);
    if (!f.flush()) throw Error("profile " + kernel, "--trace", "write to " + path + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error("profile " + kernel, "--trace", "cannot rename into " + path);
  std::cout << cost_summary(program, r) << "; trace: " << path << " (chrome://tracing, Perfetto)\n";
  return kExitOk;
}

void register_calibrate(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cal = app.add_subcommand(
      "calibrate", "model the NKI matmul tutorial kernels and compare with published latencies");
  cal->add_flag("--json", *json, "print a JSON array of {case, published_ms, modelled_ms, ratio}");
  cal->callback([json, &exit_code] {
    const std::vector<CalibrationRow> rows = calibrate();
    if (*json) {
      auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
      nlohmann::json arr = nlohmann::json::array();
      for (const CalibrationRow& r : rows)
        arr.push_back({{"case", r.kernel + " " + r.target + " " + r.dtype},
                       {"kernel", r.kernel},
                       {"target", r.target},
                       {"dtype", r.dtype},
                       {"published_ms", num(r.published_ms)},
                       {"modelled_ms", r.modelled_ms},
                       {"ratio", num(r.ratio)},
                       {"te_utilization", r.modelled_te_utilization},
                       {"engines", r.modelled_busy}});
      std::cout << arr.dump(1) << "\n";
    } else {
      std::cout << "[4096,8192] @ [8192,8192], NKI matmul tutorial kernels; published: "
                   "trn1 latencies (bf16), trn2 profiler engine activity\n"
                << calibration_table(rows);
    }
    exit_code = kExitOk;
  });
}

}  // namespace ncore::cli
