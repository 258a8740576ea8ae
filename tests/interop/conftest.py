"""Tiny toy datasets and quickly fitted world models for the interop tests (plumbing, not accuracy)."""

from __future__ import annotations

import pytest

from logo_fast.data import make_toy_dataset
from logo_fast.model import LogoWorldModel, WorldModelConfig

TINY = dict(hidden=16, latent=8, agent_embed=4, batch_size=64, epochs=3, max_steps=20, seed=0)


def tiny_config(**overrides) -> WorldModelConfig:
    return WorldModelConfig(**{**TINY, **overrides})


def _fit(action_type: str, heterogeneous: bool, seed: int) -> LogoWorldModel:
    ds = make_toy_dataset(n_agents=3, n_episodes=8, episode_len=15, action_type=action_type,
                          heterogeneous=heterogeneous, seed=seed)
    return LogoWorldModel(config=tiny_config()).fit(ds, progress=False)


@pytest.fixture(scope="session")
def discrete_model() -> LogoWorldModel:
    return _fit("discrete", False, 11)


@pytest.fixture(scope="session")
def hetero_discrete_model() -> LogoWorldModel:
    return _fit("discrete", True, 12)


@pytest.fixture(scope="session")
def hetero_continuous_model() -> LogoWorldModel:
    return _fit("continuous", True, 13)


@pytest.fixture(params=["discrete", "hetero_discrete", "hetero_continuous"])
def any_model(request) -> LogoWorldModel:
    return request.getfixturevalue(f"{request.param}_model")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks run several times faster on one thread, especially on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
