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
//              bn_aggr -> (mean, var); ScalarE rsqrt(var + eps); then
//              y = ((x - mean) * gamma) * rstd + beta, in that order, as two
//              VectorE scalar_tensor_tensor: (x - mean) * gamma, which costs
//              N instead of 2N for bf16 X and gamma, and (t * rstd) + beta.
//   rmsnorm    ScalarE activation(square) whose accumulator sums x^2; ScalarE
//              rsqrt(sum * (1/D) + eps); x * rstd (ScalarE activation scale);
//              * gamma as tensor_tensor.
// gamma / beta reach every partition by a partition-broadcast DMA (an HBM view
// with stride 0 on its partition dim). The rsqrt bias is an eps [P, 1] column:
// NeuronCore-v2 takes no scalar bias (facts §3). Elementwise instructions are
// split at the engine's free-size limit (engine_sbuf_fmax).
//
// Engine balance (device): columns are shared out between engines that
// compute the same roundings (layernorm: GpSimd tensor_tensor with ScalarE
// activations for the scalar steps, and ScalarE's * rstd beside a VectorE
// tensor_tensor + beta; rmsnorm: ScalarE activations for the tensor_scalar,
// GpSimd for tensor_tensor), in shares that even out the engines' published
// cycle costs (balance_engines). The results are the same bits whichever
// engine computes a column. On NeuronCore-v3 VectorE's columns keep their
// fp32 intermediate in PSUM (norm_psum_path): a tensor_tensor with one input
// in PSUM costs N, not 2N.
//
// Plans (plan_norm): a row tile is *resident* when all of D fits SBUF (on the
// device: twice at least): X is read once, and three or four buffers let
// tile k+2 load and tile k-1 store while tile k computes. The program is software-pipelined in program
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
#include <ncore/kernels/norm_plan.h>

namespace ncore {

class CpuBackend;  // reference/cpu_backend.h: the CPU path (plans for the host cache)

namespace norm_detail {

template <class Nc>
inline constexpr bool kOnHost = std::is_same_v<Nc, Core<CpuBackend>>;

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
// k - 1 has finished with) and its `stats` stage `skew` tiles early, inside
// tile k - skew's `finish(k - skew, between)` stage, which calls between()
// where that tile's work leaves room (unskewed: stats(k) comes before
// finish(k) and between() issues nothing). Each engine runs its instructions in
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
    if (skew == 0) stats(k);
    finish(k, [&] {
      if (skew > 0 && k + skew < tiles) stats(k + skew);
    });
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

// Streamed D: per row tile a statistics pass over its blocks, then a
// normalising pass that reloads them, every block load issued bufs - 1
// steps early (pipeline()). load(slot, rt, b0, len) loads a block into X
// buffer `slot`; stats(ss, rt, slot, b0, len) folds it into statistics slot
// ss, finish(ss, n) after the tile's last block; normalise(ss, rt, slot, b0,
// len) is the second pass.
template <class Load, class Stats, class Finish, class Normalise>
void stream_blocks(const std::vector<RowTile>& tiles, int64_t d, int64_t block, int bufs, Load&& load,
                   Stats&& stats, Finish&& finish, Normalise&& normalise) {
  const std::vector<BlockStep> steps = block_steps(tiles.size(), d, block);
  const size_t nb = size_t(bufs);
  pipeline(
      steps.size(), bufs, 0,
      [&](size_t k) { load(k % nb, tiles[steps[k].tile], steps[k].b0, steps[k].len); },
      [](size_t) {},
      [&](size_t k, auto&&) {
        const BlockStep& st = steps[k];
        const RowTile& rt = tiles[st.tile];
        const size_t ss = st.tile % kStatSlots;
        if (st.normalise) return normalise(ss, rt, k % nb, st.b0, st.len);
        stats(ss, rt, k % nb, st.b0, st.len);
        if (st.last) finish(ss, rt.n);
      });
}

// Calls f(c0, len) for the instruction-sized pieces of [b0, b0 + n).
template <class F>
void for_pieces(int64_t b0, int64_t n, int64_t op_chunk, F&& f) {
  for (int64_t c = 0; c < n; c += op_chunk) f(b0 + c, std::min(op_chunk, n - c));
}

// A part of a split is a multiple of 32 elements (64 B of bf16, 128 B of
// fp32, so both parts start on the allocator's 64 B alignment whatever the
// dtype) and at least 128: below that the fixed instruction overheads
// outweigh the balance.
inline constexpr int64_t kSplitAlign = 32;
inline constexpr int64_t kSplitMin = 128;

// How many of n columns take the `share` side of a split.
inline int64_t split_cols(int64_t n, double share) {
  const int64_t c = int64_t(double(n) * share) / kSplitAlign * kSplitAlign;
  if (c < kSplitMin) return 0;
  return n - c < kSplitMin ? n : c;
}

// A row piece's columns [0, n) by the engine of their tensor_tensor: the last
// `gpsimd_share` on GpSimd (the same fp32 ALU, the same bits) first, as
// f(c0, len, true), so that GpSimd, the slowest, starts soonest; then
// VectorE's, in pieces of at most `psum_cols` when they pass through PSUM.
template <class F>
void tensor_tensor_cols(int64_t n, double gpsimd_share, int64_t psum_cols, F&& f) {
  const int64_t v = n - split_cols(n, gpsimd_share);
  if (v < n) f(v, n - v, true);
  if (v > 0) for_pieces(0, v, psum_cols > 0 ? psum_cols : v, [&](int64_t c0, int64_t len) { f(c0, len, false); });
}

// Layernorm's GpSimd columns [v, n) in two halves of multiples of
// kSplitAlign (one if it is too narrow to halve; none if v == n).
inline std::vector<std::pair<int64_t, int64_t>> gpsimd_halves(int64_t v, int64_t n) {
  const int64_t h = v + (n - v) / 2 / kSplitAlign * kSplitAlign;
  std::vector<std::pair<int64_t, int64_t>> r;
  if (h > v) r.push_back({v, h});
  if (n > h) r.push_back({h, n});
  return r;
}

// NeuronCore-v3 device plans (psum_cols > 0): [P, kNormPsumSlots, psum_cols]
// f32 in PSUM for VectorE's intermediates, handed out in turn so that ScalarE
// fills one slot while VectorE reads the other.
template <NeuronCore Nc>
class PsumSlots {
 public:
  PsumSlots(Nc& nc, const NormPlan& p) {
    if (p.psum_cols > 0) buf_.emplace(nc.psum(DType::kF32, p.rows, {kNormPsumSlots, p.psum_cols}));
  }
  bool on() const { return buf_.has_value(); }
  Tile next(int n, int64_t len) {  // [n, len] f32
    return buf_->partitions(0, n).index(0, int64_t(next_++ % kNormPsumSlots)).slice(0, 0, len);
  }

 private:
  std::optional<typename Nc::BufferT> buf_;
  size_t next_ = 0;
};

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
  PsumSlots<Nc> z_psum(nc, p);  // VectorE's columns of (x - mean) * gamma (* rstd)

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
  // -mean for ScalarE's x - mean, when a whole piece would give GpSimd columns.
  const bool gpsimd_cols = split_cols(std::min(D, std::min(p.block, p.op_chunk)), p.gpsimd_share) > 0;

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
  // ScalarE: rstd = rsqrt(var + eps); -mean for the GpSimd columns.
  auto rsqrt_of = [&](size_t ss, int n) {
    nc.activation(rstd[ss].partitions(0, n), ActFunc::kRsqrt,
                  mv[ss].partitions(0, n).slice(0, 1, 2), {.bias = eps_col.partitions(0, n)});
  };
  auto neg_mean_of = [&](size_t ss, int n) {
    if (gpsimd_cols)
      nc.activation(neg_mean[ss].partitions(0, n), ActFunc::kCopy,
                    mv[ss].partitions(0, n).slice(0, 0, 1), {.scale = -1.0f});
  };
  // The views of block [b0, b0 + len) of a tile in X buffer `slot`.
  struct Views {
    Tile xt, w, out, g, b;  // [n, len]: X's dtype, fp32, Y's dtype, gamma, beta
  };
  auto views = [&](const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
    const int n = rt.n;
    Views v;
    v.xt = x_tile(slot, n, len);
    v.w = p.work_tile ? w_buf[slot].partitions(0, n).slice(0, 0, len) : v.xt;
    v.out = y.dtype == DType::kF32 ? v.w : v.xt;
    const int64_t pb = p.params_resident ? b0 : 0;
    const size_t ps = p.params_resident ? 0 : slot % size_t(pbufs);
    v.g = g_buf[ps].partitions(0, n).slice(0, pb, pb + len);
    v.b = b_buf[ps].partitions(0, n).slice(0, pb, pb + len);
    return v;
  };
  // Of an instruction-sized piece of cl columns, VectorE's are [0, v) and
  // GpSimd's [v, cl) (its last gpsimd_share), in two halves (gpsimd_halves).
  auto gpsimd_split = [&](int64_t cl) { return cl - split_cols(cl, p.gpsimd_share); };
  // The GpSimd columns' first half-steps: ScalarE's fl(fl(x * 1) + -mean),
  // GpSimd's * gamma.
  auto gpsimd_front = [&](size_t ss, const RowTile& rt, const Views& v, int64_t len) {
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      for (const auto& [lo, hi] : gpsimd_halves(gpsimd_split(cl), cl)) {
        const Tile z = v.w.slice(0, c0 + lo, c0 + hi);
        nc.activation(z, ActFunc::kCopy, v.xt.slice(0, c0 + lo, c0 + hi),
                      {.bias = neg_mean[ss].partitions(0, rt.n)});
        nc.tensor_tensor(z, z, v.g.slice(0, c0 + lo, c0 + hi), AluOp::kMultiply, Engine::kGpSimd);
      }
    });
  };
  // Normalises block [b0, b0 + len) of a tile in X buffer `slot` and stores
  // it: y = fl(fl(fl(fl(x - mean) * gamma) * rstd) + beta) on every engine,
  // the same bits. GpSimd's columns (GpSimd has no scalar_tensor_tensor):
  // ScalarE's fl(fl(x * 1) + -mean), GpSimd's * gamma, ScalarE's
  // fl(fl(t * rstd) + -0), GpSimd's + beta, in two halves so that GpSimd
  // multiplies one while ScalarE scales the other. VectorE's columns:
  // scalar_tensor_tensor (x - mean) * gamma, then (t * rstd) + beta, or for
  // the first scalar_share of each range ScalarE's fl(fl(t * rstd) + -0) and
  // a VectorE tensor_tensor + beta. Program order per block: the GpSimd
  // columns' first half-steps; VectorE's (x - mean) * gamma with ScalarE's
  // * rstd; between(), which the resident pipeline fills with the next
  // tile's statistics (VectorE computes them while ScalarE scales);
  // VectorE's + beta; the GpSimd columns' second half-steps; the store.
  // VectorE's ranges pass through the PSUM slots in groups of
  // kNormPsumSlots, all but the last group without a gap.
  auto normalise = [&](size_t ss, const RowTile& rt, size_t slot, int64_t b0, int64_t len,
                       auto&& between) {
    const int n = rt.n;
    const Views v = views(rt, slot, b0, len);
    const Tile mean = mv[ss].partitions(0, n).slice(0, 0, 1), rs = rstd[ss].partitions(0, n);
    if (!p.params_resident) {
      nc.dma(v.g, c.gamma.broadcast(0, n).slice(1, b0, b0 + len));
      nc.dma(v.b, c.beta.broadcast(0, n).slice(1, b0, b0 + len));
    }
    gpsimd_front(ss, rt, v, len);
    std::vector<std::pair<int64_t, int64_t>> ranges;  // VectorE's (c0, m)
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      for_pieces(0, gpsimd_split(cl), z_psum.on() ? p.psum_cols : cl,
                 [&](int64_t lo, int64_t m) { ranges.push_back({c0 + lo, m}); });
    });
    const size_t group = z_psum.on() ? size_t(kNormPsumSlots) : std::max<size_t>(ranges.size(), 1);
    for (size_t g0 = 0; g0 < std::max<size_t>(ranges.size(), 1); g0 += group) {
      const size_t g1 = std::min(ranges.size(), g0 + group);
      std::vector<Tile> z(g1 - g0);  // VectorE's intermediates
      for (size_t i = g0; i < g1; ++i) {
        const auto [c0, m] = ranges[i];
        // In a PSUM slot (norm_psum_path), else in SBUF.
        z[i - g0] = z_psum.on() ? z_psum.next(n, m) : v.w.slice(0, c0, c0 + m);
        nc.scalar_tensor_tensor(z[i - g0], v.xt.slice(0, c0, c0 + m), AluOp::kSubtract, mean,
                                AluOp::kMultiply, v.g.slice(0, c0, c0 + m));
        const int64_t cs = split_cols(m, p.scalar_share);
        if (cs > 0) {
          const Tile zs = z[i - g0].slice(0, 0, cs);
          nc.activation(zs, ActFunc::kCopy, zs, {.scale = rs, .bias = -0.0f});
        }
      }
      if (g1 == ranges.size()) between();
      for (size_t i = g0; i < g1; ++i) {
        const auto [c0, m] = ranges[i];
        const Tile ym = v.out.slice(0, c0, c0 + m), bm = v.b.slice(0, c0, c0 + m);
        const int64_t cs = split_cols(m, p.scalar_share);
        if (cs < m)
          nc.scalar_tensor_tensor(ym.slice(0, cs, m), z[i - g0].slice(0, cs, m), AluOp::kMultiply,
                                  rs, AluOp::kAdd, bm.slice(0, cs, m));
        if (cs > 0)
          nc.tensor_tensor(ym.slice(0, 0, cs), z[i - g0].slice(0, 0, cs), bm.slice(0, 0, cs),
                           AluOp::kAdd);
      }
    }
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      for (const auto& [lo, hi] : gpsimd_halves(gpsimd_split(cl), cl)) {
        const Tile zg = v.w.slice(0, c0 + lo, c0 + hi);
        nc.activation(zg, ActFunc::kCopy, zg, {.scale = rs, .bias = -0.0f});
        nc.tensor_tensor(v.out.slice(0, c0 + lo, c0 + hi), zg, v.b.slice(0, c0 + lo, c0 + hi),
                         AluOp::kAdd, Engine::kGpSimd);
      }
    });
    nc.dma(y_rows(rt).slice(1, b0, b0 + len), v.out);
  };

  // Block [b0, b0 + len) of a row tile into X buffer `slot` (all of D when resident).
  auto load_block = [&](size_t slot, const RowTile& rt, int64_t b0, int64_t len) {
    nc.dma(x_tile(slot, rt.n, len), x_rows(rt).slice(1, b0, b0 + len));
    load_params();
  };
  if (p.resident) {
    const size_t nb = size_t(p.bufs);
    // With two buffers or more a tile's statistics are issued a tile early,
    // between the previous tile's two normalise parts (normalise's between).
    pipeline(
        tiles.size(), p.bufs, 1,
        [&](size_t k) { load_block(k % nb, tiles[k], 0, D); },
        [&](size_t k) {
          stats_of(k % kStatSlots, tiles[k].n, x_tile(k % nb, tiles[k].n, D), 0, D);
          aggregate(k % kStatSlots, tiles[k].n);
        },
        [&](size_t k, auto&& between) {
          const size_t ss = k % kStatSlots;
          rsqrt_of(ss, tiles[k].n);
          neg_mean_of(ss, tiles[k].n);
          normalise(ss, tiles[k], k % nb, 0, D, between);
        });
    return;
  }
  stream_blocks(
      tiles, D, p.block, p.bufs, load_block,
      [&](size_t ss, const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
        stats_of(ss, rt.n, x_tile(slot, rt.n, len), b0, len);
      },
      [&](size_t ss, int n) {
        aggregate(ss, n);
        rsqrt_of(ss, n);
        neg_mean_of(ss, n);
      },
      [&](size_t ss, const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
        normalise(ss, rt, slot, b0, len, [] {});
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
  PsumSlots<Nc> z_psum(nc, p);  // VectorE's columns of x * rstd

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
    // x * rstd into fp32 dst: the first columns on ScalarE, fl(fl(x * rstd) +
    // -0), the rest as a VectorE tensor_scalar, fl(x * rstd): the same bits.
    auto step = [&](const Tile& dst, const Tile& src) {
      const int64_t cl = dst.free_size(), cs = split_cols(cl, p.scalar_share);
      if (cs > 0)
        nc.activation(dst.slice(0, 0, cs), ActFunc::kCopy, src.slice(0, 0, cs),
                      {.scale = rs, .bias = -0.0f});
      if (cs < cl) nc.tensor_scalar(dst.slice(0, cs, cl), src.slice(0, cs, cl), AluOp::kMultiply, rs);
    };
    for_pieces(0, len, p.op_chunk, [&](int64_t c0, int64_t cl) {
      tensor_tensor_cols(cl, p.gpsimd_share, p.psum_cols, [&](int64_t a, int64_t m, bool gpsimd) {
        auto cols = [&](const Tile& tile) { return tile.slice(0, c0 + a, c0 + a + m); };
        if (p.rms_fused) {  // fl(fl(x * rstd) * gamma), as the two steps below
          nc.scalar_tensor_tensor(cols(out), cols(xt), AluOp::kMultiply, rs, AluOp::kMultiply,
                                  cols(g));
          return;
        }
        // VectorE's intermediate in a PSUM slot (norm_psum_path), else in SBUF.
        const Tile z = gpsimd || !z_psum.on() ? cols(w) : z_psum.next(n, m);
        step(z, cols(xt));
        nc.tensor_tensor(cols(out), z, cols(g), AluOp::kMultiply,
                         gpsimd ? Engine::kGpSimd : Engine::kVector);
      });
    });
    nc.dma(y_rows(rt).slice(1, b0, b0 + len), out);
  };

  // Block [b0, b0 + len) of a row tile into X buffer `slot` (all of D when resident).
  auto load_block = [&](size_t slot, const RowTile& rt, int64_t b0, int64_t len) {
    nc.dma(x_tile(slot, rt.n, len), x_rows(rt).slice(1, b0, b0 + len));
    load_params();
  };
  if (p.resident) {
    const size_t nb = size_t(p.bufs);
    // No skew: ScalarE computes the statistics and the first step alike.
    pipeline(
        tiles.size(), p.bufs, 0,
        [&](size_t k) { load_block(k % nb, tiles[k], 0, D); },
        [&](size_t k) {
          squares(k % kStatSlots, tiles[k].n, k % nb, 0, D);
          finish_stats(k % kStatSlots, tiles[k].n);
        },
        [&](size_t k, auto&&) { normalise(k % kStatSlots, tiles[k], k % nb, 0, D); });
    return;
  }
  stream_blocks(
      tiles, D, p.block, p.bufs, load_block,
      [&](size_t ss, const RowTile& rt, size_t slot, int64_t b0, int64_t len) {
        squares(ss, rt.n, slot, b0, len);
      },
      finish_stats, normalise);
}

}  // namespace ncore
