// The host-side API for runtimes: run a kernel on host buffers on the SIMD CPU
// reference, or build its device program and replay it in the interpreter.
//
//   std::vector<HostTensor> io = {{"A", a, DType::kF32, {M, K}},
//                                 {"B", b, DType::kF32, {K, N}},
//                                 {"C", c, DType::kF32, {M, N}, HbmKind::kOutput}};
//   ncore::run_cpu(io, [](auto& nc, auto& t) { ncore::gemm(nc, t[2], t[0], t[1]); });
#pragma once

#include <string>
#include <vector>

#include <ncore/isa/core.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/isa/sim/interpreter.h>
#include <ncore/reference/cpu_backend.h>

namespace ncore {

// A named host buffer bound to an HBM tensor (HbmDecl's fields plus the
// memory): row-major, `dtype` elements, `shape` dims.
struct HostTensor {
  std::string name;
  void* data = nullptr;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  HbmKind kind = HbmKind::kInput;

  int64_t numel() const { return shape_numel(shape); }
  int64_t bytes() const { return numel() * dtype_size(dtype); }
};

struct CpuRunOptions {
  int threads = 1;              // SPMD program instances, one thread each
  const Target* rules = &kTrn2;  // capacity and tile rules the CPU path enforces
};

// Runs kernel(CpuCore&, std::vector<HbmTensor>&) on every program instance,
// the HBM tensors bound to the host buffers in `io` order.
template <class Kernel>
void run_cpu(const std::vector<HostTensor>& io, Kernel&& kernel, const CpuRunOptions& opt = {}) {
  launch_cpu(*opt.rules, opt.threads, [&](CpuCore& nc) {
    std::vector<HbmTensor> t;
    for (const HostTensor& h : io) t.push_back(nc.hbm(h.name, h.dtype, h.shape, h.kind, h.data));
    kernel(nc, t);
  });
}

// Records kernel(DeviceCore&, std::vector<HbmTensor>&) as a device program for
// `target`; only names, dtypes, shapes and kinds of `io` are used.
template <class Kernel>
Program build_program(const Target& target, const std::vector<HostTensor>& io, Kernel&& kernel) {
  return emit(target, [&](DeviceCore& nc) {
    std::vector<HbmTensor> t;
    for (const HostTensor& h : io) t.push_back(nc.hbm(h.name, h.dtype, h.shape, h.kind));
    kernel(nc, t);
  });
}

// Replays `program` in the interpreter with the host buffers bound by name.
inline void run_program(const Program& program, const std::vector<HostTensor>& io,
                        const InterpOptions& opt = {}) {
  Interpreter interp(program, opt);
  for (const HostTensor& h : io) interp.bind(h.name, h.data, size_t(h.bytes()));
  interp.run();
}

}  // namespace ncore
