// How fast the device path answers "how long would this run": emitting and
// modelling the [4096, 8192] @ [8192, 8192] bf16 GEMM (kernels/gemm.h) and the
// NKI tutorial's fully blocked kernel, per target. The budget is 0.5 s for
// emit + model of the GEMM. Reports the modelled device latency alongside.
#include <benchmark/benchmark.h>

#include <ncore/isa/cost/model.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/kernels/gemm.h>
#include <ncore/kernels/matmul_tutorial.h>

namespace ncore {
namespace {

constexpr int64_t kM = 4096, kN = 8192, kK = 8192;  // the NKI tutorial's benchmark shape

const Target& target_of(int64_t i) { return *kAllTargets[size_t(i)]; }

Program emit_gemm(const Target& t) {
  return emit(t, [](DeviceCore& nc) {
    auto a = nc.hbm("A", DType::kBF16, {kM, kK});
    auto b = nc.hbm("B", DType::kBF16, {kK, kN});
    auto c = nc.hbm("C", DType::kBF16, {kM, kN}, HbmKind::kOutput);
    gemm(nc, c, a, b);
  });
}

Program emit_fully_blocked(const Target& t) {
  return emit(t, [](DeviceCore& nc) {
    auto lhsT = nc.hbm("lhsT", DType::kBF16, {kK, kM});
    auto rhs = nc.hbm("rhs", DType::kBF16, {kK, kN});
    auto result = nc.hbm("result", DType::kBF16, {kM, kN}, HbmKind::kOutput);
    matmul_fully_blocked(nc, result, lhsT, rhs);
  });
}

void report(benchmark::State& state, const Program& p, const CostReport& r) {
  state.counters["instrs"] = double(p.instrs.size());
  state.counters["device_ms"] = r.latency_ns / 1e6;
  state.counters["te_util_pct"] = 100 * r.te_utilization;
  state.SetLabel(std::string(p.target_info().name));
}

// The budgeted path: emit the program, then model it.
void BM_EmitAndModelGemm(benchmark::State& state) {
  const Target& t = target_of(state.range(0));
  Program p;
  CostReport r;
  for (auto _ : state) {
    p = emit_gemm(t);
    r = model(p);
    benchmark::DoNotOptimize(r);  // the whole report: "+m,r" on a lone double clobbers it (GCC 12)
  }
  report(state, p, r);
}
BENCHMARK(BM_EmitAndModelGemm)->DenseRange(0, 2)->ArgName("target")->Unit(benchmark::kMillisecond);

void BM_ModelGemm(benchmark::State& state) {
  const Program p = emit_gemm(target_of(state.range(0)));
  CostReport r;
  for (auto _ : state) {
    r = model(p);
    benchmark::DoNotOptimize(r);  // the whole report: "+m,r" on a lone double clobbers it (GCC 12)
  }
  report(state, p, r);
}
BENCHMARK(BM_ModelGemm)->DenseRange(0, 2)->ArgName("target")->Unit(benchmark::kMillisecond);

void BM_EmitAndModelTutorialFullyBlocked(benchmark::State& state) {
  const Target& t = target_of(state.range(0));
  Program p;
  CostReport r;
  for (auto _ : state) {
    p = emit_fully_blocked(t);
    r = model(p);
    benchmark::DoNotOptimize(r);  // the whole report: "+m,r" on a lone double clobbers it (GCC 12)
  }
  report(state, p, r);
}
BENCHMARK(BM_EmitAndModelTutorialFullyBlocked)
    ->DenseRange(0, 2)
    ->ArgName("target")
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ncore

BENCHMARK_MAIN();
