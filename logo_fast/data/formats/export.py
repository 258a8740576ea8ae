"""Export an augmented dataset (real data + world-model rollouts) as native HDF5 or an OG-MARL vault.

Each synthetic transition becomes its own single-step episode: its ``final_obs``/
``final_state`` (``final_avail``) are the transition's ``next_obs``/``next_state``
(``next_avail``), it is terminal when the model predicted termination and truncated
otherwise. That keeps the schema's next-step derivation exact for every synthetic step with
no fake steps in between. Real steps come first (unchanged, episodes intact), then synthetic.

Two per-step extras travel with the data: ``u`` (T,) float32, the synthetic transition's
uncertainty (0 for real steps; use ``synthetic`` to tell them apart) and ``synthetic`` (T,)
bool. In HDF5 they sit in the group ``/extra`` (``logo_fast.data.load_extras``), in a vault
as the leaves ``infos.u`` and ``infos.synthetic``. ``read_augmented`` returns both parts.

``model.rollout(...)``'s output goes in as it comes (torch tensors on any device or numpy).
Its bookkeeping fields travel as two more extras when present: ``horizon_step`` (T,) int32,
the 0-based model step of the synthetic transition, and ``start`` (T,) int32, the rollout's
``start`` value (the start's index into the rollout's dataset, or its row for dict starts);
both are -1 on real steps. ``start`` is copied as given, so with real steps first and
unchanged it still indexes the real part of the file when the rollouts started from
``real``; ``missing_final="trim"`` (below) renumbers the real steps and maps ``start`` to the
new numbering as indices into ``real`` (-1 where that step was dropped; drop ``start`` before
exporting if it holds dict rows).

The real dataset must carry ``final_obs``/``final_state`` (the collector's files and vaults
written by ``write_vault`` do): the schema derives next steps from ``final_*`` for all
episodes or none, so real episodes without them cannot sit beside synthetic ones. OG-MARL's
own vaults have none; ``missing_final="trim"`` makes such data usable: each real episode's
last step, whose next observation is unknown (the schema already counts it as having no
next step), is dropped and becomes the ``final_*`` of the step before it, which is marked
truncated. That keeps every transition with a known next step, but loses the last steps'
rewards and the terminal flags (episodes of one step vanish); the metadata records the
counts. Per-agent rewards of the real data are dropped (the world model predicts the team
reward) and the metadata says so. Everything is assembled in memory (real + synthetic must
fit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import OfflineDataset
from ..validate import format_problems

SYNTHETIC_REQUIRED = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state", "u")
ROLLOUT_EXTRAS = ("horizon_step", "start")  # rollout bookkeeping, kept as per-step extras (-1 on real steps)
MISSING_FINAL_CHOICES = ("error", "trim")


def _as_numpy(synthetic: dict[str, Any]) -> dict[str, Any]:
    """Torch tensors (any device) -> numpy; everything else as given (checked later)."""
    out = {}
    for k, v in synthetic.items():
        if hasattr(v, "detach") and hasattr(v, "cpu"):
            v = v.detach().cpu().numpy()
        out[k] = v
    return out


def _check_synthetic(real: OfflineDataset, syn: dict[str, np.ndarray], missing_final: str = "error") -> list[str]:
    spec = real.spec
    N = spec.n_agents
    problems = [f"synthetic[{k!r}]: missing" for k in SYNTHETIC_REQUIRED if k not in syn]
    if spec.discrete and real.avail_actions is not None:
        problems += [
            f"synthetic[{k!r}]: missing (discrete task with avail_actions)"
            for k in ("avail_actions", "next_avail")
            if k not in syn
        ]
    if (real.final_obs is None or real.final_state is None) and missing_final != "trim":
        problems.append(
            "real: no final_obs/final_state; synthetic single-step episodes need the schema's "
            "final_* for every episode (re-collect or save the real data with final observations, "
            "or pass missing_final='trim' to drop each real episode's last step, e.g. for OG-MARL vaults)"
        )
    if problems:
        return problems
    K = int(np.shape(syn["u"])[0]) if np.ndim(syn["u"]) >= 1 else -1
    act = (K, N) if spec.discrete else (K, N, spec.act_dim)
    want = {
        "obs": (K, N, spec.obs_dim),
        "next_obs": (K, N, spec.obs_dim),
        "state": (K, spec.state_dim),
        "next_state": (K, spec.state_dim),
        "actions": act,
        "rewards": (K,),
        "terminals": (K,),
        "u": (K,),
        "avail_actions": (K, N, spec.n_actions),
        "next_avail": (K, N, spec.n_actions),
        "horizon_step": (K,),
        "start": (K,),
    }
    for k, v in syn.items():
        if k not in want:
            problems.append(f"synthetic[{k!r}]: unknown field (expected {sorted(want)})")
        elif np.shape(v) != want[k]:
            problems.append(f"synthetic[{k!r}]: shape {np.shape(v)}, expected {want[k]}")
    if K == 0:
        problems.append("synthetic['u']: no synthetic transitions (K == 0)")
    if not problems:
        u = np.asarray(syn["u"])
        if u.dtype.kind != "f":
            problems.append(f"synthetic['u']: dtype {u.dtype} is not floating")
        elif not np.isfinite(u).all() or (u < 0).any():
            problems.append(f"synthetic['u']: {int((~np.isfinite(u) | (u < 0)).sum())} values not finite and >= 0")
        a = np.asarray(syn["actions"])
        if spec.discrete and a.dtype.kind not in "iu":
            problems.append(f"synthetic['actions']: dtype {a.dtype} is not an integer type (discrete task)")
        if np.asarray(syn["terminals"]).dtype != np.bool_:
            problems.append(f"synthetic['terminals']: dtype {np.asarray(syn['terminals']).dtype} is not bool")
        for k in ROLLOUT_EXTRAS:
            if k not in syn:
                continue
            v = np.asarray(syn[k])
            if v.dtype.kind not in "iu":
                problems.append(f"synthetic[{k!r}]: dtype {v.dtype} is not an integer type")
            elif v.size and (int(v.min()) < -1 or int(v.max()) >= 2**31):
                lo, hi = int(v.min()), int(v.max())
                problems.append(f"synthetic[{k!r}]: values must lie in [-1, 2**31), got [{lo}, {hi}]")
    return problems


def trim_to_final(real: OfflineDataset) -> tuple[OfflineDataset, np.ndarray]:
    """(dataset with final_*, kept (T,) bool) for data without final_obs/final_state (module docstring).

    Each episode's last step is dropped; the step before it becomes the episode's end, truncated,
    with the dropped step's obs/state/avail as its final_obs/final_state/final_avail.
    """
    T = len(real)
    starts, ends = real.episode_bounds()
    last = ends - 1
    kept = np.ones(T, dtype=bool)
    kept[last] = False
    long = ends - starts >= 2  # one-step episodes have nothing left
    new_last = last[long] - 1

    def take(a):
        return None if a is None else np.asarray(a)[kept]

    truncations = np.zeros(T, dtype=bool)
    truncations[new_last] = True
    final_avail = None
    if real.avail_actions is not None:
        final_avail = np.asarray(real.avail_actions)[last[long]].astype(bool)
    ds = OfflineDataset(
        spec=real.spec,
        obs=take(real.obs),
        state=take(real.state),
        actions=take(real.actions),
        rewards=take(real.rewards),
        terminals=np.zeros(int(kept.sum()), dtype=bool),
        truncations=truncations[kept],
        avail_actions=take(real.avail_actions),
        agent_rewards=take(real.agent_rewards),
        action_low=real.action_low,
        action_high=real.action_high,
        final_obs=np.asarray(real.obs)[last[long]],
        final_state=np.asarray(real.state)[last[long]],
        final_avail=final_avail,
        metadata=dict(real.metadata),
    )
    return ds, kept


def augmented_dataset(
    real: OfflineDataset, synthetic: dict[str, Any], missing_final: str = "error"
) -> tuple[OfflineDataset, dict]:
    """(combined dataset, extras {"u", "synthetic"[, "horizon_step", "start"]}) — what ``export_augmented`` writes.

    Raises one ValueError listing every problem with ``synthetic`` (shapes against the real
    spec, missing or unknown fields, non-finite or negative ``u``); the combined dataset is
    then validated like any other. ``missing_final``: see ``export_augmented``.
    """
    from ..validate import validate_dataset

    if missing_final not in MISSING_FINAL_CHOICES:
        raise ValueError(f"missing_final must be one of {MISSING_FINAL_CHOICES}, got {missing_final!r}")
    synthetic = _as_numpy(synthetic)
    problems = _check_synthetic(real, synthetic, missing_final)
    if problems:
        raise ValueError(format_problems(problems, "synthetic transitions"))
    trimmed = None
    if real.final_obs is None or real.final_state is None:
        T_before, E_before = len(real), real.n_episodes
        n_terminal = int(np.asarray(real.terminals, dtype=bool).sum())
        real, kept = trim_to_final(real)
        trimmed = {"dropped_steps": T_before - len(real), "dropped_terminal_steps": n_terminal,
                   "dropped_episodes": E_before - real.n_episodes}
        if len(real) == 0:
            raise ValueError("missing_final='trim': every real episode has a single step; nothing is left")
        if "start" in synthetic:
            # Old real step index -> new one (-1 where dropped); -1 (given states) stays -1.
            new_index = np.where(kept, np.cumsum(kept) - 1, -1)
            start = np.asarray(synthetic["start"], dtype=np.int64)
            if start.size and int(start.max()) >= len(new_index):
                raise ValueError(f"synthetic['start']: max {int(start.max())} is not an index into the "
                                 f"{len(new_index)} real steps, so it cannot be renumbered after trimming")
            synthetic = {**synthetic, "start": np.where(start >= 0, new_index[np.maximum(start, 0)], -1)}
    K = len(synthetic["u"])
    T = len(real)
    term = np.asarray(synthetic["terminals"], dtype=bool)

    def cat(real_arr, syn_arr, dtype=None):
        a = np.asarray(real_arr)
        return np.concatenate([a, np.asarray(syn_arr, dtype=dtype or a.dtype)])

    fields: dict[str, Any] = {
        "obs": cat(real.obs, synthetic["obs"]),
        "state": cat(real.state, synthetic["state"]),
        "actions": cat(real.actions, synthetic["actions"]),
        "rewards": cat(real.rewards, synthetic["rewards"]),
        "terminals": cat(real.terminals, term),
        "truncations": cat(real.truncations, ~term),
        "final_obs": cat(real.final_obs, synthetic["next_obs"]),
        "final_state": cat(real.final_state, synthetic["next_state"]),
    }
    if real.avail_actions is not None:
        fields["avail_actions"] = cat(real.avail_actions, synthetic["avail_actions"], bool)
        if real.final_avail is not None:
            fields["final_avail"] = cat(real.final_avail, synthetic["next_avail"], bool)
    metadata = dict(real.metadata)
    metadata["augmented"] = {
        "n_real_steps": T,
        "n_real_episodes": real.n_episodes,
        "n_synthetic": K,
        "agent_rewards_dropped": real.agent_rewards is not None,
        "real_trimmed_to_final": trimmed,
    }
    ds = OfflineDataset(
        spec=real.spec, action_low=real.action_low, action_high=real.action_high, metadata=metadata, **fields
    )
    validate_dataset(ds)
    extras = {
        "u": np.concatenate([np.zeros(T, np.float32), np.asarray(synthetic["u"], np.float32)]),
        "synthetic": np.concatenate([np.zeros(T, bool), np.ones(K, bool)]),
    }
    for k in ROLLOUT_EXTRAS:
        if k in synthetic:
            # int32: flashbax reads leaves as JAX arrays, which are 32-bit unless x64 is enabled.
            extras[k] = np.concatenate([np.full(T, -1, np.int32), np.asarray(synthetic[k]).astype(np.int32)])
    return ds, extras


def export_augmented(
    real: OfflineDataset,
    synthetic: dict[str, Any],
    path: str | os.PathLike,
    format: str = "hdf5",
    *,
    vault_uid: str = "augmented",
    compression: str | None = "gzip",
    missing_final: str = "error",
) -> Path:
    """Write real + synthetic transitions (with ``u`` and ``synthetic`` per step) atomically.

    real:          the real dataset (with final_obs/final_state, or see ``missing_final``)
    synthetic:     ``model.rollout(...)``'s dict as it comes (torch or numpy), K transitions:
                   obs (K, N, obs_dim), state (K, state_dim), actions (K, N) or (K, N, act_dim),
                   rewards (K,), terminals (K,) bool, next_obs (K, N, obs_dim), next_state
                   (K, state_dim), u (K,) float, for discrete tasks with masks avail_actions /
                   next_avail (K, N, n_actions) bool, and optionally horizon_step (K,) / start
                   (K,) int, kept as the extras ``horizon_step`` / ``start`` (-1 on real steps)
    path:          "hdf5": a .h5/.hdf5 file; "vault": the vault directory ``<rel_dir>/<vault_name>``
                   (the data goes to ``path/vault_uid``, readable by flashbax's Vault)
    format:        "hdf5" or "vault"
    missing_final: "error" (default) refuses real data without final_obs/final_state; "trim"
                   drops each real episode's last step instead (module docstring; OG-MARL vaults)
    Returns the file (hdf5) or the vault uid directory (vault).
    """
    if format not in ("hdf5", "vault"):
        raise ValueError(f"format must be 'hdf5' or 'vault', got {format!r}")
    ds, extras = augmented_dataset(real, synthetic, missing_final)
    if format == "hdf5":
        from ..io import HDF5_SUFFIXES, save

        if Path(path).suffix.lower() not in HDF5_SUFFIXES:
            raise ValueError(f"export_augmented: {path} must end in one of {HDF5_SUFFIXES} for format='hdf5'")
        return save(ds, path, compression=compression, validate=False, extras=extras)
    from .vault import write_vault

    return write_vault(ds, path, vault_uid=vault_uid, extras=extras, validate=False)


def read_augmented(path: str | os.PathLike, **options: Any) -> tuple[OfflineDataset, dict[str, np.ndarray]]:
    """(dataset, extras) from a file or vault written by ``export_augmented``.

    extras holds ``u`` and ``synthetic`` (and ``horizon_step`` / ``start`` when the export had them).
    """
    from ..io import detect_format, load, load_extras
    from ..validate import validate_dataset
    from .vault import read_vault

    fmt = detect_format(path)
    if fmt == "vault":
        ds, extras = read_vault(path, with_extras=True, **options)
        validate_dataset(ds)
    else:
        ds, extras = load(path, **options), load_extras(path)
    if "synthetic" in extras:
        extras["synthetic"] = np.asarray(extras["synthetic"]).astype(bool)
    return ds, extras
