// Host-side helpers of the weighted sampler shared by the C++ and CUDA paths: the segment/block
// layout, argument checks (every build type: these throw, they never compile away) and the
// declarations of the CUDA entry points.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "weighted_sample.h"

namespace logo_fast {
namespace ws {

// Collects every problem found, then throws one std::invalid_argument (-> Python ValueError).
class Problems {
 public:
  explicit Problems(std::string where) : where_(std::move(where)) {}
  // add("x must be >= 0, got ", x): the parts form one problem line.
  template <class... T>
  Problems& add(const T&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    items_.push_back(os.str());
    return *this;
  }
  bool empty() const { return items_.empty(); }
  void raise_if_any() const {
    if (items_.empty()) return;
    std::string msg = where_ + ": bad input:";
    for (const auto& it : items_) msg += "\n  - " + it;
    throw std::invalid_argument(msg);
  }

 private:
  std::string where_;
  std::vector<std::string> items_;
};

// Where every segment and its tree live.
struct Layout {
  int64_t n_items = 0;
  int64_t n_segments = 0;
  int64_t n_tree = 0;                 // float64 entries of the tree buffer, all segments
  std::vector<int64_t> offsets;       // (S + 1,) item offsets
  std::vector<int64_t> tree_off;      // (S + 1,) tree offsets

  int64_t seg_start(int64_t s) const { return offsets[s]; }
  int64_t seg_len(int64_t s) const { return offsets[s + 1] - offsets[s]; }
  // Segment of global item i (offsets[s] <= i < offsets[s + 1]; empty segments skipped).
  int64_t segment_of_item(int64_t i) const {
    int64_t lo = 0, hi = n_segments;  // first s with offsets[s + 1] > i
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (offsets[mid + 1] > i) hi = mid; else lo = mid + 1;
    }
    return lo;
  }
};

// Reads and checks the offsets (host memory) and the tree size the caller allocated.
inline Layout make_layout(const char* where, std::uintptr_t offsets_ptr, int64_t n_segments, int64_t n_items,
                          int64_t n_tree_given) {
  Problems p(where);
  if (n_segments < 1) p.add("n_segments must be >= 1, got ", n_segments);
  if (n_items < 0) p.add("n_items must be >= 0, got ", n_items);
  if (offsets_ptr == 0) p.add("offsets pointer is null");
  p.raise_if_any();
  Layout L;
  L.n_items = n_items;
  L.n_segments = n_segments;
  const int64_t* off = reinterpret_cast<const int64_t*>(offsets_ptr);
  L.offsets.assign(off, off + n_segments + 1);
  if (L.offsets[0] != 0) p.add("offsets[0] must be 0, got ", L.offsets[0]);
  if (L.offsets[n_segments] != n_items) {
    p.add("offsets[-1] = ", L.offsets[n_segments], " must equal the number of weights ", n_items);
  }
  for (int64_t s = 0; s < n_segments; ++s) {
    if (L.offsets[s + 1] < L.offsets[s]) {
      p.add("offsets must be non-decreasing, but offsets[", s + 1, "] = ", L.offsets[s + 1], " < offsets[", s,
            "] = ", L.offsets[s]);
      break;
    }
  }
  p.raise_if_any();
  L.tree_off.assign(n_segments + 1, 0);
  for (int64_t s = 0; s < n_segments; ++s) L.tree_off[s + 1] = L.tree_off[s] + tree_size(L.seg_len(s));
  L.n_tree = L.tree_off[n_segments];
  if (n_tree_given != L.n_tree) {
    p.add("the tree buffer holds ", n_tree_given, " entries, the offsets need ", L.n_tree,
          " (logo_fast.reference.weighted_sample.tree_layout gives the size)");
  }
  p.raise_if_any();
  return L;
}

// Total of segment s of a built tree (host memory).
inline double segment_total(const Layout& L, const double* tree, int64_t s) {
  int64_t po[kMaxLevels], to[kMaxLevels];
  const int D = level_offsets(L.seg_len(s), po, to, nullptr);
  return tree[L.tree_off[s] + to[D - 1]];
}

inline void check_tree_args(Problems& p, const Layout& L, std::uintptr_t weights_ptr, std::uintptr_t tree_ptr) {
  if (L.n_items > 0 && weights_ptr == 0) p.add("weights pointer is null");
  if (tree_ptr == 0) p.add("tree pointer is null");
}

inline void check_sample_args(Problems& p, int64_t n, std::uintptr_t out_ptr, int64_t seed, int64_t offset) {
  if (n < 0) p.add("n (draws per segment) must be >= 0, got ", n);
  if (n > 0 && out_ptr == 0) p.add("out pointer is null");
  if (seed < 0) p.add("seed must be >= 0, got ", seed);
  if (offset < 0) p.add("offset must be >= 0, got ", offset);
}

// Candidate draws of phase A of sampling without replacement (see weighted_sample.h).
inline int64_t phase_a_candidates(int64_t n) { return 4 * n + 64; }

// Which items an update touches: a list of global indices (items != 0, k of them) or, with
// items == 0, the ring run (start + t) % n_items for t < k (one segment only).
inline void check_update_args(Problems& p, const Layout& L, std::uintptr_t items_ptr, int64_t start, int64_t k,
                              std::uintptr_t values_ptr, int64_t limit) {
  if (k < 0) p.add("k must be >= 0, got ", k);
  if (k > 0 && values_ptr == 0) p.add("values pointer is null");
  if (limit < 0 || limit > L.n_items) p.add("limit must lie in [0, ", L.n_items, "], got ", limit);
  if (items_ptr == 0 && k > 0) {
    if (L.n_segments != 1) p.add("a ring run needs one segment, got ", L.n_segments);
    if (start < 0 || start >= L.n_items) p.add("start must lie in [0, ", L.n_items, "), got ", start);
    if (k > L.n_items) p.add("a ring run of ", k, " items exceeds the ", L.n_items, " slots");
  }
}

#if defined(LOGO_FAST_WITH_CUDA)
// CUDA entry points (weighted_sample_cuda.cu). Pointers: weights/tree/items/values/out are
// device memory on `device`; offsets is host memory; meta (device) holds offsets (S + 1) then
// tree_off (S + 1) as int64, kept on the device by the caller. `stream` is a cudaStream_t.
void build_cuda(std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments,
                std::uintptr_t tree, int64_t n_tree, std::uintptr_t meta, int device, std::uintptr_t stream);
void recompute_cuda(std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments,
                    std::uintptr_t tree, int64_t n_tree, std::uintptr_t meta, std::uintptr_t items, int64_t start,
                    int64_t k, int device, std::uintptr_t stream);
void sample_cuda(std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments,
                 std::uintptr_t tree, int64_t n_tree, std::uintptr_t meta, int64_t n, bool replacement, int64_t seed,
                 int64_t offset, std::uintptr_t out, int device, std::uintptr_t stream);
#endif

}  // namespace ws
}  // namespace logo_fast
