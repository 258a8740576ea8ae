"""Episode shards: which contiguous run of episodes each rank reads, and reading only that run.

A shard is a contiguous range of whole episodes, so it is one contiguous range of steps: an
h5py-backed (``load(path, lazy=True)``) or vault dataset is read with one slice per field and no
rank ever holds the whole dataset. Ranges are balanced by the number of *training* steps they
hold (held-out episodes, which cost no training compute, ride along where they fall), and each
range holds at least one training episode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data.schema import FINAL_FIELDS, OPTIONAL_STEP_FIELDS, STEP_FIELDS, OfflineDataset

__all__ = ["read_episodes", "shard_ranges"]


def shard_ranges(lengths: np.ndarray, world_size: int, train: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Contiguous episode ranges ``[(e0, e1), ...]`` (one per rank) covering every episode in order.

    lengths: (E,) steps per episode. train: (E,) bool, the episodes that are trained on (default all);
    ranges are balanced by training steps and each gets >= 1 training episode. Raises ValueError
    when there are fewer training episodes than ranks.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    E = lengths.shape[0]
    train = np.ones(E, dtype=bool) if train is None else np.asarray(train, dtype=bool)
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"shard_ranges: world_size must be an int >= 1, got {world_size!r}")
    ids = np.flatnonzero(train)
    K = ids.shape[0]
    if K < world_size:
        raise ValueError(f"shard_ranges: {K} training episodes cannot be split over {world_size} ranks "
                         "(each rank needs at least one whole episode); use fewer processes or more data")
    steps = lengths[ids]
    before = np.cumsum(steps) - steps  # training steps before each training episode
    total = int(steps.sum())
    first = [0]
    for r in range(1, world_size):
        g = int(np.searchsorted(before, r * total / world_size, side="left"))
        # at least one training episode for every rank before and after this boundary
        g = min(max(g, first[-1] + 1), K - (world_size - r))
        first.append(g)
    lo = [0] + [int(ids[g]) for g in first[1:]] + [E]
    return [(lo[r], lo[r + 1]) for r in range(world_size)]


def read_episodes(ds: OfflineDataset, e0: int, e1: int) -> OfflineDataset:
    """Episodes ``[e0, e1)`` of ``ds`` as an in-memory dataset, read with one contiguous slice per field.

    Works on numpy-backed and h5py-backed datasets alike (slices are what h5py reads cheaply);
    only the episode flags of the whole dataset are read to find the step range.
    """
    starts, ends = ds.episode_bounds()
    E = starts.shape[0]
    if not 0 <= e0 <= e1 <= E:
        raise ValueError(f"read_episodes: need 0 <= e0 <= e1 <= {E}, got [{e0}, {e1})")
    s0 = int(starts[e0]) if e0 < E else len(ds)
    s1 = int(ends[e1 - 1]) if e1 > e0 else s0

    fields = {}
    for f in dataclasses.fields(ds):
        a = getattr(ds, f.name)
        if f.name in ("spec", "metadata") or a is None:
            continue
        if f.name in STEP_FIELDS or f.name in OPTIONAL_STEP_FIELDS:
            fields[f.name] = np.asarray(a[s0:s1])
        elif f.name in FINAL_FIELDS:
            fields[f.name] = np.asarray(a[e0:e1])
        else:  # per-task constants (action bounds): small, kept whole
            fields[f.name] = np.asarray(a)
    return OfflineDataset(spec=ds.spec, metadata=dict(ds.metadata), **fields)
