// ncore's CPU GEMM side by side with the best CPU peers, in one run:
// OpenBLAS sgemm (set OPENBLAS_CORETYPE=SkylakeX: its default Haswell kernels
// reach half the AVX-512 rate here) and oneDNN matmul in f32 and bf16, on 1 and
// 2 threads. All compute C[M,N] = A[M,K] B[K,N], row-major, fp32 output.
// bench-only: OpenBLAS and oneDNN are never dependencies of the library.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <dnnl.hpp>
#include <random>

#include <ncore/host.h>
#include <ncore/kernels/gemm.h>

namespace ncore {
namespace {

std::vector<float> random_f32(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}
std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

void set_flops(benchmark::State& state, int64_t m, int64_t n, int64_t k, const char* label) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(label);
}

// range: m, n, k, bf16, threads
void BM_Ncore(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool bf16 = state.range(3);
  const auto a32 = random_f32(m * k, 1), b32 = random_f32(k * n, 2);
  const auto a16 = to_bf16(a32), b16 = to_bf16(b32);
  std::vector<float> c(size_t(m * n));
  const DType dt = bf16 ? DType::kBF16 : DType::kF32;
  void* a = bf16 ? (void*)a16.data() : (void*)a32.data();
  void* b = bf16 ? (void*)b16.data() : (void*)b32.data();
  const std::vector<HostTensor> io = {{"A", a, dt, {m, k}}, {"B", b, dt, {k, n}},
                                      {"C", c.data(), DType::kF32, {m, n}, HbmKind::kOutput}};
  for (auto _ : state)
    run_cpu(io, [](auto& nc, auto& t) { gemm(nc, t[2], t[0], t[1]); },
            {.threads = int(state.range(4))});
  set_flops(state, m, n, k, bf16 ? "ncore bf16" : "ncore f32");
}

void BM_OpenBlasSgemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto a = random_f32(m * k, 1), b = random_f32(k * n, 2);
  std::vector<float> c(size_t(m * n));
  openblas_set_num_threads(int(state.range(4)));
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a.data(),
                int(k), b.data(), int(n), 0.0f, c.data(), int(n));
  set_flops(state, m, n, k, "openblas f32");
}

void BM_OneDnnMatmul(benchmark::State& state) {
  using namespace dnnl;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool bf16 = state.range(3);
  omp_set_num_threads(int(state.range(4)));
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const auto in_dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  memory::desc a_md({m, k}, in_dt, memory::format_tag::ab);
  memory::desc b_md({k, n}, in_dt, memory::format_tag::ab);
  memory::desc c_md({m, n}, memory::data_type::f32, memory::format_tag::ab);
  const auto a32 = random_f32(m * k, 1), b32 = random_f32(k * n, 2);
  const auto a16 = to_bf16(a32), b16 = to_bf16(b32);
  std::vector<float> c(size_t(m * n));
  memory a_mem(a_md, eng, bf16 ? (void*)a16.data() : (void*)a32.data());
  memory b_mem(b_md, eng, bf16 ? (void*)b16.data() : (void*)b32.data());
  memory c_mem(c_md, eng, c.data());
  matmul prim(matmul::primitive_desc(matmul::desc(a_md, b_md, c_md), eng));
  for (auto _ : state) {
    prim.execute(s, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    s.wait();
  }
  set_flops(state, m, n, k, bf16 ? "onednn bf16" : "onednn f32");
}

void Square2048(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2})
    for (int64_t bf16 : {0, 1}) b->Args({2048, 2048, 2048, bf16, threads});
}
void Square2048F32(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2}) b->Args({2048, 2048, 2048, 0, threads});
}

BENCHMARK(BM_Ncore)->ArgNames({"M", "N", "K", "bf16", "threads"})->Apply(Square2048)
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OpenBlasSgemm)->ArgNames({"M", "N", "K", "bf16", "threads"})->Apply(Square2048F32)
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OneDnnMatmul)->ArgNames({"M", "N", "K", "bf16", "threads"})->Apply(Square2048)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ncore

BENCHMARK_MAIN();
