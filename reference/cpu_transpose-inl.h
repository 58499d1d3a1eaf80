// Per-target transposes: the Tensor-engine transpose (dst[F, P] = src[P, F],
// values: decoded, then RNE to dst's dtype, as the interpreter does) and
// dma_transpose (dst[P, F] = src[F, P], bits). Both are
//   dst row r, element c = src row c, element r   (r < dst.np, c < src.np),
// since dma_transpose's [F, P] HBM view resolves to F rows of P elements.

#if defined(NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#undef NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#else
#define NCORE_REFERENCE_CPU_TRANSPOSE_INL_H_
#endif

#include <hwy/highway.h>
#include <ncore/reference/cpu_convert-inl.h>
#include <ncore/reference/cpu_ops.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace ncore::cpu::HWY_NAMESPACE {

// Source rows per pass: a [64, R] tile of R <= 128 (pmax) fp32 is 32 KiB,
// L1-resident while its columns are gathered.
inline constexpr int64_t kTransposeTile = 64;

inline void Transpose(const View& dst, const View& src, bool bits) {
  const Stream d(dst), s(src);
  const int64_t rows = dst.np, esz = bits ? s.esz() : int64_t(sizeof(float));
  std::vector<uint8_t> tile(size_t(kTransposeTile * rows * esz));
  std::vector<uint8_t> col(size_t(kTransposeTile * esz));
  for (int64_t c0 = 0; c0 < src.np; c0 += kTransposeTile) {
    const int64_t cn = std::min(kTransposeTile, src.np - c0);
    for (int64_t c = 0; c < cn; ++c) {  // tile row c = src row c0 + c, elements [0, rows)
      uint8_t* t = tile.data() + c * rows * esz;
      if (bits) {
        s.ReadRaw(src.row(int(c0 + c)), 0, rows, t);
      } else {
        float* f = reinterpret_cast<float*>(t);
        const float* x = s.Read(int(c0 + c), 0, rows, f);
        if (x != f) std::memcpy(f, x, size_t(rows) * sizeof(float));
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cn; ++c)
        std::memcpy(col.data() + c * esz, tile.data() + (c * rows + r) * esz, size_t(esz));
      if (bits) {
        d.WriteRaw(dst.row(int(r)), c0, cn, col.data());
      } else {
        d.Write(int(r), c0, cn, reinterpret_cast<const float*>(col.data()));
      }
    }
  }
}

}  // namespace ncore::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
