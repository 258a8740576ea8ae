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

The real dataset must carry ``final_obs``/``final_state`` (the collector's files do): the
schema derives next steps from ``final_*`` for all episodes or none, so real episodes without
them cannot sit beside synthetic ones. Per-agent rewards of the real data are dropped (the
world model predicts the team reward) and the metadata says so. Everything is assembled in
memory (real + synthetic must fit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import OfflineDataset
from ..validate import format_problems

SYNTHETIC_REQUIRED = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state", "u")


def _check_synthetic(real: OfflineDataset, syn: dict[str, np.ndarray]) -> list[str]:
    spec = real.spec
    N = spec.n_agents
    problems = [f"synthetic[{k!r}]: missing" for k in SYNTHETIC_REQUIRED if k not in syn]
    if spec.discrete and real.avail_actions is not None:
        problems += [
            f"synthetic[{k!r}]: missing (discrete task with avail_actions)"
            for k in ("avail_actions", "next_avail")
            if k not in syn
        ]
    if real.final_obs is None or real.final_state is None:
        problems.append(
            "real: no final_obs/final_state; synthetic single-step episodes need the schema's "
            "final_* for every episode (re-collect or save the real data with final observations)"
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
    return problems


def augmented_dataset(real: OfflineDataset, synthetic: dict[str, np.ndarray]) -> tuple[OfflineDataset, dict]:
    """(combined dataset, extras {"u", "synthetic"}) — the in-memory form ``export_augmented`` writes.

    Raises one ValueError listing every problem with ``synthetic`` (shapes against the real
    spec, missing fields, non-finite or negative ``u``); the combined dataset is then validated
    like any other.
    """
    from ..validate import validate_dataset

    problems = _check_synthetic(real, synthetic)
    if problems:
        raise ValueError(format_problems(problems, "synthetic transitions"))
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
    }
    ds = OfflineDataset(
        spec=real.spec, action_low=real.action_low, action_high=real.action_high, metadata=metadata, **fields
    )
    validate_dataset(ds)
    extras = {
        "u": np.concatenate([np.zeros(T, np.float32), np.asarray(synthetic["u"], np.float32)]),
        "synthetic": np.concatenate([np.zeros(T, bool), np.ones(K, bool)]),
    }
    return ds, extras


def export_augmented(
    real: OfflineDataset,
    synthetic: dict[str, np.ndarray],
    path: str | os.PathLike,
    format: str = "hdf5",
    *,
    vault_uid: str = "augmented",
    compression: str | None = "gzip",
) -> Path:
    """Write real + synthetic transitions (with ``u`` and ``synthetic`` per step) atomically.

    real:      the real dataset (must have final_obs/final_state)
    synthetic: per-transition arrays, K transitions: obs (K, N, obs_dim), state (K, state_dim),
               actions (K, N) or (K, N, act_dim), rewards (K,), terminals (K,) bool,
               next_obs (K, N, obs_dim), next_state (K, state_dim), u (K,) float and, for
               discrete tasks with masks, avail_actions / next_avail (K, N, n_actions) bool
    path:      "hdf5": a .h5/.hdf5 file; "vault": the vault directory ``<rel_dir>/<vault_name>``
               (the data goes to ``path/vault_uid``, readable by flashbax's Vault)
    format:    "hdf5" or "vault"
    Returns the file (hdf5) or the vault uid directory (vault).
    """
    if format not in ("hdf5", "vault"):
        raise ValueError(f"format must be 'hdf5' or 'vault', got {format!r}")
    ds, extras = augmented_dataset(real, synthetic)
    if format == "hdf5":
        from ..io import HDF5_SUFFIXES, save

        if Path(path).suffix.lower() not in HDF5_SUFFIXES:
            raise ValueError(f"export_augmented: {path} must end in one of {HDF5_SUFFIXES} for format='hdf5'")
        return save(ds, path, compression=compression, validate=False, extras=extras)
    from .vault import write_vault

    return write_vault(ds, path, vault_uid=vault_uid, extras=extras, validate=False)


def read_augmented(path: str | os.PathLike, **options: Any) -> tuple[OfflineDataset, dict[str, np.ndarray]]:
    """(dataset, extras) from a file or vault written by ``export_augmented``; extras holds ``u`` and ``synthetic``."""
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
