"""Reference for ``weighted_sample``: weighted draws by an 8-ary prefix tree and Philox, in plain PyTorch.

This is the source of truth and the CPU/GPU fallback of the compiled sampler (csrc/weighted_sample.h
documents the same spec). It performs the same float64 operations in the same order as the C++ and
CUDA paths (every tree entry is a left-to-right sum of at most 8 values), so all three return
identical indices for the same seed.

Layout. Items form S segments, ``offsets`` (S + 1,) int64. Segment s owns ``tree[tree_off[s]:
tree_off[s + 1]]``: level l (0 = items) has m_l = ceil(max(len, 1) / 8^(l + 1)) nodes and stores

    P_l  (8 m_l,)             per node, the inclusive prefix of its 8 children's values
    T_l  (8 ceil(m_l / 8),)   the node totals, zero-padded (the children's values of level l + 1)

laid out [P_0][T_0][P_1][T_1]...; the top level has one node and T_top[0] is the total.

Randomness. Draw ``j`` of segment ``s`` uses Philox4x32-10 with counter
``(lo32(offset + j), hi32(offset + j), s, 0)`` and key ``(lo32(seed), hi32(seed))``. Without
replacement, candidate ``j`` uses counter ``(lo32(j), hi32(j), s, 2)`` (phase A) and the exponential
key of item ``i`` (local to its segment) counter ``(lo32(i // 2), hi32(i // 2), s, 1)`` (phase B;
words 0-1 for even i, 2-3 for odd i).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

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
FANOUT = 8  # must equal logo_fast._C.FANOUT (checked by the tests)
_BITS = 3
TAG_DISTINCT = 2


def level_nodes(length: int, level: int) -> int:
    """Nodes of level ``level`` of a segment of ``length`` items: ceil(max(length, 1) / 8^(level + 1))."""
    return ((max(length, 1) - 1) >> (_BITS * (level + 1))) + 1


def segment_levels(length: int) -> tuple[list[int], list[int], int]:
    """-> (P offsets per level, T offsets per level, tree size) of one segment, relative to its start."""
    p_off, t_off, at, level = [], [], 0, 0
    while True:
        m = level_nodes(length, level)
        p_off.append(at)
        at += m * FANOUT
        t_off.append(at)
        at += -(-m // FANOUT) * FANOUT
        if m == 1:
            return p_off, t_off, at
        level += 1


def tree_layout(offsets: Sequence[int] | torch.Tensor) -> tuple[list[int], int]:
    """-> (tree_off (S + 1 ints), n_tree). Segment s owns tree[tree_off[s]:tree_off[s + 1]]."""
    off = [int(o) for o in (offsets.tolist() if isinstance(offsets, torch.Tensor) else offsets)]
    base = [0]
    for s in range(len(off) - 1):
        base.append(base[-1] + segment_levels(off[s + 1] - off[s])[2])
    return base, base[-1]


class _Levels:
    """Per-segment level tables as tensors: p_off/t_off (S, max_levels) absolute, levels (S,)."""

    def __init__(self, off_list: list[int], device: torch.device):
        S = len(off_list) - 1
        tree_off, _ = tree_layout(off_list)
        lens = [off_list[s + 1] - off_list[s] for s in range(S)]
        tabs = [segment_levels(n) for n in lens]
        self.max_levels = max(len(t[0]) for t in tabs)
        pad = lambda xs, fill: xs + [fill] * (self.max_levels - len(xs))
        self.levels_list = [len(t[0]) for t in tabs]
        self.nodes_list = [[level_nodes(n, lv) for lv in range(self.max_levels)] for n in lens]
        self.p_off = torch.tensor([pad([tree_off[s] + x for x in tabs[s][0]], 0) for s in range(S)],
                                  dtype=torch.int64, device=device)
        self.t_off = torch.tensor([pad([tree_off[s] + x for x in tabs[s][1]], 0) for s in range(S)],
                                  dtype=torch.int64, device=device)
        self.levels = torch.tensor(self.levels_list, dtype=torch.int64, device=device)
        self.off = torch.tensor(off_list, dtype=torch.int64, device=device)
        self.lens = torch.tensor(lens, dtype=torch.int64, device=device)
        self.tree_off = tree_off


def _check_weights(values: torch.Tensor, index: torch.Tensor) -> None:
    bad = ~((values >= 0) & torch.isfinite(values))
    if bool(bad.any()):
        i = int(index[bad][0])
        raise ValueError(f"weighted_sample: bad input:\n  - weights[{i}] = {float(values[bad][0])}: "
                         "every weight must be finite and >= 0")


def _recompute(weights: torch.Tensor, tree: torch.Tensor, lv: _Levels, level: int, seg: torch.Tensor,
               node: torch.Tensor) -> None:
    """Recompute nodes ``node`` (k,) of segments ``seg`` (k,) at ``level`` from their children."""
    dev = weights.device
    c = node[:, None] * FANOUT + torch.arange(FANOUT, dtype=torch.int64, device=dev)  # (k, 8) children
    if level == 0:
        inside = c < lv.lens[seg][:, None]
        src = (lv.off[seg][:, None] + c).clamp(max=max(weights.numel() - 1, 0))
        vals = torch.where(inside, weights[src] if weights.numel() else torch.zeros_like(c, dtype=torch.float64),
                           torch.zeros((), dtype=torch.float64, device=dev))
    else:
        vals = tree[lv.t_off[seg, level - 1][:, None] + c]  # zero-padded
    prefix = vals.cumsum(1)  # left to right within each row, as the C++ loop
    tree[lv.p_off[seg, level][:, None] + c] = prefix
    tree[lv.t_off[seg, level] + node] = prefix[:, -1]


def _all_nodes(lv: _Levels, level: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    counts = torch.tensor([lv.nodes_list[s][level] if lv.levels_list[s] > level else 0
                           for s in range(len(lv.levels_list))], dtype=torch.int64, device=device)
    seg = torch.repeat_interleave(torch.arange(counts.numel(), dtype=torch.int64, device=device), counts)
    start = torch.cumsum(counts, 0) - counts
    node = torch.arange(seg.numel(), dtype=torch.int64, device=device) - start[seg]
    return seg, node


def build_prefix_tree(weights: torch.Tensor, offsets: torch.Tensor, tree: torch.Tensor) -> None:
    """Build, in place, the prefix tree ``tree`` (n_tree,) float64 of ``weights`` (N,) float64 cut by ``offsets``."""
    dev = weights.device
    off_list = [int(o) for o in offsets.tolist()]
    lv = _Levels(off_list, dev)
    if weights.numel():
        _check_weights(weights, torch.arange(weights.numel(), device=dev))
    tree.zero_()  # the zero padding of every T_l
    for level in range(lv.max_levels):
        seg, node = _all_nodes(lv, level, dev)
        for a in range(0, seg.numel(), 1 << 20):  # chunks keep the (k, 8) temporaries small
            _recompute(weights, tree, lv, level, seg[a : a + (1 << 20)], node[a : a + (1 << 20)])
    totals = segment_totals(offsets, tree)
    if not bool(torch.isfinite(totals).all()):
        s = int(torch.nonzero(~torch.isfinite(totals))[0])
        raise ValueError(f"weighted_sample: bad input:\n  - segment {s}: the weights sum to inf (overflow); "
                         "scale them down")


def recompute_items(weights: torch.Tensor, offsets: torch.Tensor, tree: torch.Tensor, items: torch.Tensor) -> None:
    """Recompute, in place, the tree ancestors of global item indices ``items`` (k,) after their weights changed."""
    if items.numel() == 0:
        return
    dev = weights.device
    lv = _Levels([int(o) for o in offsets.tolist()], dev)
    items = items.to(device=dev, dtype=torch.int64)
    seg = torch.searchsorted(lv.off[1:], items, right=True)
    local = items - lv.off[seg]
    for level in range(lv.max_levels):
        node = local >> (_BITS * (level + 1))
        keep = lv.levels[seg] > level
        pairs = torch.unique(torch.stack([seg[keep], node[keep]], 1), dim=0)
        if pairs.numel():
            _recompute(weights, tree, lv, level, pairs[:, 0], pairs[:, 1])


def segment_totals(offsets: torch.Tensor, tree: torch.Tensor) -> torch.Tensor:
    """(S,) float64 total weight of each segment, read from a built tree."""
    off = [int(o) for o in offsets.tolist()]
    tree_off, _ = tree_layout(off)
    ends = [tree_off[s] + segment_levels(off[s + 1] - off[s])[1][-1] for s in range(len(off) - 1)]
    return tree[torch.tensor(ends, dtype=torch.int64, device=tree.device)]


def choose_child(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Per row of ``p`` (k, 8) prefix entries: the child for residual ``r`` (k,) (see csrc/weighted_sample.h).

    The count of entries <= r (the first entry > r); 8 only by rounding, then the last entry adding mass.
    """
    e = (p <= r[:, None]).sum(1)
    for t in torch.nonzero(e == FANOUT).flatten().tolist():  # rounding only (rare)
        k = FANOUT - 1
        while k > 0 and not float(p[t, k]) > float(p[t, k - 1]):
            k -= 1
        e[t] = k
    return e


def descend(tree: torch.Tensor, lv: _Levels, seg: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Item index (local to its segment) of each draw: segments ``seg`` (k,), uniforms ``U`` (k,) in [0, 1)."""
    dev = tree.device
    levels = lv.levels[seg]
    total = tree[lv.t_off[seg, levels - 1]]
    r = U * total
    node = torch.zeros_like(seg)
    ar = torch.arange(FANOUT, dtype=torch.int64, device=dev)
    for level in range(lv.max_levels - 1, -1, -1):
        act = levels > level
        if not bool(act.any()):
            continue
        p = tree[(lv.p_off[seg, level] + node * FANOUT)[:, None] + ar]
        e = choose_child(p, r)
        prev = torch.where(e > 0, p.gather(1, (e - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(r))
        r = torch.where(act, r - prev, r)
        node = torch.where(act, node * FANOUT + e, node)
    return node


def sample_prefix_tree(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    tree: torch.Tensor,
    n: int,
    replacement: bool,
    seed: int,
    offset: int = 0,
) -> torch.Tensor:
    """(S, n) int64 indices local to each segment, from a built tree (see build_prefix_tree)."""
    dev = weights.device
    off_list = [int(o) for o in offsets.tolist()]
    S = len(off_list) - 1
    problems = []
    totals = segment_totals(offsets, tree).cpu()
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
    lv = _Levels(off_list, dev)
    if not replacement:
        return _sample_without_replacement(weights, tree, lv, off_list, n, seed)
    d = torch.arange(S * n, dtype=torch.int64, device=dev)
    s = d // n
    j = d - s * n
    return descend(tree, lv, s, uniform_draws(seed, offset + j, s)).view(S, n)


def _sample_without_replacement(weights: torch.Tensor, tree: torch.Tensor, lv: _Levels, off_list: list[int], n: int,
                                seed: int) -> torch.Tensor:
    """Successive sampling: phase A (first n distinct of 4n + 64 tree draws), phase B (exponential keys)."""
    dev = weights.device
    S = len(off_list) - 1
    off = lv.off
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
    # Phase A: candidates j = 0 .. M - 1 of every segment; keep each item's first candidate.
    M = 4 * n + 64
    cs = torch.arange(S, dtype=torch.int64, device=dev).repeat_interleave(M)
    cj = torch.arange(M, dtype=torch.int64, device=dev).repeat(S)
    x0, x1, _, _ = _philox_at(seed, cj, cs, TAG_DISTINCT)
    cand = descend(tree, lv, cs, _bits53(x0, x1).to(torch.float64) * 2.0**-53).view(S, M)
    out = torch.full((S, n), -1, dtype=torch.int64, device=dev)
    found = []
    for s in range(S):
        row = cand[s]
        uniq, inverse = torch.unique(row, return_inverse=True)
        first = torch.full((uniq.numel(),), M, dtype=torch.int64, device=dev)
        first = first.scatter_reduce(0, inverse, torch.arange(M, device=dev), reduce="amin")
        order = row[torch.sort(first).values][:n]
        out[s, : order.numel()] = order
        found.append(order.numel())
    # Phase B, only where the mass sits on few items: the smallest exponential keys of the rest.
    for s in range(S):
        c = found[s]
        if c >= n:
            continue
        a, b = off_list[s], off_list[s + 1]
        w = weights[a:b]
        pos = w > 0
        pos[out[s, :c]] = False
        keys = exponential_keys(seed, item[a:b], seg[a:b], torch.where(w > 0, w, torch.ones_like(w)))
        # Two stable sorts give the order (excluded last, key, index): items start in index order.
        order = torch.sort(keys, stable=True).indices
        order = order[torch.sort((~pos[order]).to(torch.int8), stable=True).indices]
        out[s, c:] = order[: n - c]
    return out


def weighted_sample_reference(
    weights: torch.Tensor, offsets: torch.Tensor, n: int, replacement: bool, seed: int, offset: int = 0
) -> torch.Tensor:
    """One-shot: build the tree of ``weights`` (N,) float64 cut by ``offsets`` (S + 1,), draw (S, n)."""
    _, n_tree = tree_layout(offsets)
    tree = torch.empty(n_tree, dtype=torch.float64, device=weights.device)
    build_prefix_tree(weights, offsets, tree)
    return sample_prefix_tree(weights, offsets, tree, n, replacement, seed, offset)
