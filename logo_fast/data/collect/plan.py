"""What to collect: the behaviour policies and episode sources of each quality, per env family."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..envs.registry import make_env, parse_env_id
from ..schema import DatasetSpec
from .args import (
    DEFAULT_BATCH,
    DEFAULT_N_STEPS,
    MAMUJOCO_NOISE,
    MEDIUM_EPSILON,
    MEDIUM_TARGET,
    CollectArgs,
    default_cache_dir,
)
from .episodes import Budget, calibrate_medium_epsilon, replay_episodes, run_policy, scripted_policy


@dataclass
class Plan:
    """What to run: a list of (label, episode-iterator factory) parts and the manifest's policy text."""

    spec: DatasetSpec
    """Dimensions of the scenario's data."""
    action_low: np.ndarray | None
    """(N, act_dim) lower action bounds (continuous scenarios), else None."""
    action_high: np.ndarray | None
    """(N, act_dim) upper action bounds (continuous scenarios), else None."""
    parts: list
    """(label, make_episodes(budget) -> iterator of episodes, n_steps, n_episodes) per part, run in order."""
    behaviour: dict[str, Any]
    """The behaviour policy as the manifest records it (epsilons, checkpoints, their sources)."""
    env_info: dict[str, Any]
    """The scenario's EnvInfo plus the batch size, for the manifest."""


def _split_target(args: CollectArgs, n_steps: int | None, half: bool) -> tuple[int | None, int | None]:
    if args.n_episodes is not None:
        if not half:
            return None, args.n_episodes
        return None, args.n_episodes // 2
    return (n_steps // 2 if half else n_steps), None


def _mamujoco_parts(args: CollectArgs, env_id: str, cache_dir: Path):
    from ..policies.td3 import TD3Config, train_or_load  # late: torch (see make_plan)

    cfg = TD3Config(train_minutes=args.train_minutes)
    return train_or_load(env_id, args.seed, cfg, cache_dir, progress=args.progress and not args.quiet)


def make_plan(args: CollectArgs, family: str) -> Plan:
    _, scenario = parse_env_id(args.env)
    B = args.batch_size or DEFAULT_BATCH[family]
    n_steps = None if args.n_episodes is not None else (args.n_steps or DEFAULT_N_STEPS[family])
    env = make_env(args.env, batch_size=B, time_limit=args.time_limit)
    env_info = {**asdict(env.info), "batch_size": B}
    spec, low, high = env.spec, env.action_low, env.action_high
    q = args.quality
    seeds = np.random.SeedSequence(args.seed).generate_state(2)
    parts = []
    behaviour: dict[str, Any] = {"quality": q}

    if family in ("mpe", "smax"):
        expert_eps = args.expert_epsilon
        if q == "medium":
            if args.medium_epsilon is not None:
                eps, source = args.medium_epsilon, "given"
            elif args.env in MEDIUM_EPSILON:
                eps, source = MEDIUM_EPSILON[args.env], "MEDIUM_EPSILON table (calibrated, seed 0)"
            else:
                cal = calibrate_medium_epsilon(args.env, seed=args.seed, batch_size=B, expert_epsilon=expert_eps)
                eps, source = cal["epsilon"], f"calibrated now: {cal}"
            behaviour.update(epsilon=eps, epsilon_source=source)
            policy = scripted_policy(env, family, scenario, eps)
            parts.append(
                ("medium", lambda budget: run_policy(env, policy, args.seed, budget), n_steps, args.n_episodes)
            )
        else:
            sweep = lambda frac: 1.0 - (1.0 - expert_eps) * min(frac, 1.0)
            half = q == "mixed"
            ns, ne = _split_target(args, n_steps, half)
            if q in ("medium-replay", "mixed"):
                policy_r = scripted_policy(env, family, scenario, 1.0)
                seed_r = args.seed if q == "medium-replay" else int(seeds[0])
                parts.append(("medium-replay", lambda budget: run_policy(env, policy_r, seed_r, budget, sweep), ns, ne))
                behaviour["medium_replay_epsilon"] = f"linear 1.0 -> {expert_eps} over the collection"
            if q in ("expert", "mixed"):
                policy_e = scripted_policy(env, family, scenario, expert_eps)
                seed_e = args.seed if q == "expert" else int(seeds[1])
                ne_e = None if ne is None else (args.n_episodes - ne if half else ne)
                parts.append(("expert", lambda budget: run_policy(env, policy_e, seed_e, budget), ns, ne_e))
                behaviour["expert_epsilon"] = expert_eps
        behaviour["policy"] = scripted_policy(env, family, scenario, 0.0).describe()["kind"]
        return Plan(spec, low, high, parts, behaviour, env_info)

    # MaMuJoCo: one cached TD3 run defines every quality.
    # Late: the TD3 trainer pulls in torch, which MPE/SMAX collection (and ``import logo_fast.data``) never needs.
    from ..policies.td3 import JointActionCodec, TD3BehaviourPolicy, make_actor

    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    result = _mamujoco_parts(args, args.env, cache_dir)
    if result.replay.spec.to_dict() != spec.to_dict():
        raise ValueError(f"cached TD3 run in {cache_dir} does not match {args.env}'s spec")
    codec = JointActionCodec(spec.agent_act_dims, spec.act_dim, low, high)
    behaviour["trainer"] = result.summary()
    half = q == "mixed"
    ns, ne = _split_target(args, n_steps, half)

    def ckpt_policy(index: int, label: str) -> TD3BehaviourPolicy:
        return TD3BehaviourPolicy(
            make_actor(result, index), codec, MAMUJOCO_NOISE, label, result.checkpoints[index]["eval_return"]
        )

    if q == "medium":
        pol = ckpt_policy(result.medium_index(MEDIUM_TARGET), "medium")
        behaviour["policy"] = pol.describe()
        parts.append(("medium", lambda budget: run_policy(env, pol, args.seed, budget), ns, ne))
    if q in ("medium-replay", "mixed"):
        m_step = result.checkpoints[result.medium_index(MEDIUM_TARGET)]["env_step"]
        eligible = np.flatnonzero(result.replay_env_step <= m_step)
        lengths = np.diff(np.concatenate([[0], result.replay.episode_bounds()[1]]))[eligible]
        chosen = eligible
        if ne is not None and len(eligible) > ne:
            chosen = eligible[np.linspace(0, len(eligible) - 1, ne).round().astype(int)]
        elif ns is not None and lengths.sum() > ns:
            keep = max(1, int(len(eligible) * ns / lengths.sum()))
            chosen = eligible[np.linspace(0, len(eligible) - 1, keep).round().astype(int)]
        behaviour["medium_replay"] = (
            f"TD3 replay up to env step {m_step} (medium checkpoint): {len(chosen)} of {len(eligible)} episodes"
        )
        parts.append(
            ("medium-replay", lambda budget: replay_episodes(result.replay, chosen, budget), None, len(chosen))
        )
    if q in ("expert", "mixed"):
        pol_e = ckpt_policy(result.best_index(), "expert")
        behaviour["policy" if q == "expert" else "expert_policy"] = pol_e.describe()
        seed_e = args.seed if q == "expert" else int(seeds[1])
        ne_e = None if ne is None else (args.n_episodes - ne if half else ne)
        parts.append(("expert", lambda budget: run_policy(env, pol_e, seed_e, budget), ns, ne_e))
    return Plan(spec, low, high, parts, behaviour, env_info)


def plan_episodes(plan: Plan, show: bool) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    for label, make_iter, ns, ne in plan.parts:
        budget = Budget(ns, ne, label, show)
        try:
            for ep in make_iter(budget):
                yield label, ep
        finally:
            budget.close()
