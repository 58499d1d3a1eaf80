// .npy files (NumPy format 1.0-3.0) holding C-ordered little-endian float32.
// Reading checks everything and throws ncore::Error naming the file; writing
// goes to a temporary file renamed into place, so a failure never leaves a
// partial output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ncore/isa/error.h>

namespace ncore::npy {

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t dim(int i) const { return shape[size_t(i)]; }
};

namespace detail {

// The header is a Python dict literal; we accept exactly the keys NumPy writes.
inline std::string field(const std::string& header, const std::string& key,
                         const std::string& path) {
  const std::string k = "'" + key + "'";
  size_t pos = header.find(k);
  if (pos == std::string::npos) throw Error("npy", path, "header has no '" + key + "' key");
  pos = header.find(':', pos + k.size());
  if (pos == std::string::npos) throw Error("npy", path, "malformed header");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (end < header.size() && header[end] == '(') {
    end = header.find(')', end);
    if (end == std::string::npos) throw Error("npy", path, "malformed shape");
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  return header.substr(pos, end - pos);
}

inline std::vector<int64_t> parse_shape(const std::string& s, const std::string& path) {
  if (s.size() < 2 || s.front() != '(' || s.back() != ')')
    throw Error("npy", path, "shape is not a tuple: " + s);
  std::vector<int64_t> shape;
  size_t i = 1;
  while (i < s.size() - 1) {
    while (i < s.size() - 1 && (s[i] == ' ' || s[i] == ',')) ++i;
    if (i >= s.size() - 1) break;
    int64_t v = 0;
    size_t digits = 0;
    while (i < s.size() - 1 && s[i] >= '0' && s[i] <= '9') {
      if (v > (int64_t{1} << 40)) throw Error("npy", path, "shape dim too large: " + s);
      v = v * 10 + (s[i++] - '0');
      ++digits;
    }
    if (!digits) throw Error("npy", path, "shape has a non-integer entry: " + s);
    shape.push_back(v);
  }
  return shape;
}

}  // namespace detail

inline Array read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("npy", path, "cannot be opened for reading");
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error("npy", path, "is not a .npy file (bad magic)");
  const int major = uint8_t(magic[6]);
  if (major < 1 || major > 3) throw Error("npy", path, cat("unsupported format version ", major));
  uint32_t hlen = 0;
  unsigned char lenbuf[4] = {0, 0, 0, 0};
  if (!f.read(reinterpret_cast<char*>(lenbuf), major == 1 ? 2 : 4))
    throw Error("npy", path, "is truncated in its header");
  hlen = lenbuf[0] | (lenbuf[1] << 8) | (uint32_t(lenbuf[2]) << 16) | (uint32_t(lenbuf[3]) << 24);
  if (hlen > (1u << 20)) throw Error("npy", path, cat("header length ", hlen, " is implausible"));
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) throw Error("npy", path, "is truncated in its header");

  const std::string descr = detail::field(header, "descr", path);
  if (descr != "'<f4'" && descr != "'=f4'" && descr != "'f4'")
    throw Error("npy", path, "dtype must be float32 ('<f4'), got " + descr);
  if (detail::field(header, "fortran_order", path) != "False")
    throw Error("npy", path, "must be C-ordered (fortran_order False)");
  Array a;
  a.shape = detail::parse_shape(detail::field(header, "shape", path), path);
  int64_t n = 1;
  for (int64_t d : a.shape) {
    if (d > 0 && n > (int64_t{1} << 40) / d) throw Error("npy", path, "shape is too large");
    n *= d;
  }
  const auto data_start = f.tellg();
  f.seekg(0, std::ios::end);
  const int64_t avail = int64_t(f.tellg() - data_start);
  if (avail != n * 4)
    throw Error("npy", path, cat("holds ", avail, " data bytes, its shape needs ", n * 4));
  f.seekg(data_start);
  a.data.resize(size_t(n));
  if (n && !f.read(reinterpret_cast<char*>(a.data.data()), n * 4))
    throw Error("npy", path, "is truncated in its data");
  return a;
}

inline void write(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
    n *= shape[i];
  }
  if (shape.size() == 1) dict.pop_back();
  dict += "), }";
  // Pad so the data starts on a 64-byte boundary, header ends with '\n' (format 1.0).
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("npy", path, "cannot be opened for writing");
    const uint16_t hlen = uint16_t(dict.size());
    const char pre[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    f.write(pre, 8);
    const char len[2] = {char(hlen & 0xFF), char(hlen >> 8)};
    f.write(len, 2);
    f.write(dict.data(), std::streamsize(dict.size()));
    f.write(reinterpret_cast<const char*>(data), std::streamsize(n * 4));
    if (!f.flush()) {
      f.close();
      std::remove(tmp.c_str());
      throw Error("npy", path, "write failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error("npy", path, "cannot be renamed into place: " + ec.message());
  }
}

}  // namespace ncore::npy
