// CPU GEMM at Llama-3-8B layer shapes: N x K of 4096x4096 (q/o proj),
// 14336x4096 (gate/up), 4096x14336 (down), at M = 1, 16, 512, 2048 tokens.
// Prints GFLOP/s; run with --benchmark_repetitions=5 for medians.
#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <tuple>

#include <ncore/host.h>
#include <ncore/kernels/gemm.h>

namespace ncore {
namespace {

// Inputs per (rows, cols, dtype), made once: the large ones are hundreds of MB.
const std::vector<uint8_t>& matrix(int64_t rows, int64_t cols, DType dt) {
  static std::map<std::tuple<int64_t, int64_t, DType>, std::vector<uint8_t>> cache;
  auto& v = cache[{rows, cols, dt}];
  if (v.empty()) {
    std::mt19937 rng(uint32_t(rows * 31 + cols));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    v.resize(size_t(rows * cols * dtype_size(dt)));
    for (int64_t i = 0; i < rows * cols; ++i) encode(dt, u(rng), v.data() + i * dtype_size(dt));
  }
  return v;
}

void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const DType dt = state.range(3) ? DType::kBF16 : DType::kF32;
  const int threads = int(state.range(4));
  auto& a = matrix(m, k, dt);
  auto& b = matrix(k, n, dt);
  std::vector<float> c(size_t(m * n));
  const std::vector<HostTensor> io = {{"A", const_cast<uint8_t*>(a.data()), dt, {m, k}},
                                      {"B", const_cast<uint8_t*>(b.data()), dt, {k, n}},
                                      {"C", c.data(), DType::kF32, {m, n}, HbmKind::kOutput}};
  for (auto _ : state)
    run_cpu(io, [](auto& nc, auto& t) { gemm(nc, t[2], t[0], t[1]); }, {.threads = threads});
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(cat(dtype_name(dt), " threads=", threads));
}

void LlamaShapes(benchmark::internal::Benchmark* b) {
  for (int64_t dt : {0, 1})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 4096}, {14336, 4096}, {4096, 14336}})
      for (int64_t m : {1, 16, 512, 2048}) b->Args({m, n, k, dt, 1});
}
BENCHMARK(BM_Gemm)->ArgNames({"M", "N", "K", "bf16", "threads"})->Apply(LlamaShapes)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ncore

BENCHMARK_MAIN();
