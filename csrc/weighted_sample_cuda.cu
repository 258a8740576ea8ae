// Weighted sampling, CUDA path. Same spec as the CPU path (weighted_sample.h):
//   build:   one CUDA block per sampler block (256 threads x 4 items = kBlockSize) with a cub
//            BlockScan for the in-block prefix, then cub::DeviceScan::InclusiveSumByKey over the
//            block totals (keyed by segment) for the prefix over blocks;
//   sample:  one thread per draw: Philox -> u -> two binary searches (sample_one);
//   without replacement: exponential keys of every item, kept when below a per-segment
//            threshold chosen so that about 2n candidates survive (raised until at least n do),
//            then one cub merge sort of the candidates by (segment, key, index).
// The scans associate additions differently from the CPU's left-to-right sums, so indices
// agree with the CPU bit for bit when the partial sums are exact (e.g. integer weights) and
// otherwise differ only where a draw lands within rounding of a boundary. Exponential keys
// are computed identically, so without-replacement draws match the CPU exactly.
//
// Memory: temporaries come from cudaMallocAsync on the caller's stream (the runtime's pool);
// errors found on the device are reported through a small flag block copied back at the end.
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_merge_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
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
constexpr int kItemsPerThread = static_cast<int>(kBlockSize) / kThreads;
static_assert(kThreads * kItemsPerThread == kBlockSize, "one CUDA block scans one sampler block");

// Error codes set by kernels (bit flags).
constexpr int kErrWeight = 1;     // a weight is negative, NaN or Inf
constexpr int kErrBlockId = 2;    // a listed block id is out of range
constexpr int kErrOverflow = 4;   // a segment's total is not finite
constexpr int kErrEmpty = 8;      // sampling from a segment whose total is not > 0

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

__global__ void build_blocks_kernel(const double* __restrict__ w, const int64_t* __restrict__ offsets,
                                    const int64_t* __restrict__ block_base, int64_t S,
                                    const int64_t* __restrict__ blocks, int64_t n_work, int64_t n_blocks,
                                    double* __restrict__ local, double* __restrict__ block_total,
                                    DeviceErrors* errors) {
  using Scan = cub::BlockScan<double, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  for (int64_t t = blockIdx.x; t < n_work; t += gridDim.x) {
    const int64_t b = blocks ? blocks[t] : t;  // the same for every thread of the block
    if (b < 0 || b >= n_blocks) {
      if (threadIdx.x == 0) atomicOr(&errors->code, kErrBlockId);
      continue;
    }
    const int64_t s = find_segment(block_base, S, b);
    const int64_t start = offsets[s] + (b - block_base[s]) * kBlockSize;
    const int64_t end = min(start + kBlockSize, offsets[s + 1]);
    double v[kItemsPerThread];
#pragma unroll
    for (int k = 0; k < kItemsPerThread; ++k) {
      const int64_t i = start + threadIdx.x * kItemsPerThread + k;
      v[k] = i < end ? w[i] : 0.0;
      if (i < end && !valid_weight(v[k])) {
        atomicOr(&errors->code, kErrWeight);
        atomicMin(&errors->first_bad, static_cast<unsigned long long>(i));
      }
    }
    Scan(temp).InclusiveSum(v, v);
#pragma unroll
    for (int k = 0; k < kItemsPerThread; ++k) {
      const int64_t i = start + threadIdx.x * kItemsPerThread + k;
      if (i < end) local[i] = v[k];
    }
    // Padding adds zeros, so the last thread's last item is the block's total.
    if (threadIdx.x == kThreads - 1) block_total[b] = v[kItemsPerThread - 1];
    __syncthreads();  // temp is reused by the next block of the loop
  }
}

__global__ void segment_of_block_kernel(const int64_t* __restrict__ block_base, int64_t S, int64_t n_blocks,
                                        int64_t* __restrict__ seg) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < n_blocks; b += int64_t(gridDim.x) * blockDim.x)
    seg[b] = find_segment(block_base, S, b);
}

// block_cum[cum_base(s)] = 0 and block_cum[cum_base(s) + k + 1] = inclusive[block_base[s] + k].
__global__ void scatter_cum_kernel(const int64_t* __restrict__ block_base, const int64_t* __restrict__ seg, int64_t S,
                                   int64_t n_blocks, const double* __restrict__ inclusive,
                                   double* __restrict__ block_cum, DeviceErrors* errors) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n_blocks + S;
       t += int64_t(gridDim.x) * blockDim.x) {
    if (t < n_blocks) {
      const int64_t s = seg[t];
      block_cum[block_base[s] + s + (t - block_base[s]) + 1] = inclusive[t];
    } else {
      const int64_t s = t - n_blocks;
      block_cum[block_base[s] + s] = 0.0;
      const int64_t nb = block_base[s + 1] - block_base[s];
      if (nb > 0 && !valid_weight(inclusive[block_base[s] + nb - 1])) {
        atomicOr(&errors->code, kErrOverflow);
        atomicMin(&errors->bad_segment, static_cast<unsigned long long>(s));
      }
    }
  }
}

__global__ void check_totals_kernel(const int64_t* __restrict__ offsets, const int64_t* __restrict__ block_base,
                                    int64_t S, const double* __restrict__ block_cum, DeviceErrors* errors) {
  for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S; s += int64_t(gridDim.x) * blockDim.x) {
    const int64_t nb = block_base[s + 1] - block_base[s];
    const double total = block_cum[block_base[s] + s + nb];
    if (offsets[s + 1] == offsets[s] || !(total > 0.0) || !valid_weight(total)) {
      atomicOr(&errors->code, kErrEmpty);
      atomicMin(&errors->bad_segment, static_cast<unsigned long long>(s));
    }
  }
}

__global__ void sample_kernel(const double* __restrict__ w, const double* __restrict__ local,
                              const double* __restrict__ block_cum, const int64_t* __restrict__ offsets,
                              const int64_t* __restrict__ block_base, int64_t n, int64_t draws, uint64_t seed,
                              uint64_t offset, int64_t* __restrict__ out) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < draws; d += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = d / n, j = d - s * n;
    const int64_t start = offsets[s], len = offsets[s + 1] - start;
    const double* cum = block_cum + block_base[s] + s;
    const int64_t nb = block_base[s + 1] - block_base[s];
    if (len == 0 || !(cum[nb] > 0.0)) {  // reported by check_totals_kernel
      out[d] = -1;
      continue;
    }
    const double U = uniform_draw(seed, offset + static_cast<uint64_t>(j), static_cast<uint32_t>(s));
    out[d] = sample_one(w, local, cum, start, len, U);
  }
}

// ---- without replacement ---------------------------------------------------------------

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

__global__ void candidates_kernel(const double* __restrict__ w, const int64_t* __restrict__ offsets, int64_t S,
                                  int64_t n_items, const double* __restrict__ threshold, const int* __restrict__ done,
                                  uint64_t seed, const int64_t* __restrict__ cand_base,
                                  unsigned long long* __restrict__ counts, Candidate* __restrict__ cand) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_items;
       i += int64_t(gridDim.x) * blockDim.x) {
    const double wi = w[i];
    if (!(wi > 0.0)) continue;
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

__global__ void gather_top_kernel(const Candidate* __restrict__ cand, const int64_t* __restrict__ cand_base,
                                  int64_t n, int64_t draws, int64_t* __restrict__ out) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < draws; d += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = d / n, j = d - s * n;
    out[d] = cand[cand_base[s] + j].idx;
  }
}

__global__ void gather_totals_kernel(const int64_t* __restrict__ block_base, int64_t S,
                                     const double* __restrict__ block_cum, double* __restrict__ totals) {
  for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S; s += int64_t(gridDim.x) * blockDim.x)
    totals[s] = block_cum[block_base[s] + s + block_base[s + 1] - block_base[s]];
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
}

void without_replacement_cuda(const Layout& L, const double* w, const double* block_cum, const int64_t* d_offsets,
                              const int64_t* d_block_base, int64_t n, uint64_t seed, int64_t* out, cudaStream_t stream,
                              Problems& p) {
  const int64_t S = L.n_segments;
  std::vector<double> totals(static_cast<size_t>(S));
  {
    Scratch d_totals(sizeof(double) * S, stream);
    gather_totals_kernel<<<grid_for(S), kThreads, 0, stream>>>(d_block_base, S, block_cum, d_totals.as<double>());
    LF_CUDA_CHECK(cudaGetLastError());
    LF_CUDA_CHECK(cudaMemcpyAsync(totals.data(), d_totals.as<double>(), sizeof(double) * S, cudaMemcpyDeviceToHost,
                                  stream));
    LF_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  // Per segment: a candidate capacity and a key threshold. Short segments take every positive
  // item (threshold +inf); long ones start where about 2n keys fall below (P(key < t) <= w t).
  const int64_t room = 4 * n + 64;
  std::vector<int64_t> cap(static_cast<size_t>(S)), cand_base(static_cast<size_t>(S) + 1, 0);
  std::vector<double> threshold(static_cast<size_t>(S));
  std::vector<int> done(static_cast<size_t>(S), 0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t len = L.seg_len(s);
    cap[s] = std::min(len, room);
    threshold[s] = len <= room ? INFINITY : 2.0 * static_cast<double>(n) / totals[s];
  }
  std::vector<unsigned long long> counts(static_cast<size_t>(S));
  Scratch d_threshold(sizeof(double) * S, stream), d_done(sizeof(int) * S, stream);
  Scratch d_counts(sizeof(unsigned long long) * S, stream), d_cand_base(sizeof(int64_t) * (S + 1), stream);
  int64_t n_slots = 0;
  std::unique_ptr<Scratch> d_cand;
  bool relayout = true;
  for (int round = 0;; ++round) {
    if (relayout) {
      for (int64_t s = 0; s < S; ++s) cand_base[s + 1] = cand_base[s] + cap[s];
      n_slots = cand_base[S];
      d_cand.reset(new Scratch(sizeof(Candidate) * std::max<int64_t>(n_slots, 1), stream));
      upload(d_cand_base.as<int64_t>(), cand_base, stream);
      std::fill(done.begin(), done.end(), 0);
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
        w, d_offsets, S, L.n_items, d_threshold.as<double>(), d_done.as<int>(), seed, d_cand_base.as<int64_t>(),
        d_counts.as<unsigned long long>(), d_cand->as<Candidate>());
    LF_CUDA_CHECK(cudaGetLastError());
    LF_CUDA_CHECK(cudaMemcpyAsync(counts.data(), d_counts.as<unsigned long long>(), sizeof(unsigned long long) * S,
                                  cudaMemcpyDeviceToHost, stream));
    LF_CUDA_CHECK(cudaStreamSynchronize(stream));
    bool all_done = true;
    for (int64_t s = 0; s < S; ++s) {
      if (done[s]) continue;
      const int64_t c = static_cast<int64_t>(counts[s]);
      if (c > cap[s]) {
        // More candidates than room: grow the room and take them all next round.
        cap[s] = std::min(L.seg_len(s), c + c / 4 + 64);
        relayout = true;
        all_done = false;
      } else if (c >= n || std::isinf(threshold[s])) {
        done[s] = 1;
        if (c < n) p.add("segment ", s, ": cannot draw ", n, " items without replacement from ", c, " positive weights");
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
  // Every segment's slots now hold its candidates then unused slots (+inf, INT64_MAX): sorting
  // by (segment, key, index) puts each segment's n smallest keys first in its own range.
  size_t temp_bytes = 0;
  Candidate* keys = d_cand->as<Candidate>();
  LF_CUDA_CHECK(cub::DeviceMergeSort::SortKeys(nullptr, temp_bytes, keys, n_slots, CandidateLess(), stream));
  Scratch temp(std::max<size_t>(temp_bytes, 16), stream);  // a null pointer would mean "size query"
  LF_CUDA_CHECK(cub::DeviceMergeSort::SortKeys(temp.as<void>(), temp_bytes, keys, n_slots, CandidateLess(), stream));
  gather_top_kernel<<<grid_for(S * n), kThreads, 0, stream>>>(keys, d_cand_base.as<int64_t>(), n, S * n, out);
  LF_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void build_cuda(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                std::uintptr_t blocks_ptr, int64_t n_listed, std::uintptr_t local_ptr, std::uintptr_t block_total_ptr,
                std::uintptr_t block_cum_ptr, int64_t n_blocks, int device, std::uintptr_t stream_ptr) {
  const char* where = "logo_fast._C.build_cuda";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_blocks);
  Problems p(where);
  check_build_args(p, L, n_items, weights_ptr, blocks_ptr, n_listed, local_ptr, block_total_ptr, block_cum_ptr);
  if (device < 0) p.add("device must be >= 0, got ", device);
  p.raise_if_any();
  DeviceGuard guard(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  double* local = reinterpret_cast<double*>(local_ptr);
  double* block_total = reinterpret_cast<double*>(block_total_ptr);
  double* block_cum = reinterpret_cast<double*>(block_cum_ptr);
  const int64_t S = L.n_segments;
  const int64_t n_work = blocks_ptr ? n_listed : L.n_blocks;

  Scratch d_meta(sizeof(int64_t) * (2 * (S + 1)) + sizeof(DeviceErrors), stream);
  int64_t* d_offsets = d_meta.as<int64_t>();
  int64_t* d_block_base = d_offsets + (S + 1);
  DeviceErrors* d_errors = reinterpret_cast<DeviceErrors*>(d_block_base + (S + 1));
  upload(d_offsets, L.offsets, stream);
  upload(d_block_base, L.block_base, stream);
  init_errors(d_errors, stream);

  if (n_work > 0) {
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(n_work, int64_t{1} << 20));
    build_blocks_kernel<<<grid, kThreads, 0, stream>>>(w, d_offsets, d_block_base, S,
                                                       reinterpret_cast<const int64_t*>(blocks_ptr), n_work,
                                                       L.n_blocks, local, block_total, d_errors);
    LF_CUDA_CHECK(cudaGetLastError());
  }
  // The prefix over blocks is tiny (n_items / 1024 entries): redo it for every segment.
  Scratch d_seg(sizeof(int64_t) * std::max<int64_t>(L.n_blocks, 1), stream);
  Scratch d_incl(sizeof(double) * std::max<int64_t>(L.n_blocks, 1), stream);
  if (L.n_blocks > 0) {
    if (L.n_blocks > std::numeric_limits<uint32_t>::max()) throw std::invalid_argument("too many blocks for one call");
    segment_of_block_kernel<<<grid_for(L.n_blocks), kThreads, 0, stream>>>(d_block_base, S, L.n_blocks,
                                                                           d_seg.as<int64_t>());
    size_t temp_bytes = 0;
    const uint32_t nb = static_cast<uint32_t>(L.n_blocks);
    LF_CUDA_CHECK(cub::DeviceScan::InclusiveSumByKey(nullptr, temp_bytes, d_seg.as<int64_t>(), block_total,
                                                     d_incl.as<double>(), nb, ::cuda::std::equal_to<>(), stream));
    Scratch temp(std::max<size_t>(temp_bytes, 16), stream);  // a null pointer would mean "size query"
    LF_CUDA_CHECK(cub::DeviceScan::InclusiveSumByKey(temp.as<void>(), temp_bytes, d_seg.as<int64_t>(), block_total,
                                                     d_incl.as<double>(), nb, ::cuda::std::equal_to<>(), stream));
  }
  scatter_cum_kernel<<<grid_for(L.n_blocks + S), kThreads, 0, stream>>>(d_block_base, d_seg.as<int64_t>(), S,
                                                                        L.n_blocks, d_incl.as<double>(), block_cum,
                                                                        d_errors);
  LF_CUDA_CHECK(cudaGetLastError());
  const DeviceErrors e = fetch_errors(d_errors, stream);
  if (e.code & kErrBlockId) p.add("block ids must lie in [0, ", L.n_blocks, ")");
  if (e.code & kErrWeight) p.add("weights[", e.first_bad, "] is negative, NaN or Inf: every weight must be finite and >= 0");
  if (e.code & kErrOverflow) p.add("segment ", e.bad_segment, ": the weights sum to inf (overflow); scale them down");
  p.raise_if_any();
}

void sample_cuda(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                 std::uintptr_t local_ptr, std::uintptr_t block_cum_ptr, int64_t n_blocks, int64_t n, bool replacement,
                 int64_t seed, int64_t offset, std::uintptr_t out_ptr, int device, std::uintptr_t stream_ptr) {
  const char* where = "logo_fast._C.sample_cuda";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_blocks);
  Problems p(where);
  check_sample_args(p, n, out_ptr, seed, offset);
  if (n_items > 0 && (weights_ptr == 0 || local_ptr == 0)) p.add("weights/local pointer is null");
  if (block_cum_ptr == 0) p.add("block_cum pointer is null");
  if (device < 0) p.add("device must be >= 0, got ", device);
  for (int64_t s = 0; s < L.n_segments; ++s)
    if (n > 0 && L.seg_len(s) == 0) p.add("segment ", s, " is empty");
  p.raise_if_any();
  if (n == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  const double* local = reinterpret_cast<const double*>(local_ptr);
  const double* block_cum = reinterpret_cast<const double*>(block_cum_ptr);
  int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
  const int64_t S = L.n_segments;

  Scratch d_meta(sizeof(int64_t) * (2 * (S + 1)) + sizeof(DeviceErrors), stream);
  int64_t* d_offsets = d_meta.as<int64_t>();
  int64_t* d_block_base = d_offsets + (S + 1);
  DeviceErrors* d_errors = reinterpret_cast<DeviceErrors*>(d_block_base + (S + 1));
  upload(d_offsets, L.offsets, stream);
  upload(d_block_base, L.block_base, stream);
  init_errors(d_errors, stream);
  check_totals_kernel<<<grid_for(S), kThreads, 0, stream>>>(d_offsets, d_block_base, S, block_cum, d_errors);
  LF_CUDA_CHECK(cudaGetLastError());
  const DeviceErrors e = fetch_errors(d_errors, stream);
  if (e.code & kErrEmpty)
    p.add("segment ", e.bad_segment, ": all weights are zero or their sum is not finite (nothing to sample)");
  p.raise_if_any();
  if (replacement) {
    sample_kernel<<<grid_for(S * n), kThreads, 0, stream>>>(w, local, block_cum, d_offsets, d_block_base, n, S * n,
                                                            static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                                                            out);
    LF_CUDA_CHECK(cudaGetLastError());
  } else {
    without_replacement_cuda(L, w, block_cum, d_offsets, d_block_base, n, static_cast<uint64_t>(seed), out, stream, p);
  }
}

}  // namespace ws
}  // namespace logo_fast
