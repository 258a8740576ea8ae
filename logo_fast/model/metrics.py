"""Accuracy metrics of a world model on held-out data: one-step errors, open-loop curves, u calibration, step time.

nMSE = MSE of each feature divided by its variance over the held-out data (constant features
count with variance 1), averaged over features: 1.0 is as good as predicting the mean.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset


def _normalised_se(pred: torch.Tensor, true: torch.Tensor, var: torch.Tensor, mask: torch.Tensor | None = None):
    """Per-row mean of (pred - true)^2 / var over the (real) features: (B, ...) -> (B,)."""
    se = (pred - true).square() / var
    if mask is not None:
        se = se * mask
        return se.flatten(1).sum(1) / mask.sum()
    return se.flatten(1).mean(1)


def variances(table) -> dict[str, torch.Tensor]:
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
        "reward_nmse": float((res.reward.cpu() - b["reward"]).square().mean()
                             / b["reward"].var(unbiased=False).clamp_min(1e-12)),
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
        res = model.step(obs[idx], state[idx], store.actions[steps], state_is_prediction=h > 0)
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
