"""logo_fast: the LOGO local-to-global world model for offline multi-agent RL.

Importing this package is cheap and works with no Triton, no GPU and no compiled extension:
the public names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "backend_info": "logo_fast.backend",
    "choose_backend": "logo_fast.backend",
    "DatasetSpec": "logo_fast.data",
    "OfflineDataset": "logo_fast.data",
    "LogoWorldModel": "logo_fast.model",
    "JointWorldModel": "logo_fast.model",
    "EnsembleWorldModel": "logo_fast.model",
    "WorldModelConfig": "logo_fast.model",
    "WeightedSampler": "logo_fast.sampler",
    "weighted_sample": "logo_fast.sampler",
    "state_disagreement": "logo_fast.ops",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .backend import backend_info, choose_backend
    from .data import DatasetSpec, OfflineDataset
    from .model import EnsembleWorldModel, JointWorldModel, LogoWorldModel, WorldModelConfig
    from .ops import state_disagreement
    from .sampler import WeightedSampler, weighted_sample


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'logo_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
