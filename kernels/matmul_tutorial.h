// The four steps of the NKI matrix multiplication tutorial, as ncore kernels:
// result[M, N] = lhsT[K, M]^T @ rhs[K, N], lhsT given transposed so that no
// transpose happens on chip (nki-kernels-and-pain-points.md 1.1; the source is
// aws-neuron-sdk general/nki/examples/matrix_multiplication/
// matrix_multiplication_nki_kernels.py of Neuron 2.20, the version whose
// latencies the tutorial published). They exist to calibrate the cost model
// against those published trn1 numbers, so each follows the tutorial's loop
// order, tile shapes and DMA shapes exactly:
//
//   tiled         m(128) -> n(512) -> k(128); both operands reloaded for every
//                 matmul; one PSUM tile per (m, n).
//   hoist_load    all K tiles of lhsT loaded once per m, all K tiles of rhs once
//                 per (m, n).
//   block_free    M and N blocked by 2 tiles (256 x 1024); the whole K of a
//                 block's lhsT and rhs stays in SBUF.
//   fully_blocked TILES_IN_BLOCK_M/N/K = 16/2/8 (2048 x 1024 x 1024 blocks);
//                 loop order n-block -> k-block -> (rhs loads as [128, BLOCK_N])
//                 -> m-block -> (lhsT loads as [128, BLOCK_M]) -> bn -> bm -> bk;
//                 the bk chain accumulates in PSUM and VectorE adds each PSUM
//                 tile into an SBUF accumulator zeroed with memset; finished rows
//                 are packed into one [128, BLOCK_N] tile per M tile and stored
//                 with one DMA.
//
// Engines: DMA moves every operand (HBM -> SBUF) and result (SBUF -> HBM);
// TensorE runs the matmuls; VectorE copies PSUM to SBUF (casting to the result
// dtype) and, in fully_blocked, accumulates across K blocks.
//
// Buffering. NKI lets its compiler allocate the tiles a loop body declares;
// here allocation is explicit, and a tile declared in a loop body gets a ring
// of `bufs` buffers (TutorialOptions, default 2: the least that lets the next
// iteration's DMA overlap this iteration's compute). The large tile sets of
// hoist_load, block_free and fully_blocked fall back to one buffer when `bufs`
// of them do not fit in SBUF (with the tutorial's shapes on trn1 block_free and
// an fp32-accumulator fully_blocked do; the tutorial computes the same budget).
//
// Accumulator dtype. The tutorial's fully_blocked accumulator has the input
// dtype (bf16 in its benchmark), so partial sums across K blocks are rounded to
// bf16; FullyBlockedOptions::acc keeps that default for calibration and accepts
// kF32 for an accurate variant (which, at the tutorial's shape on trn1, leaves
// room for single-buffered operand sets only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include <ncore/isa/core.h>

namespace ncore {

inline constexpr int64_t kTutorialTileM = 128;  // gemm_stationary_fmax (facts §2)
inline constexpr int64_t kTutorialTileN = 512;  // gemm_moving_fmax = one PSUM bank of fp32
inline constexpr int64_t kTutorialTileK = 128;  // pmax: K lies on the partitions

struct TutorialOptions {
  int bufs = 2;  // buffers per loop-body tile (see the header comment)
};

struct FullyBlockedOptions {
  int tiles_in_block_m = 16;  // the tutorial's meta-parameters
  int tiles_in_block_n = 2;
  int tiles_in_block_k = 8;
  // SBUF accumulator dtype; default: lhsT's, as the tutorial. (The initializer
  // keeps -Wextra quiet about designated initializers that leave it out.)
  std::optional<DType> acc = std::nullopt;
  int bufs = 2;
};

namespace tutorial_detail {

struct Dims {
  int64_t m, n, k;
};

// Checks result[M, N] = lhsT[K, M]^T @ rhs[K, N] and that M, N, K are multiples
// of the kernel's block sizes (the tutorial asserts the same).
inline Dims check(const char* kernel, const HbmTensor& result, const HbmTensor& lhsT,
                  const HbmTensor& rhs, int64_t block_m, int64_t block_n, int64_t block_k,
                  const Loc& loc) {
  if (lhsT.ndim() != 2 || rhs.ndim() != 2 || result.ndim() != 2)
    throw Error(kernel,
                lhsT.ndim() != 2  ? "lhsT"
                : rhs.ndim() != 2 ? "rhs"
                                  : "result",
                "must be 2-D", where(loc));
  const Dims d{lhsT.shape(1), rhs.shape(1), lhsT.shape(0)};
  if (rhs.shape(0) != d.k)
    throw Error(kernel, "rhs", cat("has ", rhs.shape(0), " rows, lhsT has K = ", d.k), where(loc));
  if (result.shape(0) != d.m || result.shape(1) != d.n)
    throw Error(
        kernel, "result",
        cat("must be [", d.m, ", ", d.n, "], got [", result.shape(0), ", ", result.shape(1), "]"),
        where(loc));
  auto multiple = [&](const char* operand, const char* dim, int64_t v, int64_t q) {
    if (v % q != 0)
      throw Error(kernel, operand, cat(dim, " = ", v, " must be a multiple of ", q), where(loc));
  };
  multiple("lhsT", "M", d.m, block_m);
  multiple("rhs", "N", d.n, block_n);
  multiple("lhsT", "K", d.k, block_k);
  return d;
}

inline void check_bufs(const char* kernel, int bufs, const Loc& loc) {
  if (bufs < 1) throw Error(kernel, "options", cat("bufs must be >= 1, got ", bufs), where(loc));
}

// `depth` rotating buffers of one shape: the tile a loop body declares.
template <class Nc>
class Ring {
 public:
  // `loc`: the kernel line declaring the tile, named by allocation errors.
  Ring(Nc& nc, Space space, DType dtype, std::initializer_list<int64_t> free_shape, int depth,
       Loc loc = Loc::current()) {
    for (int i = 0; i < std::max(depth, 1); ++i)
      bufs_.push_back(space == Space::kSbuf ? nc.sbuf(dtype, 128, free_shape, loc)
                                            : nc.psum(dtype, 128, free_shape, loc));
  }
  const Tile& next() { return bufs_[next_++ % bufs_.size()]; }

 private:
  using BufferT = decltype(std::declval<Nc&>().sbuf(DType::kF32, 1, {1}));
  std::vector<BufferT> bufs_;
  size_t next_ = 0;
};

// Bytes an allocation takes: padded to the allocator's alignment.
inline int64_t padded(int64_t bytes) {
  return (bytes + Allocator::kAlign - 1) / Allocator::kAlign * Allocator::kAlign;
}

// Buffers for the big tile sets (`set_bytes` each, padded): `bufs` if `bufs`
// of them plus the `fixed` bytes fit in an SBUF partition, else 1 (as large
// as the tutorial's own budget allows).
inline int set_depth(const Target& t, int bufs, int64_t set_bytes, int64_t fixed_bytes) {
  return int64_t{bufs} * set_bytes + fixed_bytes <= t.sbuf_partition_bytes ? bufs : 1;
}

}  // namespace tutorial_detail

// Step 1: every matmul reloads both of its operands (102 FLOP/B for bf16).
template <NeuronCore Nc>
void matmul_tiled(Nc& nc, const HbmTensor& result, const HbmTensor& lhsT, const HbmTensor& rhs,
                  const TutorialOptions& opt = {}, Loc loc = Loc::current()) {
  namespace td = tutorial_detail;
  constexpr int64_t TM = kTutorialTileM, TN = kTutorialTileN, TK = kTutorialTileK;
  const td::Dims d = td::check("matmul_tiled", result, lhsT, rhs, TM, TN, TK, loc);
  td::check_bufs("matmul_tiled", opt.bufs, loc);
  td::Ring<Nc> lhsT_tile(nc, Space::kSbuf, lhsT.dtype, {TM}, opt.bufs);  // [K tile, M tile]
  td::Ring<Nc> rhs_tile(nc, Space::kSbuf, rhs.dtype, {TN}, opt.bufs);    // [K tile, N tile]
  td::Ring<Nc> res_psum(nc, Space::kPsum, DType::kF32, {TN}, opt.bufs);  // [M tile, N tile] f32
  td::Ring<Nc> res_sb(nc, Space::kSbuf, result.dtype, {TN}, opt.bufs);   // [M tile, N tile]
  for (int64_t m = 0; m < d.m / TM; ++m) {
    for (int64_t n = 0; n < d.n / TN; ++n) {
      const Tile& ps = res_psum.next();
      for (int64_t k = 0; k < d.k / TK; ++k) {
        const Tile& lt = lhsT_tile.next();
        const Tile& rt = rhs_tile.next();
        nc.dma(lt, lhsT.slice(0, k * TK, (k + 1) * TK).slice(1, m * TM, (m + 1) * TM));
        nc.dma(rt, rhs.slice(0, k * TK, (k + 1) * TK).slice(1, n * TN, (n + 1) * TN));
        nc.matmul(ps, lt, rt, /*accumulate=*/k > 0);
      }
      const Tile& sb = res_sb.next();
      nc.tensor_copy(sb, ps);  // PSUM -> SBUF, cast to the result dtype
      nc.dma(result.slice(0, m * TM, (m + 1) * TM).slice(1, n * TN, (n + 1) * TN), sb);
    }
  }
}

// Step 2: lhsT's K tiles are loaded once per m, rhs's once per (m, n).
template <NeuronCore Nc>
void matmul_hoist_load(Nc& nc, const HbmTensor& result, const HbmTensor& lhsT, const HbmTensor& rhs,
                       const TutorialOptions& opt = {}, Loc loc = Loc::current()) {
  namespace td = tutorial_detail;
  constexpr int64_t TM = kTutorialTileM, TN = kTutorialTileN, TK = kTutorialTileK;
  const td::Dims d = td::check("matmul_hoist_load", result, lhsT, rhs, TM, TN, TK, loc);
  td::check_bufs("matmul_hoist_load", opt.bufs, loc);
  const int64_t kt = d.k / TK;
  const int64_t small = int64_t{opt.bufs} * td::padded(TN * dtype_size(result.dtype));
  const int depth = td::set_depth(
      nc.target(), opt.bufs,
      td::padded(kt * TM * dtype_size(lhsT.dtype)) + td::padded(kt * TN * dtype_size(rhs.dtype)),
      small);
  td::Ring<Nc> lhsT_tiles(nc, Space::kSbuf, lhsT.dtype, {kt, TM}, depth);  // [K tile, kt, M tile]
  td::Ring<Nc> rhs_tiles(nc, Space::kSbuf, rhs.dtype, {kt, TN}, depth);    // [K tile, kt, N tile]
  td::Ring<Nc> res_psum(nc, Space::kPsum, DType::kF32, {TN}, opt.bufs);
  td::Ring<Nc> res_sb(nc, Space::kSbuf, result.dtype, {TN}, opt.bufs);
  for (int64_t m = 0; m < d.m / TM; ++m) {
    const Tile& lts = lhsT_tiles.next();
    for (int64_t k = 0; k < kt; ++k)
      nc.dma(lts.index(0, k), lhsT.slice(0, k * TK, (k + 1) * TK).slice(1, m * TM, (m + 1) * TM));
    for (int64_t n = 0; n < d.n / TN; ++n) {
      const Tile& rts = rhs_tiles.next();
      for (int64_t k = 0; k < kt; ++k)
        nc.dma(rts.index(0, k), rhs.slice(0, k * TK, (k + 1) * TK).slice(1, n * TN, (n + 1) * TN));
      const Tile& ps = res_psum.next();
      for (int64_t k = 0; k < kt; ++k)
        nc.matmul(ps, lts.index(0, k), rts.index(0, k), /*accumulate=*/k > 0);
      const Tile& sb = res_sb.next();
      nc.tensor_copy(sb, ps);
      nc.dma(result.slice(0, m * TM, (m + 1) * TM).slice(1, n * TN, (n + 1) * TN), sb);
    }
  }
}

// Step 3: M and N blocked by 2 tiles each; a block's lhsT and rhs cover all of K.
template <NeuronCore Nc>
void matmul_block_free(Nc& nc, const HbmTensor& result, const HbmTensor& lhsT, const HbmTensor& rhs,
                       const TutorialOptions& opt = {}, Loc loc = Loc::current()) {
  namespace td = tutorial_detail;
  constexpr int64_t TM = kTutorialTileM, TN = kTutorialTileN, TK = kTutorialTileK;
  constexpr int64_t kTilesM = 2, kTilesN = 2;  // TILES_IN_BLOCK_M/N of the tutorial
  const td::Dims d =
      td::check("matmul_block_free", result, lhsT, rhs, kTilesM * TM, kTilesN * TN, TK, loc);
  td::check_bufs("matmul_block_free", opt.bufs, loc);
  const int64_t kt = d.k / TK;
  const int64_t lhsT_set = kTilesM * kt * TM * dtype_size(lhsT.dtype);
  const int64_t rhs_set = kTilesN * kt * TN * dtype_size(rhs.dtype);
  const int64_t small = int64_t{opt.bufs} * td::padded(TN * dtype_size(result.dtype));
  const int depth =
      td::set_depth(nc.target(), opt.bufs, td::padded(lhsT_set) + td::padded(rhs_set), small);
  td::Ring<Nc> lhsT_tiles(nc, Space::kSbuf, lhsT.dtype, {kTilesM, kt, TM}, depth);
  td::Ring<Nc> rhs_tiles(nc, Space::kSbuf, rhs.dtype, {kTilesN, kt, TN}, depth);
  td::Ring<Nc> res_psum(nc, Space::kPsum, DType::kF32, {TN}, opt.bufs);
  td::Ring<Nc> res_sb(nc, Space::kSbuf, result.dtype, {TN}, opt.bufs);
  for (int64_t m = 0; m < d.m / (kTilesM * TM); ++m) {
    const Tile& lts = lhsT_tiles.next();  // [K tile, bm, kt, M tile]
    for (int64_t bm = 0; bm < kTilesM; ++bm) {
      const int64_t m0 = (m * kTilesM + bm) * TM;
      for (int64_t k = 0; k < kt; ++k)
        nc.dma(lts.index(0, bm).index(0, k),
               lhsT.slice(0, k * TK, (k + 1) * TK).slice(1, m0, m0 + TM));
    }
    for (int64_t n = 0; n < d.n / (kTilesN * TN); ++n) {
      const Tile& rts = rhs_tiles.next();  // [K tile, bn, kt, N tile]
      for (int64_t bn = 0; bn < kTilesN; ++bn) {
        const int64_t n0 = (n * kTilesN + bn) * TN;
        for (int64_t k = 0; k < kt; ++k)
          nc.dma(rts.index(0, bn).index(0, k),
                 rhs.slice(0, k * TK, (k + 1) * TK).slice(1, n0, n0 + TN));
      }
      for (int64_t bm = 0; bm < kTilesM; ++bm) {
        for (int64_t bn = 0; bn < kTilesN; ++bn) {
          const Tile& ps = res_psum.next();
          for (int64_t k = 0; k < kt; ++k)
            nc.matmul(ps, lts.index(0, bm).index(0, k), rts.index(0, bn).index(0, k),
                      /*accumulate=*/k > 0);
          const Tile& sb = res_sb.next();
          nc.tensor_copy(sb, ps);
          const int64_t m0 = (m * kTilesM + bm) * TM, n0 = (n * kTilesN + bn) * TN;
          nc.dma(result.slice(0, m0, m0 + TM).slice(1, n0, n0 + TN), sb);
        }
      }
    }
  }
}

// Step 4: all three dims blocked; partial sums across K blocks in SBUF.
template <NeuronCore Nc>
void matmul_fully_blocked(Nc& nc, const HbmTensor& result, const HbmTensor& lhsT,
                          const HbmTensor& rhs, const FullyBlockedOptions& opt = {},
                          Loc loc = Loc::current()) {
  namespace td = tutorial_detail;
  constexpr int64_t TM = kTutorialTileM, TN = kTutorialTileN, TK = kTutorialTileK;
  if (opt.tiles_in_block_m < 1 || opt.tiles_in_block_n < 1 || opt.tiles_in_block_k < 1)
    throw Error("matmul_fully_blocked", "options",
                cat("tiles in block must be >= 1, got ", opt.tiles_in_block_m, "/",
                    opt.tiles_in_block_n, "/", opt.tiles_in_block_k),
                where(loc));
  const int64_t tbm = opt.tiles_in_block_m, tbn = opt.tiles_in_block_n, tbk = opt.tiles_in_block_k;
  const int64_t BM = TM * tbm, BN = TN * tbn, BK = TK * tbk;
  const td::Dims d = td::check("matmul_fully_blocked", result, lhsT, rhs, BM, BN, BK, loc);
  td::check_bufs("matmul_fully_blocked", opt.bufs, loc);
  const int64_t nbm = d.m / BM, nbn = d.n / BN, nbk = d.k / BK;
  const DType acc = opt.acc.value_or(lhsT.dtype);

  // result_tiles[m][bm][bn] as one buffer [M tile, nbm * tbm * tbn, N tile].
  const int64_t acc_bytes = td::padded(nbm * tbm * tbn * TN * dtype_size(acc));
  const int64_t packed_bytes = td::padded(BN * dtype_size(acc));
  const int64_t set_bytes =
      td::padded(tbk * BN * dtype_size(rhs.dtype)) + td::padded(tbk * BM * dtype_size(lhsT.dtype));
  const int depth =
      td::set_depth(nc.target(), opt.bufs, set_bytes, acc_bytes + opt.bufs * packed_bytes);
  auto result_tiles = nc.sbuf(acc, 128, {nbm * tbm * tbn, TN});
  auto acc_tile = [&](int64_t m, int64_t bm, int64_t bn) -> Tile {
    return result_tiles.index(0, (m * tbm + bm) * tbn + bn);  // [M tile, N tile]
  };
  td::Ring<Nc> rhs_tiles(nc, Space::kSbuf, rhs.dtype, {tbk, BN}, depth);    // [K tile, bk, BLOCK_N]
  td::Ring<Nc> lhsT_tiles(nc, Space::kSbuf, lhsT.dtype, {tbk, BM}, depth);  // [K tile, bk, BLOCK_M]
  td::Ring<Nc> res_psum(nc, Space::kPsum, DType::kF32, {TN}, opt.bufs);     // [M tile, N tile]
  td::Ring<Nc> packed(nc, Space::kSbuf, acc, {BN}, opt.bufs);               // [M tile, BLOCK_N]

  for (int64_t n = 0; n < nbn; ++n) {
    for (int64_t m = 0; m < nbm; ++m)
      for (int64_t bm = 0; bm < tbm; ++bm)
        for (int64_t bn = 0; bn < tbn; ++bn) nc.memset(acc_tile(m, bm, bn), 0.0f);
    for (int64_t k = 0; k < nbk; ++k) {
      const Tile& rts = rhs_tiles.next();
      for (int64_t bk = 0; bk < tbk; ++bk) {
        const int64_t k0 = (tbk * k + bk) * TK;
        nc.dma(rts.index(0, bk), rhs.slice(0, k0, k0 + TK).slice(1, BN * n, BN * (n + 1)));
      }
      for (int64_t m = 0; m < nbm; ++m) {
        const Tile& lts = lhsT_tiles.next();
        for (int64_t bk = 0; bk < tbk; ++bk) {
          const int64_t k0 = (tbk * k + bk) * TK;
          nc.dma(lts.index(0, bk), lhsT.slice(0, k0, k0 + TK).slice(1, BM * m, BM * (m + 1)));
        }
        for (int64_t bn = 0; bn < tbn; ++bn) {
          for (int64_t bm = 0; bm < tbm; ++bm) {
            const Tile& ps = res_psum.next();
            for (int64_t bk = 0; bk < tbk; ++bk)
              nc.matmul(ps, lts.index(0, bk).slice(0, bm * TM, (bm + 1) * TM),
                        rts.index(0, bk).slice(0, bn * TN, (bn + 1) * TN), /*accumulate=*/bk > 0);
            const Tile a = acc_tile(m, bm, bn);
            nc.tensor_tensor(a, a, ps, AluOp::kAdd);
          }
        }
      }
    }
    for (int64_t m = 0; m < nbm; ++m) {
      for (int64_t bm = 0; bm < tbm; ++bm) {
        const Tile& pk = packed.next();
        for (int64_t bn = 0; bn < tbn; ++bn)
          nc.tensor_copy(pk.slice(0, bn * TN, (bn + 1) * TN), acc_tile(m, bm, bn));
        const int64_t r0 = (tbm * m + bm) * TM;
        nc.dma(result.slice(0, r0, r0 + TM).slice(1, BN * n, BN * (n + 1)), pk);
      }
    }
  }
}

}  // namespace ncore
