"""Rollouts and the imagined environment: shapes, stopping rules, masks, adversarial inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.model import EnsembleWorldModel, ImaginedVectorEnv, JointWorldModel, NonFinitePredictionError

from .conftest import first_available, small_config


def test_rollout_shapes_and_bookkeeping(fitted_logo, discrete_ds):
    spec = discrete_ds.spec
    out = fitted_logo.rollout(first_available, starts=np.arange(20), horizon=6)
    K = out["u"].shape[0]
    assert 20 <= K <= 120
    assert out["obs"].shape == (K, spec.n_agents, spec.obs_dim) and out["next_obs"].shape == out["obs"].shape
    assert out["actions"].shape == (K, spec.n_agents) and out["avail_actions"].shape == (K, 3, 5)
    assert out["horizon_step"].max() <= 5 and out["start"].max() < 20
    for v in out.values():
        if v.is_floating_point():
            assert torch.isfinite(v).all()
    # Chaining: a row's next_obs at step h is its obs at step h+1.
    for r in range(20):
        rows = torch.nonzero(out["start"] == r).flatten()
        steps = out["horizon_step"][rows]
        assert torch.equal(steps, torch.arange(len(rows)))
        if len(rows) > 1:
            torch.testing.assert_close(out["next_obs"][rows[:-1]], out["obs"][rows[1:]])
        # Only the last transition of a trajectory may be terminal.
        assert not out["terminals"][rows[:-1]].any()
        if len(rows) < 6:
            assert out["terminals"][rows[-1]]
    # The first step starts from the dataset states.
    first = out["horizon_step"] == 0
    torch.testing.assert_close(out["obs"][first], torch.as_tensor(discrete_ds.obs[:20]))
    # Actions respect the masks they were chosen under.
    chosen = torch.gather(out["avail_actions"], 2, out["actions"][..., None])
    assert chosen.all()


def test_rollout_start_is_the_dataset_index(fitted_logo, discrete_ds):
    idx = np.array([120, 3, 77, 3, 42])  # unsorted, with a repeat
    out = fitted_logo.rollout(first_available, starts=idx, horizon=4)
    first = out["horizon_step"] == 0
    assert out["start"][first].tolist() == idx.tolist()
    torch.testing.assert_close(out["obs"][first], torch.as_tensor(discrete_ds.obs[idx]))
    assert set(out["start"].tolist()) <= set(idx.tolist())
    # Dict starts have no dataset index: their rows are numbered 0..B-1.
    d = fitted_logo.rollout(first_available, starts={"obs": discrete_ds.obs[:3].tolist(),
                                                     "state": discrete_ds.state[:3].tolist()}, horizon=2)
    assert d["start"][d["horizon_step"] == 0].tolist() == [0, 1, 2]


def test_hybrid_state_head_switches_after_the_first_step(discrete_ds):
    """deductive_state="hybrid": a rollout's first step (a real start state) adds the delta, every later
    step infers the state with the absolute head; the open-loop report and the imagined env do the same."""
    from logo_fast.model import LogoWorldModel
    from logo_fast.model.metrics import open_loop_metrics
    from logo_fast.model.transitions import TransitionStore

    model = LogoWorldModel(config=small_config(deductive_state="hybrid")).fit(discrete_ds, progress=False)
    with torch.no_grad():  # long-lived rows, so the later steps exist
        model.net.ded_outcome.bias[0, 1] = -20.0
    out = model.rollout(first_available, starts=np.arange(10), horizon=4)
    for h in range(4):
        rows = out["horizon_step"] == h
        assert rows.sum() == 10
        o, s, a = out["obs"][rows], out["state"][rows], out["actions"][rows]
        want = model.step(o, s, a, state_is_prediction=h > 0).next_state
        other = model.step(o, s, a, state_is_prediction=h == 0).next_state
        torch.testing.assert_close(out["next_state"][rows], want, rtol=0, atol=0)
        assert not torch.allclose(out["next_state"][rows], other)
    # open loop: step 2's state error is that of the absolute head fed the model's own step-1 state
    store = TransitionStore(discrete_ds)
    starts = np.array([0, 20, 40])
    var = {"next_state": store.state.var(0) + 1e-6, "next_obs": store.obs.var(0) + 1e-6}
    got = open_loop_metrics(model, store, starts, starts + 20, 2, var)
    first = model.step(store.obs[starts], store.state[starts], store.actions[starts])
    second = model.step(first.next_obs, first.next_state, store.actions[starts + 1], state_is_prediction=True)
    nxt = store.next_row[starts + 1]
    want = float(((second.next_state - store.state[nxt]).square() / var["next_state"]).mean())
    assert got["state_nmse"][1] == pytest.approx(want, rel=1e-5)
    # the imagined env: reset from real states, then two steps
    env = ImaginedVectorEnv(model, starts=np.arange(4), horizon=3)
    _, infos = env.reset(seed=0)
    for h in range(2):
        s, o = torch.as_tensor(env.state()).clone(), env._obs.clone()
        acts = {a: infos[a]["action_mask"].argmax(-1) for a in env.agents}
        joint = torch.as_tensor(np.stack([acts[a] for a in env.agents], 1))
        _, _, _, _, infos = env.step(acts)
        want = model.step(o, s, joint, state_is_prediction=h > 0).next_state
        torch.testing.assert_close(torch.as_tensor(env.state()), want, rtol=0, atol=0)


def test_rollout_u_threshold_drops_and_stops(fitted_logo):
    free = fitted_logo.rollout(first_available, starts=np.arange(30), horizon=5)
    thr = float(free["u"].median())
    cut = fitted_logo.rollout(first_available, starts=np.arange(30), horizon=5, u_threshold=thr)
    assert (cut["u"] <= thr).all()
    assert cut["u"].shape[0] < free["u"].shape[0]


def test_rollout_int_starts_are_seeded(fitted_logo):
    a = fitted_logo.rollout(first_available, starts=16, horizon=3, generator=torch.Generator().manual_seed(3))
    b = fitted_logo.rollout(first_available, starts=16, horizon=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a["obs"], b["obs"]) and torch.equal(a["u"], b["u"])


def test_unavailable_policy_action_is_an_error(fitted_logo, discrete_ds):
    def bad_policy(obs, avail):
        return (~avail).long().argmax(-1)  # an unavailable action wherever one exists

    avail = torch.ones(6, 3, 5, dtype=torch.bool)
    avail[4, 2, 0] = False
    starts = {"obs": torch.as_tensor(discrete_ds.obs[:6]), "state": torch.as_tensor(discrete_ds.state[:6]),
              "avail": avail}
    with pytest.raises(ValueError, match=r"1 unavailable actions chosen in rows \[4\]"):
        fitted_logo.rollout(bad_policy, starts=starts, horizon=2)


def test_rollout_bad_starts(fitted_logo, discrete_ds):
    with pytest.raises(ValueError, match="out of range"):
        fitted_logo.rollout(first_available, starts=np.array([0, len(discrete_ds)]), horizon=2)
    with pytest.raises(ValueError, match="integer indices"):
        fitted_logo.rollout(first_available, starts=np.array([0.5]), horizon=2)
    with pytest.raises(ValueError, match="horizon"):
        fitted_logo.rollout(first_available, starts=3, horizon=0)


def test_adversarial_inputs_stay_finite_or_raise(fitted_logo, fitted_logo_cont, hetero_cont_ds):
    n = 8
    obs = torch.full((n, 3, 6), 1e30)
    state = torch.full((n, 14), -1e30)
    avail = torch.ones(n, 3, 5, dtype=torch.bool)
    out = fitted_logo.rollout(first_available, starts={"obs": obs, "state": state, "avail": avail}, horizon=4)
    for v in out.values():
        if v.is_floating_point():
            assert torch.isfinite(v).all()
    assert out["obs"].abs().max() < 1e3, "inputs are clipped to the data bounds"
    obs_nan = obs.clone()
    obs_nan[3, 1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite values \(NaN/Inf\) in rows \[3\]"):
        fitted_logo.rollout(first_available, starts={"obs": obs_nan, "state": state, "avail": avail}, horizon=2)
    # Continuous, heterogeneous: huge starts and a policy pushing the bounds.
    spec = hetero_cont_ds.spec
    big = torch.as_tensor(hetero_cont_ds.obs[:n]) * 1e6

    def edge_policy(o, a):
        return torch.as_tensor(hetero_cont_ds.action_high).expand(o.shape[0], -1, -1) * torch.as_tensor(
            spec.act_mask())

    out = fitted_logo_cont.rollout(edge_policy, starts={"obs": big, "state": torch.as_tensor(
        hetero_cont_ds.state[:n]) * 1e6}, horizon=5)
    pad = ~torch.as_tensor(spec.obs_mask())
    assert (out["next_obs"][:, pad] == 0).all()
    assert all(torch.isfinite(v).all() for v in out.values() if v.is_floating_point())


def test_non_finite_prediction_raises_with_rows(fitted_logo, discrete_ds):
    import copy

    broken = copy.deepcopy(fitted_logo)
    with torch.no_grad():
        broken.net.ded_state.bias[0, 0] = float("nan")
    with pytest.raises(NonFinitePredictionError, match=r"non-finite prediction in 4 rows \[0, 1, 2, 3\]"):
        broken.step(discrete_ds.obs[:4], discrete_ds.state[:4], discrete_ds.actions[:4])


@pytest.mark.parametrize("cls", [JointWorldModel, EnsembleWorldModel])
def test_baseline_rollouts(discrete_ds, cls):
    model = cls(config=small_config(epochs=2, reward_penalty=1.0)).fit(discrete_ds, progress=False)
    out = model.rollout(first_available, starts=np.arange(10), horizon=4, generator=torch.Generator().manual_seed(0))
    assert out["u"].shape[0] >= 10
    if cls is JointWorldModel:
        assert (out["u"] == 0).all()
    else:
        assert (out["u"] > 0).all()
        # MOPO: with a generator each row draws a random elite and a Gaussian sample.
        again = model.rollout(first_available, starts=np.arange(10), horizon=4,
                              generator=torch.Generator().manual_seed(0))
        assert torch.equal(out["next_state"], again["next_state"])
        other = model.rollout(first_available, starts=np.arange(10), horizon=4,
                              generator=torch.Generator().manual_seed(1))
        assert not torch.equal(out["next_state"][:10], other["next_state"][:10])


def test_reward_penalty(discrete_ds):
    cfg = small_config(epochs=2)
    plain = EnsembleWorldModel(config=cfg).fit(discrete_ds, progress=False)
    pen = EnsembleWorldModel(config=cfg.replace(reward_penalty=2.0, sample_members=False)).fit(
        discrete_ds, progress=False)
    plain.config.sample_members = False
    a = plain.rollout(first_available, starts=np.arange(5), horizon=1)
    b = pen.rollout(first_available, starts=np.arange(5), horizon=1)
    torch.testing.assert_close(b["rewards"], a["rewards"] - 2.0 * a["u"])


def test_imagined_vector_env(fitted_logo, hetero_ds):
    from logo_fast.model import LogoWorldModel

    env = ImaginedVectorEnv(fitted_logo, starts=np.arange(7), horizon=3)
    obs, infos = env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_1", "agent_2"] and env.num_envs == 7
    assert obs["agent_0"].shape == (7, 6) and infos["agent_1"]["action_mask"].shape == (7, 5)
    assert env.state().shape == (7, 14)
    assert env.single_action_space("agent_0").n == 5 and env.action_space("agent_0").shape == (7,)
    steps = 0
    while env.agents:
        acts = {a: infos[a]["action_mask"].argmax(-1) for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        steps += 1
        assert rew["agent_0"].shape == (7,) and term["agent_2"].dtype == bool
    assert steps <= 3 and (term["agent_0"] | trunc["agent_0"]).all()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(acts)
    # Heterogeneous agents see their own observation sizes.
    het = LogoWorldModel(config=small_config(epochs=1)).fit(hetero_ds, progress=False)
    env = ImaginedVectorEnv(het, starts=4)
    obs, _ = env.reset()
    assert [obs[a].shape[1] for a in env.agents] == list(hetero_ds.spec.agent_obs_dims)
    assert env.single_observation_space("agent_2").shape == (hetero_ds.spec.agent_obs_dims[2],)
    assert env.observation_space("agent_2").shape == (4, hetero_ds.spec.agent_obs_dims[2])
    with pytest.raises(ValueError, match="missing action for 'agent_1'"):
        env.step({"agent_0": np.zeros(4, np.int64)})


def test_imagined_vector_env_continuous(fitted_logo_cont, hetero_cont_ds):
    env = ImaginedVectorEnv(fitted_logo_cont, starts=np.arange(5), horizon=2, u_threshold=1e9)
    obs, infos = env.reset()
    space = env.single_action_space("agent_1")
    assert space.shape == (2,) and np.all(space.high == 1.0)
    assert "action_mask" not in infos["agent_0"]
    acts = {a: np.zeros((5, 2), np.float32) for a in env.agents}
    bad = {**acts, "agent_2": np.full((5, 2), 3.0, np.float32)}  # outside the action bounds
    with pytest.raises(ValueError, match="outside \\[action_low, action_high\\]"):
        env.step(bad)
    obs, rew, term, trunc, _ = env.step(acts)  # the refused step changed nothing
    assert [obs[a].shape for a in env.possible_agents] == [(5, d) for d in hetero_cont_ds.spec.agent_obs_dims]
    assert np.isfinite(rew["agent_0"]).all()
