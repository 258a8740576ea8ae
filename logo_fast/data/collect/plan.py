"""What to collect: the behaviour policies and episode sources of each quality, per env family."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..envs.registry import make_env, parse_env_id
from ..policies.base import RandomPolicy
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


def _zoo_entry(args: CollectArgs, family: str):
    """The zoo entry the collector uses for ``args`` (None: use the scripted or quick-TD3 policy)."""
    if args.behaviour in ("scripted", "quick-td3") or family == "mpe":
        if args.behaviour == "zoo":
            raise ValueError(f"{args.env}: the policy zoo has no entries for MPE (use --behaviour scripted)")
        return None
    from ..policies.zoo import entry_name, load_default_entry, load_entry

    zoo_dir = Path(args.zoo_dir).expanduser() if args.zoo_dir else None
    # Every seed shares the scenario's default run (its lowest seed in the zoo) unless a run of its own seed is there.
    entry = load_entry(args.env, args.seed, zoo_dir) or load_default_entry(args.env, zoo_dir)
    if entry is None and args.behaviour == "zoo":
        where = zoo_dir or "the package's zoo"
        raise ValueError(
            f"no trained behaviour policy for {args.env} in {where} "
            f"(expected {entry_name(args.env, args.seed)}/ or another seed's); "
            f"train one with `logo-fast data behaviour --env {args.env}` or use --behaviour "
            + ("scripted" if family == "smax" else "quick-td3")
        )
    return entry


def _zoo_policy(entry, family: str, index: int, label: str, codec=None, bounds=(None, None)):
    """The behaviour policy of one shipped checkpoint (a random one for a random warm-up checkpoint)."""
    card = entry.card
    ck = card["checkpoints"][index]
    if family == "smax":
        from ..policies.ppo_smax import policy_from_entry

        return policy_from_entry(entry, index, label)
    from ..policies.td3 import JointActor, TD3BehaviourPolicy

    if ck["env_step"] <= card.get("random_warmup_steps", 0):
        # The run took uniformly random actions until then: its buffer holds those, not this actor's.
        return RandomPolicy(*bounds)
    import torch

    params = entry.params(index)
    state_dim = params["net.0.weight"].shape[1]
    if params["net.4.weight"].shape[0] != codec.joint_dim:
        raise ValueError(
            f"{entry.path}: the actor acts on {params['net.4.weight'].shape[0]} joint action dims, "
            f"{card['env']} has {codec.joint_dim}"
        )
    actor = JointActor(state_dim, codec.joint_dim, card["config"]["hidden"])
    actor.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return TD3BehaviourPolicy(actor, codec, MAMUJOCO_NOISE, label, ck["eval_return"])


def _zoo_parts(args: CollectArgs, family: str, env, entry, ns, ne, seeds, codec) -> tuple[list, dict[str, Any]]:
    """The parts of a dataset collected with the zoo's checkpoints (see ``policies.zoo``)."""
    q = args.quality
    card = entry.card
    half = q == "mixed"
    ns, ne = _split_target(args, ns, half)
    behaviour: dict[str, Any] = {
        "policy_source": f"policy zoo: {entry.path.name}",
        "trainer": card["trainer"],
        "trainer_command": card["command"],
        "trainer_budget": card["budget"],
        "random_score": card.get("random", card.get("random_return")),
    }
    parts = []
    if q == "medium":
        pol = _zoo_policy(entry, family, card["medium"], "medium", codec)
        behaviour["policy"] = pol.describe()
        parts.append(("medium", lambda budget: run_policy(env, pol, args.seed, budget), ns, ne))
    if q in ("medium-replay", "mixed"):
        idx = list(card["replay"])
        k = len(idx)
        share_s = None if ns is None else -(-ns // k)
        share_e = None if ne is None else [ne // k + (1 if j < ne % k else 0) for j in range(k)]
        labels = [f"replay@{card['checkpoints'][i]['env_step']}" for i in idx]
        pols = [
            _zoo_policy(entry, family, i, lab, codec, (env.action_low, env.action_high))
            for i, lab in zip(idx, labels, strict=True)
        ]
        behaviour["medium_replay"] = {
            "definition": "the run up to the medium checkpoint, replayed: equal shares of episodes from its "
            "checkpoints in training order (random actions for its random warm-up)",
            "checkpoints": [{"checkpoint": lab, **p.describe()} for lab, p in zip(labels, pols, strict=True)],
        }
        seed_r = args.seed if q == "medium-replay" else int(seeds[0])
        for j, pol in enumerate(pols):
            if share_e is not None and share_e[j] == 0:
                continue
            parts.append(
                (
                    "medium-replay",
                    lambda budget, pol=pol, j=j: run_policy(env, pol, seed_r + 1000 * j, budget),
                    share_s,
                    None if share_e is None else share_e[j],
                )
            )
    if q in ("expert", "mixed"):
        pol_e = _zoo_policy(entry, family, card["expert"], "expert", codec)
        behaviour["policy" if q == "expert" else "expert_policy"] = pol_e.describe()
        seed_e = args.seed if q == "expert" else int(seeds[1])
        ne_e = None if ne is None else (args.n_episodes - ne if half else ne)
        parts.append(("expert", lambda budget: run_policy(env, pol_e, seed_e, budget), ns, ne_e))
    return parts, behaviour


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

    entry = _zoo_entry(args, family)
    if entry is not None:
        codec = None
        if family == "mamujoco":
            from ..policies.td3 import JointActionCodec

            codec = JointActionCodec(spec.agent_act_dims, spec.act_dim, low, high)
        zoo_parts, zoo_behaviour = _zoo_parts(args, family, env, entry, n_steps, args.n_episodes, seeds, codec)
        behaviour.update(zoo_behaviour)
        return Plan(spec, low, high, zoo_parts, behaviour, env_info)

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
