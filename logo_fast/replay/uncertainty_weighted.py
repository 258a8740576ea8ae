"""LOGO's mixed replay: uniform real transitions plus uncertainty-weighted synthetic ones.

Synthetic transitions from world-model rollouts carry their uncertainty ``u`` (the disagreement
of the auxiliary-state head and the deductive model). Their priority is
``P = clip(C - u, 0, C)`` and they are drawn with probability proportional to ``exp(P)``,
normalised over the synthetic buffer; the weight stored is ``exp(P - C)`` (the same distribution,
and it cannot overflow: it lies in [exp(-C), 1]). Real transitions are drawn uniformly. A batch
holds exactly ``round(batch_size * real_ratio)`` real rows (Python's round: halves go to the even
number) and the rest synthetic; while the synthetic buffer is empty every row is real.

The synthetic buffer is a FIFO ring of ``capacity`` rows: once full, new rows overwrite the
oldest. Sampling uses ``logo_fast.WeightedSampler`` (the C++/CUDA extension where available),
so adding K rows costs O(K), not a rebuild of the whole buffer.

Memory: the synthetic rows are stored in tensors that grow on demand (doubling, up to
``capacity``), so a large ``capacity`` costs only what is filled: a replay with
``capacity=1_000_000`` over MPE simple_spread data holding 15k synthetic rows stores 15k rows
(14 MB), not a million (927 MB, measured). The sampler's weight tables are allocated whole:
about 18 bytes per slot of ``capacity`` (18 MB per million).

Checks: every field is validated on the way in, real data at construction and synthetic
batches in ``add_synthetic``, before anything is stored: shapes, NaN/Inf, and for discrete
tasks actions in ``[0, n_actions)``, each chosen action available per ``avail_actions``, and no
agent row of ``avail_actions``/``next_avail`` without an available action.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..sampler import WeightedSampler

__all__ = ["UncertaintyWeightedReplay", "REQUIRED_FIELDS", "OPTIONAL_FIELDS"]

# Transition fields. Shapes for R real rows (N agents):
#   obs (R, N, obs_dim) float, state (R, state_dim) float, actions (R, N) int64 or
#   (R, N, act_dim) float, rewards (R,) float, terminals (R,) bool, next_obs like obs,
#   next_state like state; optional (discrete tasks) avail_actions and next_avail (R, N, n_actions) bool.
REQUIRED_FIELDS = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state")
OPTIONAL_FIELDS = ("avail_actions", "next_avail")
_MAX_C = 700.0  # exp(-C) must stay a positive float64
_MIN_ROWS = 1024  # first allocation of the synthetic storage (then doubled as it fills)


def _to_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.as_tensor(np.asarray(x))


def _real_from_dataset(ds: Any) -> dict[str, Any]:
    """Transitions of an OfflineDataset: every step that has a next step (never across episodes)."""
    nxt = ds.next_fields()
    idx = nxt["index"]
    real = {
        "obs": np.asarray(ds.obs)[idx],
        "state": np.asarray(ds.state)[idx],
        "actions": np.asarray(ds.actions)[idx],
        "rewards": np.asarray(ds.rewards)[idx],
        "terminals": np.asarray(ds.terminals)[idx],
        "next_obs": nxt["next_obs"],
        "next_state": nxt["next_state"],
    }
    if ds.avail_actions is not None and "next_avail" in nxt:
        real["avail_actions"] = np.asarray(ds.avail_actions)[idx]
        real["next_avail"] = nxt["next_avail"]
    return real


def _first(mask: torch.Tensor) -> int:
    return int(torch.nonzero(mask.reshape(mask.shape[0], -1).any(-1))[0, 0])


def _action_problems(where: str, fields: Mapping[str, torch.Tensor], n_actions: int | None) -> list[str]:
    """Discrete-action problems: out of range, chosen but unavailable, agent rows with nothing available.

    fields: actions (R, N) integer, optional avail_actions/next_avail (R, N, n_actions) bool.
    """
    problems = []
    actions = fields.get("actions")
    if actions is None or actions.is_floating_point() or actions.numel() == 0:
        return problems
    actions = actions.to(torch.int64)
    out = actions < 0
    if n_actions is not None:
        out = out | (actions >= n_actions)
        if bool(out.any()):
            problems.append(
                f"{where}actions: {int(out.sum())} entries outside [0, {n_actions}) (first at row {_first(out)}, "
                f"values such as {torch.unique(actions[out])[:5].tolist()})"
            )
    for k in ("avail_actions", "next_avail"):
        avail = fields.get(k)
        if avail is None or avail.numel() == 0:
            continue
        avail = avail.to(torch.bool)
        empty = ~avail.any(-1)
        if bool(empty.any()):
            problems.append(f"{where}{k}: {int(empty.sum())} agent rows with no available action "
                            f"(first at row {_first(empty)})")
        if k == "avail_actions" and actions.dim() == 2 and avail.shape[:2] == actions.shape:
            inside = ~out
            idx = actions.clamp(0, avail.shape[-1] - 1)
            chosen = torch.gather(avail, -1, idx.unsqueeze(-1)).squeeze(-1)
            bad = inside & ~chosen
            if bool(bad.any()):
                problems.append(f"{where}actions: {int(bad.sum())} chosen actions not available per avail_actions "
                                f"(first at row {_first(bad)})")
    return problems


def _batch_size(n: Any) -> int:
    """``n`` as an int (Python or numpy integers, 0-d integer tensors); ValueError otherwise or when < 0."""
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"sample: batch_size must be an int >= 0, got {n!r}") from None
    if n < 0:
        raise ValueError(f"sample: batch_size must be an int >= 0, got {n}")
    return n


def _memory_bytes(device: torch.device) -> int | None:
    """Physical memory of ``device`` (None when it cannot be told)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def _value_problems(name: str, t: torch.Tensor, like: torch.Tensor) -> list[str]:
    """Problems with the values of field ``name`` given the dtype of the real field ``like``."""
    if t.numel() == 0:
        return []
    if like.dtype == torch.bool:
        if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
            return [f"{name} must be boolean (0/1)"]
        return []
    if t.dtype == torch.bool or t.is_complex():
        return [f"{name} must be real numbers, got {t.dtype}"]
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        return [f"{name} has {int((~torch.isfinite(t)).sum())} NaN/Inf entries"]
    if not like.is_floating_point():
        if t.is_floating_point() and not bool((t == t.round()).all()):
            return [f"{name} must hold integers (discrete actions)"]
        if bool((t < 0).any()):
            return [f"{name} has negative entries"]
    return []


class UncertaintyWeightedReplay:
    """Real + synthetic transition replay with LOGO's uncertainty-weighted synthetic sampling.

    real:       an OfflineDataset (its transitions via ``next_fields()``) or a dict of tensors /
                arrays with REQUIRED_FIELDS (and optionally both OPTIONAL_FIELDS), all (R, ...).
    capacity:   synthetic rows kept (FIFO ring).
    C:          priority cap: P = clip(C - u, 0, C); weight of a synthetic row ∝ exp(P). 0 <= C <= 700.
    real_ratio: fraction of each batch drawn from the real data, in [0, 1].
    seed:       seeds the replay's own torch.Generator (all of its randomness).
    device:     where every buffer lives and batches come out (the learner's device).
    n_actions:  actions per agent of a discrete task given as a dict without ``avail_actions``
                (taken from the dataset's spec or from ``avail_actions`` otherwise); without it,
                discrete actions are checked only for being non-negative integers.
    """

    def __init__(
        self,
        real: Any,
        capacity: int,
        C: float,
        real_ratio: float = 0.5,
        seed: int = 0,
        device: str | torch.device = "cpu",
        n_actions: int | None = None,
    ):
        problems = []
        if n_actions is not None and (isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1):
            problems.append(f"n_actions must be an int >= 1 or None, got {n_actions!r}")
            n_actions = None
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            problems.append(f"capacity must be an int >= 1, got {capacity!r}")
        if not isinstance(C, int | float) or isinstance(C, bool) or not math.isfinite(C) or not 0 <= C <= _MAX_C:
            problems.append(f"C must be a finite number in [0, {_MAX_C:g}], got {C!r}")
        if not isinstance(real_ratio, int | float) or isinstance(real_ratio, bool) or not 0.0 <= real_ratio <= 1.0:
            problems.append(f"real_ratio must be in [0, 1], got {real_ratio!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            problems.append(f"seed must be an int >= 0, got {seed!r}")
        try:
            dev = torch.device(device)
            if dev.type == "cuda" and not torch.cuda.is_available():
                problems.append(f"device {device!r} requested but CUDA is not available")
        except (RuntimeError, TypeError) as err:
            problems.append(f"device {device!r} is not a torch device ({err})")
            dev = torch.device("cpu")
        if hasattr(real, "next_fields") and hasattr(real, "spec"):
            spec = real.spec
            if getattr(spec, "discrete", False):
                if n_actions is not None and n_actions != spec.n_actions:
                    problems.append(f"n_actions {n_actions} != the dataset's spec.n_actions {spec.n_actions}")
                n_actions = int(spec.n_actions)
            real = _real_from_dataset(real)
        elif not isinstance(real, Mapping):
            problems.append(f"real must be an OfflineDataset or a dict of arrays, got {type(real).__name__}")
            real = {}
        tensors = self._check_real(real, problems)
        if "avail_actions" in tensors and tensors["avail_actions"].dim() == 3:
            from_avail = int(tensors["avail_actions"].shape[-1])
            if n_actions is not None and n_actions != from_avail:
                problems.append(f"n_actions {n_actions} != avail_actions' last axis {from_avail}")
            n_actions = from_avail
        if not problems:
            problems += _action_problems("real ", tensors, n_actions)
        if problems:
            raise ValueError("UncertaintyWeightedReplay: bad input:\n  - " + "\n  - ".join(problems))

        self.capacity = capacity
        self.C = float(C)
        self.real_ratio = float(real_ratio)
        self.seed = seed
        self.device = dev
        self.fields = tuple(k for k in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS) if k in tensors)
        self._real = {k: tensors[k].to(dev) for k in self.fields}
        self.n_real = int(self._real["rewards"].shape[0])
        self.n_actions = n_actions
        # Storage grows as rows arrive (see _reserve): capacity only bounds it.
        self._synthetic = {k: torch.zeros((0, *v.shape[1:]), dtype=v.dtype, device=dev) for k, v in self._real.items()}
        self._u = torch.zeros(0, dtype=torch.float32, device=dev)
        self._sampler = WeightedSampler(capacity, device=dev)
        self._generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def _check_real(real: Mapping, problems: list[str]) -> dict[str, torch.Tensor]:
        if not real:
            return {}
        missing = [k for k in REQUIRED_FIELDS if k not in real]
        if missing:
            problems.append(f"real data lacks fields {missing}")
        present_opt = [k for k in OPTIONAL_FIELDS if k in real and real[k] is not None]
        if len(present_opt) == 1:
            problems.append(f"give both or neither of {OPTIONAL_FIELDS}; got only {present_opt[0]}")
        tensors = {}
        for k in (*REQUIRED_FIELDS, *(present_opt if len(present_opt) == 2 else [])):
            if k in real:
                try:
                    tensors[k] = _to_tensor(real[k])
                except Exception as err:  # noqa: BLE001 - reported as a bad input
                    problems.append(f"real[{k!r}] is not array-like ({err})")
        lengths = {k: int(v.shape[0]) if v.dim() else -1 for k, v in tensors.items()}
        if lengths and len(set(lengths.values())) != 1:
            problems.append(f"real fields differ in length: {lengths}")
        if lengths and min(lengths.values()) < 1:
            problems.append("real data is empty (needs at least one transition)")
        for k, v in tensors.items():
            if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()):
                problems.append(f"real[{k!r}] has {int((~torch.isfinite(v)).sum())} NaN/Inf entries")
        for a, b in (("obs", "next_obs"), ("state", "next_state"), ("avail_actions", "next_avail")):
            if a in tensors and b in tensors and tensors[a].shape[1:] != tensors[b].shape[1:]:
                problems.append(f"real {a} {tuple(tensors[a].shape)} and {b} {tuple(tensors[b].shape)} differ")
        if "rewards" in tensors and tensors["rewards"].dim() != 1:
            problems.append(f"real rewards must be (R,), got {tuple(tensors['rewards'].shape)}")
        if "terminals" in tensors and tensors["terminals"].dim() != 1:
            problems.append(f"real terminals must be (R,), got {tuple(tensors['terminals'].shape)}")
        if "terminals" in tensors:
            tensors["terminals"] = tensors["terminals"].to(torch.bool)
        for k in ("avail_actions", "next_avail"):
            if k in tensors:
                tensors[k] = tensors[k].to(torch.bool)
        return tensors

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def n_synthetic(self) -> int:
        """Synthetic rows currently stored (at most capacity)."""
        return len(self._sampler)

    def __repr__(self) -> str:
        return (f"UncertaintyWeightedReplay(n_real={self.n_real}, n_synthetic={self.n_synthetic}/{self.capacity}, "
                f"C={self.C:g}, real_ratio={self.real_ratio:g}, device={self.device})")

    @property
    def allocated_rows(self) -> int:
        """Synthetic rows the storage currently has room for (grows by doubling up to ``capacity``)."""
        return int(self._u.shape[0])

    def _reserve(self, rows: int) -> None:
        """Make room for ``rows`` synthetic rows (amortised doubling, never beyond ``capacity``)."""
        have = self.allocated_rows
        if rows <= have:
            return
        new = min(self.capacity, max(rows, 2 * have, _MIN_ROWS))
        for k, old in self._synthetic.items():
            grown = torch.zeros((new, *old.shape[1:]), dtype=old.dtype, device=self.device)
            grown[:have] = old
            self._synthetic[k] = grown
        u = torch.zeros(new, dtype=torch.float32, device=self.device)
        u[:have] = self._u
        self._u = u

    def synthetic_weights(self, u: torch.Tensor) -> torch.Tensor:
        """exp(clip(C - u, 0, C) - C) in float64: the unnormalised sampling weight of each u (K,)."""
        p = torch.clamp(self.C - u.to(torch.float64), 0.0, self.C)
        return torch.exp(p - self.C)

    # ---- writes --------------------------------------------------------------------------
    def add_synthetic(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Append K synthetic transitions; once full, each overwrites the oldest.

        batch: the transition fields (same trailing shapes as the real data) plus ``u`` (K,), the
               uncertainty of each transition (finite, >= 0). Extra keys are ignored, so a
               rollout's output dict can be passed as is.
        Returns the (min(K, capacity),) ring slots written (for K > capacity only the last
        capacity rows are kept).
        """
        problems = []
        if not isinstance(batch, Mapping):
            raise ValueError(f"add_synthetic: batch must be a dict of tensors, got {type(batch).__name__}")
        missing = [k for k in (*self.fields, "u") if k not in batch]
        if missing:
            problems.append(f"batch lacks fields {missing}")
        vals: dict[str, torch.Tensor] = {}
        for k in (*self.fields, "u"):
            if k in batch:
                try:
                    vals[k] = _to_tensor(batch[k])
                except Exception as err:  # noqa: BLE001
                    problems.append(f"batch[{k!r}] is not array-like ({err})")
        K = None
        if "u" in vals:
            u = vals["u"]
            if u.dim() != 1:
                problems.append(f"u must be (K,), got {tuple(u.shape)}")
            else:
                K = int(u.shape[0])
                if u.is_complex() or u.dtype == torch.bool:
                    problems.append(f"u must be real numbers, got {u.dtype}")
                else:
                    uf = u.to(torch.float64)
                    if not bool(torch.isfinite(uf).all()):
                        problems.append(f"u has {int((~torch.isfinite(uf)).sum())} NaN/Inf entries")
                    elif bool((uf < 0).any()):
                        problems.append(f"u has {int((uf < 0).sum())} negative entries (u is a distance, >= 0)")
        for k in self.fields:
            if k not in vals or K is None:
                continue
            want = (K, *self._real[k].shape[1:])
            if tuple(vals[k].shape) != want:
                problems.append(f"{k} must have shape {want} (K={K} rows like the real data), got "
                                f"{tuple(vals[k].shape)}")
                continue
            problems += _value_problems(k, vals[k], self._real[k])
        if not problems:
            problems += _action_problems("", {k: vals[k] for k in self.fields if k in vals}, self.n_actions)
        if problems:
            raise ValueError("add_synthetic: bad input:\n  - " + "\n  - ".join(problems))
        if K == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        keep = min(K, self.capacity)
        weights = self.synthetic_weights(vals["u"][K - keep :])
        # The ring fills slots 0, 1, ... before it wraps, so the filled rows are a prefix of the storage.
        self._reserve(min(self.capacity, self.n_synthetic + keep))
        slots = self._sampler.extend(weights)
        for k in self.fields:
            self._synthetic[k][slots] = vals[k][K - keep :].to(device=self.device, dtype=self._real[k].dtype)
        self._u[slots] = vals["u"][K - keep :].to(device=self.device, dtype=torch.float32)
        return slots

    # ---- reads ---------------------------------------------------------------------------
    def split(self, batch_size: int) -> tuple[int, int]:
        """(real rows, synthetic rows) of a batch of ``batch_size``."""
        if self.n_synthetic == 0:
            return batch_size, 0
        n_real = int(round(batch_size * self.real_ratio))
        return n_real, batch_size - n_real

    def row_bytes(self) -> int:
        """Bytes of one sampled row (every field plus source and prob)."""
        per = sum(v[0].numel() * v.element_size() for v in self._real.values())
        return per + 8 + 4

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A mixed batch: real rows first, then synthetic rows.

        batch_size: any integer >= 0 (Python, numpy or a 0-d integer tensor); 0 gives an empty
                    batch, like ``weighted_sample(w, 0)``; a batch that would not fit in the
                    device's memory is refused with a ValueError before anything is drawn.
        Returns every transition field (batch_size, ...) plus
          source (batch_size,) int64: 0 real, 1 synthetic
          prob   (batch_size,) float32: the row's sampling probability within its part
                 (1 / n_real for real rows, w_i / sum(w) for synthetic rows)
        """
        batch_size = _batch_size(batch_size)
        need = batch_size * self.row_bytes()
        memory = _memory_bytes(self.device)
        if batch_size >= 2**62 or (memory is not None and need > memory):
            have = "" if memory is None else f", more than the {memory / 2**30:.0f} GiB of {self.device}"
            raise ValueError(f"sample: batch_size {batch_size} is too large: the batch needs {need / 2**30:.3g} GiB"
                             f"{have}")
        n_real, n_syn = self.split(batch_size)
        # On the generator's device (a default device set by the caller must not move the draw).
        real_idx = torch.randint(0, self.n_real, (n_real,), generator=self._generator,
                                 device=self._generator.device).to(self.device)
        out = {k: self._real[k][real_idx] for k in self.fields}
        source = torch.zeros(batch_size, dtype=torch.int64, device=self.device)
        prob = torch.full((batch_size,), 1.0 / self.n_real, dtype=torch.float32, device=self.device)
        if n_syn:
            syn_idx = self._sampler.sample(n_syn, replacement=True, generator=self._generator)
            out = {k: torch.cat([out[k], self._synthetic[k][syn_idx]]) for k in self.fields}
            source[n_real:] = 1
            prob[n_real:] = self._sampler.probabilities(syn_idx).to(torch.float32)
        out["source"] = source
        out["prob"] = prob
        return out

    def synthetic_u(self) -> torch.Tensor:
        """(n_synthetic,) float32 uncertainty of the stored synthetic rows, in slot order."""
        return self._u[: self.n_synthetic].clone()

    # ---- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Synthetic rows, their u, the sampler and the generator; the real data is not stored
        (it is given again at construction) but its size and shapes are, and are checked on load."""
        n = self.n_synthetic
        return {
            "version": 1,
            "capacity": self.capacity,
            "C": self.C,
            "real_ratio": self.real_ratio,
            "n_real": self.n_real,
            "shapes": {k: tuple(v.shape[1:]) for k, v in self._real.items()},
            "synthetic": {k: v[:n].detach().cpu().clone() for k, v in self._synthetic.items()},
            "u": self._u[:n].detach().cpu().clone(),
            "sampler": self._sampler.state_dict(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``: the same seed and state give the same batches afterwards."""
        problems = []
        need = {"version", "capacity", "C", "real_ratio", "n_real", "shapes", "synthetic", "u", "sampler", "generator"}
        missing = need - set(state)
        if missing:
            raise ValueError(f"load_state_dict: bad input:\n  - missing keys {sorted(missing)}")
        if state["version"] != 1:
            problems.append(f"unknown state version {state['version']!r}")
        for key in ("capacity", "C", "real_ratio", "n_real"):
            if state[key] != getattr(self, key):
                problems.append(f"{key} {state[key]!r} != this replay's {getattr(self, key)!r}")
        shapes = {k: tuple(v.shape[1:]) for k, v in self._real.items()}
        if {k: tuple(v) for k, v in state["shapes"].items()} != shapes:
            problems.append(f"field shapes {state['shapes']} != this replay's {shapes}")
        n = int(state["sampler"].get("size", -1)) if isinstance(state["sampler"], Mapping) else -1
        if set(state["synthetic"]) != set(self.fields):
            problems.append(f"synthetic fields {sorted(state['synthetic'])} != {sorted(self.fields)}")
        else:
            for k, v in state["synthetic"].items():
                if not isinstance(v, torch.Tensor) or v.shape[0] != n:
                    problems.append(f"synthetic[{k!r}] must hold {n} rows")
        if not isinstance(state["u"], torch.Tensor) or state["u"].shape != (n,):
            problems.append(f"u must be ({n},)")
        if problems:
            raise ValueError("load_state_dict: bad input:\n  - " + "\n  - ".join(problems))
        self._reserve(n)
        self._sampler.load_state_dict(state["sampler"])
        for k in self.fields:
            self._synthetic[k].zero_()
            self._synthetic[k][:n] = state["synthetic"][k].to(device=self.device, dtype=self._real[k].dtype)
        self._u.zero_()
        self._u[:n] = state["u"].to(device=self.device, dtype=torch.float32)
        self._generator.set_state(state["generator"])
