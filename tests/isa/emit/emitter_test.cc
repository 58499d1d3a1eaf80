// The device emitter and its dependency inference: small kernels whose
// dependencies are known by hand, a brute-force oracle on random programs
// (every real conflict must be ordered by the dependency DAG), the recorded
// allocation events and peaks, and the emit time of GEMM-sized programs.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <utility>
#include <vector>

#include <ncore/isa/emit/emitter.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32;
constexpr DType bf16 = DType::kBF16;

std::vector<uint32_t> deps(const Program& p, size_t i) {
  auto d = p.deps(i);
  return {d.begin(), d.end()};
}
using Ids = std::vector<uint32_t>;

TEST(Deps, ReadAfterWrite) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    nc.memset(t, 1.0f);       // 0
    nc.memset(u, 2.0f);       // 1
    nc.tensor_copy(u, t);     // 2: RAW on t, WAW on u
  });
  ASSERT_EQ(p.instrs.size(), 3u);
  EXPECT_EQ(deps(p, 0), Ids{});
  EXPECT_EQ(deps(p, 1), Ids{});
  EXPECT_EQ(deps(p, 2), (Ids{0, 1}));
}

TEST(Deps, WriteAfterReadAndWriteAfterWrite) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    auto v = nc.sbuf(f32, 128, {64});
    nc.memset(t, 1.0f);                        // 0
    nc.tensor_copy(u, t);                      // 1: reads t
    nc.tensor_copy(v, t, Engine::kGpSimd);     // 2: reads t
    nc.memset(t, 3.0f);                        // 3: WAW 0, WAR 1 and 2
    nc.memset(t, 4.0f);                        // 4: WAW 3 only; 1, 2 are behind 3
  });
  EXPECT_EQ(deps(p, 1), Ids{0});
  EXPECT_EQ(deps(p, 2), Ids{0});
  EXPECT_EQ(deps(p, 3), (Ids{0, 1, 2}));
  EXPECT_EQ(deps(p, 4), Ids{3});
}

TEST(Deps, DisjointPartitionsAreIndependent) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {64});
    auto u = nc.sbuf(f32, 128, {64});
    nc.memset(t.partitions(0, 32), 1.0f);                      // 0
    nc.memset(t.partitions(32, 32), 2.0f);                     // 1
    nc.tensor_copy(u.partitions(64, 64), t.partitions(64, 64)); // 2: untouched partitions
    nc.tensor_copy(u.partitions(0, 64), t.partitions(0, 64));   // 3: both writers
    nc.memset(t.partitions(96, 32), 0.0f);                     // 4: WAR on 2 only
  });
  EXPECT_EQ(deps(p, 1), Ids{});
  EXPECT_EQ(deps(p, 2), Ids{});
  EXPECT_EQ(deps(p, 3), (Ids{0, 1}));
  EXPECT_EQ(deps(p, 4), Ids{2});
}

TEST(Deps, DisjointBytesAreIndependent) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {64});  // 256 B per partition = 4 granules of 64 B
    auto u = nc.sbuf(f32, 128, {16});
    nc.memset(t.slice(0, 0, 16), 1.0f);     // 0: bytes [0, 64)
    nc.memset(t.slice(0, 16, 32), 2.0f);    // 1: bytes [64, 128)
    nc.tensor_copy(u, t.slice(0, 48, 64));  // 2: bytes [192, 256): never written
    nc.tensor_copy(u, t.slice(0, 8, 24));   // 3: straddles 0 and 1
    // A strided view's bounding range: columns 0 of a [4, 16] view span bytes [0, 196).
    nc.tensor_copy(u.slice(0, 0, 4), t.reshape({4, 16}).index(1, 0));
  });
  EXPECT_EQ(deps(p, 1), Ids{});
  EXPECT_EQ(deps(p, 2), Ids{});
  EXPECT_EQ(deps(p, 3), (Ids{0, 1, 2}));
  EXPECT_EQ(deps(p, 4), (Ids{0, 1, 3}));
}

TEST(Deps, PsumAccumulationChain) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto a = nc.hbm("a", bf16, {512, 128});
    auto b = nc.hbm("b", bf16, {512, 256});
    auto st = nc.sbuf(bf16, 128, {4, 128});  // [K, kt, M]
    auto mv = nc.sbuf(bf16, 128, {4, 256});  // [K, kt, N]
    for (int k = 0; k < 4; ++k) {             // 0..7: loads
      nc.dma(st.index(0, k), a.slice(0, 128 * k, 128 * k + 128));
      nc.dma(mv.index(0, k), b.slice(0, 128 * k, 128 * k + 128));
    }
    auto acc = nc.psum(f32, 128, {256});
    auto other = nc.psum(f32, 128, {256});
    for (int k = 0; k < 4; ++k) nc.matmul(acc, st.index(0, k), mv.index(0, k), k > 0);  // 8..11
    nc.matmul(other, st.index(0, 0), mv.index(0, 0), false);                            // 12
    auto out = nc.sbuf(f32, 128, {256});
    nc.tensor_copy(out, acc);  // 13
  });
  EXPECT_EQ(deps(p, 8), (Ids{0, 1}));
  EXPECT_EQ(deps(p, 9), (Ids{2, 3, 8}));
  EXPECT_EQ(deps(p, 10), (Ids{4, 5, 9}));
  EXPECT_EQ(deps(p, 11), (Ids{6, 7, 10}));
  EXPECT_EQ(deps(p, 12), (Ids{0, 1}));  // another bank: independent of the chain
  EXPECT_EQ(deps(p, 13), Ids{11});      // only the last link of the chain
}

TEST(Deps, MatmulAccumulateReadsItsDestination) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto st = nc.sbuf(bf16, 128, {128});
    auto mv = nc.sbuf(bf16, 128, {128});
    auto acc = nc.psum(f32, 128, {128});
    nc.memset(st, 1.0f);               // 0
    nc.memset(mv, 1.0f);               // 1
    nc.memset(acc, 5.0f);              // 2: PSUM initialised by the Vector engine
    nc.matmul(acc, st, mv, true);      // 3: RAW on acc
    nc.matmul(acc, st, mv, false);     // 4: WAW on acc
  });
  EXPECT_EQ(deps(p, 3), (Ids{0, 1, 2}));
  EXPECT_EQ(deps(p, 4), (Ids{0, 1, 3}));
}

TEST(Deps, ActivationAccumIsAWrite) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.sbuf(f32, 128, {64});
    auto y = nc.sbuf(f32, 128, {64});
    auto sum = nc.sbuf(f32, 128, {1});
    auto col = nc.sbuf(f32, 128, {1});
    nc.memset(x, 1.0f);                                                       // 0
    nc.memset(sum, 0.0f);                                                     // 1
    nc.activation(y, ActFunc::kExp, x, ActOpts{.scale = 1.0f, .bias = 0.0f, .accum = sum});  // 2
    nc.tensor_copy(col, sum);                                                 // 3: RAW on accum
  });
  EXPECT_EQ(deps(p, 2), (Ids{0, 1}));
  EXPECT_EQ(deps(p, 3), Ids{2});
}

TEST(Deps, SameEngineDepsAreKeptAndListsAreDeduplicated) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto t = nc.sbuf(f32, 128, {512});
    auto u = nc.sbuf(f32, 128, {512});
    nc.memset(t, 1.0f);                                // 0 (vector)
    nc.tensor_tensor(u, t, t, AluOp::kAdd);            // 1 (vector): t read twice
    for (int i = 0; i < 5; ++i) nc.tensor_copy(u, t);  // 2..6
    nc.memset(t, 0.0f);                                // 7: WAR on 1..6
  });
  EXPECT_EQ(deps(p, 1), Ids{0});
  EXPECT_EQ(deps(p, 2), (Ids{0, 1}));
  EXPECT_EQ(deps(p, 7), (Ids{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Deps, HbmOverlap) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto c = nc.hbm("c", f32, {256, 512}, HbmKind::kOutput);
    auto d = nc.hbm("d", f32, {256, 512}, HbmKind::kScratch);
    auto s = nc.sbuf(f32, 128, {512});
    auto r = nc.sbuf(f32, 128, {256});
    nc.memset(s, 1.0f);                                                  // 0
    nc.dma(c.slice(0, 0, 128), s);                                       // 1: rows 0..127
    nc.dma(r, c.slice(0, 0, 128).slice(1, 256, 512));                    // 2: RAW on 1
    nc.dma(r, c.slice(0, 128, 256).slice(1, 0, 256));                    // 3: rows never written
    nc.dma(r, d.slice(0, 0, 128).slice(1, 0, 256));                      // 4: other tensor
    nc.dma(c.slice(0, 128, 256), s);                                     // 5: WAR on 3
    nc.dma(c.slice(0, 0, 128), s);                                       // 6: WAW 1, WAR 2
  });
  EXPECT_EQ(deps(p, 1), Ids{0});
  EXPECT_EQ(deps(p, 2), Ids{1});
  EXPECT_EQ(deps(p, 3), Ids{2});     // WAW on r only
  EXPECT_EQ(deps(p, 4), Ids{3});     // WAW on r only
  EXPECT_EQ(deps(p, 5), (Ids{0, 3}));
  EXPECT_EQ(deps(p, 6), (Ids{0, 1, 2}));
}

// Partly overwritten HBM intervals keep their old writer outside the new write.
TEST(Deps, HbmIntervalsSplit) {
  Program p = emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", f32, {1, 1024}, HbmKind::kScratch);
    auto s = nc.sbuf(f32, 1, {300});
    auto whole = nc.sbuf(f32, 1, {1024});
    auto d1 = nc.sbuf(f32, 1, {50});
    auto d2 = nc.sbuf(f32, 1, {50});
    nc.memset(s, 1.0f);                                  // 0
    nc.dma(x.slice(1, 0, 300), s);                       // 1: writes [0, 300)
    nc.dma(x.slice(1, 100, 200), s.slice(0, 0, 100));    // 2: writes [100, 200)
    nc.dma(d1, x.slice(1, 0, 50));                       // 3: reads 1's part
    nc.dma(d2, x.slice(1, 250, 300));                    // 4: reads 1's part
    nc.dma(d1.slice(0, 0, 10), x.slice(1, 150, 160));    // 5: reads 2's part; WAW 3
    nc.dma(x.slice(1, 0, 1024), whole);                  // 6: everything
  });
  EXPECT_EQ(deps(p, 1), Ids{0});
  EXPECT_EQ(deps(p, 2), (Ids{0, 1}));
  EXPECT_EQ(deps(p, 3), Ids{1});
  EXPECT_EQ(deps(p, 4), Ids{1});
  EXPECT_EQ(deps(p, 5), (Ids{2, 3}));
  EXPECT_EQ(deps(p, 6), (Ids{1, 2, 3, 4, 5}));
}

TEST(Deps, FreedAndReusedMemoryWaitsForOldAccesses) {
  int64_t old_addr = -1, new_addr = -2;
  Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto keep = nc.sbuf(f32, 128, {64});
    {
      auto a = nc.sbuf(f32, 128, {64});
      old_addr = a.addr;
      nc.memset(a, 1.0f);          // 0
      nc.tensor_copy(keep, a);     // 1: reads a
    }
    auto b = nc.sbuf(f32, 128, {64});  // same bytes as a
    new_addr = b.addr;
    nc.memset(b, 2.0f);            // 2: WAW on 0, WAR on 1
  });
  ASSERT_EQ(old_addr, new_addr);
  EXPECT_EQ(deps(p, 2), (Ids{0, 1}));

  // alloc keep, alloc a, [0, 1], free a, alloc b, [2], free b, free keep.
  ASSERT_EQ(p.allocs.size(), 6u);
  const AllocEvent& free_a = p.allocs[2];
  EXPECT_TRUE(free_a.is_free);
  EXPECT_EQ(free_a.addr, old_addr);
  EXPECT_EQ(free_a.bytes, 256);
  EXPECT_EQ(free_a.before, 2u);
  EXPECT_EQ(free_a.loc.line, p.allocs[1].loc.line);  // where it was allocated
  EXPECT_FALSE(p.allocs[3].is_free);
  EXPECT_EQ(p.allocs[3].before, 2u);
  EXPECT_TRUE(p.allocs[4].is_free);
  EXPECT_EQ(p.allocs[4].addr, new_addr);
  EXPECT_EQ(p.allocs[4].before, 3u);
  EXPECT_TRUE(p.allocs[5].is_free);
  EXPECT_EQ(p.allocs[5].addr, p.allocs[0].addr);
}

TEST(Emitter, RecordsTablesPeaksAndGrid) {
  Program p = emit(kTrn1, [](DeviceCore& nc) {
    auto x = nc.hbm("x", bf16, {128, 1000});
    auto y = nc.hbm("y", f32, {128, 1000}, HbmKind::kOutput);
    auto t = nc.sbuf(bf16, 128, {1000});  // 2000 B -> 2048
    auto u = nc.sbuf(f32, 128, {10});     // 40 B -> 64, at 2048
    std::vector<DeviceCore::BufferT> banks;
    for (int i = 0; i < 3; ++i) banks.push_back(nc.psum(f32, 128, {512}));
    nc.dma(t, x);
    nc.memset(u, 0.0f);
    nc.dma(y.slice(1, 0, 10), u);
  }, /*program_id=*/2, /*num_programs=*/4);
  EXPECT_EQ(p.target, TargetId::kTrn1);
  EXPECT_EQ(p.program_id, 2);
  EXPECT_EQ(p.num_programs, 4);
  EXPECT_EQ(p.sbuf_peak_bytes, 2048 + 64);
  EXPECT_EQ(p.psum_peak_banks, 3);
  ASSERT_EQ(p.tensors.size(), 2u);
  EXPECT_EQ(p.tensors[0].name, "x");
  EXPECT_EQ(p.tensors[1].kind, HbmKind::kOutput);
  EXPECT_EQ(p.tensors[1].shape, (std::vector<int64_t>{128, 1000}));
  ASSERT_EQ(p.files.size(), 1u);
  EXPECT_NE(p.files[0].find("emitter_test.cc"), std::string::npos);
  EXPECT_EQ(p.instrs.size(), 3u);
  EXPECT_EQ(p.dep_begin.size(), 4u);
  EXPECT_EQ(p.allocs.size(), 10u);  // 5 allocations, 5 frees
}

// ---- Oracle: every conflicting pair is ordered by the dependency DAG. ----

// Exact footprint of one access, one bit per 4-byte word (every tile of the
// random programs is f32): SBUF [128 partitions][kSbufWords], PSUM
// [128][kPsumWords], then the two HBM tensors' elements.
constexpr int kSbufWords = 192, kPsumWords = 64, kHbmElems = 128 * 64;
constexpr int kPsumBase = 128 * kSbufWords, kHbmBase = kPsumBase + 128 * kPsumWords;
using Footprint = std::bitset<kHbmBase + 2 * kHbmElems>;

void mark(Footprint& fp, const Operand& o) {
  o.ap.for_each([&](int64_t e) {
    if (o.on_chip()) {
      const bool sbuf = o.space == Space::kSbuf;
      const int64_t word = o.addr / 4 + e;
      ASSERT_LT(word, sbuf ? kSbufWords : kPsumWords);
      for (int p = o.p0; p < o.p0 + o.np; ++p)
        fp.set(size_t((sbuf ? 0 : kPsumBase) + p * (sbuf ? kSbufWords : kPsumWords) + word));
    } else {
      fp.set(size_t(kHbmBase + int64_t(o.tensor()) * kHbmElems + e));
    }
  });
}

// Random instructions over a few buffers: quadrant-aligned compute views,
// arbitrary-partition DMAs, strided views, HBM row/column boxes, matmuls.
Program random_program(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  return emit(kTrn2, [&](DeviceCore& nc) {
    auto h0 = nc.hbm("h0", f32, {128, 64}, HbmKind::kScratch);
    auto h1 = nc.hbm("h1", f32, {128, 64}, HbmKind::kScratch);
    std::vector<DeviceCore::BufferT> sb;
    for (int i = 0; i < 3; ++i) sb.push_back(nc.sbuf(f32, 128, {64}));
    auto ps = nc.psum(f32, 128, {64});
    auto quad_view = [&](int np) {  // legal compute partition starts for np
      const int p0 = np > 64 ? 0 : np > 32 ? 64 * pick(0, 1) : 32 * pick(0, 3);
      return p0;
    };
    // A free view of `f` elements of a [*, 64] f32 tile: contiguous or strided.
    auto free_view = [&](const Tile& t, int f) -> Tile {
      if (f <= 8 && pick(0, 1)) {  // a column of the [8, 8] reshape: stride 8
        const int col = pick(0, 7), r0 = pick(0, 8 - f);
        return t.reshape({8, 8}).index(1, col).slice(0, r0, r0 + f);
      }
      const int off = pick(0, 64 - f);
      return t.slice(0, off, off + f);
    };
    for (int i = 0; i < n; ++i) {
      const int kind = pick(0, 5);
      const int np = std::array<int, 3>{32, 64, 128}[size_t(pick(0, 2))];
      const int f = pick(1, 8) * (pick(0, 1) ? 1 : 8);
      if (kind == 0) {
        Tile t = sb[size_t(pick(0, 2))].partitions(quad_view(np), np);
        nc.memset(free_view(t, f), float(i), pick(0, 1) ? Engine::kVector : Engine::kGpSimd);
      } else if (kind == 1) {
        const int pd = quad_view(np), ps_ = quad_view(np);
        Tile dst = sb[size_t(pick(0, 2))].partitions(pd, np);
        Tile src = sb[size_t(pick(0, 2))].partitions(ps_, np);
        nc.tensor_copy(free_view(dst, f), free_view(src, f));
      } else if (kind == 2 || kind == 3) {  // DMA, any partition start
        const int rows = pick(1, 40), r0 = pick(0, 128 - rows), p0 = pick(0, 128 - rows);
        const int c0 = pick(0, 64 - f);
        HbmTensor h = (pick(0, 1) ? h0 : h1).slice(0, r0, r0 + rows).slice(1, c0, c0 + f);
        Tile t = free_view(sb[size_t(pick(0, 2))].partitions(p0, rows), f);
        if (kind == 2) nc.dma(t, h);
        else nc.dma(h, t);
      } else if (kind == 4) {  // matmul [M, N] += [K, M]^T [K, N]
        const int m = pick(0, 1) ? 32 : 64;  // stationary free size <= the 64-wide buffers
        const int nn = pick(1, 64);
        const int n0 = pick(0, 64 - nn);
        nc.matmul(ps.partitions(0, m).slice(0, n0, n0 + nn),
                  sb[size_t(pick(0, 2))].slice(0, 0, m), sb[size_t(pick(0, 2))].slice(0, 0, nn),
                  pick(0, 1));
      } else {  // PSUM -> SBUF evacuation
        const int p0 = quad_view(np);
        nc.tensor_copy(free_view(sb[size_t(pick(0, 2))].partitions(p0, np), f),
                       free_view(ps.partitions(p0, np), f));
      }
    }
  });
}

TEST(Deps, InferDepsOfAListMatchesTheEmitter) {
  const Program p = random_program(7, 200);
  std::vector<uint32_t> begin, ids;
  infer_deps(kTrn2, p.instrs, begin, ids);
  EXPECT_EQ(begin, p.dep_begin);
  EXPECT_EQ(ids, p.dep_ids);
  EXPECT_FALSE(ids.empty());
}

TEST(Deps, OracleEveryConflictIsOrdered) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const Program p = random_program(seed, 250);
    const size_t n = p.instrs.size();
    std::vector<Footprint> reads(n), writes(n);
    for (size_t i = 0; i < n; ++i)
      for_each_access(p.instrs[i], [&](const Operand& o, bool w) { mark((w ? writes : reads)[i], o); });
    // reach[j][i]: i happens before j through the dependency DAG.
    std::vector<std::vector<bool>> reach(n, std::vector<bool>(n, false));
    size_t conflicts = 0, direct = 0;
    for (size_t j = 0; j < n; ++j) {
      const auto d = p.deps(j);
      ASSERT_TRUE(std::is_sorted(d.begin(), d.end()));
      ASSERT_TRUE(std::adjacent_find(d.begin(), d.end()) == d.end()) << "duplicate dep of " << j;
      for (uint32_t i : d) {
        ASSERT_LT(i, j);
        reach[j][i] = true;
        for (size_t k = 0; k < i; ++k)
          if (reach[i][k]) reach[j][k] = true;
      }
      for (size_t i = 0; i < j; ++i) {
        const bool conflict = (writes[i] & (reads[j] | writes[j])).any() ||
                              (reads[i] & writes[j]).any();
        if (!conflict) continue;
        ++conflicts;
        direct += std::binary_search(d.begin(), d.end(), uint32_t(i));
        EXPECT_TRUE(reach[j][i]) << "seed " << seed << ": instr " << j << " ("
                                 << opcode_name(p.instrs[j].op) << ") races with " << i << " ("
                                 << opcode_name(p.instrs[i].op) << ")";
      }
    }
    EXPECT_GT(conflicts, n);  // the generator does produce conflicts
    std::printf("seed %u: %zu instrs, %zu conflicting pairs (%zu direct), %zu dep edges\n", seed, n,
                conflicts, direct, p.dep_ids.size());
  }
}

// ---- Emit time of large programs (printed, not asserted). ----

// C[M, N] = AT[K, M]^T @ B[K, N]: the stationary K-tiles of an M block stay in
// SBUF; moving tiles rotate through 4 buffers; each [128, 512] PSUM bank is
// evacuated by the Vector engine and stored.
void gemm(DeviceCore& nc, int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kP = 128, kN = 512, kBufs = 4;
  auto at = nc.hbm("at", bf16, {K, M});
  auto b = nc.hbm("b", bf16, {K, N});
  auto c = nc.hbm("c", f32, {M, N}, HbmKind::kOutput);
  const int64_t kt = K / kP;
  std::vector<DeviceCore::BufferT> mv;
  for (int i = 0; i < kBufs; ++i) mv.push_back(nc.sbuf(bf16, kP, {kN}));  // [K, N] tiles
  for (int64_t m = 0; m < M / kP; ++m) {
    auto st = nc.sbuf(bf16, kP, {kt, kP});  // [K, kt, M]
    for (int64_t k = 0; k < kt; ++k)
      nc.dma(st.index(0, k), at.slice(0, k * kP, (k + 1) * kP).slice(1, m * kP, (m + 1) * kP));
    for (int64_t n = 0; n < N / kN; ++n) {
      auto acc = nc.psum(f32, kP, {kN});  // [M, N] f32
      for (int64_t k = 0; k < kt; ++k) {
        const Tile& tile = mv[size_t(k % kBufs)];
        nc.dma(tile, b.slice(0, k * kP, (k + 1) * kP).slice(1, n * kN, (n + 1) * kN));
        nc.matmul(acc, st.index(0, k), tile, k > 0);
      }
      auto out = nc.sbuf(f32, kP, {kN});
      nc.tensor_copy(out, acc);
      nc.dma(c.slice(0, m * kP, (m + 1) * kP).slice(1, n * kN, (n + 1) * kN), out);
    }
  }
}

// Wall and process CPU time of f(), in ms: the machine may be shared.
template <class F>
std::pair<double, double> time_ms(F&& f) {
  const auto w0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  f();
  const double cpu = double(std::clock() - c0) * 1e3 / CLOCKS_PER_SEC;
  return {std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count(),
          cpu};
}

TEST(EmitterTiming, Gemm4096x8192x8192) {
  Program p;
  const auto [wall, cpu] = time_ms([&] {
    p = emit(kTrn2, [](DeviceCore& nc) { gemm(nc, 4096, 8192, 8192); });
  });
  EXPECT_EQ(p.count(Opcode::kMatmul), size_t(32 * 64 * 16));
  std::printf("emit gemm [4096,8192]@[8192,8192]: %zu instrs (%zu matmul), %zu deps, "
              "%.1f ms wall, %.1f ms CPU\n",
              p.instrs.size(), p.count(Opcode::kMatmul), p.dep_ids.size(), wall, cpu);
}

// 100k instructions of an elementwise pipeline: load, two engines, store.
void softmax_like(DeviceCore& nc) {
  constexpr int64_t kTiles = 20000, kF = 512;
  auto x = nc.hbm("x", bf16, {128, kTiles * kF});
  auto y = nc.hbm("y", bf16, {128, kTiles * kF}, HbmKind::kOutput);
  for (int64_t i = 0; i < kTiles; ++i) {
    auto a = nc.sbuf(bf16, 128, {kF});
    auto b = nc.sbuf(f32, 128, {kF});
    auto mx = nc.sbuf(f32, 128, {1});
    nc.dma(a, x.slice(1, i * kF, (i + 1) * kF));
    nc.tensor_reduce(mx, AluOp::kMax, a);
    nc.activation(b, ActFunc::kExp, a, ActOpts{.scale = 1.0f, .bias = mx, .accum = {}});
    nc.tensor_copy(a, b);
    nc.dma(y.slice(1, i * kF, (i + 1) * kF), a);
  }
}

TEST(EmitterTiming, Synthetic100k) {
  Program p;
  const auto [wall, cpu] = time_ms([&] { p = emit(kTrn2, softmax_like); });
  EXPECT_EQ(p.instrs.size(), 100000u);
  std::printf("emit synthetic: %zu instrs, %zu deps, %.1f ms wall, %.1f ms CPU\n",
              p.instrs.size(), p.dep_ids.size(), wall, cpu);
}

}  // namespace
}  // namespace ncore
