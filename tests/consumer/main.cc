// Uses the installed ncore: a GEMM on the CPU reference and on the trn2 device
// path, compared with a plain triple loop. Integer-valued data keep every sum
// exact in fp32, so all three must agree exactly.
#include <cstdio>
#include <vector>

#include <ncore/ncore.h>

int main() {
  const int64_t m = 70, n = 90, k = 150;
  std::vector<float> a(m * k), b(k * n), c_cpu(m * n), c_dev(m * n);
  for (int64_t i = 0; i < m * k; ++i) a[i] = float(i % 7) - 3.0f;
  for (int64_t i = 0; i < k * n; ++i) b[i] = float(i % 5) - 2.0f;
  auto io = [&](std::vector<float>& c) {
    return std::vector<ncore::HostTensor>{
        {"A", a.data(), ncore::DType::kF32, {m, k}},
        {"B", b.data(), ncore::DType::kF32, {k, n}},
        {"C", c.data(), ncore::DType::kF32, {m, n}, ncore::HbmKind::kOutput}};
  };
  auto kernel = [](auto& nc, std::vector<ncore::HbmTensor>& t) { ncore::gemm(nc, t[2], t[0], t[1]); };
  ncore::run_cpu(io(c_cpu), kernel);
  const auto cio = io(c_dev);
  ncore::run_program(ncore::build_program(ncore::kTrn2, cio, kernel), cio);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float want = 0;
      for (int64_t l = 0; l < k; ++l) want += a[i * k + l] * b[l * n + j];
      if (c_cpu[i * n + j] != want || c_dev[i * n + j] != want) {
        std::printf("consumer: mismatch at (%ld, %ld): cpu %g, trn2 %g, want %g\n", long(i),
                    long(j), c_cpu[i * n + j], c_dev[i * n + j], want);
        return 1;
      }
    }
  std::printf("consumer: ncore %dx%dx%d GEMM exact on cpu and trn2\n", int(m), int(n), int(k));
  return 0;
}
