"""OG-MARL datasets stored as flashbax Vaults, read and written with tensorstore (no JAX).

A flashbax Vault lives at ``<rel_dir>/<vault_name>/<vault_uid>/`` (OG-MARL ships e.g.
``vaults/smac_v1/3m.vlt/Good/``). That uid directory holds:

- ``metadata.json``: ``{"version": 1.2, "structure_shape": {...}, "structure_dtype": {...},
  <extra user metadata>}``; the two structure entries mirror the experience tree (nested
  dicts), with each leaf's shape as a string like ``"(1, 1000, 3, 30)"`` and its dtype name;
- an OCDBT key-value store (``manifest.ocdbt`` plus ``d/`` data files) holding one zarr
  array per leaf, under the key ``"<path joined by '.'>."`` (``"observations."``,
  ``"infos.state."``), each of shape ``(B, 10**13, ...)``: batch-major, then a time axis
  that is only filled up to the vault index;
- the zarr array ``"vault_index"`` (int32, shape (1,)): the number of valid time steps.

OG-MARL's experience tree (B = 1): ``observations`` (B, T, N, obs_dim), ``actions`` (B, T, N)
int or (B, T, N, act_dim) float, ``rewards`` (B, T, N), ``terminals`` and ``truncations``
(B, T, N), ``infos.state`` (B, T, state_dim), ``infos.legals`` (B, T, N, n_actions).

Reading: a step is terminal (truncated) when every agent's flag is set (as OG-MARL's own
tools do); a step that is both is terminal only; the last recorded step of each batch row is
truncated when not done; several batch rows are concatenated row after row. Team reward is
the agents' mean (see ``_common.split_rewards``). Without ``infos.state`` the state is the
concatenation of the agents' observations. Continuous bounds default to [-1, 1]. Vaults have
no observation after an episode's end, so ``final_*`` are absent, except in vaults written by
``write_vault`` (below).

Writing (``write_vault``) produces a vault flashbax reads as is (``Vault(vault_name=...,
rel_dir=..., vault_uid=...).read()``), with OG-MARL's leaf names and dtypes (float32
observations/rewards/flags, int32 discrete actions and legals). To round-trip exactly it adds
leaves under ``infos`` that OG-MARL code ignores: ``final_obs``/``final_state``/
``final_legals`` (the observation after an episode's last step, stored AT that last step,
zero elsewhere, which compresses to nearly nothing), ``team_rewards`` (B, T) when
per-agent rewards differ from the team reward, and any extra per-step arrays such as
``u`` and ``synthetic``. The spec, metadata and bounds go into ``metadata.json`` under
``"logo_fast"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_dir, metadata_to_json
from ..schema import DatasetSpec, OfflineDataset
from ..validate import validate_dataset
from ._common import action_bounds, agent_flags, as_flags, close_last_episode, discrete_actions, split_rewards

METADATA_FILE = "metadata.json"
VAULT_VERSION = 1.2  # flashbax's Vault version; readers check the major part
TIME_AXIS_MAX_LENGTH = int(10e12)  # flashbax's fixed upper bound on the time axis
COMPRESSION = {"id": "gzip", "level": 5}  # flashbax's default
_WRITE_CHUNK_BYTES = 64 << 20


# ---- layout ---------------------------------------------------------------------------------
def _is_uid_dir(path: Path) -> bool:
    meta = path / METADATA_FILE
    if not meta.is_file() or not (path / "manifest.ocdbt").exists():
        return False
    try:
        return "structure_shape" in json.loads(meta.read_text())
    except (OSError, ValueError):
        return False


def find_vault_dir(path: str | os.PathLike, uid: str | None = None) -> Path:
    """The uid directory for ``path``: ``path`` itself, ``path/uid``, or its only uid subdirectory."""
    path = Path(path)
    if path.name == METADATA_FILE:
        path = path.parent
    if uid is not None:
        path = path / uid
    if _is_uid_dir(path):
        return path
    subs = sorted(p for p in path.iterdir() if p.is_dir() and _is_uid_dir(p)) if path.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        raise ValueError(f"vault {path} holds several uids {[p.name for p in subs]}; pass uid=...")
    raise ValueError(f"{path} is not a flashbax vault (no {METADATA_FILE} with structure_shape + manifest.ocdbt)")


def is_vault(path: str | os.PathLike) -> bool:
    """True when ``path`` is a vault uid directory or a vault directory holding uid directories."""
    path = Path(path)
    if _is_uid_dir(path):
        return True
    return path.is_dir() and any(p.is_dir() and _is_uid_dir(p) for p in path.iterdir())


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested structure dict -> {"infos.state.": leaf, ...} with flashbax's datastore names."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}."
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out


def _leaf_spec(base: Path, name: str) -> dict[str, Any]:
    return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{base.resolve()}", "path": name}}


# ---- reading --------------------------------------------------------------------------------
def read_vault_arrays(path: str | os.PathLike, uid: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Every leaf of a vault as numpy, sliced to the vault index: ({"observations": (B, T, ...), ...}, metadata)."""
    import tensorstore as ts

    base = find_vault_dir(path, uid)
    metadata = json.loads((base / METADATA_FILE).read_text())
    if int(float(metadata.get("version", 0))) != int(VAULT_VERSION):
        raise ValueError(f"vault {base}: version {metadata.get('version')} is not a {int(VAULT_VERSION)}.x vault")
    context = ts.Context()
    index = ts.open(_leaf_spec(base, "vault_index"), context=context).result()
    T = int(index.read().result()[0])
    leaves = _flatten(metadata["structure_shape"])
    stores = {name: ts.open(_leaf_spec(base, name), context=context).result() for name in leaves}
    futures = {name: store[:, 0:T].read() for name, store in stores.items()}
    arrays = {name.rstrip("."): np.asarray(f.result()) for name, f in futures.items()}
    return arrays, metadata


def read_vault(
    path: str | os.PathLike,
    *,
    uid: str | None = None,
    env: str = "",
    action_low: float | np.ndarray = -1.0,
    action_high: float | np.ndarray = 1.0,
    n_actions: int | None = None,
    with_extras: bool = False,
) -> OfflineDataset | tuple[OfflineDataset, dict[str, np.ndarray]]:
    """Read an OG-MARL / flashbax vault into memory (conventions in the module docstring).

    path:            a uid directory, or a vault directory with one uid (or pass ``uid``)
    env:             scenario id for the spec (default: the vault's own, else the directory names)
    action_low/high: continuous bounds when the vault does not store them
    n_actions:       discrete actions per agent without ``infos.legals`` (default: max + 1)
    with_extras:     also return the extra per-step leaves written by ``write_vault`` (e.g. ``u``)
    """
    base = find_vault_dir(path, uid)
    arrays, metadata = read_vault_arrays(base)
    ours = metadata.get("logo_fast") or {}
    required = ("observations", "actions", "rewards", "terminals", "truncations")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"vault {base}: missing leaves {missing} (has {sorted(arrays)})")
    B = arrays["observations"].shape[0]

    def rows(name: str) -> np.ndarray:
        # (B, T, ...) -> (B*T, ...): batch rows one after another in time.
        a = arrays[name]
        return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])

    obs = rows("observations").astype(np.float32)
    T, N, obs_dim = obs.shape
    terminals = agent_flags(rows("terminals"), "terminals", N)
    truncations = agent_flags(rows("truncations"), "truncations", N) & ~terminals
    closed = 0
    seg = arrays["observations"].shape[1]
    for b in range(B):  # each batch row is its own stream: close its last episode
        closed += close_last_episode(terminals[b * seg : (b + 1) * seg], truncations[b * seg : (b + 1) * seg])
    if "infos.team_rewards" in arrays:
        team = rows("infos.team_rewards").astype(np.float32)
        agent_rewards = rows("rewards").astype(np.float32)
    else:
        team, agent_rewards = split_rewards(rows("rewards"), N)
    state = rows("infos.state").astype(np.float32) if "infos.state" in arrays else obs.reshape(T, -1).copy()

    spec_dict = ours.get("spec")
    act = rows("actions")
    discrete = act.dtype.kind in "iu" or "infos.legals" in arrays
    if spec_dict is not None:
        spec = DatasetSpec.from_dict(spec_dict)
    elif discrete:
        n_act = arrays["infos.legals"].shape[-1] if "infos.legals" in arrays else (n_actions or int(act.max()) + 1)
        spec = DatasetSpec(N, obs_dim, state.shape[1], "discrete", n_actions=int(n_act), env=env or _env_name(base))
    else:
        spec = DatasetSpec(N, obs_dim, state.shape[1], "continuous", act_dim=act.shape[-1], env=env or _env_name(base))
    if env:
        spec = DatasetSpec.from_dict({**spec.to_dict(), "env": env})

    fields: dict[str, Any] = {}
    if spec.discrete:
        fields["actions"] = discrete_actions(act, N)
        if "infos.legals" in arrays:
            fields["avail_actions"] = as_flags(rows("infos.legals"), "infos.legals")
    else:
        fields["actions"] = act.astype(np.float32)
        low = ours.get("action_low", action_low)
        high = ours.get("action_high", action_high)
        fields["action_low"], fields["action_high"] = action_bounds(N, spec.act_dim, low, high)
    ends = terminals | truncations
    if "infos.final_obs" in arrays and "infos.final_state" in arrays:
        fields["final_obs"] = rows("infos.final_obs").astype(np.float32)[ends]
        fields["final_state"] = rows("infos.final_state").astype(np.float32)[ends]
        if "infos.final_legals" in arrays:
            fields["final_avail"] = as_flags(rows("infos.final_legals"), "infos.final_legals")[ends]
    known = {
        "observations",
        "actions",
        "rewards",
        "terminals",
        "truncations",
        "infos.state",
        "infos.legals",
        "infos.final_obs",
        "infos.final_state",
        "infos.final_legals",
        "infos.team_rewards",
    }
    extras = {name.removeprefix("infos."): rows(name) for name in arrays if name not in known}

    ds_metadata = (
        dict(ours["metadata"])
        if "metadata" in ours
        else {
            "source_format": "vault",
            "source_path": str(base),
            "truncated_last_step": bool(closed),
            "vault_metadata": {k: v for k, v in metadata.items() if k not in ("structure_shape", "structure_dtype")},
        }
    )
    ds = OfflineDataset(
        spec=spec,
        obs=obs,
        state=state,
        rewards=team,
        terminals=terminals,
        truncations=truncations,
        agent_rewards=agent_rewards,
        metadata=ds_metadata,
        **fields,
    )
    return (ds, extras) if with_extras else ds


def _env_name(base: Path) -> str:
    # OG-MARL layout: vaults/<env>/<task>.vlt/<quality> -> "<env>:<task>"; a bare rel_dir gives just the task.
    task = base.parent.name.removesuffix(".vlt")
    group = base.parent.parent.name
    return f"{group}:{task}" if group and group != "vaults" else task


# ---- writing --------------------------------------------------------------------------------
def _vault_leaves(ds: OfflineDataset, extras: dict[str, np.ndarray] | None) -> dict[str, tuple[Any, np.dtype]]:
    """{leaf name: (source (T, ...) array-like or callable(start, stop), dtype)} for ``ds``."""
    spec = ds.spec
    N = spec.n_agents

    def per_agent(flags):
        return lambda a, b: np.repeat(np.asarray(flags[a:b], dtype=np.float32)[:, None], N, axis=1)

    leaves: dict[str, tuple[Any, np.dtype]] = {
        "observations": (ds.obs, np.dtype(np.float32)),
        "actions": (ds.actions, np.dtype(np.int32 if spec.discrete else np.float32)),
        "terminals": (per_agent(ds.terminals), np.dtype(np.float32)),
        "truncations": (per_agent(ds.truncations), np.dtype(np.float32)),
        "infos.state": (ds.state, np.dtype(np.float32)),
    }
    if ds.agent_rewards is not None:
        leaves["rewards"] = (ds.agent_rewards, np.dtype(np.float32))
        leaves["infos.team_rewards"] = (ds.rewards, np.dtype(np.float32))
    else:
        leaves["rewards"] = (per_agent(ds.rewards), np.dtype(np.float32))
    if ds.avail_actions is not None:
        leaves["infos.legals"] = (ds.avail_actions, np.dtype(np.int32))
    if ds.final_obs is not None and ds.final_state is not None:
        ends = ds.episode_ends()
        episode_at = np.cumsum(ends) - 1

        def at_ends(final, dtype):
            def get(a, b):
                block = np.zeros((b - a, *final.shape[1:]), dtype=dtype)
                mask = ends[a:b]
                block[mask] = np.asarray(final)[episode_at[a:b][mask]]
                return block

            return get

        leaves["infos.final_obs"] = (at_ends(ds.final_obs, np.float32), np.dtype(np.float32))
        leaves["infos.final_state"] = (at_ends(ds.final_state, np.float32), np.dtype(np.float32))
        if ds.final_avail is not None:
            leaves["infos.final_legals"] = (at_ends(ds.final_avail, np.int32), np.dtype(np.int32))
    for name, a in (extras or {}).items():
        a = np.asarray(a)
        leaves[f"infos.{name}"] = (a, a.dtype)
    return leaves


def _row_shape(src: Any) -> tuple[int, ...]:
    return tuple(src(0, 1).shape[1:]) if callable(src) else tuple(src.shape[1:])


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def write_vault(
    ds: OfflineDataset,
    path: str | os.PathLike,
    *,
    vault_uid: str = "logo_fast",
    extras: dict[str, np.ndarray] | None = None,
    validate: bool = True,
) -> Path:
    """Write ``ds`` as a flashbax vault at ``path/vault_uid`` (``path`` is ``<rel_dir>/<vault_name>``).

    extras: extra per-step arrays (T, ...) stored as ``infos.<name>`` leaves (e.g. ``u``, ``synthetic``).
    The uid directory is built under a temp name and renamed into place (replacing an older one).
    Returns the uid directory.
    """
    import tensorstore as ts

    if validate:
        validate_dataset(ds)
    T = len(ds)
    for name, a in (extras or {}).items():
        if np.shape(a)[:1] != (T,):
            raise ValueError(f"extras[{name!r}]: expected {T} rows, got shape {np.shape(a)}")
    ours = {
        "format_version": 1,
        "spec": ds.spec.to_dict(),
        "metadata": json.loads(metadata_to_json(ds.metadata)),
    }
    if not ds.spec.discrete:
        ours["action_low"] = np.asarray(ds.action_low).tolist()
        ours["action_high"] = np.asarray(ds.action_high).tolist()
    leaves = _vault_leaves(ds, extras)
    shapes = {name: (1, T, *_row_shape(src)) for name, (src, _) in leaves.items()}
    metadata = {
        "version": VAULT_VERSION,
        "structure_shape": _nest({n: str(s) for n, s in shapes.items()}),
        "structure_dtype": _nest({n: dt.name for n, (_, dt) in leaves.items()}),
        "logo_fast": ours,
    }
    target = Path(path) / vault_uid
    with atomic_dir(target) as tmp:
        (tmp / METADATA_FILE).write_text(json.dumps(metadata))
        context = ts.Context()
        stores = {}
        for name, (_, dtype) in leaves.items():
            spec = _leaf_spec(tmp, name + ".")
            spec["metadata"] = {"compressor": COMPRESSION}
            shape = (1, TIME_AXIS_MAX_LENGTH, *shapes[name][2:])
            stores[name] = ts.open(spec, shape=shape, dtype=dtype.name, create=True, context=context).result()
        widest = max(int(np.prod(s[2:], dtype=np.int64)) * 4 for s in shapes.values())
        step = max(1, _WRITE_CHUNK_BYTES // max(widest, 1))
        for start in range(0, T, step):
            stop = min(T, start + step)
            futures = []
            try:
                for name, (src, dtype) in leaves.items():
                    block = src(start, stop) if callable(src) else np.asarray(src[start:stop])
                    futures.append(stores[name][:, start:stop].write(np.ascontiguousarray(block, dtype=dtype)[None]))
            finally:
                # Writes already issued run on tensorstore's threads: wait for every one, even
                # when a later leaf failed, so none lands in the temp directory after it is removed.
                errors = []
                for f in futures:
                    try:
                        f.result()
                    except Exception as err:  # noqa: BLE001 - the first one is raised below
                        errors.append(err)
            if errors:
                raise errors[0]
        index = ts.open(_leaf_spec(tmp, "vault_index"), shape=(1,), dtype="int32", create=True, context=context)
        index.result().write(np.array([T], dtype=np.int32)).result()
        del stores, index, context
    return target
