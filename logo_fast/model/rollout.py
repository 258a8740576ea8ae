"""Branched synthetic rollouts from dataset states, the data LOGO adds to the replay buffer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset

ROLLOUT_KEYS = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state", "avail_actions",
                "next_avail", "u", "horizon_step", "start")


def gather_starts(model, starts: Any, dataset: OfflineDataset | None, generator: torch.Generator | None):
    """-> obs (B, N, D), state (B, S), avail (B, N, n_actions) or None, start_index (B,) or None (dict starts)."""
    spec = model.spec
    if isinstance(starts, dict):
        missing = [k for k in ("obs", "state") if k not in starts]
        if missing:
            raise ValueError(f"rollout: starts dict lacks {missing} (needs obs, state and, for discrete tasks, avail)")
        # Lists (or nested lists) become arrays, so the step checks report shapes, not AttributeErrors.
        obs, state, avail = (v if v is None or hasattr(v, "shape") else np.asarray(v)
                             for v in (starts["obs"], starts["state"], starts.get("avail")))
        if spec.discrete and avail is None:
            n = obs.shape[0]
            avail = torch.ones(n, spec.n_agents, spec.n_actions, dtype=torch.bool)
        return obs, state, avail, None
    if dataset is None:
        dataset = model.fit_dataset
    if dataset is None:
        raise ValueError("rollout: starts are dataset indices but no dataset is known; pass dataset=")
    spec.check_compatible(dataset.spec)
    T = len(dataset)
    if isinstance(starts, int | np.integer):
        if starts < 1:
            raise ValueError(f"rollout: number of starts must be >= 1, got {starts}")
        idx = torch.randint(T, (int(starts),), generator=generator)
    else:
        idx = torch.as_tensor(np.asarray(starts.cpu() if isinstance(starts, torch.Tensor) else starts))
        problems = []
        if idx.dim() != 1:
            problems.append(f"starts must be 1-d indices, got shape {tuple(idx.shape)}")
        if idx.is_floating_point() or idx.dtype == torch.bool:
            problems.append(f"starts must be integer indices, got dtype {idx.dtype}")
        if idx.numel() == 0:
            problems.append("starts is empty")
        elif not problems and (int(idx.min()) < 0 or int(idx.max()) >= T):
            problems.append(f"starts out of range [0, {T}): min {int(idx.min())}, max {int(idx.max())}")
        if problems:
            raise ValueError("rollout: bad starts:\n  - " + "\n  - ".join(problems))
        idx = idx.long()
    order = np.asarray(idx)

    def take(a):
        if hasattr(a, "id"):
            return np.asarray(a[np.sort(order)])[np.argsort(np.argsort(order))]
        return np.asarray(a[order])

    obs, state = take(dataset.obs), take(dataset.state)
    avail = None
    if spec.discrete:
        avail = (take(dataset.avail_actions) if dataset.avail_actions is not None
                 else np.ones((len(order), spec.n_agents, spec.n_actions), dtype=bool))
    return obs, state, avail, idx


def check_rollout_args(horizon: Any, u_threshold: float | None) -> None:
    """The checks of ``horizon`` and ``u_threshold`` every rollout runs first (ValueError)."""
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"rollout: horizon must be an int >= 1, got {horizon!r}")
    if u_threshold is not None and not np.isfinite(u_threshold):
        raise ValueError(f"rollout: u_threshold must be finite, got {u_threshold}")


def prepare_starts(model, starts: Any, dataset: OfflineDataset | None, generator: torch.Generator | None):
    """Checked, clipped private copies of the start states on the model's device.

    -> obs (B, N, D) float32, state (B, S) float32, avail (B, N, n_actions) bool or None, row (B,)
    int64 (each start's dataset index; for dict starts its row in the dict).
    """
    obs, state, avail, start_index = gather_starts(model, starts, dataset, generator)
    # A zero action of the right shape lets the start states be checked with step()'s checks.
    spec = model.spec
    B0 = obs.shape[0] if hasattr(obs, "shape") else 0
    zero_act = torch.zeros((B0, spec.n_agents) if spec.discrete else (B0, spec.n_agents, spec.act_dim),
                           dtype=torch.int64 if spec.discrete else torch.float32)
    if not spec.discrete and model.action_low is not None:
        zero_act = torch.clamp(zero_act, model.action_low, model.action_high)
    if spec.discrete and avail is not None:
        # Action 0 may be unavailable: check the starts with each row's first available action.
        av = torch.as_tensor(np.asarray(avail)) if not isinstance(avail, torch.Tensor) else avail.cpu()
        zero_act = av.to(torch.bool).long().argmax(-1) if av.dim() == 3 else zero_act
    obs, state, _, avail = model._check(obs, state, zero_act, avail, "rollout (start states)")
    # Clipped like every prediction (so the emitted transitions stay within the data's range),
    # and private copies: the loop writes predicted states into them.
    obs, state = model.net.clip_obs(obs).clone(), model.net.clip_state(state).clone()
    avail = None if avail is None else avail.clone()
    # Each transition records where its trajectory started: the dataset index for index starts,
    # the row of the dict for dict starts.
    row = torch.arange(obs.shape[0], device=model.device) if start_index is None else start_index.to(model.device)
    return obs, state, avail, row


def rollout(
    model,
    policy: Callable[[torch.Tensor, torch.Tensor | None], Any],
    starts: Any,
    horizon: int = 15,
    u_threshold: float | None = None,
    generator: torch.Generator | None = None,
    dataset: OfflineDataset | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Roll ``model`` forward from dataset states under ``policy``; return the synthetic transitions.

    policy:       callable ``(obs (B, N, obs_dim), avail (B, N, n_actions) bool or None) -> actions``
                  ((B, N) int or (B, N, act_dim) float; torch or numpy). It is called on the rows
                  still running. Choosing an unavailable action (discrete) or an action outside the
                  dataset's bounds (continuous) is an error (ValueError naming the rows), never
                  silently re-sampled: mask and clip in the policy.
    starts:       an int K (K start steps drawn uniformly from ``dataset`` with ``generator``), a
                  1-d array of step indices into ``dataset``, or a dict of tensors
                  ``{"obs", "state", "avail" (discrete; default all available)}``
    horizon:      maximum model steps per start (paper: 15)
    u_threshold:  when set, a transition whose u exceeds it is dropped and its trajectory stops
    generator:    draws the starts (int form) and, for the ensemble, member choice and noise
    dataset:      where indices point (default: the dataset the model was fitted on)

    A trajectory stops after a predicted termination (that transition is kept, terminals True)
    or at the horizon. Start states and predictions are clipped to the dataset bounds plus ``clip_margin``; a
    non-finite prediction raises ``NonFinitePredictionError``. Returns a dict of tensors, one row
    per synthetic transition, on the model's device: obs (K, N, D), state (K, S), actions,
    rewards (K,) (minus ``config.reward_penalty * u`` when that is set, for any model with an
    uncertainty), terminals (K,) bool, next_obs,
    next_state, u (K,), horizon_step (K,) int64 (0-based), start (K,) int64 (the start's index into
    ``dataset``; for dict starts, the start's row in the dict),
    and for discrete tasks avail_actions / next_avail (K, N, n_actions) bool.
    """
    from ..progress import progress as progress_bar

    model._require_net()
    check_rollout_args(horizon, u_threshold)
    obs, state, avail, row = prepare_starts(model, starts, dataset, generator)
    B = obs.shape[0]
    device = model.device
    alive = torch.ones(B, dtype=torch.bool, device=device)
    penalty = model.config.reward_penalty if model.has_uncertainty else 0.0
    sample_gen = generator if (model.kind == "ensemble" and model.config.sample_members) else None
    if model.kind == "ensemble" and model.config.sample_members and sample_gen is None:
        sample_gen = torch.Generator(device=device).manual_seed(model.config.seed)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ROLLOUT_KEYS}
    for h in progress_bar(range(horizon), desc=f"rollout {model.kind}", quiet=not progress, unit="step"):
        live = torch.nonzero(alive).flatten()
        if live.numel() == 0:
            break
        o, s = obs[live], state[live]
        av = None if avail is None else avail[live]
        acts = policy(o, av)
        o, s, acts, av = model._check(o, s, acts, av, f"rollout: policy actions at horizon step {h}")
        # from step 1 on the state is the model's own prediction (hybrid LOGO switches state head)
        res = model._predict(o, s, acts, sample_gen, state_is_prediction=h > 0)
        keep = torch.ones_like(res.terminal) if u_threshold is None else res.u <= u_threshold
        stop = res.terminal | ~keep
        k = keep
        out["obs"].append(o[k])
        out["state"].append(s[k])
        out["actions"].append(acts[k])
        out["rewards"].append((res.reward - penalty * res.u)[k] if penalty else res.reward[k])
        out["terminals"].append(res.terminal[k])
        out["next_obs"].append(res.next_obs[k])
        out["next_state"].append(res.next_state[k])
        out["u"].append(res.u[k])
        out["horizon_step"].append(torch.full((int(k.sum()),), h, dtype=torch.int64, device=device))
        out["start"].append(row[live][k])
        if av is not None:
            out["avail_actions"].append(av[k])
            out["next_avail"].append(res.next_avail[k])
        obs[live] = res.next_obs
        state[live] = res.next_state
        if avail is not None:
            avail[live] = res.next_avail
        alive[live[stop]] = False
    return {k: torch.cat(v) for k, v in out.items() if v}
