// CPU LayerNorm / RMSNorm next to a copy of the same bytes, in one run.
//
// A norm reads X once and writes Y once, so its floor is a copy: memcpy(Y, X)
// of the same byte counts. Each iteration times the copy and then the kernel
// (interleaved, so drift on a shared machine hits both alike); the counters
// are the medians: GB/s = (X bytes + Y bytes) / time for each, and ratio =
// kernel GB/s / copy GB/s (the target is >= 0.9). Shapes [4096, 4096] and
// [8192, 8192] (Llama-class hidden sizes, 4K / 8K tokens), f32 and bf16 (Y in
// X's dtype), 1 and 2 threads (the copy splits the rows the same way).
// A third timing per iteration is a hand-fused norm loop (norm_fused.h): what
// a norm with a copy's memory traffic and no instruction boundaries reaches
// here (fused_ratio = its GB/s / the copy's), the yardstick for `ratio`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <hwy/aligned_allocator.h>

#include "norm_fused.h"
#include <ncore/host.h>
#include <ncore/kernels/norm.h>

namespace ncore {
namespace {

struct Buffers {
  std::vector<uint8_t> x, gamma, beta;
  hwy::AlignedFreeUniquePtr<uint8_t[]> y;  // rows 64 B aligned for the fused loop's streaming stores
};

Buffers make(int64_t rows, int64_t d, DType dt) {
  std::mt19937 rng(uint32_t(rows * 131 + d));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t es = dtype_size(dt);
  Buffers b;
  b.x.resize(size_t(rows * d * es));
  b.y = hwy::AllocateAligned<uint8_t>(b.x.size());
  b.gamma.resize(size_t(d * es));
  b.beta.resize(size_t(d * es));
  for (int64_t i = 0; i < rows * d; ++i) encode(dt, u(rng), b.x.data() + i * es);
  for (int64_t i = 0; i < d; ++i) {
    encode(dt, 1.0f + 0.1f * u(rng), b.gamma.data() + i * es);
    encode(dt, 0.1f * u(rng), b.beta.data() + i * es);
  }
  std::memset(b.y.get(), 0, b.x.size());  // page Y in before timing
  return b;
}

// f(r0, r1) on rows split over `threads` threads, as the kernel's SPMD grid splits them.
template <class F>
void split_rows(int64_t rows, int threads, F&& f) {
  auto part = [&](int t) { f(rows * t / threads, rows * (t + 1) / threads); };
  if (threads == 1) return part(0);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) ts.emplace_back(part, t);
  for (auto& t : ts) t.join();
}

// memcpy(Y, X).
void copy(Buffers& b, int64_t rows, int threads) {
  const size_t row_bytes = b.x.size() / size_t(rows);
  split_rows(rows, threads, [&](int64_t r0, int64_t r1) {
    std::memcpy(b.y.get() + r0 * row_bytes, b.x.data() + r0 * row_bytes, size_t(r1 - r0) * row_bytes);
  });
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// range: kind (0 layernorm, 1 rmsnorm), rows, D, bf16, threads
void BM_Norm(benchmark::State& state) {
  const bool rms = state.range(0) == 1;
  const int64_t rows = state.range(1), d = state.range(2);
  const DType dt = state.range(3) ? DType::kBF16 : DType::kF32;
  const int threads = int(state.range(4));
  Buffers b = make(rows, d, dt);
  const std::vector<HostTensor> io = {{"X", b.x.data(), dt, {rows, d}},
                                      {"gamma", b.gamma.data(), dt, {d}},
                                      {"beta", b.beta.data(), dt, {d}},
                                      {"Y", b.y.get(), dt, {rows, d}, HbmKind::kOutput}};
  auto run = [&] {
    if (rms) run_cpu(io, [](auto& nc, auto& t) { rmsnorm(nc, t[3], t[0], t[1]); }, {.threads = threads});
    else run_cpu(io, [](auto& nc, auto& t) { layernorm(nc, t[3], t[0], t[1], t[2]); }, {.threads = threads});
  };
  const bench::FusedNorm fused{rms, dt == DType::kBF16, d, b.gamma.data(), b.beta.data()};
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  // The yardstick must compute the same norm: its output against ncore's
  // (a loose bound: its one-pass fp32 variance is not the reference's).
  {
    run();
    const std::vector<uint8_t> want(b.y.get(), b.y.get() + b.x.size());
    fused_norm(fused, b.x.data(), b.y.get(), 0, rows);
    const int64_t es = dtype_size(dt);
    double worst = 0;
    for (int64_t i = 0; i < rows * d; i += 97)  // a sample across every row
      worst = std::max(worst, double(std::abs(decode(dt, b.y.get() + i * es) - decode(dt, want.data() + i * es))));
    if (!(worst < 0.05)) {
      state.SkipWithError(cat("the fused yardstick disagrees with ncore by ", worst).c_str());
      return;
    }
  }
  std::vector<double> t_norm, t_copy, t_fused;
  for (auto _ : state) {
    const auto t0 = clock::now();
    copy(b, rows, threads);
    const auto t1 = clock::now();
    run();
    const auto t2 = clock::now();
    split_rows(rows, threads, [&](int64_t r0, int64_t r1) { fused_norm(fused, b.x.data(), b.y.get(), r0, r1); });
    const auto t3 = clock::now();
    t_copy.push_back(seconds(t0, t1));
    t_norm.push_back(seconds(t1, t2));
    t_fused.push_back(seconds(t2, t3));
    state.SetIterationTime(seconds(t1, t2));
  }
  const double bytes = 2.0 * double(b.x.size());  // read X, write Y
  const double norm_gbs = bytes / median(t_norm) / 1e9, copy_gbs = bytes / median(t_copy) / 1e9;
  state.counters["median_ms"] = median(t_norm) * 1e3;
  state.counters["GB/s"] = norm_gbs;
  state.counters["copy_GB/s"] = copy_gbs;
  state.counters["ratio"] = norm_gbs / copy_gbs;
  state.counters["fused_ratio"] = bytes / median(t_fused) / 1e9 / copy_gbs;
  state.SetLabel(cat(rms ? "rmsnorm " : "layernorm ", dtype_name(dt), " threads=", threads));
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t kind : {0, 1})
    for (int64_t n : {4096, 8192})
      for (int64_t bf16 : {0, 1})
        for (int64_t threads : {1, 2}) b->Args({kind, n, n, bf16, threads});
}
BENCHMARK(BM_Norm)->ArgNames({"rms", "rows", "D", "bf16", "threads"})->Apply(Shapes)
    ->UseManualTime()->MinTime(1.0)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ncore

BENCHMARK_MAIN();
