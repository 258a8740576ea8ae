"""The imagined environments under PettingZoo's own checkers, and the unbatched contract checked value by value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pettingzoo = pytest.importorskip("pettingzoo", reason="the imagined env needs pettingzoo (extra: mpe)")

from pettingzoo.test import api_test, parallel_api_test  # noqa: E402
from pettingzoo.test.seed_test import parallel_seed_test, seed_test  # noqa: E402
from pettingzoo.utils.conversions import parallel_to_aec  # noqa: E402

from logo_fast.model import ImaginedParallelEnv, ImaginedVectorEnv  # noqa: E402


def _mask(info):
    return info.get("action_mask")


def test_pettingzoo_parallel_api_test(any_model):
    env = ImaginedParallelEnv(any_model, horizon=6)
    assert isinstance(env, pettingzoo.ParallelEnv) and env.unwrapped is env
    with warnings.catch_warnings():
        # Every warning of the parallel test is a contract breach ("Live agent was not given ...").
        warnings.simplefilter("error")
        parallel_api_test(env, num_cycles=40)


# Heterogeneous agents are legal; PettingZoo's AEC test only notes them.
@pytest.mark.filterwarnings("ignore:Agents have different observation space sizes",
                            "ignore:Observations are different shapes")
def test_pettingzoo_aec_api_test_through_parallel_to_aec(any_model):
    # The AEC test also checks that every observation lies in its space and the types of rewards and flags.
    api_test(parallel_to_aec(ImaginedParallelEnv(any_model, horizon=6)), num_cycles=30)


def test_pettingzoo_seed_tests(any_model):
    parallel_seed_test(lambda: ImaginedParallelEnv(any_model, horizon=6), num_cycles=30)
    seed_test(lambda: parallel_to_aec(ImaginedParallelEnv(any_model, horizon=6)), num_cycles=30)


def test_reset_seed_picks_the_start(any_model):
    env = ImaginedParallelEnv(any_model, horizon=3)
    first = {s: env.reset(seed=s)[0]["agent_0"] for s in range(6)}
    again = env.reset(seed=3)[0]["agent_0"]
    np.testing.assert_array_equal(again, first[3])
    distinct = {v.tobytes() for v in first.values()}
    assert len(distinct) >= 3, "different seeds should branch from different dataset steps"
    # Without a seed the generator continues: two unseeded resets differ (from a pool of 100+ steps).
    a, b = env.reset()[0]["agent_0"], env.reset()[0]["agent_0"]
    c = env.reset()[0]["agent_0"]
    assert len({a.tobytes(), b.tobytes(), c.tobytes()}) >= 2


def test_unbatched_values_follow_the_spaces(any_model):
    spec = any_model.spec
    env = ImaginedParallelEnv(any_model, horizon=5)
    for seed in range(4):
        obs, infos = env.reset(seed=seed)
        for a in env.agents:
            env.action_space(a).seed(seed)
        steps, done = 0, False
        while env.agents:
            for i, a in enumerate(env.possible_agents):
                assert obs[a].dtype == np.float32 and obs[a].shape == (spec.agent_obs_dims[i],)
                assert env.observation_space(a).contains(obs[a])
                if spec.discrete:
                    assert infos[a]["action_mask"].dtype == np.int8 and infos[a]["action_mask"].shape == (5,)
                else:
                    assert "action_mask" not in infos[a]
            assert env.state_space.contains(env.state())
            actions = {a: env.action_space(a).sample(_mask(infos[a])) for a in env.agents}
            obs, rew, term, trunc, infos = env.step(actions)
            steps += 1
            assert set(rew) == set(term) == set(trunc) == set(infos) == set(env.possible_agents)
            assert all(type(r) is float for r in rew.values()) and len(set(rew.values())) == 1
            assert all(type(t) is bool for t in (*term.values(), *trunc.values()))
            assert all(isinstance(infos[a]["u"], float) and infos[a]["u"] >= 0 for a in infos)
            done = term["agent_0"] or trunc["agent_0"]
            assert done == (not env.agents)
            assert not (term["agent_0"] and trunc["agent_0"])
        assert done and steps <= 5
        if steps == 5 and not term["agent_0"]:
            assert trunc["agent_0"], "the horizon truncates"
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})


def test_env_step_is_the_model_step(any_model):
    """The env's first observation is the dataset's start step; its next one is ``model.step`` on it."""
    ds = any_model.fit_dataset
    spec = any_model.spec
    i = 17
    env = ImaginedParallelEnv(any_model, starts=np.array([i]), horizon=4)
    obs, infos = env.reset(seed=0)
    for k, a in enumerate(env.possible_agents):
        np.testing.assert_allclose(obs[a], ds.obs[i, k, : spec.agent_obs_dims[k]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(env.state(), ds.state[i], rtol=0, atol=1e-6)
    if spec.discrete:
        joint = ds.avail_actions[i].argmax(-1)[None]  # first available action per agent
        actions = {a: int(joint[0, k]) for k, a in enumerate(env.possible_agents)}
    else:
        joint = np.full((1, spec.n_agents, spec.act_dim), 0.25, np.float32) * spec.act_mask()
        actions = {a: joint[0, k, : spec.agent_act_dims[k]] for k, a in enumerate(env.possible_agents)}
    want = any_model.step(ds.obs[i : i + 1], ds.state[i : i + 1], joint,
                          ds.avail_actions[i : i + 1] if spec.discrete else None).numpy()
    obs, rew, term, trunc, infos = env.step(actions)
    for k, a in enumerate(env.possible_agents):
        np.testing.assert_allclose(obs[a], want["next_obs"][0, k, : spec.agent_obs_dims[k]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rew["agent_0"], float(want["reward"][0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(infos["agent_0"]["u"], float(want["u"][0]), rtol=1e-5, atol=1e-6)
    assert term["agent_0"] == bool(want["terminal"][0])
    if not (term["agent_0"] or trunc["agent_0"]):
        np.testing.assert_allclose(env.state(), want["next_state"][0], rtol=1e-5, atol=1e-6)
        if spec.discrete:
            np.testing.assert_array_equal(infos["agent_1"]["action_mask"], want["next_avail"][0, 1].astype(np.int8))


def test_vector_env_matches_one_episode_per_row(any_model):
    """ImaginedVectorEnv row b runs exactly the episode ImaginedParallelEnv runs from start b."""
    spec = any_model.spec
    idx = np.array([3, 40, 71])
    vec = ImaginedVectorEnv(any_model, starts=idx, horizon=3)
    vobs, vinfos = vec.reset(seed=0)
    singles = [ImaginedParallelEnv(any_model, starts=idx[b : b + 1], horizon=3) for b in range(len(idx))]
    sobs = [env.reset(seed=0) for env in singles]
    for a in vec.possible_agents:
        assert vec.observation_space(a).contains(vobs[a])
        assert vec.single_observation_space(a) == singles[0].observation_space(a)
    for t in range(3):
        for b in range(len(singles)):
            for a in vec.possible_agents:
                # Batched and one-row matmuls may differ in the last bits.
                np.testing.assert_allclose(vobs[a][b], sobs[b][0][a], rtol=1e-5, atol=1e-6)
        if spec.discrete:
            vact = {a: vinfos[a]["action_mask"].argmax(-1) for a in vec.possible_agents}
        else:
            vact = {a: np.full((len(idx), vec.single_action_space(a).shape[0]), 0.1 * (t + 1), np.float32)
                    for a in vec.possible_agents}
        assert all(vec.action_space(a).contains(np.asarray(vact[a], vec.action_space(a).dtype)) for a in vact)
        vobs, vrew, vterm, vtrunc, vinfos = vec.step(vact)
        for b, env in enumerate(singles):
            if not env.agents:
                continue
            out = env.step({a: vact[a][b] for a in env.agents})
            sobs[b] = (out[0], out[4])
            assert vrew["agent_0"][b] == pytest.approx(out[1]["agent_0"], rel=1e-6, abs=1e-6)
            assert bool(vterm["agent_0"][b]) == out[2]["agent_0"]
        if not vec.agents:
            break


def test_masked_out_action_is_replaced_or_refused(hetero_discrete_model):
    ds = hetero_discrete_model.fit_dataset
    avail = torch.ones(1, 3, 5, dtype=torch.bool)
    avail[0, 1, 2] = False
    avail[0, 1, 0] = False
    starts = {"obs": torch.as_tensor(ds.obs[:1]), "state": torch.as_tensor(ds.state[:1]), "avail": avail}
    env = ImaginedParallelEnv(hetero_discrete_model, starts=starts, horizon=3)
    _, infos = env.reset(seed=0)
    assert infos["agent_1"]["action_mask"].tolist() == [0, 1, 0, 1, 1]
    obs, rew, _, _, infos = env.step({"agent_0": 0, "agent_1": np.int64(2), "agent_2": np.array(0)})
    assert [infos[a]["action_replaced"] for a in env.possible_agents] == [False, True, False]
    explicit = ImaginedParallelEnv(hetero_discrete_model, starts=starts, horizon=3)
    explicit.reset(seed=0)
    obs2, rew2, _, _, infos2 = explicit.step({"agent_0": 0, "agent_1": 1, "agent_2": 0})  # 1: first available
    assert not infos2["agent_1"]["action_replaced"]
    for a in obs:
        np.testing.assert_array_equal(obs[a], obs2[a])
    assert rew == rew2
    strict = ImaginedParallelEnv(hetero_discrete_model, starts=starts, horizon=3, unavailable_action="raise")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match=r"agent_1: action 2 is unavailable"):
        strict.step({"agent_0": 0, "agent_1": 2, "agent_2": 0})


def test_bad_actions_are_listed_together(hetero_discrete_model, hetero_continuous_model):
    env = ImaginedParallelEnv(hetero_discrete_model, horizon=3)
    env.reset(seed=0)
    with pytest.raises(ValueError) as err:
        env.step({"agent_0": 1.0, "agent_1": 7, "agent_2": np.zeros(2, np.int64)})
    msg = str(err.value)
    assert "agent_0: expected one integer action" in msg and "agent_1: action 7 outside Discrete(5)" in msg
    assert "agent_2: expected one integer action" in msg
    with pytest.raises(ValueError, match="missing action for 'agent_2'"):
        env.step({"agent_0": 0, "agent_1": 0})
    cont = ImaginedParallelEnv(hetero_continuous_model, horizon=3)
    cont.reset(seed=0)
    ok = {a: cont.action_space(a).sample() for a in cont.agents}
    with pytest.raises(ValueError, match=r"agent_1: expected a float array of shape \(2,\)"):
        cont.step({**ok, "agent_1": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"outside \[action_low, action_high\]"):
        cont.step({**ok, "agent_2": np.full(2, 3.0, np.float32)})


def test_bad_arguments_are_listed_together(discrete_model):
    with pytest.raises(ValueError) as err:
        ImaginedParallelEnv(discrete_model, horizon=0, render_mode="human", unavailable_action="skip")
    msg = str(err.value)
    assert "horizon must be an int >= 1" in msg and "render_mode" in msg and "unavailable_action" in msg
    with pytest.raises(ValueError, match="use ImaginedVectorEnv"):
        ImaginedParallelEnv(discrete_model, starts=8)
    with pytest.raises(ValueError, match="out of range"):
        ImaginedParallelEnv(discrete_model, starts=np.array([0, 10**6]))


def test_u_threshold_truncates_and_render(discrete_model):
    env = ImaginedParallelEnv(discrete_model, horizon=10, u_threshold=0.0, render_mode="ansi")
    _, infos = env.reset(seed=1)
    _, _, term, trunc, infos = env.step({a: int(infos[a]["action_mask"].argmax()) for a in env.agents})
    assert infos["agent_0"]["u"] > 0.0
    assert (trunc["agent_0"] or term["agent_0"]) and not env.agents
    assert env.render().startswith("t=1 reward=")


def test_vector_env_u_threshold_truncates_rows(discrete_model):
    vec = ImaginedVectorEnv(discrete_model, starts=np.arange(6), horizon=5, u_threshold=0.0)
    _, infos = vec.reset(seed=0)
    _, rew, term, trunc, infos = vec.step({a: infos[a]["action_mask"].argmax(-1) for a in vec.agents})
    assert (infos["agent_0"]["u"] > 0).all()
    # u > 0 = threshold cuts every row that did not terminate: a truncation, never both flags.
    np.testing.assert_array_equal(trunc["agent_0"], ~term["agent_0"])
    assert not vec.agents and not infos["agent_0"]["alive"].any()
    with pytest.raises(ValueError, match="bad arguments") as err:
        ImaginedVectorEnv(discrete_model, starts=0, horizon=0)
    assert "horizon must be an int >= 1" in str(err.value) and "number of starts must be >= 1" in str(err.value)
