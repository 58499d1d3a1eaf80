// A CostReport as text, for people: latency, engine busy time, Tensor Engine
// and HBM utilisation, and where the critical path spends its time by kernel
// source line (what `ncore bench --target` and `ncore profile` print).
#pragma once

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ncore/isa/cost/model.h>

namespace ncore {

namespace report_detail {

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace report_detail

// One critical-path entry per (source line, mnemonic): the latency it adds,
// i.e. the sum over its instructions of end minus the predecessor's end.
struct CriticalLine {
  std::string source;
  std::string mnemonic;
  size_t instrs = 0;
  double ns = 0;
};

inline std::vector<CriticalLine> critical_lines(const Program& p, const CostReport& r) {
  std::map<std::pair<std::string, std::string>, CriticalLine> by_line;
  double prev_end = 0;
  for (uint32_t i : r.critical_path) {
    if (i >= p.instrs.size() || i >= r.timeline.size()) break;
    const Instr& in = p.instrs[i];
    const std::string src = p.where(in.loc), op(opcode_name(in.op));
    CriticalLine& l = by_line[{src, op}];
    l.source = src;
    l.mnemonic = op;
    ++l.instrs;
    l.ns += r.timeline[i].end_ns - prev_end;
    prev_end = r.timeline[i].end_ns;
  }
  std::vector<CriticalLine> out;
  for (auto& [key, l] : by_line) out.push_back(std::move(l));
  std::stable_sort(out.begin(), out.end(),
                   [](const CriticalLine& a, const CriticalLine& b) { return a.ns > b.ns; });
  return out;
}

inline std::string cost_summary(const Program& p, const CostReport& r, const CostParams& c,
                                size_t max_lines = 10) {
  namespace rd = report_detail;
  const Target& t = p.target_info();
  std::string s = "; " + std::string(t.name) + " modelled latency " +
                  rd::fmt("%.3f", r.latency_ns / 1e6) + " ms, " + std::to_string(p.instrs.size()) +
                  " instructions\n";
  s += "; engine     busy %    busy ms  instructions\n";
  for (int e = 0; e < kNumEngines; ++e) {
    const std::string name(engine_name(Engine(e)));
    char line[128];
    std::snprintf(line, sizeof line, ";   %-7s %7.2f %10.3f  %zu\n", name.c_str(),
                  100.0 * r.fraction(name), r.busy_ns.count(name) ? r.busy_ns.at(name) / 1e6 : 0.0,
                  r.instrs[size_t(e)]);
    s += line;
  }
  if (r.latency_ns > 0 && c.dma_engines > 0) {
    double lo = 1e300, hi = 0;
    for (int e = 0; e < c.dma_engines; ++e) {
      lo = std::min(lo, r.dma_engine_busy_ns[size_t(e)]);
      hi = std::max(hi, r.dma_engine_busy_ns[size_t(e)]);
    }
    s += "; DMA engines busy " + rd::fmt("%.1f", 100 * lo / r.latency_ns) + "% to " +
         rd::fmt("%.1f", 100 * hi / r.latency_ns) + "% each, " +
         std::to_string(r.dma_queues.size()) + " queues used\n";
  }
  s += "; Tensor Engine utilisation " + rd::fmt("%.1f", 100 * r.te_utilization) + "% (" +
       rd::fmt("%.3g", r.matmul_flops / 1e9) + " GFLOP; dense peak " +
       rd::fmt("%.4g", c.tensor_tflops_16bit) + " TFLOPS 16-bit, " +
       rd::fmt("%.4g", c.tensor_tflops_fp32) + " fp32)\n";
  s += "; MBU " + rd::fmt("%.1f", 100 * r.mbu) + "% (" + rd::fmt("%.4g", r.hbm_bytes / 1e6) +
       " MB of HBM traffic; " + rd::fmt("%.4g", c.hbm_bytes_per_ns) + " GB/s per core)\n";
  const auto lines = critical_lines(p, r);
  s += "; critical path: " + std::to_string(r.critical_path.size()) +
       " instructions; latency added by source line:\n";
  for (size_t i = 0; i < lines.size() && i < max_lines; ++i) {
    char line[512];
    std::snprintf(line, sizeof line, ";   %6.2f%%  %10.3f ms  %7zu x %-14s %s\n",
                  r.latency_ns > 0 ? 100 * lines[i].ns / r.latency_ns : 0.0, lines[i].ns / 1e6,
                  lines[i].instrs, lines[i].mnemonic.c_str(), lines[i].source.c_str());
    s += line;
  }
  return s;
}

inline std::string cost_summary(const Program& p, const CostReport& r) {
  return cost_summary(p, r, CostParams::defaults(p.target_info()));
}

}  // namespace ncore
