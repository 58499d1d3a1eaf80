// The ncore binary: run kernels on .npy files, cross-check every path against
// the float64 golden, print device program listings, benchmark.
//   ncore                    the default work: every kernel on cpu and trn2, cross-checked
//   ncore run|check|asm|bench <kernel> ...
// Exit codes: 0 ok, 1 a result outside its error bound, 2 bad input.
#include <cstdio>
#include <exception>

#include "cli/common.h"

namespace ncore::cli {

// Every kernel, f32 and bf16, on the SIMD CPU reference and on the trn2
// device path (interpreter), each against its float64 golden: GEMM with
// tails in every dim and K spanning two K blocks; causal GQA attention with
// Sq != Skv (bottom-right mask), D = 96 and a partial Q tile; norms with
// a partial row tile and D over several bn_stats chunks and a tail.
int default_work() {
  const std::vector<std::string> paths = {"cpu", "trn2"};
  int rc = kExitOk;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    rc = std::max(rc, check_gemm(300, 700, 1100, dt, paths, 1));
    rc = std::max(rc, check_attention(1, 4, 2, 300, 700, 96, true, dt, paths, 1));
    rc = std::max(rc, check_norm(NormKind::kLayer, 300, 1000, dt, kNormDefaultEps, paths, 1));
    rc = std::max(rc, check_norm(NormKind::kRms, 300, 1000, dt, kNormDefaultEps, paths, 1));
  }
  return rc;
}

}  // namespace ncore::cli

int main(int argc, char** argv) {
  using namespace ncore::cli;
  CLI::App app{"ncore: NeuronCore kernels on a device model and a SIMD CPU reference"};
  app.require_subcommand(0, 1);
  Commands cmds{app.add_subcommand("run", "run a kernel on .npy inputs"),
                app.add_subcommand("check", "random inputs, every path vs the float64 golden"),
                app.add_subcommand("asm", "print a kernel's device program"),
                app.add_subcommand("bench", "measure throughput (cpu) or model it (device)"),
                app.add_subcommand("profile", "write a Chrome trace of the modelled program")};
  for (CLI::App* c : {cmds.run, cmds.check, cmds.asm_, cmds.bench, cmds.profile})
    c->require_subcommand(1);
  int exit_code = kExitOk;
  try {
    register_gemm(cmds, exit_code);
    register_attention(cmds, exit_code);
    register_norms(cmds, exit_code);
    register_calibrate(app, exit_code);
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) return default_work();
    return exit_code;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  } catch (const ncore::Error& e) {
    std::fprintf(stderr, "ncore: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ncore: %s\n", e.what());
    return kExitBadInput;
  }
}
