"""The episode stream: run a behaviour policy in B parallel copies and yield whole episodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...progress import progress
from ..envs.registry import make_env, parse_env_id
from ..policies.mpe_heuristic import MPEHeuristicPolicy
from ..policies.smax_heuristic import SMAXHeuristicPolicy
from ..schema import OfflineDataset
from .args import DEFAULT_BATCH, EXPERT_EPSILON, MEDIUM_TARGET


class Budget:
    """Counts whole episodes against a step or episode target; drives the progress output."""

    def __init__(self, n_steps: int | None, n_episodes: int | None, desc: str, show: bool):
        self.n_steps, self.n_episodes = n_steps, n_episodes
        self.steps = self.episodes = 0
        self.bar = None
        if show:
            by_episode = n_episodes is not None
            self.bar = progress(
                total=n_episodes if by_episode else n_steps, desc=desc, unit="ep" if by_episode else "step"
            )

    def fraction(self) -> float:
        if self.n_episodes is not None:
            return self.episodes / self.n_episodes
        return self.steps / self.n_steps

    def add(self, length: int) -> None:
        self.steps += length
        self.episodes += 1
        if self.bar is not None:
            self.bar.update(1 if self.n_episodes is not None else length)

    def full(self) -> bool:
        if self.n_episodes is not None:
            return self.episodes >= self.n_episodes
        return self.steps >= self.n_steps

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_policy(env, policy, seed: int, budget: Budget, epsilon_schedule=None) -> Iterator[dict[str, np.ndarray]]:
    """Yield whole episodes (dicts of schema fields; ``final_*`` without the episode axis).

    env: a reset-able adapter; policy: a BehaviourPolicy; epsilon_schedule: optional
    ``f(fraction_done) -> epsilon`` applied to each copy when its next episode starts.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC011]))
    B = env.batch_size
    discrete = env.spec.discrete
    if epsilon_schedule is not None:
        policy.epsilon = np.full(B, epsilon_schedule(0.0), dtype=np.float64)
    obs, state, avail = env.reset(seed)
    names = ["obs", "state", "actions", "rewards", "terminals", "truncations", "agent_rewards"]
    if discrete:
        names.append("avail_actions")
    bufs: list[dict[str, list]] = [{k: [] for k in names} for _ in range(B)]
    while not budget.full():
        actions = policy.act(obs, state, avail, rng)
        nobs, nstate, navail, reward, term, trunc, info = env.step(actions)
        agent_r = info.get("agent_rewards")
        for b in range(B):
            buf = bufs[b]
            buf["obs"].append(obs[b])
            buf["state"].append(state[b])
            buf["actions"].append(actions[b])
            buf["rewards"].append(reward[b])
            buf["terminals"].append(bool(term[b]))
            buf["truncations"].append(bool(trunc[b]))
            buf["agent_rewards"].append(agent_r[b] if agent_r is not None else np.full(env.spec.n_agents, reward[b]))
            if discrete:
                buf["avail_actions"].append(avail[b])
        done = info["done"]
        for b in np.flatnonzero(done):
            if budget.full():
                break
            ep = {
                k: np.stack(v) if k not in ("rewards", "terminals", "truncations") else np.asarray(v)
                for k, v in bufs[b].items()
            }
            ep["final_obs"] = info["final_obs"][b]
            ep["final_state"] = info["final_state"][b]
            if discrete:
                ep["final_avail"] = info["final_avail"][b]
            bufs[b] = {k: [] for k in names}
            budget.add(len(ep["rewards"]))
            if epsilon_schedule is not None:
                policy.epsilon[b] = epsilon_schedule(budget.fraction())
            yield ep
        policy.on_episode_end(done)
        obs, state, avail = nobs, nstate, navail


def replay_episodes(ds: OfflineDataset, episodes: np.ndarray, budget: Budget) -> Iterator[dict[str, np.ndarray]]:
    """Yield the given episodes of an in-memory dataset in the collector's episode format."""
    starts, ends = ds.episode_bounds()
    for e in episodes:
        s, t = starts[e], ends[e]
        ep = {
            k: np.asarray(getattr(ds, k)[s:t])
            for k in ("obs", "state", "actions", "rewards", "terminals", "truncations")
        }
        ep["agent_rewards"] = np.repeat(ep["rewards"][:, None], ds.spec.n_agents, axis=1).astype(np.float32)
        ep["final_obs"] = np.asarray(ds.final_obs[e])
        ep["final_state"] = np.asarray(ds.final_state[e])
        budget.add(int(t - s))
        yield ep


# ---- behaviour per family ------------------------------------------------------------------
def scripted_policy(env, family: str, scenario: str, epsilon):
    if family == "mpe":
        return MPEHeuristicPolicy(scenario, epsilon)
    return SMAXHeuristicPolicy(env, epsilon)


def mean_return(env, policy, seed: int, n_episodes: int) -> float:
    """Mean team return of ``policy`` over ``n_episodes`` whole episodes."""
    budget = Budget(None, n_episodes, "", show=False)
    return float(np.mean([ep["rewards"].astype(np.float64).sum() for ep in run_policy(env, policy, seed, budget)]))


def calibrate_medium_epsilon(
    env_id: str,
    seed: int = 0,
    n_episodes: int = 64,
    batch_size: int | None = None,
    target: float = MEDIUM_TARGET,
    expert_epsilon: float = EXPERT_EPSILON,
    grid: tuple[float, ...] = tuple(np.round(np.linspace(0, 1, 11), 2)),
) -> dict[str, Any]:
    """The epsilon whose mean return sits ``target`` of the way from random (eps=1) to expert.

    Measures the mean return on an epsilon grid (``n_episodes`` each), interpolates linearly
    between the two grid points that bracket the target, and returns the chosen epsilon with
    the measured curve (for the manifest and the summary).
    """
    family, scenario = parse_env_id(env_id)
    if family == "mamujoco":
        raise ValueError("calibrate_medium_epsilon is for scripted (MPE/SMAX) behaviour")
    env = make_env(env_id, batch_size or DEFAULT_BATCH[family])
    policy = scripted_policy(env, family, scenario, 0.0)
    grid = sorted({float(g) for g in grid} | {float(expert_epsilon), 1.0})
    curve = {}
    for eps in grid:
        policy.epsilon = eps
        curve[float(eps)] = mean_return(env, policy, seed, n_episodes)
    env.close()
    expert, rand = curve[expert_epsilon], curve[1.0]
    goal = rand + target * (expert - rand)
    eps_sorted = sorted(e for e in curve if e >= expert_epsilon)
    chosen = eps_sorted[-1]
    for lo, hi in zip(eps_sorted[:-1], eps_sorted[1:], strict=True):
        r_lo, r_hi = curve[lo], curve[hi]
        if (r_lo - goal) * (r_hi - goal) <= 0 and r_lo != r_hi:
            chosen = lo + (hi - lo) * (r_lo - goal) / (r_lo - r_hi)
            break
    return {"epsilon": round(float(chosen), 3), "target_return": goal, "returns_by_epsilon": curve}
