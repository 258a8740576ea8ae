"""The dataset collector: run a behaviour policy of a given quality in an environment, write the data.

    logo-fast collect --env smax:2s3z --quality medium --seed 0 --out /work/datasets
    ds = collect("mpe:simple_spread", "medium", seed=0, n_episodes=200)   # in memory

Qualities (D4RL / OG-MARL naming):

  MPE, SMAX (scripted heuristics exist):
    expert         the heuristic with epsilon = ``expert_epsilon`` (0.05) random actions
    medium         the heuristic with a larger epsilon, chosen so the mean return is ~40% of
                   the way from random to expert (the D4RL "1/3 to 1/2 of expert" band); the
                   per-scenario values are in ``MEDIUM_EPSILON`` (measured with
                   ``calibrate_medium_epsilon``; scenarios not listed are calibrated on the fly)
    medium-replay  episodes whose epsilon falls linearly from 1.0 to ``expert_epsilon`` over
                   the collection (by steps collected), like the replay of a learning run
    mixed          half medium-replay + half expert (in that order)
  MaMuJoCo (no scripted controller; a TD3 run on the joint action, see ``policies.td3``):
    expert         the best checkpoint within the training budget, Gaussian noise std 0.1
    medium         the checkpoint closest to 40% of the way from random to expert, noise std 0.1
    medium-replay  the training replay up to the medium checkpoint (whole episodes; evenly
                   thinned to ``n_steps`` when longer)
    mixed          half medium-replay + half expert

Sizes: whole episodes only, stopping at the first episode that brings the total to at least
``n_steps`` (or exactly ``n_episodes`` episodes when given). With B parallel copies, episodes
still running at that moment are dropped. The data depends on (env, quality, seed,
batch_size, time_limit, sizes) and, for MaMuJoCo, on the cached training run; the same
arguments give byte-identical arrays on CPU.

Output: a native dataset file (``.h5`` streamed with ``HDF5Writer``; ``.npz`` in memory) and
``<stem>.manifest.json`` beside it with sizes, return statistics, the behaviour policy, the
package versions and the generation time.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .schema import DatasetSpec, OfflineDataset

Quality = Literal["expert", "medium", "medium-replay", "mixed"]
QUALITIES = ("expert", "medium", "medium-replay", "mixed")

# Per-family defaults: dataset size, parallel copies.
DEFAULT_N_STEPS = {"mpe": 100_000, "smax": 100_000, "mamujoco": 100_000}
DEFAULT_BATCH = {"mpe": 8, "smax": 64, "mamujoco": 4}
EXPERT_EPSILON = 0.05
MAMUJOCO_NOISE = 0.1
MEDIUM_TARGET = 0.4  # normalised return (random 0, expert 1) aimed at by "medium"

# Medium epsilon per scenario, measured with calibrate_medium_epsilon(env, seed=0) (see the
# report in /work/datasets/SUMMARY.md); a scenario missing here is calibrated when collected.
MEDIUM_EPSILON: dict[str, float] = {
    "mpe:simple_spread": 0.78,  # returns: expert(0.05) -10.50, eps 0.8 -20.51, random -26.13; goal -19.87
    "smax:2s3z": 0.51,  # returns: expert(0.05) 1.19, eps 0.5 0.61, random 0.22; goal 0.61
    # The heuristic does not kite, so on 3s_vs_5z it barely beats random (0.30 vs 0.21) and some
    # random actions even help (eps 0.5: 0.34); the first crossing of the goal is near eps 0.92.
    "smax:3s_vs_5z": 0.919,  # returns: expert(0.05) 0.30, eps 0.9 0.26, random 0.21; goal 0.25
    "smax:5m_vs_6m": 0.499,  # returns: expert(0.05) 0.56, eps 0.5 0.31, random 0.15; goal 0.31
    "smax:6h_vs_8z": 0.777,  # returns: expert(0.05) 0.62, eps 0.8 0.44, random 0.33; goal 0.44
}


def default_cache_dir() -> Path:
    """$LOGO_FAST_CACHE, else ~/.cache/logo_fast: where trained behaviour policies are kept."""
    return Path(os.environ.get("LOGO_FAST_CACHE", Path.home() / ".cache" / "logo_fast"))


@dataclass
class CollectArgs:
    """Collect one offline dataset (qualities: see ``logo_fast.data.collect``)."""

    env: str = "mpe:simple_spread"  # scenario id: mpe:simple_spread, smax:2s3z, mamujoco:Hopper-3x1, ...
    quality: Quality = "medium"  # expert | medium | medium-replay | mixed
    seed: int = 0  # seed of everything random (simulator, behaviour policy, MaMuJoCo trainer)
    out: str = "datasets"  # output file (.h5 or .npz) or a directory (gets <env>_<quality>_s<seed>.h5)
    n_steps: int | None = None  # minimum steps, whole episodes (default 100000 for every family)
    n_episodes: int | None = None  # exact number of episodes instead of n_steps
    batch_size: int | None = None  # parallel environment copies (default: mpe 8, smax 64, mamujoco 4)
    time_limit: int | None = None  # episode length limit (default: mpe 25, smax 100, mamujoco 1000)
    cache_dir: str | None = None  # trained MaMuJoCo policies (default $LOGO_FAST_CACHE or ~/.cache/logo_fast)
    train_minutes: float = 10.0  # MaMuJoCo: wall-clock budget of the TD3 run behind expert/medium
    expert_epsilon: float = EXPERT_EPSILON  # MPE/SMAX: random-action probability of "expert"
    medium_epsilon: float | None = None  # MPE/SMAX: "medium" epsilon (default: MEDIUM_EPSILON, else calibrated)
    compression: Literal["gzip", "lzf", "none"] = "gzip"  # HDF5 compression
    progress: bool = True  # show progress bars


def check_args(args: CollectArgs) -> str:
    """Validate ``args``; return the env family. One ValueError lists every problem."""
    from .envs.registry import parse_env_id

    problems = []
    family = ""
    try:
        family, _ = parse_env_id(args.env)
    except ValueError as err:
        problems.append(str(err))
    if args.quality not in QUALITIES:
        problems.append(f"quality must be one of {QUALITIES}, got {args.quality!r}")
    if args.n_steps is not None and args.n_episodes is not None:
        problems.append("give n_steps or n_episodes, not both")
    if args.n_steps is not None and args.n_steps < 1:
        problems.append(f"n_steps must be >= 1, got {args.n_steps}")
    if args.n_episodes is not None and args.n_episodes < (2 if args.quality == "mixed" else 1):
        problems.append(f"n_episodes must be >= 1 (>= 2 for mixed), got {args.n_episodes}")
    if args.batch_size is not None and args.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {args.batch_size}")
    if args.time_limit is not None and args.time_limit < 1:
        problems.append(f"time_limit must be >= 1, got {args.time_limit}")
    if not 0.0 <= args.expert_epsilon <= 1.0:
        problems.append(f"expert_epsilon must be in [0, 1], got {args.expert_epsilon}")
    if args.medium_epsilon is not None and not 0.0 <= args.medium_epsilon <= 1.0:
        problems.append(f"medium_epsilon must be in [0, 1], got {args.medium_epsilon}")
    if args.train_minutes <= 0:
        problems.append(f"train_minutes must be > 0, got {args.train_minutes}")
    suffix = Path(args.out).suffix.lower()
    if suffix and suffix not in (".h5", ".hdf5", ".hdf", ".npz"):
        problems.append(f"out: {args.out!r} must be a directory or end in .h5/.hdf5/.hdf/.npz")
    if problems:
        raise ValueError("invalid collect arguments:\n  - " + "\n  - ".join(problems))
    return family


# ---- the episode stream -------------------------------------------------------------------
class _Budget:
    """Counts whole episodes against a step or episode target; drives the progress bar."""

    def __init__(self, n_steps: int | None, n_episodes: int | None, desc: str, progress: bool):
        self.n_steps, self.n_episodes = n_steps, n_episodes
        self.steps = self.episodes = 0
        self.bar = None
        if progress:
            from tqdm import tqdm

            total = n_episodes if n_episodes is not None else n_steps
            self.bar = tqdm(total=total, desc=desc, unit="ep" if n_episodes is not None else "step", leave=False)

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


def run_policy(env, policy, seed: int, budget: _Budget, epsilon_schedule=None) -> Iterator[dict[str, np.ndarray]]:
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


def _replay_episodes(ds: OfflineDataset, episodes: np.ndarray, budget: _Budget) -> Iterator[dict[str, np.ndarray]]:
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
def _scripted_policy(env, family: str, scenario: str, epsilon):
    if family == "mpe":
        from .policies.mpe_heuristic import MPEHeuristicPolicy

        return MPEHeuristicPolicy(scenario, epsilon)
    from .policies.smax_heuristic import SMAXHeuristicPolicy

    return SMAXHeuristicPolicy(env, epsilon)


def mean_return(env, policy, seed: int, n_episodes: int) -> float:
    """Mean team return of ``policy`` over ``n_episodes`` whole episodes."""
    budget = _Budget(None, n_episodes, "", progress=False)
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
    from .envs.registry import make_env, parse_env_id

    family, scenario = parse_env_id(env_id)
    if family == "mamujoco":
        raise ValueError("calibrate_medium_epsilon is for scripted (MPE/SMAX) behaviour")
    env = make_env(env_id, batch_size or DEFAULT_BATCH[family])
    policy = _scripted_policy(env, family, scenario, 0.0)
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


def _mamujoco_parts(args: CollectArgs, env_id: str, cache_dir: Path):
    from .policies.td3 import TD3Config, train_or_load

    cfg = TD3Config(train_minutes=args.train_minutes)
    return train_or_load(env_id, args.seed, cfg, cache_dir, progress=args.progress)


# ---- collection ------------------------------------------------------------------------------
@dataclass
class _Plan:
    """What to run: a list of (label, episode-iterator factory) parts and the manifest's policy text."""

    spec: DatasetSpec
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    parts: list
    behaviour: dict[str, Any]
    env_info: dict[str, Any]


def _split_target(args: CollectArgs, n_steps: int | None, half: bool) -> tuple[int | None, int | None]:
    if args.n_episodes is not None:
        if not half:
            return None, args.n_episodes
        return None, args.n_episodes // 2
    return (n_steps // 2 if half else n_steps), None


def _plan(args: CollectArgs, family: str) -> _Plan:
    from .envs.registry import make_env, parse_env_id

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
            policy = _scripted_policy(env, family, scenario, eps)
            parts.append(
                ("medium", lambda budget: run_policy(env, policy, args.seed, budget), n_steps, args.n_episodes)
            )
        else:
            sweep = lambda frac: 1.0 - (1.0 - expert_eps) * min(frac, 1.0)
            half = q == "mixed"
            ns, ne = _split_target(args, n_steps, half)
            if q in ("medium-replay", "mixed"):
                policy_r = _scripted_policy(env, family, scenario, 1.0)
                seed_r = args.seed if q == "medium-replay" else int(seeds[0])
                parts.append(("medium-replay", lambda budget: run_policy(env, policy_r, seed_r, budget, sweep), ns, ne))
                behaviour["medium_replay_epsilon"] = f"linear 1.0 -> {expert_eps} over the collection"
            if q in ("expert", "mixed"):
                policy_e = _scripted_policy(env, family, scenario, expert_eps)
                seed_e = args.seed if q == "expert" else int(seeds[1])
                ne_e = None if ne is None else (args.n_episodes - ne if half else ne)
                parts.append(("expert", lambda budget: run_policy(env, policy_e, seed_e, budget), ns, ne_e))
                behaviour["expert_epsilon"] = expert_eps
        behaviour["policy"] = _scripted_policy(env, family, scenario, 0.0).describe()["kind"]
        return _Plan(spec, low, high, parts, behaviour, env_info)

    # MaMuJoCo: one cached TD3 run defines every quality.
    from .policies.td3 import JointActionCodec, TD3BehaviourPolicy, make_actor

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
            ("medium-replay", lambda budget: _replay_episodes(result.replay, chosen, budget), None, len(chosen))
        )
    if q in ("expert", "mixed"):
        pol_e = ckpt_policy(result.best_index(), "expert")
        behaviour["policy" if q == "expert" else "expert_policy"] = pol_e.describe()
        seed_e = args.seed if q == "expert" else int(seeds[1])
        ne_e = None if ne is None else (args.n_episodes - ne if half else ne)
        parts.append(("expert", lambda budget: run_policy(env, pol_e, seed_e, budget), ns, ne_e))
    return _Plan(spec, low, high, parts, behaviour, env_info)


def _episodes(plan: _Plan, progress: bool) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    for label, make_iter, ns, ne in plan.parts:
        budget = _Budget(ns, ne, label, progress)
        try:
            for ep in make_iter(budget):
                yield label, ep
        finally:
            budget.close()


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", *packages):
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            try:
                out[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                out[name] = "not installed"
    return out


def _return_stats(returns: list[float]) -> dict[str, float]:
    r = np.asarray(returns, dtype=np.float64)
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max())}


class _Accumulator:
    """In-memory sink with the HDF5Writer's ``append_episode`` interface."""

    def __init__(self):
        self.eps: list[dict[str, np.ndarray]] = []

    def append_episode(self, **ep):
        self.eps.append(ep)

    def dataset(self, plan: _Plan, metadata: dict[str, Any]) -> OfflineDataset:
        cat = lambda k, dtype: np.concatenate([e[k] for e in self.eps]).astype(dtype, copy=False)
        fin = lambda k, dtype: np.stack([e[k] for e in self.eps]).astype(dtype, copy=False)
        discrete = plan.spec.discrete
        return OfflineDataset(
            spec=plan.spec,
            obs=cat("obs", np.float32),
            state=cat("state", np.float32),
            actions=cat("actions", np.int64 if discrete else np.float32),
            rewards=cat("rewards", np.float32),
            terminals=cat("terminals", bool),
            truncations=cat("truncations", bool),
            avail_actions=cat("avail_actions", bool) if discrete else None,
            agent_rewards=cat("agent_rewards", np.float32),
            action_low=None if discrete else plan.action_low,
            action_high=None if discrete else plan.action_high,
            final_obs=fin("final_obs", np.float32),
            final_state=fin("final_state", np.float32),
            final_avail=fin("final_avail", bool) if discrete else None,
            metadata=metadata,
        )


def _gather(plan: _Plan, sink, progress: bool) -> tuple[dict[str, list[float]], int, int]:
    returns: dict[str, list[float]] = {}
    steps = episodes = 0
    for label, ep in _episodes(plan, progress):
        sink.append_episode(**ep)
        returns.setdefault(label, []).append(float(ep["rewards"].astype(np.float64).sum()))
        steps += len(ep["rewards"])
        episodes += 1
    return returns, steps, episodes


def _metadata(args: CollectArgs, plan: _Plan, returns, steps: int, episodes: int, wall: float) -> dict[str, Any]:
    everything = [r for rs in returns.values() for r in rs]
    return {
        "env": args.env,
        "quality": args.quality,
        "seed": args.seed,
        "n_steps": steps,
        "n_episodes": episodes,
        "episode_return": _return_stats(everything),
        "episode_return_by_part": {k: {**_return_stats(v), "episodes": len(v)} for k, v in returns.items()},
        "behaviour": plan.behaviour,
        "env_info": plan.env_info,
        "spec": plan.spec.to_dict(),
        "args": asdict(args),
        "versions": _versions(tuple(plan.env_info["packages"])),
        "generation_wall_s": round(wall, 2),
        "collector": "logo_fast.data.collect v1",
    }


def collect(
    env: str,
    quality: str = "medium",
    seed: int = 0,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    **options: Any,
) -> OfflineDataset:
    """Collect a dataset in memory (validated). ``options``: any other ``CollectArgs`` field.

    ``collect("mpe:simple_spread", "medium", 0, n_episodes=200)`` takes a couple of seconds.
    """
    from .validate import validate_dataset

    args = CollectArgs(
        env=env, quality=quality, seed=seed, n_episodes=n_episodes, n_steps=n_steps, **{"progress": False, **options}
    )
    family = check_args(args)
    start = time.perf_counter()
    plan = _plan(args, family)
    sink = _Accumulator()
    returns, steps, episodes = _gather(plan, sink, args.progress)
    ds = sink.dataset(plan, {})
    ds.metadata = _metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
    validate_dataset(ds)
    return ds


def output_path(args: CollectArgs) -> Path:
    """The dataset file ``args.out`` names (a directory gets <env>_<quality>_s<seed>.h5)."""
    out = Path(args.out).expanduser()
    if out.suffix.lower() in (".h5", ".hdf5", ".hdf", ".npz"):
        return out
    return out / f"{args.env.replace(':', '_')}_{args.quality}_s{args.seed}.h5"


def manifest_path(dataset_path: Path) -> Path:
    return dataset_path.with_name(dataset_path.stem + ".manifest.json")


def run_collect(args: CollectArgs) -> Path:
    """Collect, validate and write the dataset and its manifest (both atomically); return the dataset path."""
    from .io import HDF5Writer, atomic_path, save

    family = check_args(args)
    path = output_path(args)
    start = time.perf_counter()
    plan = _plan(args, family)
    compression = None if args.compression == "none" else args.compression
    if path.suffix.lower() == ".npz":
        sink = _Accumulator()
        returns, steps, episodes = _gather(plan, sink, args.progress)
        meta = _metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
        save(sink.dataset(plan, meta), path)
    else:
        low_high = {} if plan.spec.discrete else {"action_low": plan.action_low, "action_high": plan.action_high}
        with HDF5Writer(path, plan.spec, compression=compression, **low_high) as writer:
            returns, steps, episodes = _gather(plan, writer, args.progress)
            meta = _metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
            writer.metadata = meta
    meta["file"] = str(path)
    meta["file_bytes"] = path.stat().st_size
    meta["generation_wall_s"] = round(time.perf_counter() - start, 2)
    with atomic_path(manifest_path(path), ".json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    _print_summary(meta)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _print_summary(meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r = meta["episode_return"]
    table = Table(title=f"{meta['env']} {meta['quality']} (seed {meta['seed']})", show_header=False)
    table.add_row("file", f"{meta['file']} ({meta['file_bytes'] / 1e6:.1f} MB)")
    table.add_row("size", f"{meta['n_steps']} steps, {meta['n_episodes']} episodes")
    table.add_row("episode return", f"mean {r['mean']:.3f}  std {r['std']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}")
    for part, s in meta["episode_return_by_part"].items():
        table.add_row(f"  {part}", f"{s['episodes']} episodes, mean {s['mean']:.3f}")
    table.add_row("generation time", f"{meta['generation_wall_s']:.1f} s")
    Console().print(table)
