// Flash attention's plan: the options, the tiling constants, the operand
// checks and the per-target plan (step width, items, which P^T chunks the
// DMA queues transpose, SBUF / PSUM budget). kernels/attention.h turns the
// plan into the instruction stream; tests and the CLI read the plan to
// derive bounds and expected program structure.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <ncore/isa/core.h>

namespace ncore {

struct AttentionOptions {
  bool causal = false;
  std::optional<float> scale = std::nullopt;    // softmax scale; default 1 / sqrt(D)
  std::optional<HbmTensor> lse = std::nullopt;  // [B, Hq, Sq] f32 output
};

inline constexpr int64_t kAttnTileQ = 128;       // Q rows per tile: PSUM partitions, stationary free <= 128
inline constexpr int64_t kAttnTileK = 512;       // keys per QK^T matmul: moving free <= 512 = one PSUM bank of fp32
inline constexpr int64_t kAttnChunkK = 128;      // keys per PV matmul: the contraction is on the 128 partitions
inline constexpr int64_t kAttnMaxHeadDim = 128;  // D is QK^T's contraction, on the partitions
// Sub-tiles per step where P^T is 16-bit in PSUM (trn2, bf16): 1024-key
// steps halve the per-update work (alpha, o += pv, o *= alpha, the [P, 1]
// columns) per key; the scores then take 2 banks a slot, which fits PSUM only
// with the 16-bit P^T (facts section 2: 8 banks).
inline constexpr int64_t kAttnWideSubTiles = 2;
// Q tiles per work item: each K/V block load (2 x kt x D elements; V at a
// DMA descriptor per 128-key chunk and row) serves 32 steps, which leaves the
// trn2 DMA queues most of their time for the P transposes (16: the DMA
// queues bound the step); GQA groups cover it with their own heads. 64 does
// not fit SBUF (o and the output stage, two items each).
inline constexpr int64_t kAttnTilesPerItem = 32;
// P^T chunks of a full step (8) that the DMA queues transpose on trn2, in
// SBUF -> SBUF dma_transposes of two steps' chunks where it can (the per-row
// overhead, paid per instruction, is as much as 3 chunks' data): what they
// fit beside the K/V loads at the step time Vector and Scalar allow
// (docs/attention.md). Each spares TensorE a transpose and Vector/Scalar an
// evacuation.
inline constexpr int64_t kAttnDmaPtChunks = 4;
// Software pipeline: a step's work in eight stages, stage k of step s issued
// in iteration s + k. Each stage hands its results to another engine, and
// every instruction's producers were issued an iteration before it (but the
// exp's nb, a one-column GpSimd op), so no engine's in-order queue (facts
// section 1) stalls on work queued behind it.
//   0 QK^T (TensorE)
//   1 mask copy (Scalar, first in its iteration), select (GpSimd); rowmax (Vector)
//   2 nb, nb_new - nb (GpSimd); exp, at every 4th entry 4 alphas (ScalarE);
//     P transposes by DMA
//   3 P transposes (TensorE)
//   4 P^T evacuation (Vector, Scalar)
//   5 none: the DMA's P^T lands
//   6 PV (TensorE); l = l alpha + rowsum, o *= alpha (GpSimd)
//   7 o += pv (Vector); last in the iteration, finalize (GpSimd)
inline constexpr int64_t kAttnStages = 8;
// Schedule entries whose alphas one ScalarE exp computes: a [P, 1] exp costs
// as much as ~160 keys' exp (MIN_II plus the small-N overhead, facts
// section 3). Written in stage 2, read in stage 6: a group's first step
// reads its alphas in iteration 4j + 6, after the group's exp in stage 2 of
// entry 4j + 3, so 4 at most.
inline constexpr int64_t kAttnAlphaGroup = 4;
inline constexpr int64_t kAttnAlphaRing = 2;  // a group: stage 2 of its first .. stage 6 of its last
// A buffer written in stage a and read in stage b of the same step needs
// b - a + 1 slots, so the next step writing the slot comes after the read.
inline constexpr int64_t kAttnScoreSlots = 3;  // S: QK^T (0) .. exp (2)
inline constexpr int64_t kAttnMaskRing = 2;    // masked S: 1 .. 2
// Keys of a step the causal diagonal masks: those past its last whole chunk
// every row sees, under two chunks (docs/attention.md).
inline constexpr int64_t kAttnMaskKeys = 2 * kAttnChunkK;
inline constexpr int64_t kAttnColRing = 5;     // rowmax 1 .. 2; rowsum 2 .. 6
// P: exp (2) .. transposes (3), and slots for the DMA still reading it (a
// pair's from the iteration after); even, so that pairs are contiguous.
inline constexpr int64_t kAttnPRing = 6;
// P^T in SBUF: DMA (2, or 3 for a pair's first) or evacuation (4) .. PV (6); even.
inline constexpr int64_t kAttnPtRing = 4;
inline constexpr int64_t kAttnPvRing = 2;      // pv: 6 .. 7
// P^T in PSUM (3 .. 4) has 2 slots where PSUM holds them, else 1 (the plan).
// K/V blocks: loaded one block ahead in stage 0, V read in stage 6.
inline constexpr int64_t kAttnKvRing = kAttnStages + 1;
// Floats per [P, 1]-column slot: one 64 B dependency cell (isa/emit/deps.h
// tracks SBUF in 64 B cells), so columns of different steps or tiles never
// share a cell and falsely serialise.
inline constexpr int64_t kAttnColSlot = Allocator::kAlign / 4;
// Fraction of the PSUM P^T chunks that VectorE evacuates (ScalarE the rest),
// dealt out cumulatively over the steps. On the trn2 cost model VectorE is
// the busier engine (rowmax kt, the running max's [P, 1] update, which
// GpSimd cannot do, o += pv) so it takes none: measured best of 0, 1/32,
// 1/16, 1/8 and 1/4. A knob for other targets and step widths.
inline constexpr int64_t kAttnPtVectorShareNum = 0, kAttnPtVectorShareDen = 1;

// Where the plan runs: the device (the instruction stream the cost model
// times) or the host (the CPU reference, which executes each instruction as
// a pass over its tile, so fewer passes is what counts there).
enum class AttentionPlace { kDevice, kHost };

struct AttentionShape {
  int64_t b = 0, hq = 0, hkv = 0, sq = 0, skv = 0, d = 0;
  int64_t group() const { return hq / hkv; }
};

struct AttentionPlan {
  AttentionShape shape;
  int64_t q_tiles = 0;            // ceil(Sq / 128) per head
  int64_t sub_tiles = 1;          // 512-key QK^T sub-tiles per step
  int64_t block_k = 0;            // keys per step (at most): sub_tiles x 512
  int64_t k_blocks = 0;           // ceil(Skv / block_k)
  int64_t q_tiles_per_item = 0;   // consecutive Q tiles of one head in an item
  int64_t tiles = 0;              // Q tiles per item: group x q_tiles_per_item
  int64_t items = 0;              // B x Hkv x ceil(q_tiles / q_tiles_per_item)
  DType p_dtype = DType::kF32;    // P and P^T
  DType pt_psum_dtype = DType::kF32;  // the P transposes' PSUM output
  int64_t pt_psum_slots = 0;      // P^T slots in PSUM: 2, or 1 where PSUM is short
  int64_t dma_pt_chunks = 0;      // P^T chunks of a full step transposed by DMA
  bool dma_pt_whole = false;      // the host: every whole P^T chunk of every step by DMA
  bool pipelined = true;          // the kAttnStages pipeline; false (host): a step's stages in order
  int64_t alpha_group = kAttnAlphaGroup;  // schedule entries per alpha exp
  bool pe_transpose = false;      // Q^T and K^T by TensorE: no transposing DMA
  int64_t sbuf_bytes = 0;         // per partition
  int psum_banks = 0;
};

// Checks operand ranks, shapes and dtypes; throws an Error naming the operand.
inline AttentionShape attention_shape(const HbmTensor& o, const HbmTensor& q, const HbmTensor& k,
                                      const HbmTensor& v, const AttentionOptions& opt,
                                      const Loc& loc) {
  auto fail = [&](const char* operand, const std::string& problem) {
    throw Error("flash_attention", operand, problem, where(loc));
  };
  auto dims = [](const HbmTensor& x) {
    std::string s = "[";
    for (int d = 0; d < x.ndim(); ++d) s += cat(d ? ", " : "", x.shape(d));
    return s + "]";
  };
  for (const auto& [x, name] : {std::pair{&q, "Q"}, {&k, "K"}, {&v, "V"}, {&o, "O"}})
    if (x->ndim() != 4) fail(name, cat("must be 4-D [B, H, S, D], got ", dims(*x)));
  AttentionShape s{q.shape(0), q.shape(1), k.shape(1), q.shape(2), k.shape(2), q.shape(3)};
  if (s.d > kAttnMaxHeadDim)
    fail("Q", cat("head dim D = ", s.d, " exceeds ", kAttnMaxHeadDim, " (the partitions)"));
  if (k.shape(0) != s.b || k.shape(3) != s.d)
    fail("K", cat("must be [", s.b, ", Hkv, Skv, ", s.d, "] to match Q ", dims(q), ", got ",
                  dims(k)));
  if (s.hq % s.hkv != 0)
    fail("K", cat("has ", s.hkv, " heads, which do not divide Q's ", s.hq));
  for (int d = 0; d < 4; ++d)
    if (v.shape(d) != k.shape(d)) fail("V", cat("must have K's shape ", dims(k), ", got ", dims(v)));
  for (int d = 0; d < 4; ++d)
    if (o.shape(d) != q.shape(d)) fail("O", cat("must have Q's shape ", dims(q), ", got ", dims(o)));
  // Mask patterns are int32 (GpSimd's affine arithmetic).
  if (std::max(s.sq, s.skv) > std::numeric_limits<int32_t>::max() / 2)
    fail(s.sq > s.skv ? "Q" : "K", "sequence exceeds the int32 mask arithmetic");
  if (q.dtype != DType::kF32 && q.dtype != DType::kBF16)
    fail("Q", cat("dtype must be f32 or bf16, got ", dtype_name(q.dtype)));
  if (k.dtype != q.dtype) fail("K", cat("dtype ", dtype_name(k.dtype), " differs from Q's"));
  if (v.dtype != q.dtype) fail("V", cat("dtype ", dtype_name(v.dtype), " differs from Q's"));
  if (o.dtype != DType::kF32 && o.dtype != q.dtype)
    fail("O", cat("dtype must be f32 or Q's ", dtype_name(q.dtype), ", got ", dtype_name(o.dtype)));
  if (opt.lse) {
    const HbmTensor& l = *opt.lse;
    if (l.ndim() != 3 || l.shape(0) != s.b || l.shape(1) != s.hq || l.shape(2) != s.sq ||
        l.dtype != DType::kF32)
      fail("LSE", cat("must be [", s.b, ", ", s.hq, ", ", s.sq, "] f32, got ", dims(l), " ",
                      dtype_name(l.dtype)));
  }
  if (opt.scale && !(std::isfinite(*opt.scale) && *opt.scale > 0.0f))
    fail("scale", cat("must be finite and > 0, got ", *opt.scale));
  return s;
}

inline AttentionPlan plan_attention(const Target& t, const AttentionShape& s, DType in, DType out,
                                    AttentionPlace place = AttentionPlace::kDevice) {
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  auto buf = [](int64_t bytes) { return (bytes + Allocator::kAlign - 1) / Allocator::kAlign * Allocator::kAlign; };
  AttentionPlan p;
  p.shape = s;
  p.q_tiles = ceil_div(s.sq, kAttnTileQ);
  p.p_dtype = in == DType::kBF16 ? DType::kBF16 : DType::kF32;
  p.pt_psum_dtype = t.transpose_16bit_out && dtype_size(p.p_dtype) == 2 ? p.p_dtype : DType::kF32;
  p.sub_tiles = dtype_size(p.pt_psum_dtype) == 2 ? kAttnWideSubTiles : 1;
  p.block_k = p.sub_tiles * kAttnTileK;
  p.k_blocks = ceil_div(s.skv, p.block_k);
  p.q_tiles_per_item =
      std::min(p.q_tiles, std::max<int64_t>(1, kAttnTilesPerItem / s.group()));
  p.tiles = s.group() * p.q_tiles_per_item;
  p.items = s.b * s.hkv * ceil_div(p.q_tiles, p.q_tiles_per_item);
  p.pe_transpose = !t.dma_transpose_hw;
  p.dma_pt_chunks = t.dma_transpose_hw && p.sub_tiles > 1 ? kAttnDmaPtChunks : 0;
  // On the host a TensorE transpose is the same pass over P as a DMA
  // transpose plus a PSUM -> SBUF copy (the evacuation): every whole chunk
  // goes by DMA there, straight into SBUF.
  if (place == AttentionPlace::kHost && t.dma_transpose_hw) {
    p.dma_pt_chunks = p.block_k / kAttnChunkK;
    p.dma_pt_whole = true;
  }
  // The host runs instructions one after another, so the pipeline only
  // spreads a step's data over the iterations of seven others (~1.5 MiB
  // each, past L2): it runs each step's stages in order instead, reading S,
  // P and P^T while they are in cache, with an alpha exp per step (the
  // group's last step would come after its first one's PV).
  if (place == AttentionPlace::kHost) {
    p.pipelined = false;
    p.alpha_group = 1;
  }
  const int64_t ei = dtype_size(in), ep = dtype_size(p.p_dtype), G = p.tiles;
  const int64_t chunks = p.block_k / kAttnChunkK;
  p.sbuf_bytes = buf(2 * G * kAttnTileQ * ei)                      // Q^T, two items
                 + buf(kAttnKvRing * p.block_k * ei)               // K^T ring
                 + buf(kAttnKvRing * chunks * s.d * ei)            // V ring
                 + buf(kAttnPRing * p.block_k * ep)                // P ring
                 + buf(kAttnPtRing * chunks * kAttnTileQ * ep)     // P^T in SBUF
                 + buf(kAttnMaskRing * (kAttnColSlot + kAttnMaskKeys) * 4)  // masked scores, max column
                 + buf(2 * G * s.d * 4)                            // o, two items
                 + buf(2 * G * kAttnColSlot * 4)                   // l, nb ping-pong, two items
                 + buf(kAttnColRing * 3 * kAttnColSlot * 4)        // rowmax, rowsum, masked rowsum
                 + buf(kAttnAlphaRing * kAttnColSlot * 4)          // alpha groups
                 + buf(2 * 4)                                      // 1 / l, log l
                 + buf(2 * G * s.d * dtype_size(out))              // O stage, two items
                 + buf(2 * G * 4)                                  // LSE stage, two items
                 + (p.pe_transpose ? buf(kAttnTileK / kAttnChunkK * s.d * ei) : 0);  // natural Q/K rows
  // PSUM: score slots (a bank per sub-tile), P^T slots (a step's chunks: a
  // partial one transposes all of them on TensorE), the pv ring (one bank)
  // and a bank for the Q/K transposes where they run on TensorE.
  const int64_t bank = t.psum_bank_bytes;
  const int64_t pt_slot = chunks * kAttnTileQ * dtype_size(p.pt_psum_dtype);
  const int64_t fixed = kAttnScoreSlots * p.sub_tiles + 1 + (p.pe_transpose ? 1 : 0);
  p.pt_psum_slots = fixed + ceil_div(2 * pt_slot, bank) <= t.psum_banks ? 2 : 1;
  p.psum_banks = int(fixed + ceil_div(p.pt_psum_slots * pt_slot, bank));
  return p;
}

}  // namespace ncore
