// isa/validate.h through the front-end: Core<RecordingStub> records what
// reaches the backend. Every rule gets a call that breaks it; the error must
// name the instruction, the operand, the limit, the given value and this
// file's line of the call, and the instruction must not reach the backend.
// Rules a typed Core call cannot break (bad enums, hand-made operands) go
// straight to validate(), as the Program loader does.
//
// Convention: in `rejects(__LINE__, [&] { call; }, ...)` the call is on the
// line of __LINE__, so that line is the one the error must name.
#include <ncore/isa/core.h>
#include <ncore/isa/validate.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ncore {
namespace {

// A backend that only records: what the front-end hands over is the test's evidence.
struct RecordingStub {
  struct Event {
    Space space;
    int64_t addr, bytes;
  };
  explicit RecordingStub(const Target&) {}
  void on_file(uint32_t, std::string_view name) { files.emplace_back(name); }
  void on_hbm(uint32_t, const HbmDecl& d, void*) { hbm.push_back(d.name); }
  void on_alloc(Space s, int64_t addr, int64_t bytes, SrcLoc) {
    allocs.push_back({s, addr, bytes});
  }
  void on_free(Space s, int64_t addr, int64_t bytes) { frees.push_back({s, addr, bytes}); }
  void submit(const Instr& in) { instrs.push_back(in); }

  std::vector<std::string> files, hbm;
  std::vector<Event> allocs, frees;
  std::vector<Instr> instrs;
};
static_assert(CoreBackend<RecordingStub>);

using Nc = Core<RecordingStub>;
static_assert(NeuronCore<Nc>);

constexpr char kAt[] = "k.cc:7";  // the source line handed to validate() directly

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// `call` must throw an ncore::Error containing every part; returns it.
std::string expect_error(const std::function<void()>& call, const std::vector<std::string>& parts) {
  try {
    call();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << p << "\"";
    return msg;
  }
  ADD_FAILURE() << "did not throw; expected an error with \"" << parts.front() << "\"";
  return {};
}

// A Core call on `line` must be rejected naming `parts` and this file's line,
// and must not reach the backend.
void rejects_on(Nc& nc, int line, const std::function<void()>& call,
                std::initializer_list<std::string> parts) {
  const size_t before = nc.backend().instrs.size();
  std::vector<std::string> all(parts);
  all.push_back(cat(" at isa/validate_test.cc:", line));
  const std::string msg = expect_error(call, all);
  EXPECT_TRUE(ends_with(msg, cat("validate_test.cc:", line))) << msg;
  EXPECT_EQ(nc.backend().instrs.size(), before) << "a rejected instruction reached the backend";
}

// validate() on a hand-made instruction must fail naming `parts` and kAt.
void invalid(const Target& t, std::span<const HbmDecl> tensors, const Instr& in,
             std::initializer_list<std::string> parts) {
  std::vector<std::string> all(parts);
  all.push_back(cat(" at ", kAt));
  expect_error([&] { validate(t, tensors, in, kAt); }, all);
}

Tile tile(Space s, DType dt, int p0, int np, int64_t addr, std::initializer_list<int64_t> free) {
  return Tile{s, dt, p0, np, addr, AccessPattern::dense(free)};
}

// ---------------------------------------------------------------------------
// Happy paths: one valid call of every opcode, in opcode order.

struct EveryOpcode {
  std::vector<int> lines;  // source line of each call
  std::vector<Instr> instrs;
};

EveryOpcode issue_every_opcode(Nc& nc) {
  EveryOpcode r;
  std::vector<int>& l = r.lines;
  const HbmTensor x = nc.hbm("x", DType::kBF16, {128, 512});   // [128, 512] bf16
  const HbmTensor xt = nc.hbm("xt", DType::kBF16, {64, 128});  // [F, P] for dma_transpose
  auto a = nc.sbuf(DType::kBF16, 128, {512});                  // [128, 512] bf16
  auto w = nc.sbuf(DType::kBF16, 128, {128});                  // [K, M] bf16 stationary
  auto acc = nc.psum(DType::kF32, 128, {512});                 // [M, N] f32, one bank
  auto tp = nc.psum(DType::kF32, 64, {128});                   // [64, 128] f32 = [128, 64]^T
  auto f = nc.sbuf(DType::kF32, 128, {512});                   // [128, 512] f32
  auto xs = nc.sbuf(DType::kBF16, 128, {64});                  // [128, 64] bf16
  auto col = nc.sbuf(DType::kF32, 128, {1});                   // [128, 1] f32
  auto sum = nc.sbuf(DType::kF32, 128, {1});                   // [128, 1] f32
  auto idx = nc.sbuf(DType::kI32, 128, {64});                  // [128, 64] i32
  auto stats = nc.sbuf(DType::kF32, 128, {6});                 // [128, 6] f32
  auto mv = nc.sbuf(DType::kF32, 128, {2});                    // [128, 2] f32 (mean, var)
  const Affine causal{.base = 0, .channel = 1, .free = {-1, 0, 0, 0}};
  // Each call shares its line with the __LINE__ that records it.
  // clang-format off
  l.push_back(__LINE__); nc.dma(a, x);
  l.push_back(__LINE__); nc.dma_transpose(xs, xt);
  l.push_back(__LINE__); nc.matmul(acc, w, a, false);
  l.push_back(__LINE__); nc.transpose(tp, a.slice(0, 0, 64));
  l.push_back(__LINE__); nc.tensor_copy(f, acc);
  l.push_back(__LINE__); nc.tensor_tensor(f, f, a, AluOp::kAdd);
  l.push_back(__LINE__); nc.tensor_scalar(f, f, AluOp::kMultiply, col, AluOp::kAdd, 1.0f);
  l.push_back(__LINE__); nc.tensor_reduce(col, AluOp::kMax, f);
  l.push_back(__LINE__); nc.activation(f, ActFunc::kExp, f, {.scale = 2.0f, .bias = col, .accum = sum});
  l.push_back(__LINE__); nc.memset(f, 0.0f);
  l.push_back(__LINE__); nc.iota(idx, Affine{.base = 1, .channel = 64, .free = {1, 0, 0, 0}});
  l.push_back(__LINE__); nc.affine_select(f, f, causal, AluOp::kIsGe, -1e30f);
  l.push_back(__LINE__); nc.bn_stats(stats, f);
  l.push_back(__LINE__); nc.bn_aggr(mv, stats);
  l.push_back(__LINE__); nc.scalar_tensor_tensor(f, a, AluOp::kSubtract, col, AluOp::kMultiply, f);
  // clang-format on
  r.instrs = nc.backend().instrs;
  return r;
}

class EveryTargetTest : public testing::TestWithParam<const Target*> {};

TEST_P(EveryTargetTest, EveryOpcodeOnValidOperandsReachesTheBackend) {
  const Target& t = *GetParam();
  Nc nc(t);
  const EveryOpcode e = issue_every_opcode(nc);
  const std::vector<Instr>& rec = e.instrs;
  ASSERT_EQ(rec.size(), size_t(kNumOpcodes)) << "one call per opcode: a new opcode needs one here";
  ASSERT_EQ(nc.files().size(), 1u);
  EXPECT_TRUE(ends_with(nc.files()[0], "validate_test.cc")) << nc.files()[0];
  for (int i = 0; i < kNumOpcodes; ++i) {
    SCOPED_TRACE(std::string(opcode_name(Opcode(i))));
    EXPECT_EQ(rec[size_t(i)].op, Opcode(i));
    EXPECT_EQ(rec[size_t(i)].engine, default_engine(Opcode(i)));
    EXPECT_EQ(rec[size_t(i)].loc.line, uint32_t(e.lines[size_t(i)]));
    EXPECT_EQ(rec[size_t(i)].loc.file, 0u);
    // What the front-end accepted, a loaded program must be able to replay.
    EXPECT_NO_THROW(validate(t, nc.tensors(), rec[size_t(i)], kAt));
  }
  // Operands land in their documented roles (opcodes.h).
  const Instr& mm = rec[size_t(Opcode::kMatmul)];
  EXPECT_EQ(mm.dst().space, Space::kPsum);
  EXPECT_EQ(mm.opnd[1].ap.shape[0], 128);  // stationary [K, M]: M
  EXPECT_EQ(mm.opnd[2].ap.shape[0], 512);  // moving [K, N]: N
  EXPECT_FALSE(mm.has(kAccumulate));
  const Instr& ts = rec[size_t(Opcode::kTensorScalar)];
  EXPECT_EQ(ts.alu0, AluOp::kMultiply);
  EXPECT_EQ(ts.alu1, AluOp::kAdd);
  EXPECT_FALSE(ts.opnd[3].empty());  // scalar0: the column
  EXPECT_TRUE(ts.opnd[4].empty());   // scalar1: the immediate
  EXPECT_EQ(ts.imm[1], 1.0f);
  const Instr& act = rec[size_t(Opcode::kActivation)];
  EXPECT_FALSE(act.opnd[2].empty());  // accum
  const Instr& stt = rec[size_t(Opcode::kScalarTensorTensor)];
  EXPECT_EQ(stt.opnd[1].dtype, DType::kBF16);  // data
  EXPECT_EQ(stt.opnd[2].dtype, DType::kF32);   // tensor
  EXPECT_FALSE(stt.opnd[3].empty());           // scalar0: the column
  EXPECT_TRUE(stt.opnd[4].empty());
  EXPECT_EQ(stt.alu0, AluOp::kSubtract);
  EXPECT_EQ(stt.alu1, AluOp::kMultiply);
  EXPECT_FALSE(act.opnd[3].empty());  // bias tile
  EXPECT_TRUE(act.opnd[4].empty());   // scale immediate
  EXPECT_EQ(act.imm[0], 2.0f);
  EXPECT_EQ(rec[size_t(Opcode::kDma)].queue, 0);  // DMA queues round-robin
  EXPECT_EQ(rec[size_t(Opcode::kDmaTranspose)].queue, 1);
  // Every buffer was released with the size it was allocated with.
  const RecordingStub& b = nc.backend();
  ASSERT_EQ(b.frees.size(), b.allocs.size());
  for (const RecordingStub::Event& f : b.frees) {
    bool matched = false;
    for (const RecordingStub::Event& a : b.allocs)
      matched |= a.space == f.space && a.addr == f.addr && a.bytes == f.bytes;
    EXPECT_TRUE(matched) << space_name(f.space) << " free at " << f.addr << " of " << f.bytes
                         << " B";
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, EveryTargetTest, testing::ValuesIn(kAllTargets),
                         [](const testing::TestParamInfo<const Target*>& p) {
                           return std::string(p.param->name);
                         });

// ---------------------------------------------------------------------------
// Rules, on trn2 unless the rule is about the target.

class ValidateTest : public testing::Test {
 protected:
  void rejects(int line, const std::function<void()>& call,
               std::initializer_list<std::string> parts) {
    rejects_on(nc, line, call, parts);
  }
  // One recorded valid instruction of `op`, to break by hand.
  Instr valid(Opcode op) {
    Nc scratch(kTrn2);
    return issue_every_opcode(scratch).instrs[size_t(op)];
  }

  Nc nc{kTrn2};
  HbmTensor x = nc.hbm("x", DType::kBF16, {128, 512});  // [128, 512] bf16
  Nc::BufferT a = nc.sbuf(DType::kBF16, 128, {512});    // [128, 512] bf16
  Nc::BufferT w = nc.sbuf(DType::kBF16, 128, {128});    // [K, M] bf16
  Nc::BufferT f = nc.sbuf(DType::kF32, 128, {512});     // [128, 512] f32
  Nc::BufferT col = nc.sbuf(DType::kF32, 128, {1});     // [128, 1] f32
  Nc::BufferT c2 = nc.sbuf(DType::kF32, 128, {2});      // [128, 2] f32: not a column
  Nc::BufferT cb = nc.sbuf(DType::kBF16, 128, {1});     // [128, 1] bf16: not f32
  Nc::BufferT acc = nc.psum(DType::kF32, 128, {512});   // [128, 512] f32, one bank
};

// --- Every operand ---

TEST_F(ValidateTest, FreeRankAboveFour) {
  const Tile r5 = f.reshape({2, 2, 2, 2, 32});  // views allow 5 dims, engines 4
  rejects(__LINE__, [&] { nc.tensor_copy(r5, r5); },
          {"tensor_copy: dst free rank 5 outside 1..4 (trn2)"});
}

TEST_F(ValidateTest, PartitionsOutsideTheCore) {
  const Tile p129 = tile(Space::kSbuf, DType::kF32, 0, 129, f.addr, {512});
  rejects(__LINE__, [&] { nc.tensor_copy(f, p129); },
          {"tensor_copy: src partitions [0, 129) outside [0, 128) (trn2)"});
  const Tile tail = tile(Space::kSbuf, DType::kF32, 120, 16, f.addr, {512});
  rejects(__LINE__, [&] { nc.tensor_copy(tail, tail); },
          {"tensor_copy: dst partitions [120, 136) outside [0, 128) (trn2)"});
}

TEST_F(ValidateTest, BytesBeyondThePartition) {
  const int64_t cap = kTrn2.sbuf_partition_bytes;  // 229376
  const Tile end = tile(Space::kSbuf, DType::kF32, 0, 128, cap - 1024, {512});
  rejects(__LINE__, [&] { nc.tensor_copy(end, f); },
          {"tensor_copy: dst bytes [228352, 230400) exceed the 229376 B sbuf partition (trn2)"});
  const Tile pend = tile(Space::kPsum, DType::kF32, 0, 128, 16384 - 1024, {512});
  rejects(__LINE__, [&] { nc.tensor_copy(f, pend); },
          {"tensor_copy: src bytes [15360, 17408) exceed the 16384 B psum partition (trn2)"});
  const Tile neg = tile(Space::kSbuf, DType::kF32, 0, 128, -64, {512});
  rejects(__LINE__, [&] { nc.tensor_copy(f, neg); },
          {"tensor_copy: src address -64 is outside the 229376 B sbuf partition (trn2)"});
}

TEST_F(ValidateTest, SbufCapacityIsTheTargets) {
  // Bytes [190 KiB, 194 KiB): inside trn2's 224 KiB, across the end of trn1/inf2's 192 KiB.
  const Tile high = tile(Space::kSbuf, DType::kF32, 0, 128, 190 * 1024, {1024});
  Nc trn2(kTrn2);
  EXPECT_NO_THROW(trn2.tensor_copy(high, high));
  for (const Target* t : {&kTrn1, &kInf2}) {
    Nc v2(*t);
    rejects_on(v2, __LINE__, [&] { v2.tensor_copy(high, high); },
               {cat("tensor_copy: dst bytes [194560, 198656) exceed the 196608 B sbuf partition (",
                    t->name, ")")});
  }
}

TEST_F(ValidateTest, UnknownTensorId) {
  const HbmTensor ghost{9, DType::kBF16, 128 * 512, AccessPattern::dense({128, 512})};
  rejects(__LINE__, [&] { nc.dma(a, ghost); },
          {"dma: src tensor id 9 is not declared (1 tensors)"});
}

TEST_F(ValidateTest, HbmDtypeIsTheDeclaredOne) {
  HbmTensor as_f32 = x;
  as_f32.dtype = DType::kF32;
  rejects(__LINE__, [&] { nc.dma(f, as_f32); },
          {"dma: src dtype f32 differs from tensor 'x' (bf16)"});
}

TEST_F(ValidateTest, HbmViewOutsideTheTensor) {
  HbmTensor shifted = x;  // views cannot do this; a hand-made tensor can
  shifted.ap.offset = 1;
  rejects(__LINE__, [&] { nc.dma(a, shifted); },
          {"dma: src view reaches element 65536 of tensor 'x' with 65536 elements"});
  HbmTensor strided = x.slice(0, 0, 64);
  strided.ap.stride[0] = 1040;  // last row starts at 63 * 1040: 511 more is past the end
  rejects(__LINE__, [&] { nc.dma(a.partitions(0, 64), strided); },
          {"dma: src view reaches element 66031 of tensor 'x' with 65536 elements"});
}

TEST_F(ValidateTest, HbmPartitionsAreDimZero) {
  Instr in = valid(Opcode::kDma);  // dst [128, 512] sbuf, src x [128, 512]
  in.opnd[1].np = 64;              // a hostile file's claim
  invalid(kTrn2, nc.tensors(), in, {"dma: src partitions [0, 64) differ from dim 0 [0, 128)"});
}

TEST_F(ValidateTest, ShapesStridesAndOffsetsAreBounded) {
  const Instr base = valid(Opcode::kTensorCopy);  // dst f [128, 512], src acc [128, 512]
  Instr in = base;
  in.opnd[1].ap.shape[0] = 0;
  invalid(kTrn2, {}, in, {"tensor_copy: src dim 0 size 0 is not in 1..1099511627776"});
  in = base;
  in.opnd[1].ap.stride[0] = -1;
  invalid(kTrn2, {}, in, {"tensor_copy: src dim 0 stride -1 is not in 0..2147483648"});
  in = base;
  in.opnd[1].ap.stride[0] = int64_t{1} << 62;  // (shape - 1) * stride would overflow
  invalid(kTrn2, {}, in, {"tensor_copy: src dim 0 stride 4611686018427387904 is not in 0.."});
  in = base;
  in.opnd[1].ap = AccessPattern::dense({int64_t{1} << 21, int64_t{1} << 21});  // 2^42 elements
  in.opnd[1].ap.stride[0] = 0;  // a broadcast: only the count is too big
  invalid(kTrn2, {}, in, {"tensor_copy: src dim 1 size 2097152 is not in 1..524288"});
  in = base;
  in.opnd[1].ap.offset = -3;
  invalid(kTrn2, {}, in, {"tensor_copy: src offset -3 is not in 0..1099511627776"});
  in = base;
  in.opnd[1].ap.ndim = 0;
  invalid(kTrn2, {}, in, {"tensor_copy: src free rank 0 outside 1..4 (trn2)"});
  in = valid(Opcode::kDma);
  in.opnd[1].ap.ndim = 6;
  invalid(kTrn2, nc.tensors(), in, {"dma: src rank 6 outside 1..5"});
}

TEST_F(ValidateTest, UnusedOperandSlotsAreEmpty) {
  Instr in = valid(Opcode::kMemset);
  in.opnd[1] = Operand(f);
  invalid(kTrn2, {}, in,
          {"memset: operand slot 1 is unused and must be empty, got sbuf[0:128, 512] f32"});
  in = valid(Opcode::kTensorScalar);
  in.opnd[2] = Operand(col);
  invalid(kTrn2, {}, in, {"tensor_scalar: operand slot 2 is unused and must be empty"});
  in = valid(Opcode::kMatmul);
  in.opnd[3] = Operand(col);
  invalid(kTrn2, {}, in, {"matmul: operand slot 3 is unused and must be empty"});
  in = valid(Opcode::kScalarTensorTensor);
  in.opnd[4] = Operand(col);
  invalid(kTrn2, {}, in, {"scalar_tensor_tensor: operand slot 4 is unused and must be empty"});
}

TEST_F(ValidateTest, MissingOperands) {
  Instr in = valid(Opcode::kMatmul);
  in.opnd[2] = Operand();
  invalid(kTrn2, {}, in, {"matmul: moving is missing"});
  in = valid(Opcode::kScalarTensorTensor);
  in.opnd[2] = Operand();
  invalid(kTrn2, {}, in, {"scalar_tensor_tensor: tensor is missing"});
  in = valid(Opcode::kTensorCopy);
  in.opnd[0] = Operand();
  invalid(kTrn2, {}, in, {"tensor_copy: dst is missing"});
}

// --- Partition starts (facts §2): 65-128 at 0, 33-64 at 0/64, <=32 at 0/32/64/96 ---

TEST_F(ValidateTest, PartitionStartRules) {
  rejects(__LINE__, [&] { nc.tensor_copy(f.partitions(32, 64), f.partitions(32, 64)); },
          {"tensor_copy: dst partition start 32 is illegal for 64 partitions "
           "(65-128 start at 0, 33-64 at 0/64, <=32 at 0/32/64/96)"});
  rejects(__LINE__, [&] { nc.tensor_copy(f.partitions(0, 16), f.partitions(16, 16)); },
          {"tensor_copy: src partition start 16 is illegal for 16 partitions"});
  rejects(__LINE__, [&] { nc.matmul(acc, w.partitions(64, 64), a.partitions(32, 64), false); },
          {"matmul: moving partition start 32 is illegal for 64 partitions"});
  // Count every legal (start, count): 64 counts of 65-128 at 0, 32 counts of
  // 33-64 at 0 or 64, 32 counts of 1-32 at four starts = 64 + 64 + 128.
  int legal = 0;
  for (int p0 = 0; p0 < 128; ++p0)
    for (int np = 1; p0 + np <= 128; ++np) {
      const Tile v = f.partitions(p0, np);
      try {
        nc.tensor_copy(v, v);
        ++legal;
        const bool by_rule = np > 64 ? p0 == 0 : np > 32 ? p0 % 64 == 0 : p0 % 32 == 0;
        EXPECT_TRUE(by_rule) << "[" << p0 << ", " << p0 + np << ") accepted";
      } catch (const Error&) {
      }
    }
  EXPECT_EQ(legal, 256);
  // DMA engines address any partition range.
  EXPECT_NO_THROW(nc.dma(a.partitions(5, 7), x.slice(0, 0, 7)));
}

// --- Engines and spaces ---

TEST_F(ValidateTest, GpSimdDoesNotTouchPsum) {
  auto pidx = nc.psum(DType::kI32, 128, {64});
  rejects(__LINE__, [&] { nc.iota(pidx, Affine{}); },
          {"iota: dst is in psum, which GpSimd cannot access"});
  rejects(__LINE__, [&] { nc.tensor_copy(f, acc, Engine::kGpSimd); },
          {"tensor_copy: src is in psum, which GpSimd cannot access"});
  rejects(__LINE__, [&] { nc.memset(acc, 0.0f, Engine::kGpSimd); },
          {"memset: dst is in psum, which GpSimd cannot access"});
  rejects(__LINE__, [&] { nc.affine_select(f, acc, Affine{}, AluOp::kIsGe, 0.0f); },
          {"affine_select: src is in psum, which GpSimd cannot access"});
  // The Vector engine may read PSUM.
  EXPECT_NO_THROW(nc.tensor_copy(f, acc, Engine::kVector));
}

TEST_F(ValidateTest, FreeSizeLimitsFromSbufAndPsum) {
  auto big = nc.sbuf(DType::kFP8E4M3, 128, {65537});  // [128, 64K + 1] fp8: fits SBUF
  rejects(__LINE__, [&] { nc.tensor_copy(big, big); },
          {"tensor_copy: dst free size 65537 exceeds 65536 from sbuf (trn2)"});
  rejects(__LINE__, [&] { nc.activation(big, ActFunc::kCopy, big); },
          {"activation: dst free size 65537 exceeds 65536 from sbuf (trn2)"});
  EXPECT_NO_THROW(nc.tensor_copy(big.slice(0, 0, 65536), big.slice(0, 1, 65537)));
  auto pbig = nc.psum(DType::kFP8E4M3, 128, {4097});  // [128, 4K + 1] fp8: fits PSUM
  rejects(__LINE__, [&] { nc.tensor_copy(big.slice(0, 0, 4097), pbig); },
          {"tensor_copy: src free size 4097 exceeds 4096 from psum (trn2)"});
  EXPECT_NO_THROW(nc.tensor_copy(big.slice(0, 0, 4096), pbig.slice(0, 0, 4096)));
}

TEST_F(ValidateTest, ComputeEnginesReadTilesNotHbm) {
  Instr in = valid(Opcode::kTensorCopy);
  in.opnd[1] = Operand(x);
  invalid(kTrn2, nc.tensors(), in, {"tensor_copy: src must be an SBUF/PSUM tile"});
}

TEST_F(ValidateTest, EngineAllowedMatchesTheFacts) {
  // facts §3: tensor_copy on V/S/GpSimd, tensor_scalar also on S and GpSimd,
  // memset and tensor_tensor also on GpSimd; everything else on its own engine.
  using E = Engine;
  const std::vector<std::set<Engine>> allowed = {{E::kDma},
                                                 {E::kDma},
                                                 {E::kTensor},
                                                 {E::kTensor},  // dma .. transpose
                                                 {E::kVector, E::kScalar, E::kGpSimd},
                                                 {E::kVector, E::kGpSimd},  // tensor_copy, _tensor
                                                 {E::kVector, E::kScalar, E::kGpSimd},
                                                 {E::kVector},
                                                 {E::kScalar},  // _scalar, _reduce, act
                                                 {E::kVector, E::kGpSimd},
                                                 {E::kGpSimd},
                                                 {E::kGpSimd},  // memset, iota, a_select
                                                 {E::kVector},
                                                 {E::kVector},   // bn_stats, bn_aggr
                                                 {E::kVector}};  // scalar_tensor_tensor
  ASSERT_EQ(allowed.size(), size_t(kNumOpcodes));
  Nc scratch(kTrn2);
  const std::vector<Instr> happy = issue_every_opcode(scratch).instrs;
  for (int op = 0; op < kNumOpcodes; ++op) {
    for (int e = 0; e < kNumEngines; ++e) {
      SCOPED_TRACE(cat(opcode_name(Opcode(op)), " on ", engine_name(Engine(e))));
      const bool ok = allowed[size_t(op)].count(Engine(e)) > 0;
      EXPECT_EQ(engine_allowed(Opcode(op), Engine(e)), ok);
      Instr in = happy[size_t(op)];
      in.engine = Engine(e);
      bool psum = false;
      for (const Operand& o : in.opnd) psum |= o.space == Space::kPsum;
      if (ok && !(Engine(e) == Engine::kGpSimd && psum)) {
        EXPECT_NO_THROW(validate(kTrn2, scratch.tensors(), in, kAt));
      } else if (!ok) {
        invalid(kTrn2, scratch.tensors(), in,
                {cat(opcode_name(Opcode(op)), ": cannot run on the ", engine_name(Engine(e)),
                     " engine")});
      }
    }
  }
  rejects(__LINE__, [&] { nc.tensor_copy(f, a, Engine::kTensor); },
          {"tensor_copy: cannot run on the tensor engine"});
  rejects(__LINE__, [&] { nc.memset(f, 0.0f, Engine::kScalar); },
          {"memset: cannot run on the scalar engine"});
  EXPECT_NO_THROW(nc.tensor_scalar(f, f, AluOp::kAdd, 1.0f, AluOp::kBypass, 0.0f, false, false,
                                   Engine::kScalar));
  EXPECT_NO_THROW(nc.tensor_tensor(f, f, a, AluOp::kMultiply, Engine::kGpSimd));
  // Per-engine ALU ops: GpSimd adds and multiplies; ScalarE's tensor_scalar
  // is multiply + add, multiply or add.
  EXPECT_NO_THROW(nc.tensor_scalar(f, f, AluOp::kMultiply, 2.0f, AluOp::kAdd, 1.0f, false, false,
                                   Engine::kGpSimd));
  EXPECT_NO_THROW(nc.tensor_scalar(f, f, AluOp::kMultiply, 2.0f, AluOp::kAdd, 1.0f, false, false,
                                   Engine::kScalar));
  rejects(__LINE__, [&] { nc.tensor_tensor(f, f, a, AluOp::kMax, Engine::kGpSimd); },
          {"tensor_tensor: op max cannot run on the gpsimd engine (add and multiply only)"});
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f, AluOp::kMultiply, 2.0f, AluOp::kMin, 1.0f, false, false, Engine::kGpSimd); },
          {"tensor_scalar: ops multiply, min cannot run on the gpsimd engine (add and multiply only)"});
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f, AluOp::kAdd, 2.0f, AluOp::kMultiply, 1.0f, false, false, Engine::kScalar); },
          {"tensor_scalar: ops add, multiply cannot run on the scalar engine (multiply + add, multiply or add only)"});
}

TEST_F(ValidateTest, BadEnumValues) {
  const Instr base = valid(Opcode::kTensorCopy);
  Instr in = base;
  in.op = Opcode(200);
  invalid(kTrn2, {}, in, {"unknown opcode 200 (15 opcodes)"});
  in = base;
  in.engine = Engine(9);
  invalid(kTrn2, {}, in, {"tensor_copy: unknown engine 9 (5 engines)"});
  in = base;
  in.alu0 = AluOp(77);
  invalid(kTrn2, {}, in, {"tensor_copy: unknown ALU op 77/0 (13 ops)"});
  in = base;
  in.alu1 = AluOp(13);
  invalid(kTrn2, {}, in, {"tensor_copy: unknown ALU op 0/13 (13 ops)"});
  in = base;
  in.func = ActFunc(99);
  invalid(kTrn2, {}, in, {"tensor_copy: unknown activation function 99 (13 functions)"});
  in = base;
  in.opnd[1].dtype = DType(9);
  invalid(kTrn2, {}, in, {"tensor_copy: src has unknown dtype 9"});
  in = base;
  in.opnd[1].space = Space(9);
  invalid(kTrn2, {}, in, {"tensor_copy: src has unknown memory space 9"});
}

// --- DMA ---

TEST_F(ValidateTest, DmaShapesAndSpaces) {
  rejects(__LINE__, [&] { nc.dma(acc, x); }, {"dma: dst DMA reaches HBM and SBUF only, got psum"});
  rejects(__LINE__, [&] { nc.dma(x, acc); }, {"dma: src DMA reaches HBM and SBUF only, got psum"});
  rejects(__LINE__, [&] { nc.dma(a, x.slice(0, 0, 64)); },
          {"dma: src has 64 partitions, dst has 128"});
  rejects(__LINE__, [&] { nc.dma(a, x.slice(1, 0, 256)); },
          {"dma: src free size 256 differs from dst's 512"});
  EXPECT_NO_THROW(nc.dma(f, x));                    // cast bf16 -> f32
  EXPECT_NO_THROW(nc.dma(x, a));                    // store
  EXPECT_NO_THROW(nc.dma(a.reshape({4, 128}), x));  // free dims need only match in size
  EXPECT_NO_THROW(nc.dma(a, x.reshape({128, 4, 128})));
  EXPECT_NO_THROW(nc.dma(a.partitions(0, 64), a.partitions(64, 64)));  // SBUF to SBUF
}

TEST_F(ValidateTest, DmaTransposeShapesAndDtypes) {
  const HbmTensor xt = nc.hbm("xt", DType::kBF16, {64, 128});  // [F, P]
  auto xs = nc.sbuf(DType::kBF16, 128, {64});                  // [P, F]
  EXPECT_NO_THROW(nc.dma_transpose(xs, xt));
  auto pt = nc.psum(DType::kBF16, 128, {64});
  rejects(__LINE__, [&] { nc.dma_transpose(pt, xt); },
          {"dma_transpose: dst must be in sbuf, got psum"});
  const HbmTensor x3 = nc.hbm("x3", DType::kBF16, {2, 32, 128});
  rejects(__LINE__, [&] { nc.dma_transpose(xs, x3); },
          {"dma_transpose: src must be a 2-D [F, P] view, got rank 3"});
  rejects(
      __LINE__, [&] { nc.dma_transpose(a, xt); },
      {"dma_transpose: dst must be [128, 64] to hold the transpose, got sbuf[0:128, 512] bf16"});
  auto xs32 = nc.sbuf(DType::kF32, 128, {64});
  rejects(__LINE__, [&] { nc.dma_transpose(xs32, xt); },
          {"dma_transpose: dst dtype f32 must equal src's bf16 (no cast in a transposing DMA)"});
  const HbmTensor x8 = nc.hbm("x8", DType::kFP8E4M3, {64, 128});
  auto xs8 = nc.sbuf(DType::kFP8E4M3, 128, {64});
  rejects(__LINE__, [&] { nc.dma_transpose(xs8, x8); },
          {"dma_transpose: src dtype must be 2 or 4 bytes, got fp8_e4m3"});
  Instr in = valid(Opcode::kDmaTranspose);
  in.opnd[1] = Operand(pt);
  invalid(kTrn2, nc.tensors(), in, {"dma_transpose: src must be in hbm or sbuf, got psum"});
}

// SBUF -> SBUF (NeuronCore-v3): src [F, B P] -> dst [P, B F], B blocks side by side.
TEST_F(ValidateTest, DmaTransposeFromSbuf) {
  auto src = nc.sbuf(DType::kBF16, 64, {3, 128});  // [F = 64, B = 3 x P = 128]
  auto dst = nc.sbuf(DType::kBF16, 128, {3, 64});  // [P, B x F]
  EXPECT_NO_THROW(nc.dma_transpose(dst, src));
  EXPECT_NO_THROW(nc.dma_transpose(dst.index(0, 1), src.index(0, 2)));             // B = 1
  auto dst6 = nc.sbuf(DType::kBF16, 64, {6, 64});
  EXPECT_NO_THROW(nc.dma_transpose(dst6, src.reshape({6, 64})));  // B = 6 blocks of P = 64
  rejects(__LINE__, [&] { nc.dma_transpose(dst.partitions(0, 100), src); },
          {"dma_transpose: dst has 100 partitions, which do not divide src's free size 384"});
  rejects(__LINE__, [&] { nc.dma_transpose(dst.slice(0, 0, 2), src); },
          {"dma_transpose: dst free size 128 must be 3 blocks x src's 64 partitions"});
  auto src32 = nc.sbuf(DType::kF32, 64, {128});
  rejects(__LINE__, [&] { nc.dma_transpose(dst.index(0, 0), src32); },
          {"dma_transpose: dst dtype bf16 must equal src's f32 (no cast in a transposing DMA)"});
  // One buffer: the transpose may not write the bytes it reads.
  auto both = nc.sbuf(DType::kBF16, 128, {256});
  const Tile from = both.partitions(0, 64).slice(0, 0, 128);  // [64, 128], bytes [0, 256)
  EXPECT_NO_THROW(nc.dma_transpose(both.slice(0, 128, 192), from));
  rejects(__LINE__, [&] { nc.dma_transpose(both.slice(0, 64, 128), from); },
          {"dma_transpose: dst overlaps src (a transposing DMA cannot work in place)"});
  // NeuronCore-v2 has no DMA transpose engine: HBM sources only (one descriptor per element).
  Instr in = valid(Opcode::kDmaTranspose);
  in.opnd[0] = Operand(dst.index(0, 0));
  in.opnd[1] = Operand(src.index(0, 0));
  EXPECT_NO_THROW(validate(kTrn2, nc.tensors(), in, kAt));
  invalid(kTrn1, nc.tensors(), in,
          {"dma_transpose: src in sbuf needs the NeuronCore-v3 DMA transpose (trn1 has none)"});
}

// --- Matmul ---

TEST_F(ValidateTest, MatmulContractionAtMost128Partitions) {
  const Tile k129 = tile(Space::kSbuf, DType::kBF16, 0, 129, w.addr, {128});
  rejects(__LINE__, [&] { nc.matmul(acc, k129, a, false); },
          {"matmul: stationary partitions [0, 129) outside [0, 128) (trn2)"});
  rejects(__LINE__, [&] { nc.matmul(acc, w, a.partitions(0, 64), false); },
          {"matmul: moving contraction (partition) size 64 differs from stationary's 128"});
  EXPECT_NO_THROW(nc.matmul(acc, w.partitions(0, 64), a.partitions(64, 64), false));  // K = 64
}

TEST_F(ValidateTest, MatmulFreeSizeLimits) {
  auto w256 = nc.sbuf(DType::kBF16, 128, {256});
  rejects(__LINE__, [&] { nc.matmul(acc, w256, a, false); },
          {"matmul: stationary free size 256 exceeds 128 (trn2)"});
  auto a640 = nc.sbuf(DType::kBF16, 128, {640});
  rejects(__LINE__, [&] { nc.matmul(acc, w, a640, false); },
          {"matmul: moving free size 640 exceeds 512 (trn2)"});
}

TEST_F(ValidateTest, MatmulDestinationShape) {
  rejects(__LINE__, [&] { nc.matmul(acc.partitions(0, 64), w, a, false); },
          {"matmul: dst has 64 partitions, stationary free size is 128"});
  rejects(__LINE__, [&] { nc.matmul(acc.slice(0, 0, 256), w, a, false); },
          {"matmul: dst free size 256 differs from moving's 512"});
  EXPECT_NO_THROW(nc.matmul(acc.partitions(0, 64).slice(0, 0, 256), w.slice(0, 0, 64),
                            a.slice(0, 0, 256), true));
  EXPECT_TRUE(nc.backend().instrs.back().has(kAccumulate));
}

TEST_F(ValidateTest, MatmulDestinationIsF32InPsum) {
  auto accb = nc.psum(DType::kBF16, 128, {512});
  rejects(__LINE__, [&] { nc.matmul(accb, w, a, false); },
          {"matmul: dst must be f32 (PSUM accumulates in fp32), got bf16"});
  rejects(__LINE__, [&] { nc.matmul(f, w, a, false); }, {"matmul: dst must be in psum, got sbuf"});
  rejects(__LINE__, [&] { nc.matmul(acc, w, acc, false); },
          {"matmul: moving must be in sbuf, got psum"});
}

TEST_F(ValidateTest, MatmulDtypes) {
  auto wf = nc.sbuf(DType::kF32, 128, {128});
  rejects(__LINE__, [&] { nc.matmul(acc, wf, a, false); },
          {"matmul: moving fp32 pairs only with fp32: stationary f32, moving bf16"});
  rejects(__LINE__, [&] { nc.matmul(acc, w, f, false); },
          {"matmul: moving fp32 pairs only with fp32: stationary bf16, moving f32"});
  EXPECT_NO_THROW(nc.matmul(acc, wf, f, false));
  auto a8 = nc.sbuf(DType::kFP8E4M3, 128, {512});
  EXPECT_NO_THROW(nc.matmul(acc, w, a8, false));  // low-precision types mix
  auto wi = nc.sbuf(DType::kI32, 128, {128});
  rejects(__LINE__, [&] { nc.matmul(acc, wi, a, false); },
          {"matmul: stationary integer matmul is not supported"});
}

TEST_F(ValidateTest, MatmulWritesOnePsumBank) {
  auto acc2 = nc.psum(DType::kF32, 128, {1024});  // [128, 1024] f32: two banks
  const Tile straddle = acc2.slice(0, 256, 768);  // [128, 512] across the bank boundary
  rejects(__LINE__, [&] { nc.matmul(straddle, w, a, false); },
          {cat("matmul: dst bytes [", acc2.addr + 1024, ", ", acc2.addr + 3072,
               ") cross a 2048 B PSUM bank (trn2)")});
  EXPECT_NO_THROW(nc.matmul(acc2.slice(0, 512, 1024), w, a, false));  // the second bank
}

// --- TensorE transpose ---

TEST_F(ValidateTest, TransposeShapes) {
  auto tp = nc.psum(DType::kF32, 64, {128});  // [64, 128] f32
  EXPECT_NO_THROW(nc.transpose(tp, a.slice(0, 0, 64)));
  rejects(__LINE__, [&] { nc.transpose(acc, a); },
          {"transpose: src free size 512 exceeds 128 (trn2)"});
  rejects(__LINE__, [&] { nc.transpose(tp, a.slice(0, 0, 32)); },
          {"transpose: dst must be [32, 128], got psum[0:64, 128] f32"});
  rejects(__LINE__, [&] { nc.transpose(f.slice(0, 0, 128).partitions(0, 64), a.slice(0, 0, 64)); },
          {"transpose: dst must be in psum, got sbuf"});
  auto si = nc.sbuf(DType::kI32, 128, {64});
  rejects(__LINE__, [&] { nc.transpose(tp, si); },
          {"transpose: src integer transpose is not supported"});
  auto wide = nc.psum(DType::kF32, 128, {1024});  // [128, 1024] f32: two banks
  const Tile straddle = wide.slice(0, 448, 576);  // [128, 128] across the bank boundary
  rejects(__LINE__, [&] { nc.transpose(straddle, a.slice(0, 0, 128)); },
          {cat("transpose: dst bytes [", wide.addr + 1792, ", ", wide.addr + 2304,
               ") cross a 2048 B PSUM bank (trn2)")});
}

TEST_F(ValidateTest, SixteenBitTransposeOutputOnlyOnV3) {
  for (const Target* t : kAllTargets) {
    Nc c(*t);
    auto src = c.sbuf(DType::kBF16, 128, {64});  // [128, 64] bf16
    auto dst = c.psum(DType::kBF16, 64, {128});  // [64, 128] bf16
    if (t->nc_version >= 3) {
      EXPECT_NO_THROW(c.transpose(dst, src));
      auto h = c.sbuf(DType::kF16, 128, {64});
      rejects_on(c, __LINE__, [&] { c.transpose(dst, h); },
                 {"transpose: dst dtype bf16 not allowed: f32 or the 16-bit src dtype (trn2)"});
    } else {
      rejects_on(c, __LINE__, [&] { c.transpose(dst, src); },
                 {cat("transpose: dst dtype bf16 not allowed: f32 (", t->name, ")")});
    }
  }
}

// --- Vector / Scalar / GpSimd elementwise ---

TEST_F(ValidateTest, TensorCopyShapes) {
  rejects(__LINE__, [&] { nc.tensor_copy(f, f.partitions(0, 64)); },
          {"tensor_copy: src has 64 partitions, dst has 128"});
  rejects(__LINE__, [&] { nc.tensor_copy(f, f.slice(0, 0, 256)); },
          {"tensor_copy: src free size 256 differs from dst's 512"});
  EXPECT_NO_THROW(nc.tensor_copy(f.reshape({16, 32}), a.reshape({32, 16}).transpose(0, 1)));
}

TEST_F(ValidateTest, TensorTensorInputs) {
  rejects(__LINE__, [&] { nc.tensor_tensor(f, acc, acc, AluOp::kAdd); },
          {"tensor_tensor: in1 both inputs in PSUM (at most one may be)"});
  rejects(__LINE__, [&] { nc.tensor_tensor(f, f, a.slice(0, 0, 511), AluOp::kAdd); },
          {"tensor_tensor: in1 free size 511 differs from dst's 512"});
  rejects(__LINE__, [&] { nc.tensor_tensor(f, f.partitions(0, 32), f, AluOp::kAdd); },
          {"tensor_tensor: in0 has 32 partitions, dst has 128"});
  EXPECT_NO_THROW(nc.tensor_tensor(f, acc, a, AluOp::kSubtract));
}

TEST_F(ValidateTest, TensorScalarColumns) {
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f, AluOp::kAdd, c2); },
          {"tensor_scalar: scalar0 must be a [P, 1] f32 column, got sbuf[0:128, 2] f32"});
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f, AluOp::kAdd, 1.0f, AluOp::kMultiply, cb); },
          {"tensor_scalar: scalar1 must be a [P, 1] f32 column, got sbuf[0:128, 1] bf16"});
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f, AluOp::kAdd, col.partitions(0, 64)); },
          {"tensor_scalar: scalar0 has 64 partitions, src has 128"});
  rejects(__LINE__, [&] { nc.tensor_scalar(f, f.slice(0, 0, 8), AluOp::kAdd, col); },
          {"tensor_scalar: src free size 8 differs from dst's 512"});
}

TEST_F(ValidateTest, ScalarTensorTensorOperands) {
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, acc, AluOp::kSubtract, col, AluOp::kMultiply, acc); },
          {"scalar_tensor_tensor: tensor is in PSUM with data (at most one of them may be)"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f, AluOp::kSubtract, c2, AluOp::kMultiply, a); },
          {"scalar_tensor_tensor: scalar0 must be a [P, 1] f32 column, got sbuf[0:128, 2] f32"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f, AluOp::kSubtract, col.partitions(0, 64), AluOp::kMultiply, a); },
          {"scalar_tensor_tensor: scalar0 has 64 partitions, data has 128"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f, AluOp::kSubtract, col, AluOp::kMultiply, a.slice(0, 0, 256)); },
          {"scalar_tensor_tensor: tensor free size 256 differs from dst's 512"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f.partitions(0, 32), AluOp::kSubtract, 1.0f, AluOp::kMultiply, a); },
          {"scalar_tensor_tensor: data has 32 partitions, dst has 128"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f, AluOp::kBypass, 1.0f, AluOp::kMultiply, a); },
          {"scalar_tensor_tensor: ops must both be arithmetic, got bypass, multiply"});
  rejects(__LINE__, [&] { nc.scalar_tensor_tensor(f, f, AluOp::kAdd, 1.0f, AluOp::kBypass, a); },
          {"scalar_tensor_tensor: ops must both be arithmetic, got add, bypass"});
  // One input in PSUM, an immediate scalar, reversed operands: all valid.
  EXPECT_NO_THROW(nc.scalar_tensor_tensor(f, acc, AluOp::kMultiply, 2.0f, AluOp::kAdd, a, true, true));
}

TEST_F(ValidateTest, TensorReduceAxes) {
  const Tile f3 = f.reshape({4, 8, 16});  // [128, 4, 8, 16]
  rejects(__LINE__, [&] { nc.tensor_reduce(col, AluOp::kMultiply, f); },
          {"tensor_reduce: reduction must be add, max or min, got multiply"});
  rejects(__LINE__, [&] { nc.tensor_reduce(col, AluOp::kAdd, f, 0); },
          {"tensor_reduce: src reduces 0 trailing axes of a rank-1 free pattern"});
  rejects(__LINE__, [&] { nc.tensor_reduce(col, AluOp::kAdd, f3, 4); },
          {"tensor_reduce: src reduces 4 trailing axes of a rank-3 free pattern"});
  rejects(__LINE__, [&] { nc.tensor_reduce(col, AluOp::kAdd, f3, 1); },
          {"tensor_reduce: dst free size 1 must be 32 (src's kept dims)"});
  rejects(__LINE__, [&] { nc.tensor_reduce(col.partitions(0, 64), AluOp::kAdd, f, 1); },
          {"tensor_reduce: src has 128 partitions, dst has 64"});
  EXPECT_NO_THROW(nc.tensor_reduce(col, AluOp::kMin, f3, 3));
  EXPECT_NO_THROW(
      nc.tensor_reduce(c2.reshape({2}).slice(0, 0, 2), AluOp::kMax, f.reshape({2, 256}), 1));
  EXPECT_NO_THROW(nc.tensor_reduce(f.slice(0, 0, 4), AluOp::kAdd, f3, 2, true));
}

TEST_F(ValidateTest, ActivationColumns) {
  rejects(__LINE__, [&] { nc.activation(f, ActFunc::kExp, f, {.bias = c2}); },
          {"activation: bias must be a [P, 1] f32 column, got sbuf[0:128, 2] f32"});
  rejects(__LINE__, [&] { nc.activation(f, ActFunc::kExp, f, {.scale = cb}); },
          {"activation: scale must be a [P, 1] f32 column, got sbuf[0:128, 1] bf16"});
  rejects(__LINE__, [&] { nc.activation(f, ActFunc::kExp, f, {.accum = c2}); },
          {"activation: accum must be a [P, 1] f32 column, got sbuf[0:128, 2] f32"});
  rejects(__LINE__, [&] { nc.activation(f, ActFunc::kExp, f, {.accum = col.partitions(0, 32)}); },
          {"activation: accum has 32 partitions, src has 128"});
  rejects(__LINE__, [&] { nc.activation(f, ActFunc::kExp, a.slice(0, 0, 64)); },
          {"activation: src free size 64 differs from dst's 512"});
  EXPECT_NO_THROW(nc.activation(a, ActFunc::kGelu, acc, {.scale = col, .bias = -1.0f}));
}

TEST_F(ValidateTest, ScalarBiasOnlyOnV3) {
  for (const Target* t : kAllTargets) {
    Nc c(*t);
    auto v = c.sbuf(DType::kF32, 128, {512});
    auto b = c.sbuf(DType::kF32, 128, {1});
    EXPECT_NO_THROW(c.activation(v, ActFunc::kSilu, v, {.scale = 0.5f, .bias = b}));  // tile bias
    EXPECT_NO_THROW(c.activation(v, ActFunc::kSilu, v, {.scale = 0.5f}));             // no bias
    if (t->nc_version >= 3) {
      EXPECT_NO_THROW(c.activation(v, ActFunc::kSilu, v, {.bias = 0.25f}));
    } else {
      rejects_on(c, __LINE__, [&] { c.activation(v, ActFunc::kSilu, v, {.bias = 0.25f}); },
                 {cat("activation: bias must be a [P, 1] tile on ", t->name,
                      " (scalar bias is NeuronCore-v3 only)")});
    }
  }
}

TEST_F(ValidateTest, AffineSelectAndIota) {
  rejects(__LINE__, [&] { nc.affine_select(f, f, Affine{}, AluOp::kAdd, 0.0f); },
          {"affine_select: comparison must be is_*/not_equal, got add"});
  rejects(__LINE__, [&] { nc.affine_select(f, f.slice(0, 0, 4), Affine{}, AluOp::kIsLt, 0.0f); },
          {"affine_select: src free size 4 differs from dst's 512"});
  rejects(__LINE__, [&] { nc.iota(a, Affine{}); }, {"iota: dst must be i32 or f32, got bf16"});
  EXPECT_NO_THROW(nc.iota(f, Affine{.base = 0, .channel = 512, .free = {1, 0, 0, 0}}));
}

TEST_F(ValidateTest, BnStatsShapes) {
  auto stats = nc.sbuf(DType::kF32, 128, {6});
  auto s4 = nc.sbuf(DType::kF32, 128, {4});
  auto sb = nc.sbuf(DType::kBF16, 128, {6});
  auto f513 = nc.sbuf(DType::kF32, 128, {513});
  rejects(__LINE__, [&] { nc.bn_stats(s4, f); },
          {"bn_stats: dst must be [P, 6] f32, got sbuf[0:128, 4] f32"});
  rejects(__LINE__, [&] { nc.bn_stats(sb, f); },
          {"bn_stats: dst must be [P, 6] f32, got sbuf[0:128, 6] bf16"});
  rejects(__LINE__, [&] { nc.bn_stats(stats, f513); },
          {"bn_stats: src free size 513 exceeds 512 (trn2)"});
  rejects(__LINE__, [&] { nc.bn_stats(stats, f.partitions(0, 64)); },
          {"bn_stats: src has 64 partitions, dst has 128"});
  EXPECT_NO_THROW(nc.bn_stats(stats, a));  // any input dtype
}

TEST_F(ValidateTest, BnAggrShapes) {
  auto stats2 = nc.sbuf(DType::kF32, 128, {12});  // two bn_stats groups
  auto s7 = nc.sbuf(DType::kF32, 128, {7});
  auto sb = nc.sbuf(DType::kBF16, 128, {6});
  auto mv3 = nc.sbuf(DType::kF32, 128, {3});
  rejects(__LINE__, [&] { nc.bn_aggr(mv3, stats2); },
          {"bn_aggr: dst must be [P, 2] f32, got sbuf[0:128, 3] f32"});
  rejects(__LINE__, [&] { nc.bn_aggr(c2, s7); },
          {"bn_aggr: src must be [P, 6k] f32 bn_stats output, got sbuf[0:128, 7] f32"});
  rejects(__LINE__, [&] { nc.bn_aggr(c2, sb); },
          {"bn_aggr: src must be [P, 6k] f32 bn_stats output, got sbuf[0:128, 6] bf16"});
  EXPECT_NO_THROW(nc.bn_aggr(c2, stats2));
}

// The structured fields of the error match its text.
TEST_F(ValidateTest, ErrorFieldsNameInstructionOperandAndLine) {
  auto a640 = nc.sbuf(DType::kBF16, 128, {640});
  const int line = __LINE__ + 2;
  try {
    nc.matmul(acc, w, a640, false);
    ADD_FAILURE() << "did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.instruction(), "matmul");
    EXPECT_EQ(e.operand(), "moving");
    EXPECT_TRUE(ends_with(e.location(), cat("validate_test.cc:", line))) << e.location();
    EXPECT_EQ(std::string(e.what()),
              cat("matmul: moving free size 640 exceeds 512 (trn2) at ", e.location()));
  }
}

}  // namespace
}  // namespace ncore
