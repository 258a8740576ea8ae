"""The offline learners on tiny data: losses fall, CQL pushes down unseen actions, masks hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.data import DatasetSpec, make_toy_dataset
from logo_fast.learners import (
    BCConfig,
    BCContinuous,
    BCDiscrete,
    Learner,
    MACQLContinuous,
    MACQLContinuousConfig,
    MACQLDiscrete,
    MACQLDiscreteConfig,
    make_learner,
)
from logo_fast.replay import UncertaintyWeightedReplay


def _learner(kind: str, spec, ds=None):
    low = None if ds is None else ds.action_low
    high = None if ds is None else ds.action_high
    if kind == "macql_discrete":
        return MACQLDiscrete(spec, MACQLDiscreteConfig(hidden=32, mixer_embed=8, seed=0))
    if kind == "macql_continuous":
        cfg = MACQLContinuousConfig(hidden=32, n_action_samples=4, critic_lr=1e-3, actor_lr=1e-3, seed=0)
        return MACQLContinuous(spec, cfg, low, high)
    if kind == "bc_discrete":
        return BCDiscrete(spec, BCConfig(hidden=32))
    return BCContinuous(spec, BCConfig(hidden=32), low, high)


@pytest.mark.parametrize("kind", ["macql_discrete", "macql_continuous", "bc_discrete", "bc_continuous"])
def test_loss_decreases_on_a_tiny_dataset(kind):
    action_type = "discrete" if kind.endswith("discrete") else "continuous"
    ds = make_toy_dataset(n_agents=2, n_episodes=6, episode_len=10, action_type=action_type, seed=1)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    learner = _learner(kind, ds.spec, ds)
    assert isinstance(learner, Learner)
    losses = [learner.update(replay.sample(64))["loss"] for _ in range(300)]
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert np.isfinite(losses).all()
    assert last < 0.7 * first, (kind, first, last)
    assert learner.state_dict()["n_updates"] == 300


def _one_action_batch(spec: DatasetSpec, B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Rows in which every agent always took action 0 (discrete) or actions near 0 (continuous)."""
    N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
    batch = {
        "obs": torch.randn(B, N, D, generator=g), "state": torch.randn(B, S, generator=g),
        "next_obs": torch.randn(B, N, D, generator=g), "next_state": torch.randn(B, S, generator=g),
        "rewards": torch.rand(B, generator=g), "terminals": torch.zeros(B, dtype=torch.bool),
    }
    if spec.discrete:
        batch["actions"] = torch.zeros(B, N, dtype=torch.int64)
        batch["avail_actions"] = torch.ones(B, N, spec.n_actions, dtype=torch.bool)
        batch["next_avail"] = batch["avail_actions"].clone()
    else:
        batch["actions"] = 0.05 * torch.randn(B, N, spec.act_dim, generator=g)
    return batch


def test_cql_lowers_q_of_discrete_actions_absent_from_the_data():
    spec = DatasetSpec(n_agents=2, obs_dim=4, state_dim=6, action_type="discrete", n_actions=4)
    absent = {}
    for alpha in (0.0, 2.0):
        learner = MACQLDiscrete(spec, MACQLDiscreteConfig(hidden=32, mixer_embed=8, cql_alpha=alpha, gamma=0.5))
        g = torch.Generator().manual_seed(0)
        for _ in range(300):
            learner.update(_one_action_batch(spec, 64, g))
        q = learner.agent_q(_one_action_batch(spec, 512, g)["obs"]).detach()
        absent[alpha] = (q[..., 1:].mean() - q[..., 0].mean()).item()
    # Without CQL nothing ties the unseen actions down; with it they sit clearly below the data action.
    assert absent[2.0] < -1.0, absent
    assert absent[2.0] < absent[0.0] - 1.0, absent


def test_cql_lowers_q_of_continuous_joint_actions_absent_from_the_data():
    spec = DatasetSpec(n_agents=2, obs_dim=4, state_dim=6, action_type="continuous", act_dim=2)
    gap = {}
    for alpha in (0.0, 5.0):
        learner = MACQLContinuous(spec, MACQLContinuousConfig(hidden=32, n_action_samples=4, cql_alpha=alpha,
                                                              gamma=0.5, auto_alpha=False, init_alpha=0.1))
        g = torch.Generator().manual_seed(0)
        for _ in range(300):
            learner.update(_one_action_batch(spec, 64, g))
        b = _one_action_batch(spec, 512, g)
        with torch.no_grad():
            q_data = learner.critic(b["state"], learner.normalise(b["actions"]))[0]
            far = torch.full_like(b["actions"], 0.9) * torch.sign(torch.randn(b["actions"].shape, generator=g))
            q_far = learner.critic(b["state"], far)[0]
        gap[alpha] = (q_far - q_data).mean().item()
    assert gap[5.0] < -0.5, gap
    assert gap[5.0] < gap[0.0] - 0.5, gap


@pytest.mark.parametrize("kind", ["macql_discrete", "bc_discrete"])
def test_unavailable_actions_are_never_chosen(kind):
    spec = DatasetSpec(n_agents=3, obs_dim=5, state_dim=7, action_type="discrete", n_actions=6)
    learner = _learner(kind, spec)
    if kind == "macql_discrete":
        learner.config.explore_epsilon = 1.0  # every exploratory draw is random too
        last = learner.q_net[-1]
    else:
        last = learner.policy[-1]
    with torch.no_grad():  # make action 2 by far the most attractive, then forbid it most of the time
        last.bias[2] = 1e4
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(4096, 3, 5, generator=g)
    avail = torch.rand(4096, 3, 6, generator=g) < 0.4
    avail[..., 2] = torch.rand(4096, 3, generator=g) < 0.2
    avail[~avail.any(-1)] = torch.tensor([False, False, False, False, False, True])
    for deterministic in (True, False):
        a = learner.act(obs, avail, deterministic=deterministic)
        assert a.shape == (4096, 3) and a.dtype == torch.int64
        assert avail.gather(-1, a.unsqueeze(-1)).all(), deterministic
    # where action 2 is allowed the greedy choice takes it: the mask, not the values, kept it out
    greedy = learner.act(obs, avail, deterministic=True)
    assert (greedy[avail[..., 2]] == 2).all()


def test_continuous_actions_stay_inside_the_bounds():
    spec = DatasetSpec(n_agents=2, obs_dim=4, state_dim=6, action_type="continuous", act_dim=3,
                       agent_act_dims=(3, 2))
    low = np.array([[-0.4, -1, -2], [-1, -1, 0]], np.float32)
    high = np.array([[0.4, 1, 2], [1, 3, 0]], np.float32)
    for learner in (MACQLContinuous(spec, MACQLContinuousConfig(hidden=16), low, high),
                    BCContinuous(spec, BCConfig(hidden=16), low, high)):
        obs = 10 * torch.randn(1000, 2, 4)
        for det in (True, False):
            a = learner.act(obs, None, deterministic=det)
            assert a.shape == (1000, 2, 3)
            assert (a >= torch.as_tensor(low) - 1e-6).all() and (a <= torch.as_tensor(high) + 1e-6).all()
            assert (a[:, 1, 2] == 0).all()  # the padding dimension of agent 1


@pytest.mark.parametrize("kind", ["macql_discrete", "macql_continuous", "bc_discrete", "bc_continuous"])
def test_state_dict_round_trip_continues_identically(kind):
    action_type = "discrete" if kind.endswith("discrete") else "continuous"
    ds = make_toy_dataset(n_agents=2, n_episodes=4, episode_len=8, action_type=action_type, seed=2)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    batches = [replay.sample(32) for _ in range(6)]
    a = _learner(kind, ds.spec, ds)
    a.fit_normalizer(torch.as_tensor(ds.obs), torch.as_tensor(ds.state))
    for b in batches[:3]:
        a.update(b)
    b_learner = _learner(kind, ds.spec, ds)
    b_learner.load_state_dict(a.state_dict())
    out_a = [a.update(b) for b in batches[3:]]
    out_b = [b_learner.update(b) for b in batches[3:]]
    assert out_a == out_b
    obs = torch.as_tensor(np.asarray(ds.obs[:16]))
    avail = None if ds.avail_actions is None else torch.as_tensor(np.asarray(ds.avail_actions[:16]))
    assert torch.equal(a.act(obs, avail, deterministic=False), b_learner.act(obs, avail, deterministic=False))


def test_bad_configs_list_every_problem():
    spec = DatasetSpec(n_agents=2, obs_dim=4, state_dim=6, action_type="discrete", n_actions=4)
    with pytest.raises(ValueError) as err:
        MACQLDiscrete(spec, MACQLDiscreteConfig(hidden=0, lr=-1, gamma=2))
    msg = str(err.value)
    assert "hidden" in msg and "lr" in msg and "gamma" in msg
    with pytest.raises(ValueError, match="continuous task"):
        MACQLContinuous(spec)
    with pytest.raises(ValueError, match="unknown learner"):
        make_learner("omiga", spec)
    assert isinstance(make_learner("macql", spec), MACQLDiscrete)


@pytest.mark.parametrize("kind", ["macql_discrete", "macql_continuous", "bc_discrete", "bc_continuous"])
def test_fitted_normalizer_makes_learning_blind_to_input_scale(kind):
    action_type = "discrete" if kind.endswith("discrete") else "continuous"
    ds = make_toy_dataset(n_agents=2, n_episodes=4, episode_len=8, action_type=action_type, seed=5)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    batches = [replay.sample(32) for _ in range(20)]
    losses = []
    for scale, shift in ((1.0, 0.0), (300.0, -7.0)):
        learner = _learner(kind, ds.spec, ds)
        learner.fit_normalizer(torch.as_tensor(ds.obs) * scale + shift, torch.as_tensor(ds.state) * scale + shift)
        out = []
        for b in batches:
            b = {**b, **{k: b[k] * scale + shift for k in ("obs", "next_obs", "state", "next_state")}}
            out.append(learner.update(b)["loss"])
        losses.append(out)
    # float32 rounding of the shifted inputs differs a little; a network fed raw x300 inputs would not be close
    assert np.allclose(losses[0], losses[1], rtol=2e-3, atol=1e-4), (losses[0][-3:], losses[1][-3:])


@pytest.mark.parametrize("kind", ["macql_discrete", "macql_continuous"])
def test_cql_rows_real_uses_only_real_rows(kind):
    action_type = "discrete" if kind.endswith("discrete") else "continuous"
    ds = make_toy_dataset(n_agents=2, n_episodes=4, episode_len=8, action_type=action_type, seed=6)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    batch = replay.sample(32)
    synthetic = {**batch, "source": torch.ones(32, dtype=torch.int64)}
    mixed = {**batch, "source": (torch.arange(32) % 2)}
    # the defaults, as measured (docs/results.md): real rows only for discrete, COMBO's split for continuous
    assert _learner(kind, ds.spec, ds).config.cql_rows == ("real" if kind == "macql_discrete" else "combo")
    real_only = _learner(kind, ds.spec, ds)
    real_only.config.cql_rows = "real"
    assert real_only.update(synthetic)["cql_loss"] == 0.0  # no real row: no CQL push at all
    everything = _learner(kind, ds.spec, ds)
    everything.config.cql_rows = "all"
    assert everything.update(synthetic)["cql_loss"] != 0.0
    assert _learner(kind, ds.spec, ds).update(mixed)["cql_loss"] != 0.0


def _q_at(learner, kind: str, batch) -> float:
    """Mean Q of the batch's own (state, action) rows: the agents' Qs (discrete: where CQL acts, before the
    mixer, whose state-dependent bias TD alone sets) or the first critic head (continuous)."""
    with torch.no_grad():
        if kind == "macql_discrete":
            return float(learner.agent_q(batch["obs"]).gather(-1, batch["actions"].long().unsqueeze(-1)).mean())
        q1, _ = learner.critic(learner.norm.state(batch["state"]), learner.normalise(batch["actions"]))
        return float(q1.mean())


@pytest.mark.parametrize("kind", ["macql_discrete", "macql_continuous"])
def test_combo_cql_pushes_q_down_at_synthetic_states(kind):
    """cql_rows="combo" lowers Q where the rows are synthetic (its push-down covers them), "real" does not."""
    action_type = "discrete" if kind.endswith("discrete") else "continuous"
    ds = make_toy_dataset(n_agents=2, n_episodes=6, episode_len=8, action_type=action_type, seed=7)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    real, synthetic = replay.sample(32), replay.sample(32)
    # synthetic rows at states the real data never visits (shifted), as a model's rollouts reach
    shifted = {k: synthetic[k] + 2.0 for k in ("obs", "next_obs", "state", "next_state")}
    synthetic_part = {**synthetic, **shifted, "source": torch.ones(32, dtype=torch.int64)}
    mixed = {k: torch.cat([real[k], synthetic_part[k]]) if k in synthetic_part else real[k] for k in real}
    mixed["source"] = torch.cat([torch.zeros(32, dtype=torch.int64), torch.ones(32, dtype=torch.int64)])
    q = {}
    for mode in ("real", "combo"):
        learner = _learner(kind, ds.spec, ds)
        learner.config.cql_rows = mode
        if kind == "macql_continuous":
            learner.fit_normalizer(torch.as_tensor(ds.obs), torch.as_tensor(ds.state))
        for _ in range(40):
            learner.update(mixed)
        q[mode] = _q_at(learner, kind, synthetic_part)
    assert q["combo"] < q["real"] - 0.05, q
