"""Scoring a policy in the real environment, the reference returns that normalise it, and a world model's error.

    evaluate_policy(env_id, policy, n_episodes, seed)   mean/std return (and win rate on SMAX)
    reference_returns(env_id, seed, ...)                random and expert returns for the normalised score
    normalised_score(ret, random, expert)               100 * (ret - random) / (expert - random)  (D4RL's scale)
    world_model_error(model, holdout)                   one-step next-state nMSE on held-out episodes

Episodes: ``batch_size`` copies run in lock-step and each copy contributes its first
``ceil(n_episodes / batch_size)`` episodes, so short and long episodes are counted alike (stopping
at the first n finished episodes would favour short ones, e.g. quick SMAX defeats).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["evaluate_policy", "reference_returns", "normalised_score", "world_model_error"]

PolicyFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def evaluate_policy(env_id: str, policy: PolicyFn, n_episodes: int, seed: int, batch_size: int = 8,
                    time_limit: int | None = None, env=None, on_episode_end=None) -> dict[str, Any]:
    """Run ``policy(obs, state, avail) -> actions`` (numpy in and out) in ``env_id``.

    Returns {"return_mean", "return_std", "returns" (list), "episodes", "win_rate" (SMAX, else None)}.
    A win on SMAX: the battle terminated and some ally is still alive (a dead ally's observation
    is all zeros, so a terminal step with any non-zero final ally observation means the enemies
    were wiped out). ``env``: an existing adapter with ``batch_size`` copies to reuse.
    """
    from ..data import make_env

    if n_episodes < 1 or batch_size < 1:
        raise ValueError(f"evaluate_policy: n_episodes and batch_size must be >= 1, got {n_episodes}, {batch_size}")
    own = env is None
    env = make_env(env_id, batch_size, time_limit) if own else env
    B = env.batch_size
    per_copy = math.ceil(n_episodes / B)
    smax = env_id.startswith("smax:")
    try:
        obs, state, avail = env.reset(seed)
        running = np.zeros(B)
        done_count = np.zeros(B, np.int64)
        returns: list[list[float]] = [[] for _ in range(B)]
        wins: list[list[bool]] = [[] for _ in range(B)]
        while (done_count < per_copy).any():
            actions = policy(obs, state, avail)
            obs, state, avail, reward, term, trunc, info = env.step(actions)
            running += reward
            done = info["done"]
            for b in np.flatnonzero(done):
                if done_count[b] < per_copy:
                    returns[b].append(float(running[b]))
                    wins[b].append(bool(term[b]) and bool(np.any(info["final_obs"][b] != 0)))
                done_count[b] += 1
                running[b] = 0.0
            if on_episode_end is not None:
                on_episode_end(done)
    finally:
        if own:
            env.close()
    flat = [r for rs in returns for r in rs]
    return {
        "return_mean": float(np.mean(flat)),
        "return_std": float(np.std(flat)),
        "returns": flat,
        "episodes": len(flat),
        "win_rate": float(np.mean([w for ws in wins for w in ws])) if smax else None,
    }


def learner_policy(learner, device: str | torch.device = "cpu") -> PolicyFn:
    """Wrap a learner's deterministic ``act`` as a numpy policy for ``evaluate_policy``."""

    def policy(obs, state, avail):
        # np.array copies: SMAX hands out read-only (jax-owned) arrays, which torch will not wrap
        o = torch.from_numpy(np.array(obs, dtype=np.float32)).to(device)
        av = None if avail is None else torch.from_numpy(np.array(avail, dtype=bool)).to(device)
        a = learner.act(o, av, deterministic=True).cpu().numpy()
        return a.astype(np.int64) if avail is not None else a.astype(np.float32)

    return policy


def normalised_score(ret: float, random: float | None, expert: float | None) -> float | None:
    """100 * (ret - random) / (expert - random); None without both references or when they coincide."""
    if random is None or expert is None or not math.isfinite(random) or not math.isfinite(expert):
        return None
    if abs(expert - random) < 1e-9:
        return None
    return 100.0 * (ret - random) / (expert - random)


def reference_returns(env_id: str, seed: int, n_episodes: int = 32, batch_size: int = 8,
                      dataset_path: str | None = None, cache: str | Path | None = None) -> dict[str, Any]:
    """Random and expert team returns of ``env_id`` for the normalised score (cached as JSON in ``cache``).

    random: uniformly random (available) actions, measured here.
    expert: SMAX with a policy-zoo entry: its expert checkpoint (sampled, as in the expert
            dataset), measured here; MPE/SMAX otherwise: the scripted heuristic with the
            collector's expert epsilon, measured here;
            MaMuJoCo (no scripted expert): the mean return recorded in the manifest of the
            expert dataset next to ``dataset_path`` (``<env>_expert_s<seed>.manifest.json``),
            else the evaluation return of the TD3 run's expert checkpoint recorded in the
            dataset's own manifest, else the zoo entry's, else None (the score is then not reported).
    A cached file is reused only for the same env, seed, episodes and expert source.
    """
    from ..data import make_env
    from ..data.collect import EXPERT_EPSILON
    from ..data.envs.registry import parse_env_id
    from ..data.policies.base import RandomPolicy
    from ..data.policies.zoo import load_default_entry

    family, scenario = parse_env_id(env_id)
    entry = None if family == "mpe" else load_default_entry(env_id)
    expert_kind = f"zoo {entry.path.name} at {entry.card['budget']['env_steps']} steps" if entry else "scripted"
    if cache is not None and Path(cache).is_file():
        got = json.loads(Path(cache).read_text())
        same = (got.get("env"), got.get("seed"), got.get("episodes"), got.get("expert_kind"))
        if same == (env_id, seed, n_episodes, expert_kind):
            return got
    env = make_env(env_id, batch_size)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE7A1]))
    try:
        rand = RandomPolicy(env.action_low, env.action_high)
        random_ret = evaluate_policy(env_id, lambda o, s, a: rand.act(o, s, a, rng), n_episodes, seed, env=env)
        expert_ret, source = None, "none"
        if family in ("mpe", "smax"):
            if family == "mpe":
                from ..data.policies.mpe_heuristic import MPEHeuristicPolicy

                expert = MPEHeuristicPolicy(scenario, EXPERT_EPSILON)
                source = f"scripted heuristic, epsilon {EXPERT_EPSILON}"
            elif entry is not None:
                from ..data.policies.ppo_smax import policy_from_entry

                expert = policy_from_entry(entry, entry.card["expert"], "expert")
                source = f"policy zoo expert checkpoint ({expert_kind}), sampled"
            else:
                from ..data.policies.smax_heuristic import SMAXHeuristicPolicy

                expert = SMAXHeuristicPolicy(env, EXPERT_EPSILON)
                source = f"scripted heuristic, epsilon {EXPERT_EPSILON}"
            res = evaluate_policy(env_id, lambda o, s, a: expert.act(o, s, a, rng), n_episodes, seed, env=env,
                                  on_episode_end=expert.on_episode_end)
            expert_ret = res["return_mean"]
        else:
            expert_ret, source = _expert_from_manifests(env_id, Path(dataset_path)) if dataset_path else (None, "")
            if expert_ret is None and entry is not None:
                ck = entry.checkpoint("expert")
                expert_ret = float(ck["eval_return"])
                source = f"policy zoo expert checkpoint's evaluation return ({expert_kind})"
            elif expert_ret is None:
                source = "none (no expert dataset, TD3 record or zoo entry found)"
    finally:
        env.close()
    out = {"env": env_id, "seed": seed, "episodes": n_episodes, "random": random_ret["return_mean"],
           "expert": expert_ret, "expert_source": source, "expert_kind": expert_kind}
    if cache is not None:
        tmp = Path(cache).with_name(Path(cache).name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, cache)
    return out


def _expert_from_manifests(env_id: str, dataset_path: Path) -> tuple[float | None, str]:
    """MaMuJoCo's expert return: the expert dataset's mean return, else the TD3 run's expert checkpoint."""
    stem = f"{env_id.replace(':', '_')}_expert_s"
    for m in sorted(dataset_path.parent.glob(f"{stem}*.manifest.json")):
        return float(json.loads(m.read_text())["episode_return"]["mean"]), f"expert dataset manifest {m.name}"
    own = dataset_path.with_name(dataset_path.stem + ".manifest.json")
    if own.is_file():
        trainer = json.loads(own.read_text()).get("behaviour", {}).get("trainer", {})
        # a quick-TD3 dataset records its run as a dict; a zoo dataset names its trainer in words
        ret = (trainer.get("expert_checkpoint") or {}).get("eval_return") if isinstance(trainer, dict) else None
        if ret is not None:
            return float(ret), f"TD3 expert checkpoint's evaluation return ({own.name})"
    return None, "none"


def world_model_error(model, holdout, max_rows: int = 5000, seed: int = 0) -> dict[str, float]:
    """One-step errors of ``model`` on ``holdout`` (an OfflineDataset of held-out episodes).

    state_nmse: mean over state features (with non-zero variance) of MSE / variance of the
    true next state; reward_mse likewise unnormalised. Rows: a seeded subset of at most ``max_rows``.
    """
    nxt = holdout.next_fields()
    idx = nxt["index"]
    rows = np.arange(len(idx))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
    take = idx[rows]
    avail = None if holdout.avail_actions is None else np.asarray(holdout.avail_actions)[take]
    res = model.step(np.asarray(holdout.obs)[take], np.asarray(holdout.state)[take],
                     np.asarray(holdout.actions)[take], avail)
    true = torch.as_tensor(nxt["next_state"][rows], dtype=torch.float32)
    pred = res.next_state.cpu().float()
    var = true.var(0)
    keep = var > 1e-8
    nmse = ((pred - true).pow(2).mean(0)[keep] / var[keep]).mean()
    reward = torch.as_tensor(np.asarray(holdout.rewards)[take], dtype=torch.float32)
    return {"state_nmse": float(nmse), "reward_mse": float((res.reward.cpu() - reward).pow(2).mean()),
            "rows": int(len(rows))}
