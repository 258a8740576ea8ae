// Weighted sampling, C++ CPU path (std::thread, no OpenMP) and the pybind11 bindings of both
// paths. The arithmetic lives in weighted_sample.h, shared with the CUDA path.
//
// Bindings take raw pointers (tensor.data_ptr() as Python ints), sizes, seeds and, for CUDA,
// a device index and a cudaStream_t (torch.cuda.current_stream().cuda_stream). Buffers are
// float64 (weights, local, block_total, block_cum) and int64 (offsets, blocks, out). The
// Python side (logo_fast/ops/weighted_sample.py) allocates every buffer; nothing here owns memory.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "registry.h"
#include "weighted_sample.h"
#include "weighted_sample_host.h"

namespace py = pybind11;

namespace logo_fast {
namespace ws {
namespace {

int resolve_threads(int64_t requested) {
  if (requested > 0) return static_cast<int>(std::min<int64_t>(requested, 256));
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Runs f(begin, end) over [0, n) in at most `threads` contiguous chunks of at least `grain`
// items; the calling thread takes the first chunk. The first exception is rethrown.
template <class F>
void parallel_for(int64_t n, int64_t grain, int threads, F&& f) {
  if (n <= 0) return;
  const int64_t by_grain = std::max<int64_t>(1, n / std::max<int64_t>(grain, 1));
  const int64_t tasks = std::min<int64_t>(threads, by_grain);
  if (tasks <= 1) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + tasks - 1) / tasks;
  std::exception_ptr error;
  std::mutex mu;
  auto run = [&](int64_t t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) return;
    try {
      f(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(tasks - 1));
  for (int64_t t = 1; t < tasks; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// Smallest index whose weight is invalid, or -1; shared across threads.
class FirstBad {
 public:
  void offer(int64_t i) {
    int64_t cur = idx_.load();
    while ((cur < 0 || i < cur) && !idx_.compare_exchange_weak(cur, i)) {
    }
  }
  int64_t get() const { return idx_.load(); }

 private:
  std::atomic<int64_t> idx_{-1};
};

// Sequential exclusive prefix of block totals for the given segments (left to right, the spec).
void prefix_over_blocks(const Layout& L, const std::vector<int64_t>& segments, const double* block_total,
                        double* block_cum, int threads) {
  parallel_for(static_cast<int64_t>(segments.size()), 16, threads, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t s = segments[static_cast<size_t>(t)];
      double* cum = block_cum + L.cum_base(s);
      const double* tot = block_total + L.block_base[s];
      const int64_t nb = L.block_base[s + 1] - L.block_base[s];
      double acc = 0.0;
      cum[0] = 0.0;
      for (int64_t k = 0; k < nb; ++k) {
        acc += tot[k];
        cum[k + 1] = acc;
      }
    }
  });
}

void build_cpu(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
               std::uintptr_t blocks_ptr, int64_t n_listed, std::uintptr_t local_ptr, std::uintptr_t block_total_ptr,
               std::uintptr_t block_cum_ptr, int64_t n_blocks, int64_t num_threads) {
  const char* where = "logo_fast._C.build_cpu";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_blocks);
  Problems p(where);
  check_build_args(p, L, n_items, weights_ptr, blocks_ptr, n_listed, local_ptr, block_total_ptr, block_cum_ptr);
  p.raise_if_any();
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  double* local = reinterpret_cast<double*>(local_ptr);
  double* block_total = reinterpret_cast<double*>(block_total_ptr);
  double* block_cum = reinterpret_cast<double*>(block_cum_ptr);
  const int threads = resolve_threads(num_threads);

  // Which blocks to rebuild: all, or a listed subset (sorted, deduplicated, range-checked).
  std::vector<int64_t> listed;
  const bool all = blocks_ptr == 0;
  if (!all) {
    const int64_t* bl = reinterpret_cast<const int64_t*>(blocks_ptr);
    listed.assign(bl, bl + n_listed);
    std::sort(listed.begin(), listed.end());
    listed.erase(std::unique(listed.begin(), listed.end()), listed.end());
    if (!listed.empty() && (listed.front() < 0 || listed.back() >= L.n_blocks)) {
      p.add("block ids must lie in [0, ", L.n_blocks, "), got ", listed.front() < 0 ? listed.front() : listed.back());
      p.raise_if_any();
    }
  }
  const int64_t n_work = all ? L.n_blocks : static_cast<int64_t>(listed.size());

  FirstBad bad;
  parallel_for(n_work, 8, threads, [&](int64_t b0, int64_t b1) {
    for (int64_t t = b0; t < b1; ++t) {
      const int64_t b = all ? t : listed[static_cast<size_t>(t)];
      int64_t start, end;
      L.block_range(b, &start, &end);
      double acc = 0.0;
      bool ok = true;
      for (int64_t i = start; i < end; ++i) {
        const double wi = w[i];
        ok &= valid_weight(wi);
        acc += wi;
        local[i] = acc;
      }
      if (!ok) {
        for (int64_t i = start; i < end; ++i)
          if (!valid_weight(w[i])) {
            bad.offer(i);
            break;
          }
      }
      block_total[b] = acc;
    }
  });
  if (bad.get() >= 0) {
    p.add("weights[", bad.get(), "] = ", w[bad.get()], ": every weight must be finite and >= 0");
    p.raise_if_any();
  }

  std::vector<int64_t> segments;
  if (all) {
    segments.resize(static_cast<size_t>(L.n_segments));
    for (int64_t s = 0; s < L.n_segments; ++s) segments[static_cast<size_t>(s)] = s;
  } else {
    for (int64_t b : listed) {
      const int64_t s = L.segment_of_block(b);
      if (segments.empty() || segments.back() != s) segments.push_back(s);
    }
  }
  prefix_over_blocks(L, segments, block_total, block_cum, threads);
  for (int64_t s : segments) {
    const double total = block_cum[L.cum_base(s) + (L.block_base[s + 1] - L.block_base[s])];
    if (!std::isfinite(total)) {
      p.add("segment ", s, ": the weights sum to ", total, " (overflow); scale them down");
    }
  }
  p.raise_if_any();
}

// Total of segment s from the built structure.
double segment_total(const Layout& L, const double* block_cum, int64_t s) {
  return block_cum[L.cum_base(s) + (L.block_base[s + 1] - L.block_base[s])];
}

void sample_with_replacement_cpu(const Layout& L, const double* w, const double* local, const double* block_cum,
                                 int64_t n, uint64_t seed, uint64_t offset, int64_t* out, int threads) {
  const int64_t draws = L.n_segments * n;
  // Threads start at ~4k draws: below that, spawning costs more than the searches.
  parallel_for(draws, 4096, threads, [&](int64_t d0, int64_t d1) {
    // Groups of independent draws searched in lockstep keep several cache misses in flight.
    constexpr int G = 8;
    int64_t d = d0;
    while (d < d1) {
      const int64_t s = d / n;
      const int64_t seg_end_draw = std::min(d1, (s + 1) * n);
      const int64_t start = L.seg_start(s), len = L.seg_len(s);
      const double* cum = block_cum + L.cum_base(s);
      const int64_t nb = L.block_base[s + 1] - L.block_base[s];
      const double total = cum[nb];
      const uint32_t stream = static_cast<uint32_t>(s);
      for (; d + G <= seg_end_draw; d += G) {
        double u[G];
        const double* base[G];
        for (int g = 0; g < G; ++g) {
          const uint64_t j = static_cast<uint64_t>(d + g - s * n);
          u[g] = uniform_draw(seed, offset + j, stream) * total;
          base[g] = cum + 1;
        }
        // Lockstep branch-free search over the block prefix (same result as upper_bound).
        int64_t m = nb;
        while (m > 1) {
          const int64_t half = m >> 1;
          for (int g = 0; g < G; ++g) base[g] = (base[g][half] <= u[g]) ? base[g] + half : base[g];
          m -= half;
        }
        int64_t k[G];
        double r[G];
        const double* lb[G];
        int64_t bend[G];
        bool simple = true;
        for (int g = 0; g < G; ++g) {
          k[g] = (base[g] - (cum + 1)) + (*base[g] <= u[g] ? 1 : 0);
          if (k[g] == nb) {
            simple = false;
            continue;
          }
          r[g] = u[g] - cum[k[g]];
          const int64_t bstart = start + k[g] * kBlockSize;
          bend[g] = (k[g] + 1) * kBlockSize < len ? bstart + kBlockSize : start + len;
          lb[g] = local + bstart;
          if (bend[g] - bstart != kBlockSize) simple = false;
        }
        if (!simple) {
          // A short last block or a rounding fallback: take the exact single-draw path.
          for (int g = 0; g < G; ++g) {
            const uint64_t j = static_cast<uint64_t>(d + g - s * n);
            out[d + g] = sample_one(w, local, cum, start, len, uniform_draw(seed, offset + j, stream));
          }
          continue;
        }
        int64_t mm = kBlockSize;
        while (mm > 1) {
          const int64_t half = mm >> 1;
          for (int g = 0; g < G; ++g) lb[g] = (lb[g][half] <= r[g]) ? lb[g] + half : lb[g];
          mm -= half;
        }
        for (int g = 0; g < G; ++g) {
          int64_t i = (lb[g] - local) + (*lb[g] <= r[g] ? 1 : 0);
          if (i == bend[g]) {
            const int64_t bstart = bend[g] - kBlockSize;
            i = bend[g] - 1;
            while (i > bstart && !(w[i] > 0.0)) --i;
          }
          out[d + g] = i - start;
        }
      }
      for (; d < seg_end_draw; ++d) {
        const uint64_t j = static_cast<uint64_t>(d - s * n);
        out[d] = sample_one(w, local, cum, start, len, uniform_draw(seed, offset + j, stream));
      }
    }
  });
}

using KeyIdx = std::pair<double, int64_t>;
struct KeyLess {
  bool operator()(const KeyIdx& a, const KeyIdx& b) const { return key_before(a.first, a.second, b.first, b.second); }
};

// Keys of items [begin, end) of one segment that fall below t (all positive items when t is
// +inf), appended to `out`; returns how many items have a positive weight.
int64_t collect_keys(const double* ws, int64_t begin, int64_t end, uint32_t stream, uint64_t seed, double t,
                     std::vector<KeyIdx>& out) {
  int64_t positives = 0;
  auto consider = [&](int64_t i, uint32_t a, uint32_t b) {
    const double wi = ws[i];
    if (!(wi > 0.0)) return;
    ++positives;
    const double u = uniform53_open0(a, b);
    if (key_surely_at_least(u, wi, t)) return;  // most items stop here, before any logarithm
    const double key = -portable_log(u) / wi;
    if (key < t || std::isinf(t)) out.emplace_back(key, i);
  };
  int64_t i = begin;
  if (i < end && (i & 1)) {
    const Philox4 r = philox_at(seed, static_cast<uint64_t>(i) >> 1, stream, kTagKey);
    consider(i, r.x[2], r.x[3]);
    ++i;
  }
  for (; i + 1 < end; i += 2) {  // one Philox call serves an even/odd pair
    const Philox4 r = philox_at(seed, static_cast<uint64_t>(i) >> 1, stream, kTagKey);
    consider(i, r.x[0], r.x[1]);
    consider(i + 1, r.x[2], r.x[3]);
  }
  if (i < end) {
    const Philox4 r = philox_at(seed, static_cast<uint64_t>(i) >> 1, stream, kTagKey);
    consider(i, r.x[0], r.x[1]);
  }
  return positives;
}

// Exponential keys (Gumbel-top-k). Keys below a per-segment threshold t are collected, with t
// first set so that about 2n keys fall below it (P(key < t) <= w t, so E[count] <= 2n), and
// raised until at least n do; then the n smallest (key, index) pairs are taken in order.
void sample_without_replacement_cpu(const Layout& L, const double* w, const double* block_cum, int64_t n,
                                    uint64_t seed, int64_t* out, int threads, Problems& p) {
  const int64_t S = L.n_segments;
  const int64_t room = 4 * n + 64;
  std::vector<double> t(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    const int64_t len = L.seg_len(s);
    const double total = segment_total(L, block_cum, s);
    t[s] = len <= room ? std::numeric_limits<double>::infinity() : 2.0 * static_cast<double>(n) / total;
  }
  std::vector<std::vector<KeyIdx>> found(static_cast<size_t>(S));
  std::vector<int64_t> pending(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) pending[s] = s;
  for (int round = 0; !pending.empty(); ++round) {
    // Tasks: chunks of the pending segments, about one per thread for a big segment.
    struct Task {
      int64_t s, begin, end;
    };
    std::vector<Task> tasks;
    for (int64_t s : pending) {
      const int64_t len = L.seg_len(s);
      const int64_t chunk = std::max<int64_t>(int64_t{1} << 16, (len + threads - 1) / threads);
      for (int64_t b = 0; b < len; b += chunk) tasks.push_back({s, b, std::min(len, b + chunk)});
    }
    std::vector<std::vector<KeyIdx>> part(tasks.size());
    std::vector<int64_t> positives(tasks.size(), 0);
    parallel_for(static_cast<int64_t>(tasks.size()), 1, threads, [&](int64_t t0, int64_t t1) {
      for (int64_t k = t0; k < t1; ++k) {
        const Task& task = tasks[static_cast<size_t>(k)];
        positives[k] = collect_keys(w + L.seg_start(task.s), task.begin, task.end, static_cast<uint32_t>(task.s), seed,
                                    t[task.s], part[k]);
      }
    });
    std::vector<int64_t> still;
    size_t k = 0;
    for (int64_t s : pending) {
      int64_t count = 0, pos = 0;
      std::vector<KeyIdx>& mine = found[s];
      mine.clear();
      for (; k < tasks.size() && tasks[k].s == s; ++k) {
        count += static_cast<int64_t>(part[k].size());
        pos += positives[k];
        mine.insert(mine.end(), part[k].begin(), part[k].end());
      }
      if (count >= n) continue;
      if (std::isinf(t[s])) {
        p.add("segment ", s, ": cannot draw ", n, " items without replacement from ", pos, " positive weights");
        continue;
      }
      // Mass concentrated on few items: widen the threshold and look again.
      t[s] = round >= 48 ? std::numeric_limits<double>::infinity() : t[s] * 16.0;
      still.push_back(s);
    }
    p.raise_if_any();
    pending.swap(still);
  }
  parallel_for(S, 1, threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      std::vector<KeyIdx>& all = found[s];
      // Select the n smallest in O(size), then order only those.
      std::nth_element(all.begin(), all.begin() + (n - 1), all.end(), KeyLess());
      std::sort(all.begin(), all.begin() + n, KeyLess());
      for (int64_t j = 0; j < n; ++j) out[s * n + j] = all[static_cast<size_t>(j)].second;
    }
  });
}

void sample_cpu(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                std::uintptr_t local_ptr, std::uintptr_t block_cum_ptr, int64_t n_blocks, int64_t n, bool replacement,
                int64_t seed, int64_t offset, std::uintptr_t out_ptr, int64_t num_threads) {
  const char* where = "logo_fast._C.sample_cpu";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_blocks);
  Problems p(where);
  check_sample_args(p, n, out_ptr, seed, offset);
  if (n_items > 0 && (weights_ptr == 0 || local_ptr == 0)) p.add("weights/local pointer is null");
  if (block_cum_ptr == 0) p.add("block_cum pointer is null");
  p.raise_if_any();
  if (n == 0) return;
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  const double* local = reinterpret_cast<const double*>(local_ptr);
  const double* block_cum = reinterpret_cast<const double*>(block_cum_ptr);
  int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
  for (int64_t s = 0; s < L.n_segments; ++s) {
    const double total = segment_total(L, block_cum, s);
    if (L.seg_len(s) == 0) {
      p.add("segment ", s, " is empty");
    } else if (!(total > 0.0)) {
      p.add("segment ", s, ": all weights are zero (nothing to sample)");
    } else if (!std::isfinite(total)) {
      p.add("segment ", s, ": the weights sum to ", total);
    }
  }
  p.raise_if_any();
  const int threads = resolve_threads(num_threads);
  if (replacement) {
    sample_with_replacement_cpu(L, w, local, block_cum, n, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                                out, threads);
  } else {
    sample_without_replacement_cpu(L, w, block_cum, n, static_cast<uint64_t>(seed), out, threads, p);
  }
}

#if !defined(LOGO_FAST_WITH_CUDA)
[[noreturn]] void no_cuda() {
  throw std::runtime_error("logo_fast._C was built without CUDA (no nvcc at build time or LOGO_FAST_CUDA=0)");
}
#endif

}  // namespace
}  // namespace ws

void register_weighted_sample(py::module_& m) {
  using namespace ws;
  m.attr("BLOCK_SIZE") = py::int_(kBlockSize);

  m.def(
      "philox4x32_10",
      [](uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
        const Philox4 r = philox4x32_10(c0, c1, c2, c3, k0, k1);
        return py::make_tuple(r.x[0], r.x[1], r.x[2], r.x[3]);
      },
      py::arg("c0"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k0"), py::arg("k1"),
      "Philox4x32-10 of one counter (c0..c3) under key (k0, k1) -> four uint32 (test hook)");
  m.def(
      "portable_log",
      [](double x) {
        if (!(x > 0.0) || !std::isfinite(x) || x < 2.2250738585072014e-308)
          throw std::invalid_argument("portable_log: x must be a positive, finite, normal double");
        return portable_log(x);
      },
      py::arg("x"), "The sampler's device-independent natural log (test hook)");
  m.def(
      "uniform_draw",
      [](int64_t seed, int64_t counter, int64_t stream) {
        if (seed < 0 || counter < 0 || stream < 0 || stream > 0xFFFFFFFFll)
          throw std::invalid_argument("uniform_draw: seed, counter >= 0 and stream in [0, 2^32) required");
        return uniform_draw(static_cast<uint64_t>(seed), static_cast<uint64_t>(counter), static_cast<uint32_t>(stream));
      },
      py::arg("seed"), py::arg("counter"), py::arg("stream"), "U in [0, 1) of draw `counter` (test hook)");
  m.def(
      "exponential_key",
      [](int64_t seed, int64_t item, int64_t stream, double w) {
        if (seed < 0 || item < 0 || stream < 0 || stream > 0xFFFFFFFFll || !(w > 0.0))
          throw std::invalid_argument("exponential_key: seed, item >= 0, stream in [0, 2^32), w > 0 required");
        return exponential_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(item),
                               static_cast<uint32_t>(stream), w);
      },
      py::arg("seed"), py::arg("item"), py::arg("stream"), py::arg("w"),
      "Exponential key -log(U')/w of one item (test hook)");

  m.def(
      "build_cpu",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t blocks,
         int64_t n_listed, std::uintptr_t local, std::uintptr_t block_total, std::uintptr_t block_cum,
         int64_t n_blocks, int64_t num_threads) {
        py::gil_scoped_release release;
        build_cpu(weights, n_items, offsets, n_segments, blocks, n_listed, local, block_total, block_cum, n_blocks,
                  num_threads);
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("blocks"),
      py::arg("n_listed"), py::arg("local"), py::arg("block_total"), py::arg("block_cum"), py::arg("n_blocks"),
      py::arg("num_threads") = 0,
      R"(Rebuild the prefix blocks of the listed blocks (blocks=0: all) and the block prefix of their segments.

weights: float64 (n_items,); offsets: int64 (n_segments + 1,); blocks: int64 (n_listed,) global block ids;
local: float64 (n_items,); block_total: float64 (n_blocks,); block_cum: float64 (n_blocks + n_segments,).
All host memory. Raises ValueError for a negative/NaN/Inf weight, bad offsets or wrong buffer sizes.)");
  m.def(
      "sample_cpu",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t local,
         std::uintptr_t block_cum, int64_t n_blocks, int64_t n, bool replacement, int64_t seed, int64_t offset,
         std::uintptr_t out, int64_t num_threads) {
        py::gil_scoped_release release;
        sample_cpu(weights, n_items, offsets, n_segments, local, block_cum, n_blocks, n, replacement, seed, offset, out,
                   num_threads);
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("local"),
      py::arg("block_cum"), py::arg("n_blocks"), py::arg("n"), py::arg("replacement"), py::arg("seed"),
      py::arg("offset"), py::arg("out"), py::arg("num_threads") = 0,
      R"(Draw n indices per segment from the built structure into out: int64 (n_segments, n), local to each segment.

Raises ValueError when a segment is empty or all-zero, or (without replacement) has fewer than n positive weights.)");

  m.def(
      "build_cuda",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t blocks,
         int64_t n_listed, std::uintptr_t local, std::uintptr_t block_total, std::uintptr_t block_cum,
         int64_t n_blocks, int device, std::uintptr_t stream) {
#if defined(LOGO_FAST_WITH_CUDA)
        py::gil_scoped_release release;
        build_cuda(weights, n_items, offsets, n_segments, blocks, n_listed, local, block_total, block_cum, n_blocks,
                   device, stream);
#else
        (void)weights, (void)n_items, (void)offsets, (void)n_segments, (void)blocks, (void)n_listed, (void)local;
        (void)block_total, (void)block_cum, (void)n_blocks, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("blocks"),
      py::arg("n_listed"), py::arg("local"), py::arg("block_total"), py::arg("block_cum"), py::arg("n_blocks"),
      py::arg("device"), py::arg("stream"),
      "build_cpu on a CUDA device: offsets in host memory, every other buffer in device memory; runs on `stream`");
  m.def(
      "sample_cuda",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t local,
         std::uintptr_t block_cum, int64_t n_blocks, int64_t n, bool replacement, int64_t seed, int64_t offset,
         std::uintptr_t out, int device, std::uintptr_t stream) {
#if defined(LOGO_FAST_WITH_CUDA)
        py::gil_scoped_release release;
        sample_cuda(weights, n_items, offsets, n_segments, local, block_cum, n_blocks, n, replacement, seed, offset,
                    out, device, stream);
#else
        (void)weights, (void)n_items, (void)offsets, (void)n_segments, (void)local, (void)block_cum, (void)n_blocks;
        (void)n, (void)replacement, (void)seed, (void)offset, (void)out, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("local"),
      py::arg("block_cum"), py::arg("n_blocks"), py::arg("n"), py::arg("replacement"), py::arg("seed"),
      py::arg("offset"), py::arg("out"), py::arg("device"), py::arg("stream"),
      "sample_cpu on a CUDA device: offsets in host memory, every other buffer in device memory; runs on `stream`");
}

}  // namespace logo_fast
