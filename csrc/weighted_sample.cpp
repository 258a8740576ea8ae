// Weighted sampling, C++ CPU path (std::thread, no OpenMP) and the pybind11 bindings of both
// paths. The arithmetic lives in weighted_sample.h, shared with the CUDA path.
// (Over 600 lines on purpose: every binding sits next to the argument checks it runs, for both paths.)
//
// Bindings take raw pointers (tensor.data_ptr() as Python ints), sizes, seeds and, for CUDA,
// a device index and a cudaStream_t (torch.cuda.current_stream().cuda_stream). Buffers are
// float64 (weights, local, block_total, block_cum) and int64 (offsets, blocks, out). The
// Python side (logo_fast/ops/weighted_sample.py) allocates every buffer; nothing here owns memory.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
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

// Level offsets of one segment, computed once per call.
struct SegTree {
  int64_t p_off[kMaxLevels], t_off[kMaxLevels];
  int D = 0;
  int64_t len = 0;
  const double* w = nullptr;
  double* tree = nullptr;
  SegTree(const Layout& L, const double* weights, double* tree_all, int64_t s) {
    len = L.seg_len(s);
    D = level_offsets(len, p_off, t_off, nullptr);
    w = weights + L.seg_start(s);
    tree = tree_all + L.tree_off[s];
  }
  double total() const { return tree[t_off[D - 1]]; }
  void node(int l, int64_t g) const { recompute_node(w, len, tree, p_off, t_off, l, g); }
  // Nodes [g0, g1] of level l and, level by level, their ancestors.
  void range(int64_t g0, int64_t g1, int l0 = 0) const {
    for (int l = l0; l < D; ++l, g0 >>= kFanBits, g1 >>= kFanBits)
      for (int64_t g = g0; g <= g1; ++g) node(l, g);
  }
};

// Full build of every segment; the weights are checked on the way (first bad index reported).
void build_cpu(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
               std::uintptr_t tree_ptr, int64_t n_tree, int64_t num_threads) {
  const char* where = "logo_fast._C.build_cpu";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  p.raise_if_any();
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  double* tree = reinterpret_cast<double*>(tree_ptr);
  const int threads = resolve_threads(num_threads);
  FirstBad bad;
  // Level 0 of every segment, in parallel over chunks of one segment's nodes.
  for (int64_t s = 0; s < L.n_segments; ++s) {
    const SegTree t(L, w, tree, s);
    const int64_t m0 = level_nodes(t.len, 0);
    parallel_for(m0, 4096, threads, [&](int64_t g0, int64_t g1) {
      bool ok = true;
      const int64_t end = std::min(t.len, g1 * kFanout);
      for (int64_t i = g0 * kFanout; i < end; ++i) ok &= valid_weight(t.w[i]);
      if (!ok) {
        for (int64_t i = g0 * kFanout; i < end; ++i)
          if (!valid_weight(t.w[i])) {
            bad.offer(L.seg_start(s) + i);
            break;
          }
      }
      for (int64_t g = g0; g < g1; ++g) t.node(0, g);
    });
  }
  if (bad.get() >= 0) {
    p.add("weights[", bad.get(), "] = ", w[bad.get()], ": every weight must be finite and >= 0");
    p.raise_if_any();
  }
  parallel_for(L.n_segments, 16, threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const SegTree t(L, w, tree, s);
      for (int l = 0; l < t.D; ++l) {
        const int64_t m = level_nodes(t.len, l);
        if (l > 0)
          for (int64_t g = 0; g < m; ++g) t.node(l, g);
        for (int64_t g = m; g < totals_entries(m); ++g) t.tree[t.t_off[l] + g] = 0.0;  // padding
      }
    }
  });
  for (int64_t s = 0; s < L.n_segments; ++s) {
    const double total = segment_total(L, tree, s);
    if (!std::isfinite(total)) p.add("segment ", s, ": the weights sum to ", total, " (overflow); scale them down");
  }
  p.raise_if_any();
}

// Recompute the ancestors of the touched items: a ring run, or a list of global indices.
void recompute_touched(const Layout& L, const double* w, double* tree, const int64_t* items, int64_t start,
                       int64_t k, std::vector<int64_t>& touched_segments) {
  touched_segments.clear();
  if (k == 0) return;
  if (items == nullptr) {
    const SegTree t(L, w, tree, 0);
    const int64_t n = L.n_items;
    const int64_t first_end = std::min(n, start + k);
    t.range(start >> kFanBits, (first_end - 1) >> kFanBits);
    if (start + k > n) t.range(0, (start + k - n - 1) >> kFanBits);
    touched_segments.push_back(0);
    return;
  }
  if (L.n_segments == 1) {
    // Level by level (a node is recomputed after all its children are final), no sort: where a
    // level has few nodes for k items a bitmap drops the repeats; where it has many, repeats are
    // rare and recomputing one twice is harmless (same inputs, same bits).
    thread_local std::vector<uint64_t> seen;
    const SegTree t(L, w, tree, 0);
    for (int l = 0; l < t.D; ++l) {
      const int64_t m = level_nodes(t.len, l);
      const int sh = kFanBits * (l + 1);
      if (m <= 64 * k) {
        seen.assign(static_cast<size_t>((m + 63) / 64), 0);
        for (int64_t q = 0; q < k; ++q) {
          const int64_t g = items[q] >> sh;
          uint64_t& word = seen[static_cast<size_t>(g >> 6)];
          const uint64_t bit = uint64_t{1} << (g & 63);
          if (word & bit) continue;
          word |= bit;
          t.node(l, g);
        }
      } else {
        for (int64_t q = 0; q < k; ++q) t.node(l, items[q] >> sh);
      }
    }
    touched_segments.push_back(0);
    return;
  }
  // Several segments: (segment, local index) of each item, sorted, so each node is recomputed
  // once per level.
  thread_local std::vector<std::pair<int64_t, int64_t>> pos;
  thread_local std::vector<int64_t> nodes;
  pos.resize(static_cast<size_t>(k));
  bool sorted = true;
  for (int64_t t = 0; t < k; ++t) {
    const int64_t i = items[t];
    const int64_t s = L.segment_of_item(i);
    pos[t] = {s, i - L.offsets[s]};
    if (t > 0 && pos[t] < pos[t - 1]) sorted = false;
  }
  if (!sorted) std::sort(pos.begin(), pos.end());
  size_t a = 0;
  while (a < pos.size()) {
    const int64_t s = pos[a].first;
    size_t b = a;
    nodes.clear();
    for (; b < pos.size() && pos[b].first == s; ++b) {
      const int64_t g = pos[b].second >> kFanBits;
      if (nodes.empty() || nodes.back() != g) nodes.push_back(g);
    }
    const SegTree t(L, w, tree, s);
    for (int l = 0; l < t.D; ++l) {
      size_t out = 0;
      for (size_t q = 0; q < nodes.size(); ++q) {
        t.node(l, nodes[q]);
        const int64_t up = nodes[q] >> kFanBits;
        if (out == 0 || nodes[out - 1] != up) nodes[out++] = up;
      }
      nodes.resize(out);
    }
    touched_segments.push_back(s);
    a = b;
  }
}

// Set k weights and recompute their ancestors, all or nothing: every argument and value is
// checked before anything is written, and a write whose totals overflow is undone (the tree is
// a fixed function of the weights, so restoring them restores its bits). Repeated indices take
// their last value. Returns (change in the number of positive weights, total of segment 0).
std::pair<int64_t, double> update_cpu(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr,
                                      int64_t n_segments, std::uintptr_t tree_ptr, int64_t n_tree,
                                      std::uintptr_t items_ptr, int64_t start, std::uintptr_t values_ptr, int64_t k,
                                      int64_t limit) {
  const char* where = "logo_fast._C.update_cpu";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  check_update_args(p, L, items_ptr, start, k, values_ptr, limit);
  p.raise_if_any();
  double* w = reinterpret_cast<double*>(weights_ptr);
  double* tree = reinterpret_cast<double*>(tree_ptr);
  const int64_t* items = reinterpret_cast<const int64_t*>(items_ptr);
  const double* values = reinterpret_cast<const double*>(values_ptr);
  int64_t bad_index = 0, first_index = -1, nonfinite = 0, first_nonfinite = -1, negative = 0, first_negative = -1;
  for (int64_t t = 0; t < k; ++t) {
    if (items && (items[t] < 0 || items[t] >= limit)) {
      if (bad_index++ == 0) first_index = t;
    }
    const double v = values[t];
    if (!std::isfinite(v)) {
      if (nonfinite++ == 0) first_nonfinite = t;
    } else if (v < 0.0) {
      if (negative++ == 0) first_negative = t;
    }
  }
  if (bad_index) {
    p.add(bad_index, " indices outside [0, ", limit, ") (first: indices[", first_index, "] = ", items[first_index],
          ")");
  }
  if (nonfinite) p.add("weights has ", nonfinite, " NaN/Inf entries (first at ", first_nonfinite, ")");
  if (negative) p.add("weights has ", negative, " negative entries (first at ", first_negative, ")");
  p.raise_if_any();
  thread_local std::vector<double> old;
  thread_local std::vector<int64_t> segs;
  old.resize(static_cast<size_t>(k));
  int64_t delta = 0;
  for (int64_t t = 0; t < k; ++t) {
    const int64_t i = items ? items[t] : (start + t) % L.n_items;
    old[t] = w[i];
    delta += (values[t] > 0.0 ? 1 : 0) - (w[i] > 0.0 ? 1 : 0);
    w[i] = values[t];
  }
  recompute_touched(L, w, tree, items, start, k, segs);
  for (int64_t s : segs) {
    const double total = segment_total(L, tree, s);
    if (!std::isfinite(total)) p.add("segment ", s, ": the weights would sum to ", total, " (overflow); scale them down");
  }
  if (!p.empty()) {
    for (int64_t t = k - 1; t >= 0; --t) w[items ? items[t] : (start + t) % L.n_items] = old[t];  // reverse: duplicates
    recompute_touched(L, w, tree, items, start, k, segs);
    p.raise_if_any();
  }
  const double total0 = L.n_segments == 1 ? segment_total(L, tree, 0) : std::numeric_limits<double>::quiet_NaN();
  return {delta, total0};
}

void sample_with_replacement_cpu(const Layout& L, const double* w, const double* tree, int64_t n, uint64_t seed,
                                 uint64_t offset, uint32_t tag, int64_t* out, int threads) {
  const int64_t draws = L.n_segments * n;
  // Threads start at ~4k draws: below that, spawning costs more than the descents.
  parallel_for(draws, 4096, threads, [&](int64_t d0, int64_t d1) {
    // Groups of independent draws descend in lockstep, keeping several cache misses in flight.
    constexpr int G = 32;
    int64_t d = d0;
    while (d < d1) {
      const int64_t s = d / n;
      const int64_t seg_end_draw = std::min(d1, (s + 1) * n);
      const SegTree t(L, w, const_cast<double*>(tree), s);
      const double total = t.total();
      const uint32_t stream = static_cast<uint32_t>(s);
      for (; d + G <= seg_end_draw; d += G) {
        double r[G];
        int64_t node[G];
        for (int g = 0; g < G; ++g) {
          const uint64_t j = static_cast<uint64_t>(d + g - s * n);
          const Philox4 x = philox_at(seed, offset + j, stream, tag);
          r[g] = uniform53(x.x[0], x.x[1]) * total;
          node[g] = 0;
        }
        bool rounding = false;
        for (int l = t.D - 1; l >= 0; --l) {
          const double* base = t.tree + t.p_off[l];
          for (int g = 0; g < G; ++g) {
            const double* pn = base + node[g] * kFanout;
            int e = 0;
            for (int k = 0; k < kFanout; ++k) e += pn[k] <= r[g] ? 1 : 0;
            rounding |= e == kFanout;  // rare: the group is redone below by descend's exact fallback
            e &= kFanout - 1;
            // Branch-free "p[e - 1], or 0 for e = 0": entries are finite, so x * 0.0 == 0.0 exactly.
            r[g] = r[g] - pn[(e + kFanout - 1) & (kFanout - 1)] * static_cast<double>(e != 0);
            node[g] = node[g] * kFanout + e;
          }
        }
        if (rounding) {
          for (int g = 0; g < G; ++g) {
            const uint64_t j = static_cast<uint64_t>(d + g - s * n);
            const Philox4 x = philox_at(seed, offset + j, stream, tag);
            node[g] = descend(t.tree, t.p_off, t.t_off, t.D, uniform53(x.x[0], x.x[1]));
          }
        }
        for (int g = 0; g < G; ++g) out[d + g] = node[g];
      }
      for (; d < seg_end_draw; ++d) {
        const uint64_t j = static_cast<uint64_t>(d - s * n);
        const Philox4 x = philox_at(seed, offset + j, stream, tag);
        out[d] = descend(t.tree, t.p_off, t.t_off, t.D, uniform53(x.x[0], x.x[1]));
      }
    }
  });
}

// Open-addressing set of item indices (phase A's "already drawn").
class IndexSet {
 public:
  explicit IndexSet(int64_t expected) {
    size_t cap = 16;
    while (cap < static_cast<size_t>(2 * expected + 2)) cap <<= 1;
    slots_.assign(cap, -1);
    mask_ = cap - 1;
  }
  bool insert(int64_t i) {  // true when new
    size_t h = static_cast<size_t>((static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
    while (slots_[h] >= 0) {
      if (slots_[h] == i) return false;
      h = (h + 1) & mask_;
    }
    slots_[h] = i;
    return true;
  }
  bool contains(int64_t i) const {
    size_t h = static_cast<size_t>((static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
    while (slots_[h] >= 0) {
      if (slots_[h] == i) return true;
      h = (h + 1) & mask_;
    }
    return false;
  }

 private:
  std::vector<int64_t> slots_;
  size_t mask_ = 0;
};

using KeyIdx = std::pair<double, int64_t>;
struct KeyLess {
  bool operator()(const KeyIdx& a, const KeyIdx& b) const { return key_before(a.first, a.second, b.first, b.second); }
};

// Keys of items [begin, end) of one segment that fall below t (all positive items when t is
// +inf) and are not excluded, appended to `out`; returns how many such items have w > 0.
int64_t collect_keys(const double* ws, int64_t begin, int64_t end, uint32_t stream, uint64_t seed, double t,
                     const IndexSet& excluded, std::vector<KeyIdx>& out) {
  int64_t positives = 0;
  auto consider = [&](int64_t i, uint32_t a, uint32_t b) {
    const double wi = ws[i];
    if (!(wi > 0.0)) return;
    ++positives;
    const double u = uniform53_open0(a, b);
    if (key_surely_at_least(u, wi, t)) return;  // most items stop here, before any logarithm
    const double key = -portable_log(u) / wi;
    if ((key < t || std::isinf(t)) && !excluded.contains(i)) out.emplace_back(key, i);
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

// Successive sampling without replacement (see weighted_sample.h): phase A draws candidates
// from the tree (O(n log N) for n << N), phase B takes exponential keys over the rest only
// when the mass is concentrated on few items.
void sample_without_replacement_cpu(const Layout& L, const double* w, const double* tree, int64_t n, uint64_t seed,
                                    int64_t* out, int threads, Problems& p) {
  const int64_t S = L.n_segments;
  const int64_t M = phase_a_candidates(n);
  std::vector<int64_t> found(static_cast<size_t>(S), 0);
  std::vector<std::unique_ptr<IndexSet>> chosen(static_cast<size_t>(S));
  parallel_for(S, 1, threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const SegTree t(L, w, const_cast<double*>(tree), s);
      chosen[s].reset(new IndexSet(n));
      int64_t c = 0;
      for (int64_t j = 0; j < M && c < n; ++j) {
        const Philox4 x = philox_at(seed, static_cast<uint64_t>(j), static_cast<uint32_t>(s), kTagDistinct);
        const int64_t i = descend(t.tree, t.p_off, t.t_off, t.D, uniform53(x.x[0], x.x[1]));
        if (chosen[s]->insert(i)) out[s * n + c++] = i;
      }
      found[s] = c;
    }
  });
  std::vector<int64_t> pending;
  for (int64_t s = 0; s < S; ++s)
    if (found[s] < n) pending.push_back(s);
  if (pending.empty()) return;
  // Phase B. Keys below a per-segment threshold t are collected, with t first set so that about
  // 2 (n - c) keys fall below it (P(key < t) <= w t), raised until enough do.
  const int64_t room = 4 * n + 64;
  std::vector<double> thr(static_cast<size_t>(S));
  for (int64_t s : pending) {
    const double total = segment_total(L, tree, s);
    thr[s] = L.seg_len(s) <= room ? std::numeric_limits<double>::infinity()
                                  : 2.0 * static_cast<double>(n - found[s]) / total;
  }
  std::vector<std::vector<KeyIdx>> keys(static_cast<size_t>(S));
  for (int round = 0; !pending.empty(); ++round) {
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
      for (int64_t q = t0; q < t1; ++q) {
        const Task& task = tasks[static_cast<size_t>(q)];
        positives[q] = collect_keys(w + L.seg_start(task.s), task.begin, task.end, static_cast<uint32_t>(task.s),
                                    seed, thr[task.s], *chosen[task.s], part[q]);
      }
    });
    std::vector<int64_t> still;
    size_t q = 0;
    for (int64_t s : pending) {
      int64_t pos = 0;
      std::vector<KeyIdx>& mine = keys[s];
      mine.clear();
      for (; q < tasks.size() && tasks[q].s == s; ++q) {
        pos += positives[q];
        mine.insert(mine.end(), part[q].begin(), part[q].end());
      }
      const int64_t need = n - found[s];
      if (static_cast<int64_t>(mine.size()) >= need) continue;
      if (std::isinf(thr[s])) {
        p.add("segment ", s, ": cannot draw ", n, " items without replacement from ", pos, " positive weights");
        continue;
      }
      // Mass concentrated on few items: widen the threshold and look again.
      thr[s] = round >= 48 ? std::numeric_limits<double>::infinity() : thr[s] * 16.0;
      still.push_back(s);
    }
    p.raise_if_any();
    if (still.empty()) break;
    pending.swap(still);
  }
  for (int64_t s = 0; s < S; ++s) {
    if (found[s] >= n) continue;
    std::vector<KeyIdx>& all = keys[s];
    const int64_t need = n - found[s];
    // Select the smallest in O(size), then order only those.
    std::nth_element(all.begin(), all.begin() + (need - 1), all.end(), KeyLess());
    std::sort(all.begin(), all.begin() + need, KeyLess());
    for (int64_t j = 0; j < need; ++j) out[s * n + found[s] + j] = all[static_cast<size_t>(j)].second;
  }
}

void sample_cpu(std::uintptr_t weights_ptr, int64_t n_items, std::uintptr_t offsets_ptr, int64_t n_segments,
                std::uintptr_t tree_ptr, int64_t n_tree, int64_t n, bool replacement, int64_t seed, int64_t offset,
                std::uintptr_t out_ptr, int64_t num_threads) {
  const char* where = "logo_fast._C.sample_cpu";
  const Layout L = make_layout(where, offsets_ptr, n_segments, n_items, n_tree);
  Problems p(where);
  check_sample_args(p, n, out_ptr, seed, offset);
  check_tree_args(p, L, weights_ptr, tree_ptr);
  p.raise_if_any();
  if (n == 0) return;
  const double* w = reinterpret_cast<const double*>(weights_ptr);
  const double* tree = reinterpret_cast<const double*>(tree_ptr);
  int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
  for (int64_t s = 0; s < L.n_segments; ++s) {
    const double total = segment_total(L, tree, s);
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
    sample_with_replacement_cpu(L, w, tree, n, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), kTagDraw,
                                out, threads);
  } else {
    sample_without_replacement_cpu(L, w, tree, n, static_cast<uint64_t>(seed), out, threads, p);
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

  m.attr("FANOUT") = py::int_(kFanout);
  m.def(
      "tree_size", [](int64_t len) {
        if (len < 0) throw std::invalid_argument("tree_size: len must be >= 0");
        return tree_size(len);
      },
      py::arg("len"), "float64 entries of the prefix tree of one segment of len items (test hook)");
  m.def(
      "choose_child",
      [](std::vector<double> node, double r) {
        if (node.size() != static_cast<size_t>(kFanout)) throw std::invalid_argument("choose_child: 8 entries");
        return choose_child(node.data(), r);
      },
      py::arg("node"), py::arg("r"), "Child picked in one node (8 prefix entries) for residual r (test hook)");

  m.def(
      "advise_hugepages",
      [](std::uintptr_t ptr, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        // Only the whole 2 MiB pages inside [ptr, ptr + bytes); memory not yet touched then
        // faults in as huge pages, so a draw's few random node reads miss the TLB far less.
        const std::uintptr_t page = std::uintptr_t{1} << 21;
        const std::uintptr_t lo = (ptr + page - 1) & ~(page - 1), hi = (ptr + static_cast<std::uintptr_t>(bytes)) & ~(page - 1);
        if (bytes > 0 && hi > lo) return madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0;
#else
        (void)ptr, (void)bytes;
#endif
        return false;
      },
      py::arg("ptr"), py::arg("bytes"),
      "Ask the kernel for transparent huge pages on a host buffer (a hint; False when not applied)");
  m.def(
      "build_cpu",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, int64_t num_threads) {
        py::gil_scoped_release release;
        build_cpu(weights, n_items, offsets, n_segments, tree, n_tree, num_threads);
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("num_threads") = 0,
      R"(Build the prefix tree of every segment.

weights: float64 (n_items,); offsets: int64 (n_segments + 1,); tree: float64 (n_tree,), n_tree from
tree_layout(offsets). All host memory. Raises ValueError for a negative/NaN/Inf weight, a total that
overflows, bad offsets or a wrong buffer size.)");
  m.def(
      "update_cpu",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, std::uintptr_t items, int64_t start, std::uintptr_t values, int64_t k, int64_t limit) {
        std::pair<int64_t, double> r;
        {
          py::gil_scoped_release release;
          r = update_cpu(weights, n_items, offsets, n_segments, tree, n_tree, items, start, values, k, limit);
        }
        return py::make_tuple(r.first, r.second);
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("items"), py::arg("start"), py::arg("values"), py::arg("k"), py::arg("limit"),
      R"(Set k weights and recompute their ancestors in O(k log n), all or nothing.

items: int64 (k,) global indices in [0, limit) (last occurrence wins), or 0 for the ring run
(start + t) % n_items, t < k (one segment); values: float64 (k,). Every value and index is checked
before anything is written; a write whose total overflows is undone. Returns (change in the number of
positive weights, total of segment 0 (NaN when there are several)).)");
  m.def(
      "sample_cpu",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, int64_t n, bool replacement, int64_t seed, int64_t offset, std::uintptr_t out,
         int64_t num_threads) {
        py::gil_scoped_release release;
        sample_cpu(weights, n_items, offsets, n_segments, tree, n_tree, n, replacement, seed, offset, out,
                   num_threads);
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("n"), py::arg("replacement"), py::arg("seed"), py::arg("offset"), py::arg("out"),
      py::arg("num_threads") = 0,
      R"(Draw n indices per segment from the built tree into out: int64 (n_segments, n), local to each segment.

Raises ValueError when a segment is empty or all-zero, or (without replacement) has fewer than n positive weights.)");

  m.def(
      "build_cuda",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, std::uintptr_t meta, int device, std::uintptr_t stream) {
#if defined(LOGO_FAST_WITH_CUDA)
        py::gil_scoped_release release;
        build_cuda(weights, n_items, offsets, n_segments, tree, n_tree, meta, device, stream);
#else
        (void)weights, (void)n_items, (void)offsets, (void)n_segments, (void)tree, (void)n_tree, (void)meta;
        (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("meta"), py::arg("device"), py::arg("stream"),
      "build_cpu on a CUDA device: offsets in host memory, meta (offsets, tree_off int64) and the buffers in "
      "device memory; runs on `stream`");
  m.def(
      "recompute_cuda",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, std::uintptr_t meta, std::uintptr_t items, int64_t start, int64_t k, int device,
         std::uintptr_t stream) {
#if defined(LOGO_FAST_WITH_CUDA)
        py::gil_scoped_release release;
        recompute_cuda(weights, n_items, offsets, n_segments, tree, n_tree, meta, items, start, k, device, stream);
#else
        (void)weights, (void)n_items, (void)offsets, (void)n_segments, (void)tree, (void)n_tree, (void)meta;
        (void)items, (void)start, (void)k, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("meta"), py::arg("items"), py::arg("start"), py::arg("k"), py::arg("device"),
      py::arg("stream"),
      "Recompute the tree ancestors of k items (device list of distinct global indices, or the ring run from "
      "start when items is 0) after their weights were written; no checks of the values, no sync");
  m.def(
      "sample_cuda",
      [](std::uintptr_t weights, int64_t n_items, std::uintptr_t offsets, int64_t n_segments, std::uintptr_t tree,
         int64_t n_tree, std::uintptr_t meta, int64_t n, bool replacement, int64_t seed, int64_t offset,
         std::uintptr_t out, int device, std::uintptr_t stream) {
#if defined(LOGO_FAST_WITH_CUDA)
        py::gil_scoped_release release;
        sample_cuda(weights, n_items, offsets, n_segments, tree, n_tree, meta, n, replacement, seed, offset, out,
                    device, stream);
#else
        (void)weights, (void)n_items, (void)offsets, (void)n_segments, (void)tree, (void)n_tree, (void)meta, (void)n;
        (void)replacement, (void)seed, (void)offset, (void)out, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("weights"), py::arg("n_items"), py::arg("offsets"), py::arg("n_segments"), py::arg("tree"),
      py::arg("n_tree"), py::arg("meta"), py::arg("n"), py::arg("replacement"), py::arg("seed"), py::arg("offset"),
      py::arg("out"), py::arg("device"), py::arg("stream"),
      "sample_cpu on a CUDA device. With replacement: one kernel launch, no copy, no sync (the caller checks "
      "that every segment has a positive total; a segment without one gets -1)");
}

}  // namespace logo_fast
