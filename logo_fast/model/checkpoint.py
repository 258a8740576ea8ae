"""World-model checkpoints: one ``torch.save`` file with a versioned manifest, written atomically.

Layout (a dict; loaded with ``weights_only=True``, so a checkpoint cannot run code)::

    manifest:    format, format_version, kind ("logo" | "joint" | "ensemble"), config (dict),
                 spec (DatasetSpec dict), package_version, normalizers (name -> tensor),
                 action_low/action_high (continuous bounds or None), n_parameters,
                 rng_state (the minibatch generator's state or None), train_time_s,
                 data_fingerprint (of the data fit() saw, or None)
    state_dict:  the network's weights and buffers (normalisers and bounds included)
    training:    TrainState as a dict (optimiser, RNG, step, epoch permutation, best weights,
                 history) or None
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.schema import DatasetSpec
from ..files import atomic_path

FORMAT_NAME = "logo_fast.world_model"
# Version 2 (logo_fast 0.2): LOGO's deductive model reads [predicted delta, predicted obs] per
# agent (its first layer is twice as wide), the config gained aux_encoder / select_by /
# outcome_dropout, and every network's predict() takes raw actions. Version-1 files cannot
# be mapped onto the new network: they are refused with a message that says to retrain.
FORMAT_VERSION = 2


def write_checkpoint(model, path: str | Path) -> None:
    from .. import __version__

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
        "data_fingerprint": model.data_fingerprint,
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
        # torch's own message advises weights_only=False, i.e. running the file's code: never repeat that.
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path}: not a readable world-model checkpoint ({type(e).__name__}"
                         f"{': ' + first if first and 'weights_only' not in first else ''})") from None
    m = payload.get("manifest") if isinstance(payload, dict) else None
    if not m or m.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a logo_fast world-model checkpoint")
    version = int(m.get("format_version", -1))
    if version == 1:
        raise ValueError(f"{path}: a format-1 checkpoint (logo_fast 0.1, before the local-to-global deductive "
                         f"model); this logo_fast reads {FORMAT_VERSION}: retrain the model (wm eval --retrain)")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version}; this logo_fast reads {FORMAT_VERSION}")
    if expected_kind and m["kind"] != expected_kind:
        raise ValueError(f"{path}: holds a {m['kind']!r} world model, not {expected_kind!r} "
                         "(use logo_fast.model.load_world_model to load any kind)")
    if spec is not None:
        try:
            spec.check_compatible(DatasetSpec.from_dict(m["spec"]))
        except ValueError as e:
            raise ValueError(f"{path}: the checkpoint does not match this dataset ({e})") from e
    return payload
