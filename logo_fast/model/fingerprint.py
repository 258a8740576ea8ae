"""A cheap fingerprint of the data a model was fitted on, so a checkpoint is never reused on other data."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..data.schema import OfflineDataset

# Rows hashed per field: evenly spaced, so the cost is bounded for 1e8-step lazy datasets while any
# regenerated, truncated or different dataset changes the hash (lengths and episode ends are hashed whole).
_SAMPLE_ROWS = 4096


def dataset_fingerprint(ds: OfflineDataset) -> str:
    """sha256 (hex, 16 chars) of the spec, the length, the episode ends and evenly spaced rows of every field."""
    h = hashlib.sha256()
    h.update(json.dumps(ds.spec.to_dict(), sort_keys=True, default=str).encode())
    T = len(ds)
    h.update(np.int64(T).tobytes())
    _, ends = ds.episode_bounds()
    h.update(np.ascontiguousarray(ends, dtype=np.int64).tobytes())
    rows = np.unique(np.linspace(0, max(T - 1, 0), min(T, _SAMPLE_ROWS)).astype(np.int64))
    for name in ("obs", "state", "actions", "rewards", "terminals", "truncations", "avail_actions"):
        a = getattr(ds, name)
        if a is None:
            continue
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(a[rows])).tobytes())
    return h.hexdigest()[:16]
