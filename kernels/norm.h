// LayerNorm and RMSNorm over the last dim of X [..., D] (any rank >= 1; rows =
// the product of the leading dims), one source for the device and the CPU.
//
//   layernorm: y = (x - mean) * rsqrt(var + eps) * gamma + beta  (population var)
//   rmsnorm:   y = x * rsqrt(mean(x^2) + eps) * gamma
//
// Tiling: rows on partitions (up to 128 per row tile, tails allowed), D on the
// free axis. Row tiles are dealt round-robin to the SPMD program instances.
// Statistics are fp32 whatever X's dtype, and so is every intermediate:
//   layernorm  VectorE bn_stats on bn_stats_fmax (512) element chunks, one
//              bn_aggr -> (mean, var); ScalarE rsqrt(var + eps); the two-op
//              (x - mean) * rstd (a VectorE tensor_scalar); gamma (multiply)
//              and beta (add) as tensor_tensor.
//   rmsnorm    ScalarE activation(square) whose accumulator sums x^2; ScalarE
//              rsqrt(sum * (1/D) + eps); x * rstd (ScalarE activation scale);
//              * gamma as tensor_tensor.
// gamma / beta reach every partition by a partition-broadcast DMA (an HBM view
// with stride 0 on its partition dim). The rsqrt bias is an eps [P, 1] column:
// NeuronCore-v2 takes no scalar bias (facts §3). Elementwise instructions are
// split at the engine's free-size limit (engine_sbuf_fmax).
//
// Engine balance (device): the per-row step and the gamma / beta columns are
// shared out between engines that compute the same roundings (ScalarE
// activations for the tensor_scalar, GpSimd for tensor_tensor), in shares
// that even out the engines' published cycle costs (balance_engines). The
// results are the same bits whichever engine computes a column.
//
// Plans (plan_norm): a row tile is *resident* when all of D fits SBUF (on the
// device: twice at least): X is read once, and three buffers let tile k+2
// load and tile k-1 store while tile k computes. The program is software-pipelined in program
// order (pipeline()): a tile's load is issued two tiles early and its
// statistics one tile early, so every engine's in-order queue has the next
// tile's work behind this one's. Otherwise D is *streamed* in blocks
// (multiples of the bn_stats chunk, so the statistics are the same bits): one
// pass over the blocks for the statistics, a second that reloads them to
// normalise (X read twice); gamma / beta resident if they fit, else streamed
// block by block beside X.
//
// The CPU path uses the same plans with another budget (NormPlace::kHost): it
// runs the instructions one after another, so a second buffer buys nothing
// and only doubles the working set; rows per tile are chosen so that a tile's
// buffers (X, the fp32 work tile and the per-partition copies of gamma /
// beta) fit kHostTileBytes, i.e. stay in the core's L2 cache between passes;
// and no work is split (fewest instructions).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <ncore/isa/core.h>

namespace ncore {

class CpuBackend;  // reference/cpu_backend.h: the CPU path (plans for the host cache)

inline constexpr float kNormDefaultEps = 1e-5f;  // nn.LayerNorm's default, used for both

// Host tile budget: half of a Zen 5 core's 1 MiB L2, so a tile's buffers plus
// the HBM lines streaming through the DMAs stay cache-resident between the
// passes of one tile (measured: docs/norms.md).
inline constexpr int64_t kHostTileBytes = 512 * 1024;

// X / work buffers of a device plan: tile (or block) k+2 loads and k-1
// stores while k computes.
inline constexpr int kNormDeviceBufs = 4;

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
  double scalar_share = 0;       // of the per-row step's columns, on ScalarE
  double gpsimd_share = 0;       // of the gamma / beta tensor_tensor columns, on GpSimd
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

struct NormShares {
  double scalar = 0;  // of the per-row step's columns, on ScalarE
  double gpsimd = 0;  // of the gamma / beta tensor_tensor columns, on GpSimd
};

// Engine balance on the device. Per tile, in each engine's cycles by the
// published formulas (facts §3: bn_stats N, bn_aggr 13 N / 3, tensor_scalar
// N, activation N, fp32 tensor_tensor 2N, N elements per partition; plus the
// static overhead of dependent instructions), some work is fixed to an
// engine and two parts can move:
//   layernorm  fixed: VectorE bn_stats + bn_aggr, ScalarE rsqrt and -mean;
//              (x - mean) * rstd: VectorE tensor_scalar (N) or two ScalarE
//              activations (2N; the same two roundings, see layernorm());
//              * gamma, + beta: 4N on VectorE or GpSimd.
//   rmsnorm    fixed: ScalarE square with accumulator (N + MIN_II) and rsqrt;
//              x * rstd: ScalarE activation or VectorE tensor_scalar (N, the
//              same rounding); * gamma: 2N on VectorE or GpSimd.
// The shares minimise the slowest engine's time: a bisection on that time,
// where ScalarE and GpSimd take all they can of their movable work and
// VectorE must fit the rest. NeuronCore-v2 serialises VectorE and GpSimd on
// SBUF (facts §2): GpSimd takes nothing there.
inline NormShares balance_engines(const Target& t, NormKind kind, int64_t d) {
  const double n = double(d), ov = kStaticOverheadCycles, ii = t.min_ii_cycles;
  const double fv = t.vector_ghz, fs = t.scalar_ghz, fg = t.nc_version >= 3 ? t.gpsimd_ghz : 0.0;
  double v0, s0, step_s, step_v, tt;
  if (kind == NormKind::kLayer) {
    const double chunks = double(norm_detail::ceil_div(d, t.bn_stats_fmax));
    v0 = n + 13.0 * 6.0 * chunks / 3.0 + 3 * ov;
    s0 = 2 * (ii + ov);
    step_s = 2 * n + 2 * ov;
    step_v = n;
    tt = 4 * n;
  } else {
    v0 = ov;
    s0 = n + 2 * ii + 2 * ov;
    step_s = n;
    step_v = n + ov;
    tt = 2 * n;
  }
  auto shares_within = [&](double ns, NormShares& sh) {  // can every engine finish in ns?
    sh.scalar = std::clamp((ns * fs - s0) / step_s, 0.0, 1.0);
    sh.gpsimd = std::clamp(ns * fg / tt, 0.0, 1.0);
    return s0 + sh.scalar * step_s <= ns * fs &&
           v0 + (1 - sh.scalar) * step_v + (1 - sh.gpsimd) * tt <= ns * fv;
  };
  double lo = 0, hi = (v0 + s0 + step_s + step_v + tt) / std::min(fv, fs);
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
  for (int least : {host ? 1 : 3, host ? 1 : 2})
    for (bool work : {!host, false})
      for (int bufs = host ? 1 : kNormDeviceBufs; bufs >= least; --bufs)
        if (least == (host ? 1 : 3) || bufs < 3) candidates.push_back(make(true, bufs, d, true, work));
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
    // (layernorm's step as one tensor_scalar, rmsnorm's as one activation).
    const NormShares sh = host ? NormShares{kind == NormKind::kRms ? 1.0 : 0.0, 0.0}
                               : balance_engines(t, kind, p.block);
    p.scalar_share = sh.scalar;
    p.gpsimd_share = sh.gpsimd;
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

template <class Nc>
inline constexpr bool kOnHost = std::is_same_v<Nc, Core<CpuBackend>>;

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

// The row tiles [r0, r0 + n) dealt to this program instance (round-robin).
struct RowTile {
  int64_t r0;
  int n;
};
template <NeuronCore Nc>
std::vector<RowTile> my_tiles(const Nc& nc, int64_t rows, int rows_per_tile) {
  std::vector<RowTile> tiles;
  int64_t index = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += rows_per_tile, ++index)
    if (index % nc.num_programs() == nc.program_id())
      tiles.push_back({r0, int(std::min<int64_t>(rows_per_tile, rows - r0))});
  return tiles;
}

// Software pipelining in program order, for resident plans with `bufs` X
// buffers: tile k's load is issued bufs - 1 tiles early (into the buffer tile
// k - 1 has finished with) and its `stats` stage `skew` tiles early, before
// tile k - skew's `finish` stage. Each engine runs its instructions in
// program order, so this puts the next tile's work in an engine's queue
// behind the current one's (and a cost model that places DMAs in program
// order sees the loads before the stores they may overtake). A skewed stage
// must only hold work of engines that would otherwise wait for another
// engine's part of the current tile.
template <class Load, class Stats, class Finish>
void pipeline(size_t tiles, int bufs, int skew_tiles, Load&& load, Stats&& stats, Finish&& finish) {
  const size_t ahead = size_t(bufs - 1), skew = size_t(std::min(skew_tiles, bufs - 1));
  for (size_t k = 0; k < std::min(tiles, ahead); ++k) load(k);
  for (size_t k = 0; k < std::min(tiles, skew); ++k) stats(k);
  for (size_t k = 0; k < tiles; ++k) {
    if (k + ahead < tiles) load(k + ahead);
    if (k + skew < tiles) stats(k + skew);
    finish(k);
  }
}

// A streamed plan's work, in order: per row tile, its blocks for the
// statistics pass, then again for the normalising pass.
struct BlockStep {
  size_t tile;
  bool normalise;
  bool last;  // the statistics pass's last block
  int64_t b0, len;
};
inline std::vector<BlockStep> block_steps(size_t tiles, int64_t d, int64_t block) {
  std::vector<BlockStep> steps;
  for (size_t t = 0; t < tiles; ++t)
    for (bool norm : {false, true})
      for (int64_t b0 = 0; b0 < d; b0 += block)
        steps.push_back({t, norm, !norm && b0 + block >= d, b0, std::min(block, d - b0)});
  return steps;
}

// Calls f(c0, len) for the instruction-sized pieces of [b0, b0 + n).
template <class F>
void for_pieces(int64_t b0, int64_t n, int64_t op_chunk, F&& f) {
  for (int64_t c = 0; c < n; c += op_chunk) f(b0 + c, std::min(op_chunk, n - c));
}

// A part of a split is a multiple of 16 elements (64 B of fp32, so both parts
// start on the allocator's alignment) and at least 128: below that the fixed
// instruction overheads outweigh the balance.
inline constexpr int64_t kSplitAlign = 32;
inline constexpr int64_t kSplitMin = 128;

// How many of n columns take the `share` side of a split.
inline int64_t split_cols(int64_t n, double share) {
  const int64_t c = int64_t(double(n) * share) / kSplitAlign * kSplitAlign;
  if (c < kSplitMin) return 0;
  return n - c < kSplitMin ? n : c;
}

// dst = a op b over a row piece [P, n]: the last `share` of the columns on
// GpSimd, the rest on VectorE (the same fp32 ALU, the same bits).
template <NeuronCore Nc>
void tensor_tensor_split(Nc& nc, const Tile& dst, const Tile& a, const Tile& b, AluOp op,
                         double share) {
  const int64_t n = dst.free_size(), v = n - split_cols(n, share);
  if (v > 0) nc.tensor_tensor(dst.slice(0, 0, v), a.slice(0, 0, v), b.slice(0, 0, v), op);
  if (v < n)
    nc.tensor_tensor(dst.slice(0, v, n), a.slice(0, v, n), b.slice(0, v, n), op, Engine::kGpSimd);
}

}  // namespace norm_detail

// Y = layernorm(X) * gamma + beta over the last dim. X [..., D] f32 or bf16;
// Y like X, in X's dtype or f32; gamma, beta [D] f32 or bf16.
template <NeuronCore Nc>
void layernorm(Nc& nc, const HbmTensor& y, const HbmTensor& x, const HbmTensor& gamma,
               const HbmTensor& beta, float eps = kNormDefaultEps, Loc loc = Loc::current()) {
  using namespace norm_detail;
  const Checked c = check(NormKind::kLayer, y, x, gamma, &beta, eps, loc);
  const Target& t = nc.target();
  const NormPlan p = plan_norm(t, NormKind::kLayer, c.rows, c.d,
                               {x.dtype, y.dtype, gamma.dtype, beta.dtype},
                               kOnHost<Nc> ? NormPlace::kHost : NormPlace::kDevice, where(loc));
  const int P = p.rows;
  const int64_t D = c.d, chunk = t.bn_stats_fmax;
  const int64_t plen = p.params_resident ? D : p.block;
  const int pbufs = p.params_resident ? 1 : p.bufs;

  using Buf = typename Nc::BufferT;
  std::vector<Buf> g_buf, b_buf, x_buf, w_buf;
  for (int i = 0; i < pbufs; ++i) g_buf.push_back(nc.sbuf(gamma.dtype, P, {plen}));  // [P, D|block]
  for (int i = 0; i < pbufs; ++i) b_buf.push_back(nc.sbuf(beta.dtype, P, {plen}));
  for (int i = 0; i < p.bufs; ++i) x_buf.push_back(nc.sbuf(x.dtype, P, {p.block}));  // [P, block]
  if (p.work_tile)
    for (int i = 0; i < p.bufs; ++i) w_buf.push_back(nc.sbuf(DType::kF32, P, {p.block}));
  auto eps_col = nc.sbuf(DType::kF32, P, {1});  // [P, 1] f32
  std::vector<Buf> rstd, stats, mv, neg_mean;   // per statistics slot
  for (int i = 0; i < kStatSlots; ++i) {
    rstd.push_back(nc.sbuf(DType::kF32, P, {1}));                             // [P, 1]
    stats.push_back(nc.sbuf(DType::kF32, P, {p.bn_chunks, kStatsStride}));   // [P, chunks, 6 of 16]
    mv.push_back(nc.sbuf(DType::kF32, P, {2}));                               // [P, (mean, var)]
    neg_mean.push_back(nc.sbuf(DType::kF32, P, {1}));                         // [P, 1]
  }

  nc.memset(eps_col, eps);
  // Resident gamma / beta load after the first X block, which the first
  // statistics need sooner.
  bool params_loaded = !p.params_resident;
  auto load_params = [&] {
    if (params_loaded) return;
    params_loaded = true;
    nc.dma(g_buf[0], c.gamma.broadcast(0, P));
    nc.dma(b_buf[0], c.beta.broadcast(0, P));
  };
  const bool scalar_step = split_cols(std::min(D, std::min(p.block, p.op_chunk)), p.scalar_share) > 0;

  const std::vector<RowTile> tiles = my_tiles(nc, c.rows, P);
  auto x_rows = [&](const RowTile& rt) { return c.x2.slice(0, rt.r0, rt.r0 + rt.n); };  // [n, D]
  auto y_rows = [&](const RowTile& rt) { return c.y2.slice(0, rt.r0, rt.r0 + rt.n); };
  auto x_tile = [&](size_t slot, int n, int64_t len) {
    return x_buf[slot].partitions(0, n).slice(0, 0, len);  // [n, len] X's dtype
  };
  // bn_stats of block [b0, b0 + len) of a tile, chunk by chunk.
  auto stats_of = [&](size_t ss, int n, const Tile& xt, int64_t b0, int64_t len) {
    const Tile st = stats[ss].partitions(0, n);
    for (int64_t k = 0; k < len; k += chunk)
      nc.bn_stats(st.index(0, (b0 + k) / chunk).slice(0, 0, 6),
                  xt.slice(0, k, std::min(len, k + chunk)));
  };
  // VectorE: (mean, var) of the chunks' statistics.
  auto aggregate = [&](size_t ss, int n) {
    nc.bn_aggr(mv[ss].partitions(0, n), stats[ss].partitions(0, n).slice(1, 0, 6));  // [n, chunks, 6]
  };
  // ScalarE: rstd = rsqrt(var + eps), and -mean for the ScalarE step.
  auto scalars = [&](size_t ss, int n) {
    const Tile m = mv[ss].partitions(0, n);
    nc.activation(rstd[ss].partitions(0, n), ActFunc::kRsqrt, m.slice(0, 1, 2),
                  {.bias = eps_col.partitions(0, n)});
    if (scalar_step)
      nc.activation(neg_mean[ss].partitions(0, n), ActFunc::kCopy, m.slice(0, 0, 1), {.scale = -1.0f});
  };
  // Normalises block [b0, b0 + len) of a tile in X buffer `slot` and stores it.
  auto normalise = [&](size_t ss, const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
    const int n = rt.n;
    const Tile xt = x_tile(slot, n, len);
    const Tile w = p.work_tile ? w_buf[slot].partitions(0, n).slice(0, 0, len) : xt;  // fp32
    const Tile out = y.dtype == DType::kF32 ? w : xt;                                  // Y's dtype
    const Tile mean = mv[ss].partitions(0, n).slice(0, 0, 1), rs = rstd[ss].partitions(0, n);
    const int64_t pb = p.params_resident ? b0 : 0;
    const size_t ps = p.params_resident ? 0 : slot % size_t(pbufs);
    const Tile g = g_buf[ps].partitions(0, n).slice(0, pb, pb + len);
    const Tile b = b_buf[ps].partitions(0, n).slice(0, pb, pb + len);
    if (!p.params_resident) {
      nc.dma(g, c.gamma.broadcast(0, n).slice(1, b0, b0 + len));
      nc.dma(b, c.beta.broadcast(0, n).slice(1, b0, b0 + len));
    }
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      const Tile wi = w.slice(0, c0, c0 + cl), oi = out.slice(0, c0, c0 + cl);
      const Tile xi = xt.slice(0, c0, c0 + cl);
      // (x - mean) * rstd: the first columns as two ScalarE activations,
      // fl(fl(x * 1) + -mean) = fl(x - mean) and fl(fl(d * rstd) + -0) =
      // fl(d * rstd), the rest as the VectorE tensor_scalar: the same bits.
      const int64_t cs = split_cols(cl, p.scalar_share);
      if (cs > 0) {
        const Tile ws = wi.slice(0, 0, cs);
        nc.activation(ws, ActFunc::kCopy, xi.slice(0, 0, cs), {.bias = neg_mean[ss].partitions(0, n)});
        nc.activation(ws, ActFunc::kCopy, ws, {.scale = rs, .bias = -0.0f});
      }
      if (cs < cl)
        nc.tensor_scalar(wi.slice(0, cs, cl), xi.slice(0, cs, cl), AluOp::kSubtract, mean,
                         AluOp::kMultiply, rs);
      tensor_tensor_split(nc, wi, wi, g.slice(0, c0, c0 + cl), AluOp::kMultiply, p.gpsimd_share);
      tensor_tensor_split(nc, oi, wi, b.slice(0, c0, c0 + cl), AluOp::kAdd, p.gpsimd_share);
    });
    nc.dma(y_rows(rt).slice(1, b0, b0 + len), out);
  };

  if (p.resident) {
    const size_t nb = size_t(p.bufs);
    // The VectorE statistics run a tile ahead: VectorE does them while ScalarE
    // computes this tile's (x - mean) * rstd, which this tile's tensor_tensor waits for.
    pipeline(
        tiles.size(), p.bufs, 1,
        [&](size_t k) {
          nc.dma(x_tile(k % nb, tiles[k].n, D), x_rows(tiles[k]));
          load_params();
        },
        [&](size_t k) {
          stats_of(k % kStatSlots, tiles[k].n, x_tile(k % nb, tiles[k].n, D), 0, D);
          aggregate(k % kStatSlots, tiles[k].n);
        },
        [&](size_t k) {
          scalars(k % kStatSlots, tiles[k].n);
          normalise(k % kStatSlots, tiles[k], k % nb, 0, D);
        });
    return;
  }
  // Streamed: a statistics pass over the blocks, then a normalising pass that
  // reloads them, every block load issued bufs - 1 steps early (pipeline()).
  const std::vector<BlockStep> steps = block_steps(tiles.size(), D, p.block);
  const size_t nb = size_t(p.bufs);
  pipeline(
      steps.size(), p.bufs, 0,
      [&](size_t k) {
        const BlockStep& st = steps[k];
        const RowTile& rt = tiles[st.tile];
        nc.dma(x_tile(k % nb, rt.n, st.len), x_rows(rt).slice(1, st.b0, st.b0 + st.len));
        load_params();
      },
      [](size_t) {},
      [&](size_t k) {
        const BlockStep& st = steps[k];
        const RowTile& rt = tiles[st.tile];
        const size_t ss = st.tile % kStatSlots;
        if (st.normalise) return normalise(ss, rt, k % nb, st.b0, st.len);
        stats_of(ss, rt.n, x_tile(k % nb, rt.n, st.len), st.b0, st.len);
        if (st.last) {
          aggregate(ss, rt.n);
          scalars(ss, rt.n);
        }
      });
}

// Y = X * rsqrt(mean(X^2) + eps) * gamma over the last dim. X [..., D] f32 or
// bf16; Y like X, in X's dtype or f32; gamma [D] f32 or bf16.
template <NeuronCore Nc>
void rmsnorm(Nc& nc, const HbmTensor& y, const HbmTensor& x, const HbmTensor& gamma,
             float eps = kNormDefaultEps, Loc loc = Loc::current()) {
  using namespace norm_detail;
  const Checked c = check(NormKind::kRms, y, x, gamma, nullptr, eps, loc);
  const Target& t = nc.target();
  const NormPlan p = plan_norm(t, NormKind::kRms, c.rows, c.d,
                               {x.dtype, y.dtype, gamma.dtype, DType::kF32},
                               kOnHost<Nc> ? NormPlace::kHost : NormPlace::kDevice, where(loc));
  const int P = p.rows;
  const int64_t D = c.d;
  const int64_t plen = p.params_resident ? D : p.block;
  const int pbufs = p.params_resident ? 1 : p.bufs;

  using Buf = typename Nc::BufferT;
  std::vector<Buf> g_buf, x_buf, w_buf;
  for (int i = 0; i < pbufs; ++i) g_buf.push_back(nc.sbuf(gamma.dtype, P, {plen}));  // [P, D|block]
  for (int i = 0; i < p.bufs; ++i) x_buf.push_back(nc.sbuf(x.dtype, P, {p.block}));  // [P, block]
  for (int i = 0; i < p.bufs; ++i) w_buf.push_back(nc.sbuf(DType::kF32, P, {p.block}));
  std::vector<Buf> o_buf;
  if (p.out_tile)
    for (int i = 0; i < p.bufs; ++i) o_buf.push_back(nc.sbuf(y.dtype, P, {p.block}));
  auto eps_col = nc.sbuf(DType::kF32, P, {1});  // [P, 1] f32
  std::vector<Buf> rstd, ss;                    // per statistics slot, [P, 1] f32
  std::vector<std::optional<Buf>> partial;      // [P, pieces] f32
  for (int i = 0; i < kStatSlots; ++i) {
    rstd.push_back(nc.sbuf(DType::kF32, P, {1}));
    ss.push_back(nc.sbuf(DType::kF32, P, {1}));  // sum of x^2
    partial.emplace_back();
    if (p.pieces > 1) partial.back().emplace(nc.sbuf(DType::kF32, P, {p.pieces}));
  }

  nc.memset(eps_col, eps);
  bool params_loaded = !p.params_resident;
  auto load_params = [&] {
    if (params_loaded) return;
    params_loaded = true;
    nc.dma(g_buf[0], c.gamma.broadcast(0, P));
  };
  const float inv_d = float(1.0 / double(D));

  const std::vector<RowTile> tiles = my_tiles(nc, c.rows, P);
  auto x_rows = [&](const RowTile& rt) { return c.x2.slice(0, rt.r0, rt.r0 + rt.n); };  // [n, D]
  auto y_rows = [&](const RowTile& rt) { return c.y2.slice(0, rt.r0, rt.r0 + rt.n); };
  auto x_tile = [&](size_t slot, int n, int64_t len) {
    return x_buf[slot].partitions(0, n).slice(0, 0, len);  // [n, len] X's dtype
  };
  auto work = [&](size_t slot, int n, int64_t len) {
    return w_buf[slot].partitions(0, n).slice(0, 0, len);  // [n, len] f32
  };
  // Sum of squares of block [b0, b0 + len), piece by piece into the
  // accumulator (or its partial sums); the squares land in the work tile, unused.
  auto squares = [&](size_t s, int n, size_t slot, int64_t b0, int64_t len) {
    const Tile xt = x_tile(slot, n, len), w = work(slot, n, len);
    int64_t piece = pieces(b0, p.block, p.op_chunk);  // pieces of the blocks before b0
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      const Tile acc = p.pieces > 1 ? partial[s]->partitions(0, n).slice(0, piece, piece + 1)
                                    : ss[s].partitions(0, n);
      ++piece;
      nc.activation(w.slice(0, c0, c0 + cl), ActFunc::kSquare, xt.slice(0, c0, c0 + cl),
                    {.accum = acc});
    });
  };
  auto finish_stats = [&](size_t s, int n) {
    const Tile sum = ss[s].partitions(0, n);
    if (p.pieces > 1) nc.tensor_reduce(sum, AluOp::kAdd, partial[s]->partitions(0, n));
    nc.activation(rstd[s].partitions(0, n), ActFunc::kRsqrt, sum,
                  {.scale = inv_d, .bias = eps_col.partitions(0, n)});
  };
  auto normalise = [&](size_t s, const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
    const int n = rt.n;
    const Tile xt = x_tile(slot, n, len), w = work(slot, n, len);
    const Tile out = y.dtype == DType::kF32 ? w
                     : p.out_tile          ? o_buf[slot].partitions(0, n).slice(0, 0, len)
                                           : xt;  // Y's dtype
    const Tile rs = rstd[s].partitions(0, n);
    const int64_t pb = p.params_resident ? b0 : 0;
    const size_t ps = p.params_resident ? 0 : slot % size_t(pbufs);
    const Tile g = g_buf[ps].partitions(0, n).slice(0, pb, pb + len);
    if (!p.params_resident) nc.dma(g, c.gamma.broadcast(0, n).slice(1, b0, b0 + len));
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      const Tile wi = w.slice(0, c0, c0 + cl), xi = xt.slice(0, c0, c0 + cl);
      // x * rstd: the first columns on ScalarE, fl(fl(x * rstd) + -0), the
      // rest as a VectorE tensor_scalar, fl(x * rstd): the same bits.
      const int64_t cs = split_cols(cl, p.scalar_share);
      if (cs > 0)
        nc.activation(wi.slice(0, 0, cs), ActFunc::kCopy, xi.slice(0, 0, cs),
                      {.scale = rs, .bias = -0.0f});
      if (cs < cl) nc.tensor_scalar(wi.slice(0, cs, cl), xi.slice(0, cs, cl), AluOp::kMultiply, rs);
      tensor_tensor_split(nc, out.slice(0, c0, c0 + cl), wi, g.slice(0, c0, c0 + cl),
                          AluOp::kMultiply, p.gpsimd_share);
    });
    nc.dma(y_rows(rt).slice(1, b0, b0 + len), out);
  };

  if (p.resident) {
    const size_t nb = size_t(p.bufs);
    // No skew: ScalarE computes the statistics and the first step alike.
    pipeline(
        tiles.size(), p.bufs, 0,
        [&](size_t k) {
          nc.dma(x_tile(k % nb, tiles[k].n, D), x_rows(tiles[k]));
          load_params();
        },
        [&](size_t k) {
          squares(k % kStatSlots, tiles[k].n, k % nb, 0, D);
          finish_stats(k % kStatSlots, tiles[k].n);
        },
        [&](size_t k) { normalise(k % kStatSlots, tiles[k], k % nb, 0, D); });
    return;
  }
  const std::vector<BlockStep> steps = block_steps(tiles.size(), D, p.block);
  const size_t nb = size_t(p.bufs);
  pipeline(
      steps.size(), p.bufs, 0,
      [&](size_t k) {
        const BlockStep& st = steps[k];
        const RowTile& rt = tiles[st.tile];
        nc.dma(x_tile(k % nb, rt.n, st.len), x_rows(rt).slice(1, st.b0, st.b0 + st.len));
        load_params();
      },
      [](size_t) {},
      [&](size_t k) {
        const BlockStep& st = steps[k];
        const RowTile& rt = tiles[st.tile];
        const size_t ss = st.tile % kStatSlots;
        if (st.normalise) return normalise(ss, rt, k % nb, st.b0, st.len);
        squares(ss, rt.n, k % nb, st.b0, st.len);
        if (st.last) finish_stats(ss, rt.n);
      });
}

}  // namespace ncore
