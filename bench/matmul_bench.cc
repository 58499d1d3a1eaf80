// The CPU matmul instruction alone, on the CPU backend's real arenas (SBUF and
// PSUM with their ~224 KiB partition pitch): dst[M, N] (+)= st[K, M]^T mv[K, N].
// Reports FLOP/s (2 K M N per call); single thread.
//
//   matmul_bench --benchmark_filter=F32 --benchmark_repetitions=5
//                --benchmark_report_aggregates_only=true
//
// The full instruction is [K=128, M=128] x [128, 512]; M = 1 (a row), N = 1
// (a matrix-vector product) and K = 1, M = 7, N = 33 (all tails) show the
// edges. Each benchmark re-runs one instruction on the same tiles, so they
// are cache-warm (L2), as when the GEMM kernel reuses a moving tile across
// stationary tiles. Labels name the kernel: "avx512bf16" or a Highway target.
// Peak on the Zen 4 this was tuned on (3.7 GHz): fp32 FMA ~117 GFLOP/s,
// vdpbf16ps ~234 GFLOP/s per core.

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>

#include <hwy/targets.h>

#include <ncore/isa/numerics.h>
#include <ncore/reference/cpu_backend.h>
#include <ncore/reference/cpu_ops.h>

namespace {

using ncore::DType;
using ncore::Space;
using ncore::cpu::View;

// Byte addresses in each partition: the stationary row (<= 512 B), the moving
// row (<= 2 KiB) and the dst bank (PSUM bank 0), on separate cache lines.
constexpr int64_t kStationaryAddr = 0;
constexpr int64_t kMovingAddr = 4096;
constexpr int64_t kDstAddr = 0;

struct Instruction {
  ncore::CpuBackend backend{ncore::kTrn2};
  View dst, st, mv;

  Instruction(int K, int M, int N, DType st_type, DType mv_type) {
    const int64_t sbuf_pitch = ncore::kTrn2.sbuf_partition_bytes + ncore::CpuBackend::kPitchPad;
    const int64_t psum_pitch = ncore::kTrn2.psum_partition_bytes() + ncore::CpuBackend::kPitchPad;
    st = {backend.at(Space::kSbuf, 0, kStationaryAddr), sbuf_pitch, K, st_type,
          ncore::AccessPattern::dense({M})};
    mv = {backend.at(Space::kSbuf, 0, kMovingAddr), sbuf_pitch, K, mv_type,
          ncore::AccessPattern::dense({N})};
    dst = {backend.at(Space::kPsum, 0, kDstAddr), psum_pitch, M, DType::kF32,
           ncore::AccessPattern::dense({N})};
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (const View* v : {&st, &mv})
      for (int p = 0; p < K; ++p)
        for (int64_t j = 0; j < v->ap.size(); ++j)
          ncore::encode(v->dtype, u(rng), v->row(p) + j * ncore::dtype_size(v->dtype));
    for (int p = 0; p < M; ++p) std::memset(dst.row(p), 0, size_t(N) * sizeof(float));
  }
};

// The kernel the instruction runs on: "avx512bf16" or a Highway target.
std::string path_name(DType st_type, DType mv_type) {
  auto bf16_like = [](DType t) {
    return t == DType::kBF16 || t == DType::kFP8E4M3 || t == DType::kFP8E5M2;
  };
  if (bf16_like(st_type) && bf16_like(mv_type)) return ncore::cpu::bf16_path_name();
  return hwy::TargetName(hwy::SupportedAndGeneratedTargets()[0]);
}

void run(benchmark::State& state, DType st_type, DType mv_type) {
  const int K = int(state.range(0)), M = int(state.range(1)), N = int(state.range(2));
  Instruction in(K, M, N, st_type, mv_type);
  for (auto _ : state) {
    ncore::cpu::matmul(in.dst, in.st, in.mv, /*accumulate=*/false);
    benchmark::DoNotOptimize(in.dst.base);
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * K * M * N, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(path_name(st_type, mv_type));
}

// Runs with Highway restricted to `target` (and the bf16 path per `path`),
// restoring the defaults after.
void run_on(benchmark::State& state, DType st_type, DType mv_type, int64_t target,
            ncore::cpu::Bf16Path path) {
  if (!(hwy::SupportedTargets() & target)) {
    state.SkipWithError("target not supported on this CPU");
    return;
  }
  hwy::SetSupportedTargetsForTest(target);
  ncore::cpu::set_bf16_path(path);
  run(state, st_type, mv_type);
  ncore::cpu::set_bf16_path(ncore::cpu::Bf16Path::kAuto);
  hwy::SetSupportedTargetsForTest(0);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "M", "N"});
  b->Args({128, 128, 512});  // the full instruction
  b->Args({128, 128, 128});
  b->Args({128, 1, 512});    // M = 1
  b->Args({128, 128, 1});    // N = 1: matrix-vector
  b->Args({1, 7, 33});       // every tail
  b->Args({127, 7, 33});
  b->Args({128, 100, 300});  // non-multiples of the blocking
}

void BM_F32(benchmark::State& s) { run(s, DType::kF32, DType::kF32); }
void BM_BF16(benchmark::State& s) { run(s, DType::kBF16, DType::kBF16); }
void BM_F16(benchmark::State& s) { run(s, DType::kF16, DType::kF16); }
void BM_FP8E4M3(benchmark::State& s) { run(s, DType::kFP8E4M3, DType::kFP8E4M3); }
void BM_BF16xFP8E5M2(benchmark::State& s) { run(s, DType::kBF16, DType::kFP8E5M2); }
void BM_BF16_Portable(benchmark::State& s) {
  ncore::cpu::set_bf16_path(ncore::cpu::Bf16Path::kPortable);
  run(s, DType::kBF16, DType::kBF16);
  ncore::cpu::set_bf16_path(ncore::cpu::Bf16Path::kAuto);
}
void BM_F32_AVX2(benchmark::State& s) {
  run_on(s, DType::kF32, DType::kF32, HWY_AVX2, ncore::cpu::Bf16Path::kAuto);
}
void BM_BF16_AVX2(benchmark::State& s) {
  run_on(s, DType::kBF16, DType::kBF16, HWY_AVX2, ncore::cpu::Bf16Path::kAuto);
}

BENCHMARK(BM_F32)->Apply(Shapes);
BENCHMARK(BM_BF16)->Apply(Shapes);
BENCHMARK(BM_BF16_Portable)->Apply(Shapes);
BENCHMARK(BM_F16)->Apply(Shapes);
BENCHMARK(BM_FP8E4M3)->Apply(Shapes);
BENCHMARK(BM_BF16xFP8E5M2)->Apply(Shapes);
BENCHMARK(BM_F32_AVX2)->Apply(Shapes);
BENCHMARK(BM_BF16_AVX2)->Apply(Shapes);

}  // namespace

BENCHMARK_MAIN();
