// ncore::Error — the one error type. Its message names what failed (the
// instruction or API call), which operand, the limit or expectation, what was
// given, and where (the kernel's source line), e.g.
//   matmul: moving free size 640 exceeds 512 (trn2) at kernels/gemm.h:57
#pragma once

#include <cstdint>
#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ncore {

// "a/b/kernels/gemm.h" -> "kernels/gemm.h": the last two path components are
// enough to find the line and never leak the build machine's layout.
inline std::string_view short_path(std::string_view path) {
  size_t last = path.rfind('/');
  if (last == std::string_view::npos || last == 0) return path;
  size_t prev = path.rfind('/', last - 1);
  return prev == std::string_view::npos ? path : path.substr(prev + 1);
}

inline std::string where(const std::source_location& loc) {
  return std::string(short_path(loc.file_name())) + ":" + std::to_string(loc.line());
}

class Error : public std::runtime_error {
 public:
  // what: instruction or API ("matmul", "run gemm"); operand: "moving", "A";
  // problem: the violated expectation with what was given and the limit;
  // at: "kernels/gemm.h:57" or empty.
  Error(std::string what, std::string operand, std::string problem, std::string at = {})
      : std::runtime_error(format(what, operand, problem, at)),
        what_(std::move(what)),
        operand_(std::move(operand)),
        at_(std::move(at)) {}

  const std::string& instruction() const { return what_; }
  const std::string& operand() const { return operand_; }
  const std::string& location() const { return at_; }

 private:
  static std::string format(const std::string& what, const std::string& operand,
                            const std::string& problem, const std::string& at) {
    std::string s = what + ": ";
    if (!operand.empty()) s += operand + " ";
    s += problem;
    if (!at.empty()) s += " at " + at;
    return s;
  }
  std::string what_, operand_, at_;
};

// Builds the "problem" part from streamable pieces: cat("free size ", n, " exceeds ", lim).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace ncore
