"""The dataset collector: run a behaviour policy of a given quality in an environment, write the data.

    logo-fast collect --env smax:2s3z --quality medium --seed 0 --out datasets/
    ds = collect("mpe:simple_spread", "medium", seed=0, n_episodes=200)   # in memory

Qualities (D4RL / OG-MARL naming), by behaviour source (``--behaviour``, default ``auto``):

  zoo: trained behaviour policies shipped with the package (``policies.zoo``; SMAX: MAPPO,
  MaMuJoCo: TD3 on the joint action; trained by ``logo-fast data behaviour``), as CFCQL and
  OMIGA define the qualities:
    expert         the run's best checkpoint (SMAX: sampled from its softmax; TD3: noise std 0.1)
    medium         the checkpoint whose score is closest to half the expert's
    medium-replay  the run up to the medium checkpoint, replayed: equal shares of episodes from
                   its checkpoints in training order (uniform random actions for TD3's warm-up)
    mixed          half medium-replay + half expert
  scripted (MPE always; SMAX with ``--behaviour scripted``):
    expert         the heuristic with epsilon = ``expert_epsilon`` (0.05) random actions
    medium         the heuristic with a larger epsilon, chosen so the mean return is ~40% of
                   the way from random to expert; per-scenario values in ``MEDIUM_EPSILON``
                   (measured with ``calibrate_medium_epsilon``; others are calibrated on the fly)
    medium-replay  episodes whose epsilon falls linearly from 1.0 to ``expert_epsilon`` over
                   the collection (by steps collected), like the replay of a learning run
    mixed          half medium-replay + half expert (in that order)
  quick-td3 (MaMuJoCo, ``--behaviour quick-td3``; ``auto`` where the zoo has no entry): a TD3
  run of ``--train-minutes`` trained now and cached (``policies.td3``):
    expert         the best checkpoint within the budget, Gaussian noise std 0.1
    medium         the checkpoint closest to 40% of the way from random to expert, noise std 0.1
    medium-replay  the training replay up to the medium checkpoint (whole episodes; evenly
                   thinned to ``n_steps`` when longer)
    mixed          half medium-replay + half expert

Sizes: whole episodes only, stopping at the first episode that brings the total to at least
``n_steps`` (or exactly ``n_episodes`` episodes when given). With B parallel copies, episodes
still running at that moment are dropped. The data depends on (env, quality, seed,
batch_size, time_limit, sizes) and on the behaviour run (zoo entry or cached TD3 run); the same
arguments give byte-identical arrays on CPU.

Output: a native dataset file (``.h5`` streamed with ``HDF5Writer``; ``.npz`` in memory) and
``<stem>.manifest.json`` beside it with sizes, return statistics, the behaviour policy, the
package versions and the generation time.

Modules: ``args`` (``CollectArgs``, qualities, defaults, checks), ``episodes`` (the episode
stream, medium calibration), ``plan`` (which policies and sources make each quality),
``manifest`` (metadata, manifest, summary table); ``collect``/``run_collect`` are here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...files import write_json
from ..io import HDF5Writer, save
from ..schema import OfflineDataset
from ..validate import validate_dataset
from .args import (
    DEFAULT_BATCH,
    DEFAULT_N_STEPS,
    EXPERT_EPSILON,
    MAMUJOCO_NOISE,
    MEDIUM_EPSILON,
    MEDIUM_TARGET,
    QUALITIES,
    CollectArgs,
    Quality,
    check_args,
    default_cache_dir,
    manifest_path,
    output_path,
)
from .episodes import calibrate_medium_epsilon, mean_return, run_policy
from .manifest import build_metadata, print_summary
from .plan import Plan, make_plan, plan_episodes

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_N_STEPS",
    "EXPERT_EPSILON",
    "MAMUJOCO_NOISE",
    "MEDIUM_EPSILON",
    "MEDIUM_TARGET",
    "QUALITIES",
    "CollectArgs",
    "Quality",
    "calibrate_medium_epsilon",
    "check_args",
    "collect",
    "default_cache_dir",
    "manifest_path",
    "mean_return",
    "output_path",
    "run_collect",
    "run_policy",
]


class _Accumulator:
    """In-memory sink with the HDF5Writer's ``append_episode`` interface."""

    def __init__(self):
        self.eps: list[dict[str, np.ndarray]] = []

    def append_episode(self, **ep):
        self.eps.append(ep)

    def dataset(self, plan: Plan, metadata: dict[str, Any]) -> OfflineDataset:
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


def _gather(plan: Plan, sink, show: bool) -> tuple[dict[str, list[float]], int, int]:
    returns: dict[str, list[float]] = {}
    steps = episodes = 0
    for label, ep in plan_episodes(plan, show):
        sink.append_episode(**ep)
        returns.setdefault(label, []).append(float(ep["rewards"].astype(np.float64).sum()))
        steps += len(ep["rewards"])
        episodes += 1
    return returns, steps, episodes


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
    args = CollectArgs(
        env=env, quality=quality, seed=seed, n_episodes=n_episodes, n_steps=n_steps, **{"progress": False, **options}
    )
    family = check_args(args)
    start = time.perf_counter()
    plan = make_plan(args, family)
    sink = _Accumulator()
    returns, steps, episodes = _gather(plan, sink, args.progress and not args.quiet)
    ds = sink.dataset(plan, {})
    ds.metadata = build_metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
    validate_dataset(ds)
    return ds


def run_collect(args: CollectArgs) -> Path:
    """Collect, validate and write the dataset and its manifest (both atomically); return the dataset path.

    Checks every argument, and that ``args.out`` can be written, before any work. An exception
    or Ctrl-C (or SIGTERM under the command line) while collecting removes the temp file.
    """
    family = check_args(args, check_out=True)
    path = output_path(args)
    start = time.perf_counter()
    plan = make_plan(args, family)
    compression = None if args.compression == "none" else args.compression
    show = args.progress and not args.quiet
    if path.suffix.lower() == ".npz":
        sink = _Accumulator()
        returns, steps, episodes = _gather(plan, sink, show)
        meta = build_metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
        save(sink.dataset(plan, meta), path)
    else:
        low_high = {} if plan.spec.discrete else {"action_low": plan.action_low, "action_high": plan.action_high}
        with HDF5Writer(path, plan.spec, compression=compression, **low_high) as writer:
            returns, steps, episodes = _gather(plan, writer, show)
            meta = build_metadata(args, plan, returns, steps, episodes, time.perf_counter() - start)
            writer.metadata = meta
    meta["file"] = str(path)
    meta["file_bytes"] = path.stat().st_size
    meta["generation_wall_s"] = round(time.perf_counter() - start, 2)
    write_json(manifest_path(path), meta)
    if not args.quiet:
        print_summary(meta)
    return path
