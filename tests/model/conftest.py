"""Small toy datasets and quickly fitted models shared by the world-model tests."""

from __future__ import annotations

import pytest

from logo_fast.data import make_toy_dataset
from logo_fast.model import WorldModelConfig

# Tiny networks and a few epochs: the tests check plumbing and invariants, not accuracy.
SMALL = dict(hidden=32, latent=16, layers=2, agent_embed=4, batch_size=64, epochs=3, n_members=3, n_elites=2,
             patience=50)


def small_config(**overrides) -> WorldModelConfig:
    return WorldModelConfig(**{**SMALL, **overrides})


@pytest.fixture(scope="session")
def discrete_ds():
    return make_toy_dataset(n_agents=3, n_episodes=10, episode_len=20, action_type="discrete", seed=1)


@pytest.fixture(scope="session")
def continuous_ds():
    return make_toy_dataset(n_agents=3, n_episodes=10, episode_len=20, action_type="continuous", seed=2)


@pytest.fixture(scope="session")
def hetero_ds():
    return make_toy_dataset(n_agents=3, n_episodes=10, episode_len=20, action_type="discrete", heterogeneous=True,
                            seed=3)


@pytest.fixture(scope="session")
def hetero_cont_ds():
    return make_toy_dataset(n_agents=3, n_episodes=10, episode_len=20, action_type="continuous",
                            heterogeneous=True, seed=4)


@pytest.fixture(scope="session")
def fitted_logo(discrete_ds):
    from logo_fast.model import LogoWorldModel

    return LogoWorldModel(config=small_config()).fit(discrete_ds, progress=False)


@pytest.fixture(scope="session")
def fitted_logo_cont(hetero_cont_ds):
    from logo_fast.model import LogoWorldModel

    return LogoWorldModel(config=small_config()).fit(hetero_cont_ds, progress=False)


def first_available(obs, avail):
    """A policy that always picks each agent's first available action."""
    return avail.long().argmax(-1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks run several times faster on one thread, especially on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
