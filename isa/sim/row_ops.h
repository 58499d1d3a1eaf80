// The interpreter's arithmetic on rows of fp32 values. Every dispatch (dtype,
// ALU op, function) happens once per row, outside its loop, so the loops are
// plain float code the compiler vectorises.
//
// No FMA contraction: each product and each sum rounds to fp32 on its own,
// as in the engines (isa/semantics.h). GCC fuses a multiply and the add that
// consumes it, even across statements, whenever FMA instructions are enabled
// (-ffp-contract=fast is its C++ default, ISO modes included), so this header
// and interpreter.h compile with fp-contract=off (the pragmas below; inlined
// callees such as alu() take the caller's setting). Clang contracts only
// within one expression, and products and sums here are always separate
// statements. tests/isa/sim/interpreter_test.cc checks data on which an FMA
// gives a different answer.
#pragma once

#include <cstdint>
#include <cstring>

#include <ncore/isa/numerics.h>
#include <ncore/isa/semantics.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace ncore::sim {

// ---- dtype <-> fp32 runs: n elements `step` bytes apart ----

template <int kSize, class Load>
void decode_loop(const uint8_t* p, int64_t step, int64_t n, float* __restrict out, Load load) {
  if (step == kSize) {
    for (int64_t i = 0; i < n; ++i) out[i] = load(p + i * kSize);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = load(p + i * step);
  }
}

inline void decode_run(DType t, const uint8_t* p, int64_t step, int64_t n, float* out) {
  switch (t) {
    case DType::kF32:
      return decode_loop<4>(p, step, n, out, [](const uint8_t* q) {
        float v;
        std::memcpy(&v, q, 4);
        return v;
      });
    case DType::kBF16:
      return decode_loop<2>(p, step, n, out, [](const uint8_t* q) {
        uint16_t h;
        std::memcpy(&h, q, 2);
        return bf16_to_f32(h);
      });
    case DType::kF16:
      return decode_loop<2>(p, step, n, out, [](const uint8_t* q) {
        uint16_t h;
        std::memcpy(&h, q, 2);
        return f16_to_f32(h);
      });
    case DType::kFP8E4M3:
      return decode_loop<1>(p, step, n, out, [](const uint8_t* q) { return fp8_e4m3_to_f32(*q); });
    case DType::kFP8E5M2:
      return decode_loop<1>(p, step, n, out, [](const uint8_t* q) { return fp8_e5m2_to_f32(*q); });
    case DType::kI32:
      return decode_loop<4>(p, step, n, out, [](const uint8_t* q) {
        int32_t i;
        std::memcpy(&i, q, 4);
        return static_cast<float>(i);
      });
  }
}

template <int kSize, class Store>
void encode_loop(const float* __restrict in, int64_t n, uint8_t* p, int64_t step, Store store) {
  if (step == kSize) {
    for (int64_t i = 0; i < n; ++i) store(in[i], p + i * kSize);
  } else {
    for (int64_t i = 0; i < n; ++i) store(in[i], p + i * step);
  }
}

inline void encode_run(DType t, const float* in, int64_t n, uint8_t* p, int64_t step) {
  switch (t) {
    case DType::kF32:
      return encode_loop<4>(in, n, p, step, [](float v, uint8_t* q) { std::memcpy(q, &v, 4); });
    case DType::kBF16:
      return encode_loop<2>(in, n, p, step, [](float v, uint8_t* q) {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(q, &h, 2);
      });
    case DType::kF16:
      return encode_loop<2>(in, n, p, step, [](float v, uint8_t* q) {
        const uint16_t h = f32_to_f16(v);
        std::memcpy(q, &h, 2);
      });
    case DType::kFP8E4M3:
      return encode_loop<1>(in, n, p, step, [](float v, uint8_t* q) { *q = f32_to_fp8_e4m3(v); });
    case DType::kFP8E5M2:
      return encode_loop<1>(in, n, p, step, [](float v, uint8_t* q) { *q = f32_to_fp8_e5m2(v); });
    case DType::kI32:
      return encode_loop<4>(in, n, p, step, [](float v, uint8_t* q) {
        const int32_t i = f32_to_i32(v);
        std::memcpy(q, &i, 4);
      });
  }
}

// ---- ALU rows (isa/semantics.h alu) ----

template <AluOp kOp>
void alu_loop(float* __restrict a, const float* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = alu(kOp, a[i], b[i]);
}

// a[i] = a[i] op b[i]; a and b are distinct rows.
inline void alu_rows(AluOp op, float* a, const float* b, int64_t n) {
  switch (op) {
#define NCORE_X(Name, mnemonic) \
  case AluOp::k##Name: return alu_loop<AluOp::k##Name>(a, b, n);
    NCORE_ALU_OPS(NCORE_X)
#undef NCORE_X
  }
}

template <AluOp kOp, bool kReverse>
void alu_scalar_loop(float* __restrict a, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = kReverse ? alu(kOp, s, a[i]) : alu(kOp, a[i], s);
}

// a[i] = a[i] op s, or s op a[i] when reversed (alu's literal operand order:
// a reversed bypass yields s).
inline void alu_scalar(AluOp op, float* a, float s, bool reverse, int64_t n) {
  switch (op) {
#define NCORE_X(Name, mnemonic)                                        \
  case AluOp::k##Name:                                                 \
    return reverse ? alu_scalar_loop<AluOp::k##Name, true>(a, s, n)    \
                   : alu_scalar_loop<AluOp::k##Name, false>(a, s, n);
    NCORE_ALU_OPS(NCORE_X)
#undef NCORE_X
  }
}

// ---- activation (isa/semantics.h activate) ----

template <ActFunc kFunc>
void activate_loop(float* __restrict a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = activate(kFunc, a[i]);
}

inline void activate_row(ActFunc f, float* a, int64_t n) {
  switch (f) {
#define NCORE_X(Name, mnemonic) \
  case ActFunc::k##Name: return activate_loop<ActFunc::k##Name>(a, n);
    NCORE_ACT_FUNCS(NCORE_X)
#undef NCORE_X
  }
}

// a[i] = a[i] * s + b as two roundings (scale, then bias).
inline void scale_bias(float* __restrict a, float s, float b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = a[i] * s;
    a[i] = t + b;
  }
}

// ---- matmul ----

// The matmul micro-kernel: kMatmulRows x kMatmulCols fp32 accumulators held
// in registers across the whole k loop, so each moving element loaded serves
// kMatmulRows products, and 8 independent add chains hide the add latency.
// GCC/clang vector extensions make the registers explicit (plain loops left
// them in memory at -O2); a vector is one native register, as wider vector
// types are lowered through memory.
#if defined(__AVX512F__)
inline constexpr int64_t kMatmulLanes = 16;
#elif defined(__AVX__)
inline constexpr int64_t kMatmulLanes = 8;
#else
inline constexpr int64_t kMatmulLanes = 4;  // SSE2, the x86-64 baseline
#endif
using Lanes = float __attribute__((vector_size(kMatmulLanes * sizeof(float))));
inline constexpr int64_t kMatmulRows = 4;
inline constexpr int64_t kMatmulCols = 2 * kMatmulLanes;  // 8 accumulators + 2 loads + 1 broadcast

// out[r * N + n0 + j], r < kMatmulRows, j < kMatmulCols: sum over k =
// 0..K-1, in order, of st[k * M + m0 + r] * mv[k * N + n0 + j] — a block of
// stationary[K, M]^T @ moving[K, N], each product rounded before its add.
inline void matmul_block(const float* st, const float* mv, int64_t K, int64_t M, int64_t N,
                         int64_t m0, int64_t n0, float* out) {
  static_assert(kMatmulRows == 4 && kMatmulCols == 2 * kMatmulLanes, "accumulators below");
  Lanes a[kMatmulRows][2] = {};
  for (int64_t k = 0; k < K; ++k) {
    Lanes v0, v1;
    std::memcpy(&v0, mv + k * N + n0, sizeof v0);
    std::memcpy(&v1, mv + k * N + n0 + kMatmulLanes, sizeof v1);
    const float* s = st + k * M + m0;
    for (int r = 0; r < kMatmulRows; ++r) {
      const Lanes p0 = s[r] * v0, p1 = s[r] * v1;
      a[r][0] = a[r][0] + p0;
      a[r][1] = a[r][1] + p1;
    }
  }
  for (int r = 0; r < kMatmulRows; ++r) {
    std::memcpy(out + r * N + n0, &a[r][0], sizeof(Lanes));
    std::memcpy(out + r * N + n0 + kMatmulLanes, &a[r][1], sizeof(Lanes));
  }
}

// The same for any rows <= kMatmulRows and columns [n0, n1), without blocking.
inline void matmul_edge(const float* st, const float* mv, int64_t K, int64_t M, int64_t N,
                        int64_t m0, int64_t rows, int64_t n0, int64_t n1, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = n0; n < n1; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float p = st[k * M + m0 + r] * mv[k * N + n];
        acc = acc + p;
      }
      out[r * N + n] = acc;
    }
}

// Rows [m0, m0 + rows) of stationary[K, M]^T @ moving[K, N] into out[rows, N].
inline void matmul_rows(const float* st, const float* mv, int64_t K, int64_t M, int64_t N,
                        int64_t m0, int64_t rows, float* out) {
  const int64_t nb = N - N % kMatmulCols;
  if (rows == kMatmulRows) {
    for (int64_t n0 = 0; n0 < nb; n0 += kMatmulCols)
      matmul_block(st, mv, K, M, N, m0, n0, out);
    matmul_edge(st, mv, K, M, N, m0, rows, nb, N, out);
  } else {
    matmul_edge(st, mv, K, M, N, m0, rows, 0, N, out);
  }
}

}  // namespace ncore::sim

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
