"""``logo_fast::weighted_sample`` and the prefix-tree ops behind ``WeightedSampler``.

Four custom ops (torch.library), each with a fake implementation so torch.compile can trace
them; each runs on the backend chosen by ``logo_fast.backend.choose_backend("weighted_sample", ...)``:
``extension`` (the C++ path, CPU tensors), ``cuda`` (the CUDA path, CUDA tensors) or ``torch``
(the reference, any device).

    logo_fast::weighted_sample(weights, offsets, n, replacement, seed, offset) -> (S, n) int64
        one shot: build the tree of every segment and draw n indices per segment
    logo_fast::prefix_tree_build(weights, offsets, tree!)
        build the whole prefix tree
    logo_fast::prefix_tree_update(weights!, offsets, tree!, items, values, limit)
        set weights[items] = values (last occurrence wins) and recompute their ancestors, O(k log N),
        all or nothing (a rejected call leaves both buffers as they were)
    logo_fast::prefix_tree_sample(weights, offsets, tree, n, replacement, seed, offset) -> (S, n) int64
        draw from a built tree

Arguments: ``weights`` (N,) float64 on the sampling device; ``offsets`` (S + 1,) int64 on the CPU
(segment s is ``weights[offsets[s]:offsets[s + 1]]``); ``tree`` (n_tree,) float64 on the sampling device
(``tree_layout(offsets)`` gives n_tree); ``items`` (k,) int64 global indices in [0, limit); ``values``
(k,) float64; seeds and offsets are int64 >= 0. Indices are local to each segment. These are the
low-level ops: the checked public entry points are ``logo_fast.weighted_sample`` and
``logo_fast.WeightedSampler`` (logo_fast/sampler.py).
"""

from __future__ import annotations

import os

import torch

from ..backend import choose_backend, extension
from ..reference.weighted_sample import (
    build_prefix_tree,
    recompute_items,
    sample_prefix_tree,
    segment_totals,
    tree_layout,
    weighted_sample_reference,
)

IMPLS = ("torch", "extension", "cuda")


_chosen: dict[tuple[torch.device, str | None], str] = {}


def backend_for(device: torch.device) -> str:
    """The backend that serves weighted sampling on ``device`` (torch, extension or cuda).

    Memoised on (device, LOGO_FAST_BACKEND): this op has no Triton implementation, so nothing
    else changes the answer, and a small update should not pay for the full choice every call.
    """
    key = (device, os.environ.get("LOGO_FAST_BACKEND"))
    hit = _chosen.get(key)
    if hit is None:
        hit = _chosen[key] = choose_backend("weighted_sample", device, IMPLS)
    return hit


def _stream_args(t: torch.Tensor) -> tuple[int, int]:
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return index, torch.cuda.current_stream(index).cuda_stream


def device_meta(offsets: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(2 (S + 1),) int64 on ``device``: offsets then tree_off, the layout the CUDA kernels read."""
    tree_off, _ = tree_layout(offsets)
    return torch.cat([offsets.to(torch.int64).cpu(), torch.tensor(tree_off, dtype=torch.int64)]).to(device)


def _check_low_level(weights: torch.Tensor, offsets: torch.Tensor, **buffers: torch.Tensor) -> None:
    """Cheap structural checks (dtype, device, contiguity, sizes) before raw pointers leave Python."""
    problems = []
    if weights.dtype != torch.float64 or weights.dim() != 1:
        problems.append(f"weights must be 1-D float64, got {tuple(weights.shape)} {weights.dtype}")
    if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 2:
        problems.append(f"offsets must be 1-D int64 with >= 2 entries, got {tuple(offsets.shape)} {offsets.dtype}")
    if offsets.device.type != "cpu":
        problems.append(f"offsets must be on the CPU, got {offsets.device}")
    for name, t in (("weights", weights), ("offsets", offsets), *buffers.items()):
        if not t.is_contiguous():
            problems.append(f"{name} must be contiguous")
    for name, t in buffers.items():
        if t.device != weights.device:
            problems.append(f"{name} is on {t.device}, weights on {weights.device}")
        expected = torch.int64 if name == "items" else torch.float64
        if t.dtype != expected or t.dim() != 1:
            problems.append(f"{name} must be 1-D {expected}, got {tuple(t.shape)} {t.dtype}")
    if not problems and "tree" in buffers:
        _, n_tree = tree_layout(offsets)
        if buffers["tree"].numel() != n_tree:
            problems.append(f"tree must have {n_tree} entries, got {buffers['tree'].numel()}")
    if not problems and "items" in buffers and "values" in buffers:
        if buffers["items"].numel() != buffers["values"].numel():
            problems.append(f"items ({buffers['items'].numel()}) and values ({buffers['values'].numel()}) differ in "
                            "length")
    if problems:
        raise ValueError("weighted_sample: bad input:\n  - " + "\n  - ".join(problems))


def build_impl(weights, offsets, tree, meta=None) -> None:
    """The body of prefix_tree_build without its checks or dispatch (callers own valid buffers)."""
    backend = backend_for(weights.device)
    if backend == "torch":
        build_prefix_tree(weights, offsets, tree)
        return
    ext = extension()
    args = (weights.data_ptr(), weights.numel(), offsets.data_ptr(), offsets.numel() - 1, tree.data_ptr(),
            tree.numel())
    if backend == "extension":
        ext.build_cpu(*args, torch.get_num_threads())
    else:
        meta = device_meta(offsets, weights.device) if meta is None else meta
        ext.build_cuda(*args, meta.data_ptr(), *_stream_args(weights))


def _value_problems(values: torch.Tensor, items: torch.Tensor | None, limit: int) -> list[str]:
    """The checks update_cpu makes, for the torch and CUDA paths (one pass each; syncs on CUDA)."""
    problems = []
    if items is not None and items.numel():
        bad = (items < 0) | (items >= limit)
        n_bad = int(bad.sum())
        if n_bad:
            t = int(torch.nonzero(bad)[0])
            problems.append(f"{n_bad} indices outside [0, {limit}) (first: indices[{t}] = {int(items[t])})")
    if values.numel():
        nonfinite = ~torch.isfinite(values)
        negative = (values < 0) & ~nonfinite
        for mask, what in ((nonfinite, "NaN/Inf"), (negative, "negative")):
            count = int(mask.sum())
            if count:
                problems.append(f"weights has {count} {what} entries (first at {int(torch.nonzero(mask)[0])})")
    return problems


def update_impl(weights, offsets, tree, items, start, values, limit, meta=None) -> tuple[int, float]:
    """Set weights and recompute their ancestors, all or nothing; the body of prefix_tree_update.

    items: (k,) int64 global indices in [0, limit) (last occurrence wins) or None for the ring run
    (start + t) % N, t < k (one segment). values: (k,) float64, same device. Returns (change in the
    number of positive weights, total of segment 0 or NaN with several segments). Raises ValueError
    before writing anything for a bad index or value, and undoes a write whose total overflows.
    """
    backend = backend_for(weights.device)
    k = values.numel()
    S = offsets.numel() - 1
    if backend == "extension":
        return extension().update_cpu(
            weights.data_ptr(), weights.numel(), offsets.data_ptr(), S, tree.data_ptr(), tree.numel(),
            0 if items is None else items.data_ptr(), int(start), values.data_ptr(), k, int(limit))
    problems = _value_problems(values, items, limit)
    if items is None and k and (S != 1 or not 0 <= start < weights.numel() or k > weights.numel()):
        problems.append(f"a ring run needs one segment, start in [0, {weights.numel()}) and k <= "
                        f"{weights.numel()}; got {S} segments, start {start}, k {k}")
    if problems:
        raise ValueError("weighted_sample.update: bad input:\n  - " + "\n  - ".join(problems))
    if k == 0:
        total = float(segment_totals(offsets, tree)[0]) if S == 1 else float("nan")
        return 0, total
    dev = weights.device
    if items is None:
        pos = (start + torch.arange(k, dtype=torch.int64, device=dev)) % weights.numel()
        vals = values
    else:
        pos, inverse = torch.unique(items, return_inverse=True)
        if pos.numel() != items.numel():
            # Deterministic "last occurrence wins" (index_put with duplicates is not).
            order = torch.arange(k, device=dev)
            last = torch.full((pos.numel(),), -1, dtype=torch.int64, device=dev)
            vals = values[last.scatter_reduce(0, inverse, order, reduce="amax")]
        else:
            vals = torch.empty_like(values).index_copy_(0, inverse, values)
    old = weights[pos].clone()

    def apply(v: torch.Tensor) -> None:
        weights[pos] = v
        if backend == "torch":
            recompute_items(weights, offsets, tree, pos)
        else:
            m = device_meta(offsets, dev) if meta is None else meta
            ext_items, ext_start = (0, int(start)) if items is None else (pos.data_ptr(), 0)
            extension().recompute_cuda(weights.data_ptr(), weights.numel(), offsets.data_ptr(), S, tree.data_ptr(),
                                       tree.numel(), m.data_ptr(), ext_items, ext_start, pos.numel(),
                                       *_stream_args(weights))

    apply(vals)
    totals = segment_totals(offsets, tree)
    if not bool(torch.isfinite(totals).all()):
        s = int(torch.nonzero(~torch.isfinite(totals))[0])
        apply(old)
        raise ValueError(f"weighted_sample.update: bad input:\n  - segment {s}: the weights would sum to inf "
                         "(overflow); scale them down")
    delta = int((vals > 0).sum()) - int((old > 0).sum())
    return delta, float(totals[0]) if S == 1 else float("nan")


def sample_impl(weights, offsets, tree, n, replacement, seed, offset, meta=None) -> torch.Tensor:
    """The body of prefix_tree_sample without its checks or dispatch (callers own valid buffers)."""
    backend = backend_for(weights.device)
    if backend == "torch":
        return sample_prefix_tree(weights, offsets, tree, n, replacement, seed, offset)
    ext = extension()
    S = offsets.numel() - 1
    out = torch.empty((S, n), dtype=torch.int64, device=weights.device)
    args = (weights.data_ptr(), weights.numel(), offsets.data_ptr(), S, tree.data_ptr(), tree.numel())
    tail = (n, bool(replacement), int(seed), int(offset), out.data_ptr())
    if backend == "extension":
        ext.sample_cpu(*args, *tail, torch.get_num_threads())
    else:
        meta = device_meta(offsets, weights.device) if meta is None else meta
        ext.sample_cuda(*args, meta.data_ptr(), *tail, *_stream_args(weights))
    return out


@torch.library.custom_op("logo_fast::prefix_tree_build", mutates_args=("tree",))
def prefix_tree_build(weights: torch.Tensor, offsets: torch.Tensor, tree: torch.Tensor) -> None:
    """Build the prefix tree of ``weights`` cut by ``offsets`` into ``tree`` (n_tree,) in place."""
    _check_low_level(weights, offsets, tree=tree)
    build_impl(weights, offsets, tree)


@prefix_tree_build.register_fake
def _(weights, offsets, tree) -> None:
    return None


@torch.library.custom_op("logo_fast::prefix_tree_update", mutates_args=("weights", "tree"))
def prefix_tree_update(
    weights: torch.Tensor, offsets: torch.Tensor, tree: torch.Tensor, items: torch.Tensor, values: torch.Tensor,
    limit: int,
) -> None:
    """Set ``weights[items] = values`` (k,) and recompute their tree ancestors; all or nothing."""
    _check_low_level(weights, offsets, tree=tree, items=items, values=values)
    update_impl(weights, offsets, tree, items, 0, values, limit)


@prefix_tree_update.register_fake
def _(weights, offsets, tree, items, values, limit) -> None:
    return None


@torch.library.custom_op("logo_fast::prefix_tree_sample", mutates_args=())
def prefix_tree_sample(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    tree: torch.Tensor,
    n: int,
    replacement: bool,
    seed: int,
    offset: int = 0,
) -> torch.Tensor:
    """Draw ``n`` indices per segment from a built tree -> (S, n) int64, local to each segment."""
    _check_low_level(weights, offsets, tree=tree)
    return sample_impl(weights, offsets, tree, n, replacement, seed, offset)


@prefix_tree_sample.register_fake
def _(weights, offsets, tree, n, replacement, seed, offset=0):
    return weights.new_empty((offsets.shape[0] - 1, n), dtype=torch.int64)


# The names logo_fast.ops exported before the tree replaced the prefix blocks.
prefix_blocks_build = prefix_tree_build
prefix_blocks_sample = prefix_tree_sample


@torch.library.custom_op("logo_fast::weighted_sample", mutates_args=())
def weighted_sample_op(
    weights: torch.Tensor, offsets: torch.Tensor, n: int, replacement: bool, seed: int, offset: int = 0
) -> torch.Tensor:
    """One shot: draw ``n`` indices per segment of ``weights`` cut by ``offsets`` -> (S, n) int64."""
    _check_low_level(weights, offsets)
    if backend_for(weights.device) == "torch":
        return weighted_sample_reference(weights, offsets, n, replacement, seed, offset)
    _, n_tree = tree_layout(offsets)
    tree = torch.empty(n_tree, dtype=torch.float64, device=weights.device)
    meta = device_meta(offsets, weights.device) if weights.is_cuda else None
    build_impl(weights, offsets, tree, meta)
    return sample_impl(weights, offsets, tree, n, replacement, seed, offset, meta)


@weighted_sample_op.register_fake
def _(weights, offsets, n, replacement, seed, offset=0):
    return weights.new_empty((offsets.shape[0] - 1, n), dtype=torch.int64)
