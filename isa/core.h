// The NeuronCore as a kernel author sees it. Core<Backend> is the one
// front-end: it allocates SBUF/PSUM, declares HBM tensors, validates every
// instruction against the target (errors name the kernel's source line) and
// hands it to the backend — the SIMD CPU reference executes it, the device
// emitter records it. Kernels are templates over the NeuronCore concept:
//
//   template <NeuronCore Nc> void kernel(Nc& nc, HbmTensor x) {
//     auto t = nc.sbuf(DType::kF32, 128, {512});     // [128, 512] f32
//     nc.dma(t, x);
//     nc.activation(t, ActFunc::kExp, t);
//   }
#pragma once

#include <initializer_list>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ncore/isa/allocator.h>
#include <ncore/isa/instr.h>
#include <ncore/isa/target.h>
#include <ncore/isa/validate.h>

namespace ncore {

using Loc = std::source_location;

template <class CoreT>
class Buffer;

// A per-partition scalar operand: an fp32 immediate or a [P, 1] f32 tile.
struct Scalar {
  Scalar(float v) : value(v) {}         // NOLINT: implicit by design
  Scalar(const Tile& t) : tile(t) {}    // NOLINT
  float value = 0.0f;
  std::optional<Tile> tile;
};

struct ActOpts {
  Scalar scale = 1.0f;
  Scalar bias = 0.0f;
  // [P, 1] f32: receives the free-dim sum of the results. The initializer keeps
  // -Wextra quiet about designated initializers that leave it out: {.bias = b}.
  std::optional<Tile> accum = std::nullopt;
};

// What a backend implements. The front-end has validated everything it passes.
// It is constructed from (const Target&, extra args of Core's constructor).
//   on_file(id, name)            a new entry of the source file table
//   on_hbm(id, decl, host)       a new HBM tensor; host memory or nullptr
//   on_alloc / on_free           SBUF/PSUM allocation events
//   submit(instr)                execute or record one instruction
template <class B>
concept CoreBackend = requires(B& b, const Instr& in, const HbmDecl& d, void* host,
                               SrcLoc loc) {
  b.on_file(uint32_t{}, std::string_view{});
  b.on_hbm(uint32_t{}, d, host);
  b.on_alloc(Space::kSbuf, int64_t{}, int64_t{}, loc);
  b.on_free(Space::kSbuf, int64_t{}, int64_t{});
  b.submit(in);
};

template <class Backend>
class Core {
 public:
  using BufferT = Buffer<Core>;

  template <class... Args>
  explicit Core(const Target& t, Args&&... backend_args)
      : target_(t), alloc_(t), backend_(t, std::forward<Args>(backend_args)...) {}
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  const Target& target() const { return target_; }
  Backend& backend() { return backend_; }
  const Backend& backend() const { return backend_; }
  const Allocator& allocator() const { return alloc_; }
  std::span<const HbmDecl> tensors() const { return tensors_; }
  const std::vector<std::string>& files() const { return files_; }

  // SPMD: this instance's index in the launch grid and the grid size.
  int program_id() const { return program_id_; }
  int num_programs() const { return num_programs_; }
  void set_grid(int id, int n) {
    program_id_ = id;
    num_programs_ = n;
  }

  // ---- HBM ----
  // Declares a tensor. On the CPU path `host` is its memory (nullptr: the
  // backend allocates it); the emitter records the declaration and ignores host.
  HbmTensor hbm(std::string name, DType dtype, std::vector<int64_t> shape,
                HbmKind kind = HbmKind::kInput, void* host = nullptr, Loc loc = Loc::current()) {
    if (shape.empty() || shape.size() > size_t(kMaxDims))
      throw Error("hbm", name, cat("rank must be 1..", kMaxDims, ", got ", shape.size()),
                  where(loc));
    AccessPattern ap;
    ap.ndim = int(shape.size());
    int64_t numel = 1;
    for (int d = ap.ndim - 1; d >= 0; --d) {
      const int64_t n = shape[size_t(d)];
      if (n <= 0 || n > kMaxElems / numel)
        throw Error("hbm", name,
                    cat("dim ", d, " size ", n, " is not in 1..", kMaxElems / numel, " (",
                        kMaxElems, " elements in all)"),
                    where(loc));
      ap.shape[d] = n;
      ap.stride[d] = numel;
      numel *= n;
    }
    const uint32_t id = uint32_t(tensors_.size());
    tensors_.push_back(HbmDecl{std::move(name), dtype, std::move(shape), kind});
    backend_.on_hbm(id, tensors_.back(), host);
    return HbmTensor{id, dtype, numel, ap};
  }

  // ---- SBUF / PSUM ----
  BufferT sbuf(DType dtype, int partitions, std::initializer_list<int64_t> free_shape,
               Loc loc = Loc::current()) {
    return allocate(Space::kSbuf, dtype, partitions, free_shape, loc);
  }
  BufferT psum(DType dtype, int partitions, std::initializer_list<int64_t> free_shape,
               Loc loc = Loc::current()) {
    return allocate(Space::kPsum, dtype, partitions, free_shape, loc);
  }

  // ---- Instructions (destination first, as nki.isa) ----
  void dma(const Operand& dst, const Operand& src, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kDma, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.queue = uint8_t(next_queue_++ % (target_.dma_engines * target_.dma_queues_per_engine));
    issue(in, loc);
  }
  // dst[p, f] = src[f, p]: src is a 2-D [F, P] HBM view.
  void dma_transpose(const Tile& dst, const HbmTensor& src, Loc loc = Loc::current()) {
    dma_transpose_of(dst, src, loc);
  }
  // SBUF -> SBUF, NeuronCore-v3 only: dst[p, b F + f] = src[f, b P + p] for
  // src [F, B P] and dst [P, B F] (free elements in row-major order): B
  // transposed blocks side by side, NKI's 3-D dma_transpose axes (2, 1, 0);
  // B = 1 is the plain transpose.
  void dma_transpose(const Tile& dst, const Tile& src, Loc loc = Loc::current()) {
    dma_transpose_of(dst, src, loc);
  }
  // dst[M, N] (+)= stationary[K, M]^T @ moving[K, N], fp32 in PSUM.
  void matmul(const Tile& dst, const Tile& stationary, const Tile& moving, bool accumulate,
              Loc loc = Loc::current()) {
    Instr in = make(Opcode::kMatmul, loc);
    in.opnd[0] = dst;
    in.opnd[1] = stationary;
    in.opnd[2] = moving;
    if (accumulate) in.flags |= kAccumulate;
    issue(in, loc);
  }
  // dst[F, P] = src[P, F]^T on the Tensor engine.
  void transpose(const Tile& dst, const Tile& src, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kTranspose, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    issue(in, loc);
  }
  void tensor_copy(const Tile& dst, const Tile& src, Engine engine = Engine::kVector,
                   Loc loc = Loc::current()) {
    Instr in = make(Opcode::kTensorCopy, loc);
    in.engine = engine;
    in.opnd[0] = dst;
    in.opnd[1] = src;
    issue(in, loc);
  }
  void tensor_tensor(const Tile& dst, const Tile& in0, const Tile& in1, AluOp op,
                     Engine engine = Engine::kVector, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kTensorTensor, loc);
    in.engine = engine;
    in.opnd[0] = dst;
    in.opnd[1] = in0;
    in.opnd[2] = in1;
    in.alu0 = op;
    issue(in, loc);
  }
  // dst = (src op0 s0) op1 s1; `reverse0/1` computes s op x instead.
  void tensor_scalar(const Tile& dst, const Tile& src, AluOp op0, const Scalar& s0,
                     AluOp op1 = AluOp::kBypass, const Scalar& s1 = 0.0f,
                     bool reverse0 = false, bool reverse1 = false,
                     Engine engine = Engine::kVector, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kTensorScalar, loc);
    in.engine = engine;
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.alu0 = op0;
    in.alu1 = op1;
    put_scalar(in, 3, 0, s0);
    put_scalar(in, 4, 1, s1);
    if (reverse0) in.flags |= kReverse0;
    if (reverse1) in.flags |= kReverse1;
    issue(in, loc);
  }
  // dst = (data op0 scalar) op1 tensor on VectorE, tensor of data's shape;
  // `reverse0` computes scalar op0 data, `reverse1` tensor op1 (...).
  void scalar_tensor_tensor(const Tile& dst, const Tile& data, AluOp op0, const Scalar& scalar,
                            AluOp op1, const Tile& tensor, bool reverse0 = false,
                            bool reverse1 = false, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kScalarTensorTensor, loc);
    in.opnd[0] = dst;
    in.opnd[1] = data;
    in.opnd[2] = tensor;
    in.alu0 = op0;
    in.alu1 = op1;
    put_scalar(in, 3, 0, scalar);
    if (reverse0) in.flags |= kReverse0;
    if (reverse1) in.flags |= kReverse1;
    issue(in, loc);
  }
  // Reduces the last `axes` free dims of src with op (add, max, min).
  void tensor_reduce(const Tile& dst, AluOp op, const Tile& src, int axes = 1,
                     bool negate = false, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kTensorReduce, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.alu0 = op;
    in.axes = axes;
    if (negate) in.flags |= kNegate;
    issue(in, loc);
  }
  // dst = func(src * scale + bias); opts.accum receives the free-dim sum.
  void activation(const Tile& dst, ActFunc func, const Tile& src, const ActOpts& opts = {},
                  Loc loc = Loc::current()) {
    Instr in = make(Opcode::kActivation, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.func = func;
    if (opts.accum) in.opnd[2] = *opts.accum;
    put_scalar(in, 4, 0, opts.scale);
    put_scalar(in, 3, 1, opts.bias);
    issue(in, loc);
  }
  void memset(const Tile& dst, float value, Engine engine = Engine::kVector,
              Loc loc = Loc::current()) {
    Instr in = make(Opcode::kMemset, loc);
    in.engine = engine;
    in.opnd[0] = dst;
    in.imm[0] = value;
    issue(in, loc);
  }
  void iota(const Tile& dst, const Affine& pattern, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kIota, loc);
    in.opnd[0] = dst;
    in.affine = pattern;
    issue(in, loc);
  }
  // dst = (pattern(p, i) cmp 0) ? src : fill, e.g. a causal mask.
  void affine_select(const Tile& dst, const Tile& src, const Affine& pattern, AluOp cmp,
                     float fill, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kAffineSelect, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.affine = pattern;
    in.alu0 = cmp;
    in.imm[0] = fill;
    issue(in, loc);
  }
  void bn_stats(const Tile& dst, const Tile& src, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kBnStats, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    issue(in, loc);
  }
  void bn_aggr(const Tile& dst, const Tile& src, Loc loc = Loc::current()) {
    Instr in = make(Opcode::kBnAggr, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    issue(in, loc);
  }

  // Used by Buffer's destructor; `t` is the whole buffer, so its size is the allocation's.
  void release(const Tile& t) {
    alloc_.free(t.space, t.addr);
    backend_.on_free(t.space, t.addr, t.free.size() * dtype_size(t.dtype));
  }

 private:
  BufferT allocate(Space space, DType dtype, int partitions,
                   std::initializer_list<int64_t> free_shape, const Loc& loc) {
    const char* what = space == Space::kSbuf ? "sbuf" : "psum";
    if (partitions < 1 || partitions > target_.partitions)
      throw Error(what, "partitions",
                  cat(partitions, " outside 1..", target_.partitions, " (", target_.name, ")"),
                  where(loc));
    if (free_shape.size() < 1 || int(free_shape.size()) > target_.max_free_dims)
      throw Error(what, "free shape",
                  cat("rank ", free_shape.size(), " outside 1..", target_.max_free_dims),
                  where(loc));
    int64_t elems = 1;  // bounded as it grows: the product must not overflow
    for (int64_t d : free_shape) {
      if (d < 1 || d > kMaxElems / elems)
        throw Error(what, "free shape",
                    cat("dim ", d, " is not in 1..", kMaxElems / elems, " (", kMaxElems,
                        " elements in all)"),
                    where(loc));
      elems *= d;
    }
    Tile t;
    t.space = space;
    t.dtype = dtype;
    t.np = partitions;
    t.free = AccessPattern::dense(free_shape);
    const int64_t bytes = elems * dtype_size(dtype);
    t.addr = alloc_.alloc(space, bytes, where(loc));
    backend_.on_alloc(space, t.addr, bytes, src_loc(loc));
    return BufferT(this, t);
  }

  void dma_transpose_of(const Tile& dst, const Operand& src, const Loc& loc) {
    Instr in = make(Opcode::kDmaTranspose, loc);
    in.opnd[0] = dst;
    in.opnd[1] = src;
    in.queue = uint8_t(next_queue_++ % (target_.dma_engines * target_.dma_queues_per_engine));
    issue(in, loc);
  }

  static void put_scalar(Instr& in, int slot, int imm, const Scalar& s) {
    if (s.tile) in.opnd[size_t(slot)] = *s.tile;
    else in.imm[size_t(imm)] = s.value;
  }

  Instr make(Opcode op, const Loc& loc) {
    Instr in;
    in.op = op;
    in.engine = default_engine(op);
    in.loc = src_loc(loc);
    return in;
  }

  void issue(const Instr& in, const Loc& loc) {
    validate(target_, tensors_, in, where(loc));
    backend_.submit(in);
  }

  SrcLoc src_loc(const Loc& loc) {
    const std::string_view name = short_path(loc.file_name());
    for (uint32_t i = 0; i < files_.size(); ++i)
      if (files_[i] == name) return SrcLoc{i, loc.line()};
    files_.emplace_back(name);
    backend_.on_file(uint32_t(files_.size() - 1), name);
    return SrcLoc{uint32_t(files_.size() - 1), loc.line()};
  }

  const Target& target_;
  Allocator alloc_;
  Backend backend_;
  std::vector<HbmDecl> tensors_;
  std::vector<std::string> files_;
  int program_id_ = 0, num_programs_ = 1;
  uint32_t next_queue_ = 0;
};

// An SBUF/PSUM allocation that frees itself; it is the whole-buffer Tile, and
// its views (slice, partitions, ...) are plain Tiles.
template <class CoreT>
class Buffer : public Tile {
 public:
  Buffer(CoreT* core, const Tile& t) : Tile(t), core_(core) {}
  Buffer(Buffer&& o) noexcept : Tile(o), core_(std::exchange(o.core_, nullptr)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      Tile::operator=(o);
      core_ = std::exchange(o.core_, nullptr);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

 private:
  void reset() {
    if (core_) core_->release(*this);
    core_ = nullptr;
  }
  CoreT* core_ = nullptr;
};

// The instruction set kernels are written against.
template <class C>
concept NeuronCore = requires(C& nc, const Tile& t, const HbmTensor& h) {
  { nc.target() } -> std::same_as<const Target&>;
  nc.program_id();
  nc.num_programs();
  nc.sbuf(DType::kF32, 1, {1});
  nc.psum(DType::kF32, 1, {1});
  nc.dma(t, h);
  nc.dma_transpose(t, h);
  nc.dma_transpose(t, t);
  nc.matmul(t, t, t, false);
  nc.transpose(t, t);
  nc.tensor_copy(t, t);
  nc.tensor_tensor(t, t, t, AluOp::kAdd);
  nc.tensor_scalar(t, t, AluOp::kAdd, 1.0f);
  nc.tensor_reduce(t, AluOp::kAdd, t);
  nc.activation(t, ActFunc::kExp, t);
  nc.memset(t, 0.0f);
  nc.iota(t, Affine{});
  nc.affine_select(t, t, Affine{}, AluOp::kIsGe, 0.0f);
  nc.bn_stats(t, t);
  nc.bn_aggr(t, t);
};

}  // namespace ncore
