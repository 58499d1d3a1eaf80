// The device interpreter: replays a Program with NeuronCore numerics.
//
// Memory: SBUF and PSUM per the program's target, HBM = the caller's bound
// host buffers (scratch tensors it does not bind are allocated here). Element
// e of an on-chip operand lives at byte addr + ap_offset(e) * dtype_size in
// each of its partitions; an HBM operand maps its dim 0 to partitions.
//
// Numerics: every value read is decoded to fp32; Vector/Scalar/GpSimd compute
// in fp32 with isa/semantics.h; every write rounds (RNE) to the destination
// dtype. Matmul sums over k in order in fp32, each product and each add
// rounded, then adds that sum to PSUM when accumulating. Same-dtype copies
// (dma, dma_transpose, tensor_copy) move bits. An instruction reads all of a
// partition's inputs before writing that partition; DMAs whose source and
// destination overlap across rows get that row-by-row behaviour (the device
// leaves it undefined).
//
// Poison: each byte of SBUF, PSUM, HBM outputs and HBM scratch is
// uninitialised until written, and so is each new SBUF/PSUM allocation (a
// Program AllocEvent) even where an earlier one wrote its bytes. Reading such
// a byte is an Error naming the instruction, operand, partition and byte, and
// source line.
//
// fp32-only mode: no rounding on chip. Each on-chip store also keeps its
// fp32 value in a shadow at the element's first byte, and reads of that
// element return it (isa/sim/memory.h Shadow); the bytes still hold the
// rounded value, and stores to HBM still round to the tensor's dtype.
//
// Schedule: see isa/sim/scheduler.h. The Program is checked on construction
// (validate() on every instruction, tensor declarations, dependency and
// allocation tables), so a hostile file cannot drive the interpreter out of
// bounds.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ncore/isa/allocator.h>
#include <ncore/isa/emit/program.h>
#include <ncore/isa/error.h>
#include <ncore/isa/numerics.h>
#include <ncore/isa/sim/memory.h>
#include <ncore/isa/sim/row_ops.h>
#include <ncore/isa/sim/scheduler.h>
#include <ncore/isa/validate.h>

// Every caller of the row arithmetic must compile without FMA contraction
// too, or the inlined products would fuse with its adds (see row_ops.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace ncore {

struct InterpOptions {
  uint64_t seed = 1;         // picks the adversarial schedule (scheduler.h: seed % 4 picks the
                             // slow queues); same seed, same run
  bool fp32_only = false;    // keep full fp32 on chip whatever the dtype
  bool adversarial = true;   // false: the earliest ready instruction always runs next
};

struct InterpStats {
  std::array<uint64_t, kNumEngines> instrs{};   // executed, per engine
  std::array<uint64_t, kNumOpcodes> opcodes{};  // executed, per opcode
  uint64_t matmul_macs = 0;                     // K * M * N summed over matmuls
  uint64_t dma_elements = 0;                    // elements moved by dma / dma_transpose
  uint64_t reordered = 0;  // instructions run while an earlier one (program order) had not
  uint64_t max_ready = 0;  // most engine/queue heads ready at once
};

class Interpreter {
 public:
  // Beyond validate(), bounds that keep a hostile program's memory and time
  // finite. Elements per partition (row buffers): 2^20 is 4x a 224 KiB SBUF
  // partition of fp8; only HBM-to-HBM DMAs could reach it (reshape them to
  // more rows). Elements per operand: 2^31 is 8 GiB of f32 in one
  // instruction, 300x all of SBUF; only broadcast views and huge HBM copies
  // could reach it.
  static constexpr int64_t kMaxRowElems = int64_t{1} << 20;
  static constexpr int64_t kMaxOperandElems = int64_t{1} << 31;
  // Scratch tensors the caller does not bind are allocated here up to 1 GiB
  // (a kernel's spill space is far smaller); larger ones must be bound, so a
  // hostile declaration cannot exhaust memory.
  static constexpr int64_t kMaxOwnedScratchBytes = int64_t{1} << 30;

  // Keeps its own copy of the program.
  explicit Interpreter(Program program, InterpOptions opt = {})
      : prog_(std::move(program)), opt_(opt), target_(check_target(prog_)) {
    check_program();
    sched_ = std::make_unique<sim::Scheduler>(prog_);
    init_chip(sbuf_, Space::kSbuf, target_.sbuf_partition_bytes, sbuf_data_, sbuf_shadow_);
    init_chip(psum_, Space::kPsum, target_.psum_partition_bytes(), psum_data_, psum_shadow_);
    hbm_.resize(prog_.tensors.size());
    owned_.resize(prog_.tensors.size());
    for (size_t i = 0; i < hbm_.size(); ++i) {
      hbm_[i].name = cat("hbm tensor '", prog_.tensors[i].name, "'");
      hbm_[i].space = Space::kHbm;
      hbm_[i].bytes = prog_.tensors[i].bytes();
    }
    build_claims();
  }
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // `host` must hold exactly the tensor's decl.bytes() and outlive run().
  void bind(uint32_t tensor_id, void* host, size_t bytes) {
    if (tensor_id >= prog_.tensors.size())
      throw Error("bind", cat("tensor #", tensor_id),
                  cat("is not declared (", prog_.tensors.size(), " tensors)"));
    const HbmDecl& d = prog_.tensors[tensor_id];
    const std::string who = cat("tensor '", d.name, "'");
    if (!host) throw Error("bind", who, "host pointer is null");
    if (bytes != size_t(d.bytes()))
      throw Error("bind", who,
                  cat("needs ", d.bytes(), " bytes (", decl_str(d), "), got ", bytes));
    sim::Plane& pl = hbm_[tensor_id];
    pl.data = static_cast<uint8_t*>(host);
    pl.all_written = d.kind == HbmKind::kInput;
    if (!pl.all_written) pl.written.reset(pl.bytes);
  }
  void bind(std::string_view name, void* host, size_t bytes) {
    const int id = prog_.find_tensor(name);
    if (id < 0) throw Error("bind", cat("tensor '", name, "'"), "is not declared by the program");
    bind(uint32_t(id), host, bytes);
  }

  // Executes the whole program from fresh (all-uninitialised) on-chip memory.
  void run() {
    for (size_t i = 0; i < hbm_.size(); ++i) {
      sim::Plane& pl = hbm_[i];
      const HbmDecl& d = prog_.tensors[i];
      if (!pl.data && d.kind == HbmKind::kScratch) {
        if (pl.bytes > kMaxOwnedScratchBytes)
          throw Error("run", cat("tensor '", d.name, "'"),
                      cat("is unbound scratch of ", pl.bytes, " bytes, over the ",
                          kMaxOwnedScratchBytes, " the interpreter allocates; bind it"));
        owned_[i] = sim::zeroed<uint8_t>(pl.bytes);
        pl.data = owned_[i].get();
        pl.written.reset(pl.bytes);
      }
      if (!pl.data)
        throw Error("run", cat("tensor '", d.name, "'"),
                    cat("is not bound (", decl_str(d), "); bind it before run()"));
      if (!pl.all_written) pl.written.clear_all();
    }
    sbuf_.written.clear_all();
    psum_.written.clear_all();
    sbuf_owner_.assign(size_t(sbuf_.bytes / kGranule), kNoAlloc);
    psum_owner_.assign(size_t(psum_.bytes / kGranule), kNoAlloc);
    stats_ = {};
    sched_->run(opt_.adversarial, opt_.seed, [this](size_t i) { exec(i); });
    stats_.reordered = sched_->stats().reordered;
    stats_.max_ready = sched_->stats().max_ready;
  }

  const InterpStats& stats() const { return stats_; }
  // Instruction indices in the order the last run() executed them.
  std::span<const uint32_t> schedule() const { return sched_->order(); }
  const Program& program() const { return prog_; }

 private:
  // One operand of the executing instruction, as rows of elements: element
  // offset `off` of row r is at byte row0 + r * pitch + off * esz of `plane`.
  struct Opnd {
    sim::Plane* plane = nullptr;
    DType dtype = DType::kF32;
    int64_t esz = 4;
    int slot = 0;
    int64_t rows = 0;
    int64_t row0 = 0, pitch = 0;
    AccessPattern ap;  // the elements of one row, offset included
  };
  // Allocations are granule-aligned (the allocator's alignment), so two never
  // share a granule.
  static constexpr int64_t kGranule = Allocator::kAlign;
  static constexpr uint32_t kNoAlloc = UINT32_MAX;
  // Instruction i's operand in `space` covers granules [g0, g1) of
  // partitions [p0, p0 + np) of allocation `alloc`.
  struct Claim {
    Space space;
    int p0, np;
    int64_t g0, g1;
    uint32_t alloc;
  };

  // ---------------- construction checks ----------------

  static const Target& check_target(const Program& p) {
    if (int(p.target) > int(TargetId::kTrn2))
      throw Error("program", "target", cat("id ", int(p.target), " is unknown"));
    return p.target_info();
  }

  static std::string decl_str(const HbmDecl& d) {
    std::string s = "[";
    for (size_t k = 0; k < d.shape.size(); ++k) s += cat(k ? ", " : "", d.shape[k]);
    return s + cat("] ", dtype_name(d.dtype));
  }

  void check_program() const {
    for (const HbmDecl& d : prog_.tensors) {
      const std::string who = cat("tensor '", d.name, "'");
      if (int(d.dtype) > int(DType::kI32) || int(d.kind) > int(HbmKind::kScratch))
        throw Error("program", who, "has an unknown dtype or kind");
      if (d.shape.empty() || d.shape.size() > size_t(kMaxDims))
        throw Error("program", who, cat("rank ", d.shape.size(), " outside 1..", kMaxDims));
      int64_t numel = 1;
      for (int64_t n : d.shape) {
        if (n < 1 || n > kMaxElems / numel)
          throw Error("program", who,
                      cat("dim size ", n, " is not positive or the tensor exceeds ",
                          kMaxElems, " elements"));
        numel *= n;
      }
    }
    const size_t n = prog_.instrs.size();
    if (prog_.dep_begin.size() != n + 1 || prog_.dep_begin[0] != 0 ||
        prog_.dep_begin[n] != prog_.dep_ids.size())
      throw Error("program", "deps",
                  cat("dep_begin has ", prog_.dep_begin.size(), " entries for ", n,
                      " instructions and ", prog_.dep_ids.size(), " dependency ids"));
    for (size_t i = 0; i < n; ++i)  // before any deps(i): its range must be inside dep_ids
      if (prog_.dep_begin[i] > prog_.dep_begin[i + 1])
        throw Error("program", "deps", cat("dep_begin decreases at instruction #", i));
    for (size_t i = 0; i < n; ++i) {
      for (uint32_t d : prog_.deps(i))
        if (d >= n)
          throw Error("program", "deps",
                      cat("instruction #", i, " depends on #", d, ", outside [0, ", n, ")"));
    }
    for (size_t i = 0; i < n; ++i) {
      const Instr& in = prog_.instrs[i];
      const std::string at = prog_.where(in.loc);
      validate(target_, prog_.tensors, in, at);
      for (int s = 0; s < int(in.opnd.size()); ++s) {
        const Operand& o = in.opnd[size_t(s)];
        if (o.empty()) continue;
        const int64_t row = o.free_size();
        if (row > kMaxRowElems || row > kMaxOperandElems / o.np)
          throw Error(cat("#", i, " ", opcode_name(in.op)), slot_name(in.op, s),
                      cat("has ", o.np, " x ", row, " elements, over the interpreter's ",
                          kMaxRowElems, " per partition or ", kMaxOperandElems, " in all"),
                      at);
      }
    }
    for (const AllocEvent& e : prog_.allocs) {
      if (e.space != Space::kSbuf && e.space != Space::kPsum)
        throw Error("program", "allocs", cat("event in ", space_name(e.space), " (not on chip)"));
      const int64_t cap = e.space == Space::kSbuf ? target_.sbuf_partition_bytes
                                                  : target_.psum_partition_bytes();
      if (e.addr % kGranule != 0)
        throw Error("program", "allocs",
                    cat(space_name(e.space), " address ", e.addr, " is not a multiple of ",
                        kGranule, " (the allocator's alignment)"));
      if (e.addr < 0 || e.bytes < 0 || e.addr > cap || e.bytes > cap - e.addr || e.before > n)
        throw Error("program", "allocs",
                    cat(space_name(e.space), " bytes [", e.addr, ", +", e.bytes, ") before #",
                        e.before, " outside the ", cap, " B partition or the ", n,
                        " instructions"));
    }
  }

  void init_chip(sim::Plane& pl, Space s, int64_t pitch, sim::ZeroedArray<uint8_t>& data,
                 std::unique_ptr<sim::Shadow>& shadow) {
    pl.name = space_name(s);
    pl.space = s;
    pl.pitch = pitch;
    pl.bytes = pitch * target_.partitions;
    data = sim::zeroed<uint8_t>(pl.bytes);
    pl.data = data.get();
    pl.written.reset(pl.bytes);
    if (opt_.fp32_only) {
      shadow = std::make_unique<sim::Shadow>(pl.bytes);
      pl.shadow = shadow.get();
    }
  }

  // Fresh allocations. For each instruction, precompute its claims: for each
  // on-chip operand, the allocation live (in program order) under it, cut to
  // the operand's partitions and the granules of its byte range. At run time
  // the first claim of a (partition, granule) for an allocation clears its
  // written bits: every earlier user of that granule precedes the claiming
  // instruction through the dependencies (tracked at granule or coarser
  // resolution, isa/emit/deps.h), while users of the allocation's other
  // granules may still be running.
  void build_claims() {
    std::vector<AllocEvent> ev = prog_.allocs;
    std::stable_sort(ev.begin(), ev.end(),
                     [](const AllocEvent& a, const AllocEvent& b) { return a.before < b.before; });
    std::map<int64_t, std::pair<int64_t, uint32_t>> live[2];  // lo -> (hi, allocation id)
    uint32_t next_id = 0;
    size_t next = 0;
    claim_begin_.push_back(0);
    for (size_t i = 0; i < prog_.instrs.size(); ++i) {
      for (; next < ev.size() && ev[next].before <= i; ++next) {
        const AllocEvent& e = ev[next];
        auto& m = live[e.space == Space::kSbuf ? 0 : 1];
        if (e.is_free) {
          m.erase(e.addr);
        } else if (e.bytes > 0) {
          const int64_t hi = (e.addr + e.bytes + kGranule - 1) / kGranule * kGranule;
          erase_overlapping(m, e.addr, hi);
          m[e.addr] = {hi, next_id++};
        }
      }
      for (const Operand& o : prog_.instrs[i].opnd) {
        if (!o.on_chip()) continue;
        const Tile t = o.tile();
        const auto& m = live[o.space == Space::kSbuf ? 0 : 1];
        auto it = m.upper_bound(t.byte_lo());
        if (it != m.begin()) --it;
        for (; it != m.end() && it->first < t.byte_hi(); ++it) {
          const int64_t lo = std::max(it->first, t.byte_lo());
          const int64_t hi = std::min(it->second.first, t.byte_hi());
          if (lo >= hi) continue;
          claims_.push_back(Claim{o.space, o.p0, o.np, lo / kGranule,
                                  (hi + kGranule - 1) / kGranule, it->second.second});
        }
      }
      claim_begin_.push_back(uint32_t(claims_.size()));
    }
  }
  static void erase_overlapping(std::map<int64_t, std::pair<int64_t, uint32_t>>& m, int64_t lo,
                                int64_t hi) {
    auto it = m.upper_bound(lo);
    if (it != m.begin() && std::prev(it)->second.first > lo) --it;
    while (it != m.end() && it->first < hi) it = m.erase(it);
  }

  void apply_claims(size_t i) {
    for (uint32_t k = claim_begin_[i]; k < claim_begin_[i + 1]; ++k) {
      const Claim& c = claims_[k];
      sim::Plane& pl = c.space == Space::kSbuf ? sbuf_ : psum_;
      std::vector<uint32_t>& owner = c.space == Space::kSbuf ? sbuf_owner_ : psum_owner_;
      const int64_t granules = pl.pitch / kGranule;
      for (int p = c.p0; p < c.p0 + c.np; ++p)
        for (int64_t g = c.g0; g < c.g1; ++g) {
          uint32_t& own = owner[size_t(p * granules + g)];
          if (own == c.alloc) continue;
          own = c.alloc;
          pl.written.clear(p * pl.pitch + g * kGranule, p * pl.pitch + (g + 1) * kGranule);
        }
    }
  }

  // ---------------- operand access ----------------

  float* buf(int k, int64_t n) {
    auto& v = fbuf_[size_t(k)];
    if (int64_t(v.size()) < n) v.resize(size_t(n));
    return v.data();
  }
  uint8_t* raw_buf(int64_t n) {
    if (int64_t(raw_.size()) < n) raw_.resize(size_t(n));
    return raw_.data();
  }

  Opnd resolve(const Instr& in, int slot) {
    const Operand& x = in.opnd[size_t(slot)];
    Opnd o;
    o.dtype = x.dtype;
    o.esz = dtype_size(x.dtype);
    o.slot = slot;
    if (x.on_chip()) {
      o.plane = x.space == Space::kSbuf ? &sbuf_ : &psum_;
      o.pitch = o.plane->pitch;
      o.row0 = x.p0 * o.pitch + x.addr;
      o.rows = x.np;
      o.ap = x.ap;
      return o;
    }
    o.plane = &hbm_[x.tensor()];
    o.rows = x.ap.shape[0];
    o.pitch = x.ap.stride[0] * o.esz;
    o.ap.offset = x.ap.offset;
    o.ap.ndim = x.ap.ndim == 1 ? 1 : x.ap.ndim - 1;
    o.ap.shape[0] = 1;
    o.ap.stride[0] = 1;
    for (int d = 1; d < x.ap.ndim; ++d) {
      o.ap.shape[d - 1] = x.ap.shape[d];
      o.ap.stride[d - 1] = x.ap.stride[d];
    }
    return o;
  }

  // Calls f(byte, step, len, first_element) for each innermost run of row r.
  template <class F>
  static void walk(const Opnd& o, int64_t r, F&& f) {
    const int64_t base = o.row0 + r * o.pitch;
    const int64_t step = o.ap.stride[o.ap.ndim - 1] * o.esz;
    int64_t e = 0;
    o.ap.for_each_row([&](int64_t off, int64_t len) {
      f(base + off * o.esz, step, len, e);
      e += len;
    });
  }

  [[noreturn]] void fail(int slot, const std::string& problem) const {
    const Instr& in = prog_.instrs[cur_];
    throw Error(cat("#", cur_, " ", opcode_name(in.op)), slot < 0 ? "" : slot_name(in.op, slot),
                problem, prog_.where(in.loc));
  }

  [[noreturn]] void poisoned(const Opnd& o, int64_t r, int64_t byte, int64_t elem) const {
    const sim::Plane& pl = *o.plane;
    if (pl.space == Space::kHbm)
      fail(o.slot, cat("reads uninitialised ", pl.name, " element ", byte / o.esz, " (row ", r,
                       ", element ", elem, " of the operand)"));
    fail(o.slot, cat("reads uninitialised ", pl.name, " partition ", byte / pl.pitch, " byte ",
                     byte % pl.pitch, " (row ", r, ", element ", elem, " of the operand)"));
  }

  void check_read(const Opnd& o, int64_t r, int64_t a, int64_t step, int64_t len, int64_t e) const {
    const sim::Plane& pl = *o.plane;
    if (pl.all_written) return;
    if (step == o.esz) {
      const int64_t b = pl.written.first_unset(a, a + len * o.esz);
      if (b >= 0) poisoned(o, r, b, e + (b - a) / o.esz);
      return;
    }
    for (int64_t i = 0; i < len; ++i) {
      const int64_t b = pl.written.first_unset(a + i * step, a + i * step + o.esz);
      if (b >= 0) poisoned(o, r, b, e + i);
    }
  }

  static void mark_written(sim::Plane& pl, int64_t a, int64_t step, int64_t len, int64_t esz) {
    if (pl.all_written) return;
    if (step == esz) return pl.written.set(a, a + len * esz);
    for (int64_t i = 0; i < len; ++i) pl.written.set(a + i * step, a + i * step + esz);
  }

  // The fp32 value of one element: its fp32-only shadow, else its bytes decoded.
  static float value_at(const sim::Plane& pl, int64_t a, DType t) {
    float v;
    if (pl.shadow && pl.shadow->load(a, t, v)) return v;
    return decode(t, pl.data + a);
  }

  // Row r of o decoded to fp32.
  void load(const Opnd& o, int64_t r, float* out) const {
    walk(o, r, [&](int64_t a, int64_t step, int64_t len, int64_t e) {
      check_read(o, r, a, step, len, e);
      if (o.plane->shadow) {
        for (int64_t i = 0; i < len; ++i) out[e + i] = value_at(*o.plane, a + i * step, o.dtype);
      } else {
        sim::decode_run(o.dtype, o.plane->data + a, step, len, out + e);
      }
    });
  }
  float load_scalar(const Opnd& o, int64_t r) const {
    float v;
    load(o, r, &v);
    return v;
  }

  // Row r of o from fp32, rounded to o's dtype (and kept whole in the shadow).
  void store(const Opnd& o, int64_t r, const float* in) {
    sim::Plane& pl = *o.plane;
    walk(o, r, [&](int64_t a, int64_t step, int64_t len, int64_t e) {
      sim::encode_run(o.dtype, in + e, len, pl.data + a, step);
      mark_written(pl, a, step, len, o.esz);
      if (pl.shadow)
        for (int64_t i = 0; i < len; ++i) pl.shadow->store(a + i * step, o.dtype, in[e + i]);
    });
  }

  // Row r of o as bytes; `vals` (may be null) also gets the fp32 values.
  void load_raw(const Opnd& o, int64_t r, uint8_t* raw, float* vals) const {
    walk(o, r, [&](int64_t a, int64_t step, int64_t len, int64_t e) {
      check_read(o, r, a, step, len, e);
      if (step == o.esz) {
        std::memcpy(raw + e * o.esz, o.plane->data + a, size_t(len * o.esz));
      } else {
        for (int64_t i = 0; i < len; ++i)
          std::memcpy(raw + (e + i) * o.esz, o.plane->data + a + i * step, size_t(o.esz));
      }
      if (vals)
        for (int64_t i = 0; i < len; ++i) vals[e + i] = value_at(*o.plane, a + i * step, o.dtype);
    });
  }
  // Row r of o from bytes; a shadow gets `vals`, or the bytes decoded.
  void store_raw(const Opnd& o, int64_t r, const uint8_t* raw, const float* vals) {
    sim::Plane& pl = *o.plane;
    walk(o, r, [&](int64_t a, int64_t step, int64_t len, int64_t e) {
      if (step == o.esz) {
        std::memcpy(pl.data + a, raw + e * o.esz, size_t(len * o.esz));
      } else {
        for (int64_t i = 0; i < len; ++i)
          std::memcpy(pl.data + a + i * step, raw + (e + i) * o.esz, size_t(o.esz));
      }
      mark_written(pl, a, step, len, o.esz);
      if (pl.shadow)
        for (int64_t i = 0; i < len; ++i)
          pl.shadow->store(a + i * step, o.dtype,
                           vals ? vals[e + i] : decode(o.dtype, raw + (e + i) * o.esz));
    });
  }

  // ---------------- instructions ----------------

  void exec(size_t i) {
    cur_ = i;
    const Instr& in = prog_.instrs[i];
    apply_claims(i);
    switch (in.op) {
      case Opcode::kDma: exec_dma(in); break;
      case Opcode::kDmaTranspose: exec_dma_transpose(in); break;
      case Opcode::kMatmul: exec_matmul(in); break;
      case Opcode::kTranspose: exec_transpose(in); break;
      case Opcode::kTensorCopy: copy_rows(resolve(in, 0), resolve(in, 1)); break;
      case Opcode::kTensorTensor: exec_tensor_tensor(in); break;
      case Opcode::kTensorScalar: exec_tensor_scalar(in); break;
      case Opcode::kTensorReduce: exec_tensor_reduce(in); break;
      case Opcode::kActivation: exec_activation(in); break;
      case Opcode::kMemset: exec_memset(in); break;
      case Opcode::kIota: exec_iota(in); break;
      case Opcode::kAffineSelect: exec_affine_select(in); break;
      case Opcode::kBnStats: exec_bn_stats(in); break;
      case Opcode::kBnAggr: exec_bn_aggr(in); break;
      case Opcode::kScalarTensorTensor: exec_scalar_tensor_tensor(in); break;
    }
    ++stats_.instrs[size_t(in.engine)];
    ++stats_.opcodes[size_t(in.op)];
  }

  // dst row r = src row r, element by element in row-major order: bits when
  // the dtypes match, else through fp32.
  void copy_rows(const Opnd& d, const Opnd& s) {
    const int64_t n = d.ap.size();
    if (d.dtype == s.dtype) {
      uint8_t* raw = raw_buf(n * d.esz);
      float* vals = opt_.fp32_only ? buf(0, n) : nullptr;
      for (int64_t r = 0; r < d.rows; ++r) {
        load_raw(s, r, raw, vals);
        store_raw(d, r, raw, vals);
      }
      return;
    }
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      store(d, r, x);
    }
  }

  void exec_dma(const Instr& in) {
    const Opnd d = resolve(in, 0);
    copy_rows(d, resolve(in, 1));
    stats_.dma_elements += uint64_t(d.rows * d.ap.size());
  }

  // dst[p, f] = src[f, p]: row p of the source is column p of the [F, P] view.
  // An SBUF source [F, B P] gives dst[p, b F + f] = src[f, b P + p].
  void exec_dma_transpose(const Instr& in) {
    const Opnd d = resolve(in, 0);
    const Operand& x = in.opnd[1];
    if (x.on_chip()) {  // gathered element by element: no buffer beyond one dst row
      const Opnd s = resolve(in, 1);
      const int64_t F = s.rows, P = d.rows, B = s.ap.size() / P, esz = d.esz;
      auto offset_of = [&](int64_t e) {  // element e of a src row, row-major over its free dims
        int64_t off = s.ap.offset;
        for (int k = s.ap.ndim - 1; k >= 0; --k) {
          off += e % s.ap.shape[k] * s.ap.stride[k];
          e /= s.ap.shape[k];
        }
        return off;
      };
      uint8_t* row = raw_buf(B * F * esz);
      float* vals = opt_.fp32_only ? buf(0, B * F) : nullptr;
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t f = 0; f < F; ++f) {
            const int64_t e = b * P + p, a = s.row0 + f * s.pitch + offset_of(e) * esz;
            check_read(s, f, a, esz, 1, e);
            std::memcpy(row + (b * F + f) * esz, s.plane->data + a, size_t(esz));
            if (vals) vals[b * F + f] = value_at(*s.plane, a, s.dtype);
          }
        store_raw(d, p, row, vals);
      }
      stats_.dma_elements += uint64_t(d.rows * d.ap.size());
      return;
    }
    Opnd s;
    s.plane = &hbm_[x.tensor()];
    s.dtype = x.dtype;
    s.esz = dtype_size(x.dtype);
    s.slot = 1;
    s.rows = x.ap.shape[1];
    s.pitch = x.ap.stride[1] * s.esz;
    s.ap.offset = x.ap.offset;
    s.ap.ndim = 1;
    s.ap.shape[0] = x.ap.shape[0];
    s.ap.stride[0] = x.ap.stride[0];
    copy_rows(d, s);
    stats_.dma_elements += uint64_t(d.rows * d.ap.size());
  }

  // dst[m, :] (+)= sum_k stationary[k, m] * moving[k, :].
  void exec_matmul(const Instr& in) {
    const Opnd d = resolve(in, 0), st = resolve(in, 1), mv = resolve(in, 2);
    const int64_t K = st.rows, M = st.ap.size(), N = mv.ap.size();
    float* s = buf(0, K * M);  // [K, M]
    float* v = buf(1, K * N);  // [K, N]
    float* acc = buf(2, sim::kMatmulRows * N);  // [rows, N]
    float* old = buf(3, N);
    for (int64_t k = 0; k < K; ++k) {
      load(st, k, s + k * M);
      load(mv, k, v + k * N);
    }
    for (int64_t m0 = 0; m0 < M; m0 += sim::kMatmulRows) {
      const int64_t rows = std::min(sim::kMatmulRows, M - m0);
      sim::matmul_rows(s, v, K, M, N, m0, rows, acc);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = acc + r * N;
        if (in.has(kAccumulate)) {
          load(d, m0 + r, old);
          for (int64_t j = 0; j < N; ++j) row[j] = old[j] + row[j];
        }
        store(d, m0 + r, row);
      }
    }
    stats_.matmul_macs += uint64_t(K * M * N);
  }

  // dst[f, p] = src[p, f], value-exact, then rounded to dst's dtype.
  void exec_transpose(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t P = s.rows, F = s.ap.size();
    float* t = buf(0, P * F);  // [P, F]
    float* col = buf(1, P);
    for (int64_t p = 0; p < P; ++p) load(s, p, t + p * F);
    for (int64_t f = 0; f < F; ++f) {
      for (int64_t p = 0; p < P; ++p) col[p] = t[p * F + f];
      store(d, f, col);
    }
  }

  void exec_tensor_tensor(const Instr& in) {
    const Opnd d = resolve(in, 0), a = resolve(in, 1), b = resolve(in, 2);
    const int64_t n = d.ap.size();
    float* x = buf(0, n);
    float* y = buf(1, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(a, r, x);
      load(b, r, y);
      sim::alu_rows(in.alu0, x, y, n);
      store(d, r, x);
    }
  }

  // A per-partition scalar: the [P, 1] column in `slot` if present, else the immediate.
  float scalar(const Instr& in, int slot, int64_t r, float imm) {
    if (in.opnd[size_t(slot)].empty()) return imm;
    return load_scalar(resolve(in, slot), r);
  }

  void exec_tensor_scalar(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t n = d.ap.size();
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      const float s0 = scalar(in, 3, r, in.imm[0]);
      const float s1 = scalar(in, 4, r, in.imm[1]);
      sim::alu_scalar(in.alu0, x, s0, in.has(kReverse0), n);
      sim::alu_scalar(in.alu1, x, s1, in.has(kReverse1), n);
      store(d, r, x);
    }
  }

  // (data op0 s) op1 tensor: the first stage rounds to fp32 in x, the second
  // reads it back (isa/semantics.h scalar_tensor_tensor).
  void exec_scalar_tensor_tensor(const Instr& in) {
    const Opnd d = resolve(in, 0), a = resolve(in, 1), b = resolve(in, 2);
    const int64_t n = d.ap.size();
    float* x = buf(0, n);
    float* y = buf(1, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(a, r, x);
      load(b, r, y);
      sim::alu_scalar(in.alu0, x, scalar(in, 3, r, in.imm[0]), in.has(kReverse0), n);
      if (in.has(kReverse1)) {
        sim::alu_rows(in.alu1, y, x, n);
        store(d, r, y);
      } else {
        sim::alu_rows(in.alu1, x, y, n);
        store(d, r, x);
      }
    }
  }

  void exec_tensor_reduce(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t n = s.ap.size();
    int64_t inner = 1;  // elements reduced into each output
    for (int k = s.ap.ndim - in.axes; k < s.ap.ndim; ++k) inner *= s.ap.shape[k];
    const int64_t kept = n / inner;
    float* x = buf(0, n);
    float* y = buf(1, kept);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      for (int64_t j = 0; j < kept; ++j) {
        const float* row = x + j * inner;
        const float v = reduce(in.alu0, inner, [row](int64_t i) { return row[i]; });
        y[j] = in.has(kNegate) ? -v : v;
      }
      store(d, r, y);
    }
  }

  // dst = func(src * scale + bias); accum = fp32 sum of the results in the shared
  // reduction order (semantics.h reduce), as the CPU reference sums.
  void exec_activation(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const bool has_accum = !in.opnd[2].empty();
    const Opnd acc = has_accum ? resolve(in, 2) : Opnd{};
    const int64_t n = d.ap.size();
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      const float scale = scalar(in, 4, r, in.imm[0]);
      const float bias = scalar(in, 3, r, in.imm[1]);
      sim::scale_bias(x, scale, bias, n);
      sim::activate_row(in.func, x, n);
      const float sum = has_accum ? reduce(AluOp::kAdd, n, [x](int64_t i) { return x[i]; }) : 0.0f;
      store(d, r, x);
      if (has_accum) store(acc, r, &sum);
    }
  }

  void exec_memset(const Instr& in) {
    const Opnd d = resolve(in, 0);
    const int64_t n = d.ap.size();
    float* x = buf(0, n);
    for (int64_t j = 0; j < n; ++j) x[j] = in.imm[0];
    for (int64_t r = 0; r < d.rows; ++r) store(d, r, x);
  }

  // value(r, i) = base + channel * r + sum_k free[k] * i_k over row r's
  // elements in row-major order, in int32 arithmetic (wrapping, as GpSimd's).
  static void affine_row(const Affine& a, const AccessPattern& ap, int64_t r, int32_t* out) {
    std::array<int64_t, kMaxDims> idx{};
    const int64_t n = ap.size();
    const int dims = std::min(ap.ndim, int(a.free.size()));
    for (int64_t e = 0; e < n; ++e) {
      uint32_t v = uint32_t(a.base) + uint32_t(a.channel) * uint32_t(r);
      for (int k = 0; k < dims; ++k) v += uint32_t(a.free[size_t(k)]) * uint32_t(idx[size_t(k)]);
      out[e] = int32_t(v);
      for (int k = ap.ndim - 1; k >= 0 && ++idx[size_t(k)] == ap.shape[k]; --k) idx[size_t(k)] = 0;
    }
  }

  void exec_iota(const Instr& in) {
    const Opnd d = resolve(in, 0);
    const int64_t n = d.ap.size();
    std::vector<int32_t>& v = ibuf_;
    v.resize(size_t(n));
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      affine_row(in.affine, d.ap, r, v.data());
      if (d.dtype == DType::kI32) {
        store_raw(d, r, reinterpret_cast<const uint8_t*>(v.data()), nullptr);
      } else {
        for (int64_t j = 0; j < n; ++j) x[j] = float(v[size_t(j)]);
        store(d, r, x);
      }
    }
  }

  // dst = (affine value cmp 0) ? src : imm[0].
  void exec_affine_select(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t n = d.ap.size();
    std::vector<int32_t>& v = ibuf_;
    v.resize(size_t(n));
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      affine_row(in.affine, d.ap, r, v.data());
      for (int64_t j = 0; j < n; ++j)
        if (alu(in.alu0, float(v[size_t(j)]), 0.0f) == 0.0f) x[j] = in.imm[0];
      store(d, r, x);
    }
  }

  // Per partition: (count, mean, M2) of the even-indexed elements, then of the odd.
  void exec_bn_stats(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t n = s.ap.size();
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      const Moments me = moments((n + 1) / 2, [x](int64_t j) { return x[2 * j]; });
      const Moments mo = moments(n / 2, [x](int64_t j) { return x[2 * j + 1]; });
      const float out[6] = {me.count, me.mean, me.m2, mo.count, mo.mean, mo.m2};
      store(d, r, out);
    }
  }

  // (mean, population variance) of all (count, mean, M2) groups, combined in order.
  void exec_bn_aggr(const Instr& in) {
    const Opnd d = resolve(in, 0), s = resolve(in, 1);
    const int64_t n = s.ap.size();
    float* x = buf(0, n);
    for (int64_t r = 0; r < d.rows; ++r) {
      load(s, r, x);
      Moments all;
      for (int64_t g = 0; g + 3 <= n; g += 3) all = combine(all, {x[g], x[g + 1], x[g + 2]});
      const float nan = std::numeric_limits<float>::quiet_NaN();
      const float out[2] = {all.count == 0.0f ? nan : all.mean,
                            all.count == 0.0f ? nan : all.m2 / all.count};
      store(d, r, out);
    }
  }

  Program prog_;
  InterpOptions opt_;
  const Target& target_;
  std::unique_ptr<sim::Scheduler> sched_;

  sim::Plane sbuf_, psum_;
  sim::ZeroedArray<uint8_t> sbuf_data_, psum_data_;
  std::unique_ptr<sim::Shadow> sbuf_shadow_, psum_shadow_;
  std::vector<sim::Plane> hbm_;
  std::vector<sim::ZeroedArray<uint8_t>> owned_;  // scratch tensors nobody bound

  std::vector<Claim> claims_;
  std::vector<uint32_t> claim_begin_;  // CSR: instruction i's claims
  // Per (partition, granule): the allocation whose claim last cleared it.
  std::vector<uint32_t> sbuf_owner_, psum_owner_;

  size_t cur_ = 0;  // the executing instruction, for messages
  std::array<std::vector<float>, 4> fbuf_;
  std::vector<uint8_t> raw_;
  std::vector<int32_t> ibuf_;
  InterpStats stats_;
};

}  // namespace ncore

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
