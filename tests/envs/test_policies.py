import numpy as np
import pytest

from logo_fast.data.policies.base import RandomPolicy, epsilon_mix, random_available


def test_random_available_only_picks_available_actions():
    rng = np.random.default_rng(0)
    avail = rng.random((200, 3, 7)) < 0.3
    avail[..., 2] = True
    act = random_available(avail, rng)
    assert act.shape == (200, 3) and act.dtype == np.int64
    assert np.take_along_axis(avail, act[..., None], -1).all()
    # Uniform over the available ones: with two legal actions each comes up about half the time.
    only_two = np.zeros((5000, 1, 7), bool)
    only_two[..., [1, 5]] = True
    frac = (random_available(only_two, rng) == 1).mean()
    assert 0.45 < frac < 0.55


def test_epsilon_mix_extremes_and_rate():
    rng = np.random.default_rng(0)
    avail = np.ones((4000, 2, 5), bool)
    greedy = np.full((4000, 2), 3)
    np.testing.assert_array_equal(epsilon_mix(greedy, avail, 0.0, rng), greedy)
    changed = (epsilon_mix(greedy, avail, 1.0, rng) != 3).mean()
    assert 0.75 < changed < 0.85  # random among 5 keeps action 3 one time in five
    per_copy = epsilon_mix(greedy, avail, np.r_[np.zeros(2000), np.ones(2000)], rng)
    assert (per_copy[:2000] == 3).all() and (per_copy[2000:] != 3).mean() > 0.7


def test_random_policy_continuous_within_bounds():
    low, high = -np.ones((3, 2), np.float32), np.full((3, 2), 0.5, np.float32)
    act = RandomPolicy(low, high).act(np.zeros((10, 3, 4)), None, None, np.random.default_rng(0))
    assert act.shape == (10, 3, 2) and act.dtype == np.float32
    assert (act >= low).all() and (act <= high).all()


@pytest.mark.parametrize("scenario", ["simple_spread", "simple_tag", "simple_reference"])
def test_mpe_heuristic_beats_random(scenario):
    pytest.importorskip("mpe2")
    from logo_fast.data.collect import mean_return
    from logo_fast.data.envs import make_env
    from logo_fast.data.policies.mpe_heuristic import MPEHeuristicPolicy

    env = make_env(f"mpe:{scenario}", batch_size=8)
    expert = mean_return(env, MPEHeuristicPolicy(scenario, 0.0), seed=0, n_episodes=16)
    random = mean_return(env, MPEHeuristicPolicy(scenario, 1.0), seed=0, n_episodes=16)
    assert expert > random + 5.0, (expert, random)


def test_spread_assignment_is_one_landmark_per_agent():
    """Agents placed on distinct landmarks are each assigned their own landmark (offset 0)."""
    from logo_fast.data.policies.mpe_heuristic import spread_targets

    lm = np.array([[0.5, 0.0], [-0.5, 0.2], [0.0, -0.7]])
    agents = lm + 0.01 * np.array([[1, 0], [0, 1], [-1, 0]])
    obs = np.zeros((1, 3, 18))
    for i in range(3):
        obs[0, i, 2:4] = agents[i]
        obs[0, i, 4:10] = (lm - agents[i]).reshape(-1)
        obs[0, i, 10:14] = (np.delete(agents, i, 0) - agents[i]).reshape(-1)
    target = spread_targets(obs)[0]
    np.testing.assert_allclose(target, lm - agents, atol=1e-12)
