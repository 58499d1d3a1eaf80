// isa/tile.h: the access-pattern algebra against an independent model that
// materialises every view as an explicit list of element offsets (CuTe's
// R(c) == A(B(c)) habit). Random seeded chains of views — slice, index,
// reshape, transpose, broadcast, partitions — are applied to an
// AccessPattern, a Tile and an HbmTensor in lockstep and to the model; after
// every step the enumerations, rows, contiguity and bounds must agree, and a
// view the model calls illegal must throw an ncore::Error naming the problem.
#include <ncore/isa/tile.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace ncore {
namespace {

constexpr uint32_t kSeed = 20240611;  // fixed: a failure must reproduce
constexpr int kChains = 3000;         // random view chains per test
constexpr int kStepsPerChain = 8;     // views composed per chain
constexpr int64_t kMaxExtent = 6;     // base dims 1..6: small lists, every corner reachable

// Runs f, which must throw an ncore::Error whose message contains every one
// of `parts`; returns the message (empty on failure, after reporting it).
std::string expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << p << "\"";
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ncore exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw; expected an error with \"" << *parts.begin() << "\"";
  return {};
}

// ---------------------------------------------------------------------------
// The model: a view is its shape plus the element offsets it visits in
// row-major order. Its view functions move whole index lists around and
// never look at strides.
struct Listed {
  std::vector<int64_t> shape;
  std::vector<int64_t> elems;

  int rank() const { return int(shape.size()); }
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Linear row-major position <-> multi-index, by division (no odometer).
  std::vector<int64_t> unflatten(int64_t lin) const {
    std::vector<int64_t> idx(shape.size());
    for (int d = rank() - 1; d >= 0; --d) {
      idx[size_t(d)] = lin % shape[size_t(d)];
      lin /= shape[size_t(d)];
    }
    return idx;
  }
  int64_t flatten(const std::vector<int64_t>& idx) const {
    int64_t lin = 0;
    for (int d = 0; d < rank(); ++d) lin = lin * shape[size_t(d)] + idx[size_t(d)];
    return lin;
  }
  // A new view of `shape`, each element taken from this one at old_index(new_index).
  Listed remap(std::vector<int64_t> new_shape,
               const std::function<std::vector<int64_t>(std::vector<int64_t>)>& old_index) const {
    Listed r;
    r.shape = std::move(new_shape);
    for (int64_t j = 0; j < r.count(); ++j)
      r.elems.push_back(elems[size_t(flatten(old_index(r.unflatten(j))))]);
    return r;
  }

  bool contiguous() const {
    for (size_t i = 0; i < elems.size(); ++i)
      if (elems[i] != elems[0] + int64_t(i)) return false;
    return true;
  }
  // Each innermost row is either consecutive offsets (then a run is the
  // whole row) or not (then every run is a single element).
  int64_t inner_run() const {
    if (shape.empty()) return 1;
    const int64_t row = shape.back();
    for (size_t i = 0; i < elems.size(); ++i)
      if (i % size_t(row) != 0 && elems[i] != elems[i - 1] + 1) return 1;
    return row;
  }
};

Listed materialise(const AccessPattern& ap) {  // from the definition, by division
  Listed l;
  l.shape.assign(ap.shape.begin(), ap.shape.begin() + ap.ndim);
  for (int64_t lin = 0; lin < l.count(); ++lin) {
    const std::vector<int64_t> idx = l.unflatten(lin);
    int64_t off = ap.offset;
    for (int d = 0; d < ap.ndim; ++d) off += idx[size_t(d)] * ap.stride[size_t(d)];
    l.elems.push_back(off);
  }
  return l;
}

Listed ref_slice(const Listed& l, int dim, int64_t start, int64_t stop) {
  std::vector<int64_t> s = l.shape;
  s[size_t(dim)] = stop - start;
  return l.remap(s, [&](std::vector<int64_t> i) {
    i[size_t(dim)] += start;
    return i;
  });
}
Listed ref_index(const Listed& l, int dim, int64_t at) {
  Listed r = ref_slice(l, dim, at, at + 1);
  if (r.rank() > 1) r.shape.erase(r.shape.begin() + dim);  // rank 1 keeps its only dim
  return r;
}
Listed ref_transpose(const Listed& l, int d0, int d1) {
  std::vector<int64_t> s = l.shape;
  std::swap(s[size_t(d0)], s[size_t(d1)]);
  return l.remap(s, [&](std::vector<int64_t> i) {
    std::swap(i[size_t(d0)], i[size_t(d1)]);
    return i;
  });
}
Listed ref_broadcast(const Listed& l, int dim, int64_t n) {
  std::vector<int64_t> s = l.shape;
  s[size_t(dim)] = n;
  return l.remap(s, [&](std::vector<int64_t> i) {
    i[size_t(dim)] = 0;
    return i;
  });
}
Listed ref_reshape(const Listed& l, const std::vector<int64_t>& dims) {
  Listed r = l;
  r.shape = dims;
  return r;
}

// ---------------------------------------------------------------------------
// Everything an AccessPattern says about itself, against the model.
void expect_matches(const AccessPattern& ap, const Listed& ref, const std::string& trail) {
  SCOPED_TRACE(trail);
  ASSERT_EQ(ap.ndim, ref.rank());
  for (int d = 0; d < ap.ndim; ++d)
    ASSERT_EQ(ap.shape[size_t(d)], ref.shape[size_t(d)]) << "dim " << d;
  ASSERT_EQ(ap.size(), int64_t(ref.elems.size()));

  std::vector<int64_t> walked;
  ap.for_each([&](int64_t off) { walked.push_back(off); });
  ASSERT_EQ(walked, ref.elems) << "for_each";

  // Rows are the innermost dim, walked with its stride; each row is one
  // contiguous run exactly when inner_run() is its length.
  const int64_t row_len = ref.rank() ? ref.shape.back() : 1;
  const int64_t row_step = ap.ndim ? ap.stride[size_t(ap.ndim - 1)] : 0;
  std::vector<int64_t> from_rows;
  ap.for_each_row([&](int64_t first, int64_t len) {
    EXPECT_EQ(len, row_len);
    for (int64_t k = 0; k < len; ++k) from_rows.push_back(first + k * row_step);
  });
  ASSERT_EQ(from_rows, ref.elems) << "for_each_row covers for_each's elements, in order";

  EXPECT_EQ(ap.contiguous(), ref.contiguous());
  EXPECT_EQ(ap.inner_run(), ref.inner_run());
  EXPECT_EQ(ap.min_offset(), *std::min_element(ref.elems.begin(), ref.elems.end()));
  EXPECT_EQ(ap.max_offset(), *std::max_element(ref.elems.begin(), ref.elems.end()));
}

// ---------------------------------------------------------------------------
// Random chains. Parameters are drawn so that about one step in five is
// illegal; the model decides which, and an illegal step must throw.
struct Chain {
  std::mt19937 rng;
  explicit Chain(uint32_t seed) : rng(seed) {}

  int64_t uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  }
  bool coin(double p) { return std::bernoulli_distribution(p)(rng); }

  // A base pattern: dense, or arbitrary non-negative strides (0 included).
  AccessPattern base() {
    AccessPattern ap;
    ap.ndim = int(uniform(1, 4));
    ap.offset = uniform(0, 20);
    const bool dense = coin(0.5);
    int64_t s = 1;
    for (int d = ap.ndim - 1; d >= 0; --d) {
      ap.shape[size_t(d)] = uniform(1, kMaxExtent);
      ap.stride[size_t(d)] = dense ? s : uniform(0, 12);
      s *= ap.shape[size_t(d)];
    }
    return ap;
  }

  // A dims list: a random factorisation of n into 1..4 factors, sometimes off by one element.
  std::vector<int64_t> reshape_dims(int64_t n, bool& keeps_count) {
    std::vector<int64_t> dims;
    int64_t rest = n;
    const int rank = int(uniform(1, 4));
    for (int k = 0; k + 1 < rank; ++k) {
      std::vector<int64_t> divisors;
      for (int64_t f = 1; f <= rest; ++f)
        if (rest % f == 0) divisors.push_back(f);
      const int64_t f = divisors[size_t(uniform(0, int64_t(divisors.size()) - 1))];
      dims.push_back(f);
      rest /= f;
    }
    dims.push_back(rest);
    keeps_count = true;
    if (coin(0.1)) {
      dims.back() += 1;
      keeps_count = false;
    }
    return dims;
  }
};

AccessPattern reshape_ap(const AccessPattern& ap, const std::vector<int64_t>& d) {
  switch (d.size()) {  // reshape takes an initializer_list, as kernels write it
    case 1:
      return ap.reshape({d[0]}, "ap");
    case 2:
      return ap.reshape({d[0], d[1]}, "ap");
    case 3:
      return ap.reshape({d[0], d[1], d[2]}, "ap");
    default:
      return ap.reshape({d[0], d[1], d[2], d[3]}, "ap");
  }
}
Tile reshape_tile(const Tile& t, const std::vector<int64_t>& d) {
  switch (d.size()) {
    case 1:
      return t.reshape({d[0]});
    case 2:
      return t.reshape({d[0], d[1]});
    case 3:
      return t.reshape({d[0], d[1], d[2]});
    default:
      return t.reshape({d[0], d[1], d[2], d[3]});
  }
}
HbmTensor reshape_hbm(const HbmTensor& h, const std::vector<int64_t>& d) {
  switch (d.size()) {
    case 1:
      return h.reshape({d[0]});
    case 2:
      return h.reshape({d[0], d[1]});
    case 3:
      return h.reshape({d[0], d[1], d[2]});
    default:
      return h.reshape({d[0], d[1], d[2], d[3]});
  }
}

// The three view types walk the same chain. A Tile's free pattern and an
// HbmTensor's pattern must equal the bare AccessPattern's at every step.
struct Views {
  AccessPattern ap;
  Tile tile;
  HbmTensor hbm;
  Listed ref;
};

struct Counts {
  int legal = 0, illegal = 0;
};

// One random step. Returns false when the step was illegal (all three threw).
bool step(Chain& c, Views& v, std::string& trail, Counts& counts) {
  const int rank = v.ref.rank();
  // A dim index that is out of range about 5% of the time.
  auto pick_dim = [&] {
    return c.coin(0.05) ? int(c.coin(0.5) ? -1 : rank) : int(c.uniform(0, rank - 1));
  };
  auto expect_all_throw = [&](const std::function<void(int)>& f, const std::string& problem) {
    // 0: AccessPattern, 1: Tile, 2: HbmTensor; each names itself as the `what`.
    for (const char* what : {"ap: ", "tile: ", "hbm: "}) {
      SCOPED_TRACE(trail);
      const int which = what[0] == 'a' ? 0 : what[0] == 't' ? 1 : 2;
      expect_error([&] { f(which); }, {what, problem});
    }
    ++counts.illegal;
    return false;
  };
  auto accept = [&](AccessPattern ap, Tile t, HbmTensor h, Listed ref) {
    v.ap = ap;
    v.tile = t;
    v.hbm = h;
    v.ref = std::move(ref);
    ++counts.legal;
    return true;
  };

  switch (c.uniform(0, 5)) {
    case 0: {  // slice
      const int dim = pick_dim();
      const int64_t n = dim >= 0 && dim < rank ? v.ref.shape[size_t(dim)] : 4;
      int64_t start = c.uniform(-1, n), stop = c.uniform(start, n + 1);
      if (c.coin(0.7)) {  // mostly in range
        start = c.uniform(0, n - 1);
        stop = c.uniform(start + 1, n);
      }
      trail += cat(" slice(", dim, ",", start, ",", stop, ")");
      auto f = [&](int w) {
        if (w == 0) (void)v.ap.slice(dim, start, stop, "ap");
        if (w == 1) (void)v.tile.slice(dim, start, stop);
        if (w == 2) (void)v.hbm.slice(dim, start, stop);
      };
      if (dim < 0 || dim >= rank)
        return expect_all_throw(f, cat("dim ", dim, " outside rank ", rank));
      if (start >= stop) return expect_all_throw(f, "is empty");
      if (start < 0 || stop > n) return expect_all_throw(f, cat("is outside [0, ", n, ")"));
      return accept(v.ap.slice(dim, start, stop, "ap"), v.tile.slice(dim, start, stop),
                    v.hbm.slice(dim, start, stop), ref_slice(v.ref, dim, start, stop));
    }
    case 1: {  // index
      const int dim = pick_dim();
      const int64_t n = dim >= 0 && dim < rank ? v.ref.shape[size_t(dim)] : 4;
      const int64_t i = c.coin(0.9) ? c.uniform(0, n - 1) : (c.coin(0.5) ? -1 : n);
      trail += cat(" index(", dim, ",", i, ")");
      auto f = [&](int w) {
        if (w == 0) (void)v.ap.index(dim, i, "ap");
        if (w == 1) (void)v.tile.index(dim, i);
        if (w == 2) (void)v.hbm.index(dim, i);
      };
      if (dim < 0 || dim >= rank)
        return expect_all_throw(f, cat("dim ", dim, " outside rank ", rank));
      if (i < 0 || i >= n)
        return expect_all_throw(f, cat(i, " of dim ", dim, " is outside [0, ", n, ")"));
      return accept(v.ap.index(dim, i, "ap"), v.tile.index(dim, i), v.hbm.index(dim, i),
                    ref_index(v.ref, dim, i));
    }
    case 2: {  // transpose
      const int d0 = pick_dim(), d1 = int(c.uniform(0, rank - 1));
      trail += cat(" transpose(", d0, ",", d1, ")");
      auto f = [&](int w) {
        if (w == 0) (void)v.ap.transpose(d0, d1, "ap");
        if (w == 1) (void)v.tile.transpose(d0, d1);
        if (w == 2) (void)v.hbm.transpose(d0, d1);
      };
      if (d0 < 0 || d0 >= rank) return expect_all_throw(f, cat("dim ", d0, " outside rank ", rank));
      return accept(v.ap.transpose(d0, d1, "ap"), v.tile.transpose(d0, d1), v.hbm.transpose(d0, d1),
                    ref_transpose(v.ref, d0, d1));
    }
    case 3: {  // broadcast: prefer size-1 dims so that it is mostly legal
      std::vector<int> ones;
      for (int d = 0; d < rank; ++d)
        if (v.ref.shape[size_t(d)] == 1) ones.push_back(d);
      const int dim = !ones.empty() && c.coin(0.8)
                          ? ones[size_t(c.uniform(0, int64_t(ones.size()) - 1))]
                          : pick_dim();
      const int64_t n = c.coin(0.95) ? c.uniform(1, 4) : 0;
      trail += cat(" broadcast(", dim, ",", n, ")");
      auto f = [&](int w) {
        if (w == 0) (void)v.ap.broadcast(dim, n, "ap");
        if (w == 1) (void)v.tile.broadcast(dim, n);
        if (w == 2) (void)v.hbm.broadcast(dim, n);
      };
      if (dim < 0 || dim >= rank)
        return expect_all_throw(f, cat("dim ", dim, " outside rank ", rank));
      if (v.ref.shape[size_t(dim)] != 1)
        return expect_all_throw(
            f, cat("dim ", dim, " must have size 1, got ", v.ref.shape[size_t(dim)]));
      if (n <= 0) return expect_all_throw(f, cat("got ", n));
      return accept(v.ap.broadcast(dim, n, "ap"), v.tile.broadcast(dim, n), v.hbm.broadcast(dim, n),
                    ref_broadcast(v.ref, dim, n));
    }
    case 4: {  // reshape
      bool keeps = true;
      const std::vector<int64_t> dims = c.reshape_dims(v.ref.count(), keeps);
      trail += " reshape(";
      for (int64_t d : dims) trail += cat(d, ",");
      trail += ")";
      auto f = [&](int w) {
        if (w == 0) (void)reshape_ap(v.ap, dims);
        if (w == 1) (void)reshape_tile(v.tile, dims);
        if (w == 2) (void)reshape_hbm(v.hbm, dims);
      };
      if (!v.ref.contiguous()) return expect_all_throw(f, "needs a contiguous view");
      if (!keeps) {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        return expect_all_throw(f, cat("must keep ", v.ref.count(), " elements, got ", n));
      }
      return accept(reshape_ap(v.ap, dims), reshape_tile(v.tile, dims), reshape_hbm(v.hbm, dims),
                    ref_reshape(v.ref, dims));
    }
    default: {  // partitions (Tile only): the free pattern is untouched
      const int np = v.tile.np;
      int start = int(c.uniform(0, np - 1)), count = int(c.uniform(1, np - start));
      if (c.coin(0.1)) count = np - start + 1;
      trail += cat(" partitions(", start, ",", count, ")");
      if (start + count > np) {
        SCOPED_TRACE(trail);
        expect_error([&] { (void)v.tile.partitions(start, count); },
                     {"tile: partitions",
                      cat("[", start, ", ", start + count, ") is outside [0, ", np, ")")});
        ++counts.illegal;
        return false;
      }
      const Tile t = v.tile.partitions(start, count);
      EXPECT_EQ(t.p0, v.tile.p0 + start);
      EXPECT_EQ(t.np, count);
      EXPECT_EQ(t.free, v.tile.free);
      return accept(v.ap, t, v.hbm, v.ref);
    }
  }
}

TEST(AccessPatternTest, RandomViewChainsMatchTheMaterialisedModel) {
  Chain c(kSeed);
  Counts counts;
  for (int chain = 0; chain < kChains; ++chain) {
    Views v;
    v.ap = c.base();
    const int64_t numel =
        v.ap.max_offset() + 1 + c.uniform(0, 3);  // the tensor holds the base view
    v.tile = Tile{Space::kSbuf,          DType::kBF16,         int(c.uniform(0, 3)) * 32,
                  int(c.uniform(1, 32)), 64 * c.uniform(0, 4), v.ap};
    v.hbm = HbmTensor{uint32_t(chain), DType::kF32, numel, v.ap};
    v.ref = materialise(v.ap);
    std::string trail = cat("chain ", chain, ": base");
    expect_matches(v.ap, v.ref, trail);
    for (int s = 0; s < kStepsPerChain; ++s) {
      if (!step(c, v, trail, counts)) continue;
      expect_matches(v.ap, v.ref, trail);
      ASSERT_EQ(v.tile.free, v.ap) << trail;
      ASSERT_EQ(v.hbm.ap, v.ap) << trail;
      // Views never leave what they were made from.
      ASSERT_LT(v.hbm.ap.max_offset(), v.hbm.numel) << trail;
      ASSERT_GE(v.hbm.ap.min_offset(), 0) << trail;
      const int64_t esz = dtype_size(v.tile.dtype);
      EXPECT_EQ(v.tile.byte_lo(), v.tile.addr + v.ap.min_offset() * esz) << trail;
      EXPECT_EQ(v.tile.byte_hi(), v.tile.addr + (v.ap.max_offset() + 1) * esz) << trail;
      if (testing::Test::HasFatalFailure()) return;
    }
  }
  // The mix must exercise both sides of every rule, or the test proves little.
  EXPECT_GT(counts.legal, kChains * kStepsPerChain / 2);
  EXPECT_GT(counts.illegal, kChains / 2);
}

// ---------------------------------------------------------------------------
// Fixed examples: the order and the runs, written out by hand.

TEST(AccessPatternTest, ForEachIsRowMajor) {
  // [2, 3] with strides (1, 2): a transposed [3, 2].
  AccessPattern ap = AccessPattern::dense({3, 2}).transpose(0, 1, "t");
  std::vector<int64_t> got;
  ap.for_each([&](int64_t off) { got.push_back(off); });
  EXPECT_EQ(got, (std::vector<int64_t>{0, 2, 4, 1, 3, 5}));

  AccessPattern d = AccessPattern::dense({2, 2, 2}, 10);
  got.clear();
  d.for_each([&](int64_t off) { got.push_back(off); });
  EXPECT_EQ(got, (std::vector<int64_t>{10, 11, 12, 13, 14, 15, 16, 17}));
}

TEST(AccessPatternTest, ForEachRowWalksInnermostRows) {
  // Dense rows of a column slice: each row is a contiguous run.
  AccessPattern rows = AccessPattern::dense({3, 8}).slice(1, 2, 6, "t");  // [3, 4], strides (8, 1)
  std::vector<std::pair<int64_t, int64_t>> runs;
  rows.for_each_row([&](int64_t off, int64_t len) { runs.emplace_back(off, len); });
  EXPECT_EQ(runs, (std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {10, 4}, {18, 4}}));
  EXPECT_EQ(rows.inner_run(), 4);
  EXPECT_FALSE(rows.contiguous());

  // A strided innermost dim: rows of stride 3, no run longer than one element.
  AccessPattern cols = AccessPattern::dense({2, 3}).transpose(0, 1, "t");  // [3, 2], strides (1, 3)
  runs.clear();
  cols.for_each_row([&](int64_t off, int64_t len) { runs.emplace_back(off, len); });
  EXPECT_EQ(runs, (std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {1, 2}, {2, 2}}));
  EXPECT_EQ(cols.inner_run(), 1);

  // A broadcast innermost dim: rows of stride 0 repeat one element.
  AccessPattern bc = AccessPattern::dense({2, 1}).broadcast(1, 3, "t");
  runs.clear();
  bc.for_each_row([&](int64_t off, int64_t len) { runs.emplace_back(off, len); });
  EXPECT_EQ(runs, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {1, 3}}));
  EXPECT_EQ(bc.inner_run(), 1);
  EXPECT_FALSE(bc.contiguous());

  // Rank 0 is a single element.
  AccessPattern scalar;
  scalar.offset = 9;
  runs.clear();
  scalar.for_each_row([&](int64_t off, int64_t len) { runs.emplace_back(off, len); });
  EXPECT_EQ(runs, (std::vector<std::pair<int64_t, int64_t>>{{9, 1}}));
}

TEST(AccessPatternTest, ContiguityIgnoresSizeOneDims) {
  AccessPattern ap = AccessPattern::dense({4, 1, 8});
  ap.stride[1] = 999;  // never stepped: a size-1 dim's stride is irrelevant
  EXPECT_TRUE(ap.contiguous());
  EXPECT_EQ(ap.max_offset(), 31);
  EXPECT_TRUE(AccessPattern::dense({4, 8}).slice(0, 1, 3, "t").contiguous());   // whole rows
  EXPECT_FALSE(AccessPattern::dense({4, 8}).slice(1, 1, 3, "t").contiguous());  // part rows
}

// ---------------------------------------------------------------------------
// Illegal views: each one named, none undefined.

TEST(AccessPatternTest, IllegalViewsThrowNamingTheProblem) {
  const Tile t{Space::kSbuf, DType::kF32, 0, 128, 0, AccessPattern::dense({4, 8})};  // [128, 4, 8]
  const HbmTensor h{0, DType::kBF16, 32, AccessPattern::dense({4, 8})};

  expect_error([&] { (void)t.slice(1, 2, 9); }, {"tile: slice [2, 9) of dim 1 is outside [0, 8)"});
  expect_error([&] { (void)t.slice(1, -1, 3); },
               {"tile: slice [-1, 3) of dim 1 is outside [0, 8)"});
  expect_error([&] { (void)t.slice(0, 3, 3); }, {"tile: slice [3, 3) of dim 0 is empty"});
  expect_error([&] { (void)h.slice(0, 3, 1); }, {"hbm: slice [3, 1) of dim 0 is empty"});
  expect_error([&] { (void)t.slice(2, 0, 1); }, {"tile: view dim 2 outside rank 2"});
  expect_error([&] { (void)h.transpose(0, 5); }, {"hbm: view dim 5 outside rank 2"});
  expect_error([&] { (void)t.index(-1, 0); }, {"tile: view dim -1 outside rank 2"});
  expect_error([&] { (void)t.index(0, 4); }, {"tile: index 4 of dim 0 is outside [0, 4)"});
  expect_error([&] { (void)h.index(1, INT64_MAX); }, {"hbm: index", "of dim 1 is outside [0, 8)"});

  expect_error([&] { (void)t.transpose(0, 1).reshape({32}); },
               {"tile: reshape needs a contiguous view, got a strided one"});
  expect_error([&] { (void)h.slice(1, 0, 4).reshape({16}); },
               {"hbm: reshape needs a contiguous view"});
  expect_error([&] { (void)t.slice(1, 0, 1).broadcast(1, 8).flatten(); },
               {"tile: reshape needs a contiguous view"});
  expect_error([&] { (void)t.reshape({5, 6}); }, {"tile: reshape must keep 32 elements, got 30"});
  expect_error(
      [&] {
        (void)h.reshape({int64_t{1} << 40, int64_t{1} << 40});
      },
      {"hbm: reshape must keep 32 elements, got more than 1099511627776"});
  expect_error(
      [&] {
        (void)t.reshape({1, 1, 1, 1, 1, 32});
      },
      {"tile: reshape rank must be 1..5, got 6"});
  expect_error([&] { (void)t.reshape({}); }, {"tile: reshape rank must be 1..5, got 0"});
  expect_error([&] { (void)t.reshape({-4, -8}); }, {"tile: reshape dims must be positive, got -4"});

  expect_error([&] { (void)t.broadcast(1, 3); }, {"tile: broadcast dim 1 must have size 1, got 8"});
  expect_error([&] { (void)h.broadcast(-1, 3); }, {"hbm: view dim -1 outside rank 2"});
  const Tile col = t.slice(1, 0, 1);  // [128, 4, 1]
  expect_error([&] { (void)col.broadcast(1, 0); },
               {"tile: broadcast count must be in 1..", "got 0"});
  expect_error([&] { (void)col.broadcast(1, INT64_MAX); },
               {"tile: broadcast count", "got 9223372036854775807"});

  expect_error([&] { (void)t.partitions(0, 0); }, {"tile: partitions [0, 0) is empty"});
  expect_error([&] { (void)t.partitions(-1, 4); },
               {"tile: partitions [-1, 3) is outside [0, 128)"});
  expect_error([&] { (void)t.partitions(96, 64); },
               {"tile: partitions [96, 160) is outside [0, 128)"});
  expect_error([&] { (void)t.partitions(1, INT_MAX); },
               {"tile: partitions [1, 2147483648) is outside [0, 128)"});

  // Hand-built patterns cannot steer the algebra out of its arrays or into a division by zero.
  AccessPattern wild;
  wild.ndim = 7;  // more than kMaxDims
  expect_error([&] { (void)wild.transpose(0, 6, "ap"); }, {"ap: view dim 6 outside rank 7"});
  AccessPattern empty = AccessPattern::dense({0, 1});
  EXPECT_EQ(empty.broadcast(1, 2, "ap").size(), 0);

  // What failed is also available structurally.
  try {
    (void)t.slice(1, 2, 9);
    ADD_FAILURE() << "did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.instruction(), "tile");
    EXPECT_EQ(e.operand(), "slice");
  }
}

TEST(AccessPatternTest, LegalEdgeViews) {
  const Tile t{Space::kPsum, DType::kF32, 0, 128, 2048, AccessPattern::dense({4, 8})};
  // Indexing the only dim keeps rank 1.
  const Tile one = t.flatten().index(0, 31);
  EXPECT_EQ(one.free.ndim, 1);
  EXPECT_EQ(one.free.shape[0], 1);
  EXPECT_EQ(one.free.offset, 31);
  EXPECT_EQ(one.byte_lo(), 2048 + 31 * 4);
  EXPECT_EQ(one.byte_hi(), 2048 + 32 * 4);
  // A transpose of a dim with itself is the identity.
  EXPECT_EQ(t.transpose(1, 1).free, t.free);
  // A column broadcast across the free dim reads one element per row.
  const Tile b = t.slice(1, 5, 6).broadcast(1, 16);  // [128, 4, 16], strides (8, 0)
  EXPECT_EQ(b.free.stride[1], 0);
  EXPECT_EQ(b.free_size(), 64);
  EXPECT_EQ(b.free.min_offset(), 5);
  EXPECT_EQ(b.free.max_offset(), 29);
  EXPECT_EQ(b.str(), "psum[0:128, 4, 16] f32");
  EXPECT_EQ(t.partitions(64, 32).str(), "psum[64:96, 4, 8] f32");
  const HbmTensor h{7, DType::kBF16, 32, AccessPattern::dense({4, 8})};
  EXPECT_EQ(h.transpose().str(), "hbm#7[8, 4] bf16");
}

}  // namespace
}  // namespace ncore
