// Uncertainty-weighted sampling: the arithmetic shared by the C++ CPU path
// (weighted_sample.cpp, compiled by g++) and the CUDA path (weighted_sample_cuda.cu, nvcc).
//
// Everything here is a pure function of its arguments, so the CPU and the GPU draw the same
// indices for the same seed: the random numbers are counter-based (Philox4x32-10, our own
// implementation, checked against the Random123 known-answer vectors in the tests) and the
// exponential variates use a logarithm written out below with unfused multiply/add, so its
// bits do not depend on the compiler's libm or on FMA contraction.
//
// The sampling structure ("prefix tree"). Items form S segments (independent weight vectors;
// offsets[s]..offsets[s+1]). Each segment owns an 8-ary tree stored level by level in one
// float64 buffer `tree` (segment s starts at tree_off[s]). Level l has m_l = ceil(max(len, 1) /
// 8^(l + 1)) nodes; the top level (l = D - 1) has one. Level l stores
//   P_l  (8 m_l)            per node g, the inclusive prefix, left to right, of its 8 children's
//                           values (child c = 8 g + e: the weight of item c at level 0, the total
//                           of node c of level l - 1 above it; children past the end count 0)
//   T_l  (8 ceil(m_l / 8))  node totals T_l[g] = P_l[8 g + 7], zero-padded; level l + 1 reads
//                           its children's values from here (one cache line per node)
// laid out [P_0][T_0][P_1][T_1]...; the segment's total is T_{D-1}[0]. Every entry is a fixed
// function of the weights (no running deltas), so an incremental update leaves exactly the
// bits a full build would, on every device. Changing k items recomputes their ancestors:
// O(k D) nodes of 8 additions, D = ceil(log8 n). A draw descends from the top: one 64-byte
// node per level, a count of 8 comparisons, one subtraction.
//
// The exact spec (the pure-PyTorch reference in logo_fast/reference/weighted_sample.py does
// the same operations in the same order; CPU and CUDA results match it bit for bit):
//   draw j of segment s, with replacement:
//     x = philox4x32_10(counter = {lo32(offset + j), hi32(offset + j), s, kTagDraw},
//                       key = {lo32(seed), hi32(seed)})
//     U = uniform53(x0, x1) in [0, 1);  r = U * total_s (rounded on its own)
//     from the top node down: e = #{entries p[e'] <= r} (the first entry > r; the prefix is
//     monotone, so a zero-weight child is never chosen); e == 8 happens only by rounding and
//     takes the last entry with mass; r -= p[e - 1] (0 for e = 0); child = 8 node + e.
//   without replacement (successive sampling, i.e. the Plackett-Luce order):
//     phase A: candidates j = 0 .. M - 1, M = 4n + 64, drawn as above with counter j and tag
//       kTagDistinct; the first n distinct items in candidate order are the result;
//     phase B (only when phase A found c < n distinct): exponential keys
//       x = philox4x32_10({lo32(i / 2), hi32(i / 2), s, kTagKey}, seed): one call serves items
//       2m (words x0, x1) and 2m + 1 (words x2, x3), i local to the segment;
//       key_i = -log(U'_i) / w_i with U'_i = uniform53_open0 of the item's two words;
//       over items with w_i > 0 not chosen in phase A, the n - c smallest (key, i) pairs in
//       ascending order follow the phase A items. Either phase samples the remaining items in
//       proportion to their weights, so the concatenation is exact successive sampling.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LF_HD __host__ __device__ __forceinline__
#define LF_UNROLL _Pragma("unroll")
#else
#define LF_HD inline
#define LF_UNROLL
#endif

// Exact CPU/GPU parity of the logarithm needs every multiply and add rounded on its own. nvcc
// contracts a*b+c into an FMA by default, so device code uses the _rn intrinsics; g++ only
// contracts when the target has FMA (-march=native and the like), which this turns off.
#if defined(__CUDA_ARCH__)
#define LF_MUL(a, b) __dmul_rn((a), (b))
#define LF_ADD(a, b) __dadd_rn((a), (b))
#define LF_SUB(a, b) __dsub_rn((a), (b))
#else
#define LF_MUL(a, b) ((a) * (b))
#define LF_ADD(a, b) ((a) + (b))
#define LF_SUB(a, b) ((a) - (b))
#if defined(__FMA__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#endif

namespace logo_fast {
namespace ws {

// Children per node of the prefix tree (one 64-byte cache line of float64 per node).
constexpr int kFanout = 8;
constexpr int kFanBits = 3;
// Levels of the largest segment (2^63 items): ceil(63 / 3).
constexpr int kMaxLevels = 21;

// Philox counter word 3: which stream of numbers a counter belongs to.
constexpr uint32_t kTagDraw = 0u;  // with-replacement draws
constexpr uint32_t kTagKey = 1u;   // exponential keys of the without-replacement path (phase B)
constexpr uint32_t kTagDistinct = 2u;  // candidate draws of the without-replacement path (phase A)

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

struct Philox4 {
  uint32_t x[4];
};

// Philox4x32-10 (Salmon et al., SC'11): 10 rounds of two 32x32->64 multiplies, key bumped
// by the Weyl constants between rounds.
LF_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  Philox4 out;
  out.x[0] = c0;
  out.x[1] = c1;
  out.x[2] = c2;
  out.x[3] = c3;
  return out;
}

LF_HD Philox4 philox_at(uint64_t seed, uint64_t counter, uint32_t stream, uint32_t tag) {
  return philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), stream, tag,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// 53 random bits -> a double in [0, 1) (exact: every value is a multiple of 2^-53).
LF_HD uint64_t bits53(uint32_t a, uint32_t b) {
  return (static_cast<uint64_t>(a >> 5) << 26) | static_cast<uint64_t>(b >> 6);
}
LF_HD double uniform53(uint32_t a, uint32_t b) { return static_cast<double>(bits53(a, b)) * 0x1p-53; }
// The same bits shifted to (0, 1], for logarithms.
LF_HD double uniform53_open0(uint32_t a, uint32_t b) {
  return static_cast<double>(bits53(a, b) + 1u) * 0x1p-53;
}

LF_HD uint64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t u;
  memcpy(&u, &x, sizeof(u));
  return u;
#endif
}
LF_HD double bits_double(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

// Natural logarithm of a positive, finite, normal double, within a few ulp, computed the same
// way on every device: x = m * 2^e with m in (sqrt(2)/2, sqrt(2)], s = (m - 1) / (m + 1),
// log(m) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...), |s| <= 0.172 so 11 terms reach 2^-53.
LF_HD double portable_log(double x) {
  const uint64_t bits = double_bits(x);
  int64_t e = static_cast<int64_t>((bits >> 52) & 0x7FF) - 1023;
  double m = bits_double((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m = LF_MUL(m, 0.5);
    e += 1;
  }
  const double f = m - 1.0;  // exact (Sterbenz)
  const double s = f / LF_ADD(2.0, f);
  const double z = LF_MUL(s, s);
  double p = 1.0 / 21.0;
  p = LF_ADD(LF_MUL(p, z), 1.0 / 19.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 17.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 15.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 13.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 11.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 9.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 7.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 5.0);
  p = LF_ADD(LF_MUL(p, z), 1.0 / 3.0);
  p = LF_ADD(LF_MUL(p, z), 1.0);
  // ln 2 split so that e * kLn2Hi is exact (fdlibm's constants).
  const double kLn2Hi = 6.93147180369123816490e-01;
  const double kLn2Lo = 1.90821492927058770002e-10;
  const double ed = static_cast<double>(e);
  return LF_ADD(LF_MUL(ed, kLn2Hi), LF_ADD(LF_MUL(ed, kLn2Lo), LF_MUL(LF_ADD(s, s), p)));
}

// U' in (0, 1] of item `item` of segment `stream` (the without-replacement stream).
LF_HD double key_uniform(uint64_t seed, uint64_t item, uint32_t stream) {
  const Philox4 r = philox_at(seed, item >> 1, stream, kTagKey);
  return (item & 1u) ? uniform53_open0(r.x[2], r.x[3]) : uniform53_open0(r.x[0], r.x[1]);
}

// Exponential(1) variate of item `item` of segment `stream`: -log(U'), U' in (0, 1].
LF_HD double exponential_at(uint64_t seed, uint64_t item, uint32_t stream) {
  return -portable_log(key_uniform(seed, item, stream));
}

// True when the key of an item with uniform U' and weight w is certainly >= t, from
// -log(U') >= 1 - U' alone (no logarithm). The relative margin 2^-40 covers the few ulp of
// rounding in portable_log and the divisions, so a skipped item could never have ranked
// below t: skipping is exact, it only saves work.
LF_HD bool key_surely_at_least(double u_open, double w, double t) {
  const double tw = t * w * (1.0 + 0x1p-40);
  return tw > 1e-290 && (1.0 - u_open) > tw;
}

// Sort key of an item for sampling without replacement; smaller is drawn earlier. Only called
// for w > 0; a subnormal w can give +inf, which still ranks (by index) before no-weight items.
LF_HD double exponential_key(uint64_t seed, uint64_t item, uint32_t stream, double w) {
  return exponential_at(seed, item, stream) / w;
}

// (key, index) lexicographic order: ties in key (rare) resolve by index, so results never
// depend on thread scheduling.
LF_HD bool key_before(double ka, int64_t ia, double kb, int64_t ib) { return ka < kb || (ka == kb && ia < ib); }

LF_HD double uniform_draw(uint64_t seed, uint64_t counter, uint32_t stream) {
  const Philox4 r = philox_at(seed, counter, stream, kTagDraw);
  return uniform53(r.x[0], r.x[1]);
}

// ---- tree layout -------------------------------------------------------------------------
// Nodes of level l of a segment of len items: ceil(max(len, 1) / 8^(l + 1)).
LF_HD int64_t level_nodes(int64_t len, int l) {
  const int64_t n = len > 0 ? len : 1;
  const int sh = kFanBits * (l + 1);
  return sh >= 63 ? 1 : ((n - 1) >> sh) + 1;
}

// Number of levels D (the smallest with one node at level D - 1).
LF_HD int tree_levels(int64_t len) {
  int l = 0;
  while (level_nodes(len, l) > 1) ++l;
  return l + 1;
}

// Entries of T_l: the node totals of level l, zero-padded to whole nodes of level l + 1.
LF_HD int64_t totals_entries(int64_t m) { return ((m + kFanout - 1) / kFanout) * kFanout; }

// Offsets (from the segment's tree start) of P_l and T_l for l < D; returns D. Also the size
// of the segment's tree in `size` when non-null.
LF_HD int level_offsets(int64_t len, int64_t* p_off, int64_t* t_off, int64_t* size) {
  int64_t at = 0;
  int l = 0;
  for (;; ++l) {
    const int64_t m = level_nodes(len, l);
    p_off[l] = at;
    at += m * kFanout;
    t_off[l] = at;
    at += totals_entries(m);
    if (m == 1) break;
  }
  if (size) *size = at;
  return l + 1;
}

LF_HD int64_t tree_size(int64_t len) {
  int64_t p[kMaxLevels], t[kMaxLevels], size = 0;
  level_offsets(len, p, t, &size);
  return size;
}

// Recompute node g of level l of one segment from its children; returns its total.
//   seg_w: the segment's weights (len items); seg_tree: the segment's tree.
// Left-to-right sums, each rounded on its own: the same bits on every device.
LF_HD double recompute_node(const double* seg_w, int64_t len, double* seg_tree, const int64_t* p_off,
                            const int64_t* t_off, int l, int64_t g) {
  double v[kFanout];
  const int64_t c0 = g * kFanout;
  if (l == 0) {
    if (c0 + kFanout <= len) {
LF_UNROLL
      for (int e = 0; e < kFanout; ++e) v[e] = seg_w[c0 + e];
    } else {
LF_UNROLL
      for (int e = 0; e < kFanout; ++e) v[e] = c0 + e < len ? seg_w[c0 + e] : 0.0;
    }
  } else {
    const double* src = seg_tree + t_off[l - 1] + c0;  // zero-padded: no bounds to check
LF_UNROLL
    for (int e = 0; e < kFanout; ++e) v[e] = src[e];
  }
  double* p = seg_tree + p_off[l] + c0;
  double acc = 0.0;
LF_UNROLL
  for (int e = 0; e < kFanout; ++e) {
    acc = LF_ADD(acc, v[e]);
    p[e] = acc;
  }
  seg_tree[t_off[l] + g] = acc;
  return acc;
}

// Child of a node for residual r: the first entry > r, i.e. the count of entries <= r (the
// prefix is monotone). 8 only by rounding (r at or past the node's total): then the last entry
// that adds mass. Never a child with no mass when the node has some.
LF_HD int choose_child(const double* p, double r) {
  int e = 0;
LF_UNROLL
  for (int k = 0; k < kFanout; ++k) e += (p[k] <= r) ? 1 : 0;
  if (e == kFanout) {
    e = kFanout - 1;
    while (e > 0 && !(p[e] > p[e - 1])) --e;
  }
  return e;
}

// One draw from a segment's tree with U in [0, 1). Returns the item index within the segment.
// Needs total > 0 (callers check before any draw).
LF_HD int64_t descend(const double* seg_tree, const int64_t* p_off, const int64_t* t_off, int D, double U) {
  const double total = seg_tree[t_off[D - 1]];
  double r = LF_MUL(U, total);  // rounded on its own: must not fuse with the subtraction below
  int64_t node = 0;
  for (int l = D - 1; l >= 0; --l) {
    const double* p = seg_tree + p_off[l] + node * kFanout;
    const int e = choose_child(p, r);
    r = LF_SUB(r, e > 0 ? p[e - 1] : 0.0);
    node = node * kFanout + e;
  }
  return node;
}

// A weight the sampler accepts: finite and >= 0 (NaN fails both comparisons).
LF_HD bool valid_weight(double w) { return w >= 0.0 && w <= 1.7976931348623157e308; }

}  // namespace ws
}  // namespace logo_fast
