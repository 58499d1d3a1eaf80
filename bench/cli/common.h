// Shared pieces of the ncore CLI: exit codes, option parsing helpers, random
// inputs, host dtype conversion and robust timing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ncore/host.h>
#include <ncore/isa/numerics.h>
#include <ncore/kernels/norm_plan.h>

namespace ncore::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitCheckFailed = 1;  // a result outside its error bound
inline constexpr int kExitBadInput = 2;     // bad arguments or input files

// "cpu" or a device target name.
inline const std::vector<std::string>& target_names() {
  static const std::vector<std::string> names = {"cpu", "trn1", "inf2", "trn2"};
  return names;
}
inline const std::vector<std::string>& device_target_names() {
  static const std::vector<std::string> names = {"trn1", "inf2", "trn2"};
  return names;
}

// The --target option of each subcommand, worded and checked one way for
// every kernel: run (cpu or an interpreted device), check (a device beside
// cpu), bench (cpu measured or a device modelled), asm / profile (a device).
enum class TargetUse { kRun, kCheck, kBench, kDevice };
inline void add_target(CLI::App* app, std::string& target, TargetUse use) {
  const char* help = use == TargetUse::kRun     ? "cpu or a device target (interpreted)"
                     : use == TargetUse::kCheck ? "device target checked beside cpu (cpu: cpu only)"
                     : use == TargetUse::kBench ? "cpu (measured) or a device target (modelled)"
                                                : "device target";
  app->add_option("--target", target, help)
      ->check(CLI::IsMember(use == TargetUse::kDevice ? device_target_names() : target_names()));
}
// The paths `check` runs: the CPU, and the --target device beside it.
inline std::vector<std::string> check_paths(const std::string& target) {
  std::vector<std::string> paths = {"cpu"};
  if (target != "cpu") paths.push_back(target);
  return paths;
}

inline std::vector<float> random_uniform(int64_t n, uint64_t seed, float lo = -1.0f,
                                         float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Host buffer of `dtype` holding `src` rounded to it (RNE), and back to f32.
inline std::vector<uint8_t> encode_all(const std::vector<float>& src, DType dtype) {
  std::vector<uint8_t> out(src.size() * size_t(dtype_size(dtype)));
  for (size_t i = 0; i < src.size(); ++i) encode(dtype, src[i], out.data() + i * dtype_size(dtype));
  return out;
}
inline std::vector<float> decode_all(const std::vector<uint8_t>& src, DType dtype) {
  std::vector<float> out(src.size() / size_t(dtype_size(dtype)));
  for (size_t i = 0; i < out.size(); ++i) out[i] = decode(dtype, src.data() + i * dtype_size(dtype));
  return out;
}

// Median wall time in ms of fn() over at least `min_reps` runs (after one
// warm-up) or until `budget_s` has passed, whichever is later-bounded by 100 runs.
inline double median_ms(const std::function<void()>& fn, int min_reps = 5,
                        double budget_s = 2.0) {
  using clock = std::chrono::steady_clock;
  fn();
  std::vector<double> ms;
  const auto start = clock::now();
  while (int(ms.size()) < min_reps ||
         (std::chrono::duration<double>(clock::now() - start).count() < budget_s &&
          ms.size() < 100)) {
    const auto t0 = clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + long(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

// The table `check` prints below its title: per path, run(path) timed, then
// judge(result) -> {within its bound, the row's figures under `columns`};
// "ok" or "OUTSIDE BOUND" per row, then PASS or FAIL. Returns the exit code.
struct CheckRow {
  bool ok = false;
  std::string figures;
};
template <class Run, class Judge>
int check_table(const std::vector<std::string>& paths, const std::string& columns, Run&& run,
                Judge&& judge) {
  std::printf("  %-6s %s %10s\n", "path", columns.c_str(), "ms");
  bool ok = true;
  for (const std::string& path : paths) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto result = run(path);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const CheckRow row = judge(result);
    ok &= row.ok;
    std::printf("  %-6s %s %10.1f %s\n", path.c_str(), row.figures.c_str(), ms,
                row.ok ? "ok" : "OUTSIDE BOUND");
  }
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? kExitOk : kExitCheckFailed;
}
// The figures of a max |err| and worst err / bound row, and their header
// (the widths line up: %12 and %16 characters).
inline constexpr const char* kErrRatioColumns = "    max|err|  worst err/bound";
inline std::string err_ratio_figures(double err, double ratio) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%12.3e %16.4f", err, ratio);
  return buf;
}

// The verbs; each kernel registers its subcommand under every one of them.
struct Commands {
  CLI::App* run;
  CLI::App* check;
  CLI::App* asm_;
  CLI::App* bench;
  CLI::App* profile;
};

void register_gemm(const Commands& cmds, int& exit_code);
void register_attention(const Commands& cmds, int& exit_code);
void register_norms(const Commands& cmds, int& exit_code);

// Device-model output shared by every kernel (bench/cli/model_cmd.cc):
// `bench --target <device>` prints the modelled figures of `program` (with
// --json one object: kernel, target, the `shape` fields, latency_us, tflops,
// te_utilization, mbu, engines); `profile` writes a Chrome trace to `path`.
int bench_device(const std::string& kernel, const Program& program, const nlohmann::json& shape,
                 bool json);
int profile_device(const std::string& kernel, const Program& program, const std::string& path);
// `ncore calibrate [--json]`.
void register_calibrate(CLI::App& app, int& exit_code);
// Random GEMM on every path in `paths` ("cpu", device targets) vs the golden.
int check_gemm(int64_t m, int64_t n, int64_t k, DType dtype, const std::vector<std::string>& paths,
               uint64_t seed, bool a_transposed = false);
// Random attention (Q [B, Hq, Sq, D], K/V [B, Hkv, Skv, D]) on every path vs the golden.
int check_attention(int64_t b, int64_t hq, int64_t hkv, int64_t sq, int64_t skv, int64_t d,
                    bool causal, DType dtype, const std::vector<std::string>& paths, uint64_t seed);
// Random layernorm / rmsnorm of X [rows, D] on every path vs the golden.
int check_norm(NormKind kind, int64_t rows, int64_t d, DType dt, float eps,
               const std::vector<std::string>& paths, uint64_t seed);
int default_work();  // `ncore` with no subcommand

}  // namespace ncore::cli
