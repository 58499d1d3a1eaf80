// The binary program format: exact round trips of a program that uses every
// opcode, and a loader that turns every malformed input — truncations, random
// corruption, hostile counts, out-of-range fields, inconsistent tables — into
// an ncore::Error without crashing (run this file under ASan/UBSan too).
#include <gtest/gtest.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <ncore/isa/emit/emitter.h>
#include <ncore/isa/emit/serialize.h>

namespace ncore {
namespace {

constexpr DType f32 = DType::kF32;
constexpr DType bf16 = DType::kBF16;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Every opcode, several engines, tile and immediate scalars, flags, strided
// and transposed views, NaN/inf immediates, alloc/free reuse.
Program all_opcodes() {
  return emit(kTrn2, [](DeviceCore& nc) {
    auto x = nc.hbm("x", bf16, {128, 256});
    auto w = nc.hbm("w", bf16, {256, 128});
    auto y = nc.hbm("y", f32, {128, 256}, HbmKind::kOutput);
    auto xs = nc.sbuf(bf16, 128, {256});  // [P, F] bf16
    auto wt = nc.sbuf(bf16, 128, {256});  // [P, F] bf16
    nc.dma(xs, x);
    nc.dma_transpose(wt, w);
    auto acc = nc.psum(f32, 128, {256});  // [M, N] f32
    nc.matmul(acc, xs.slice(0, 0, 128), wt, false);
    nc.matmul(acc, xs.slice(0, 128, 256), wt, true);
    auto tp = nc.psum(f32, 128, {128});
    nc.transpose(tp, xs.slice(0, 0, 128));
    auto a = nc.sbuf(f32, 128, {256});
    auto b = nc.sbuf(f32, 128, {256});
    nc.tensor_copy(a, acc);
    nc.tensor_copy(b.slice(0, 0, 128), tp, Engine::kScalar);
    nc.tensor_tensor(b, a, b, AluOp::kMultiply, Engine::kGpSimd);
    auto col = nc.sbuf(f32, 128, {1});
    nc.tensor_reduce(col, AluOp::kMax, a.reshape({16, 16}).transpose(0, 1), 2, true);
    nc.tensor_scalar(a, b, AluOp::kSubtract, col, AluOp::kDivide, kNaN, true, false);
    nc.tensor_scalar(b, a, AluOp::kMultiply, col, AluOp::kAdd, 2.0f, false, false, Engine::kScalar);
    nc.scalar_tensor_tensor(a, b, AluOp::kSubtract, col, AluOp::kMultiply, acc, true, true);
    nc.scalar_tensor_tensor(b, a, AluOp::kAdd, -0.5f, AluOp::kDivide, b);
    auto sum = nc.sbuf(f32, 128, {1});
    nc.activation(b, ActFunc::kGelu, a, ActOpts{.scale = 0.5f, .bias = col, .accum = sum});
    nc.memset(a.slice(0, 0, 64), -kInf, Engine::kGpSimd);
    auto idx = nc.sbuf(DType::kI32, 128, {64});
    nc.iota(idx, Affine{.base = -3, .channel = 64, .free = {1, 0, 0, 0}});
    nc.affine_select(b.partitions(0, 32).slice(0, 0, 64), a.partitions(0, 32).slice(0, 0, 64),
                     Affine{.base = 0, .channel = 1, .free = {-1, 0, 0, 0}}, AluOp::kIsGe, -kInf);
    {
      auto stats = nc.sbuf(f32, 128, {6});
      auto mv = nc.sbuf(f32, 128, {2});
      nc.bn_stats(stats, b);
      nc.bn_aggr(mv, stats);
    }
    auto z = nc.sbuf(f32, 128, {2});  // reuses freed bytes
    nc.tensor_copy(z, a.slice(0, 0, 2));
    auto wtt = nc.sbuf(bf16, 128, {2, 128});  // SBUF -> SBUF, two blocks
    nc.dma_transpose(wtt, wt);
    nc.dma(y, b);
    nc.dma(y.slice(1, 0, 2), z);
  });
}

bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

void expect_same(const Program& a, const Program& b) {
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.program_id, b.program_id);
  EXPECT_EQ(a.num_programs, b.num_programs);
  EXPECT_EQ(a.files, b.files);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_EQ(a.tensors[i].kind, b.tensors[i].kind);
  }
  ASSERT_EQ(a.instrs.size(), b.instrs.size());
  for (size_t i = 0; i < a.instrs.size(); ++i) {
    const Instr &x = a.instrs[i], &y = b.instrs[i];
    SCOPED_TRACE(testing::Message() << "instr " << i << " " << opcode_name(x.op));
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.engine, y.engine);
    EXPECT_EQ(x.queue, y.queue);
    EXPECT_EQ(x.flags, y.flags);
    EXPECT_EQ(x.alu0, y.alu0);
    EXPECT_EQ(x.alu1, y.alu1);
    EXPECT_EQ(x.func, y.func);
    EXPECT_EQ(x.axes, y.axes);
    EXPECT_TRUE(same_bits(x.imm[0], y.imm[0]) && same_bits(x.imm[1], y.imm[1]));
    EXPECT_EQ(x.affine.base, y.affine.base);
    EXPECT_EQ(x.affine.channel, y.affine.channel);
    EXPECT_EQ(x.affine.free, y.affine.free);
    for (size_t s = 0; s < x.opnd.size(); ++s) EXPECT_EQ(x.opnd[s], y.opnd[s]) << "slot " << s;
    EXPECT_EQ(x.loc.file, y.loc.file);
    EXPECT_EQ(x.loc.line, y.loc.line);
  }
  EXPECT_EQ(a.dep_begin, b.dep_begin);
  EXPECT_EQ(a.dep_ids, b.dep_ids);
  ASSERT_EQ(a.allocs.size(), b.allocs.size());
  for (size_t i = 0; i < a.allocs.size(); ++i) {
    const AllocEvent &x = a.allocs[i], &y = b.allocs[i];
    EXPECT_EQ(x.space, y.space);
    EXPECT_EQ(x.is_free, y.is_free);
    EXPECT_EQ(x.addr, y.addr);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_EQ(x.before, y.before);
    EXPECT_EQ(x.loc.file, y.loc.file);
    EXPECT_EQ(x.loc.line, y.loc.line);
  }
  EXPECT_EQ(a.sbuf_peak_bytes, b.sbuf_peak_bytes);
  EXPECT_EQ(a.psum_peak_banks, b.psum_peak_banks);
}

TEST(Serialize, ProgramUsesEveryOpcode) {
  const Program p = all_opcodes();
  for (int op = 0; op < kNumOpcodes; ++op)
    EXPECT_GT(p.count(Opcode(op)), 0u) << opcode_name(Opcode(op));
  EXPECT_FALSE(p.dep_ids.empty());
  EXPECT_GT(p.allocs.size(), 10u);
}

TEST(Serialize, RoundTripIsExact) {
  const Program p = all_opcodes();
  const std::vector<uint8_t> bytes = save(p);
  ASSERT_GE(bytes.size(), 12u);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "NCOREPRG");
  EXPECT_EQ(bytes[8], Program::kFormatVersion);  // little-endian u32
  EXPECT_EQ(bytes[9] | bytes[10] | bytes[11], 0);
  const Program q = load(bytes);
  expect_same(p, q);
  EXPECT_EQ(save(q), bytes);
}

TEST(Serialize, GridPositionAndOtherTargetsRoundTrip) {
  for (const Target* t : kAllTargets) {
    const Program p = emit(*t, [](DeviceCore& nc) {
      auto x = nc.hbm("in put", f32, {4, 8, 16});  // a name with a space
      auto s = nc.sbuf(f32, 8, {16});
      auto u = nc.sbuf(f32, 16, {8});
      nc.dma(s, x.index(0, 1));                                  // [8, 16]
      nc.dma(u, x.index(0, 2).transpose());                      // [16, 8] strides [1, 16]
      nc.dma(s, x.index(0, 3).slice(0, 0, 1).broadcast(0, 8));  // stride-0 rows
    }, 3, 8);
    const Program q = load(save(p));
    expect_same(p, q);
    EXPECT_EQ(q.program_id, 3);
    EXPECT_EQ(q.num_programs, 8);
  }
}

TEST(Serialize, FileRoundTrip) {
  const Program p = all_opcodes();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("ncore_serialize_test_" +
                                                 std::to_string(::getpid()) + ".ncp")).string();
  save_file(path, p);
  const Program q = load_file(path);
  std::filesystem::remove(path);
  expect_same(p, q);
  EXPECT_THROW(load_file(path), Error);  // gone
  EXPECT_THROW(save_file("/nonexistent-dir/x.ncp", p), Error);
}

// Runs load and reports what happened; anything but success or ncore::Error fails.
enum class Outcome { kLoaded, kError };
Outcome try_load(std::span<const uint8_t> bytes, std::string* message = nullptr) {
  try {
    const Program q = load(bytes);
    EXPECT_NO_THROW(load(save(q)));  // what loads is valid and re-encodable
    return Outcome::kLoaded;
  } catch (const Error& e) {
    if (message) *message = e.what();
    return Outcome::kError;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "load threw a non-ncore exception: " << e.what();
    return Outcome::kError;
  }
}

TEST(Serialize, EveryTruncationIsAnError) {
  const std::vector<uint8_t> bytes = save(all_opcodes());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string msg;
    ASSERT_EQ(try_load(std::span(bytes.data(), n), &msg), Outcome::kError) << "prefix " << n;
    ASSERT_NE(msg.find("program load"), std::string::npos) << msg;
  }
}

TEST(Serialize, TrailingBytesAreAnError) {
  std::vector<uint8_t> bytes = save(all_opcodes());
  bytes.push_back(0);
  std::string msg;
  EXPECT_EQ(try_load(bytes, &msg), Outcome::kError);
  EXPECT_NE(msg.find("trailing"), std::string::npos) << msg;
}

// Seeded random corruption: byte overwrites, bit flips, inserts, deletes.
TEST(Serialize, RandomCorruptionNeverCrashes) {
  const std::vector<uint8_t> good = save(all_opcodes());
  std::mt19937 rng(20240531);
  auto pick = [&](size_t hi) { return std::uniform_int_distribution<size_t>(0, hi)(rng); };
  constexpr int kTrials = 20000;
  int loaded = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::vector<uint8_t> bytes = good;
    const size_t edits = 1 + pick(7);
    for (size_t e = 0; e < edits && !bytes.empty(); ++e) {
      const size_t at = pick(bytes.size() - 1);
      switch (pick(3)) {
        case 0: bytes[at] = uint8_t(pick(255)); break;
        case 1: bytes[at] ^= uint8_t(1u << pick(7)); break;
        case 2: bytes.insert(bytes.begin() + std::ptrdiff_t(at), uint8_t(pick(255))); break;
        default: bytes.erase(bytes.begin() + std::ptrdiff_t(at)); break;
      }
    }
    loaded += try_load(bytes) == Outcome::kLoaded;
    if (HasFailure()) FAIL() << "trial " << trial;
  }
  // Some edits are harmless (a source line, an immediate, a name byte); most are caught.
  std::printf("random corruption: %d of %d variants loaded, the rest were rejected\n", loaded,
              kTrials);
  EXPECT_LT(loaded, kTrials / 2);
}

// Offsets of the u32 counts, from the format's layout: the tables after the
// instructions have fixed-size records.
struct CountOffsets {
  size_t files, tensors, instrs, deps, allocs;
};
CountOffsets count_offsets(const Program& p) {
  Program head;
  head.target = p.target;
  head.files = p.files;
  const size_t empty_tail = 4 * 5;  // tensors, instrs, deps counts + dep_begin[0] + allocs count
  CountOffsets o;
  o.files = 8 + 4 + 1 + 4 + 4 + 8 + 4;
  o.tensors = save(head).size() - empty_tail;
  head.tensors = p.tensors;
  o.instrs = save(head).size() - empty_tail + 4;
  const size_t total = save(p).size();
  o.allocs = total - 4 - serial::kAllocBytes * p.allocs.size();
  o.deps = o.allocs - 4 * (p.instrs.size() + 1) - 4 * p.dep_ids.size() - 4;
  return o;
}

void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + size_t(i)] = uint8_t(v >> (8 * i));
}
uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(b[at + size_t(i)]) << (8 * i);
  return v;
}

TEST(Serialize, HugeCountsAreRejectedBeforeAllocating) {
  const Program p = all_opcodes();
  const std::vector<uint8_t> good = save(p);
  const CountOffsets o = count_offsets(p);
  // The offsets are right: each holds the count it should.
  ASSERT_EQ(get_u32(good, o.files), p.files.size());
  ASSERT_EQ(get_u32(good, o.tensors), p.tensors.size());
  ASSERT_EQ(get_u32(good, o.instrs), p.instrs.size());
  ASSERT_EQ(get_u32(good, o.deps), p.dep_ids.size());
  ASSERT_EQ(get_u32(good, o.allocs), p.allocs.size());
  const size_t first_name_length = o.files + 4;
  for (size_t at : {o.files, o.tensors, o.instrs, o.deps, o.allocs, first_name_length}) {
    for (uint32_t huge : {0xFFFFFFFFu, 0x80000000u, 0x10000000u}) {
      std::vector<uint8_t> bytes = good;
      put_u32(bytes, at, huge);
      std::string msg;
      EXPECT_EQ(try_load(bytes, &msg), Outcome::kError) << "count at " << at;
      EXPECT_NE(msg.find("left"), std::string::npos) << msg;
    }
  }
}

// Loads a program changed in memory; returns the error message, "" if it loaded.
template <class F>
std::string load_changed(F&& change) {
  Program p = all_opcodes();
  change(p);
  std::vector<uint8_t> bytes;
  try {
    bytes = save(p);
  } catch (const Error& e) {
    return std::string("save: ") + e.what();
  }
  std::string msg;
  return try_load(bytes, &msg) == Outcome::kLoaded ? std::string() : msg;
}

size_t first(const Program& p, Opcode op) {
  for (size_t i = 0; i < p.instrs.size(); ++i)
    if (p.instrs[i].op == op) return i;
  return 0;
}

#define EXPECT_REJECTED(change, needle)                                              \
  do {                                                                               \
    const std::string msg_ = load_changed([&](Program& p) { change; });              \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: '" << msg_ << "'"; \
  } while (0)

TEST(Serialize, HeaderFieldsAreChecked) {
  EXPECT_REJECTED(p.target = TargetId(7), "target");
  EXPECT_REJECTED(p.num_programs = 0, "program_id");
  EXPECT_REJECTED((p.program_id = 2, p.num_programs = 2), "program_id");
  EXPECT_REJECTED(p.program_id = -1, "program_id");
  EXPECT_REJECTED(p.sbuf_peak_bytes = kTrn2.sbuf_partition_bytes + 1, "sbuf_peak_bytes");
  EXPECT_REJECTED(p.psum_peak_banks = 9, "psum_peak_banks");
  std::vector<uint8_t> bytes = save(all_opcodes());
  bytes[3] ^= 0x20;
  std::string msg;
  EXPECT_EQ(try_load(bytes, &msg), Outcome::kError);
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  bytes = save(all_opcodes());
  bytes[8] = Program::kFormatVersion + 1;
  EXPECT_EQ(try_load(bytes, &msg), Outcome::kError);
  EXPECT_NE(msg.find("version"), std::string::npos) << msg;
}

TEST(Serialize, TensorTableIsChecked) {
  EXPECT_REJECTED(p.tensors[0].dtype = DType(6), "tensor 0 dtype");
  EXPECT_REJECTED(p.tensors[1].kind = HbmKind(3), "tensor 1 kind");
  EXPECT_REJECTED(p.tensors[0].shape = {}, "tensor 0 rank");
  EXPECT_REJECTED(p.tensors[0].shape = std::vector<int64_t>(6, 1), "tensor 0 rank");
  EXPECT_REJECTED(p.tensors[0].shape[1] = 0, "tensor 0 dim");
  EXPECT_REJECTED(p.tensors[0].shape[1] = -5, "tensor 0 dim");
  EXPECT_REJECTED((p.tensors[0].shape = {int64_t{1} << 21, int64_t{1} << 20}), "more than");
  // A smaller tensor than the views need: validate() catches the view.
  EXPECT_REJECTED((p.tensors[0].shape = {128, 255}), "reaches element");
}

TEST(Serialize, InstructionFieldsAreChecked) {
  EXPECT_REJECTED(p.instrs[0].op = Opcode(kNumOpcodes), "instr 0 opcode");
  EXPECT_REJECTED(p.instrs[0].engine = Engine(kNumEngines), "instr 0 engine");
  EXPECT_REJECTED(p.instrs[1].flags = 0x40, "instr 1 flags");
  EXPECT_REJECTED(p.instrs[2].alu1 = AluOp(kNumAluOps), "alu1");
  EXPECT_REJECTED(p.instrs[2].func = ActFunc(200), "func");
  EXPECT_REJECTED(p.instrs[3].loc.file = 1, "source file");
  // Valid encodings that break an ISA rule: validate() names the instruction.
  EXPECT_REJECTED(p.instrs[2].engine = Engine::kVector, "instr 2 matmul: cannot run on the vector");
  EXPECT_REJECTED(p.instrs[first(p, Opcode::kMatmul)].opnd[2].ap.shape[0] = 640,
                  "moving free size 640 exceeds 512");
  EXPECT_REJECTED(p.instrs[first(p, Opcode::kTensorReduce)].axes = 3, "reduces 3 trailing axes");
}

TEST(Serialize, OperandFieldsAreChecked) {
  // Instruction 0 is dma(xs [sbuf], x [hbm]).
  EXPECT_REJECTED(p.instrs[0].opnd[0].space = Space(4), "instr 0 dma dst space");
  EXPECT_REJECTED(p.instrs[0].opnd[0].dtype = DType(6), "dst dtype");
  EXPECT_REJECTED(p.instrs[0].opnd[0].p0 = -1, "partitions");
  EXPECT_REJECTED(p.instrs[0].opnd[0].p0 = 1 << 30, "partitions");
  EXPECT_REJECTED(p.instrs[0].opnd[0].np = 0, "partitions");
  EXPECT_REJECTED(p.instrs[0].opnd[0].np = 129, "partitions");
  EXPECT_REJECTED((p.instrs[0].opnd[0].p0 = 100, p.instrs[0].opnd[0].np = 100), "partitions");
  EXPECT_REJECTED(p.instrs[0].opnd[0].addr = -64, "addr");
  EXPECT_REJECTED(p.instrs[0].opnd[0].addr = int64_t{1} << 50, "addr");
  EXPECT_REJECTED(p.instrs[0].opnd[0].addr = kTrn2.sbuf_partition_bytes - 64, "exceed the");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.ndim = 0, "ndim");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.ndim = 6, "ndim");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.offset = -1, "offset");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.shape[0] = 0, "dim size");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.shape[0] = int64_t{1} << 41, "dim size");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.stride[0] = -1, "dim stride");
  EXPECT_REJECTED(p.instrs[0].opnd[0].ap.stride[0] = int64_t{1} << 62, "dim stride");
  // Products of in-range values that would overflow int64 in max_offset or size.
  EXPECT_REJECTED((p.instrs[0].opnd[0].ap = AccessPattern{0, 2, {int64_t{1} << 40, 2}, {int64_t{1} << 40, 1}}),
                  "strides");
  EXPECT_REJECTED((p.instrs[0].opnd[0].ap = AccessPattern{0, 3, {1 << 20, 1 << 20, 2}, {0, 0, 0}}),
                  "more than");
  // The HBM side: tensor id and the partition fields the view implies.
  EXPECT_REJECTED(p.instrs[0].opnd[1].addr = 3, "tensor id");
  EXPECT_REJECTED(p.instrs[0].opnd[1].addr = -1, "tensor id");
  EXPECT_REJECTED(p.instrs[0].opnd[1].np = 1, "HBM view");
  EXPECT_REJECTED(p.instrs[0].opnd[1].p0 = 4, "HBM view");
  EXPECT_REJECTED(p.instrs[0].opnd[1].dtype = f32, "differs from tensor");
  EXPECT_REJECTED(p.instrs[0].opnd[1].ap.offset = 1, "reaches element");
}

TEST(Serialize, DependencyTableIsChecked) {
  const Program good = all_opcodes();
  size_t with_deps = 0;
  while (good.deps(with_deps).empty()) ++with_deps;
  EXPECT_REJECTED(p.dep_ids[p.dep_begin[with_deps]] = uint32_t(with_deps), "not an earlier one");
  EXPECT_REJECTED(p.dep_ids[p.dep_begin[with_deps]] = 0xFFFFFFFF, "not an earlier one");
  EXPECT_REJECTED(p.dep_begin[0] = 1, "dep_begin");
  EXPECT_REJECTED(p.dep_begin[with_deps + 1] = p.dep_begin[with_deps] - 1, "dep_begin");
  EXPECT_REJECTED(p.dep_begin.back() -= 1, "ends at");
  EXPECT_REJECTED(p.dep_begin.pop_back(), "save: program save: dep_begin");
}

TEST(Serialize, AllocationTableIsChecked) {
  EXPECT_REJECTED(p.allocs[0].space = Space::kHbm, "allocation 0 space");
  EXPECT_REJECTED(p.allocs[0].space = Space(9), "allocation 0 space");
  EXPECT_REJECTED(p.allocs[0].addr = -64, "allocation 0 addr");
  EXPECT_REJECTED(p.allocs[0].bytes = 0, "allocation 0 bytes");
  EXPECT_REJECTED(p.allocs[0].bytes = kTrn2.sbuf_partition_bytes + 1, "allocation 0 bytes");
  EXPECT_REJECTED(p.allocs[0].before = 1000, "allocation 0 before");
  EXPECT_REJECTED(p.allocs[0].before = p.allocs[1].before + 1, "allocation 1 before");
  EXPECT_REJECTED(p.allocs[0].loc.file = 9, "allocation 0 source file");
  EXPECT_REJECTED(p.allocs[1].addr = p.allocs[0].addr, "overlap a live allocation");
  EXPECT_REJECTED(p.allocs.back().addr += 64, "is not a live allocation");
  EXPECT_REJECTED(p.allocs.back().bytes += 1, "is not a live allocation");
  std::vector<uint8_t> bytes = save(all_opcodes());
  const size_t is_free = count_offsets(all_opcodes()).allocs + 4 + 1;
  bytes[is_free] = 2;
  std::string msg;
  EXPECT_EQ(try_load(bytes, &msg), Outcome::kError);
  EXPECT_NE(msg.find("is_free"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ncore
