"""Scenario ids -> adapter factories: ``make_env("smax:2s3z", batch_size=64)``.

Ids are ``family:scenario``. The 8 benchmark scenarios plus the MPE tasks are listed by
``list_envs()``; any MaMuJoCo robot/conf pair that gymnasium-robotics knows and any SMAX map
name that jaxmarl knows also work (they are passed through).
"""

from __future__ import annotations

from .base import EnvAdapter
from .mamujoco import MaMuJoCoAdapter
from .mpe import MPEAdapter
from .smax import SMAXAdapter

MPE_SCENARIOS = ("simple_spread", "simple_tag", "simple_reference")
MAMUJOCO_SCENARIOS = ("HalfCheetah-6x1", "Hopper-3x1", "Ant-2x4", "Walker2d-2x3")
SMAX_SCENARIOS = ("2s3z", "3s_vs_5z", "5m_vs_6m", "6h_vs_8z")
FAMILIES = ("mpe", "mamujoco", "smax")


def list_envs() -> list[str]:
    """Every registered scenario id (the 8 benchmark scenarios and the MPE tasks)."""
    return (
        [f"mpe:{s}" for s in MPE_SCENARIOS]
        + [f"smax:{s}" for s in SMAX_SCENARIOS]
        + [f"mamujoco:{s}" for s in MAMUJOCO_SCENARIOS]
    )


def parse_env_id(env_id: str) -> tuple[str, str]:
    """'smax:2s3z' -> ('smax', '2s3z'); ValueError naming the known ids otherwise."""
    family, sep, scenario = str(env_id).partition(":")
    if not sep or family not in FAMILIES or not scenario:
        raise ValueError(
            f"unknown env id {env_id!r}: expected 'family:scenario' with family in {FAMILIES}; "
            f"registered ids: {', '.join(list_envs())}"
        )
    if family == "mpe" and scenario not in MPE_SCENARIOS:
        raise ValueError(f"unknown MPE scenario {scenario!r}; known: {MPE_SCENARIOS}")
    return family, scenario


def make_env(env_id: str, batch_size: int = 1, time_limit: int | None = None) -> EnvAdapter:
    """An adapter running ``batch_size`` copies of ``env_id``; ``time_limit`` None keeps the scenario's default."""
    family, scenario = parse_env_id(env_id)
    kwargs = {} if time_limit is None else {"time_limit": int(time_limit)}
    if family == "mpe":
        return MPEAdapter(scenario, batch_size=batch_size, **kwargs)
    if family == "mamujoco":
        return MaMuJoCoAdapter(scenario, batch_size=batch_size, **kwargs)
    return SMAXAdapter(scenario, batch_size=batch_size, **kwargs)
