"""Baselines: the joint MLP's matched parameter count and the ensemble's elites."""

from __future__ import annotations

import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import EnsembleWorldModel, JointWorldModel, LogoWorldModel, WorldModelConfig

from .conftest import small_config


@pytest.mark.parametrize("kw", [
    dict(n_agents=3, action_type="discrete"),
    dict(n_agents=6, action_type="continuous", heterogeneous=True),
    dict(n_agents=2, action_type="continuous"),
])
@pytest.mark.parametrize("cfg", [WorldModelConfig(), WorldModelConfig(hidden=64, latent=32, per_agent_weights=True)])
def test_joint_parameter_count_matches_logo(kw, cfg):
    spec = make_toy_dataset(n_episodes=1, episode_len=2, **kw).spec
    logo = LogoWorldModel(spec, cfg).num_parameters()
    joint = JointWorldModel(spec, cfg).num_parameters()
    assert abs(joint - logo) / logo < 0.10, (logo, joint)
    ens = EnsembleWorldModel(spec, cfg)
    assert abs(ens.num_parameters() / cfg.n_members - logo) / logo < 0.10


def test_ensemble_elites_are_the_best_members(discrete_ds):
    model = EnsembleWorldModel(config=small_config(epochs=3, n_members=4, n_elites=2)).fit(discrete_ds, progress=False)
    best = model.train_state.best_score
    assert best.shape == (4,)
    assert sorted(model.elites) == sorted(torch.argsort(best)[:2].tolist())
    # The kept weights are each member's best: re-scoring the holdout reproduces best_score.
    from logo_fast.model.training import holdout_score
    from logo_fast.model.transitions import TransitionStore, TransitionTable, holdout_episodes

    store = TransitionStore(discrete_ds)
    held = TransitionTable(store, holdout_episodes(discrete_ds.n_episodes, 0.1, 0))
    again = holdout_score(model.net, held, torch.arange(len(held)), "cpu")
    torch.testing.assert_close(again, best, rtol=1e-5, atol=1e-6)


def test_ensemble_members_differ_and_one_forward_matches_per_member(discrete_ds):
    model = EnsembleWorldModel(discrete_ds.spec, small_config(n_members=3, n_elites=3))
    net = model.net
    obs = torch.as_tensor(discrete_ds.obs[:5])
    state = torch.as_tensor(discrete_ds.state[:5])
    actions = torch.as_tensor(discrete_ds.actions[:5])
    act = net.action_input(actions)
    mean, logstd, term, _ = net.forward_n(obs, state, actions)
    assert not torch.allclose(mean[:, 0], mean[:, 1])
    # Member 1 alone, through plain matmuls, equals its slice of the batched forward.
    x = torch.cat([net.norm_obs(obs).flatten(1), net.norm_state(state), act], -1)
    for i, lin in enumerate(net.mlp.linears):
        x = x @ lin.weight[1] + lin.bias[1]
        if i < len(net.mlp.linears) - 1:
            x = torch.nn.functional.silu(x)
    torch.testing.assert_close(x[:, : net.gauss_dim] * net.gauss_mask, mean[:, 1])


def test_constant_features_are_exact_and_out_of_the_likelihood(discrete_ds):
    # The toy landmark never moves within an episode: its state change is always 0.
    model = EnsembleWorldModel(config=small_config(epochs=1, obs_loss="nll")).fit(discrete_ds, progress=False)
    net = model.net
    assert net.dstate_live[-2:].eq(0).all() and net.dstate_live[:-2].eq(1).all()
    assert net.gauss_mask[-3:-1].eq(0).all() and net.gauss_mask[-1] == 1
    r = model.step(discrete_ds.obs[:9], discrete_ds.state[:9], discrete_ds.actions[:9])
    torch.testing.assert_close(r.next_state[:, -2:], torch.as_tensor(discrete_ds.state[:9, -2:]))
