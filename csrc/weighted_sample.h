// Uncertainty-weighted sampling: the arithmetic shared by the C++ CPU path
// (weighted_sample.cpp, compiled by g++) and the CUDA path (weighted_sample_cuda.cu, nvcc).
//
// Everything here is a pure function of its arguments, so the CPU and the GPU draw the same
// indices for the same seed: the random numbers are counter-based (Philox4x32-10, our own
// implementation, checked against the Random123 known-answer vectors in the tests) and the
// exponential variates use a logarithm written out below with unfused multiply/add, so its
// bits do not depend on the compiler's libm or on FMA contraction.
//
// The sampling structure ("prefix blocks"). Items form S segments (independent weight
// vectors; offsets[s]..offsets[s+1]). Each segment is cut into blocks of kBlockSize items:
//   local[i]        inclusive prefix sum of w inside i's block (float64, left to right)
//   block_total[b]  sum of block b (== local of its last item)
//   block_cum       per segment s, nb_s + 1 entries starting at block_base[s] + s:
//                   0, t0, t0 + t1, ... (exclusive prefix of block totals, then the total)
// Changing k items costs O(k + blocks touched * kBlockSize) plus O(number of blocks) for the
// small prefix over blocks, never O(all items). A draw is two binary searches.
//
// The exact spec (the pure-PyTorch reference in logo_fast/reference/weighted_sample.py does
// the same operations in the same order; CPU results match it bit for bit):
//   draw j of segment s, with replacement:
//     x = philox4x32_10(counter = {lo32(offset + j), hi32(offset + j), s, kTagDraw},
//                       key = {lo32(seed), hi32(seed)})
//     U = uniform53(x0, x1) in [0, 1);  u = U * total_s
//     block k = first k with block_cum[k + 1] > u  (k = last block with a positive total if none)
//     r = u - block_cum[k];  item = first i in block k with local[i] > r
//     (the last positive-weight item of the block if none: rounding only)
//   without replacement (exponential keys, i.e. Gumbel-top-k):
//     x = philox4x32_10({lo32(i / 2), hi32(i / 2), s, kTagKey}, seed): one call serves items
//     2m (words x0, x1) and 2m + 1 (words x2, x3), i local to the segment;
//     key_i = -log(U'_i) / w_i with U'_i = uniform53_open0 of the item's two words;
//     over items with w_i > 0 take the n smallest (key, i) pairs in ascending order. That
//     order is the order of successive sampling without replacement.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LF_HD __host__ __device__ __forceinline__
#else
#define LF_HD inline
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

// Items per block of the prefix structure. The CUDA build kernel scans one block with
// 256 threads x 4 items; the Python reference reads this value from the extension's BLOCK_SIZE.
constexpr int64_t kBlockSize = 1024;

// Philox counter word 3: which stream of numbers a counter belongs to.
constexpr uint32_t kTagDraw = 0u;  // with-replacement draws
constexpr uint32_t kTagKey = 1u;   // exponential keys of the without-replacement path

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

LF_HD int64_t num_blocks(int64_t len) { return (len + kBlockSize - 1) / kBlockSize; }

// First index i in [lo, hi) with a[i] > x, or hi. Branch-free halving, so a batch of
// independent searches keeps many loads in flight.
LF_HD int64_t upper_bound(const double* a, int64_t lo, int64_t hi, double x) {
  int64_t n = hi - lo;
  if (n <= 0) return hi;
  const double* base = a + lo;
  while (n > 1) {
    const int64_t half = n >> 1;
    base = (base[half] <= x) ? base + half : base;
    n -= half;
  }
  return (base - a) + (*base <= x ? 1 : 0);
}

// One draw with replacement from segment [seg_start, seg_start + seg_len).
//   w, local: full item arrays; seg_cum: the segment's nb + 1 block_cum entries;
//   U in [0, 1). Returns the item index relative to seg_start. Needs total > 0 (checked by
//   the callers before any draw).
LF_HD int64_t sample_one(const double* w, const double* local, const double* seg_cum, int64_t seg_start,
                         int64_t seg_len, double U) {
  const int64_t nb = num_blocks(seg_len);
  const double total = seg_cum[nb];
  const double u = LF_MUL(U, total);  // rounded on its own: r below must not be an FMA
  int64_t k = upper_bound(seg_cum + 1, 0, nb, u);
  if (k == nb) {
    // u rounded up to the total: take the last block that has mass.
    k = nb - 1;
    while (k > 0 && !(seg_cum[k + 1] > seg_cum[k])) --k;
  }
  const double r = LF_SUB(u, seg_cum[k]);
  const int64_t bstart = seg_start + k * kBlockSize;
  const int64_t bend = (k + 1) * kBlockSize < seg_len ? bstart + kBlockSize : seg_start + seg_len;
  int64_t i = upper_bound(local, bstart, bend, r);
  if (i == bend) {
    // r is past the block's sum only through rounding: take its last positive item.
    i = bend - 1;
    while (i > bstart && !(w[i] > 0.0)) --i;
  }
  return i - seg_start;
}

// A weight the sampler accepts: finite and >= 0 (NaN fails both comparisons).
LF_HD bool valid_weight(double w) { return w >= 0.0 && w <= 1.7976931348623157e308; }

}  // namespace ws
}  // namespace logo_fast
