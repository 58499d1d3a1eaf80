// A device program: what the emitter records from one kernel instance on one
// NeuronCore, what the binary format stores, what the interpreter replays and
// the cost model times.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ncore/isa/instr.h>
#include <ncore/isa/target.h>

namespace ncore {

// An SBUF/PSUM allocation or free, placed before instruction `before`.
struct AllocEvent {
  Space space = Space::kSbuf;
  bool is_free = false;
  int64_t addr = 0;
  int64_t bytes = 0;
  uint32_t before = 0;
  SrcLoc loc;
};

struct Program {
  static constexpr uint32_t kFormatVersion = 1;

  TargetId target = TargetId::kTrn2;
  int program_id = 0;
  int num_programs = 1;
  std::vector<std::string> files;   // SrcLoc::file indexes this
  std::vector<HbmDecl> tensors;     // HbmTensor ids / HBM Operand::addr index this
  std::vector<Instr> instrs;        // program order; each engine runs its own in this order
  // Dependencies in CSR form: instruction i waits for dep_ids[dep_begin[i] .. dep_begin[i+1]),
  // each an earlier instruction (RAW, WAR and WAW on overlapping memory).
  std::vector<uint32_t> dep_begin{0};
  std::vector<uint32_t> dep_ids;
  std::vector<AllocEvent> allocs;
  int64_t sbuf_peak_bytes = 0;      // per partition
  int psum_peak_banks = 0;

  const Target& target_info() const { return ncore::target(target); }
  std::span<const uint32_t> deps(size_t i) const {
    return {dep_ids.data() + dep_begin[i], dep_ids.data() + dep_begin[i + 1]};
  }
  std::string where(const SrcLoc& loc) const {
    return (loc.file < files.size() ? files[loc.file] : std::string("?")) + ":" +
           std::to_string(loc.line);
  }
  size_t count(Opcode op) const {
    size_t n = 0;
    for (const Instr& in : instrs) n += in.op == op;
    return n;
  }
  int find_tensor(std::string_view name) const {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == name) return int(i);
    return -1;
  }
};

}  // namespace ncore
