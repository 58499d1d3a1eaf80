// The cost model: how long a Program would run on its target, which engine is
// the bottleneck, and why — deterministically and without hardware.
//
//   CostReport r = model(program);            // the target's default CostParams
//   r.latency_ns, r.busy_fraction["tensor"], r.te_utilization, r.critical_path
//
// Execution model (docs/cost-model.md):
// - Tensor, Vector, Scalar and GpSimd are in-order queues, in program order.
//   An instruction starts when its engine is free and its dependencies
//   (Program::deps) have finished, plus a semaphore cost when a dependency ran
//   on another engine or DMA queue. Its duration is its formula (instr_cost.h)
//   plus, on Vector/Scalar, the static overhead of depending on the
//   instruction just before it on the same engine.
// - A DMA goes to its queue (Instr::queue), in order within the queue: it is
//   triggered when the queue's previous DMA has finished and its dependencies
//   have, moves data dma_fixed_ns later, and splits into one transfer per DMA
//   engine it touches (8 partitions each); each transfer takes the first idle
//   time of its engine that holds it, stretched when concurrent transfers
//   exhaust the core's HBM bandwidth (dma_fabric.h). It ends with its last
//   transfer.
// Everything is computed in one pass over the program in order (every
// dependency points backwards), so the same program always gives the same
// numbers.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <ncore/isa/cost/dma_fabric.h>
#include <ncore/isa/cost/instr_cost.h>
#include <ncore/isa/cost/params.h>
#include <ncore/isa/emit/program.h>
#include <ncore/isa/error.h>

namespace ncore {

// Where an instruction ran: a compute engine, or a DMA queue.
struct TimelineTrack {
  static constexpr int kComputeEngines = 4;  // tensor, vector, scalar, gpsimd
  static constexpr int kDmaBase = kComputeEngines;
  static int of(const Instr& in) {
    return in.engine == Engine::kDma ? kDmaBase + in.queue : int(in.engine);
  }
  static bool is_dma(int track) { return track >= kDmaBase; }
};

struct InstrTiming {
  double start_ns = 0;  // engine: starts executing; DMA: triggered
  double end_ns = 0;
  double data_start_ns = 0;  // DMA: first transfer starts moving data; else start_ns
  int track = 0;             // TimelineTrack::of
};

struct DmaQueueStats {
  int queue = 0;
  size_t instrs = 0;
  double busy_ns = 0;  // sum of its DMAs' [start, end]: a queue runs one at a time
  double bytes = 0;    // bytes moved (wider side of a cast)
};

struct CostReport {
  TargetId target = TargetId::kTrn2;
  double latency_ns = 0;

  // Busy time and fraction of latency per engine: "tensor", "vector",
  // "scalar", "gpsimd" (sum of instruction durations) and "dma" (time during
  // which at least one DMA moves data).
  std::map<std::string, double> busy_ns;
  std::map<std::string, double> busy_fraction;
  std::array<double, 16> dma_engine_busy_ns{};  // per DMA engine: its transfers
  std::vector<DmaQueueStats> dma_queues;        // queues used, ascending
  std::array<size_t, kNumEngines> instrs{};     // per Engine

  // Tensor Engine utilisation: achieved matmul FLOPs over latency x the dense
  // peak for the inputs' dtype (16-bit peak for <= 16-bit, fp32 peak for fp32).
  double matmul_flops = 0;
  double te_utilization = 0;
  // Memory bandwidth utilisation: HBM bytes moved over latency x the core's
  // HBM bandwidth.
  double hbm_bytes = 0;
  double mbu = 0;

  // From the first instruction to the last-finishing one: each step is the
  // predecessor (dependency, same engine or queue, or the transfer it waited
  // behind on a DMA engine) that finished last.
  std::vector<uint32_t> critical_path;
  std::vector<InstrTiming> timeline;  // per instruction, program order

  double fraction(const std::string& engine) const {
    auto it = busy_fraction.find(engine);
    return it == busy_fraction.end() ? 0.0 : it->second;
  }
};

namespace cost {

inline void check_params(const CostParams& c) {
  auto positive = [](const char* name, double v) {
    if (!(v > 0) || !std::isfinite(v))
      throw Error("cost model", name, cat("must be positive and finite, got ", v));
  };
  positive("tensor_ghz", c.tensor_ghz);
  positive("vector_ghz", c.vector_ghz);
  positive("scalar_ghz", c.scalar_ghz);
  positive("gpsimd_ghz", c.gpsimd_ghz);
  positive("dma_bytes_per_ns", c.dma_bytes_per_ns);
  positive("tensor_tflops_16bit", c.tensor_tflops_16bit);
  positive("tensor_tflops_fp32", c.tensor_tflops_fp32);
  positive("dma_transpose_efficiency", c.dma_transpose_efficiency);
  positive("dma_transpose_sbuf_efficiency", c.dma_transpose_sbuf_efficiency);
  if (c.dma_engines < 1 || c.dma_engines > 16)
    throw Error("cost model", "dma_engines", cat("must be in 1..16, got ", c.dma_engines));
  if (c.partitions_per_dma_engine < 1)
    throw Error("cost model", "partitions_per_dma_engine",
                cat("must be >= 1, got ", c.partitions_per_dma_engine));
  for (double v : {c.dma_fixed_ns, c.dma_descriptor_ns, c.hbm_bytes_per_ns, c.hbm_bucket_ns})
    if (!(v >= 0) || !std::isfinite(v))
      throw Error("cost model", "DMA/HBM parameters", cat("must be >= 0 and finite, got ", v));
}

// The Program's own tables, checked so that a hand-made or loaded program
// cannot send the model out of bounds.
inline void check_program(const Program& p) {
  const size_t n = p.instrs.size();
  if (p.dep_begin.size() != n + 1 || p.dep_begin[0] != 0 || p.dep_begin[n] != p.dep_ids.size())
    throw Error("cost model", "dependency table",
                cat("dep_begin must have ", n + 1, " entries from 0 to ", p.dep_ids.size()));
  for (size_t i = 0; i < n; ++i) {
    if (p.dep_begin[i] > p.dep_begin[i + 1])
      throw Error("cost model", "dependency table", cat("dep_begin decreases at ", i));
    for (uint32_t d : p.deps(i))
      if (d >= i)
        throw Error("cost model", "dependency table",
                    cat("instruction ", i, " waits for ", d, ", which is not earlier"));
    const Instr& in = p.instrs[i];
    if (int(in.engine) >= kNumEngines || int(in.op) >= kNumOpcodes)
      throw Error("cost model", cat("instruction ", i), "has an unknown engine or opcode");
    const bool dma_op = in.op == Opcode::kDma || in.op == Opcode::kDmaTranspose;
    if (dma_op != (in.engine == Engine::kDma))
      throw Error(
          "cost model", cat("instruction ", i),
          cat(opcode_name(in.op), " cannot run on the ", engine_name(in.engine), " engine"));
  }
}

inline double matmul_flops(const Instr& in) {
  const Operand &st = in.opnd[1], &mv = in.opnd[2];
  return 2.0 * double(mv.np) * double(st.free_size()) * double(mv.free_size());
}

}  // namespace cost

inline CostReport model(const Program& p, const CostParams& c) {
  cost::check_params(c);
  cost::check_program(p);
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  const size_t n = p.instrs.size();
  CostReport r;
  r.target = p.target;
  r.timeline.resize(n);
  std::vector<uint32_t> pred(n, kNone);  // the critical predecessor of each instruction

  // Per track: when it is free again and its last instruction.
  constexpr int kTracks = TimelineTrack::kDmaBase + 256;
  std::array<double, kTracks> free_at{};
  std::array<uint32_t, kTracks> last{};
  last.fill(kNone);
  cost::DmaFabric fabric(c);
  std::array<double, 4> busy{};
  std::array<double, kTracks> queue_bytes{};
  std::array<size_t, kTracks> queue_instrs{};
  std::array<double, kTracks> queue_busy{};
  double te_peak_ns = 0;  // time the matmuls would take at the dense peak
  std::vector<std::pair<double, double>> dma_spans;
  std::vector<cost::DmaFabric::Transfer> xfers;

  for (size_t i = 0; i < n; ++i) {
    const Instr& in = p.instrs[i];
    const int track = TimelineTrack::of(in);
    const bool dma = TimelineTrack::is_dma(track);
    const double ghz = cost::engine_ghz(c, in.engine);
    // A semaphore from another track costs the consumer's cycles; a DMA's
    // trigger latency is in dma_fixed_ns.
    const double sem_ns = dma ? 0.0 : c.semaphore_cycles / ghz;
    double ready = free_at[size_t(track)];
    uint32_t why = last[size_t(track)];
    bool after_prev = false;  // depends on the previous instruction of its engine
    for (uint32_t d : p.deps(i)) {
      const InstrTiming& dt = r.timeline[d];
      const double t = dt.end_ns + (dt.track == track ? 0.0 : sem_ns);
      if (t > ready || (t == ready && why == kNone)) {
        ready = t;
        why = d;
      }
      after_prev |= d == last[size_t(track)];
    }
    InstrTiming& ti = r.timeline[i];
    ti.track = track;
    ti.start_ns = ready;
    if (!dma) {
      double cycles = cost::compute_cycles(c, in);
      if (after_prev && cost::pays_static_overheads(in.engine)) cycles += c.dependent_cycles;
      ti.data_start_ns = ready;
      ti.end_ns = ready + cycles / ghz;
      busy[size_t(track)] += ti.end_ns - ti.start_ns;
      if (in.op == Opcode::kMatmul) {
        const double flops = cost::matmul_flops(in);
        const bool fp32 = in.opnd[1].dtype == DType::kF32 || in.opnd[2].dtype == DType::kF32;
        r.matmul_flops += flops;
        te_peak_ns += flops / ((fp32 ? c.tensor_tflops_fp32 : c.tensor_tflops_16bit) * 1e3);
      }
    } else {
      const cost::DmaShape s = cost::dma_shape(c, in);
      xfers.clear();
      for (int e = 0; e < c.dma_engines; ++e)
        if (const int64_t rows = cost::rows_on_engine(c, s, e))
          xfers.push_back({e, double(rows) * s.row_ns, double(rows * s.hbm_row_bytes)});
      const auto pl = fabric.place(xfers, ready + c.dma_fixed_ns, uint32_t(i));
      ti.data_start_ns = pl.first_start;
      ti.end_ns = pl.end;
      // The transfer that finished last waited behind another DMA's transfer:
      // that DMA, not the trigger, is what held this one up.
      if (pl.blocker != cost::DmaFabric::kNobody) why = pl.blocker;
      dma_spans.emplace_back(ti.data_start_ns, ti.end_ns);
      const double bytes = double(s.rows * s.row_bytes);
      queue_bytes[size_t(track)] += bytes;
      queue_busy[size_t(track)] += ti.end_ns - ti.start_ns;
      ++queue_instrs[size_t(track)];
      r.hbm_bytes += double(s.rows * s.hbm_row_bytes);
    }
    pred[i] = why;
    free_at[size_t(track)] = ti.end_ns;
    last[size_t(track)] = uint32_t(i);
    ++r.instrs[size_t(in.engine)];
  }

  // Latency and the last-finishing instruction.
  uint32_t tail = kNone;
  for (size_t i = 0; i < n; ++i)
    if (tail == kNone || r.timeline[i].end_ns > r.latency_ns) {
      r.latency_ns = r.timeline[i].end_ns;
      tail = uint32_t(i);
    }
  for (uint32_t i = tail; i != kNone; i = pred[i]) r.critical_path.push_back(i);
  std::reverse(r.critical_path.begin(), r.critical_path.end());

  // Busy: compute engines sum their instructions; DMA is the union of the
  // spans during which a DMA moves data.
  std::sort(dma_spans.begin(), dma_spans.end());
  double dma_busy = 0, cur_lo = 0, cur_hi = -1;
  for (const auto& [lo, hi] : dma_spans) {
    if (lo > cur_hi) {
      if (cur_hi > cur_lo) dma_busy += cur_hi - cur_lo;
      cur_lo = lo;
      cur_hi = hi;
    } else {
      cur_hi = std::max(cur_hi, hi);
    }
  }
  if (cur_hi > cur_lo) dma_busy += cur_hi - cur_lo;
  const double lat = r.latency_ns;
  auto frac = [&](double b) { return lat > 0 ? b / lat : 0.0; };
  for (int e = 0; e < TimelineTrack::kComputeEngines; ++e) {
    const std::string name(engine_name(Engine(e)));
    r.busy_ns[name] = busy[size_t(e)];
    r.busy_fraction[name] = frac(busy[size_t(e)]);
  }
  r.busy_ns["dma"] = dma_busy;
  r.busy_fraction["dma"] = frac(dma_busy);
  for (int e = 0; e < c.dma_engines; ++e) r.dma_engine_busy_ns[size_t(e)] = fabric.busy_ns(e);
  for (int t = TimelineTrack::kDmaBase; t < kTracks; ++t)
    if (queue_instrs[size_t(t)])
      r.dma_queues.push_back({t - TimelineTrack::kDmaBase, queue_instrs[size_t(t)],
                              queue_busy[size_t(t)], queue_bytes[size_t(t)]});
  r.te_utilization = frac(te_peak_ns);
  r.mbu = lat > 0 && c.hbm_bytes_per_ns > 0 ? r.hbm_bytes / (lat * c.hbm_bytes_per_ns) : 0.0;
  return r;
}

inline CostReport model(const Program& p) {
  return model(p, CostParams::defaults(p.target_info()));
}

}  // namespace ncore
