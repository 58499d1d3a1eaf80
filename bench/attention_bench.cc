// Flash attention forward on the CPU path vs a materialised Eigen fp32
// attention, at Llama-3-8B attention shapes: B = 1, Hq = 32, Hkv = 8, D = 128,
// S = Sq = Skv in {2048, 4096, 8192}, causal and not, 1 and 2 threads.
//
//   ncore      flash_attention on bf16 Q/K/V (fp32 softmax state, bf16 P),
//              f32 O, the SIMD CPU reference, SPMD instances on threads.
//   eigen      per head: S = (Q scale) K^T [S, S] fp32 materialised, the
//              causal part set to -inf, a row softmax (max, exp, sum, scale),
//              O = P V; heads dealt round-robin to the threads. Eigen 3.4's
//              own GEMM and vectorised exp. This TU is built with -O3
//              -march=native (bench/CMakeLists.txt) so Eigen uses AVX-512
//              FMA; ncore's SIMD code is the dispatched ncore::cpu library.
//
// Counters: GFLOP/s of the useful work, 4 S Skv D per head without the mask
// and the visible (query, key) pairs with it (both implementations are
// credited the same FLOPs; the materialised one computes all pairs). Each
// run takes up to seconds, so one iteration per repetition:
//   attention_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//   attention_bench --benchmark_filter='/2048/'
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <ncore/host.h>
#include <ncore/kernels/attention.h>

namespace {

using ncore::DType;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kHq = 32, kHkv = 8, kD = 128;  // Llama-3-8B attention

double useful_flops(int64_t s, bool causal) {
  const double pairs = causal ? double(s) * double(s + 1) / 2.0 : double(s) * double(s);
  return 4.0 * double(kHq) * pairs * double(kD);
}

// Q [Hq, S, D], K and V [Hkv, S, D], U(-1, 1), fp32 and bf16.
struct Inputs {
  std::vector<float> q, k, v;
  std::vector<uint16_t> qb, kb, vb;
  explicit Inputs(int64_t s) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    auto fill = [&](std::vector<float>& x, std::vector<uint16_t>& xb, int64_t n) {
      x.resize(size_t(n));
      xb.resize(size_t(n));
      for (size_t i = 0; i < x.size(); ++i) {
        xb[i] = ncore::f32_to_bf16(u(rng));
        x[i] = ncore::bf16_to_f32(xb[i]);  // both implementations see the same values
      }
    };
    fill(q, qb, kHq * s * kD);
    fill(k, kb, kHkv * s * kD);
    fill(v, vb, kHkv * s * kD);
  }
};

const Inputs& inputs(int64_t s) {  // built once per S: 150 MB at S = 8192
  static std::map<int64_t, std::unique_ptr<Inputs>> cache;
  auto& p = cache[s];
  if (!p) p = std::make_unique<Inputs>(s);
  return *p;
}

// The CPU backend's SBUF/PSUM arenas are created (and first touched) on the
// first launch and pooled after it: a small launch keeps that out of the timing.
void warm_up_arenas(int threads) {
  std::vector<uint16_t> x(128 * kD);
  std::vector<float> y(128 * kD);
  std::vector<ncore::HostTensor> io = {{"Q", x.data(), DType::kBF16, {1, 1, 128, kD}},
                                       {"K", x.data(), DType::kBF16, {1, 1, 128, kD}},
                                       {"V", x.data(), DType::kBF16, {1, 1, 128, kD}},
                                       {"O", y.data(), DType::kF32, {1, 1, 128, kD}, ncore::HbmKind::kOutput}};
  ncore::run_cpu(io, [](auto& nc, auto& t) { ncore::flash_attention(nc, t[3], t[0], t[1], t[2]); },
                 {.threads = threads});
}

void BM_Ncore(benchmark::State& state) {
  const int64_t s = state.range(0);
  const bool causal = state.range(1) != 0;
  const int threads = int(state.range(2));
  const Inputs& in = inputs(s);
  std::vector<float> o(size_t(kHq * s * kD));
  std::vector<ncore::HostTensor> io = {
      {"Q", const_cast<uint16_t*>(in.qb.data()), DType::kBF16, {1, kHq, s, kD}},
      {"K", const_cast<uint16_t*>(in.kb.data()), DType::kBF16, {1, kHkv, s, kD}},
      {"V", const_cast<uint16_t*>(in.vb.data()), DType::kBF16, {1, kHkv, s, kD}},
      {"O", o.data(), DType::kF32, {1, kHq, s, kD}, ncore::HbmKind::kOutput}};
  warm_up_arenas(threads);
  for (auto _ : state) {
    ncore::run_cpu(io, [&](auto& nc, auto& t) {
      ncore::flash_attention(nc, t[3], t[0], t[1], t[2], {.causal = causal});
    }, {.threads = threads});
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(useful_flops(s, causal) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel("bf16 in, f32 out");
}

// One head of the materialised attention: sc is the [S, S] scratch.
void eigen_head(const float* q, const float* k, const float* v, float* o, int64_t s, bool causal,
                MatF& sc) {
  const float scale = 1.0f / std::sqrt(float(kD));
  const Eigen::Map<const MatF> Q(q, s, kD), K(k, s, kD), V(v, s, kD);
  Eigen::Map<MatF> O(o, s, kD);
  sc.noalias() = (Q * scale) * K.transpose();
  if (causal)
    for (int64_t i = 0; i + 1 < s; ++i) sc.row(i).tail(s - i - 1).setConstant(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < s; ++i) {
    auto r = sc.row(i);
    r = (r.array() - r.maxCoeff()).exp();
    r /= r.sum();
  }
  O.noalias() = sc * V;
}

void BM_EigenMaterialised(benchmark::State& state) {
  const int64_t s = state.range(0);
  const bool causal = state.range(1) != 0;
  const int threads = int(state.range(2));
  const Inputs& in = inputs(s);
  std::vector<float> o(size_t(kHq * s * kD));
  std::vector<MatF> scratch(size_t(threads), MatF::Zero(s, s));  // touched: no page faults timed
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int64_t h = t; h < kHq; h += threads)
          eigen_head(in.q.data() + h * s * kD, in.k.data() + h / (kHq / kHkv) * s * kD,
                     in.v.data() + h / (kHq / kHkv) * s * kD, o.data() + h * s * kD, s, causal,
                     scratch[size_t(t)]);
      });
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(useful_flops(s, causal) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel("fp32");
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"S", "causal", "threads"});
  for (int64_t s : {2048, 4096, 8192})
    for (int64_t causal : {0, 1})
      for (int64_t threads : {1, 2}) b->Args({s, causal, threads});
  b->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_Ncore)->Apply(shapes);
BENCHMARK(BM_EigenMaterialised)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
