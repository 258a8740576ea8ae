"""A vectorised NumPy sum tree: the classic prioritized-replay structure, used as a comparator.

The compiled comparators are cpprb's C++ segment tree (the `bench` extra) and, where it loads,
TorchRL's SumSegmentTreeFp64 (torchrl 0.14.1's extension does not load against torch 2.13:
undefined symbol at import). This one has the same O(log N) update and O(log N) per-draw descent,
with NumPy doing each tree level for all draws at once.
"""

from __future__ import annotations

import numpy as np


class NumpySumTree:
    """Binary sum tree over ``capacity`` float64 leaves (padded to a power of two).

    tree[1] is the total, tree[i] = tree[2i] + tree[2i + 1], leaves at tree[size:2 * size].
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.size = 1 << max(0, (capacity - 1).bit_length())
        self.depth = self.size.bit_length() - 1
        self.tree = np.zeros(2 * self.size, dtype=np.float64)

    def build(self, values: np.ndarray) -> None:
        """Set every leaf and rebuild all internal nodes (O(N))."""
        self.tree[self.size : self.size + values.size] = values
        self.tree[self.size + values.size :] = 0.0
        level = self.size
        while level > 1:
            self.tree[level // 2 : level] = self.tree[level : 2 * level : 2] + self.tree[level + 1 : 2 * level : 2]
            level //= 2

    def update(self, index: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``index`` to ``values`` and refresh their ancestors (O(k log N))."""
        pos = np.asarray(index, dtype=np.int64) + self.size
        self.tree[pos] = values
        pos = np.unique(pos // 2)
        while pos.size and pos[0] >= 1:
            self.tree[pos] = self.tree[2 * pos] + self.tree[2 * pos + 1]
            if pos[0] == 1:
                break
            pos = np.unique(pos // 2)

    def total(self) -> float:
        return float(self.tree[1])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) leaf indices drawn proportionally to the leaves (with replacement)."""
        u = rng.random(n) * self.tree[1]
        pos = np.ones(n, dtype=np.int64)
        for _ in range(self.depth):
            left = self.tree[2 * pos]
            right = u >= left
            u = np.where(right, u - left, u)
            pos = 2 * pos + right
        return pos - self.size
