"""The policy zoo: small trained behaviour policies shipped with the package, one entry per scenario.

An entry is a directory ``zoo/<env id with ':' -> '_'>_seed<k>/`` holding

  card.json      what the run was (trainer, command, seed, budget, learning curve), the random
                 policy's score, and which checkpoints are expert, medium and medium-replay;
  policies.npz   the weights of those checkpoints only (float16: they are a few hundred KB),
                 as ``<checkpoint>/<parameter name>`` arrays.

Qualities (CFCQL / OMIGA): expert = the checkpoint with the best evaluation score; medium =
the one whose score is closest to half the expert's (``MEDIUM_RATIO``); medium-replay = the
episodes of the run up to the medium checkpoint, which the collector replays by running the
checkpoints before it (plus uniform random actions for the run's random warm-up), since the
run's own buffer is far too large to ship.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_dir, atomic_path

ZOO_DIR = Path(__file__).with_name("zoo")
ZOO_VERSION = 1
MEDIUM_RATIO = 0.5
"""Medium = the checkpoint whose score is closest to this fraction of the expert's."""
N_REPLAY = 4
"""Checkpoints before (and including) medium that stand in for the run's buffer in medium-replay."""


def _entry_prefix(env_id: str) -> str:
    return f"{env_id.replace(':', '_')}_seed"


def entry_name(env_id: str, seed: int) -> str:
    return f"{_entry_prefix(env_id)}{seed}"


@dataclass
class ZooEntry:
    """One shipped behaviour-policy run."""

    card: dict[str, Any]
    """The card: run description, curve, random score, the chosen checkpoints."""
    weights: dict[str, dict[str, np.ndarray]]
    """checkpoint label ("c<index>") -> parameter name -> float32 array."""
    path: Path
    """The entry's directory."""

    def checkpoint(self, role: str) -> dict[str, Any]:
        """The card's record of the ``expert`` or ``medium`` checkpoint."""
        return self.card["checkpoints"][self.card[role]]

    def params(self, index: int) -> dict[str, np.ndarray]:
        key = f"c{index}"
        if key not in self.weights:
            raise KeyError(f"{self.path}: checkpoint {index} is not shipped (shipped: {sorted(self.weights)})")
        return self.weights[key]


def choose_checkpoints(scores: list[float], steps: list[int], min_step: int = 0) -> dict[str, Any]:
    """Pick expert, medium and the medium-replay checkpoints from a run's evaluation curve.

    scores/steps: (C,) evaluation score and environment step of each checkpoint. Checkpoints
    at or before ``min_step`` (the random warm-up) are not candidates for expert or medium.
    """
    if len(scores) != len(steps) or not scores:
        raise ValueError(
            f"need one score per checkpoint and at least one, got {len(scores)} scores, {len(steps)} steps"
        )
    cand = [i for i, s in enumerate(steps) if s > min_step] or list(range(len(steps)))
    expert = max(cand, key=lambda i: (scores[i], -i))
    target = MEDIUM_RATIO * scores[expert]
    medium = min((i for i in cand if i <= expert), key=lambda i: (abs(scores[i] - target), i))
    before = list(range(0, medium + 1))
    pick = np.unique(np.linspace(0, len(before) - 1, min(N_REPLAY, len(before))).round().astype(int))
    replay = [before[i] for i in pick]
    if medium not in replay:
        replay.append(medium)
    return {"expert": expert, "medium": medium, "replay": sorted(set(replay))}


def export_entry(
    env_id: str, seed: int, card: dict[str, Any], weights: dict[int, dict[str, np.ndarray]], zoo_dir: Path | None = None
) -> Path:
    """Write (or replace) one entry atomically; ``weights`` maps checkpoint index -> state dict (numpy)."""
    target = (zoo_dir or ZOO_DIR) / entry_name(env_id, seed)
    arrays = {f"c{i}/{k}": np.asarray(v, np.float16) for i, sd in weights.items() for k, v in sd.items()}
    with atomic_dir(target) as tmp:
        (tmp / "card.json").write_text(json.dumps({"zoo_version": ZOO_VERSION, **card}, indent=1, default=float) + "\n")
        np.savez_compressed(tmp / "policies.npz", **arrays)
    return target


def load_entry(env_id: str, seed: int = 0, zoo_dir: Path | None = None) -> ZooEntry | None:
    """The shipped entry of ``env_id`` and ``seed``, or None when there is none."""
    path = (zoo_dir or ZOO_DIR) / entry_name(env_id, seed)
    if not (path / "card.json").is_file():
        return None
    card = json.loads((path / "card.json").read_text())
    if card.get("zoo_version") != ZOO_VERSION:
        raise ValueError(f"{path}: zoo entry version {card.get('zoo_version')}, this logo_fast reads {ZOO_VERSION}")
    weights: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path / "policies.npz") as z:
        for key in z.files:
            ck, name = key.split("/", 1)
            weights.setdefault(ck, {})[name] = z[key].astype(np.float32)
    return ZooEntry(card, weights, path)


def entry_seeds(env_id: str, zoo_dir: Path | None = None) -> list[int]:
    """Seeds of the entries the zoo holds for ``env_id``, ascending."""
    prefix = _entry_prefix(env_id)
    root = zoo_dir or ZOO_DIR
    seeds = []
    for path in root.glob(f"{prefix}*") if root.is_dir() else []:
        tail = path.name[len(prefix):]
        if tail.isdigit() and (path / "card.json").is_file():
            seeds.append(int(tail))
    return sorted(seeds)


def load_default_entry(env_id: str, zoo_dir: Path | None = None) -> ZooEntry | None:
    """The scenario's default entry: its lowest seed (the zoo ships one run per scenario), or None."""
    seeds = entry_seeds(env_id, zoo_dir)
    return load_entry(env_id, seeds[0], zoo_dir) if seeds else None


def mlp_forward(params: dict[str, Any], x: Any, prefix: str, n_layers: int, maximum=np.maximum) -> Any:
    """A ReLU MLP stored as torch-style ``<prefix>.<2k>.weight/bias`` (k = 0..n_layers-1): (B, in) -> (B, out).

    numpy arrays by default; ``maximum=jnp.maximum`` runs the same network on JAX arrays (the trainer).
    """
    for k in range(n_layers):
        x = x @ params[f"{prefix}.{2 * k}.weight"].T + params[f"{prefix}.{2 * k}.bias"]
        if k < n_layers - 1:
            x = maximum(x, 0.0)
    return x


def save_resume(obj: Any, path: Path, save_fn) -> None:
    """Write a training run's resume file atomically with ``save_fn(obj, tmp_path)``."""
    with atomic_path(path, path.suffix) as tmp:
        save_fn(obj, tmp)
