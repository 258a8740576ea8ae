"""Reference for ``weighted_sample``: weighted draws by prefix blocks and Philox, in plain PyTorch.

This is the source of truth and the CPU/GPU fallback of the compiled sampler (csrc/weighted_sample.h
documents the same spec). It performs the same float64 operations in the same order as the C++ path,
so on CPU the two return identical indices for the same seed; on CUDA only ``torch.cumsum``'s
association differs (identical when the partial sums are exact, e.g. integer weights).

Layout. Items form S segments, ``offsets`` (S + 1,) int64; each segment is cut into blocks of
``BLOCK_SIZE`` items. The structure has three float64 buffers:

    local        (N,)                 prefix sum of the weights inside each block
    block_total  (n_blocks,)          sum of each block
    block_cum    (n_blocks + S,)      per segment: 0, t0, t0 + t1, ..., total (nb_s + 1 entries)

Randomness. Draw ``j`` of segment ``s`` uses Philox4x32-10 with counter
``(lo32(offset + j), hi32(offset + j), s, 0)`` and key ``(lo32(seed), hi32(seed))``; the
without-replacement key of item ``i`` (local to its segment) uses counter ``(lo32(i // 2), hi32(i // 2), s, 1)``
(words 0-1 for even i, 2-3 for odd i).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

BLOCK_SIZE = 1024  # must equal logo_fast._C.BLOCK_SIZE (checked by the tests)

TAG_DRAW = 0
TAG_KEY = 1

_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_SQRT2 = 1.4142135623730951
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# 1/21, 1/19, ..., 1/3, 1: the atanh series of portable_log, highest power first.
_LOG_POLY = tuple(1.0 / k for k in range(19, 0, -2))


# ---- random numbers ------------------------------------------------------------------------
def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi32, lo32) of the 64-bit product a * b for a < 2^32 and b int64 in [0, 2^32).

    Split a into 16-bit halves so that every partial product fits in int64 without overflow.
    """
    a_hi, a_lo = a >> 16, a & 0xFFFF
    p_hi = b * a_hi
    p_lo = b * a_lo
    mid = p_hi + (p_lo >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (p_lo & 0xFFFF)


def philox4x32_10(
    c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor, k0: int, k1: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of counters (c0..c3: int64 tensors holding uint32 values) under key (k0, k1)."""
    k0, k1 = int(k0) & _MASK32, int(k1) & _MASK32
    for _ in range(10):
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def _philox_at(seed: int, counter: torch.Tensor, stream: torch.Tensor, tag: int):
    tag_t = torch.full_like(counter, tag)
    return philox4x32_10(counter & _MASK32, counter >> 32, stream & _MASK32, tag_t, seed & _MASK32, seed >> 32)


def _bits53(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a >> 5) << 26) | (b >> 6)


def uniform_draws(seed: int, counter: torch.Tensor, stream: torch.Tensor) -> torch.Tensor:
    """U in [0, 1) (float64, multiples of 2^-53) of draws ``counter`` (int64 >= 0) of segments ``stream``."""
    x0, x1, _, _ = _philox_at(seed, counter, stream, TAG_DRAW)
    return _bits53(x0, x1).to(torch.float64) * 2.0**-53


def portable_log(x: torch.Tensor) -> torch.Tensor:
    """log(x) for positive, finite, normal float64 x, bit for bit as the extension computes it.

    x = m * 2^e with m in (sqrt(2)/2, sqrt(2)]; log(m) = 2 atanh(s), s = (m - 1) / (m + 1).
    Each multiply and add is its own rounded operation (no fused multiply-add), as in C++/CUDA.
    """
    bits = x.contiguous().view(torch.int64)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = ((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000).view(torch.float64)
    big = m > _SQRT2
    m = torch.where(big, m * 0.5, m)
    e = e + big.to(torch.int64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = torch.full_like(z, 1.0 / 21.0)
    for c in _LOG_POLY:
        p = p * z + c
    ed = e.to(torch.float64)
    return ed * _LN2_HI + (ed * _LN2_LO + (s + s) * p)


def exponential_keys(seed: int, item: torch.Tensor, stream: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """-log(U') / w per item (U' in (0, 1]); the without-replacement sort key (smaller is drawn first).

    One Philox call serves items 2m (words x0, x1) and 2m + 1 (words x2, x3).
    """
    x0, x1, x2, x3 = _philox_at(seed, item >> 1, stream, TAG_KEY)
    odd = (item & 1).bool()
    bits = torch.where(odd, _bits53(x2, x3), _bits53(x0, x1))
    u = (bits + 1).to(torch.float64) * 2.0**-53
    return -portable_log(u) / w


# ---- layout --------------------------------------------------------------------------------
def block_layout(offsets: Sequence[int] | torch.Tensor) -> tuple[list[int], int]:
    """-> (block_base (S + 1 ints), n_blocks). Segment s owns blocks block_base[s] .. block_base[s + 1]."""
    off = [int(o) for o in (offsets.tolist() if isinstance(offsets, torch.Tensor) else offsets)]
    base = [0]
    for s in range(len(off) - 1):
        base.append(base[-1] + (off[s + 1] - off[s] + BLOCK_SIZE - 1) // BLOCK_SIZE)
    return base, base[-1]


def _check_weights(values: torch.Tensor, index: torch.Tensor) -> None:
    bad = ~((values >= 0) & torch.isfinite(values))
    if bool(bad.any()):
        i = int(index[bad][0])
        raise ValueError(f"weighted_sample: bad input:\n  - weights[{i}] = {float(values[bad][0])}: "
                         "every weight must be finite and >= 0")


def build_prefix_blocks(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    local: torch.Tensor,
    block_total: torch.Tensor,
    block_cum: torch.Tensor,
    blocks: torch.Tensor | None = None,
) -> None:
    """Rebuild, in place, the prefix blocks listed in ``blocks`` (all when None) and every segment's block_cum.

    weights, local: (N,) float64; offsets: (S + 1,) int64 (any device); block_total: (n_blocks,);
    block_cum: (n_blocks + S,); blocks: (k,) int64 global block ids.
    """
    dev = weights.device
    off_list = [int(o) for o in offsets.tolist()]
    base_list, n_blocks = block_layout(off_list)
    S = len(off_list) - 1
    off = torch.tensor(off_list, dtype=torch.int64, device=dev)
    base = torch.tensor(base_list, dtype=torch.int64, device=dev)
    if blocks is None:
        blocks = torch.arange(n_blocks, dtype=torch.int64, device=dev)
    else:
        blocks = torch.unique(blocks.to(device=dev, dtype=torch.int64))
        if blocks.numel() and (int(blocks.min()) < 0 or int(blocks.max()) >= n_blocks):
            raise ValueError(f"weighted_sample: block ids must lie in [0, {n_blocks})")
    N = weights.numel()
    ar = torch.arange(BLOCK_SIZE, dtype=torch.int64, device=dev)
    # Chunks of blocks keep the (blocks, BLOCK_SIZE) temporaries near 16 MiB each.
    for b in torch.split(blocks, 2048):
        seg = torch.searchsorted(base[1:], b, right=True)
        start = off[seg] + (b - base[seg]) * BLOCK_SIZE
        end = torch.minimum(start + BLOCK_SIZE, off[seg + 1])
        idx = start[:, None] + ar
        valid = idx < end[:, None]
        vals = torch.where(valid, weights[idx.clamp(max=max(N - 1, 0))], torch.zeros((), dtype=weights.dtype,
                                                                                     device=dev))
        _check_weights(vals[valid], idx[valid])
        cs = vals.cumsum(1)  # left to right within each row, as the C++ loop
        local[idx[valid]] = cs[valid]
        block_total[b] = cs[:, -1]
    # Prefix over blocks, per segment, left to right: rows of a zero-padded (S, max_nb) matrix.
    nb = base[1:] - base[:-1]
    max_nb = int(nb.max()) if S else 0
    if max_nb:
        k = torch.arange(max_nb, dtype=torch.int64, device=dev)
        in_seg = k[None, :] < nb[:, None]
        bidx = (base[:-1, None] + k[None, :]).clamp(max=n_blocks - 1)
        tot = torch.where(in_seg, block_total[bidx], torch.zeros((), dtype=block_total.dtype, device=dev))
        cum = tot.cumsum(1)
        cum_base = base[:-1] + torch.arange(S, dtype=torch.int64, device=dev)
        dst = cum_base[:, None] + 1 + k[None, :]
        block_cum[dst[in_seg]] = cum[in_seg]
    block_cum[base[:-1] + torch.arange(S, dtype=torch.int64, device=dev)] = 0.0
    totals = segment_totals(offsets, block_cum)
    if not bool(torch.isfinite(totals).all()):
        s = int(torch.nonzero(~torch.isfinite(totals))[0])
        raise ValueError(f"weighted_sample: bad input:\n  - segment {s}: the weights sum to inf (overflow); "
                         "scale them down")


def segment_totals(offsets: torch.Tensor, block_cum: torch.Tensor) -> torch.Tensor:
    """(S,) float64 total weight of each segment, read from a built block_cum."""
    base, _ = block_layout(offsets)
    S = len(base) - 1
    ends = [base[s + 1] + s for s in range(S)]
    return block_cum[torch.tensor(ends, dtype=torch.int64, device=block_cum.device)]


def _upper_bound(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per row: first i in [lo, hi) with a[i] > x, or hi (a ascending on each range)."""
    n = hi - lo
    base = lo.clone()
    last = max(a.numel() - 1, 0)
    while True:
        active = n > 1
        if not bool(active.any()):
            break
        half = torch.where(active, n >> 1, torch.zeros_like(n))
        probe = a[(base + half).clamp(0, last)]
        base = torch.where(active & (probe <= x), base + half, base)
        n = n - half
    found = base + (a[base.clamp(0, last)] <= x).to(torch.int64)
    return torch.where(n <= 0, hi, found)


def sample_prefix_blocks(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    local: torch.Tensor,
    block_cum: torch.Tensor,
    n: int,
    replacement: bool,
    seed: int,
    offset: int = 0,
) -> torch.Tensor:
    """(S, n) int64 indices local to each segment, from a built structure (see build_prefix_blocks)."""
    dev = weights.device
    off_list = [int(o) for o in offsets.tolist()]
    base_list, _ = block_layout(off_list)
    S = len(off_list) - 1
    problems = []
    totals = segment_totals(offsets, block_cum).cpu()
    for s in range(S):
        if off_list[s + 1] == off_list[s]:
            problems.append(f"segment {s} is empty")
        elif not float(totals[s]) > 0.0:
            problems.append(f"segment {s}: all weights are zero (nothing to sample)")
    if n < 0:
        problems.append(f"n (draws per segment) must be >= 0, got {n}")
    if problems:
        raise ValueError("weighted_sample: bad input:\n  - " + "\n  - ".join(problems))
    if n == 0:
        return torch.empty((S, 0), dtype=torch.int64, device=dev)
    if not replacement:
        return _sample_without_replacement(weights, off_list, n, seed)

    off = torch.tensor(off_list, dtype=torch.int64, device=dev)
    base = torch.tensor(base_list, dtype=torch.int64, device=dev)
    d = torch.arange(S * n, dtype=torch.int64, device=dev)
    s = d // n
    j = d - s * n
    cum_base = base[s] + s
    nb = base[s + 1] - base[s]
    total = block_cum[cum_base + nb]
    u = uniform_draws(seed, offset + j, s) * total
    k = _upper_bound(block_cum, cum_base + 1, cum_base + 1 + nb, u) - (cum_base + 1)
    for t in torch.nonzero(k == nb).flatten().tolist():  # u rounded up to the total (rare)
        kk, cb = int(nb[t]) - 1, int(cum_base[t])
        while kk > 0 and not float(block_cum[cb + kk + 1]) > float(block_cum[cb + kk]):
            kk -= 1
        k[t] = kk
    r = u - block_cum[cum_base + k]
    bstart = off[s] + k * BLOCK_SIZE
    bend = torch.minimum(bstart + BLOCK_SIZE, off[s + 1])
    i = _upper_bound(local, bstart, bend, r)
    for t in torch.nonzero(i == bend).flatten().tolist():  # r past the block sum by rounding (rare)
        ii, lo = int(bend[t]) - 1, int(bstart[t])
        while ii > lo and not float(weights[ii]) > 0.0:
            ii -= 1
        i[t] = ii
    return (i - off[s]).view(S, n)


def _sample_without_replacement(weights: torch.Tensor, off_list: list[int], n: int, seed: int) -> torch.Tensor:
    """Gumbel-top-k by exponential keys: per segment the n smallest (key, index) among positive weights."""
    dev = weights.device
    S = len(off_list) - 1
    off = torch.tensor(off_list, dtype=torch.int64, device=dev)
    lengths = off[1:] - off[:-1]
    seg = torch.repeat_interleave(torch.arange(S, dtype=torch.int64, device=dev), lengths)
    item = torch.arange(weights.numel(), dtype=torch.int64, device=dev) - off[seg]
    positive = weights > 0
    counts = torch.zeros(S, dtype=torch.int64, device=dev).index_add_(0, seg, positive.to(torch.int64)).tolist()
    problems = [
        f"segment {s}: cannot draw {n} items without replacement from {c} positive weights"
        for s, c in enumerate(counts)
        if c < n
    ]
    if problems:
        raise ValueError("weighted_sample: bad input:\n  - " + "\n  - ".join(problems))
    keys = exponential_keys(seed, item, seg, torch.where(positive, weights, torch.ones_like(weights)))
    # Three stable sorts give the order (segment, zero weight last, key, index): items start in
    # index order, so equal keys keep it.
    order = torch.sort(keys, stable=True).indices
    order = order[torch.sort((~positive[order]).to(torch.int8), stable=True).indices]
    order = order[torch.sort(seg[order], stable=True).indices]
    take = off[:-1, None] + torch.arange(n, dtype=torch.int64, device=dev)[None, :]
    return item[order[take]]


def weighted_sample_reference(
    weights: torch.Tensor, offsets: torch.Tensor, n: int, replacement: bool, seed: int, offset: int = 0
) -> torch.Tensor:
    """One-shot: build the structure of ``weights`` (N,) float64 cut by ``offsets`` (S + 1,), draw (S, n)."""
    _, n_blocks = block_layout(offsets)
    S = offsets.numel() - 1
    local = torch.empty_like(weights)
    block_total = torch.empty(n_blocks, dtype=torch.float64, device=weights.device)
    block_cum = torch.empty(n_blocks + S, dtype=torch.float64, device=weights.device)
    build_prefix_blocks(weights, offsets, local, block_total, block_cum)
    return sample_prefix_blocks(weights, offsets, local, block_cum, n, replacement, seed, offset)
