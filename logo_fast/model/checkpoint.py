"""World-model checkpoints: one ``torch.save`` file with a versioned manifest, written atomically.

Layout (a dict; loaded with ``weights_only=True``, so a checkpoint cannot run code)::

    manifest:    format, format_version, kind ("logo" | "joint" | "ensemble"), config (dict),
                 spec (DatasetSpec dict), package_version, normalizers (name -> tensor),
                 action_low/action_high (continuous bounds or None), n_parameters,
                 rng_state (the minibatch generator's state or None), train_time_s
    state_dict:  the network's weights and buffers (normalisers and bounds included)
    training:    TrainState as a dict (optimiser, RNG, step, epoch permutation, best weights,
                 history) or None
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.schema import DatasetSpec

FORMAT_NAME = "logo_fast.world_model"
FORMAT_VERSION = 1


def model_class(kind: str):
    """The WorldModel subclass for a checkpoint's ``kind``."""
    from .ensemble import EnsembleWorldModel
    from .joint import JointWorldModel
    from .logo import LogoWorldModel

    classes = {c.kind: c for c in (LogoWorldModel, JointWorldModel, EnsembleWorldModel)}
    if kind not in classes:
        raise ValueError(f"unknown world-model kind {kind!r}; known: {sorted(classes)}")
    return classes[kind]


def write_checkpoint(model, path: str | Path) -> None:
    from .. import __version__
    from ..data.io import atomic_path

    train = model.train_state
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "config": model.config.to_dict(),
        "spec": model.spec.to_dict(),
        "package_version": __version__,
        "normalizers": model.net.statistics(),
        "action_low": None if model.action_low is None else model.action_low.cpu(),
        "action_high": None if model.action_high is None else model.action_high.cpu(),
        "n_parameters": model.num_parameters(),
        "rng_state": None if train is None else train.generator_state,
        "train_time_s": 0.0 if train is None else float(train.train_time_s),
    }
    payload = {
        "manifest": manifest,
        "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
        "training": None if train is None else _cpu(train.to_dict()),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_cpu(v) for v in x)
    return x


def read_checkpoint(path: str | Path, expected_kind: str | None = None, spec: DatasetSpec | None = None) -> dict:
    """Load and check a checkpoint: format, version, kind and (when given) spec compatibility."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no world-model checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ValueError(f"{path}: not a readable world-model checkpoint ({type(e).__name__}: {e})") from e
    m = payload.get("manifest") if isinstance(payload, dict) else None
    if not m or m.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a logo_fast world-model checkpoint")
    version = int(m.get("format_version", -1))
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version}; this logo_fast reads 1..{FORMAT_VERSION}")
    if expected_kind and m["kind"] != expected_kind:
        raise ValueError(f"{path}: holds a {m['kind']!r} world model, not {expected_kind!r} "
                         "(use logo_fast.model.load_world_model to load any kind)")
    if spec is not None:
        try:
            spec.check_compatible(DatasetSpec.from_dict(m["spec"]))
        except ValueError as e:
            raise ValueError(f"{path}: the checkpoint does not match this dataset ({e})") from e
    return payload


def load_world_model(path: str | Path, spec: DatasetSpec | None = None, device: str | None = None):
    """Load any kind of world-model checkpoint (LOGO, joint or ensemble)."""
    from .base import WorldModel

    return WorldModel.load(str(path), spec=spec, device=device)
