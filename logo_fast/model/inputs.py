"""Checks of the inputs of ``step``/``rollout``: every problem in one ValueError, before any work."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.schema import DatasetSpec

# Continuous actions may exceed the dataset bounds by this much (absolute + relative) before it is an error.
_BOUND_TOL = 1e-4


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def _to_tensor(name: str, x: Any, device: torch.device, problems: list[str]) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        if x.device.type != device.type:
            problems.append(f"{name}: on device {x.device}, the model is on {device}")
            return None
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            problems.append(f"{name}: numpy object arrays are not supported")
            return None
        return torch.from_numpy(np.ascontiguousarray(x))
    problems.append(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    return None


def _bad_rows(mask: torch.Tensor, limit: int = 8) -> str:
    rows = torch.nonzero(mask.reshape(mask.shape[0], -1).any(1)).flatten().tolist()
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return f"rows {rows[:limit]}{more}"


def check_step_inputs(
    spec: DatasetSpec,
    obs: Any,
    state: Any,
    actions: Any,
    avail: Any = None,
    device: torch.device | str = "cpu",
    action_low: torch.Tensor | None = None,
    action_high: torch.Tensor | None = None,
    what: str = "step",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate and convert step inputs; raise one ValueError listing every problem.

    obs: (B, N, obs_dim) float; state: (B, state_dim) float; actions: (B, N) int (discrete) or
    (B, N, act_dim) float (continuous); avail: (B, N, n_actions) bool or None (discrete only).
    Returns float32/int64/bool tensors on ``device``.
    """
    device = torch.device(device)
    problems: list[str] = []
    N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
    t_obs = _to_tensor("obs", obs, device, problems)
    t_state = _to_tensor("state", state, device, problems)
    t_act = _to_tensor("actions", actions, device, problems)
    t_avail = None if avail is None else _to_tensor("avail", avail, device, problems)
    B = None
    ok: dict[str, bool] = {}  # a tensor's own shape and dtype are fine: its values can be checked
    if t_obs is not None:
        n0 = len(problems)
        if t_obs.dim() != 3:
            problems.append(f"obs: expected (B, N={N}, obs_dim={D}), got shape {_shape(t_obs)}")
        else:
            B = t_obs.shape[0]
            if t_obs.shape[1] != N:
                problems.append(f"obs: agent count {t_obs.shape[1]} != the model's n_agents {N}")
            if t_obs.shape[2] != D:
                problems.append(f"obs: obs_dim {t_obs.shape[2]} != the model's obs_dim {D}")
        if not t_obs.is_floating_point():
            problems.append(f"obs: dtype {t_obs.dtype} is not floating point")
        ok["obs"] = len(problems) == n0
    if t_state is not None:
        n0 = len(problems)
        if t_state.dim() != 2 or t_state.shape[1] != S:
            problems.append(f"state: expected (B, state_dim={S}), got shape {_shape(t_state)}")
        if not t_state.is_floating_point():
            problems.append(f"state: dtype {t_state.dtype} is not floating point")
        ok["state"] = len(problems) == n0
        if ok["state"] and B is not None and t_state.shape[0] != B:
            problems.append(f"state: {t_state.shape[0]} rows but obs has {B}")
    if t_act is not None:
        n0 = len(problems)
        want = (N,) if spec.discrete else (N, spec.act_dim)
        if t_act.dim() != 1 + len(want) or _shape(t_act)[1:] != want:
            pretty = "(B, N)" if spec.discrete else f"(B, N, act_dim={spec.act_dim})"
            problems.append(f"actions: expected {pretty} with N={N}, got shape {_shape(t_act)}")
        if spec.discrete and (t_act.is_floating_point() or t_act.dtype == torch.bool):
            problems.append(f"actions: dtype {t_act.dtype} is not an integer type (discrete task)")
        if not spec.discrete and not t_act.is_floating_point():
            problems.append(f"actions: dtype {t_act.dtype} is not floating point (continuous task)")
        ok["actions"] = len(problems) == n0
        if ok["actions"] and B is not None and t_act.shape[0] != B:
            problems.append(f"actions: {t_act.shape[0]} rows but obs has {B}")
    if t_avail is not None:
        n0 = len(problems)
        if not spec.discrete:
            problems.append("avail: given for a continuous task (only discrete tasks have action masks)")
        else:
            if t_avail.dtype != torch.bool:
                problems.append(f"avail: dtype {t_avail.dtype} is not bool")
            if t_avail.dim() != 3 or _shape(t_avail)[1:] != (N, spec.n_actions):
                problems.append(f"avail: expected (B, N={N}, n_actions={spec.n_actions}), got {_shape(t_avail)}")
        ok["avail"] = len(problems) == n0
        if ok["avail"] and B is not None and t_avail.shape[0] != B:
            problems.append(f"avail: {t_avail.shape[0]} rows but obs has {B}")
    if B == 0:
        problems.append("obs: empty batch (B = 0)")
    # Value checks run on every tensor whose own shape and dtype are right, so one error lists
    # the value problems alongside any shape problem elsewhere.
    finite = [("obs", t_obs), ("state", t_state)] + ([] if spec.discrete else [("actions", t_act)])
    for name, t in finite:
        if ok.get(name):
            bad = ~torch.isfinite(t)
            if bad.any():
                problems.append(f"{name}: {int(bad.sum())} non-finite values (NaN/Inf) in {_bad_rows(bad)}")
    if ok.get("obs"):
        pad = ~torch.as_tensor(spec.obs_mask(), device=t_obs.device)
        if pad.any():
            nz = (t_obs != 0) & pad & torch.isfinite(t_obs)
            if nz.any():
                problems.append(f"obs: {int(nz.sum())} non-zero padded entries (outside obs_mask) in {_bad_rows(nz)}")
    if ok.get("actions") and spec.discrete:
        out = (t_act < 0) | (t_act >= spec.n_actions)
        if out.any():
            problems.append(f"actions: {int(out.sum())} outside [0, {spec.n_actions}) in {_bad_rows(out)}")
        elif ok.get("avail") and t_avail.shape[0] == t_act.shape[0]:
            chosen = torch.gather(t_avail, 2, t_act.long()[..., None])[..., 0]
            if (~chosen).any():
                problems.append(f"actions: {int((~chosen).sum())} unavailable actions chosen in {_bad_rows(~chosen)}")
    if ok.get("avail") and spec.discrete:
        empty = ~t_avail.any(-1)
        if empty.any():
            problems.append(f"avail: {int(empty.sum())} agents with no available action in {_bad_rows(empty)}")
    if ok.get("actions") and not spec.discrete:
        am = torch.as_tensor(spec.act_mask(), device=t_act.device)
        nz = (t_act != 0) & ~am & torch.isfinite(t_act)
        if nz.any():
            problems.append(f"actions: {int(nz.sum())} non-zero padded entries (outside act_mask) in {_bad_rows(nz)}")
        if action_low is not None and action_high is not None:
            lo, hi = action_low.to(t_act.device), action_high.to(t_act.device)
            tol = _BOUND_TOL * (1 + torch.maximum(lo.abs(), hi.abs()))
            out = ((t_act < lo - tol) | (t_act > hi + tol)) & am
            if out.any():
                problems.append(f"actions: {int(out.sum())} outside [action_low, action_high] in {_bad_rows(out)}")
    if problems:
        raise ValueError(f"{what}: bad input ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  - "
                         + "\n  - ".join(problems))
    t_obs = t_obs.to(device=device, dtype=torch.float32)
    t_state = t_state.to(device=device, dtype=torch.float32)
    t_act = t_act.to(device=device, dtype=torch.int64 if spec.discrete else torch.float32)
    if t_avail is not None:
        t_avail = t_avail.to(device)
    return t_obs, t_state, t_act, t_avail
