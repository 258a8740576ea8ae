"""World-model accuracy report: LOGO vs the joint MLP vs the ensemble on held-out episodes.

    logo-fast wm eval --dataset PATH --models logo,joint,ensemble --out DIR

Every model is trained on the same training episodes (each early-stops on its own inner
holdout carved from them) and scored on episodes none of them saw:

- one-step error per component: local obs, global state, reward (MSE; obs and state also as
  normalised MSE, the MSE of each feature divided by its variance over the held-out data,
  averaged), termination accuracy (and recall on the true terminal steps), next-avail accuracy
- open-loop error at horizons 1..H: from held-out episode starts, the model is fed its own
  predictions and the logged actions; normalised state/obs MSE per horizon
- Spearman correlation between each model's uncertainty u and its true one-step state error
  (null for the joint model, which has no uncertainty)
- training time, and step time per 1k rows (median of repeated timed ``step`` calls)

Writes DIR/report.json, DIR/report.md (markdown tables) and DIR/error_vs_horizon.png, and
DIR/<model>.pt checkpoints that later runs reuse (``--retrain`` trains again).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset
from .config import WorldModelConfig

KNOWN_MODELS = ("logo", "joint", "ensemble")

# CPU-friendly sizes for the in-process demo (a ~5k-step MPE dataset trains all three in seconds).
DEMO_OVERRIDES = dict(hidden=64, latent=32, agent_embed=4, batch_size=256, epochs=40, patience=4)


@dataclass
class EvalArgs:
    """Train (or reuse) world models on a dataset and report their accuracy on held-out episodes."""

    dataset: str
    """Dataset path in any format ``logo_fast.data.io.load`` reads."""
    models: str = "logo,joint,ensemble"
    """Comma-separated models to compare: logo, joint, ensemble."""
    out: str = "wm_eval"
    """Output directory: report.json, report.md, error_vs_horizon.png and one checkpoint per model."""
    holdout_fraction: float = 0.1
    """Episodes held out for the report (never trained on)."""
    max_episodes: int = 0
    """Use only the first this many episodes (0 = all)."""
    epochs: int = 100
    """Upper bound on training epochs (early stopping usually ends sooner)."""
    max_steps: int = 0
    """Hard cap on optimiser steps per model (0 = none)."""
    patience: int = 5
    """Holdout evaluations without improvement before a model stops."""
    eval_every: int = 0
    """Optimiser steps between early-stopping evaluations (0 = once per epoch)."""
    hidden: int = 128
    """Width of LOGO's layers; the baselines are sized to LOGO's parameter count."""
    latent: int = 64
    """LOGO's per-agent latent size."""
    batch_size: int = 256
    """Transitions per minibatch."""
    lr: float = 1e-3
    """Learning rate."""
    nll_beta: float = 0.0
    """beta-NLL for the ensemble's Gaussian likelihood (0 = plain NLL as in MOPO, 0.5 = beta-NLL)."""
    horizon: int = 15
    """Longest open-loop horizon."""
    max_eval_rows: int = 20_000
    """Held-out transitions scored for one-step error (a seeded random subset beyond this)."""
    max_open_loop_starts: int = 2_000
    """Open-loop starts (a seeded random subset beyond this)."""
    open_loop_from: str = "episode_start"
    """Open-loop starts: "episode_start" (first steps of held-out episodes) or "any_step"."""
    seed: int = 0
    """Seeds the split, every model's initialisation and minibatch order."""
    device: str = "cpu"
    """Torch device."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default); small models run fastest on 1-2."""
    retrain: bool = False
    """Train again even when OUT/<model>.pt exists."""
    progress: bool = True
    """Show training progress bars."""


def _normalised_se(pred: torch.Tensor, true: torch.Tensor, var: torch.Tensor, mask: torch.Tensor | None = None):
    """Per-row mean of (pred - true)^2 / var over the (real) features: (B, ...) -> (B,)."""
    se = (pred - true).square() / var
    if mask is not None:
        se = se * mask
        return se.flatten(1).sum(1) / mask.sum()
    return se.flatten(1).mean(1)


def _variances(table) -> dict[str, torch.Tensor]:
    """Per-feature variance of next obs/state over the evaluation rows (floored: constant features count as 1)."""
    b = table.store.gather(table.rows)
    out = {}
    for k in ("next_obs", "next_state"):
        v = b[k].double().var(0, unbiased=False).float()
        out[k] = torch.where(v < 1e-8, torch.ones_like(v), v)
    return out


def _spearman(u: np.ndarray, err: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(u) < 3 or np.all(u == u[0]) or np.all(err == err[0]):
        return None
    rho = spearmanr(u, err).statistic
    return None if not np.isfinite(rho) else float(rho)


def one_step_metrics(model, table, positions: torch.Tensor, var: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One-step errors of ``model`` on ``table`` rows ``positions`` (see the module docstring)."""
    b = table.batch(positions)
    spec = model.spec
    res = model.step(b["obs"], b["state"], b["actions"])
    mask = torch.as_tensor(spec.obs_mask()).float()
    nxt_obs, nxt_state = b["next_obs"], b["next_state"]
    pred_obs, pred_state = res.next_obs.cpu(), res.next_state.cpu()
    state_err = _normalised_se(pred_state, nxt_state, var["next_state"])
    term = b["terminal"]
    out: dict[str, Any] = {
        "rows": int(positions.numel()),
        "obs_mse": float(((pred_obs - nxt_obs).square() * mask).sum() / (mask.sum() * len(term))),
        "obs_nmse": float(_normalised_se(pred_obs, nxt_obs, var["next_obs"], mask).mean()),
        "state_mse": float((pred_state - nxt_state).square().mean()),
        "state_nmse": float(state_err.mean()),
        "reward_mse": float((res.reward.cpu() - b["reward"]).square().mean()),
        "reward_var": float(b["reward"].var(unbiased=False)),
        "term_accuracy": float((res.terminal.cpu() == term).float().mean()),
        "term_recall": float(res.terminal.cpu()[term].float().mean()) if term.any() else None,
        "n_terminal": int(term.sum()),
    }
    if res.next_avail is not None and "next_avail" in b:
        out["avail_accuracy"] = float((res.next_avail.cpu() == b["next_avail"]).float().mean())
    u = res.u.cpu().numpy()
    out["u_mean"] = float(u.mean())
    out["spearman_u_state_error"] = _spearman(u, state_err.numpy()) if model.has_uncertainty else None
    out["spearman_u_obs_error"] = (
        _spearman(u, _normalised_se(pred_obs, nxt_obs, var["next_obs"], mask).numpy()) if model.has_uncertainty
        else None)
    return out


def open_loop_starts(holdout: OfflineDataset, how: str, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(start step, end of its episode) pairs for open-loop evaluation, at most ``limit`` (seeded subset).

    how: "episode_start" (the first step of held-out episodes) or "any_step" (any held-out step,
    so the horizon-1 error matches the one-step error in expectation).
    """
    starts, ends = holdout.episode_bounds()
    rng = np.random.default_rng(seed)
    if how == "episode_start":
        pick = np.sort(rng.permutation(len(starts))[:limit])
        return starts[pick], ends[pick]
    if how == "any_step":
        episode_end = np.repeat(ends, ends - starts)
        pick = np.sort(rng.permutation(len(holdout))[:limit])
        return pick.astype(np.int64), episode_end[pick]
    raise ValueError(f"open_loop_from must be 'episode_start' or 'any_step', got {how!r}")


def open_loop_metrics(model, store, start_steps: np.ndarray, end_steps: np.ndarray, horizon: int,
                      var: dict[str, torch.Tensor]) -> dict[str, list]:
    """Normalised state/obs MSE at horizons 1..H, feeding the model its own predictions and the logged actions.

    start_steps/end_steps: (K,) each start's step and the end (exclusive) of its episode. Rows
    whose episode ends before horizon h (no true next step) leave the average at h.
    """
    s0, e0 = torch.as_tensor(start_steps), torch.as_tensor(end_steps)
    obs = store.obs[s0].to(model.device)
    state = store.state[s0].to(model.device)
    mask = torch.as_tensor(model.spec.obs_mask()).float()
    state_curve, obs_curve, reward_curve, counts = [], [], [], []
    alive = torch.ones(len(s0), dtype=torch.bool)
    for h in range(horizon):
        t = s0 + h
        alive &= t < e0
        tt = torch.where(alive, t, s0)
        alive &= store.next_row[tt] >= 0
        idx = torch.nonzero(alive).flatten()
        if idx.numel() == 0:
            break
        steps = t[idx]
        res = model.step(obs[idx], state[idx], store.actions[steps])
        nxt = store.next_row[steps]
        s_err = _normalised_se(res.next_state.cpu(), store.state[nxt], var["next_state"])
        o_err = _normalised_se(res.next_obs.cpu(), store.obs[nxt], var["next_obs"], mask)
        state_curve.append(float(s_err.mean()))
        obs_curve.append(float(o_err.mean()))
        reward_curve.append(float((res.reward.cpu() - store.rewards[steps]).square().mean()))
        counts.append(int(idx.numel()))
        obs[idx] = res.next_obs
        state[idx] = res.next_state
    return {"state_nmse": state_curve, "obs_nmse": obs_curve, "reward_mse": reward_curve, "rows": counts}


def step_time_ms_per_1k(model, table, rows: int = 4096, repeats: int = 5) -> float:
    """Median wall time of ``model.step`` on ``rows`` rows, in ms per 1000 rows."""
    pos = torch.arange(rows) % len(table)
    b = table.batch(pos, model.device)
    args = (b["obs"], b["state"], b["actions"])
    model.step(*args)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.step(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000 * 1000 / rows)


def _model_path(out_dir: Path | None, kind: str) -> Path | None:
    return None if out_dir is None else out_dir / f"{kind}.pt"


def evaluate_models(
    train_ds: OfflineDataset,
    holdout_ds: OfflineDataset,
    models: tuple[str, ...] | list[str] = KNOWN_MODELS,
    config: WorldModelConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    horizon: int = 15,
    max_eval_rows: int = 20_000,
    max_open_loop_starts: int = 2_000,
    open_loop_from: str = "episode_start",
    retrain: bool = False,
    return_models: bool = False,
    **overrides: Any,
) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
    """Fit each model on ``train_ds`` and score it on ``holdout_ds``; return the report dict.

    config:    base WorldModelConfig (default: ``WorldModelConfig()``), then ``overrides``
               applied (e.g. ``hidden=64, epochs=20``; ``logo_fast.model.report.DEMO_OVERRIDES``
               are sizes that train all three models on ~5k MPE steps in seconds on a CPU)
    out_dir:   when set, checkpoints go to out_dir/<model>.pt and are reused on later calls
               (unless ``retrain``), and report.json / report.md / error_vs_horizon.png are written
    open_loop_from: "episode_start" or "any_step" (see ``open_loop_starts``)
    return_models: also return {name: fitted model}
    """
    from ..data.validate import validate_dataset
    from . import MODEL_CLASSES
    from .transitions import TransitionStore, TransitionTable

    unknown = [m for m in models if m not in MODEL_CLASSES]
    if unknown or not models:
        raise ValueError(f"evaluate_models: unknown models {unknown} (known: {list(MODEL_CLASSES)})")
    validate_dataset(train_ds)
    validate_dataset(holdout_ds)
    train_ds.spec.check_compatible(holdout_ds.spec)
    cfg = (config or WorldModelConfig()).replace(**overrides)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    store = TransitionStore(holdout_ds)
    table = TransitionTable(store)
    if len(table) == 0:
        raise ValueError("evaluate_models: the holdout set has no transition with a next observation")
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    positions = torch.randperm(len(table), generator=gen)[:max_eval_rows].sort().values
    eval_table = TransitionTable(store)
    eval_table.rows = table.rows[positions]
    var = _variances(eval_table)
    n_ep = holdout_ds.n_episodes
    ol_starts, ol_ends = open_loop_starts(holdout_ds, open_loop_from, max_open_loop_starts, cfg.seed + 13)

    report: dict[str, Any] = {
        "dataset": {"env": train_ds.spec.env, "spec": train_ds.spec.to_dict(), "train_steps": len(train_ds),
                    "train_episodes": train_ds.n_episodes, "holdout_steps": len(holdout_ds),
                    "holdout_episodes": n_ep, "eval_rows": int(positions.numel()),
                    "open_loop_starts": int(len(ol_starts)), "open_loop_from": open_loop_from},
        "config": cfg.to_dict(),
        "horizons": list(range(1, horizon + 1)),
        "torch_threads": torch.get_num_threads(),
        "models": {},
    }
    fitted = {}
    for name in models:
        cls = MODEL_CLASSES[name]
        path = _model_path(out, name)
        reused = False
        if path is not None and path.is_file() and not retrain:
            model = cls.load(str(path), spec=train_ds.spec, device=cfg.device)
            reused = True
        else:
            model = cls(config=cfg).fit(train_ds, progress=progress)
            if path is not None:
                model.save(str(path))
        fitted[name] = model
        ts = model.train_state
        entry: dict[str, Any] = {
            "kind": name,
            "has_uncertainty": cls.has_uncertainty,
            "n_parameters": model.num_parameters(),
            "reused_checkpoint": reused,
            "train_time_s": None if ts is None else round(float(ts.train_time_s), 3),
            "train_steps": None if ts is None else ts.step,
            "best_inner_holdout": None if ts is None or ts.best_score is None else float(ts.best_score.mean()),
        }
        entry["one_step"] = one_step_metrics(model, eval_table, torch.arange(len(eval_table)), var)
        entry["open_loop"] = open_loop_metrics(model, store, ol_starts, ol_ends, horizon, var)
        entry["step_ms_per_1k_rows"] = step_time_ms_per_1k(model, eval_table)
        if name == "ensemble":
            entry["elites"] = model.elites
        report["models"][name] = entry
    if out is not None:
        write_report(report, out)
        report["files"] = {k: str(out / f) for k, f in
                           (("json", "report.json"), ("markdown", "report.md"), ("plot", "error_vs_horizon.png"))}
    return (report, fitted) if return_models else report


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.{digits}g}"
    return str(x)


def markdown_report(report: dict[str, Any]) -> str:
    d = report["dataset"]
    lines = [
        f"# World-model accuracy: {d['env'] or 'dataset'}",
        "",
        f"Trained on {d['train_steps']} steps ({d['train_episodes']} episodes); scored on {d['eval_rows']} held-out "
        f"transitions from {d['holdout_episodes']} unseen episodes; open loop from {d['open_loop_starts']} "
        f"held-out starts ({d.get('open_loop_from', 'episode_start')}) with the logged actions. "
        f"nMSE = MSE / per-feature variance of the held-out data "
        f"(1.0 = predicting the mean). torch threads: {report.get('torch_threads')}.",
        "",
        "| model | params | train s | steps | step ms / 1k rows | obs nMSE | state nMSE | reward MSE "
        "| term acc | term recall | avail acc | Spearman(u, state err) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        o = m["one_step"]
        lines.append(
            f"| {name} | {m['n_parameters']:,} | {_fmt(m['train_time_s'], 3)} | {_fmt(m['train_steps'])} "
            f"| {_fmt(m['step_ms_per_1k_rows'], 3)} | {_fmt(o['obs_nmse'])} | {_fmt(o['state_nmse'])} "
            f"| {_fmt(o['reward_mse'])} | {_fmt(o['term_accuracy'])} | {_fmt(o['term_recall'])} "
            f"| {_fmt(o.get('avail_accuracy'))} | {_fmt(o['spearman_u_state_error'], 3)} |")
    hs = report["horizons"]
    picks = [h for h in (1, 2, 5, 10, 15) if h <= len(hs)]
    lines += ["", "Open-loop state nMSE by horizon:", "",
              "| model | " + " | ".join(f"h={h}" for h in picks) + " |",
              "|---|" + "---|" * len(picks)]
    for name, m in report["models"].items():
        curve = m["open_loop"]["state_nmse"]
        lines.append(f"| {name} | " + " | ".join(_fmt(curve[h - 1] if h - 1 < len(curve) else None)
                                                  for h in picks) + " |")
    lines += ["", "Open-loop obs nMSE by horizon:", "",
              "| model | " + " | ".join(f"h={h}" for h in picks) + " |", "|---|" + "---|" * len(picks)]
    for name, m in report["models"].items():
        curve = m["open_loop"]["obs_nmse"]
        lines.append(f"| {name} | " + " | ".join(_fmt(curve[h - 1] if h - 1 < len(curve) else None)
                                                  for h in picks) + " |")
    reward_var = next(iter(report["models"].values()))["one_step"]["reward_var"]
    lines += ["", f"Held-out reward variance: {_fmt(reward_var)} (a reward MSE at this level is no better than "
                  "predicting the mean).", ""]
    return "\n".join(lines)


def plot_error_vs_horizon(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "state_nmse", "global state"), (axes[1], "obs_nmse", "local observations")):
        for name, m in report["models"].items():
            curve = m["open_loop"][key]
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("open-loop horizon (steps)")
        ax.set_ylabel("nMSE (held-out)")
        ax.set_title(f"{title}: {report['dataset']['env']}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out: Path) -> None:
    from ..data.io import atomic_path

    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report))
    plot_error_vs_horizon(report, out / "error_vs_horizon.png")


def run_eval(args: EvalArgs) -> dict[str, Any]:
    """The ``logo-fast wm eval`` command: load, split by episodes, evaluate, write and print the report."""
    from ..data.io import load

    if args.threads:
        torch.set_num_threads(args.threads)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    ds = load(args.dataset)
    if args.max_episodes and args.max_episodes < ds.n_episodes:
        ds = ds.select_episodes(np.arange(args.max_episodes))
    train, hold = ds.split_episodes(args.holdout_fraction, args.seed)
    cfg = WorldModelConfig(hidden=args.hidden, latent=args.latent, batch_size=args.batch_size, lr=args.lr,
                           nll_beta=args.nll_beta,
                           epochs=args.epochs, max_steps=args.max_steps, patience=args.patience,
                           eval_every=args.eval_every, seed=args.seed, device=args.device)
    report = evaluate_models(train, hold, models, cfg, out_dir=args.out, progress=args.progress,
                             horizon=args.horizon, max_eval_rows=args.max_eval_rows,
                             max_open_loop_starts=args.max_open_loop_starts, open_loop_from=args.open_loop_from,
                             retrain=args.retrain)
    report["dataset"]["path"] = args.dataset
    write_report(report, Path(args.out))
    print(markdown_report(report))
    print(f"\nwrote {args.out}/report.json, report.md, error_vs_horizon.png")
    return report
