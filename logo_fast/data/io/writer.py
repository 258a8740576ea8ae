"""``HDF5Writer``: stream a dataset to a native HDF5 file block by block, checked, atomic on close."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...files import metadata_to_json, sweep_stale_temps, temp_name
from ..schema import DatasetSpec
from ..validate import ChunkChecker, bounds_problems, expected_shapes, format_problems, shape_problems
from .hdf5 import compression_kwargs, create_rows_dataset, write_header
from .layout import FINAL_ARRAYS, HDF5_SUFFIXES, STEP_ARRAYS

_FLOAT_NAMES = ("obs", "state", "rewards", "agent_rewards", "final_obs", "final_state")
_FLAG_NAMES = ("terminals", "truncations", "avail_actions", "final_avail")


class HDF5Writer:
    """Stream a dataset to a native HDF5 file, episode by episode or block by block; atomic on close.

    Usage (the collector's path to disk; nothing is held in memory beyond ``flush_steps`` rows)::

        with HDF5Writer("datasets/spread_expert.h5", spec, metadata={"quality": "expert"}) as w:
            for ep in episodes:
                w.append_episode(
                    obs=ep.obs,                # (L, N, obs_dim)   zero-padded
                    state=ep.state,            # (L, state_dim)
                    actions=ep.actions,        # (L, N) int or (L, N, act_dim) float
                    rewards=ep.rewards,        # (L,)
                    terminals=ep.terminals,    # (L,) bool: only the last step may be set
                    truncations=ep.truncs,     # (L,) bool: only the last step may be set
                    avail_actions=ep.avail,    # (L, N, n_actions) bool, discrete only (optional)
                    final_obs=ep.next_obs,     # (N, obs_dim) obs after the last step (optional)
                    final_state=ep.next_state, # (state_dim,)                          (optional)
                    final_avail=ep.next_avail, # (N, n_actions)                        (optional)
                )
        # the file appears at the path only here, complete and checked

    ``append(block)`` takes the same names with a leading row axis for a block of steps that
    may hold several episodes and may stop mid-episode (the next block continues it); its
    ``final_*`` arrays have one row per episode that ENDS inside the block. Optional fields
    (``avail_actions``, ``agent_rewards``, ``final_*``) are fixed by the first append that
    could carry them: give them always or never.

    Each append is checked before it is written (shapes against ``spec``, NaN/Inf, padding,
    action ranges and availability, terminal-and-truncated steps) and a bad one raises one
    ValueError listing its problems, leaving the file as it was. Arrays are cast to the
    schema's dtypes: float fields to float32, discrete actions to int64, continuous actions to
    float32; flags must be bool (or integers 0/1). ``close()`` checks the whole-file structure
    (at least one step, the last step ends an episode, one ``final_*`` row per episode),
    writes spec and metadata (``writer.metadata`` may be edited until then) and moves the
    temp file onto ``path``. An exception inside the ``with`` block, or ``abort()``, removes
    the temp file and leaves any existing file at ``path`` untouched.

    path:           destination (.h5/.hdf5/.hdf)
    spec:           the task's DatasetSpec
    metadata:       JSON-serialisable dict stored with the data
    action_low/high: (N, act_dim) bounds, required for continuous tasks
    compression:    "gzip" (default), "lzf" or None
    flush_steps:    rows buffered in memory before a write (default: about 32 MiB of obs)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spec: DatasetSpec,
        *,
        metadata: Mapping[str, Any] | None = None,
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        compression: str | None = "gzip",
        flush_steps: int | None = None,
    ):
        self.path = Path(path)
        if self.path.suffix.lower() not in HDF5_SUFFIXES:
            raise ValueError(f"HDF5Writer: {self.path} must end in one of {HDF5_SUFFIXES}")
        self.spec = spec
        self.metadata: dict[str, Any] = dict(metadata or {})
        metadata_to_json(self.metadata)
        self.compression = compression
        compression_kwargs(compression)
        self._want = expected_shapes(spec)
        problems = []
        bounds = {}
        for name, value in (("action_low", action_low), ("action_high", action_high)):
            if spec.discrete:
                if value is not None:
                    problems.append(f"{name}: given for a discrete task (continuous only)")
                continue
            if value is None:
                problems.append(f"{name}: missing (continuous tasks need action bounds)")
                continue
            value = np.asarray(value, dtype=np.float32)
            problems += shape_problems(name, value.shape, self._want[name], None)
            bounds[name] = value
        if not problems and bounds:
            problems += bounds_problems(spec, bounds["action_low"], bounds["action_high"])
        if problems:
            raise ValueError(format_problems(problems, "HDF5Writer arguments"))
        self._bounds = bounds
        row_bytes = 4 * spec.n_agents * spec.obs_dim
        self.flush_steps = int(flush_steps or max(1024, (32 << 20) // row_bytes))
        self._closed = True  # until the temp file exists: __del__/abort have nothing to remove
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            why = err.strerror or err
            raise OSError(err.errno, f"HDF5Writer: cannot create the directory for {self.path} ({why})") from err
        sweep_stale_temps(self.path)  # leftovers of a killed earlier write to this path
        self._tmp = temp_name(self.path, "tmp", self.path.suffix)
        try:
            self._h5 = h5py.File(self._tmp, "w")
        except OSError as err:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise OSError(err.errno, f"HDF5Writer: cannot write {self.path} ({err.strerror or err})") from err
        self._step_names: tuple[str, ...] | None = None
        self._final_names: tuple[str, ...] | None = None
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_steps = 0
        self._n_steps = 0
        self._n_episodes = 0
        self._last_ended = True
        self._closed = False

    # -- sizes --
    @property
    def n_steps(self) -> int:
        """Steps accepted so far (written or buffered)."""
        return self._n_steps

    @property
    def n_episodes(self) -> int:
        """Episodes completed so far."""
        return self._n_episodes

    # -- appends --
    def append_episode(self, **fields: np.ndarray) -> None:
        """Append one whole episode: step fields (L, ...), ``final_*`` without the episode axis."""
        problems = []
        for name in ("terminals", "truncations"):
            if name not in fields:
                problems.append(f"{name}: missing (required)")
        if not problems:
            ends = np.asarray(fields["terminals"]).astype(bool) | np.asarray(fields["truncations"]).astype(bool)
            if ends.ndim != 1 or len(ends) == 0:
                problems.append(f"terminals: expected shape (L,) with L >= 1, got {ends.shape}")
            elif not ends[-1] or ends[:-1].any():
                problems.append(
                    "terminals/truncations: an episode must end exactly at its last step "
                    f"(ends at steps {np.flatnonzero(ends).tolist()} of {len(ends)})"
                )
        if problems:
            raise ValueError(format_problems(problems, "episode"))
        block = dict(fields)
        for name in FINAL_ARRAYS:
            if block.get(name) is not None and name in self._want:
                a = np.asarray(block[name])
                one_row = len(self._want[name]) - 1
                block[name] = a[None] if a.ndim == one_row else a
        self.append(block)

    def append(self, block: Mapping[str, np.ndarray]) -> None:
        """Append a block of steps (L, ...) with ``final_*`` rows for the episodes ending in it."""
        if self._closed:
            raise ValueError("HDF5Writer: append after close/abort")
        block = {k: v for k, v in block.items() if v is not None}
        problems: list[str] = []
        unknown = set(block) - set(STEP_ARRAYS) - set(FINAL_ARRAYS)
        if unknown:
            problems.append(f"{sorted(unknown)}: unknown field names (expected {STEP_ARRAYS + FINAL_ARRAYS})")
        arrays: dict[str, np.ndarray] = {}
        for name, value in block.items():
            if name in unknown:
                continue
            if name not in self._want:
                problems.append(f"{name}: not a field of a {self.spec.action_type} task")
                continue
            cast, issue = self._cast(name, np.asarray(value))
            if issue:
                problems.append(issue)
            else:
                arrays[name] = cast
        step_arrays = {k: v for k, v in arrays.items() if k in STEP_ARRAYS}
        final_arrays = {k: v for k, v in arrays.items() if k in FINAL_ARRAYS}
        for name in ("obs", "state", "actions", "rewards", "terminals", "truncations"):
            if name not in block:
                problems.append(f"{name}: missing (required)")
        L = int(np.shape(block["rewards"])[0]) if "rewards" in block and np.ndim(block["rewards"]) >= 1 else None
        if L == 0:
            problems.append("rewards: empty block (0 steps)")
        step_names = tuple(sorted(step_arrays))
        if self._step_names is not None and not problems and step_names != self._step_names:
            problems.append(f"fields {step_names} differ from the first append's {self._step_names}")
        for name, a in step_arrays.items():
            problems += shape_problems(name, a.shape, self._want[name], L)
        k = 0
        final_names = tuple(sorted(final_arrays))
        if not problems:
            ends = step_arrays["terminals"] | step_arrays["truncations"]
            k = int(ends.sum())
            if k > 0 and self._final_names is not None and final_names != self._final_names:
                problems.append(f"final fields {final_names} differ from the first episode end's {self._final_names}")
            for name, a in final_arrays.items():
                problems += shape_problems(name, a.shape, self._want[name], k)
            if "final_obs" in final_arrays and "final_state" not in final_arrays:
                problems.append("final_obs/final_state: give both or neither")
            if "final_avail" in final_arrays and "final_obs" not in final_arrays:
                problems.append("final_avail: given without final_obs/final_state")
        if not problems:
            checker = ChunkChecker(self.spec, self._bounds.get("action_low"), self._bounds.get("action_high"))
            checker.check_steps(step_arrays, self._n_steps)
            checker.check_finals(final_arrays, self._n_episodes)
            problems += checker.messages()
        if problems:
            raise ValueError(format_problems(problems, f"block at step {self._n_steps}"))
        if k > 0 and self._final_names is None:
            self._final_names = final_names
        if self._step_names is None:
            self._step_names = step_names
            for name, a in step_arrays.items():
                create_rows_dataset(self._h5, name, 0, a.shape[1:], a.dtype, self.compression)
        if self._final_names and not any(n in self._h5 for n in self._final_names):
            for name in self._final_names:
                dtype = np.bool_ if name == "final_avail" else np.float32
                create_rows_dataset(self._h5, name, 0, self._final_row_shape(name), dtype, self.compression)
        for name, a in arrays.items():
            if len(a):
                self._pending.setdefault(name, []).append(a)
        self._n_steps += L
        self._n_episodes += k
        self._last_ended = bool(ends[-1])
        self._pending_steps += L
        if self._pending_steps >= self.flush_steps:
            self._flush()

    def _final_row_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self._want[name][1:])

    def _cast(self, name: str, a: np.ndarray) -> tuple[np.ndarray, str | None]:
        if name in _FLAG_NAMES:
            if a.dtype == np.bool_:
                return a, None
            if a.dtype.kind in "iu" and (a.size == 0 or (a.min() >= 0 and a.max() <= 1)):
                return a.astype(bool), None
            return a, f"{name}: dtype {a.dtype} is not bool (integers 0/1 are accepted)"
        if name == "actions" and self.spec.discrete:
            if a.dtype.kind not in "iu":
                return a, f"actions: dtype {a.dtype} is not an integer type (discrete task)"
            return a.astype(np.int64, copy=False), None
        if a.dtype.kind not in "fiu":
            return a, f"{name}: dtype {a.dtype} is not numeric"
        return a.astype(np.float32, copy=False), None

    def _flush(self) -> None:
        for name, parts in self._pending.items():
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            dset = self._h5[name]
            start = dset.shape[0]
            dset.resize(start + len(data), axis=0)
            dset[start:] = data
        self._pending = {}
        self._pending_steps = 0

    # -- finish --
    def close(self) -> Path:
        """Flush, check the whole-file structure, write spec/metadata, move onto ``path``; returns it."""
        if self._closed:
            return self.path
        problems = []
        if self._n_steps == 0:
            problems.append("rewards: dataset is empty (no steps appended)")
        elif not self._last_ended:
            problems.append("terminals/truncations: the last episode has no end (append its final step)")
        try:
            metadata_json = metadata_to_json(self.metadata)
        except ValueError as err:
            problems.append(str(err))
        if problems:
            self.abort()
            raise ValueError(format_problems(problems, f"dataset for {self.path}"))
        try:
            self._flush()
            write_header(self._h5, self.spec, {})
            self._h5.attrs["metadata"] = metadata_json
            for name, value in self._bounds.items():
                self._h5.create_dataset(name, data=value)
            self._h5.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; an existing file at ``path`` is untouched."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._h5.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> HDF5Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() leaves no stray temp file.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()
