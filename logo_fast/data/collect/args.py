"""The collector's arguments: qualities, per-family defaults, ``CollectArgs`` and its checks, output names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ...files import writable_problem
from ..envs.registry import parse_env_id

Quality = Literal["expert", "medium", "medium-replay", "mixed"]
QUALITIES: tuple[str, ...] = get_args(Quality)
Behaviour = Literal["auto", "zoo", "scripted", "quick-td3"]
BEHAVIOURS: tuple[str, ...] = get_args(Behaviour)
DATASET_SUFFIXES = (".h5", ".hdf5", ".hdf", ".npz")

# Per-family defaults: dataset size, parallel copies.
DEFAULT_N_STEPS = {"mpe": 100_000, "smax": 100_000, "mamujoco": 100_000}
DEFAULT_BATCH = {"mpe": 8, "smax": 64, "mamujoco": 4}
EXPERT_EPSILON = 0.05
MAMUJOCO_NOISE = 0.1
MEDIUM_TARGET = 0.4  # normalised return (random 0, expert 1) aimed at by "medium"

# Medium epsilon per scenario, measured with calibrate_medium_epsilon(env, seed=0) (the
# datasets' SUMMARY.md has the curves); a scenario missing here is calibrated when collected.
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
    """Collect one offline dataset with a behaviour policy of the given quality.

    Qualities with a trained behaviour policy from the policy zoo (SMAX, MaMuJoCo): expert (the
    run's best checkpoint), medium (the checkpoint closest to half the expert's return),
    medium-replay (the run up to medium, replayed by its checkpoints), mixed (half
    medium-replay, half expert). With a scripted policy (MPE; --behaviour scripted): expert
    (few random actions), medium (random actions mixed in to about 40% of the way from random
    to expert), medium-replay (a sweep from random to expert).
    """

    env: str = "mpe:simple_spread"
    """Scenario id, e.g. mpe:simple_spread, smax:2s3z, mamujoco:Hopper-3x1."""
    quality: Quality = "medium"
    """Behaviour-policy quality: expert, medium, medium-replay or mixed."""
    seed: int = 0
    """Seed of everything random (simulator, behaviour policy, MaMuJoCo trainer); an int >= 0."""
    out: str = "datasets"
    """Output .h5/.hdf5/.npz file, or a directory that gets <env>_<quality>_s<seed>.h5 (relative to the cwd)."""
    n_steps: int | None = None
    """Minimum number of steps, in whole episodes (default 100000 for every family)."""
    n_episodes: int | None = None
    """Exact number of episodes instead of a step count (at least 2 for mixed)."""
    batch_size: int | None = None
    """Parallel environment copies (default: 8 for MPE, 64 for SMAX, 4 for MaMuJoCo)."""
    time_limit: int | None = None
    """Episode length limit (default: the scenario's own, 25 for MPE, 100 for SMAX, 1000 for MaMuJoCo)."""
    behaviour: Behaviour = "auto"
    """Behaviour policy: zoo (trained, shipped with the package: SMAX, MaMuJoCo), scripted (MPE/SMAX
    heuristics), quick-td3 (MaMuJoCo: train TD3 now for --train-minutes), or auto (zoo where it
    has the scenario, else scripted or quick-td3)."""
    zoo_dir: str | None = None
    """Policy zoo to read (default: the package's own; logo-fast data behaviour --zoo-dir DIR writes one)."""
    cache_dir: str | None = None
    """Where trained MaMuJoCo behaviour policies are kept (default: $LOGO_FAST_CACHE or ~/.cache/logo_fast)."""
    train_minutes: float = 10.0
    """MaMuJoCo with quick-td3 only: wall-clock budget of the TD3 run behind expert and medium."""
    expert_epsilon: float = EXPERT_EPSILON
    """MPE/SMAX only: probability of a random action for expert."""
    medium_epsilon: float | None = None
    """MPE/SMAX only: random-action probability for medium (default: the per-scenario calibrated value)."""
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    """HDF5 compression."""
    progress: bool = True
    """Show progress (a bar on a terminal, a line every 30 s in a pipe or log)."""
    quiet: bool = False
    """Print nothing: no progress and no summary table (errors still go to stderr)."""


def _int_problem(name: str, value, low: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an int, got {value!r}"
    if value < low:
        return f"{name} must be >= {low}, got {value}"
    return None


def check_args(args: CollectArgs, *, check_out: bool = False) -> str:
    """Validate ``args``; return the env family. One ValueError lists every problem.

    check_out: also check that ``args.out`` can be written (the command line does, before collecting).
    """
    problems = []
    family = ""
    try:
        family, _ = parse_env_id(args.env)
    except ValueError as err:
        problems.append(f"env: {err}")
    if args.quality not in QUALITIES:
        problems.append(f"quality must be one of {QUALITIES}, got {args.quality!r}")
    if args.behaviour not in BEHAVIOURS:
        problems.append(f"behaviour must be one of {BEHAVIOURS}, got {args.behaviour!r}")
    elif family and args.behaviour == "scripted" and family == "mamujoco":
        problems.append("behaviour: MaMuJoCo has no scripted policy (use zoo or quick-td3)")
    elif family and args.behaviour == "quick-td3" and family != "mamujoco":
        problems.append("behaviour: quick-td3 trains MaMuJoCo policies only")
    problems.append(_int_problem("seed", args.seed, 0))
    if args.n_steps is not None and args.n_episodes is not None:
        problems.append("n_steps: give n_steps or n_episodes, not both")
    problems.append(_int_problem("n_steps", args.n_steps, 1))
    problems.append(_int_problem("n_episodes", args.n_episodes, 2 if args.quality == "mixed" else 1))
    problems.append(_int_problem("batch_size", args.batch_size, 1))
    problems.append(_int_problem("time_limit", args.time_limit, 1))
    if not 0.0 <= args.expert_epsilon <= 1.0:
        problems.append(f"expert_epsilon must be in [0, 1], got {args.expert_epsilon}")
    if args.medium_epsilon is not None and not 0.0 <= args.medium_epsilon <= 1.0:
        problems.append(f"medium_epsilon must be in [0, 1], got {args.medium_epsilon}")
    if not args.train_minutes > 0:
        problems.append(f"train_minutes must be > 0, got {args.train_minutes}")
    if args.compression not in ("gzip", "lzf", "none"):
        problems.append(f"compression must be gzip, lzf or none, got {args.compression!r}")
    suffix = Path(args.out).suffix.lower()
    if suffix and suffix not in DATASET_SUFFIXES:
        problems.append(f"out: {args.out!r} must be a directory or end in .h5/.hdf5/.hdf/.npz")
    elif check_out:
        problems.append(writable_problem(output_path(args), "out"))
    problems = [p for p in problems if p]
    if problems:
        raise ValueError("invalid collect arguments:\n  - " + "\n  - ".join(problems))
    return family


def output_path(args: CollectArgs) -> Path:
    """The dataset file ``args.out`` names (a directory gets <env>_<quality>_s<seed>.h5)."""
    out = Path(args.out).expanduser()
    if out.suffix.lower() in DATASET_SUFFIXES:
        return out
    return out / f"{args.env.replace(':', '_')}_{args.quality}_s{args.seed}.h5"


def manifest_path(dataset_path: Path) -> Path:
    """``<stem>.manifest.json`` beside the dataset."""
    return dataset_path.with_name(dataset_path.stem + ".manifest.json")
