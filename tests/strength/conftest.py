"""Fixtures of the test-strength suite: toy data, a world model trained well enough that ``u`` means something.

These tests exist to fail when core code is broken (issue 17: three one-line breakages went
unnoticed). Each test names, in its docstring, the breakage it was checked against.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import LogoWorldModel, WorldModelConfig

# Tiny networks, but trained long enough (~360 optimiser steps, a few seconds on one thread)
# that u's ranking of the model's own error is far from chance (Spearman ~0.6 measured for seed 0;
# 0.57-0.76 over config seeds 0-3; an untrained model gives ~0.06).
TRAINED = dict(hidden=32, latent=16, layers=2, agent_embed=4, batch_size=64, epochs=40, lr=3e-3, patience=50, seed=0)


def small_config(**overrides) -> WorldModelConfig:
    return WorldModelConfig(**{**TRAINED, **overrides})


@pytest.fixture(scope="session")
def train_ds():
    return make_toy_dataset(n_agents=3, n_episodes=40, episode_len=20, action_type="discrete", seed=1)


@pytest.fixture(scope="session")
def heldout_ds():
    """Episodes the model never saw in any way (another data seed, not a split of the training data)."""
    return make_toy_dataset(n_agents=3, n_episodes=10, episode_len=20, action_type="discrete", seed=11)


@pytest.fixture(scope="session")
def trained_logo(train_ds):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return LogoWorldModel(config=small_config()).fit(train_ds, progress=False)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def quick_logo(train_ds):
    """A briefly trained model (~60 steps, about a second): for tests needing a deterministic model, not a good one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return LogoWorldModel(config=small_config(epochs=5)).fit(train_ds, progress=False)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny networks run several times faster on one thread, especially on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def first_available(obs, avail):
    """A policy that always picks each agent's first available action."""
    return avail.long().argmax(-1)
