"""Weighted sampling: a one-shot ``weighted_sample`` and an incremental ``WeightedSampler`` ring.

Both draw index i with probability w[i] / sum(w) from an 8-ary prefix tree (float64; one
64-byte node per level, ceil(log8 N) levels), with counter-based Philox random numbers: the same
seed gives the same indices on every run, and the C++ (CPU) and CUDA paths share that arithmetic,
bit for bit, with the pure-PyTorch reference. They go beyond ``torch.multinomial``'s 2^24
categories. Changing k weights costs O(k log N); drawing n costs O(n log N), with or without
replacement.

Randomness: each call draws one 63-bit seed from ``generator`` (``torch.randint``), or from
torch's default generator when ``generator`` is None, so ``torch.manual_seed`` and generator
states make every draw reproducible and the generator's state advances.

    >>> s = WeightedSampler(capacity=1000)
    >>> s.extend(torch.rand(300))           # positions 0..299
    >>> idx = s.sample(64)                  # (64,) int64 in [0, 1000), only filled slots
    >>> s.update(idx[:4], torch.zeros(4))   # those four are never drawn again
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch

from .backend import extension
from .ops.weighted_sample import (
    backend_for,
    build_impl,
    device_meta,
    prefix_tree_sample,
    prefix_tree_update,
    sample_impl,
    update_impl,
    weighted_sample_op,
)
from .reference.weighted_sample import segment_levels, tree_layout

__all__ = ["WeightedSampler", "weighted_sample", "draw_seed"]

_SEED_HIGH = 2**63 - 1


def draw_seed(generator: torch.Generator | None = None) -> int:
    """One int64 seed in [0, 2^63 - 1) from ``generator`` (or torch's default CPU generator)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=device).item())


def _as_tensor(x: Any, name: str, problems: list[str]) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception as err:  # noqa: BLE001 - reported as a bad input
        problems.append(f"{name} must be a tensor or array-like, got {type(x).__name__} ({err})")
        return None


def _weight_problems(w: torch.Tensor, name: str) -> list[str]:
    """Every problem with a weight vector: dtype, NaN/Inf, negatives (counts and first positions)."""
    if w.dtype == torch.bool or w.is_complex():
        return [f"{name} must be real numbers, got {w.dtype}"]
    problems = []
    wf = w if w.is_floating_point() else w.to(torch.float64)
    if wf.numel() == 0:
        return problems
    lo, hi = torch.aminmax(wf)  # one pass; NaN propagates and fails both tests
    if bool((lo >= 0) & (hi <= torch.finfo(wf.dtype).max)):
        return problems
    nonfinite = ~torch.isfinite(wf)
    negative = wf < 0
    if bool(nonfinite.any()):
        pos = torch.nonzero(nonfinite).flatten()[:5].tolist()
        problems.append(f"{name} has {int(nonfinite.sum())} NaN/Inf entries (first at {pos})")
    if bool(negative.any()):
        pos = torch.nonzero(negative).flatten()[:5].tolist()
        problems.append(f"{name} has {int(negative.sum())} negative entries (first at {pos})")
    return problems


def _raise(where: str, problems: list[str]) -> None:
    if problems:
        raise ValueError(f"{where}: bad input:\n  - " + "\n  - ".join(problems))


def _check_n(n: Any, problems: list[str]) -> int:
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)  # ints, numpy ints, 0-d integer tensors; not floats
    except TypeError:
        problems.append(f"n must be an int, got {type(n).__name__}")
        return 0
    if n < 0:
        problems.append(f"n must be >= 0, got {n}")
    return n


def weighted_sample(
    weights: torch.Tensor,
    n: int,
    replacement: bool = True,
    generator: torch.Generator | None = None,
    offsets: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """Draw ``n`` indices with probability proportional to ``weights``.

    weights: (N,) one vector -> returns (n,) int64 in [0, N);
             (S, N) S vectors, each sampled independently -> returns (S, n);
             (N_total,) with ``offsets`` (S + 1,): S ragged vectors weights[offsets[s]:offsets[s + 1]]
             -> returns (S, n), indices local to each vector.
    replacement: False draws distinct indices (successive sampling: the first distinct tree draws,
             exponential keys over the rest only where the mass sits on few items), in the order
             successive sampling without replacement would produce them.
    generator: torch.Generator to draw the seed from (default: torch's global generator).

    Weights may be any real dtype (computed in float64) on CPU or CUDA; the result is on the same
    device. Raises one ValueError listing every problem: NaN/Inf or negative weights, an all-zero
    or empty vector, n < 0, n above the number of positive weights without replacement, bad offsets.
    """
    problems: list[str] = []
    w = _as_tensor(weights, "weights", problems)
    n = _check_n(n, problems)
    if w is not None and (w.dim() not in (1, 2) or (w.dim() == 2 and offsets is not None)):
        problems.append(f"weights must be (N,), (S, N), or (N_total,) with offsets; got shape {tuple(w.shape)}"
                        + (" with offsets" if offsets is not None else ""))
        w = None
    if w is None:
        _raise("weighted_sample", problems)
    problems += _weight_problems(w, "weights")
    squeeze = w.dim() == 1 and offsets is None
    if w.dim() == 2:
        S, N = w.shape
        off = torch.arange(S + 1, dtype=torch.int64) * N
    elif offsets is None:
        off = torch.tensor([0, w.numel()], dtype=torch.int64)
    else:
        off = _as_tensor(offsets, "offsets", problems)
        if off is not None:
            if off.dim() != 1 or off.numel() < 2 or off.is_floating_point() or off.dtype == torch.bool:
                problems.append(f"offsets must be a 1-D integer sequence of S + 1 >= 2 entries, got {tuple(off.shape)}"
                                f" {off.dtype}")
                off = None
            else:
                off = off.to(device="cpu", dtype=torch.int64)
                if int(off[0]) != 0 or int(off[-1]) != w.numel():
                    problems.append(f"offsets must start at 0 and end at len(weights) = {w.numel()}, got "
                                    f"{int(off[0])} .. {int(off[-1])}")
                    off = None
                elif bool((off[1:] < off[:-1]).any()):
                    problems.append("offsets must be non-decreasing")
                    off = None
    if off is None or w.is_complex() or w.dtype == torch.bool:
        _raise("weighted_sample", problems)
    flat = w.reshape(-1).to(torch.float64).contiguous()
    # Per-vector checks in one pass: counts of positive weights (a vector of zeros has none).
    positive = torch.cat([torch.zeros(1, dtype=torch.int64, device=flat.device), (flat > 0).cumsum(0)])
    counts = (positive[off[1:].to(flat.device)] - positive[off[:-1].to(flat.device)]).cpu()
    lengths = off[1:] - off[:-1]
    empty = lengths == 0
    zero = (counts == 0) & ~empty
    short = (counts < n) & ~empty & ~zero if not replacement else torch.zeros_like(empty)
    vector_problems = []
    bad = torch.nonzero(empty | zero | short).flatten()
    for s in bad[:8].tolist():
        label = "weights" if squeeze else f"vector {s}"
        if bool(empty[s]):
            vector_problems.append(f"{label} is empty")
        elif bool(zero[s]):
            vector_problems.append(f"{label}: all weights are zero (nothing to sample)")
        else:
            vector_problems.append(f"{label}: cannot draw {n} without replacement from {int(counts[s])} positive "
                                   "weights")
    if bad.numel() > 8:
        vector_problems.append(f"... and {bad.numel() - 8} more vectors")
    _raise("weighted_sample", problems + vector_problems)
    out = weighted_sample_op(flat, off, n, bool(replacement), draw_seed(generator), 0)
    return out[0] if squeeze else out


def _zeros(n: int, device: torch.device) -> torch.Tensor:
    """(n,) float64 zeros; large CPU buffers on transparent huge pages where the kernel allows.

    A draw reads one node per tree level at random: with 4 KiB pages each is a TLB miss.
    """
    t = torch.empty(n, dtype=torch.float64, device=device)
    if device.type == "cpu" and n * 8 >= 1 << 22:
        ext = extension()
        if ext is not None and hasattr(ext, "advise_hugepages"):
            ext.advise_hugepages(t.data_ptr(), n * 8)
    return t.zero_()


class WeightedSampler:
    """Index sampler over a FIFO ring of ``capacity`` non-negative weights, updated incrementally.

    capacity: number of slots; ``extend`` fills them in order and, once full, overwrites the oldest.
    device:   where weights live and sampling runs ("cpu" or a CUDA device).

    Storage: ``weights`` (capacity,) float64 plus the prefix tree (about 1.3 float64 per slot).
    Appending k weights costs O(k + log capacity), updating k scattered ones O(k log capacity),
    drawing n O(n log capacity) with or without replacement; nothing ever rebuilds the whole tree.
    Empty slots have weight 0 and are never drawn. Every write is all or nothing: a rejected
    ``extend`` or ``update`` (bad value, bad index, a total that would overflow) leaves the
    sampler exactly as it was.
    """

    def __init__(self, capacity: int, device: str | torch.device = "cpu"):
        problems = []
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            problems.append(f"capacity must be an int >= 1, got {capacity!r}")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as err:
            problems.append(f"device {device!r} is not a torch device ({err})")
            dev = None
        if dev is not None and dev.type == "cuda" and not torch.cuda.is_available():
            problems.append(f"device {device!r} requested but CUDA is not available")
        elif dev is not None and dev.type not in ("cpu", "cuda"):
            problems.append(f"device must be cpu or cuda, got {dev}")
        _raise("WeightedSampler", problems)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.capacity = capacity
        self.device = dev
        _, n_tree = tree_layout([0, capacity])
        self._offsets = torch.tensor([0, capacity], dtype=torch.int64)
        # The layout the CUDA kernels read, kept on the device so a draw copies nothing.
        self._meta = device_meta(self._offsets, dev) if dev.type == "cuda" else None
        self._weights = _zeros(capacity, dev)
        self._tree = _zeros(n_tree, dev)
        self._size = 0
        self._next = 0
        self._total = 0.0  # cached after every write: reading it never syncs a GPU
        self._positive = 0  # weights > 0, for the without-replacement check

    # ---- sizes ---------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of filled slots (at most capacity)."""
        return self._size

    @property
    def next_position(self) -> int:
        """Slot the next ``extend`` writes first."""
        return self._next

    def total(self) -> float:
        """Sum of the stored weights (the float64 tree's root)."""
        return self._total

    def __repr__(self) -> str:
        return f"WeightedSampler(capacity={self.capacity}, size={self._size}, device={self.device})"

    # ---- writes --------------------------------------------------------------------------
    def _values(self, weights: Any, problems: list[str]) -> torch.Tensor | None:
        """Shape and dtype checks only; the values are checked where they are written (all or nothing)."""
        w = _as_tensor(weights, "weights", problems)
        if w is None:
            return None
        if w.dim() != 1:
            problems.append(f"weights must be 1-D (K,), got shape {tuple(w.shape)}")
            return None
        if w.dtype == torch.bool or w.is_complex():
            problems.append(f"weights must be real numbers, got {w.dtype}")
            return None
        return w

    def _write(self, where: str, items: torch.Tensor | None, start: int, values: torch.Tensor, limit: int) -> None:
        on_cuda = self.device.type == "cuda"
        if values.dtype is not torch.float64 or values.is_cuda != on_cuda or not values.is_contiguous():
            values = values.to(device=self.device, dtype=torch.float64).contiguous()
        if items is not None and (items.dtype is not torch.int64 or items.is_cuda != on_cuda
                                  or not items.is_contiguous()):
            items = items.to(device=self.device, dtype=torch.int64).contiguous()
        try:
            if torch.compiler.is_compiling() and items is not None:
                prefix_tree_update(self._weights, self._offsets, self._tree, items, values, limit)
                self._positive = int((self._weights > 0).sum())
                self._total = float(self._weights.sum())
                return
            delta, total = update_impl(self._weights, self._offsets, self._tree, items, start, values, limit,
                                       self._meta)
        except ValueError as err:
            text = str(err)
            head, _, rest = text.partition(": bad input:")
            raise ValueError(f"{where}: bad input:{rest}" if rest else text) from None
        self._positive += delta
        self._total = total

    def extend(self, weights: Any) -> torch.Tensor:
        """Append K weights in FIFO order; once full, each overwrites the oldest slot.

        weights: (K,) real, finite, >= 0 (any device; copied to the sampler's device).
        Returns the (min(K, capacity),) int64 slots written, in order, for the last
        min(K, capacity) weights (with K > capacity the first K - capacity would be overwritten
        within this same call, so they are skipped). A rejected call changes nothing.
        """
        problems: list[str] = []
        w = self._values(weights, problems)
        _raise("WeightedSampler.extend", problems)
        K = w.numel()
        if K == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        start = self._next
        if K > self.capacity:
            w = w[K - self.capacity :]
            start = (start + K - self.capacity) % self.capacity
            K = self.capacity
        self._write("WeightedSampler.extend", None, start, w, self.capacity)
        self._next = (start + K) % self.capacity
        self._size = min(self.capacity, self._size + K)
        first = min(K, self.capacity - start)  # the part before the ring wraps
        slots = torch.arange(start, start + first, dtype=torch.int64, device=self.device)
        if K > first:
            slots = torch.cat([slots, torch.arange(0, K - first, dtype=torch.int64, device=self.device)])
        return slots

    def update(self, indices: Any, weights: Any) -> None:
        """Set the weights of filled slots ``indices`` (K,) to ``weights`` (K,), in O(K log capacity).

        Repeated indices take the weight of their last occurrence. Indices must lie in
        [0, len(self)) (filled slots). A rejected call changes nothing.
        """
        if (type(indices) is torch.Tensor and type(weights) is torch.Tensor and indices.dtype is torch.int64
                and weights.dtype is torch.float64 and self.device.type == "cpu" and not indices.is_cuda
                and not weights.is_cuda and indices.dim() == 1 and weights.dim() == 1
                and indices.numel() == weights.numel() and indices.is_contiguous() and weights.is_contiguous()
                and backend_for(self.device) == "extension" and not torch.compiler.is_compiling()):
            # The common case in a prioritised-replay loop, straight to C++ (which checks every index
            # and value before writing): a few microseconds of Python instead of tens.
            buffers = (self._weights.data_ptr(), self.capacity, self._offsets.data_ptr(), 1, self._tree.data_ptr(),
                       self._tree.numel())
            try:
                delta, self._total = extension().update_cpu(*buffers, indices.data_ptr(), 0, weights.data_ptr(),
                                                            indices.numel(), self._size)
            except ValueError as err:
                raise ValueError("WeightedSampler.update: bad input:" + str(err).partition(": bad input:")[2]) from None
            self._positive += delta
            return
        problems: list[str] = []
        idx = indices if isinstance(indices, torch.Tensor) else _as_tensor(indices, "indices", problems)
        w = self._values(weights, problems)
        if idx is not None:
            if idx.dim() != 1 or idx.is_floating_point() or idx.dtype == torch.bool or idx.is_complex():
                problems.append(f"indices must be a 1-D integer tensor, got shape {tuple(idx.shape)} {idx.dtype}")
            elif w is not None and idx.numel() != w.numel():
                problems.append(f"indices ({idx.numel()}) and weights ({w.numel()}) differ in length")
        if problems and w is not None:
            problems += _weight_problems(w, "weights")  # list the value problems too
        _raise("WeightedSampler.update", problems)
        if idx.numel() == 0:
            return
        self._write("WeightedSampler.update", idx, 0, w, self._size)

    # ---- reads ---------------------------------------------------------------------------
    def sample(self, n: int, replacement: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) int64 slots in [0, capacity), slot i drawn with probability w[i] / total().

        replacement=False returns distinct slots in the order successive sampling without
        replacement would produce them (O(n log capacity) unless the mass sits on few slots).
        The seed comes from ``generator`` (or torch's default generator), so seeded generators
        reproduce draws. On CUDA a draw with replacement is one kernel launch and no sync.
        """
        problems: list[str] = []
        n = _check_n(n, problems)
        if self._size == 0:
            problems.append("the sampler is empty (extend it first)")
        elif not self._total > 0.0:
            problems.append("all weights are zero (nothing to sample)")
        elif not replacement and n > self._positive:
            problems.append(f"cannot draw {n} without replacement from {self._positive} positive weights")
        _raise("WeightedSampler.sample", problems)
        seed = draw_seed(generator)
        if n == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        if torch.compiler.is_compiling():
            # the op keeps the graph traceable; eager calls skip its dispatch and buffer checks
            return prefix_tree_sample(self._weights, self._offsets, self._tree, n, bool(replacement), seed, 0)[0]
        return sample_impl(self._weights, self._offsets, self._tree, n, bool(replacement), seed, 0, self._meta)[0]

    def probabilities(self, indices: Any) -> torch.Tensor:
        """(K,) float64 probability of drawing each slot in ``indices`` (K,) with replacement."""
        problems: list[str] = []
        idx = _as_tensor(indices, "indices", problems)
        if idx is not None:
            if idx.is_floating_point() or idx.dtype == torch.bool or idx.is_complex():
                problems.append(f"indices must be integers, got {idx.dtype}")
            elif idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.capacity):
                problems.append(f"indices must lie in [0, {self.capacity}), got range "
                                f"[{int(idx.min())}, {int(idx.max())}]")
        total = self._total
        if not total > 0.0:
            problems.append("all weights are zero: probabilities are undefined")
        _raise("WeightedSampler.probabilities", problems)
        return self._weights[idx.to(device=self.device, dtype=torch.int64)] / total

    def weights(self) -> torch.Tensor:
        """(len(self),) float64 copy of the filled slots' weights, in slot order."""
        return self._weights[: self._size].clone()

    def backend(self) -> str:
        """The backend that serves this sampler now: "extension" (C++), "cuda" or "torch" (reference)."""
        return backend_for(self.device)

    # ---- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain dict (CPU tensors and ints) that ``load_state_dict`` restores exactly."""
        return {
            "version": 1,
            "capacity": self.capacity,
            "size": self._size,
            "next": self._next,
            "weights": self._weights[: self._size].detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` (same capacity); the tree is rebuilt from the weights."""
        problems = []
        missing = {"version", "capacity", "size", "next", "weights"} - set(state)
        if missing:
            problems.append(f"missing keys {sorted(missing)}")
            _raise("WeightedSampler.load_state_dict", problems)
        if state["version"] != 1:
            problems.append(f"unknown state version {state['version']!r}")
        if state["capacity"] != self.capacity:
            problems.append(f"capacity {state['capacity']} != this sampler's {self.capacity}")
        size, nxt = int(state["size"]), int(state["next"])
        if not 0 <= size <= self.capacity:
            problems.append(f"size {size} outside [0, {self.capacity}]")
        if not 0 <= nxt < self.capacity or (size < self.capacity and nxt != size % self.capacity):
            problems.append(f"next {nxt} inconsistent with size {size} and capacity {self.capacity}")
        w = state["weights"]
        if not isinstance(w, torch.Tensor) or w.dim() != 1 or w.numel() != size:
            problems.append(f"weights must be a 1-D tensor of {size} entries")
        else:
            problems += _weight_problems(w, "weights")
        _raise("WeightedSampler.load_state_dict", problems)
        weights = _zeros(self.capacity, self.device)
        weights[:size] = w.to(device=self.device, dtype=torch.float64)
        tree = _zeros(self._tree.numel(), self.device)
        try:
            build_impl(weights, self._offsets, tree, self._meta)
        except ValueError as err:  # an overflowing total: nothing was changed
            raise ValueError(str(err).replace("weighted_sample", "WeightedSampler.load_state_dict", 1)) from None
        self._weights, self._tree = weights, tree
        self._size, self._next = size, nxt
        self._total = float(tree[segment_levels(self.capacity)[1][-1]])  # the root: T of the top level
        self._positive = int((weights > 0).sum())

