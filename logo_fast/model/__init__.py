"""World models for offline multi-agent RL: LOGO and its baselines, behind one interface.

    LogoWorldModel      the LOGO local-to-global model (uncertainty: two-path disagreement)
    JointWorldModel     centralised MLP of LOGO's parameter count (no uncertainty)
    EnsembleWorldModel  MOPO-style Gaussian ensemble, 7 members / 5 elites

Each has ``fit(dataset, holdout=None, progress=True, resume_from=None)``, ``step(obs, state,
actions, avail=None) -> StepResult``, ``rollout(policy, starts, horizon=15, u_threshold=None,
generator=None)``, ``save(path)`` and ``load(path)``. Heavy pieces (matplotlib, the imagined
environment's gymnasium spaces) load lazily.
"""

from __future__ import annotations

from .base import NonFinitePredictionError, StepResult, WorldModel, load_world_model
from .config import WorldModelConfig
from .ensemble import EnsembleWorldModel
from .joint import JointWorldModel
from .logo import LogoWorldModel

MODEL_CLASSES = {"logo": LogoWorldModel, "joint": JointWorldModel, "ensemble": EnsembleWorldModel}


def __getattr__(name: str):
    if name == "ImaginedParallelEnv":
        from .imagined_env import ImaginedParallelEnv

        return ImaginedParallelEnv
    if name == "ImaginedVectorEnv":
        from .imagined_vector_env import ImaginedVectorEnv

        return ImaginedVectorEnv
    if name in ("EvalArgs", "run_eval", "evaluate_models"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module 'logo_fast.model' has no attribute {name!r}")


__all__ = [
    "EnsembleWorldModel",
    "EvalArgs",
    "ImaginedParallelEnv",
    "ImaginedVectorEnv",
    "JointWorldModel",
    "LogoWorldModel",
    "MODEL_CLASSES",
    "NonFinitePredictionError",
    "StepResult",
    "WorldModel",
    "WorldModelConfig",
    "evaluate_models",
    "load_world_model",
    "run_eval",
]
