// The verbs that take a shape rather than files — check, asm, bench and
// profile — registered one way for every kernel: the same options (the
// kernel's shape, --target worded per verb, --seed, --threads, --json, --trace),
// the same output and exit codes. A kernel describes itself in a
// ShapeVerbs<Shape>; `run` (files in, files out) stays with each kernel.
#pragma once

#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ncore/isa/emit/listing.h>

#include "common.h"

namespace ncore::cli {

template <class Shape>
struct ShapeVerbs {
  std::string name;  // the subcommand: "gemm", "attention", ...
  std::string what;  // in help texts: "GEMM", "attention", ...
  std::function<void(CLI::App*, Shape&)> add_shape;  // the shape's options, dtype included
  std::function<Program(const Target&, const Shape&)> program;  // the device program
  std::function<int(const Shape&, const std::vector<std::string>& paths, uint64_t seed)> check;
  // bench on the CPU: the median ms of runs on random inputs, and the rate of
  // that time, named by rate_key (JSON) and rate_unit (text).
  std::function<double(const Shape&, int threads)> cpu_ms;
  std::function<double(const Shape&, double ms)> rate;
  std::string rate_key, rate_unit;
  std::function<nlohmann::json(const Shape&)> json;  // the shape's fields, for --json
  std::function<std::string(const Shape&)> label;    // the shape, as bench prints it
};

template <class Shape>
void register_shape_verbs(const Commands& cmds, int& exit_code, const ShapeVerbs<Shape>& k) {
  auto device_program = [k](const std::string& target, const Shape& s) {
    return k.program(*find_target(target), s);
  };

  struct CheckArgs {
    Shape s;
    std::string target = "trn2";
    uint64_t seed = 1;
  };
  auto ca = std::make_shared<CheckArgs>();
  CLI::App* check = cmds.check->add_subcommand(k.name, "random " + k.what + ", every path vs float64 golden");
  k.add_shape(check, ca->s);
  add_target(check, ca->target, TargetUse::kCheck);
  check->add_option("--seed", ca->seed, "input seed");
  check->callback([ca, k, &exit_code] { exit_code = k.check(ca->s, check_paths(ca->target), ca->seed); });

  struct DeviceArgs {
    Shape s;
    std::string target = "trn2", trace;
  };
  auto aa = std::make_shared<DeviceArgs>();
  CLI::App* asm_ = cmds.asm_->add_subcommand(k.name, "print the device program listing");
  k.add_shape(asm_, aa->s);
  add_target(asm_, aa->target, TargetUse::kDevice);
  asm_->callback([aa, device_program, &exit_code] {
    std::cout << listing(device_program(aa->target, aa->s));
    exit_code = kExitOk;
  });

  struct BenchArgs {
    Shape s;
    std::string target = "cpu";
    int threads = 1;
    bool json = false;
  };
  auto ba = std::make_shared<BenchArgs>();
  CLI::App* bench = cmds.bench->add_subcommand(
      k.name, "CPU " + k.what + " throughput (median of runs), or the modelled device figures");
  k.add_shape(bench, ba->s);
  add_target(bench, ba->target, TargetUse::kBench);
  bench->add_option("--threads", ba->threads, "SPMD program instances (threads), cpu only")
      ->check(CLI::Range(1, 256));
  bench->add_flag("--json", ba->json, "print one JSON object");
  bench->callback([ba, k, device_program, &exit_code] {
    const Shape& s = ba->s;
    if (ba->target != "cpu") {
      exit_code = bench_device(k.name, device_program(ba->target, s), k.json(s), ba->json);
      return;
    }
    const double ms = k.cpu_ms(s, ba->threads), rate = k.rate(s, ms);
    if (ba->json) {
      nlohmann::json j = k.json(s);
      j.update({{"kernel", k.name}, {"target", "cpu"}, {"threads", ba->threads},
                {"median_ms", ms}, {k.rate_key, rate}});
      std::cout << j.dump() << "\n";
    } else {
      std::printf("%s %s cpu threads=%d: median %.3f ms, %.2f %s\n", k.name.c_str(), k.label(s).c_str(),
                  ba->threads, ms, rate, k.rate_unit.c_str());
    }
    exit_code = kExitOk;
  });

  auto pa = std::make_shared<DeviceArgs>();
  CLI::App* profile = cmds.profile->add_subcommand(k.name, "model the program, write a trace");
  k.add_shape(profile, pa->s);
  add_target(profile, pa->target, TargetUse::kDevice);
  profile->add_option("--trace", pa->trace, "Chrome trace-event JSON to write")->required();
  profile->callback([pa, k, device_program, &exit_code] {
    exit_code = profile_device(k.name, device_program(pa->target, pa->s), pa->trace);
  });
}

}  // namespace ncore::cli
