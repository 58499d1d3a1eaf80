// The binary program format. Little-endian, every field written one by one
// (never a struct's bytes), so the file is the same on every host and compiler:
//
//   "NCOREPRG" u32 version
//   u8 target  i32 program_id  i32 num_programs  i64 sbuf_peak_bytes  i32 psum_peak_banks
//   u32 n  { str }                                     files
//   u32 n  { str name, u8 dtype, u8 kind, u8 rank, i64 dims[rank] }   tensors
//   u32 n  { instr }                                   instructions
//   u32 n_deps  u32 dep_begin[instructions + 1]  u32 dep_ids[n_deps]
//   u32 n  { u8 space, u8 is_free, i64 addr, i64 bytes, u32 before, u32 file, u32 line }
//   str = u32 length + bytes
//   instr = u8 op, engine, queue, flags, alu0, alu1, func; i32 axes; f32 imm[2];
//           i32 affine base, channel, free[4]; operand[5]; u32 file, line
//   operand = u8 space; unless none: u8 dtype, i32 p0, i32 np, i64 addr, i64 offset,
//             u8 ndim, { i64 shape, i64 stride }[ndim]
// An empty operand is stored as its space alone and loads default-constructed.
//
// load() trusts nothing: every count is checked against the bytes left before
// anything is allocated, every enum, index, extent and offset is range-checked
// before any arithmetic that could overflow, the dependency and allocation
// tables are checked for consistency, every instruction goes through
// validate(), and trailing bytes are an error. Any problem is an ncore::Error.
#pragma once

#include <bit>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <ncore/isa/emit/program.h>
#include <ncore/isa/error.h>
#include <ncore/isa/validate.h>

namespace ncore {

namespace serial {

inline constexpr char kMagic[8] = {'N', 'C', 'O', 'R', 'E', 'P', 'R', 'G'};
// Bound on every element count, dim, stride and offset (tile.h), checked
// before any sum or product of file values, so none can overflow int64.
inline constexpr int64_t kMaxExtent = kMaxElems;
// Enum value counts, from the enums' last members.
inline constexpr int kNumTargets = int(kAllTargets.size());
inline constexpr int kNumDTypes = int(std::size(kAllDTypes));
inline constexpr int kNumHbmKinds = int(HbmKind::kScratch) + 1;
inline constexpr int kNumSpaces = int(Space::kPsum) + 1;
inline constexpr uint8_t kKnownFlags = kAccumulate | kNegate | kReverse0 | kReverse1;

// Smallest encodings, to bound counts by the bytes left.
inline constexpr size_t kMinStrBytes = 4;
inline constexpr size_t kMinTensorBytes = kMinStrBytes + 3 + 8;       // one dim
inline constexpr size_t kMinInstrBytes = 7 + 4 + 2 * 4 + 6 * 4 + 5 + 2 * 4;  // empty operands
inline constexpr size_t kAllocBytes = 2 + 8 + 8 + 3 * 4;

class Writer {
 public:
  void u8(uint8_t v) { buf_.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_.push_back(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) buf_.push_back(uint8_t(v >> (8 * i)));
  }
  void i32(int32_t v) { u32(uint32_t(v)); }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void f32(float v) { u32(std::bit_cast<uint32_t>(v)); }
  void count(size_t n, const char* what) {
    if (n > UINT32_MAX) throw Error("program save", what, cat("count ", n, " exceeds 2^32 - 1"));
    u32(uint32_t(n));
  }
  void str(const std::string& s) {
    count(s.size(), "string");
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  void bytes(const char* p, size_t n) { buf_.insert(buf_.end(), p, p + n); }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

// Which record a field belongs to, kept as numbers and formatted only when a
// check fails, so that a valid file costs no string building.
struct Place {
  const char* record = nullptr;  // "instr", "tensor", "allocation" or none
  size_t index = 0;
  int slot = -1;  // operand slot of an instruction
  Opcode op = Opcode::kDma;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  Place at;

  std::string describe(const char* field) const {
    std::string s;
    if (at.record) s = cat(at.record, " ", at.index, " ");
    if (at.slot >= 0) s += cat(opcode_name(at.op), " ", slot_name(at.op, at.slot), " ");
    return s + field;
  }
  [[noreturn]] void fail(const char* field, const std::string& problem) const {
    throw Error("program load", describe(field), cat(problem, " (byte ", pos_, ")"));
  }
  size_t left() const { return data_.size() - pos_; }
  const uint8_t* take(size_t n, const char* field) {
    if (left() < n) fail(field, cat("is truncated: needs ", n, " bytes, ", left(), " left"));
    const uint8_t* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint8_t u8(const char* field) { return *take(1, field); }
  uint32_t u32(const char* field) {
    const uint8_t* p = take(4, field);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
    return v;
  }
  uint64_t u64(const char* field) {
    const uint8_t* p = take(8, field);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
  }
  int32_t i32(const char* field) { return int32_t(u32(field)); }
  int64_t i64(const char* field) { return int64_t(u64(field)); }
  float f32(const char* field) { return std::bit_cast<float>(u32(field)); }
  // A count of records of at least `min_bytes` each, checked against the bytes
  // left so that a hostile count cannot make us allocate.
  size_t count(const char* field, size_t min_bytes) {
    const uint32_t n = u32(field);
    if (n > left() / min_bytes)
      fail(field, cat("count ", n, " needs at least ", uint64_t(n) * min_bytes, " bytes, ",
                      left(), " left"));
    return n;
  }
  std::string str(const char* field) {
    const size_t n = count(field, 1);
    const uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  // An enum stored as u8, which must be below `n`.
  template <class E>
  E enumeration(const char* field, int n) {
    const uint8_t v = u8(field);
    if (v >= n) fail(field, cat("value ", int(v), " is not below ", n));
    return E(v);
  }
  int64_t ranged(const char* field, int64_t lo, int64_t hi) {
    const int64_t v = i64(field);
    if (v < lo || v > hi) fail(field, cat(v, " outside [", lo, ", ", hi, "]"));
    return v;
  }
  int32_t ranged32(const char* field, int32_t lo, int32_t hi) {
    const int32_t v = i32(field);
    if (v < lo || v > hi) fail(field, cat(v, " outside [", lo, ", ", hi, "]"));
    return v;
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

inline void put(Writer& w, const Operand& o) {
  w.u8(uint8_t(o.space));
  if (o.empty()) return;
  w.u8(uint8_t(o.dtype));
  w.i32(o.p0);
  w.i32(o.np);
  w.i64(o.addr);
  w.i64(o.ap.offset);
  w.u8(uint8_t(o.ap.ndim));
  for (int d = 0; d < o.ap.ndim && d < kMaxDims; ++d) {
    w.i64(o.ap.shape[size_t(d)]);
    w.i64(o.ap.stride[size_t(d)]);
  }
}

inline void put(Writer& w, const Instr& in) {
  w.u8(uint8_t(in.op));
  w.u8(uint8_t(in.engine));
  w.u8(in.queue);
  w.u8(in.flags);
  w.u8(uint8_t(in.alu0));
  w.u8(uint8_t(in.alu1));
  w.u8(uint8_t(in.func));
  w.i32(in.axes);
  w.f32(in.imm[0]);
  w.f32(in.imm[1]);
  w.i32(in.affine.base);
  w.i32(in.affine.channel);
  for (int32_t f : in.affine.free) w.i32(f);
  for (const Operand& o : in.opnd) put(w, o);
  w.u32(in.loc.file);
  w.u32(in.loc.line);
}

// Everything load() needs to check one part of a program against the rest.
struct LoadContext {
  Reader& r;
  const Target& t;
  const std::vector<std::string>& files;
  const std::vector<HbmDecl>& tensors;
};

inline SrcLoc get_loc(LoadContext& c) {
  SrcLoc loc;
  loc.file = c.r.u32("source file");
  loc.line = c.r.u32("source line");
  if (loc.file >= c.files.size())
    c.r.fail("source file", cat("index ", loc.file, " is not below ", c.files.size(), " files"));
  return loc;
}

inline Operand get_operand(LoadContext& c) {
  Reader& r = c.r;
  Operand o;
  o.space = r.enumeration<Space>("space", kNumSpaces);
  if (o.empty()) return o;
  o.dtype = r.enumeration<DType>("dtype", kNumDTypes);
  o.p0 = r.i32("p0");
  o.np = r.i32("np");
  o.addr = r.i64("addr");
  AccessPattern& ap = o.ap;
  ap.offset = r.ranged("offset", 0, kMaxExtent);
  ap.ndim = r.u8("ndim");
  if (ap.ndim < 1 || ap.ndim > kMaxDims) r.fail("ndim", cat(ap.ndim, " outside 1..", kMaxDims));
  int64_t size = 1, max_offset = ap.offset;
  for (size_t d = 0; d < size_t(ap.ndim); ++d) {
    const int64_t n = r.ranged("dim size", 1, kMaxExtent);
    const int64_t s = r.ranged("dim stride", 0, kMaxExtent);
    ap.shape[d] = n;
    ap.stride[d] = s;
    // Every value is <= 2^40 and so are size and max_offset, so the checks
    // themselves cannot overflow.
    if (n > kMaxExtent / size) r.fail("shape", cat("has more than ", kMaxExtent, " elements"));
    size *= n;
    if (s && n - 1 > (kMaxExtent - max_offset) / s)
      r.fail("strides", cat("reach past element ", kMaxExtent));
    max_offset += (n - 1) * s;
  }
  if (o.on_chip()) {
    const int64_t cap = o.space == Space::kSbuf ? c.t.sbuf_partition_bytes
                                                : c.t.psum_partition_bytes();
    if (o.p0 < 0 || o.p0 >= c.t.partitions || o.np < 1 || o.np > c.t.partitions)
      r.fail("partitions", cat("p0 ", o.p0, " np ", o.np, " outside [0, ", c.t.partitions, ")"));
    if (o.addr < 0 || o.addr > cap) r.fail("addr", cat(o.addr, " outside [0, ", cap, "]"));
  } else {
    if (o.addr < 0 || o.addr >= int64_t(c.tensors.size()))
      r.fail("tensor id", cat(o.addr, " is not below ", c.tensors.size(), " tensors"));
    // What the Operand(HbmTensor) constructor derives; the DMA checks rely on it.
    if (o.p0 != 0 || o.np != ap.shape[0])
      r.fail("partitions", cat("p0 ", o.p0, " np ", o.np, " of an HBM view must be 0 and dim 0 (",
                               ap.shape[0], ")"));
  }
  return o;
}

inline Instr get_instr(LoadContext& c, size_t index) {
  Reader& r = c.r;
  r.at = Place{"instr", index};
  Instr in;
  in.op = r.enumeration<Opcode>("opcode", kNumOpcodes);
  r.at.op = in.op;
  in.engine = r.enumeration<Engine>("engine", kNumEngines);
  in.queue = r.u8("queue");
  const int queues = c.t.dma_engines * c.t.dma_queues_per_engine;
  if (in.queue >= queues) r.fail("queue", cat(int(in.queue), " is not below ", queues));
  in.flags = r.u8("flags");
  if (in.flags & ~kKnownFlags) r.fail("flags", cat(int(in.flags), " has unknown bits"));
  in.alu0 = r.enumeration<AluOp>("alu0", kNumAluOps);
  in.alu1 = r.enumeration<AluOp>("alu1", kNumAluOps);
  in.func = r.enumeration<ActFunc>("func", kNumActFuncs);
  in.axes = r.i32("axes");
  in.imm[0] = r.f32("imm0");
  in.imm[1] = r.f32("imm1");
  in.affine.base = r.i32("affine base");
  in.affine.channel = r.i32("affine channel");
  for (int32_t& x : in.affine.free) x = r.i32("affine free");
  for (size_t s = 0; s < in.opnd.size(); ++s) {
    r.at.slot = int(s);
    in.opnd[s] = get_operand(c);
  }
  r.at.slot = -1;
  in.loc = get_loc(c);
  try {
    validate(c.t, c.tensors, in, c.files[in.loc.file] + ":" + std::to_string(in.loc.line));
  } catch (const Error& e) {
    throw Error("program load", cat("instr ", index), e.what());
  }
  return in;
}

inline HbmDecl get_tensor(Reader& r, size_t index) {
  r.at = Place{"tensor", index};
  HbmDecl d;
  d.name = r.str("name");
  d.dtype = r.enumeration<DType>("dtype", kNumDTypes);
  d.kind = r.enumeration<HbmKind>("kind", kNumHbmKinds);
  const int rank = r.u8("rank");
  if (rank < 1 || rank > kMaxDims) r.fail("rank", cat(rank, " outside 1..", kMaxDims));
  int64_t numel = 1;
  for (int k = 0; k < rank; ++k) {
    const int64_t n = r.ranged("dim", 1, kMaxExtent);
    if (n > kMaxExtent / numel) r.fail("shape", cat("has more than ", kMaxExtent, " elements"));
    numel *= n;
    d.shape.push_back(n);
  }
  return d;
}

// The CSR dependency table: dep_begin starts at 0, never decreases, ends at
// the id count, and each instruction waits only for earlier ones.
inline void get_deps(Reader& r, Program& p) {
  r.at = Place{};
  const size_t n = p.instrs.size();
  const size_t n_deps = r.count("dependency count", 4);
  if (r.left() / 4 < n + 1 + n_deps)
    r.fail("dependency table", cat("needs ", (n + 1 + n_deps) * 4, " bytes, ", r.left(), " left"));
  p.dep_begin.resize(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    p.dep_begin[i] = r.u32("dep_begin");
    if (i == 0 ? p.dep_begin[0] != 0 : p.dep_begin[i] < p.dep_begin[i - 1])
      r.fail("dep_begin", cat("entry ", i, " = ", p.dep_begin[i], " breaks the monotone CSR"));
  }
  if (p.dep_begin[n] != n_deps)
    r.fail("dep_begin", cat("ends at ", p.dep_begin[n], ", expected ", n_deps));
  p.dep_ids.resize(n_deps);
  for (uint32_t& id : p.dep_ids) id = r.u32("dep id");
  for (size_t i = 0; i < n; ++i)
    for (uint32_t k = p.dep_begin[i]; k < p.dep_begin[i + 1]; ++k)
      if (p.dep_ids[k] >= i)
        r.fail("dep id", cat("instr ", i, " waits for ", p.dep_ids[k], ", not an earlier one"));
}

// Allocation events: ordered by `before`, inside their space, and consistent —
// an allocation does not overlap a live one, a free matches a live allocation.
inline void get_allocs(LoadContext& c, Program& p) {
  Reader& r = c.r;
  r.at = Place{};
  p.allocs.resize(r.count("allocation count", kAllocBytes));
  std::map<int64_t, int64_t> live[2];  // SBUF, PSUM: addr -> bytes
  for (size_t i = 0; i < p.allocs.size(); ++i) {
    r.at = Place{"allocation", i};
    AllocEvent& e = p.allocs[i];
    e.space = r.enumeration<Space>("space", kNumSpaces);
    if (e.space != Space::kSbuf && e.space != Space::kPsum)
      r.fail("space", cat(space_name(e.space), " is not sbuf or psum"));
    const uint8_t is_free = r.u8("is_free");
    if (is_free > 1) r.fail("is_free", cat(int(is_free), " is not 0 or 1"));
    e.is_free = is_free;
    const int64_t cap = e.space == Space::kSbuf ? c.t.sbuf_partition_bytes
                                                : c.t.psum_partition_bytes();
    e.addr = r.ranged("addr", 0, cap - 1);
    e.bytes = r.ranged("bytes", 1, cap - e.addr);
    e.before = r.u32("before");
    if (e.before > p.instrs.size() || (i && e.before < p.allocs[i - 1].before))
      r.fail("before", cat(e.before, " is out of order or past the ", p.instrs.size(),
                           " instructions"));
    e.loc = get_loc(c);
    auto& m = live[e.space == Space::kSbuf ? 0 : 1];
    if (e.is_free) {
      auto it = m.find(e.addr);
      if (it == m.end() || it->second != e.bytes)
        r.fail("free", cat(e.bytes, " B at ", e.addr, " is not a live allocation"));
      m.erase(it);
    } else {
      auto next = m.lower_bound(e.addr);
      const bool overlaps_next = next != m.end() && next->first < e.addr + e.bytes;
      const bool overlaps_prev = next != m.begin() &&
                                 std::prev(next)->first + std::prev(next)->second > e.addr;
      if (overlaps_next || overlaps_prev)
        r.fail("alloc", cat(e.bytes, " B at ", e.addr, " overlap a live allocation"));
      m.emplace(e.addr, e.bytes);
    }
  }
}

}  // namespace serial

inline std::vector<uint8_t> save(const Program& p) {
  serial::Writer w;
  w.bytes(serial::kMagic, sizeof serial::kMagic);
  w.u32(Program::kFormatVersion);
  w.u8(uint8_t(p.target));
  w.i32(p.program_id);
  w.i32(p.num_programs);
  w.i64(p.sbuf_peak_bytes);
  w.i32(p.psum_peak_banks);
  w.count(p.files.size(), "files");
  for (const std::string& f : p.files) w.str(f);
  w.count(p.tensors.size(), "tensors");
  for (const HbmDecl& d : p.tensors) {
    w.str(d.name);
    w.u8(uint8_t(d.dtype));
    w.u8(uint8_t(d.kind));
    w.u8(uint8_t(d.shape.size()));
    for (int64_t n : d.shape) w.i64(n);
  }
  w.count(p.instrs.size(), "instructions");
  for (const Instr& in : p.instrs) serial::put(w, in);
  if (p.dep_begin.size() != p.instrs.size() + 1)
    throw Error("program save", "dep_begin",
                cat("has ", p.dep_begin.size(), " entries for ", p.instrs.size(), " instructions"));
  w.count(p.dep_ids.size(), "dependencies");
  for (uint32_t b : p.dep_begin) w.u32(b);
  for (uint32_t id : p.dep_ids) w.u32(id);
  w.count(p.allocs.size(), "allocations");
  for (const AllocEvent& e : p.allocs) {
    w.u8(uint8_t(e.space));
    w.u8(e.is_free ? 1 : 0);
    w.i64(e.addr);
    w.i64(e.bytes);
    w.u32(e.before);
    w.u32(e.loc.file);
    w.u32(e.loc.line);
  }
  return w.take();
}

inline Program load(std::span<const uint8_t> data) {
  serial::Reader r(data);
  const uint8_t* magic = r.take(sizeof serial::kMagic, "magic");
  if (!std::equal(magic, magic + sizeof serial::kMagic, serial::kMagic))
    r.fail("magic", "is not NCOREPRG: not an ncore program");
  const uint32_t version = r.u32("version");
  if (version != Program::kFormatVersion)
    r.fail("version", cat(version, " is not the supported ", Program::kFormatVersion));
  Program p;
  p.target = r.enumeration<TargetId>("target", serial::kNumTargets);
  const Target& t = target(p.target);
  p.program_id = r.i32("program_id");
  p.num_programs = r.i32("num_programs");
  if (p.num_programs < 1 || p.program_id < 0 || p.program_id >= p.num_programs)
    r.fail("program_id", cat(p.program_id, " of ", p.num_programs, " is not a grid position"));
  p.sbuf_peak_bytes = r.ranged("sbuf_peak_bytes", 0, t.sbuf_partition_bytes);
  p.psum_peak_banks = r.ranged32("psum_peak_banks", 0, t.psum_banks);

  p.files.resize(r.count("file count", serial::kMinStrBytes));
  for (std::string& f : p.files) f = r.str("file name");
  p.tensors.resize(r.count("tensor count", serial::kMinTensorBytes));
  for (size_t i = 0; i < p.tensors.size(); ++i) p.tensors[i] = serial::get_tensor(r, i);

  serial::LoadContext c{r, t, p.files, p.tensors};
  r.at = serial::Place{};
  const size_t n = r.count("instruction count", serial::kMinInstrBytes);
  p.instrs.reserve(n);
  for (size_t i = 0; i < n; ++i) p.instrs.push_back(serial::get_instr(c, i));
  serial::get_deps(r, p);
  serial::get_allocs(c, p);
  if (r.left()) r.fail("end", cat(r.left(), " trailing bytes after the program"));
  return p;
}

inline void save_file(const std::string& path, const Program& p) {
  const std::vector<uint8_t> bytes = save(p);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  f.close();
  if (!f) throw Error("program save", path, "cannot be written");
}

inline Program load_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("program load", path, "cannot be opened");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error("program load", path, "cannot be read");
  return load(bytes);
}

}  // namespace ncore
