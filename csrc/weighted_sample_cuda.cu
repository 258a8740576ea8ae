// Weighted sampling, CUDA path. Same spec as the CPU path (weighted_sample.h), bit for bit.
// (One file on purpose: the kernels and their host launchers share file-local helpers and limits.)
//   build:     one launch per tree level, one thread per node: its 8 children's values are loaded
//              first (four 16-byte loads at level 0), validated after, then summed left to right,
//              exactly as the CPU does (a fixed order: no cub scan, so builds are deterministic
//              run to run and identical to an incremental update);
//   recompute: after a write, one launch per level over the touched items' ancestors (a node
//              touched twice is written twice with the same bits; levels are ordered by the
//              stream);
//   sample:    one thread per draw descending the tree (descend); one launch, no copy, no sync;
//   without replacement: phase A (4n + 64 candidate descents per segment, first occurrences kept
//              by a sort on (segment, item, candidate) and an integer scan, both deterministic),
//              phase B (exponential keys of the items not yet chosen) only for segments where
//              phase A found fewer than n distinct items.
//
// Memory: temporaries come from cudaMallocAsync on the caller's stream; the device's default pool
// keeps freed memory (release threshold raised once per device) so steady-state calls allocate
// nothing from the driver. Errors found on the device are reported through a small flag block
// copied back at the end of a build (a build syncs; a draw does not).
#include <cuda_runtime.h>

#include <cub/device/device_merge_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weighted_sample.h"
#include "weighted_sample_host.h"

namespace logo_fast {
namespace ws {
namespace {

#define LF_CUDA_CHECK(expr)                                                                                \
  do {                                                                                                     \
    cudaError_t err_ = (expr);                                                                             \
    if (err_ != cudaSuccess)                                                                               \
      throw std::runtime_error(std::string("logo_fast CUDA error: ") + #expr + ": " + cudaGetErrorName(err_) + \
                               ": " + cudaGetErrorString(err_));                                           \
  } while (0)

constexpr int kThreads = 256;

// Error codes set by kernels (bit flags).
constexpr int kErrWeight = 1;    // a weight is negative, NaN or Inf
constexpr int kErrOverflow = 4;  // a segment's total is not finite

struct DeviceErrors {
  int code;
  int pad;
  unsigned long long first_bad;  // smallest bad weight index
  unsigned long long bad_segment;
};

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    LF_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) LF_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }

 private:
  int prev_ = 0;
};

// The default pool returns freed memory to the driver at every sync unless told otherwise
// (release threshold 0): keep it, so a steady stream of calls does no driver allocations.
void keep_pool_memory(int device) {
  static std::mutex mu;
  static std::vector<int> done;
  std::lock_guard<std::mutex> lock(mu);
  if (std::find(done.begin(), done.end(), device) != done.end()) return;
  cudaMemPool_t pool;
  LF_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  LF_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  done.push_back(device);
}

// Stream-ordered scratch memory, freed on the same stream when it goes out of scope.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0) LF_CUDA_CHECK(cudaMallocAsync(&ptr_, bytes, stream));
  }
  ~Scratch() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t g = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(g, int64_t{1} << 20)));
}

// First s in [0, S) with a[s + 1] > x for an ascending a of S + 1 entries (a[0] <= x).
__device__ __forceinline__ int64_t find_segment(const int64_t* a, int64_t S, int64_t x) {
  int64_t lo = 0, hi = S;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (a[mid + 1] > x) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// One segment's level tables, from its length (a few integer steps per level).
struct DevSeg {
  int64_t p_off[kMaxLevels], t_off[kMaxLevels];
  int D;
  int64_t start, len;
  __device__ DevSeg(const int64_t* meta, int64_t S, int64_t s) {
    start = meta[s];
    len = meta[s + 1] - start;
    D = level_offsets(len, p_off, t_off, nullptr);
  }
};

// Level l of every segment: thread t -> (segment, node) through node_base (S + 1 prefix of the
// segments' node counts at this level). Level 0 loads the 8 weights first, then checks them.
__global__ void build_level_kernel(const double* __restrict__ w, const int64_t* __restrict__ meta, int64_t S, int l,
                                   const int64_t* __restrict__ node_base, double* __restrict__ tree,
                                   DeviceErrors* errors) {
  const int64_t n_nodes = node_base[S];
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n_nodes; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = find_segment(node_base, S, t);
    const int64_t g = t - node_base[s];
    const DevSeg seg(meta, S, s);
    double* seg_tree = tree + meta[S + 1 + s];
    const double* seg_w = w + seg.start;
    const int64_t m = level_nodes(seg.len, l);
    if (l == 0) {
      const int64_t c0 = g * kFanout;
      double v[kFanout];
      // The address, not the index: a tensor view's data pointer may be only 8-byte aligned.
      const bool full = c0 + kFanout <= seg.len && (reinterpret_cast<std::uintptr_t>(seg_w + c0) & 15) == 0;
      if (full) {  // 16-byte aligned: four vector loads in flight before any check
        const double2* src = reinterpret_cast<const double2*>(seg_w + c0);
        const double2 a = src[0], b = src[1], c = src[2], d = src[3];
        v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y, v[4] = c.x, v[5] = c.y, v[6] = d.x, v[7] = d.y;
      } else {
        LF_UNROLL
        for (int e = 0; e < kFanout; ++e) v[e] = c0 + e < seg.len ? seg_w[c0 + e] : 0.0;
      }
      bool ok = true;
      LF_UNROLL
      for (int e = 0; e < kFanout; ++e) ok &= valid_weight(v[e]);
      if (!ok) {
        for (int e = 0; e < kFanout; ++e)
          if (!valid_weight(v[e])) {
            atomicOr(&errors->code, kErrWeight);
            atomicMin(&errors->first_bad, static_cast<unsigned long long>(seg.start + c0 + e));
            break;
          }
      }
      double* p = seg_tree + seg.p_off[0] + c0;
      double acc = 0.0;
      LF_UNROLL
      for (int e = 0; e < kFanout; ++e) {
        acc = LF_ADD(acc, v[e]);
        p[e] = acc;
      }
      seg_tree[seg.t_off[0] + g] = acc;
    } else {
      recompute_node(seg_w, seg.len, seg_tree, seg.p_off, seg.t_off, l, g);
    }
    // The zero padding of T_l, written by the segment's last node of the level.
    if (g == m - 1) {
      for (int64_t q = m; q < totals_entries(m); ++q) seg_tree[seg.t_off[l] + q] = 0.0;
      if (l == seg.D - 1 && !valid_weight(seg_tree[seg.t_off[l]])) {
        atomicOr(&errors->code, kErrOverflow);
        atomicMin(&errors->bad_segment, static_cast<unsigned long long>(s));
      }
    }
  }
}

// Ancestors at level l of k distinct global items (items != null) or of the ring run from
// `start` (one segment). Each thread recomputes one node; a node shared by several items is
// recomputed by each with identical inputs and bits.
__global__ void recompute_items_kernel(const double* __restrict__ w, const int64_t* __restrict__ meta, int64_t S,
                                       int l, const int64_t* __restrict__ items, int64_t k,
                                       double* __restrict__ tree) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < k; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = items[t];
    const int64_t s = find_segment(meta, S, i);
    const DevSeg seg(meta, S, s);
    if (l >= seg.D) continue;
    const int64_t g = (i - seg.start) >> (kFanBits * (l + 1));
    recompute_node(w + seg.start, seg.len, tree + meta[S + 1 + s], seg.p_off, seg.t_off, l, g);
  }
}

__global__ void recompute_range_kernel(const double* __restrict__ w, const int64_t* __restrict__ meta, int l,
                                       int64_t g0, int64_t count, double* __restrict__ tree) {
  const DevSeg seg(meta, 1, 0);
  if (l >= seg.D) return;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < count; t += int64_t(gridDim.x) * blockDim.x)
    recompute_node(w, seg.len, tree + meta[2], seg.p_off, seg.t_off, l, g0 + t);
}

// Draw d = s * n + j: U from (counter, stream s, tag), one descent. A segment without a positive
// total gets -1 (the caller checks totals before drawing).
__global__ void sample_kernel(const double* __restrict__ tree, const int64_t* __restrict__ meta, int64_t S, int64_t n,
                              int64_t draws, uint64_t seed, uint64_t offset, uint32_t tag,
                              int64_t* __restrict__ out) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < draws; d += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = d / n, j = d - s * n;
    const DevSeg seg(meta, S, s);
    const double* seg_tree = tree + meta[S + 1 + s];
    if (seg.len == 0 || !(seg_tree[seg.t_off[seg.D - 1]] > 0.0)) {
      out[d] = -1;
      continue;
    }
    const Philox4 x = philox_at(seed, offset + static_cast<uint64_t>(j), static_cast<uint32_t>(s), tag);
    out[d] = descend(seg_tree, seg.p_off, seg.t_off, seg.D, uniform53(x.x[0], x.x[1]));
  }
}

// ---- without replacement ---------------------------------------------------------------

struct Drawn {  // one phase A candidate
  int64_t seg, item, j;
};
struct DrawnLess {
  __device__ bool operator()(const Drawn& a, const Drawn& b) const {
    if (a.seg != b.seg) return a.seg < b.seg;
    if (a.item != b.item) return a.item < b.item;
    return a.j < b.j;
  }
};

__global__ void pack_candidates_kernel(const int64_t* __restrict__ cand, int64_t M, int64_t total,
                                       Drawn* __restrict__ drawn) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    drawn[t] = Drawn{t / M, cand[t], t % M};
}

// keep[s * M + j] = 1 for the first candidate j of each (segment, item) pair.
__global__ void first_occurrence_kernel(const Drawn* __restrict__ sorted, int64_t total, int64_t M,
                                        int* __restrict__ keep) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const Drawn a = sorted[t];
    const bool first = t == 0 || sorted[t - 1].seg != a.seg || sorted[t - 1].item != a.item;
    if (first) keep[a.seg * M + a.j] = 1;
  }
}

// Kept candidates in candidate order: rank = exclusive count before them in their segment.
__global__ void gather_phase_a_kernel(const int64_t* __restrict__ cand, const int* __restrict__ keep,
                                      const int* __restrict__ rank, int64_t S, int64_t M, int64_t n,
                                      int64_t* __restrict__ out, long long* __restrict__ found) {
  const int64_t total = S * M;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = t / M, j = t - s * M;
    const int64_t r = rank[t] - rank[s * M];
    if (keep[t] && r < n) out[s * n + r] = cand[t];
    if (j == M - 1) found[s] = std::min<int64_t>(n, r + keep[t]);
  }
}

struct Candidate {
  double key;
  int64_t idx;  // local to the segment; INT64_MAX marks an unused slot
  int64_t seg;
};

struct CandidateLess {
  __device__ bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.seg != b.seg) return a.seg < b.seg;
    return key_before(a.key, a.idx, b.key, b.idx);
  }
};

__global__ void fill_slots_kernel(const int64_t* __restrict__ cand_base, int64_t S, int64_t n_slots,
                                  const int* __restrict__ done, Candidate* __restrict__ cand) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n_slots; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = find_segment(cand_base, S, t);
    if (done[s]) continue;
    cand[t] = Candidate{INFINITY, INT64_MAX, s};
  }
}

// Phase B candidates: items with w > 0 not chosen in phase A whose key falls below the threshold.
__global__ void candidates_kernel(const double* __restrict__ w, const int64_t* __restrict__ offsets, int64_t S,
                                  int64_t n_items, const double* __restrict__ threshold, const int* __restrict__ done,
                                  const unsigned char* __restrict__ excluded, uint64_t seed,
                                  const int64_t* __restrict__ cand_base, unsigned long long* __restrict__ counts,
                                  Candidate* __restrict__ cand) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_items;
       i += int64_t(gridDim.x) * blockDim.x) {
    const double wi = w[i];
    if (!(wi > 0.0) || excluded[i]) continue;
    const int64_t s = find_segment(offsets, S, i);
    if (done[s]) continue;
    const int64_t li = i - offsets[s];
    const double key = exponential_key(seed, static_cast<uint64_t>(li), static_cast<uint32_t>(s), wi);
    const double t = threshold[s];
    if (key < t || isinf(t)) {
      const unsigned long long pos = atomicAdd(&counts[s], 1ull);
      const int64_t cap = cand_base[s + 1] - cand_base[s];
      if (static_cast<int64_t>(pos) < cap) cand[cand_base[s] + static_cast<int64_t>(pos)] = Candidate{key, li, s};
    }
  }
}

__global__ void exclude_chosen_kernel(const int64_t* __restrict__ out, const int64_t* __restrict__ offsets,
                                      const long long* __restrict__ found, int64_t S, int64_t n,
                                      unsigned char* __restrict__ excluded) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < S * n; d += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = d / n, j = d - s * n;
    if (j < found[s]) excluded[offsets[s] + out[d]] = 1;
  }
}

__global__ void gather_top_kernel(const Candidate* __restrict__ cand, const int64_t* __restrict__ cand_base,
                                  const long long* __restrict__ found, const int* __restrict__ phase_b, int64_t S,
                                  int64_t n, int64_t* __restrict__ out) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < S * n; d += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = d / n, j = d - s * n;
    if (!phase_b[s] || j < found[s]) continue;
    out[d] = cand[cand_base[s] + (j - found[s])].idx;
  }
}

template <class T>
void upload(T* dst, const std::vector<T>& src, cudaStream_t stream) {
  if (!src.empty()) LF_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
}

DeviceErrors fetch_errors(const DeviceErrors* d_errors, cudaStream_t stream) {
  DeviceErrors h{};
  LF_CUDA_CHECK(cudaMemcpyAsync(&h, d_errors, sizeof(h), cudaMemcpyDeviceToHost, stream));
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));
  return h;
}

void init_errors(DeviceErrors* d_errors, cudaStream_t stream) {
  DeviceErrors h{};
  h.first_bad = ~0ull;
  h.bad_segment = ~0ull;
  LF_CUDA_CHECK(cudaMemcpyAsync(d_errors, &h, sizeof(h), cudaMemcpyHostToDevice, stream));
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));  // h lives on this stack frame
}

// Phase B for the segments with found[s] < n (host copy of found given).
void phase_b_cuda(const Layout& L, const double* w, const double* tree, const int64_t* d_offsets,
                  const long long* d_found, const std::vector<long long>& found, int64_t n, uint64_t seed,
                  int64_t* out, cudaStream_t stream, Problems& p) {
  const int64_t S = L.n_segments;
  std::vector<double> totals(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    int64_t po[kMaxLevels], to[kMaxLevels];
    const int D = level_offsets(L.seg_len(s), po, to, nullptr);
    LF_CUDA_CHECK(cudaMemcpyAsync(&totals[s], tree + L.tree_off[s] + to[D - 1], sizeof(double),
                                  cudaMemcpyDeviceToHost, stream));
  }
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));
  Scratch d_excluded(static_cast<size_t>(std::max<int64_t>(L.n_items, 1)), stream);
  LF_CUDA_CHECK(cudaMemsetAsync(d_excluded.as<void>(), 0, static_cast<size_t>(std::max<int64_t>(L.n_items, 1)),
                                stream));
  exclude_chosen_kernel<<<grid_for(S * n), kThreads, 0, stream>>>(out, d_offsets, d_found, S, n,
                                                                    d_excluded.as<unsigned char>());
  LF_CUDA_CHECK(cudaGetLastError());
  // Per segment: a candidate capacity and a key threshold. Short segments take every positive
  // item (threshold +inf); long ones start where about 2 (n - found) keys fall below.
  const int64_t room = 4 * n + 64;
  std::vector<int64_t> cap(static_cast<size_t>(S)), cand_base(static_cast<size_t>(S) + 1, 0);
  std::vector<double> threshold(static_cast<size_t>(S));
  std::vector<int> done(static_cast<size_t>(S), 0), phase_b(static_cast<size_t>(S), 0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t len = L.seg_len(s);
    phase_b[s] = found[s] < n;
    done[s] = !phase_b[s];
    cap[s] = phase_b[s] ? std::min(len, room) : 0;
    threshold[s] = len <= room ? INFINITY : 2.0 * static_cast<double>(n - found[s]) / totals[s];
  }
  std::vector<int> started = done;  // segments finished before phase B keep no slots
  std::vector<unsigned long long> counts(static_cast<size_t>(S));
  Scratch d_threshold(sizeof(double) * S, stream), d_done(sizeof(int) * S, stream);
  Scratch d_phase_b(sizeof(int) * S, stream);
  Scratch d_counts(sizeof(unsigned long long) * S, stream), d_cand_base(sizeof(int64_t) * (S + 1), stream);
  upload(d_phase_b.as<int>(), phase_b, stream);
  int64_t n_slots = 0;
  std::unique_ptr<Scratch> d_cand;
  bool relayout = true;
  for (int round = 0;; ++round) {
    if (relayout) {
      for (int64_t s = 0; s < S; ++s) cand_base[s + 1] = cand_base[s] + cap[s];
      n_slots = cand_base[S];
      d_cand.reset(new Scratch(sizeof(Candidate) * std::max<int64_t>(n_slots, 1), stream));
      upload(d_cand_base.as<int64_t>(), cand_base, stream);
      done = started;
      relayout = false;
    }
    for (int64_t s = 0; s < S; ++s)
      if (!done[s]) counts[s] = 0ull;
    upload(d_counts.as<unsigned long long>(), counts, stream);
    upload(d_threshold.as<double>(), threshold, stream);
    upload(d_done.as<int>(), done, stream);
    fill_slots_kernel<<<grid_for(n_slots), kThreads, 0, stream>>>(d_cand_base.as<int64_t>(), S, n_slots,
                                                                   d_done.as<int>(), d_cand->as<Candidate>());
    candidates_kernel<<<grid_for(L.n_items), kThreads, 0, stream>>>(
        w, d_offsets, S, L.n_items, d_threshold.as<double>(), d_done.as<int>(), d_excluded.as<unsigned char>(), seed,
        d_cand_base.as<int64_t>(), d_counts.as<unsigned long long>(), d_cand->as<Candidate>());
    LF_CUDA_CHECK(cudaGetLastError());
    LF_CUDA_CHECK(cudaMemcpyAsync(counts.data(), d_counts.as<unsigned long long>(), sizeof(unsigned long long) * S,
                                  cudaMemcpyDeviceToHost, stream));
    LF_CUDA_CHECK(cudaStreamSynchronize(stream));  // also keeps the uploaded host vectors alive
    bool all_done = true;
    for (int64_t s = 0; s < S; ++s) {
      if (done[s]) continue;
      const int64_t c = static_cast<int64_t>(counts[s]);
      const int64_t need = n - found[s];
      if (c > cap[s]) {
        // More candidates than room: grow the room and take them all next round.
        cap[s] = std::min(L.seg_len(s), c + c / 4 + 64);
        relayout = true;
        all_done = false;
      } else if (c >= need || std::isinf(threshold[s])) {
        done[s] = 1;
        if (c < need) {
          p.add("segment ", s, ": cannot draw ", n, " items without replacement from ", c + found[s],
                " positive weights");
        }
      } else {
        // Too few keys below the threshold (mass concentrated on few items): widen it.
        threshold[s] = round >= 48 ? INFINITY : threshold[s] * 16.0;
        all_done = false;
      }
    }
    p.raise_if_any();
    if (relayout) continue;
    if (all_done) break;
  }
  // Every segment's slots hold its candidates then unused slots (+inf, INT64_MAX): sorting by
  // (segment, key, index) puts each segment's smallest keys first in its own range.
  size_t temp_bytes = 0;
  Candidate* keys = d_cand->as<Candidate>();
  LF_CUDA_CHECK(cub::DeviceMergeSort::SortKeys(nullptr, temp_bytes, keys, n_slots, CandidateLess(), stream));
  Scratch temp(std::max<size_t>(temp_bytes, 16), stream);  // a null pointer would mean "size query"
  LF_CUDA_CHECK(cub::DeviceMergeSort::SortKeys(temp.as<void>(), temp_bytes, keys, n_slots, CandidateLess(), stream));
  gather_top_kernel<<<grid_for(S * n), kThreads, 0, stream>>>(keys, d_cand_base.as<int64_t>(), d_found,
                                                               d_phase_b.as<int>(), S, n, out);
  LF_CUDA_CHECK(cudaGetLastError());
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host vectors above were uploaded asynchronously
}

void without_replacement_cuda(const Layout& L, const double* w, const double* tree, const int64_t* d_meta, int64_t n,
                              uint64_t seed, int64_t* out, cudaStream_t stream, Problems& p) {
  const int64_t S = L.n_segments;
  const int64_t M = phase_a_candidates(n);
  const int64_t total = S * M;
  Scratch d_cand(sizeof(int64_t) * total, stream), d_drawn(sizeof(Drawn) * total, stream);
  Scratch d_keep(sizeof(int) * total, stream), d_rank(sizeof(int) * total, stream);
  Scratch d_found(sizeof(long long) * S, stream);
  sample_kernel<<<grid_for(total), kThreads, 0, stream>>>(tree, d_meta, S, M, total, seed, 0, kTagDistinct,
                                                          d_cand.as<int64_t>());
  pack_candidates_kernel<<<grid_for(total), kThreads, 0, stream>>>(d_cand.as<int64_t>(), M, total,
                                                                   d_drawn.as<Drawn>());
  LF_CUDA_CHECK(cudaGetLastError());
  size_t temp_bytes = 0;
  LF_CUDA_CHECK(cub::DeviceMergeSort::SortKeys(nullptr, temp_bytes, d_drawn.as<Drawn>(), total, DrawnLess(), stream));
  {
    Scratch temp(std::max<size_t>(temp_bytes, 16), stream);
    LF_CUDA_CHECK(
        cub::DeviceMergeSort::SortKeys(temp.as<void>(), temp_bytes, d_drawn.as<Drawn>(), total, DrawnLess(), stream));
  }
  LF_CUDA_CHECK(cudaMemsetAsync(d_keep.as<void>(), 0, sizeof(int) * total, stream));
  first_occurrence_kernel<<<grid_for(total), kThreads, 0, stream>>>(d_drawn.as<Drawn>(), total, M, d_keep.as<int>());
  LF_CUDA_CHECK(cudaGetLastError());
  // An integer scan: exact, so the same in any association order.
  if (total > std::numeric_limits<int>::max()) throw std::invalid_argument("too many candidates for one call");
  temp_bytes = 0;
  LF_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, temp_bytes, d_keep.as<int>(), d_rank.as<int>(),
                                              static_cast<int>(total), stream));
  {
    Scratch temp(std::max<size_t>(temp_bytes, 16), stream);
    LF_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.as<void>(), temp_bytes, d_keep.as<int>(), d_rank.as<int>(),
                                                static_cast<int>(total), stream));
  }
  gather_phase_a_kernel<<<grid_for(total), kThreads, 0, stream>>>(d_cand.as<int64_t>(), d_keep.as<int>(),
                                                                  d_rank.as<int>(), S, M, n, out,
                                                                  d_found.as<long long>());
  LF_CUDA_CHECK(cudaGetLastError());
  std::vector<long long> found(static_cast<size_t>(S));
  LF_CUDA_CHECK(cudaMemcpyAsync(found.data(), d_found.as<long long>(), sizeof(long long) * S, cudaMemcpyDeviceToHost,
                                stream));
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));
  bool need_b = false;
  for (int64_t s = 0; s < S; ++s) need_b |= found[s] < n;
  if (need_b) phase_b_cuda(L, w, tree, d_meta, d_found.as<long long>(), found, n, seed, out, stream, p);
}

}  // namespace

void build_cuda(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                std::uintptr_t tree_ptr, int64_t n_tree, std::uintptr_t meta_ptr, int device,
                std::uintptr_t stream_ptr) {
  const char* where = "logo_fast._C.build_cuda";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  if (meta_ptr == 0) p.add("meta pointer is null");
  if (device < 0) p.add("device must be >= 0, got ", device);
  p.raise_if_any();
  DeviceGuard guard(device);
  keep_pool_memory(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  double* tree = reinterpret_cast<double*>(tree_ptr);
  const int64_t* d_meta = reinterpret_cast<const int64_t*>(meta_ptr);
  const int64_t S = L.n_segments;
  int max_levels = 1;
  for (int64_t s = 0; s < S; ++s) max_levels = std::max(max_levels, tree_levels(L.seg_len(s)));
  // Per level, the prefix over segments of their node counts (0 where a segment has no such level).
  std::vector<int64_t> node_base(static_cast<size_t>(max_levels) * (S + 1), 0);
  for (int l = 0; l < max_levels; ++l)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t len = L.seg_len(s);
      const int64_t m = l < tree_levels(len) ? level_nodes(len, l) : 0;
      node_base[l * (S + 1) + s + 1] = node_base[l * (S + 1) + s] + m;
    }
  Scratch d_aux(sizeof(int64_t) * node_base.size() + sizeof(DeviceErrors), stream);
  int64_t* d_node_base = d_aux.as<int64_t>();
  DeviceErrors* d_errors = reinterpret_cast<DeviceErrors*>(d_node_base + node_base.size());
  upload(d_node_base, node_base, stream);
  init_errors(d_errors, stream);
  for (int l = 0; l < max_levels; ++l) {
    const int64_t nodes = node_base[l * (S + 1) + S];
    build_level_kernel<<<grid_for(nodes), kThreads, 0, stream>>>(w, d_meta, S, l, d_node_base + l * (S + 1), tree,
                                                                 d_errors);
    LF_CUDA_CHECK(cudaGetLastError());
  }
  const DeviceErrors e = fetch_errors(d_errors, stream);  // also keeps node_base alive until uploaded
  if (e.code & kErrWeight) p.add("weights[", e.first_bad, "] is negative, NaN or Inf: every weight must be finite and >= 0");
  if (e.code & kErrOverflow) p.add("segment ", e.bad_segment, ": the weights sum to inf (overflow); scale them down");
  p.raise_if_any();
}

void recompute_cuda(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                    std::uintptr_t tree_ptr, int64_t n_tree, std::uintptr_t meta_ptr, std::uintptr_t items_ptr,
                    int64_t start, int64_t k, int device, std::uintptr_t stream_ptr) {
  const char* where = "logo_fast._C.recompute_cuda";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  check_update_args(p, L, items_ptr, start, k, /*values*/ 1, n_items);
  if (meta_ptr == 0) p.add("meta pointer is null");
  if (device < 0) p.add("device must be >= 0, got ", device);
  p.raise_if_any();
  if (k == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  double* tree = reinterpret_cast<double*>(tree_ptr);
  const int64_t* d_meta = reinterpret_cast<const int64_t*>(meta_ptr);
  int max_levels = 1;
  for (int64_t s = 0; s < L.n_segments; ++s) max_levels = std::max(max_levels, tree_levels(L.seg_len(s)));
  for (int l = 0; l < max_levels; ++l) {
    if (items_ptr) {
      recompute_items_kernel<<<grid_for(k), kThreads, 0, stream>>>(w, d_meta, L.n_segments, l,
                                                                   reinterpret_cast<const int64_t*>(items_ptr), k,
                                                                   tree);
    } else {
      // The ring run: [start, min(start + k, N)) and, when it wraps, [0, start + k - N).
      const int64_t N = L.n_items, sh = kFanBits * (l + 1);
      const int64_t a0 = start, a1 = std::min(N, start + k) - 1;
      recompute_range_kernel<<<grid_for((a1 >> sh) - (a0 >> sh) + 1), kThreads, 0, stream>>>(
          w, d_meta, l, a0 >> sh, (a1 >> sh) - (a0 >> sh) + 1, tree);
      if (start + k > N) {
        const int64_t b1 = start + k - N - 1;
        recompute_range_kernel<<<grid_for((b1 >> sh) + 1), kThreads, 0, stream>>>(w, d_meta, l, 0, (b1 >> sh) + 1,
                                                                                 tree);
      }
    }
    LF_CUDA_CHECK(cudaGetLastError());
  }
}

void sample_cuda(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                 std::uintptr_t tree_ptr, int64_t n_tree, std::uintptr_t meta_ptr, int64_t n, bool replacement,
                 int64_t seed, int64_t offset, std::uintptr_t out_ptr, int device, std::uintptr_t stream_ptr) {
  const char* where = "logo_fast._C.sample_cuda";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_sample_args(p, n, out_ptr, seed, offset);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  if (meta_ptr == 0) p.add("meta pointer is null");
  if (device < 0) p.add("device must be >= 0, got ", device);
  for (int64_t s = 0; s < L.n_segments; ++s)
    if (n > 0 && L.seg_len(s) == 0) p.add("segment ", s, " is empty");
  p.raise_if_any();
  if (n == 0) return;
  DeviceGuard guard(device);
  keep_pool_memory(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  const double* tree = reinterpret_cast<const double*>(tree_ptr);
  const int64_t* d_meta = reinterpret_cast<const int64_t*>(meta_ptr);
  int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
  const int64_t S = L.n_segments;
  if (replacement) {
    sample_kernel<<<grid_for(S * n), kThreads, 0, stream>>>(tree, d_meta, S, n, S * n, static_cast<uint64_t>(seed),
                                                            static_cast<uint64_t>(offset), kTagDraw, out);
    LF_CUDA_CHECK(cudaGetLastError());
  } else {
    without_replacement_cuda(L, w, tree, d_meta, n, static_cast<uint64_t>(seed), out, stream, p);
  }
}

}  // namespace ws
}  // namespace logo_fast
