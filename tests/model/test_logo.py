"""LOGO world model: shapes, masks, padding, gradients, determinism and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.model import EnsembleWorldModel, JointWorldModel, LogoWorldModel, WorldModelConfig
from logo_fast.model.networks import LogoNet
from logo_fast.model.transitions import TransitionStore, TransitionTable

from .conftest import small_config


def _inputs(ds, n=12):
    avail = None if ds.avail_actions is None else ds.avail_actions[:n]
    return ds.obs[:n], ds.state[:n], ds.actions[:n], avail


@pytest.mark.parametrize("fixture", ["discrete_ds", "continuous_ds", "hetero_ds", "hetero_cont_ds"])
@pytest.mark.parametrize("cls", [LogoWorldModel, JointWorldModel, EnsembleWorldModel])
def test_step_shapes_masks_and_padding(request, fixture, cls):
    ds = request.getfixturevalue(fixture)
    spec = ds.spec
    model = cls(config=small_config(epochs=1)).fit(ds, progress=False)
    r = model.step(*_inputs(ds))
    B = 12
    assert r.next_obs.shape == (B, spec.n_agents, spec.obs_dim) and r.next_obs.dtype == torch.float32
    assert r.next_state.shape == (B, spec.state_dim)
    assert r.reward.shape == (B,) and r.u.shape == (B,)
    assert r.terminal.dtype == torch.bool and r.terminal.shape == (B,)
    assert ((r.terminal_prob >= 0) & (r.terminal_prob <= 1)).all()
    if spec.discrete:
        assert r.next_avail.shape == (B, spec.n_agents, spec.n_actions) and r.next_avail.dtype == torch.bool
        assert r.next_avail.any(-1).all(), "every agent keeps at least one available action"
    else:
        assert r.next_avail is None
    pad = ~torch.as_tensor(spec.obs_mask())
    assert (r.next_obs[:, pad] == 0).all(), "padded observation features must be exactly 0"
    if spec.heterogeneous:
        assert pad.any()
    for v in (r.next_obs, r.next_state, r.reward, r.u):
        assert torch.isfinite(v).all()
    if cls.has_uncertainty:
        assert (r.u > 0).all()
    else:
        assert (r.u == 0).all()


def _all_grads(net, batch):
    net.zero_grad()
    loss, _ = net.losses(batch)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not bool((p.grad != 0).any())]
    return missing


@pytest.mark.parametrize("overrides", [
    {},
    {"per_agent_weights": True, "pool": "attention", "obs_loss": "nll", "deductive_context": "reward"},
    {"deductive_context": "none", "predict_delta": False},
    {"deductive_context": "all", "aux_encoder": "separate", "outcome_dropout": 0.2},
])
def test_gradients_reach_every_parameter(discrete_ds, overrides):
    cfg = small_config(**overrides)
    model = LogoWorldModel(discrete_ds.spec, cfg)
    table = TransitionTable(TransitionStore(discrete_ds))
    batch = table.batch(torch.arange(64))
    # Terminal rows make the termination gradient non-trivial in every parameter it touches.
    assert _all_grads(model.net, batch) == []


@pytest.mark.parametrize("cls", [JointWorldModel, EnsembleWorldModel])
def test_baseline_gradients_reach_every_parameter(continuous_ds, cls):
    model = cls(continuous_ds.spec, small_config())
    batch = TransitionTable(TransitionStore(continuous_ds)).batch(torch.arange(64))
    assert _all_grads(model.net, batch) == []


def test_per_agent_weights_and_agent_embedding_differ_per_agent(discrete_ds):
    net = LogoNet(discrete_ds.spec, small_config(per_agent_weights=True))
    net.reset_parameters(torch.Generator().manual_seed(0))
    w = net.encoder.linears[0].weight
    assert w.shape[0] == discrete_ds.spec.n_agents
    assert not torch.equal(w[0], w[1])


def test_same_seed_same_weights_different_seed_differs(discrete_ds):
    fits = [LogoWorldModel(config=small_config(epochs=2, seed=s)).fit(discrete_ds, progress=False) for s in (5, 5, 6)]
    sd = [f.net.state_dict() for f in fits]
    assert all(torch.equal(sd[0][k], sd[1][k]) for k in sd[0])
    assert not all(torch.equal(sd[0][k], sd[2][k]) for k in sd[0] if sd[0][k].is_floating_point())


def test_holdout_is_the_split_episodes_holdout(discrete_ds):
    from logo_fast.model.transitions import holdout_episodes

    cfg = WorldModelConfig()
    _, hold = discrete_ds.split_episodes(cfg.holdout_fraction, cfg.seed)
    held = holdout_episodes(discrete_ds.n_episodes, cfg.holdout_fraction, cfg.seed)
    starts, ends = discrete_ds.episode_bounds()
    steps = np.concatenate([np.arange(starts[e], ends[e]) for e in held])
    np.testing.assert_array_equal(hold.obs, discrete_ds.obs[steps])


def test_training_reduces_holdout_error(discrete_ds):
    model = LogoWorldModel(config=small_config(epochs=120, hidden=64, latent=32, eval_every=30)).fit(
        discrete_ds, progress=False)
    hist = model.train_state.history
    assert hist[-1]["best_holdout"] < 0.6 * hist[0]["holdout"]


def test_bad_step_input_lists_every_problem(fitted_logo, discrete_ds):
    obs, state, actions, avail = _inputs(discrete_ds)
    bad_obs = obs.copy()
    bad_obs[2, 0, 0] = np.nan
    bad_actions = actions.copy()
    bad_actions[1, 1] = 7
    with pytest.raises(ValueError) as e:
        fitted_logo.step(bad_obs, state[:5], bad_actions, avail)
    msg = str(e.value)
    assert "state: 5 rows but obs has 12" in msg
    assert "obs: 1 non-finite" in msg and "actions: 1 outside [0, 5)" in msg
    with pytest.raises(ValueError) as e:
        fitted_logo.step(bad_obs, state, bad_actions, avail)
    msg = str(e.value)
    assert "obs: 1 non-finite" in msg and "rows [2]" in msg
    assert "actions: 1 outside [0, 5)" in msg and "rows [1]" in msg
    with pytest.raises(ValueError, match="agent count 2 != the model's n_agents 3"):
        fitted_logo.step(obs[:, :2], state, actions[:, :2], None)
    with pytest.raises(ValueError, match="not an integer type"):
        fitted_logo.step(obs, state, actions.astype(np.float32), avail)
    with pytest.raises(ValueError, match="empty batch"):
        fitted_logo.step(obs[:0], state[:0], actions[:0], None)
    unavail = avail.copy()
    unavail[0, 0, :] = False
    unavail[0, 0, 0] = True
    acts = actions.copy()
    acts[0, 0] = 1
    with pytest.raises(ValueError, match="unavailable actions chosen"):
        fitted_logo.step(obs, state, acts, unavail)


def test_bad_continuous_actions(fitted_logo_cont, hetero_cont_ds):
    obs, state, actions, _ = _inputs(hetero_cont_ds)
    too_big = actions.copy()
    too_big[3, 2, 0] = 5.0
    with pytest.raises(ValueError, match=r"outside \[action_low, action_high\] in rows \[3\]"):
        fitted_logo_cont.step(obs, state, too_big)
    padded = obs.copy()
    padded[0, 0, -1] = 1.0  # agent 0 has the smallest observation in the heterogeneous task
    with pytest.raises(ValueError, match="non-zero padded entries"):
        fitted_logo_cont.step(padded, state, actions)


def test_fit_rejects_invalid_dataset(discrete_ds):
    import dataclasses

    bad = dataclasses.replace(discrete_ds, obs=discrete_ds.obs.copy(), rewards=discrete_ds.rewards.copy())
    bad.obs[3, 1, 2] = np.inf
    bad.rewards[0] = np.nan
    with pytest.raises(ValueError) as e:
        LogoWorldModel(config=small_config()).fit(bad, progress=False)
    assert "obs" in str(e.value) and "rewards" in str(e.value)


def test_non_finite_training_loss_stops_the_fit_before_the_weights_move(discrete_ds, monkeypatch):
    original, calls = LogoNet.losses, {"n": 0}

    def poisoned(self, batch):
        loss, parts = original(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3:
                loss = loss * float("nan")
        return loss, parts

    monkeypatch.setattr(LogoNet, "losses", poisoned)
    model = LogoWorldModel(config=small_config(max_steps=6))
    with pytest.raises(FloatingPointError, match="non-finite training loss at step 2"):
        model.fit(discrete_ds, progress=False)
    assert all(torch.isfinite(v).all() for v in model.net.state_dict().values() if v.is_floating_point())


def test_config_validation_lists_every_problem():
    with pytest.raises(ValueError) as e:
        WorldModelConfig(hidden=0, n_elites=9, pool="max")
    msg = str(e.value)
    assert "hidden must be >= 1" in msg and "n_elites (9)" in msg and "pool must be" in msg


def test_step_chunks_give_the_same_result(fitted_logo, discrete_ds):
    import dataclasses

    full = fitted_logo.step(*_inputs(discrete_ds, 50))
    fitted_logo.config = dataclasses.replace(fitted_logo.config, step_chunk=7)
    try:
        chunked = fitted_logo.step(*_inputs(discrete_ds, 50))
    finally:
        fitted_logo.config = dataclasses.replace(fitted_logo.config, step_chunk=65_536)
    torch.testing.assert_close(full.next_obs, chunked.next_obs)
    torch.testing.assert_close(full.u, chunked.u)


def test_u_is_the_state_disagreement(fitted_logo, discrete_ds):
    obs, state, actions = (torch.as_tensor(x) for x in _inputs(discrete_ds, 20)[:3])
    net = fitted_logo.net
    p = net.predict(obs, state, actions)
    # Normalised state units over the varying features only: a constant feature never adds to u.
    expect = torch.linalg.vector_norm((p["aux_state"] - p["next_state"]) * net.state_live / net.state_std, dim=-1)
    torch.testing.assert_close(p["u"], expect, rtol=1e-5, atol=1e-6)
