"""Pinned seed -> value checks: a change in how seeds map to random streams must show up (issue 17).

The determinism tests elsewhere compare two calls in one process, so a change in *which* numbers a
seed produces (a new init order, another generator, one more draw before the ones that matter)
passes them. These values were recorded with torch 2.13 (CPU) and numpy's PCG64.

When a deliberate change moves one of them (a new layer, another init, a new draw order), check
that the change is meant, re-record the value with the snippet in the test's docstring, and say
in the commit message that the seed mapping changed (old checkpoints' and reports' seeds then
no longer reproduce the same run).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import LogoWorldModel, WorldModelConfig
from logo_fast.model.metrics import open_loop_starts
from logo_fast.model.transitions import holdout_episodes
from logo_fast.replay import UncertaintyWeightedReplay

from .conftest import first_available
from .test_replay_real_uniform import _real_rows


@pytest.fixture(scope="module")
def ds():
    return make_toy_dataset(n_agents=3, n_episodes=4, episode_len=10, action_type="discrete", seed=1)


# Re-recorded when the default deductive state head became "hybrid" (2S outputs: one more draw before
# the agent embedding's).
@pytest.mark.parametrize("seed,n,total,abs_total,first_w,first_e", [
    (0, 85791, 1.4966911567566967, 4615.243764336458, [-0.0011417294153943658, 0.08180688321590424],
     [0.5431544780731201, -0.02843768149614334]),
    (1, 85791, 4.654157923609546, 4616.641864143499, [0.07857690006494522, -0.06730955094099045],
     [-0.7709282040596008, 0.2866000533103943]),
])
def test_initial_weights_of_a_seed(ds, seed, n, total, abs_total, first_w, first_e):
    """Re-record: ``ps = [p.double() for p in LogoWorldModel(spec=ds.spec, config=WorldModelConfig(seed=s)).net
    .parameters()]``; sum of sums, sum of abs sums, ``net.encoder.linears[0].weight.flatten()[:2]``,
    ``net.agent_embedding[0, :2]``."""
    net = LogoWorldModel(spec=ds.spec, config=WorldModelConfig(seed=seed)).net
    ps = [p.detach().double() for p in net.parameters()]
    assert sum(p.numel() for p in ps) == n
    assert sum(float(p.sum()) for p in ps) == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert sum(float(p.abs().sum()) for p in ps) == pytest.approx(abs_total, rel=1e-9)
    assert net.encoder.linears[0].weight.flatten()[:2].tolist() == pytest.approx(first_w, rel=1e-6)
    assert net.agent_embedding[0, :2].tolist() == pytest.approx(first_e, rel=1e-6)


def test_rollout_start_indices_of_a_seeded_generator(ds):
    """Re-record: ``model.rollout(first_available, starts=8, horizon=1, generator=torch.Generator().manual_seed(3),
    dataset=ds)["start"]`` (any model on ``ds``: the draw depends only on len(ds) = 39 and the generator)."""
    model = LogoWorldModel(spec=ds.spec, config=WorldModelConfig(seed=0, hidden=16, latent=8, agent_embed=4))
    out = model.rollout(first_available, starts=8, horizon=1, generator=torch.Generator().manual_seed(3), dataset=ds)
    assert len(ds) == 39
    assert out["start"][out["horizon_step"] == 0].tolist() == [28, 32, 31, 3, 13, 36, 18, 2]


def test_holdout_episodes_of_a_seed():
    """Re-record: ``holdout_episodes(40, 0.1, 0)``, ``holdout_episodes(10, 0.3, 7)``."""
    assert holdout_episodes(40, 0.1, 0).tolist() == [4, 11, 24, 27]
    assert holdout_episodes(10, 0.3, 7).tolist() == [0, 7, 8]


def test_open_loop_starts_of_a_seed(ds):
    """Re-record: ``open_loop_starts(ds, "any_step", 5, 0)``, ``open_loop_starts(ds, "episode_start", 2, 1)``."""
    start, end = open_loop_starts(ds, "any_step", 5, 0)
    assert start.tolist() == [2, 4, 10, 20, 21] and end.tolist() == [10, 10, 20, 29, 29]
    start, end = open_loop_starts(ds, "episode_start", 2, 1)
    assert start.tolist() == [0, 10] and end.tolist() == [10, 20]


def test_replay_real_draws_of_a_seed():
    """Re-record: ``UncertaintyWeightedReplay(_real_rows(10), capacity=4, C=1.0, seed=0).sample(8)["rewards"]``
    (each real row's reward is its index)."""
    replay = UncertaintyWeightedReplay(_real_rows(10), capacity=4, C=1.0, seed=0)
    assert replay.sample(8)["rewards"].long().tolist() == [4, 9, 3, 0, 3, 9, 7, 3]
    assert np.all(replay.sample(4)["source"].numpy() == 0)
