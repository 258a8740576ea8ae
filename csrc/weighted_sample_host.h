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

// Where every segment and block lives.
struct Layout {
  int64_t n_items = 0;
  int64_t n_segments = 0;
  int64_t n_blocks = 0;               // over all segments
  std::vector<int64_t> offsets;       // (S + 1,) item offsets
  std::vector<int64_t> block_base;    // (S + 1,) first block of each segment

  int64_t seg_start(int64_t s) const { return offsets[s]; }
  int64_t seg_len(int64_t s) const { return offsets[s + 1] - offsets[s]; }
  // Index of the segment's first block_cum entry; the segment owns nb_s + 1 entries.
  int64_t cum_base(int64_t s) const { return block_base[s] + s; }
  int64_t n_cum() const { return n_blocks + n_segments; }
  int64_t segment_of_block(int64_t b) const {
    // first s with block_base[s + 1] > b
    int64_t lo = 0, hi = n_segments;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (block_base[mid + 1] > b) hi = mid; else lo = mid + 1;
    }
    return lo;
  }
  // Item range [start, end) of global block b.
  void block_range(int64_t b, int64_t* start, int64_t* end) const {
    const int64_t s = segment_of_block(b);
    *start = offsets[s] + (b - block_base[s]) * kBlockSize;
    const int64_t e = *start + kBlockSize;
    *end = e < offsets[s + 1] ? e : offsets[s + 1];
  }
};

// Reads and checks the offsets (host memory) and the buffer sizes the caller allocated.
inline Layout make_layout(const char* where, std::uintptr_t offsets_ptr, int64_t n_segments, int64_t n_items,
                          int64_t n_blocks_given) {
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
  L.block_base.assign(n_segments + 1, 0);
  for (int64_t s = 0; s < n_segments; ++s) L.block_base[s + 1] = L.block_base[s] + num_blocks(L.seg_len(s));
  L.n_blocks = L.block_base[n_segments];
  if (n_blocks_given != L.n_blocks) {
    p.add("the block buffers were sized for ", n_blocks_given, " blocks, the offsets need ", L.n_blocks,
          " (block_total: (n_blocks,), block_cum: (n_blocks + n_segments,))");
  }
  p.raise_if_any();
  return L;
}

// The pointer checks shared by build_cpu and build_cuda (the CPU and CUDA builds take the same arguments).
inline void check_build_args(Problems& p, const Layout& L, int64_t n_items, std::uintptr_t weights_ptr,
                             std::uintptr_t blocks_ptr, int64_t n_listed, std::uintptr_t local_ptr,
                             std::uintptr_t block_total_ptr, std::uintptr_t block_cum_ptr) {
  if (n_items > 0 && (weights_ptr == 0 || local_ptr == 0)) p.add("weights/local pointer is null");
  if (L.n_blocks > 0 && block_total_ptr == 0) p.add("block_total pointer is null");
  if (block_cum_ptr == 0) p.add("block_cum pointer is null");
  if (blocks_ptr != 0 && n_listed < 0) p.add("n_listed must be >= 0, got ", n_listed);
}

inline void check_sample_args(Problems& p, int64_t n, std::uintptr_t out_ptr, int64_t seed, int64_t offset) {
  if (n < 0) p.add("n (draws per segment) must be >= 0, got ", n);
  if (n > 0 && out_ptr == 0) p.add("out pointer is null");
  if (seed < 0) p.add("seed must be >= 0, got ", seed);
  if (offset < 0) p.add("offset must be >= 0, got ", offset);
}

#if defined(LOGO_FAST_WITH_CUDA)
// CUDA entry points (weighted_sample_cuda.cu). Pointers: weights/local/block_total/block_cum/
// blocks/out are device memory on `device`; offsets is host memory. `stream` is a cudaStream_t.
void build_cuda(std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments,
                std::uintptr_t blocks, int64_t n_listed, std::uintptr_t local, std::uintptr_t block_total,
                std::uintptr_t block_cum, int64_t n_blocks, int device, std::uintptr_t stream);
void sample_cuda(std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments,
                 std::uintptr_t local, std::uintptr_t block_cum, int64_t n_blocks, int64_t n, bool replacement,
                 int64_t seed, int64_t offset, std::uintptr_t out, int device, std::uintptr_t stream);
#endif

}  // namespace ws
}  // namespace logo_fast
