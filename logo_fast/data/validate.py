"""Dataset validation: every problem in an ``OfflineDataset``, found before any work starts.

``validate_dataset(ds)`` raises ONE ``ValueError`` whose message lists every problem found,
each line starting with the field it concerns (``obs: ...``, ``actions: ...``). Checks:

- structure: required fields present; every shape agrees with the spec and with ``T``
  (the number of steps), agent counts called out by name; ``T == 0`` is an error;
  ``final_*`` arrays have one row per episode; ``final_obs`` and ``final_state`` come together
- dtypes: float fields are floating, discrete actions are integers, flags and masks are bool
- values: no NaN/Inf anywhere; padded observation entries (outside ``obs_mask``) and padded
  continuous action entries (outside ``act_mask``) are exactly 0; discrete actions lie in
  ``[0, n_actions)`` and are available per ``avail_actions``; no agent has an all-False
  availability row; continuous actions lie in ``[action_low, action_high]`` (tolerance
  ``BOUND_ATOL + BOUND_RTOL * |bound|``), and bounds are present, finite and ordered
- episodes: the last step ends an episode (terminal or truncated); no step is both
  terminal and truncated. Convention: such a step is an error, not silently fixed — terminal
  takes precedence, so the writer should clear ``truncations`` where ``terminals`` is set.

Value checks walk the steps in chunks (``chunk_steps`` rows at a time) so that datasets
backed by h5py (``load(path, lazy=True)``) are checked without loading them whole and numpy
datasets without large temporaries. ``ChunkChecker`` is the same per-chunk logic, reused by
``HDF5Writer`` to check each appended block as it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .schema import DatasetSpec, OfflineDataset

BOUND_ATOL = 1e-5
BOUND_RTOL = 1e-5
# Rows per value-check chunk are chosen so a chunk of the widest field is about this large.
_CHUNK_BYTES = 32 << 20

FLOAT_FIELDS = ("obs", "state", "rewards", "agent_rewards", "final_obs", "final_state", "action_low", "action_high")
BOOL_FIELDS = ("terminals", "truncations", "avail_actions", "final_avail")


def expected_shapes(spec: DatasetSpec) -> dict[str, tuple[str | int, ...]]:
    """Trailing shape of each field for ``spec``; the leading entry names the row count ("T", "E" or "")."""
    N = spec.n_agents
    act = (N,) if spec.discrete else (N, spec.act_dim)
    shapes: dict[str, tuple[str | int, ...]] = {
        "obs": ("T", N, spec.obs_dim),
        "state": ("T", spec.state_dim),
        "actions": ("T", *act),
        "rewards": ("T",),
        "terminals": ("T",),
        "truncations": ("T",),
        "agent_rewards": ("T", N),
        "final_obs": ("E", N, spec.obs_dim),
        "final_state": ("E", spec.state_dim),
    }
    if spec.discrete:
        shapes["avail_actions"] = ("T", N, spec.n_actions)
        shapes["final_avail"] = ("E", N, spec.n_actions)
    else:
        shapes["action_low"] = (N, spec.act_dim)
        shapes["action_high"] = (N, spec.act_dim)
    return shapes


def _dtype_problem(name: str, dtype: np.dtype, spec: DatasetSpec) -> str | None:
    if name in FLOAT_FIELDS and dtype.kind != "f":
        return f"{name}: dtype {dtype} is not floating"
    if name in BOOL_FIELDS and dtype != np.bool_:
        return f"{name}: dtype {dtype} is not bool"
    if name == "actions":
        if spec.discrete and dtype.kind not in "iu":
            return f"actions: dtype {dtype} is not an integer type (discrete task)"
        if not spec.discrete and dtype.kind != "f":
            return f"actions: dtype {dtype} is not floating (continuous task)"
    return None


def shape_problems(name: str, shape: tuple[int, ...], want: tuple[str | int, ...], rows: int | None) -> list[str]:
    """Problems with ``shape`` against ``want`` (leading "T"/"E" checked against ``rows`` when known)."""
    out = []
    lead, trailing = (want[0], want[1:]) if want and isinstance(want[0], str) else (None, want)
    expected_ndim = len(trailing) + (lead is not None)
    if len(shape) != expected_ndim:
        pretty = ", ".join(str(w) for w in want)
        return [f"{name}: expected {expected_ndim} dims ({pretty}), got shape {tuple(shape)}"]
    body = shape[1:] if lead is not None else shape
    if lead is not None and rows is not None and shape[0] != rows:
        what = "steps" if lead == "T" else "episodes"
        out.append(f"{name}: has {shape[0]} rows but the dataset has {rows} {what}")
    labels = _AXIS_NAMES.get(name, ())
    for axis, (got, exp) in enumerate(zip(body, trailing, strict=True)):
        if got == exp:
            continue
        label = labels[axis] if axis < len(labels) else f"axis {axis}"
        if label == "n_agents":
            out.append(f"{name}: agent count {got} != spec.n_agents {exp}")
        else:
            out.append(f"{name}: size {got} along the {label} axis, spec expects {exp} (shape {tuple(shape)})")
    return out


# Names of the axes after the row axis, for messages.
_AXIS_NAMES = {
    "obs": ("n_agents", "obs_dim"),
    "final_obs": ("n_agents", "obs_dim"),
    "state": ("state_dim",),
    "final_state": ("state_dim",),
    "actions": ("n_agents", "act_dim"),
    "agent_rewards": ("n_agents",),
    "avail_actions": ("n_agents", "n_actions"),
    "final_avail": ("n_agents", "n_actions"),
    "action_low": ("n_agents", "act_dim"),
    "action_high": ("n_agents", "act_dim"),
}


class _Tally:
    """Counts value problems over chunks and remembers the first offending row of each kind."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}

    def add(self, field: str, kind: str, mask: np.ndarray, offset: int) -> None:
        """``mask``: (rows, ...) bool, True where the problem occurs; rows start at ``offset``."""
        n = int(np.count_nonzero(mask))
        if n == 0:
            return
        rows = mask.reshape(mask.shape[0], -1).any(axis=1) if mask.ndim > 1 else mask
        first = offset + int(np.argmax(rows))
        entry = self.counts.setdefault((field, kind), [0, first])
        entry[0] += n
        entry[1] = min(entry[1], first)

    def messages(self, row_name: dict[str, str]) -> list[str]:
        return [
            f"{field}: {n} {kind} (first at {row_name.get(field, 'step')} {first})"
            for (field, kind), (n, first) in self.counts.items()
        ]


class ChunkChecker:
    """Value checks on one block of rows; call ``check_steps``/``check_finals`` per block, then ``messages()``.

    The checks need only the block itself (plus the bounds), which is what lets validation
    stream over h5py datasets and lets ``HDF5Writer`` check each append.
    """

    def __init__(self, spec: DatasetSpec, action_low: np.ndarray | None = None, action_high: np.ndarray | None = None):
        self.spec = spec
        self.tally = _Tally()
        self.pad_obs = ~spec.obs_mask()  # (N, obs_dim): True on padding
        am = spec.act_mask()
        self.pad_act = None if am is None or am.all() else ~am
        self.low = None if action_low is None else np.asarray(action_low, dtype=np.float64)
        self.high = None if action_high is None else np.asarray(action_high, dtype=np.float64)

    def _finite(self, name: str, a: np.ndarray, offset: int) -> None:
        if a.dtype.kind == "f":
            self.tally.add(name, "non-finite values (NaN/Inf)", ~np.isfinite(a), offset)

    def _obs_padding(self, name: str, a: np.ndarray, offset: int) -> None:
        if self.pad_obs.any() and a.ndim == 3 and a.shape[1:] == self.pad_obs.shape:
            # NaN padding is reported by the finiteness check; here only non-zero finite values count.
            bad = (a != 0) & self.pad_obs[None] & np.isfinite(a)
            self.tally.add(name, "non-zero values in padding outside obs_mask (padding must be 0)", bad, offset)

    def check_steps(self, block: Mapping[str, np.ndarray], offset: int) -> None:
        """``block``: per-step fields (rows, ...) already shape-checked; rows start at step ``offset``."""
        spec = self.spec
        for name, a in block.items():
            self._finite(name, a, offset)
        if "obs" in block:
            self._obs_padding("obs", block["obs"], offset)
        if "terminals" in block and "truncations" in block:
            both = np.asarray(block["terminals"], bool) & np.asarray(block["truncations"], bool)
            self.tally.add(
                "truncations",
                "steps both terminal and truncated (terminal takes precedence: clear truncation)",
                both,
                offset,
            )
        avail = block.get("avail_actions")
        if avail is not None:
            self.tally.add("avail_actions", "agent rows with no available action", ~avail.any(axis=-1), offset)
        act = block.get("actions")
        if act is None:
            return
        if spec.discrete and act.dtype.kind in "iu":
            out_of_range = (act < 0) | (act >= spec.n_actions)
            self.tally.add("actions", f"discrete actions outside [0, {spec.n_actions})", out_of_range, offset)
            if avail is not None:
                idx = np.clip(act, 0, spec.n_actions - 1)
                chosen = np.take_along_axis(avail, idx[..., None].astype(np.intp), axis=-1)[..., 0]
                self.tally.add("actions", "actions not available per avail_actions", ~chosen & ~out_of_range, offset)
        elif not spec.discrete and act.dtype.kind == "f":
            if self.pad_act is not None:
                bad = (act != 0) & self.pad_act[None] & np.isfinite(act)
                self.tally.add(
                    "actions", "non-zero values in padding outside act_mask (padding must be 0)", bad, offset
                )
            if self.low is not None and self.high is not None and self.low.shape == act.shape[1:] == self.high.shape:
                real = np.ones(act.shape[1:], bool) if self.pad_act is None else ~self.pad_act
                tol_lo = BOUND_ATOL + BOUND_RTOL * np.abs(self.low)
                tol_hi = BOUND_ATOL + BOUND_RTOL * np.abs(self.high)
                outside = ((act < self.low - tol_lo) | (act > self.high + tol_hi)) & real[None]
                self.tally.add("actions", "continuous actions outside [action_low, action_high]", outside, offset)

    def check_finals(self, block: Mapping[str, np.ndarray], offset: int) -> None:
        """``block``: final_* fields (rows, ...) for episodes starting at ``offset``."""
        for name, a in block.items():
            self._finite(name, a, offset)
        if "final_obs" in block:
            self._obs_padding("final_obs", block["final_obs"], offset)
        if "final_avail" in block:
            self.tally.add("final_avail", "agent rows with no available action", ~block["final_avail"].any(-1), offset)

    def messages(self) -> list[str]:
        return self.tally.messages({"final_obs": "episode", "final_state": "episode", "final_avail": "episode"})


def _chunk_rows(arrays: Mapping[str, Any]) -> int:
    widest = max((int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize for a in arrays.values()), default=1)
    return max(1, _CHUNK_BYTES // max(widest, 1))


def structural_problems(ds: OfflineDataset) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Presence, dtype, shape and episode-structure problems.

    Returns ``(problems, step_fields_ok, final_fields_ok)``: the fields whose shape and dtype
    are fine and can go on to the value checks.
    """
    problems: list[str] = []
    spec = ds.spec
    if not isinstance(spec, DatasetSpec):
        return [f"spec: expected a DatasetSpec, got {type(spec).__name__}"], {}, {}
    want = expected_shapes(spec)
    arrays = {name: getattr(ds, name) for name in want if getattr(ds, name, None) is not None}

    for name in ("obs", "state", "actions", "rewards", "terminals", "truncations"):
        if name not in arrays:
            problems.append(f"{name}: missing (required)")
    if not spec.discrete:
        for name in ("action_low", "action_high"):
            if name not in arrays:
                problems.append(f"{name}: missing (continuous tasks need action bounds)")
        for name in ("avail_actions", "final_avail"):
            if getattr(ds, name) is not None:
                problems.append(f"{name}: given for a continuous task (discrete only)")
    else:
        for name in ("action_low", "action_high"):
            if getattr(ds, name) is not None:
                problems.append(f"{name}: given for a discrete task (continuous only)")
    if (ds.final_obs is None) != (ds.final_state is None):
        problems.append("final_obs/final_state: give both or neither (next-step derivation needs both)")
    if ds.final_avail is not None and ds.final_obs is None:
        problems.append("final_avail: given without final_obs/final_state")
    if not isinstance(ds.metadata, dict):
        problems.append(f"metadata: expected a dict, got {type(ds.metadata).__name__}")

    for name, a in list(arrays.items()):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            problems.append(f"{name}: expected an array, got {type(a).__name__}")
            del arrays[name]

    # T: from rewards if usable, else the most common leading size among step fields.
    step_names = [n for n in arrays if want[n] and want[n][0] == "T"]
    leads = [arrays[n].shape[0] for n in step_names if len(arrays[n].shape) >= 1]
    T = None
    if "rewards" in arrays and len(arrays["rewards"].shape) == 1:
        T = int(arrays["rewards"].shape[0])
    elif leads:
        T = max(set(leads), key=leads.count)
    if T == 0:
        problems.append("rewards: dataset is empty (T == 0 steps)")

    E = None
    ends = None
    flags_ok = all(
        n in arrays and arrays[n].shape == (T,) and arrays[n].dtype == np.bool_ for n in ("terminals", "truncations")
    )
    if flags_ok and T:
        ends = read_rows("terminals", arrays["terminals"], slice(None)).astype(bool) | read_rows(
            "truncations", arrays["truncations"], slice(None)
        ).astype(bool)
        # An unterminated last episode still counts, so final_* row counts are judged fairly.
        E = int(ends.sum()) + int(not ends[-1])
        if not ends[-1]:
            problems.append(
                f"terminals/truncations: the last episode has no end (step {T - 1} is neither terminal nor truncated)"
            )

    ok_steps: dict[str, Any] = {}
    ok_finals: dict[str, Any] = {}
    for name, a in arrays.items():
        shape_issues = shape_problems(name, tuple(a.shape), want[name], T if want[name][0] == "T" else E)
        dtype_issue = _dtype_problem(name, np.dtype(a.dtype), spec)
        problems.extend(shape_issues)
        if dtype_issue:
            problems.append(dtype_issue)
        if shape_issues or dtype_issue or T == 0:
            continue
        lead = want[name][0]
        if lead == "T":
            ok_steps[name] = a
        elif lead == "E":
            ok_finals[name] = a
    if not flags_ok:
        # Without usable flags the final_* row count cannot be checked; the shape messages say why.
        ok_finals = {}
    return problems, ok_steps, ok_finals


def bounds_problems(spec: DatasetSpec, low: Any, high: Any) -> list[str]:
    """Problems with continuous action bounds (finite, low <= high on real entries)."""
    if spec.discrete or low is None or high is None:
        return []
    low, high = np.asarray(low), np.asarray(high)
    want = (spec.n_agents, spec.act_dim)
    if low.shape != want or high.shape != want or low.dtype.kind != "f" or high.dtype.kind != "f":
        return []  # reported by the shape/dtype checks
    out = []
    if not np.isfinite(low).all():
        out.append(f"action_low: {int((~np.isfinite(low)).sum())} non-finite values (NaN/Inf)")
    if not np.isfinite(high).all():
        out.append(f"action_high: {int((~np.isfinite(high)).sum())} non-finite values (NaN/Inf)")
    real = spec.act_mask()
    if ((low > high) & real).any():
        out.append(f"action_low: {int(((low > high) & real).sum())} entries greater than action_high")
    return out


def dataset_problems(ds: OfflineDataset, chunk_steps: int | None = None) -> list[str]:
    """Every problem found in ``ds`` as a list of ``"field: message"`` strings (empty when valid)."""
    problems, steps, finals = structural_problems(ds)
    if not isinstance(ds.spec, DatasetSpec):
        return problems
    spec = ds.spec
    problems.extend(bounds_problems(spec, ds.action_low, ds.action_high))
    low_high_ok = not any(p.startswith(("action_low", "action_high")) for p in problems)
    checker = ChunkChecker(
        spec,
        ds.action_low if low_high_ok else None,
        ds.action_high if low_high_ok else None,
    )
    for group, check in ((steps, checker.check_steps), (finals, checker.check_finals)):
        if not group:
            continue
        rows = next(iter(group.values())).shape[0]
        step = chunk_steps or _chunk_rows(group)
        for start in range(0, rows, step):
            block = {name: read_rows(name, a, slice(start, start + step)) for name, a in group.items()}
            check(block, start)
    problems.extend(checker.messages())
    return problems


def read_rows(name: str, a: Any, rows: slice) -> np.ndarray:
    """``a[rows]`` as numpy; a damaged h5py dataset (e.g. a corrupt compressed chunk) gives one ValueError
    naming the file and the field instead of h5py's bare OSError."""
    try:
        return np.asarray(a[()] if rows == slice(None) else a[rows])
    except OSError as err:
        where = getattr(getattr(a, "file", None), "filename", None) or "dataset"
        span = "" if rows == slice(None) else f" rows {rows.start}..{rows.stop}"
        raise ValueError(f"{where}: field {name!r}{span} cannot be read (damaged file? {err})") from err


def format_problems(problems: list[str], what: str = "dataset") -> str:
    return f"invalid {what} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n  - " + "\n  - ".join(
        problems
    )


def validate_dataset(ds: OfflineDataset, chunk_steps: int | None = None) -> None:
    """Raise one ``ValueError`` listing every problem in ``ds`` (see the module docstring); return None if valid.

    chunk_steps: rows per value-check chunk (default: about 32 MiB of the widest field).
    """
    problems = dataset_problems(ds, chunk_steps)
    if problems:
        raise ValueError(format_problems(problems))
