// LayerNorm / RMSNorm plans: the tiling constants, the per-target plan
// (resident or streamed D, buffers, rows per tile, engine shares, SBUF
// budget) and the operand checks. kernels/norm.h turns a plan into the
// instruction stream; tests and the CLI read the plan for the expected
// program structure.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ncore/isa/core.h>

namespace ncore {

inline constexpr float kNormDefaultEps = 1e-5f;  // nn.LayerNorm's default, used for both

// Host tile budget: half of a Zen 5 core's 1 MiB L2, so a tile's buffers plus
// the HBM lines streaming through the DMAs stay cache-resident between the
// passes of one tile (measured: docs/norms.md).
inline constexpr int64_t kHostTileBytes = 512 * 1024;

// X / work buffers of a device plan at most: with 3, tile (or block) k+2
// loads and k-1 stores while k computes; a fourth is a tile of slack (cost
// model, trn2 [4096, 4096]: layernorm f32 0.405 -> 0.395 ms, bf16 0.299 ->
// 0.284 ms, rmsnorm bf16 0.211 -> 0.205 ms).
inline constexpr int kNormDeviceBufs = 4;

// PSUM slots of the NeuronCore-v3 plans' VectorE columns (NormPlan::psum_cols):
// ScalarE scales one slot's (x - mean) * gamma (layernorm) or writes its
// x * rstd (rmsnorm) while VectorE finishes the other.
inline constexpr int kNormPsumSlots = 2;

// Arch guide: a Vector / Scalar instruction that depends on the one before it
// on its engine pays a static overhead of ~100 cycles (facts §3).
inline constexpr double kStaticOverheadCycles = 100.0;

enum class NormKind { kLayer, kRms };
enum class NormPlace { kDevice, kHost };

inline const char* norm_name(NormKind k) { return k == NormKind::kLayer ? "layernorm" : "rmsnorm"; }

struct NormDtypes {
  DType x = DType::kF32, y = DType::kF32, gamma = DType::kF32, beta = DType::kF32;
};

struct NormPlan {
  int rows = 0;                  // rows per tile (partitions used)
  int64_t block = 0;             // row elements per block; == D when resident
  int bufs = 1;                  // X / work buffers: > 1 overlaps DMA with compute
  bool resident = true;          // block == D: X is read once
  bool params_resident = true;   // gamma / beta loaded once per program instance
  bool work_tile = false;        // an fp32 work tile beside X's tile
  bool out_tile = false;         // rmsnorm, Y not fp32: a Y tile, so X's buffer frees before the store
  int64_t op_chunk = 0;          // free elements per elementwise instruction
  int64_t bn_chunks = 0;         // bn_stats chunks per row (layernorm)
  int64_t pieces = 0;            // accumulator pieces per row (rmsnorm)
  double scalar_share = 0;       // NormShares::scalar
  double gpsimd_share = 0;       // NormShares::gpsimd
  int64_t psum_cols = 0;         // > 0: VectorE's columns pass through PSUM, this many per slot
  bool rms_fused = false;        // rmsnorm's (x * rstd) * gamma as one scalar_tensor_tensor
  int64_t sbuf_bytes = 0;        // per partition, every buffer rounded to Allocator::kAlign
};

namespace norm_detail {

inline int64_t up(int64_t v, int64_t q) { return (v + q - 1) / q * q; }
inline int64_t buf(int64_t bytes) { return up(std::max<int64_t>(bytes, 1), Allocator::kAlign); }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A chunk's 6 bn_stats values are padded to 16 fp32 = 64 B, the dependency
// tracking granule (isa/emit/deps.h): chunks then never falsely depend on
// each other, and one tile's bn_stats run back to back.
inline constexpr int64_t kStatsStride = 16;
// Per-tile statistics columns exist twice: tile k+1's are computed while
// tile k's are still read (pipeline()).
inline constexpr int kStatSlots = 2;

// Accumulator pieces of a row split into blocks, each into instructions of
// at most `op_chunk` elements.
inline int64_t pieces(int64_t d, int64_t block, int64_t op_chunk) {
  int64_t n = 0;
  for (int64_t b0 = 0; b0 < d; b0 += block) n += ceil_div(std::min(block, d - b0), op_chunk);
  return n;
}

// Per-partition bytes of a plan: the sum of the kernel's allocations.
inline int64_t sbuf_bytes(NormKind kind, const NormDtypes& dt, int64_t d, const NormPlan& p) {
  const int64_t param_len = p.params_resident ? d : p.block;
  const int params_bufs = p.params_resident ? 1 : p.bufs;
  int64_t bytes = params_bufs * buf(param_len * dtype_size(dt.gamma));
  if (kind == NormKind::kLayer) bytes += params_bufs * buf(param_len * dtype_size(dt.beta));
  bytes += p.bufs * buf(p.block * dtype_size(dt.x));
  if (p.work_tile) bytes += p.bufs * buf(p.block * 4);
  if (p.out_tile) bytes += p.bufs * buf(p.block * dtype_size(dt.y));
  bytes += buf(4);  // eps column
  int64_t slot = buf(4);  // rstd
  if (kind == NormKind::kLayer) {
    slot += buf(p.bn_chunks * kStatsStride * 4);  // bn_stats of every chunk of the row
    slot += buf(2 * 4) + buf(4);                  // (mean, var), -mean
  } else {
    slot += buf(4);                                // sum of squares
    if (p.pieces > 1) slot += buf(p.pieces * 4);   // its partial sums
  }
  return bytes + kStatSlots * slot;
}

}  // namespace norm_detail

// NeuronCore-v3 device plans keep VectorE's fp32 intermediate in PSUM: a
// tensor_tensor with one input in PSUM costs N instead of 2N (facts §3), and
// fp32 in PSUM is the same bits as fp32 in SBUF. Not on NeuronCore-v2, where
// VectorE and ScalarE cannot share PSUM (facts §2), nor on the host.
inline bool norm_psum_path(const Target& t, NormPlace place) {
  return place == NormPlace::kDevice && t.nc_version >= 3;
}

struct NormShares {
  double scalar = 0;  // layernorm: of VectorE's columns, those whose * rstd runs on ScalarE;
                      // rmsnorm: of the per-row step's columns, on ScalarE
  double gpsimd = 0;  // of the columns, on GpSimd (their tensor_tensor instructions)
};

// Engine balance on the device. Per tile, in each engine's cycles by the
// published formulas (facts §3: bn_stats N, bn_aggr 13 N / 3, tensor_scalar
// N, activation N, fp32 tensor_tensor 2N, scalar_tensor_tensor N for bf16
// data and tensor with subtract then multiply, else 2N; N elements per
// partition; plus the static overhead of dependent instructions), some work
// is fixed to an engine and some can move:
//   layernorm  fixed: VectorE bn_stats + bn_aggr, ScalarE rsqrt and -mean.
//              A VectorE column: scalar_tensor_tensor (x - mean) * gamma (N
//              or 2N), then (t * rstd) + beta as a second one (2N), or as a
//              ScalarE activation (N) and a VectorE tensor_tensor (N with t
//              in PSUM, norm_psum_path; 2N from SBUF, which saves nothing).
//              A GpSimd column (GpSimd has no scalar_tensor_tensor): ScalarE
//              x - mean and * rstd (2N), GpSimd * gamma and + beta (4N).
//   rmsnorm    fixed: ScalarE square with accumulator (N + MIN_II) and rsqrt;
//              x * rstd: ScalarE activation or VectorE tensor_scalar (N, the
//              same rounding); * gamma: 2N on GpSimd, on VectorE 2N from SBUF
//              or N from PSUM.
// The shares minimise the slowest engine's time: a bisection on that time,
// where GpSimd and then ScalarE take all they can of their movable work and
// VectorE must fit the rest. (A layernorm GpSimd column saves VectorE more
// per ScalarE cycle than an assisted VectorE column does, so it goes first.)
// NeuronCore-v2 serialises VectorE and GpSimd on SBUF (facts §2): GpSimd
// takes nothing there.
inline NormShares balance_engines(const Target& t, NormKind kind, int64_t d, const NormDtypes& dt) {
  const double n = double(d), ov = kStaticOverheadCycles, ii = t.min_ii_cycles;
  const double fv = t.vector_ghz, fs = t.scalar_ghz, fg = t.nc_version >= 3 ? t.gpsimd_ghz : 0.0;
  const bool psum = norm_psum_path(t, NormPlace::kDevice);
  auto shares_within = [&](double ns, NormShares& sh) {  // can every engine finish in ns?
    if (kind == NormKind::kLayer) {
      const double chunks = double(norm_detail::ceil_div(d, t.bn_stats_fmax));
      const bool stt_fast = dt.x == DType::kBF16 && dt.gamma == DType::kBF16 && d % 2 == 0;
      const double v0 = n + 13.0 * 6.0 * chunks / 3.0 + 3 * ov, s0 = 2 * (ii + ov);
      const double v_col = (stt_fast ? n : 2 * n) + 2 * n;  // two scalar_tensor_tensor
      const double saved = psum ? n : 0.0;                  // by a ScalarE * rstd
      const double s_assist = n + ov, s_gpsimd = 2 * n + 2 * ov, g_col = 4 * n;
      sh.gpsimd = std::clamp(std::min(ns * fg / g_col, (ns * fs - s0) / s_gpsimd), 0.0, 1.0);
      const double s_left = ns * fs - s0 - sh.gpsimd * s_gpsimd;
      sh.scalar = saved > 0 && sh.gpsimd < 1
                      ? std::clamp(s_left / ((1 - sh.gpsimd) * s_assist), 0.0, 1.0)
                      : 0.0;
      return s0 + sh.gpsimd * s_gpsimd + (1 - sh.gpsimd) * sh.scalar * s_assist <= ns * fs &&
             v0 + (1 - sh.gpsimd) * (v_col - sh.scalar * saved) <= ns * fv;
    }
    const double v0 = ov, s0 = n + 2 * ii + 2 * ov, step_s = n, step_v = n + ov, tt = 2 * n;
    const double tt_v = psum ? tt / 2 : tt;  // VectorE's
    sh.scalar = std::clamp((ns * fs - s0) / step_s, 0.0, 1.0);
    sh.gpsimd = std::clamp(ns * fg / tt, 0.0, 1.0);
    return s0 + sh.scalar * step_s <= ns * fs &&
           v0 + (1 - sh.scalar) * step_v + (1 - sh.gpsimd) * tt_v <= ns * fv;
  };
  // Above any engine's total (each is under 7N + 400 cycles).
  double lo = 0, hi = 8 * (n + 1000) / std::min(fv, fs);
  NormShares sh;
  for (int it = 0; it < 64; ++it) {
    const double mid = (lo + hi) / 2;
    (shares_within(mid, sh) ? hi : lo) = mid;
  }
  shares_within(hi, sh);
  return sh;
}

// The plan for a norm over rows of D elements on target `t`. Throws an Error
// (naming `at`) when not even the smallest streamed block fits SBUF.
inline NormPlan plan_norm(const Target& t, NormKind kind, int64_t rows_total, int64_t d,
                          const NormDtypes& dt, NormPlace place, const std::string& at = {}) {
  using namespace norm_detail;
  const int64_t chunk = t.bn_stats_fmax;
  const bool host = place == NormPlace::kHost;
  NormPlan base;
  // The fp32 work tile holds the fp32 intermediate when X is not fp32; rmsnorm
  // always needs one (its sum-of-squares pass writes results it does not keep).
  // Else layernorm works in place in X's buffer, unless a device plan can
  // afford one: then X's buffer is free for the next load once the first
  // step has read it, not only once the store has.
  const bool needs_work = kind == NormKind::kRms || dt.x != DType::kF32;
  base.op_chunk = t.engine_sbuf_fmax;
  if (norm_psum_path(t, place))
    base.psum_cols = std::min<int64_t>(t.engine_psum_fmax,
                                       t.psum_partition_bytes() / int64_t(sizeof(float)) / kNormPsumSlots);
  base.bn_chunks = kind == NormKind::kLayer ? ceil_div(d, chunk) : 0;
  const int64_t max_rows = std::min<int64_t>(t.partitions, std::max<int64_t>(rows_total, 1));
  auto make = [&](bool resident, int bufs, int64_t block, bool params_resident, bool work) {
    NormPlan p = base;
    p.work_tile = work || needs_work;
    p.out_tile = work && kind == NormKind::kRms && dt.y != DType::kF32;
    p.resident = resident;
    p.bufs = bufs;
    p.block = block;
    p.params_resident = params_resident;
    p.pieces = kind == NormKind::kRms ? pieces(d, block, p.op_chunk) : 0;
    p.sbuf_bytes = sbuf_bytes(kind, dt, d, p);
    p.rows = int(max_rows);
    return p;
  };
  // Host: the tile's buffers over all its rows must fit kHostTileBytes; the
  // rows shrink to fit (at least 1). Device: every partition is used.
  auto fits = [&](NormPlan& p) {
    if (p.sbuf_bytes > t.sbuf_partition_bytes) return false;
    if (!host) return true;
    const int64_t rows = std::min<int64_t>(max_rows, kHostTileBytes / p.sbuf_bytes);
    if (rows < 1) return false;
    p.rows = int(rows);
    return true;
  };
  std::vector<NormPlan> candidates;
  // A device tile needs two buffers at least: with one, its load, compute and
  // store serialise, and streaming (X read twice, overlapped) is faster (cost
  // model, D = 16384 f32 on trn2, 2048 rows: layernorm 1.38 vs 2.13 ms,
  // rmsnorm 1.17 vs 1.46 ms).
  // Device preference: kNormDeviceBufs down to 3 buffers, with the work tile
  // and then without, before 2 buffers (likewise); the host has one buffer.
  auto resident = [&](int most, int least) {
    for (bool work : {!host, false})
      for (int bufs = most; bufs >= least; --bufs) candidates.push_back(make(true, bufs, d, true, work));
  };
  if (host) {
    resident(1, 1);
  } else {
    resident(kNormDeviceBufs, 3);
    resident(2, 2);
  }
  // Streamed blocks: multiples of the bn_stats chunk, at most one instruction
  // each, halving down to one chunk; on the device more buffers before larger
  // blocks (cost model, D = 16384 f32 trn2: layernorm 1.38 ms with 3 x 4096
  // against 1.58 ms with 2 x 8192), gamma / beta resident first.
  const int64_t top = std::max(chunk, std::min(up(d, chunk), t.engine_sbuf_fmax / chunk * chunk));
  for (int bufs = host ? 1 : kNormDeviceBufs; bufs >= (host ? 1 : 2); --bufs)
    for (bool params_resident : {true, false})
      for (int64_t block = top; block >= chunk; block = block / 2 / chunk * chunk)
        for (bool work : {!host, false})
          if (block < d) candidates.push_back(make(false, bufs, block, params_resident, work));
  if (!host) candidates.push_back(make(true, 1, d, true, false));  // no block to stream (D <= 512)
  for (NormPlan& p : candidates) {
    if (!fits(p)) continue;
    // Host: one thread runs everything, so the fewest instructions win
    // (layernorm as two scalar_tensor_tensor, rmsnorm's as one).
    const NormShares sh = host ? NormShares{kind == NormKind::kRms ? 1.0 : 0.0, 0.0}
                               : balance_engines(t, kind, p.block, dt);
    p.scalar_share = sh.scalar;
    p.gpsimd_share = sh.gpsimd;
    // Host rmsnorm: one pass instead of two (the same bits). Not on the
    // device: its 2N on VectorE alone is never below the split step's cost.
    p.rms_fused = host && kind == NormKind::kRms;
    return p;
  }
  const NormPlan smallest = make(false, 1, chunk, false, false);
  throw Error(norm_name(kind), "X",
              cat("row of D = ", d, " does not fit SBUF even streamed: ", smallest.sbuf_bytes,
                  " bytes per partition needed, ", t.sbuf_partition_bytes, " available (", t.name,
                  ")"),
              at);
}

namespace norm_detail {

struct Checked {
  int64_t rows = 0, d = 0;
  HbmTensor x2, y2;       // [rows, D]
  HbmTensor gamma, beta;  // [1, D]
};

// Validates the operands; every problem names the operand and the caller's line.
inline Checked check(NormKind kind, const HbmTensor& y, const HbmTensor& x, const HbmTensor& gamma,
                     const HbmTensor* beta, float eps, const Loc& loc) {
  const char* what = norm_name(kind);
  const std::string at = where(loc);
  auto float_in = [&](const HbmTensor& h, const char* name) {
    if (h.dtype != DType::kF32 && h.dtype != DType::kBF16)
      throw Error(what, name, cat("dtype must be f32 or bf16, got ", dtype_name(h.dtype)), at);
  };
  auto dense = [&](const HbmTensor& h, const char* name) {
    if (!h.ap.contiguous())
      throw Error(what, name, "must be a contiguous (row-major dense) view", at);
  };
  float_in(x, "X");
  if (x.ndim() < 1) throw Error(what, "X", "must have rank >= 1", at);
  Checked c;
  c.d = x.shape(x.ndim() - 1);
  if (c.d < 1) throw Error(what, "X", cat("last dim D must be >= 1, got ", c.d), at);
  dense(x, "X");
  c.rows = x.size() / c.d;
  if (y.dtype != x.dtype && y.dtype != DType::kF32)
    throw Error(what, "Y",
                cat("dtype must be X's (", dtype_name(x.dtype), ") or f32, got ", dtype_name(y.dtype)),
                at);
  dense(y, "Y");
  bool same = y.ndim() == x.ndim();
  for (int k = 0; same && k < x.ndim(); ++k) same = y.shape(k) == x.shape(k);
  if (!same) throw Error(what, "Y", cat("must have X's shape, got ", y.str(), " for X ", x.str()), at);
  auto param = [&](const HbmTensor& h, const char* name) {
    float_in(h, name);
    dense(h, name);
    if (h.ndim() != 1 || h.shape(0) != c.d)
      throw Error(what, name, cat("must be [", c.d, "] (D of X), got ", h.str()), at);
    return h.reshape({1, c.d});
  };
  c.gamma = param(gamma, "gamma");
  if (beta) c.beta = param(*beta, "beta");
  if (!(eps >= 0.0f) || std::isinf(eps))
    throw Error(what, "eps", cat("must be finite and >= 0, got ", eps), at);
  c.x2 = x.reshape({c.rows, c.d});
  c.y2 = y.reshape({c.rows, c.d});
  return c;
}

}  // namespace norm_detail

}  // namespace ncore
