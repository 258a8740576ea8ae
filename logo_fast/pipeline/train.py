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
              "updates", "eval_every", "checkpoint_every"}


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


def _world_model(args: TrainArgs, train_ds, out: Path, progress: bool):
    from ..model import MODEL_CLASSES, load_world_model

    if args.world_model == "none":
        return None, 0.0
    final = out / "world_model.pt"
    if args.wm_checkpoint:
        model = load_world_model(args.wm_checkpoint, device=args.device)
        train_ds.spec.check_compatible(model.spec)
        return model, 0.0
    if final.is_file():
        return load_world_model(str(final), device=args.device), 0.0
    t0 = time.perf_counter()
    cfg = dataclasses.replace(args.wm, seed=args.seed, device=args.device)
    model = MODEL_CLASSES[args.world_model](train_ds.spec, cfg)
    partial = out / "wm_fit.pt"
    model.fit(train_ds, progress=progress, checkpoint_path=str(partial),
              resume_from=str(partial) if partial.is_file() else None)
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


def _evaluate(args: TrainArgs, learner, refs: dict[str, Any], env) -> dict[str, Any]:
    from .evaluate import evaluate_policy, learner_policy, normalised_score

    res = evaluate_policy(args.env, learner_policy(learner, args.device), args.eval_episodes,
                          seed=10_007 + args.seed, env=env)
    res["normalised"] = normalised_score(res["return_mean"], refs.get("random"), refs.get("expert"))
    return res


# ---- the run -----------------------------------------------------------------------------------
def train(args: TrainArgs) -> dict[str, Any]:
    """Run (or resume) the whole pipeline for ``args``; returns the report dict (also in <out>/report.json)."""
    from ..data import make_env
    from ..learners import make_learner
    from ..replay import UncertaintyWeightedReplay
    from .evaluate import reference_returns, world_model_error

    problems = args.problems()
    if problems:
        raise ValueError("invalid train arguments:\n  - " + "\n  - ".join(problems))
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    t_start = time.perf_counter()
    log_mode = args.progress if args.progress != "auto" else ("bar" if sys.stdout.isatty() else "log")
    say = (lambda s: None) if log_mode == "none" else (lambda s: print(s, flush=True))
    name = f"{args.method}" + ("" if args.world_model == "none" else f"+{args.world_model}")

    saved = None
    if ckpt_path.is_file() and args.resume:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved.get("state_key") != _state_key(args):
            theirs, ours = saved.get("state_key", {}), _state_key(args)
            diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            if not args.restart_on_mismatch:
                raise ValueError(f"{ckpt_path} was written with other settings ({', '.join(diff)}); "
                                 "use another --out, or --no-resume to start over")
            say(f"[{name}] {ckpt_path} was written with other settings ({', '.join(diff)}): starting over")
            saved = None
            for stale in ("world_model.pt", "wm_fit.pt", "reference_returns.json", "report.json"):
                (out / stale).unlink(missing_ok=True)
        else:
            say(f"[{name}] resuming from {ckpt_path} at update {saved['step']}")
    elif (out / "report.json").is_file() and not args.resume:
        (out / "report.json").unlink()

    ds, ds_path = load_or_collect(args, say)
    if args.holdout_fraction > 0 and ds.n_episodes >= 2:
        train_ds, hold_ds = ds.split_episodes(args.holdout_fraction, seed=args.data_seed)
    else:
        train_ds, hold_ds = ds, None
    spec = train_ds.spec
    behaviour = train_ds.episode_returns()

    model, wm_fit_s = _world_model(args, train_ds, out, progress=log_mode == "bar")
    wm_error = None
    if model is not None and hold_ds is not None:
        wm_error = world_model_error(model, hold_ds, seed=args.seed)

    configs = {"macql": dataclasses.replace(args.macql, seed=args.seed, device=args.device),
               "macql_continuous": dataclasses.replace(args.macql_continuous, seed=args.seed, device=args.device),
               "bc": dataclasses.replace(args.bc, seed=args.seed, device=args.device)}
    learner = make_learner(args.method, spec, configs, train_ds.action_low, train_ds.action_high)
    real_ratio = args.real_ratio if model is not None else 1.0
    replay = UncertaintyWeightedReplay(train_ds, capacity=args.replay_capacity, C=args.C, real_ratio=real_ratio,
                                       seed=args.seed, device=args.device)
    if hasattr(learner, "fit_normalizer"):  # optional part of the protocol: input statistics of the real data
        learner.fit_normalizer(torch.as_tensor(np.asarray(train_ds.obs)), torch.as_tensor(np.asarray(train_ds.state)))
    rollout_gen = torch.Generator().manual_seed(args.seed + 7)
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

    tb = _tensorboard(out) if args.tensorboard else None
    env = make_env(args.env, args.eval_batch)
    policy = _rollout_policy(learner, spec, train_ds.action_low, train_ds.action_high)
    log = _Log(log_mode, args.updates, step, name)
    t_loop = time.perf_counter()
    try:
        while step < args.updates:
            if model is not None and step % args.rollout_every == 0:
                synthetic = model.rollout(policy, args.rollout_starts, horizon=args.horizon,
                                          u_threshold=args.u_threshold, generator=rollout_gen, dataset=train_ds)
                if synthetic and synthetic["u"].numel():
                    replay.add_synthetic(synthetic)
            batch = replay.sample(args.batch_size)
            metrics = learner.update(batch)
            n_synth_rows += int(batch["source"].sum())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1
            step += 1
            log.step()
            if step % args.log_every == 0 or step == args.updates:
                row = {"step": step, **{k: v / n_sum for k, v in sums.items()},
                       "synthetic_fraction": n_synth_rows / (n_sum * args.batch_size),
                       "n_synthetic": replay.n_synthetic,
                       "synthetic_u_mean": float(replay.synthetic_u().mean()) if replay.n_synthetic else None,
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
            if step % args.eval_every == 0 or step == args.updates:
                res = _evaluate(args, learner, refs, env)
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
                _atomic_torch_save({
                    "version": 1, "state_key": _state_key(args), "step": step, "learner": learner.state_dict(),
                    "replay": replay.state_dict(), "rollout_generator": rollout_gen.get_state(),
                    "rows": rows, "evals": evals, "wall_s": wall, "sums": sums, "n_sum": n_sum,
                    "n_synth_rows": n_synth_rows,
                }, ckpt_path)
                _write_metrics(out, rows, evals)
    finally:
        log.close()
        env.close()
        if tb is not None:
            tb.close()

    report = _report(args, name, train_ds, ds_path, behaviour, refs, evals, rows, wm_error, wm_fit_s,
                     learner.n_updates if hasattr(learner, "n_updates") else step,
                     time.perf_counter() - t_start, wall_before + time.perf_counter() - t_loop)
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
    f = report["final"]
    print(f"{report['method']}: final return {f['return_mean']:.3f} ± {f['return_std']:.3f}"
          + (f", normalised {f['normalised']:.1f}" if f.get("normalised") is not None else "")
          + f"; report {Path(args.out) / 'report.md'}")
    return 0
