"""Lazily loaded (h5py-backed) datasets: reading them with errors that name the file and field.

``load(path, lazy=True)`` (native HDF5 only) gives a dataset whose every (T, ...) and (E, ...)
array is an ``h5py.Dataset`` (the file stays open while they are referenced;
``ds.obs.file.close()`` closes it). What works lazily: ``len(ds)``, ``.shape``, ``.dtype``,
slicing with ranges (``ds.obs[a:b]``) and with sorted, duplicate-free integer index arrays,
``validate_dataset`` (chunked), ``episode_bounds``/``episode_returns``/``n_episodes`` (they
read only the flags or rewards), and ``run_info``. What does not: arbitrary fancy indexing
(unsorted or repeated indices, which ``next_fields`` and ``select_episodes`` use) and in-place
edits; call ``materialize(ds)`` first for those. ``action_low``/``action_high`` are always
loaded into memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..schema import OfflineDataset
from ..validate import read_rows


def read_all(name: str, a: Any) -> np.ndarray:
    """The whole of field ``name`` in memory; a damaged h5py dataset gives a ValueError naming file and field."""
    if not hasattr(a, "id"):
        return np.asarray(a)
    return read_rows(name, a, slice(None))


def materialize(ds: OfflineDataset) -> OfflineDataset:
    """An in-memory copy of ``ds`` (reads every h5py-backed array into numpy)."""
    fields = {name: read_all(name, a) for name, a in ds.arrays().items()}
    return OfflineDataset(spec=ds.spec, metadata=dict(ds.metadata), **fields)
