"""The LOGO system end to end: an offline MARL learner trained on real + uncertainty-weighted synthetic data.

(One file of over 600 lines on purpose: like CORL's and cleanrl's scripts, the run reads top to bottom.)

    logo-fast train --config logo_fast/configs/mpe_simple_spread.json [--method bc] [--world-model none] ...

1. load the dataset (``--dataset``, else ``<data-dir>/<env>_<quality>_s<data-seed>.h5``, collected
   when missing) and hold out ``holdout_fraction`` of its episodes for the world-model error;
2. fit (or load) the world model: ``logo``, ``joint``, ``ensemble`` or ``none`` (learner alone);
3. every ``rollout_every`` learner updates, roll the model out from ``rollout_starts`` dataset
   states under the current policy (exploring, horizon 15) into ``UncertaintyWeightedReplay``;
4. the learner draws batches of ``real_ratio`` real rows, the rest synthetic by uncertainty weight;
5. every ``eval_every`` updates, play ``eval_episodes`` episodes in the real environment with the
   greedy policy: mean return, normalised score (100 = expert, 0 = random), SMAX win rate;
6. write ``report.json``, ``report.md``, ``learning_curve.png``, ``metrics.jsonl``/``.csv``.

Checkpoint and resume: every ``checkpoint_every`` updates ``checkpoint.pt`` is replaced atomically
with the learner (networks, optimisers, step, RNG), the replay (synthetic rows, sampler, RNG),
the rollout generator and the metrics so far; the fitted world model is saved once as
``world_model.pt`` (its fit writes ``wm_fit.pt`` as it goes and resumes from it). Rerunning the same
command after a crash or ``kill -9`` continues from the last checkpoint and ends in the same state
as an uninterrupted run (CPU, same seed). A checkpoint made with other settings is refused.

Config files: ``--config FILE`` (JSON) fills these fields (nested objects for ``wm``, ``macql``,
``macql_continuous``, ``bc``); command-line flags override it. A flag is recognised as given when
its value differs from the built-in default, so to force a built-in default over a file's value,
edit the file. The packaged configs are in ``logo_fast/configs/``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..learners import BCConfig, MACQLContinuousConfig, MACQLDiscreteConfig
from ..model.config import WorldModelConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
WORLD_MODELS = ("none", "logo", "joint", "ensemble")
# Fields that do not change what is computed: a checkpoint stays valid when only these differ.
_NOT_STATE = {"config", "out", "threads", "progress", "log_every", "resume", "restart_on_mismatch", "tensorboard",
              "updates", "eval_every", "checkpoint_every",
              "rollout_cuda_graph"}  # a speed switch, newer than the checkpoints written so far


def _default_wm() -> WorldModelConfig:
    return WorldModelConfig(epochs=50, max_steps=3000)


@dataclass
class TrainArgs:
    """Train an offline MARL learner on real + world-model data; evaluate it in the real environment."""

    config: str = ""
    """JSON file whose keys fill these fields (a name without a folder is looked up in logo_fast/configs/)"""
    env: str = "mpe:simple_spread"
    """scenario id (`logo-fast collect` ids: mpe:simple_spread, smax:2s3z, mamujoco:Hopper-3x1, ...)"""
    quality: str = "medium"
    """dataset quality: expert | medium | medium-replay | mixed"""
    dataset: str = ""
    """dataset file; empty: <data_dir>/<env>_<quality>_s<data_seed>.h5 (collected when missing)"""
    data_dir: str = "datasets"
    """where datasets are looked for and collected into"""
    data_seed: int = 0
    """seed of the dataset (its file name) and of the holdout split"""
    collect_episodes: int | None = None
    """episodes to collect when the dataset is missing (None: the collector's default of 100k steps)"""
    max_episodes: int = 0
    """use only the first this many episodes of the dataset (0: all)"""
    holdout_fraction: float = 0.1
    """episodes held out from everything and used only to score the world model's one-step error"""
    method: str = "macql"
    """learner: macql or bc (discrete/continuous variant by the task), or a name in logo_fast.learners.LEARNERS"""
    world_model: Literal["none", "logo", "joint", "ensemble"] = "logo"
    """world model whose rollouts augment the replay (none: the learner alone, real data only)"""
    wm_checkpoint: str = ""
    """load this fitted world model instead of fitting one (its spec must match the dataset)"""
    wm: WorldModelConfig = field(default_factory=_default_wm)
    """world-model architecture and fit"""
    macql: MACQLDiscreteConfig = field(default_factory=MACQLDiscreteConfig)
    """MACQL for discrete tasks (MPE, SMAX)"""
    macql_continuous: MACQLContinuousConfig = field(default_factory=MACQLContinuousConfig)
    """MACQL for continuous tasks (MaMuJoCo)"""
    bc: BCConfig = field(default_factory=BCConfig)
    """behaviour cloning (both action types)"""
    updates: int = 20_000
    """learner gradient updates in total"""
    batch_size: int = 256
    """rows per learner update"""
    rollout_every: int = 1000
    """learner updates between world-model rollouts (K)"""
    rollout_starts: int = 1024
    """rollouts branched from dataset states each time"""
    horizon: int = 15
    """rollout length (the paper's best)"""
    u_threshold: float | None = None
    """drop synthetic transitions whose uncertainty exceeds this, ending their rollout (None: keep all)"""
    rollout_cuda_graph: bool = False
    """on a CUDA device, replay each rollout step as a CUDA graph (the learner's policy must be capturable: no CPU random draws or host syncs)"""  # noqa: E501
    replay_capacity: int = 100_000
    """synthetic rows kept (FIFO)"""
    C: float = 2.0
    """priority cap: a synthetic row's weight is proportional to exp(clip(C - u, 0, C))"""
    real_ratio: float = 0.5
    """fraction of each batch drawn from the real data once synthetic rows exist"""
    eval_every: int = 2000
    """learner updates between evaluations in the real environment (and one at the end)"""
    eval_episodes: int = 32
    """episodes per evaluation"""
    eval_batch: int = 8
    """environment copies stepped together during evaluation"""
    random_return: float | None = None
    """return of a random policy for the normalised score (None: measured)"""
    expert_return: float | None = None
    """expert return for the normalised score (None: scripted heuristic, or the expert dataset's manifest)"""
    checkpoint_every: int = 2000
    """learner updates between checkpoints (and one at the end)"""
    log_every: int = 250
    """learner updates between metric rows (and log lines when the output is not a terminal)"""
    seed: int = 0
    """seeds the learner, the world model, rollouts, sampling and evaluation"""
    out: str = "runs/train"
    """run folder: checkpoints, metrics, report"""
    resume: bool = True
    """continue from <out>/checkpoint.pt when it exists (else start over and overwrite)"""
    restart_on_mismatch: bool = False
    """start over when <out>/checkpoint.pt was written with other settings (default: refuse with an error)"""
    device: str = "cpu"
    """torch device of the learner, world model and replay"""
    threads: int = 1
    """torch CPU threads (0: leave torch's default); these models are small, one thread is fastest here"""
    progress: Literal["auto", "bar", "log", "none"] = "auto"
    """auto: a progress bar on a terminal, a one-line log every log_every updates otherwise"""
    tensorboard: bool = True
    """also write TensorBoard scalars to <out>/tb when tensorboard is installed"""

    def problems(self) -> list[str]:
        """Every invalid setting, as readable lines."""
        from ..data.envs.registry import parse_env_id

        out = []
        try:
            parse_env_id(self.env)
        except ValueError as err:
            out.append(str(err).splitlines()[0])
        if self.quality not in ("expert", "medium", "medium-replay", "mixed"):
            out.append(f"quality must be expert, medium, medium-replay or mixed, got {self.quality!r}")
        from ..learners import LEARNERS

        if self.method not in LEARNERS:
            out.append(f"method must be one of {sorted(LEARNERS)}, got {self.method!r}")
        if self.world_model not in WORLD_MODELS:
            out.append(f"world_model must be one of {WORLD_MODELS}, got {self.world_model!r}")
        for k in ("updates", "batch_size", "rollout_every", "rollout_starts", "horizon", "replay_capacity",
                  "eval_every", "eval_episodes", "eval_batch", "checkpoint_every", "log_every"):
            if getattr(self, k) < 1:
                out.append(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.max_episodes < 0 or self.threads < 0:
            out.append("max_episodes and threads must be >= 0")
        if self.collect_episodes is not None and self.collect_episodes < 2:
            out.append(f"collect_episodes must be >= 2, got {self.collect_episodes}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            out.append(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if not 0.0 <= self.real_ratio <= 1.0:
            out.append(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if not 0.0 <= self.C <= 700:
            out.append(f"C must be in [0, 700], got {self.C}")
        if self.world_model == "none" and self.wm_checkpoint:
            out.append("wm_checkpoint is given but world_model is 'none'")
        if self.wm_checkpoint and not Path(self.wm_checkpoint).is_file():
            out.append(f"wm_checkpoint {self.wm_checkpoint!r} does not exist")
        if self.dataset and not Path(self.dataset).exists():
            out.append(f"dataset {self.dataset!r} does not exist")
        if self.progress not in ("auto", "bar", "log", "none"):
            out.append(f"progress must be auto, bar, log or none, got {self.progress!r}")
        for name, cfg in (("wm", self.wm), ("macql", self.macql), ("macql_continuous", self.macql_continuous),
                          ("bc", self.bc)):
            out += [f"{name}.{p}" for p in cfg.problems()]
        return out

    def dataset_path(self) -> Path:
        if self.dataset:
            return Path(self.dataset)
        return Path(self.data_dir) / f"{self.env.replace(':', '_')}_{self.quality}_s{self.data_seed}.h5"


# ---- config files ------------------------------------------------------------------------------
def _from_dict(cls, d: dict[str, Any], where: str, problems: list[str]):
    """Build dataclass ``cls`` from ``d`` (nested dicts for nested dataclasses), collecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k not in fields:
            problems.append(f"{where}: unknown key {k!r}")
            continue
        default = cls.__dataclass_fields__[k].default_factory
        if isinstance(v, dict) and default is not dataclasses.MISSING and dataclasses.is_dataclass(default()):
            base = asdict(default())
            base.update(v)
            kwargs[k] = _from_dict(type(default()), base, f"{where}.{k}", problems)
        else:
            kwargs[k] = v
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        problems.append(f"{where}: {err}")
        return None


def resolve_config_path(path: str) -> Path:
    """A config file path; a bare name (no folder) that is not a file here is looked up in the package configs."""
    p = Path(path)
    if not p.is_file() and p.parent == Path(".") and (CONFIG_DIR / p.name).is_file():
        return CONFIG_DIR / p.name
    return p


def load_config(path: str, overrides: TrainArgs | None = None) -> TrainArgs:
    """TrainArgs from the JSON file ``path``; fields of ``overrides`` that differ from the defaults win."""
    p = resolve_config_path(path)
    if not p.is_file():
        raise ValueError(f"config file {path!r} not found (packaged configs: "
                         f"{', '.join(sorted(x.name for x in CONFIG_DIR.glob('*.json')))})")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"config file {p}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {p}: expected a JSON object")
    data.pop("comment", None)
    if overrides is not None:
        data = _merge(data, _changed(overrides, TrainArgs()))
    problems: list[str] = []
    args = _from_dict(TrainArgs, data, str(p), problems)
    if problems:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(problems))
    args.config = str(p)
    return args


def _changed(args: Any, default: Any) -> dict[str, Any]:
    """The fields of dataclass ``args`` that differ from ``default`` (recursively, as a nested dict)."""
    out = {}
    for f in dataclasses.fields(args):
        a, b = getattr(args, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(a):
            sub = _changed(a, b)
            if sub:
                out[f.name] = sub
        elif a != b and f.name != "config":
            out[f.name] = a
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---- small helpers -----------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic | torch.Tensor):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return repr(x)


def _state_key(args: TrainArgs) -> dict[str, Any]:
    """The settings a checkpoint must share with the current run to be resumed."""
    d = json.loads(json.dumps(asdict(args), default=_json_default))
    return {k: v for k, v in d.items() if k not in _NOT_STATE}


class _Log:
    """A tqdm bar on a terminal, else a one-line log every ``log_every`` updates (or nothing)."""

    def __init__(self, mode: str, total: int, start: int, desc: str):
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "log"
        self.mode = mode
        self.bar = None
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def line(self, text: str, postfix: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        elif self.mode == "log":
            print(text, flush=True)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.mode != "none":
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---- the stages --------------------------------------------------------------------------------
def load_or_collect(args: TrainArgs, log=print):
    """The dataset of ``args`` (collected into ``args.data_dir`` when missing), cut to ``max_episodes``."""
    from ..data import load
    from ..data.collect import CollectArgs, run_collect

    path = args.dataset_path()
    if not path.exists():
        if args.dataset:
            raise ValueError(f"dataset {path} does not exist")
        log(f"collecting {args.env} {args.quality} (seed {args.data_seed}) into {path}")
        run_collect(CollectArgs(env=args.env, quality=args.quality, seed=args.data_seed, out=str(path),
                                n_episodes=args.collect_episodes, progress=False))
    ds = load(str(path))
    if args.max_episodes and ds.n_episodes > args.max_episodes:
        ds = ds.select_episodes(np.arange(args.max_episodes))
    return ds, path


def _world_model(args: TrainArgs, train_ds, out: Path, progress: bool, device: str, ctx):
    """The fitted world model (None for ``none``): loaded, or fitted (data-parallel under torchrun)."""
    from ..distributed import fit_distributed
    from ..model import MODEL_CLASSES, load_world_model

    if args.world_model == "none":
        return None, 0.0
    final = out / "world_model.pt"
    if args.wm_checkpoint:
        model = load_world_model(args.wm_checkpoint, device=device)
        train_ds.spec.check_compatible(model.spec)
        return model, 0.0
    # rank 0's view of the run folder decides for every rank (the others read it only after it wrote)
    have_final = ctx.broadcast_object(final.is_file())
    if have_final:
        return load_world_model(str(final), device=device), 0.0
    t0 = time.perf_counter()
    cfg = dataclasses.replace(args.wm, seed=args.seed, device=device)
    model = MODEL_CLASSES[args.world_model](train_ds.spec, cfg)
    partial = out / "wm_fit.pt"
    resume = ctx.broadcast_object(partial.is_file())
    # one process: model.fit; under torchrun: DDP on episode shards, rank 0 writing wm_fit.pt
    fit_distributed(model, train_ds, progress=progress, checkpoint_path=str(partial),
                    resume_from=str(partial) if resume else None)
    if ctx.is_main:
        model.save(str(final))
        partial.unlink(missing_ok=True)
    return model, time.perf_counter() - t0


def _rollout_policy(learner, spec, action_low, action_high):
    """The learner's exploring policy for rollouts, kept inside the dataset's action bounds."""
    low = None if action_low is None else torch.as_tensor(np.asarray(action_low), dtype=torch.float32)
    high = None if action_high is None else torch.as_tensor(np.asarray(action_high), dtype=torch.float32)

    def policy(obs, avail):
        a = learner.act(obs, avail, deterministic=False)
        if not spec.discrete and low is not None:
            a = torch.clamp(a, low.to(a.device), high.to(a.device))
        return a

    return policy


def _evaluate(args: TrainArgs, learner, refs: dict[str, Any], env, device: str) -> dict[str, Any]:
    from .evaluate import evaluate_policy, learner_policy, normalised_score

    res = evaluate_policy(args.env, learner_policy(learner, device), args.eval_episodes,
                          seed=10_007 + args.seed, env=env)
    res["normalised"] = normalised_score(res["return_mean"], refs.get("random"), refs.get("expert"))
    return res


# ---- several processes (torchrun) ----------------------------------------------------------------
def _distributed_problems(args: TrainArgs, world_size: int) -> list[str]:
    """What a run on ``world_size`` processes needs beyond ``args.problems()`` (none for one process)."""
    if world_size == 1:
        return []
    out = []
    if args.batch_size % world_size:
        out.append(f"batch_size {args.batch_size} must be divisible by the {world_size} processes")
    elif args.world_model != "none" and round(args.batch_size * args.real_ratio) % world_size:
        out.append(f"the {round(args.batch_size * args.real_ratio)} real rows of a batch (batch_size * real_ratio) "
                   f"must be divisible by the {world_size} processes")
    if args.world_model != "none" and not args.wm_checkpoint and args.wm.batch_size % world_size:
        out.append(f"wm.batch_size {args.wm.batch_size} must be divisible by the {world_size} processes")
    if not args.dataset_path().exists():
        out.append(f"dataset {args.dataset_path()} does not exist; under torchrun it is not collected (every rank "
                   "would wait on one collector): run `logo-fast collect` (or one `logo-fast train`) first")
    return out


def _share_checkpoint(ctx, saved):
    """Rank 0's checkpoint (None, a dict, or the ValueError it raised) on every rank.

    One process: ``saved`` as is. Several: the shared part (learner, step, metrics) is broadcast and
    each rank receives only its own part of ``saved["ranks"]`` (its replay shard and generators),
    merged into the dict it gets back. Rank 0's error is raised on every rank.
    """
    if not ctx.active:
        if isinstance(saved, Exception):
            raise saved
        return saved
    head, parts = None, None
    if ctx.is_main:
        head = saved if saved is None or isinstance(saved, Exception) else {k: v for k, v in saved.items()
                                                                             if k != "ranks"}
        parts = saved["ranks"] if isinstance(saved, dict) else [None] * ctx.world_size
    head = ctx.broadcast_object(head, 0)
    mine = ctx.scatter_object(parts, 0)
    if isinstance(head, Exception):
        raise ValueError(str(head))
    return None if head is None else {**head, **mine}


def _read_checkpoint(args: TrainArgs, out: Path, ckpt_path: Path, say, world_size: int, name: str):
    """``checkpoint.pt`` when the run resumes from it (None otherwise); raises ValueError on a mismatch."""
    if not (ckpt_path.is_file() and args.resume):
        if (out / "report.json").is_file() and not args.resume:
            (out / "report.json").unlink()
        return None
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    theirs, ours = saved.get("state_key", {}), _state_key(args)
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if saved.get("world_size", 1) != world_size:
        diff.append(f"processes: {saved.get('world_size', 1)} then, {world_size} now")
    if not diff:
        say(f"[{name}] resuming from {ckpt_path} at update {saved['step']}")
        return saved
    if not args.restart_on_mismatch:
        raise ValueError(f"{ckpt_path} was written with other settings ({', '.join(diff)}); "
                         "use another --out, or --no-resume to start over")
    say(f"[{name}] {ckpt_path} was written with other settings ({', '.join(diff)}): starting over")
    for stale in ("world_model.pt", "wm_fit.pt", "reference_returns.json", "report.json"):
        (out / stale).unlink(missing_ok=True)
    return None


def _global_metrics(ctx, sums: dict[str, float], n_synth_rows: int, replay) -> tuple[dict[str, float], int, int,
                                                                                      float | None]:
    """(metric sums, synthetic rows drawn, synthetic rows stored, their mean u) over every rank.

    Metric sums are averaged over the ranks (each rank's metrics are means over its B / W rows, so
    their average is the global batch's), row counts summed; one all-reduce per log row.
    """
    if not ctx.active:
        u_mean = float(replay.synthetic_u().mean()) if replay.n_synthetic else None
        return sums, n_synth_rows, replay.n_synthetic, u_mean
    keys = sorted(sums)
    u = replay.synthetic_u().double()
    local = torch.tensor([*(sums[k] for k in keys), n_synth_rows, replay.n_synthetic, float(u.sum())],
                         dtype=torch.float64)
    total = ctx.all_reduce(local, "sum").tolist()
    n_syn = int(total[-2])
    means = {k: v / ctx.world_size for k, v in zip(keys, total[: len(keys)], strict=True)}
    return means, int(total[-3]), n_syn, (total[-1] / n_syn if n_syn else None)


# ---- the run -----------------------------------------------------------------------------------
def train(args: TrainArgs) -> dict[str, Any] | None:
    """Run (or resume) the whole pipeline for ``args``; returns the report dict (also in <out>/report.json).

    Under torchrun (``RANK``/``WORLD_SIZE`` set) it starts the process group itself (gloo for a CPU
    ``device``, NCCL for CUDA, timeout ``LOGO_FAST_DIST_TIMEOUT`` seconds, default 300) and trains
    data-parallel (docs/distributed.md); rank 0 returns the report, the other ranks None. Without
    torchrun nothing distributed is set up.
    """
    from ..distributed import DistributedFitError, init_distributed
    from ..distributed.context import is_collective_failure

    problems = args.problems()
    if problems:
        raise ValueError("invalid train arguments:\n  - " + "\n  - ".join(problems))
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    started = launched and not torch.distributed.is_initialized()
    ctx = init_distributed(backend=("nccl" if args.device.startswith("cuda") else "gloo") if launched else None)
    at = {"step": 0, "checkpoint": None}  # where a lost peer stopped the run, for the error message
    try:
        return _train(args, ctx, at)
    except Exception as e:
        if not ctx.active or isinstance(e, DistributedFitError) or not is_collective_failure(e):
            raise
        saved = (f"the last checkpoint is {at['checkpoint']} (update {at['step_saved']})" if at["checkpoint"]
                 else "no checkpoint was written")
        raise DistributedFitError(
            f"logo-fast train: rank {ctx.rank} of {ctx.world_size} lost the other ranks near update {at['step']} "
            f"(a process died, or a collective waited past the {ctx.timeout_s:g}s timeout); {saved}; rerun the "
            f"same command to resume. Cause: {type(e).__name__}: {str(e).strip()[:300]}") from e
    finally:
        if started and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(args: TrainArgs, ctx, at: dict[str, Any]) -> dict[str, Any] | None:
    from ..data import make_env
    from ..distributed import ShardedReplay, data_parallel, learner_rank_state, load_learner_rank_state, rank_seed
    from ..learners import make_learner
    from ..replay import UncertaintyWeightedReplay
    from .evaluate import reference_returns, world_model_error

    W, main = ctx.world_size, ctx.is_main
    problems = _distributed_problems(args, W)
    if problems:  # the same arguments on every rank: every rank raises this
        raise ValueError(f"invalid train arguments for {W} processes:\n  - " + "\n  - ".join(problems))
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = str(ctx.device) if ctx.backend == "nccl" else args.device  # NCCL: GPU LOCAL_RANK
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    t_start = time.perf_counter()
    log_mode = args.progress if args.progress != "auto" else ("bar" if sys.stdout.isatty() else "log")
    if not main:
        log_mode = "none"  # one voice: rank 0's
    say = (lambda s: None) if log_mode == "none" else (lambda s: print(s, flush=True))
    name = f"{args.method}" + ("" if args.world_model == "none" else f"+{args.world_model}")

    saved = None
    if main:
        try:
            saved = _read_checkpoint(args, out, ckpt_path, say, W, name)
        except ValueError as e:
            saved = e
    saved = _share_checkpoint(ctx, saved)

    ds, ds_path = load_or_collect(args, say)  # every rank reads the file (it exists under torchrun: checked)
    if args.holdout_fraction > 0 and ds.n_episodes >= 2:
        train_ds, hold_ds = ds.split_episodes(args.holdout_fraction, seed=args.data_seed)
    else:
        train_ds, hold_ds = ds, None
    spec = train_ds.spec
    behaviour = train_ds.episode_returns()

    configs = {"macql": dataclasses.replace(args.macql, seed=args.seed, device=device),
               "macql_continuous": dataclasses.replace(args.macql_continuous, seed=args.seed, device=device),
               "bc": dataclasses.replace(args.bc, seed=args.seed, device=device)}
    learner = make_learner(args.method, spec, configs, train_ds.action_low, train_ds.action_high)
    if ctx.active and not hasattr(learner, "grad_hook"):
        data_parallel(learner, ctx)  # raises its ValueError (before the world model's fit)
    model, wm_fit_s = _world_model(args, train_ds, out, progress=log_mode == "bar", device=device, ctx=ctx)
    wm_error = None
    if main and model is not None and hold_ds is not None:
        wm_error = world_model_error(model, hold_ds, seed=args.seed)

    real_ratio = args.real_ratio if model is not None else 1.0
    if ctx.active:  # each rank keeps its shard of the synthetic rows: capacity / W of them
        replay = ShardedReplay(train_ds, capacity=-(-args.replay_capacity // W), C=args.C, real_ratio=real_ratio,
                               seed=args.seed, device=device, ctx=ctx)
    else:
        replay = UncertaintyWeightedReplay(train_ds, capacity=args.replay_capacity, C=args.C, real_ratio=real_ratio,
                                           seed=args.seed, device=device)
    if hasattr(learner, "fit_normalizer"):  # optional part of the protocol: input statistics of the real data
        learner.fit_normalizer(torch.as_tensor(np.asarray(train_ds.obs)), torch.as_tensor(np.asarray(train_ds.state)))
    # each rank rolls out its share of the starts with its own generator
    rollout_gen = torch.Generator().manual_seed(rank_seed(args.seed + 7, ctx.rank) if ctx.active else args.seed + 7)
    rollout_starts = args.rollout_starts // W + (ctx.rank < args.rollout_starts % W)
    refs: dict[str, Any] = {}
    if main:  # only rank 0 evaluates
        refs = reference_returns(args.env, args.seed, n_episodes=args.eval_episodes, batch_size=args.eval_batch,
                                 dataset_path=str(ds_path), cache=out / "reference_returns.json")
        if args.random_return is not None:
            refs["random"] = args.random_return
        if args.expert_return is not None:
            refs["expert"], refs["expert_source"] = args.expert_return, "given"
    step, rows, evals, wall_before = 0, [], [], 0.0
    sums: dict[str, float] = {}
    n_sum, n_synth_rows = 0, 0
    if saved is not None:
        learner.load_state_dict(saved["learner"])
        replay.load_state_dict(saved["replay"])
        rollout_gen.set_state(saved["rollout_generator"])
        step, rows, evals, wall_before = saved["step"], saved["rows"], saved["evals"], saved["wall_s"]
        # metrics averaged since the last log row, so rows after a resume match an uninterrupted run's
        sums, n_sum, n_synth_rows = dict(saved["sums"]), saved["n_sum"], saved["n_synth_rows"]
    if ctx.active:  # gradients averaged over the ranks from here on; each rank its own generator
        data_parallel(learner, ctx, seed=args.seed)
        if saved is not None:
            load_learner_rank_state(learner, saved["learner_rank"])

    tb = _tensorboard(out) if args.tensorboard and main else None
    env = make_env(args.env, args.eval_batch) if main else None
    policy = _rollout_policy(learner, spec, train_ds.action_low, train_ds.action_high)
    log = _Log(log_mode, args.updates, step, name)
    t_loop = time.perf_counter()
    try:
        while step < args.updates:
            at["step"] = step
            if model is not None and step % args.rollout_every == 0 and rollout_starts:
                synthetic = model.rollout(policy, rollout_starts, horizon=args.horizon,
                                          u_threshold=args.u_threshold, generator=rollout_gen, dataset=train_ds,
                                          cuda_graph=args.rollout_cuda_graph)
                if synthetic and synthetic["u"].numel():
                    replay.add_synthetic(synthetic)
            batch = replay.sample(args.batch_size)  # under torchrun: this rank's batch_size / W rows
            metrics = learner.update(batch)
            n_synth_rows += int(batch["source"].sum())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1
            step += 1
            log.step()
            if step % args.log_every == 0 or step == args.updates:
                means, drawn, n_stored, u_mean = _global_metrics(ctx, sums, n_synth_rows, replay)
                row = {"step": step, **{k: v / n_sum for k, v in means.items()},
                       "synthetic_fraction": drawn / (n_sum * args.batch_size),
                       "n_synthetic": n_stored,
                       "synthetic_u_mean": u_mean,
                       "wall_s": round(wall_before + time.perf_counter() - t_loop, 3)}
                rows.append(row)
                if tb is not None:
                    for k, v in row.items():
                        if k != "step" and v is not None:
                            tb.add_scalar(f"train/{k}", v, step)
                log.line(f"[{name}] update {step}/{args.updates} loss {row.get('loss', float('nan')):.4f} "
                         f"synthetic {row['synthetic_fraction']:.2f} wall {row['wall_s']:.0f}s",
                         {"loss": f"{row.get('loss', float('nan')):.3f}"})
                sums, n_sum, n_synth_rows = {}, 0, 0
            if main and (step % args.eval_every == 0 or step == args.updates):
                res = _evaluate(args, learner, refs, env, device)
                ev = {"step": step, "return_mean": res["return_mean"], "return_std": res["return_std"],
                      "normalised": res["normalised"], "win_rate": res["win_rate"], "episodes": res["episodes"]}
                evals.append(ev)
                if tb is not None:
                    tb.add_scalar("eval/return", ev["return_mean"], step)
                log.message(f"[{name}] eval @ {step}: return {ev['return_mean']:.3f} ± {ev['return_std']:.3f}"
                            + (f", normalised {ev['normalised']:.1f}" if ev["normalised"] is not None else "")
                            + (f", win rate {ev['win_rate']:.2f}" if ev["win_rate"] is not None else ""))
            if step % args.checkpoint_every == 0 or step == args.updates:
                wall = wall_before + time.perf_counter() - t_loop
                # what each rank holds alone: its replay shard, generators and metric sums
                part = {"replay": replay.state_dict(), "rollout_generator": rollout_gen.get_state(), "sums": sums,
                        "n_sum": n_sum, "n_synth_rows": n_synth_rows}
                if ctx.active:
                    parts = ctx.gather_object({**part, "learner_rank": learner_rank_state(learner)})
                    part = {"world_size": W, "ranks": parts}
                if main:
                    _atomic_torch_save({"version": 1, "state_key": _state_key(args), "step": step,
                                        "learner": learner.state_dict(), "rows": rows, "evals": evals,
                                        "wall_s": wall, **part}, ckpt_path)
                    _write_metrics(out, rows, evals)
                at["checkpoint"], at["step_saved"] = str(ckpt_path), step
    finally:
        log.close()
        if env is not None:
            env.close()
        if tb is not None:
            tb.close()

    if not main:
        return None
    report = _report(args, name, train_ds, ds_path, behaviour, refs, evals, rows, wm_error, wm_fit_s,
                     learner.n_updates if hasattr(learner, "n_updates") else step,
                     time.perf_counter() - t_start, wall_before + time.perf_counter() - t_loop)
    if ctx.active:
        report["processes"] = W
    _write_report(out, report, rows)
    return report


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: CSV/JSONL are always written
        return None
    return SummaryWriter(str(out / "tb"))


def _write_metrics(out: Path, rows: list[dict], evals: list[dict]) -> None:
    _atomic_write(out / "metrics.jsonl", "".join(json.dumps(r, default=_json_default) + "\n" for r in rows))
    _atomic_write(out / "eval.jsonl", "".join(json.dumps(r, default=_json_default) + "\n" for r in evals))
    for name, data in (("metrics.csv", rows), ("eval.csv", evals)):
        if not data:
            continue
        keys = list(dict.fromkeys(k for r in data for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(data)
        _atomic_write(out / name, buf.getvalue())


def _report(args, name, train_ds, ds_path, behaviour, refs, evals, rows, wm_error, wm_fit_s, n_updates,
            total_s, loop_s) -> dict[str, Any]:
    from .evaluate import normalised_score

    final = evals[-1] if evals else None
    beh_mean = float(np.mean(behaviour)) if len(behaviour) else float("nan")
    return {
        "method": name,
        "env": args.env,
        "quality": args.quality,
        "seed": args.seed,
        "dataset": {"path": str(ds_path), "steps": len(train_ds), "episodes": train_ds.n_episodes,
                    "return_mean": beh_mean, "return_std": float(np.std(behaviour)) if len(behaviour) else None,
                    "normalised": normalised_score(beh_mean, refs.get("random"), refs.get("expert"))},
        "references": refs,
        "final": final,
        "best": max(evals, key=lambda e: e["return_mean"]) if evals else None,
        "evals": evals,
        "world_model": None if args.world_model == "none" else {"kind": args.world_model, "fit_s": wm_fit_s,
                                                                 "holdout_error": wm_error},
        "budget": {"updates": args.updates, "batch_size": args.batch_size, "rollout_every": args.rollout_every,
                   "rollout_starts": args.rollout_starts, "horizon": args.horizon, "real_ratio": args.real_ratio,
                   "eval_episodes": args.eval_episodes, "wm_max_steps": args.wm.max_steps,
                   "wm_epochs": args.wm.epochs},
        "n_updates": n_updates,
        "last_train_row": rows[-1] if rows else None,
        "timings_s": {"total_this_process": round(total_s, 2), "learner_loop": round(loop_s, 2),
                      "wm_fit": round(wm_fit_s, 2)},
        "torch_threads": torch.get_num_threads(),
        "args": json.loads(json.dumps(asdict(args), default=_json_default)),
    }


def _write_report(out: Path, report: dict[str, Any], rows: list[dict]) -> None:
    _atomic_write(out / "report.json", json.dumps(report, indent=1, default=_json_default))
    f, d = report["final"], report["dataset"]
    lines = [f"# {report['method']} on {report['env']} ({report['quality']}), seed {report['seed']}", ""]
    if f is not None:
        lines.append(f"- final return: {f['return_mean']:.3f} ± {f['return_std']:.3f} over {f['episodes']} episodes"
                     + (f"; normalised {f['normalised']:.1f}" if f.get("normalised") is not None else "")
                     + (f"; win rate {f['win_rate']:.2f}" if f.get("win_rate") is not None else ""))
    lines.append(f"- behaviour data: {d['return_mean']:.3f} ± {d['return_std']:.3f} ({d['episodes']} episodes)"
                 + (f"; normalised {d['normalised']:.1f}" if d.get("normalised") is not None else ""))
    r = report["references"]
    lines.append(f"- references: random {r.get('random')}, expert {r.get('expert')} ({r.get('expert_source')})")
    if report["world_model"] is not None:
        err = report["world_model"]["holdout_error"]
        lines.append(f"- world model {report['world_model']['kind']}: held-out one-step state nMSE "
                     + (f"{err['state_nmse']:.4f}" if err else "n/a"))
    lines.append(f"- budget: {json.dumps(report['budget'])}")
    lines.append(f"- wall time: {report['timings_s']}")
    lines += ["", "| update | return | ± std | normalised | win rate |", "|---|---|---|---|---|"]
    for e in report["evals"]:
        norm = "—" if e["normalised"] is None else f"{e['normalised']:.1f}"
        win = "—" if e["win_rate"] is None else f"{e['win_rate']:.2f}"
        lines.append(f"| {e['step']} | {e['return_mean']:.3f} | {e['return_std']:.3f} | {norm} | {win} |")
    lines += ["", "![learning curve](learning_curve.png)", ""]
    _atomic_write(out / "report.md", "\n".join(lines))
    _plot(out, report, rows)


def _plot(out: Path, report: dict[str, Any], rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ev = report["evals"]
    if ev:
        x = [e["step"] for e in ev]
        m = np.array([e["return_mean"] for e in ev])
        s = np.array([e["return_std"] for e in ev])
        axes[0].plot(x, m, marker="o", label=report["method"])
        axes[0].fill_between(x, m - s, m + s, alpha=0.2)
    axes[0].axhline(report["dataset"]["return_mean"], color="gray", ls="--", label="behaviour data")
    axes[0].set_xlabel("learner updates")
    axes[0].set_ylabel("return (real environment)")
    axes[0].legend()
    if rows:
        axes[1].plot([r["step"] for r in rows], [r.get("loss", math.nan) for r in rows])
    axes[1].set_xlabel("learner updates")
    axes[1].set_ylabel("training loss")
    fig.suptitle(f"{report['method']} · {report['env']} {report['quality']} · seed {report['seed']}")
    fig.tight_layout()
    tmp = out / f".learning_curve.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out / "learning_curve.png")


def run_train(args: TrainArgs) -> int:
    """``logo-fast train``: merge ``--config`` with the flags, then run."""
    if args.config:
        args = load_config(args.config, overrides=args)
    report = train(args)
    if report is None:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    f = report["final"]
    print(f"{report['method']}: final return {f['return_mean']:.3f} ± {f['return_std']:.3f}"
          + (f", normalised {f['normalised']:.1f}" if f.get("normalised") is not None else "")
          + f"; report {Path(args.out) / 'report.md'}")
    return 0
