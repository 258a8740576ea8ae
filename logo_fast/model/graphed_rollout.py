"""Rollouts with one horizon step captured as a CUDA graph: ``model.rollout(..., cuda_graph=True)``.

At horizon 15 a rollout is 15 x (the policy's launches + the world model's ~15-40 launches + the
bookkeeping's ~20); for batches of a few thousand rows each launch is a few microseconds of GPU
work behind ~5-10 us of Python and driver time, so the eager loop in ``rollout.py`` (the
reference) is launch-bound. Here one horizon step (the policy, the model step, the
stopping masks and the writes into the output stacks) is captured once with
``torch.cuda.CUDAGraph`` on static buffers and replayed per step: one launch per step.

Choices (why):

- One step captured, replayed ``horizon`` times, rather than the whole horizon unrolled in one
  graph. The step writes into (horizon, B, ...) output stacks at a step counter that lives on the
  device (``index_copy_`` at ``h``, then ``h += 1`` inside the graph), so the same graph serves every
  step. Capturing one step costs one step of Python time (plus two warm-up steps), so even a
  one-shot ``rollout(cuda_graph=True)`` saves ~12 of 15 eager steps of host time; an unrolled
  horizon would cost a whole eager rollout to capture and 15 launches become 1, a gain of ~70 us.
- Graphs cannot branch, so stopping is a mask inside the graph: every row is computed at every
  step; ``alive`` (B,) bool says which rows still run, and a row stops (for good) after a
  predicted termination or a u above ``u_threshold``, exactly as the eager loop decides. A stopped
  row's state is frozen and its later transitions are not kept. There is no host check between
  replays (it would be a synchronisation per step, ~10-20 us, the cost the graph removes), so a
  rollout whose rows all stop early still runs all ``horizon`` replays: the eager loop shrinks its
  batch as rows stop, the graph does not (at large batches with a low ``u_threshold`` the eager
  loop can be the faster one).
- Static shapes: the policy sees all B rows at every step (the eager loop passes only the rows
  still running). For a row-wise policy (each row's action depends on that row only) this gives
  the eager loop's transitions; what it returns for stopped rows is discarded.
- Errors are found on the device and raised after the last replay (the graph cannot raise): a
  bad action (unavailable, out of range, out of bounds, non-finite) or a non-finite prediction is
  flagged per (step, row); then the eager loop's own checks rerun on the first failing step's
  rows, so the message is the eager loop's (same rows, same wording). Bad rows are stopped inside
  the graph and unsafe actions clamped before the model sees them, so no device-side assert fires.
- A policy that cannot be captured (``.item()``, ``.cpu()``, numpy, ``torch.nonzero`` or boolean
  masks, anything that waits for the GPU or has data-dependent shapes) is an error, not a silent
  fallback to the eager loop: a ``GraphCaptureError`` naming the policy and the operation (the
  second warm-up step runs under ``torch.cuda.set_sync_debug_mode("error")``, so the traceback
  points at the synchronising line). A fallback would hide a 5-10x slowdown behind a warning.
- Random numbers: the device's default CUDA generator is registered with every graph by torch;
  a policy drawing from its own CUDA ``torch.Generator`` passes it in ``generators=`` and it is
  registered with ``CUDAGraph.register_generator_state`` (torch >= 2.5), so each replay draws
  fresh numbers. The ensemble's MOPO sampling uses a CUDA generator seeded from ``generator``
  (or ``config.seed``). Draws differ from the eager loop's (other rows, other order), so random
  policies and the sampling ensemble are reproducible for a seed but not equal to the eager loop.

``GraphedRollout`` keeps the graph for repeated rollouts of one batch size (capture once);
``capture=False`` runs the same static-buffer step eagerly on any device (the CPU tests compare it
with the eager loop step for step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.schema import OfflineDataset
from .inputs import _BOUND_TOL
from .rollout import ROLLOUT_KEYS, check_rollout_args, prepare_starts

if TYPE_CHECKING:  # base imports this module (WorldModel.rollout): no import back at run time
    from .base import StepResult

_WHAT = "rollout(cuda_graph=True)"
_CAPTURE_HINT = (
    "a capturable policy uses only tensor operations on the model's device with fixed shapes: no "
    ".item(), .cpu(), .tolist(), bool(tensor), numpy, printing tensors, torch.nonzero or boolean-mask "
    "indexing, no CPU generator (pass CUDA generators in GraphedRollout(generators=...)); or run with "
    "cuda_graph=False"
)


class GraphCaptureError(RuntimeError):
    """The rollout step (the policy or the model step) could not be captured as a CUDA graph."""


def _policy_name(policy: Any) -> str:
    return getattr(policy, "__qualname__", None) or type(policy).__name__


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    cur = torch.cuda.current_device()
    return (cur if a.index is None else a.index) == (cur if b.index is None else b.index)


def _require_cuda(model) -> None:
    if model.device.type != "cuda":
        extra = "" if torch.cuda.is_available() else " (and torch sees no CUDA GPU here)"
        raise ValueError(
            f"{_WHAT}: CUDA graphs need a model on a CUDA device (WorldModelConfig.device='cuda'); "
            f"this model is on {model.device}{extra}. Use cuda_graph=False on the CPU"
        )


@dataclass
class _StepBuffers:
    """Every tensor the captured step reads or writes (fixed addresses, allocated once): the current
    step's inputs, and (H, B, ...) stacks the step writes at row h (a stopped row repeats its last state)."""

    obs: torch.Tensor
    """(B, N, D) the observations the policy and the model see this step."""
    state: torch.Tensor
    """(B, S) the states the model sees this step."""
    avail: torch.Tensor | None
    """(B, N, n_actions) bool action masks this step; None for continuous tasks."""
    alive: torch.Tensor
    """(B,) bool: the row's trajectory is still running."""
    h: torch.Tensor
    """(1,) int64 the step counter, on the device (the graph reads and advances it)."""
    obs_t: torch.Tensor
    """(H+1, B, N, D) step h's observations at [h], its predictions at [h+1]."""
    state_t: torch.Tensor
    """(H+1, B, S) the same for states."""
    avail_t: torch.Tensor | None
    """(H+1, B, N, n_actions) bool the same for action masks; None for continuous tasks."""
    actions: torch.Tensor
    """(H, B, N) int64 or (H, B, N, act_dim) float32 the actions as the policy chose them."""
    reward: torch.Tensor
    """(H, B) float32 rewards (minus the uncertainty penalty when set)."""
    u: torch.Tensor
    """(H, B) float32 uncertainties."""
    terminal: torch.Tensor
    """(H, B) bool predicted terminations."""
    keep: torch.Tensor
    """(H, B) bool: the transition is part of the result (row running, u within the threshold)."""
    live: torch.Tensor
    """(H, B) bool: the row was running at step h (the rows the eager loop would have stepped)."""
    bad_action: torch.Tensor
    """(H, B) bool: a running row got an action the eager loop's checks refuse."""
    bad_pred: torch.Tensor
    """(H, B) bool: a running row's prediction was not finite."""

    @classmethod
    def allocate(cls, spec, B: int, H: int, device: torch.device) -> _StepBuffers:
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        f32 = dict(dtype=torch.float32, device=device)
        flag = dict(dtype=torch.bool, device=device)
        discrete = spec.discrete
        act_shape = (H, B, N) if discrete else (H, B, N, spec.act_dim)
        return cls(
            obs=torch.zeros(B, N, D, **f32),
            state=torch.zeros(B, S, **f32),
            avail=torch.ones(B, N, spec.n_actions, **flag) if discrete else None,
            alive=torch.ones(B, **flag),
            h=torch.zeros(1, dtype=torch.int64, device=device),
            obs_t=torch.zeros(H + 1, B, N, D, **f32),
            state_t=torch.zeros(H + 1, B, S, **f32),
            avail_t=torch.ones(H + 1, B, N, spec.n_actions, **flag) if discrete else None,
            actions=torch.zeros(act_shape, dtype=torch.int64 if discrete else torch.float32, device=device),
            reward=torch.zeros(H, B, **f32),
            u=torch.zeros(H, B, **f32),
            terminal=torch.zeros(H, B, **flag),
            keep=torch.zeros(H, B, **flag),
            live=torch.zeros(H, B, **flag),
            bad_action=torch.zeros(H, B, **flag),
            bad_pred=torch.zeros(H, B, **flag),
        )

    def reset(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None) -> None:
        """Load start states (in place: the graph keeps these addresses) and rewind the step counter."""
        self.obs.copy_(obs)
        self.state.copy_(state)
        self.obs_t[0].copy_(obs)
        self.state_t[0].copy_(state)
        if self.avail is not None:
            self.avail.copy_(avail)
            self.avail_t[0].copy_(avail)
        self.alive.fill_(True)
        self.h.zero_()
        for t in (self.keep, self.live, self.bad_action, self.bad_pred):
            t.zero_()

    def record(self, name: str, value: torch.Tensor, offset: int = 0) -> None:
        """stack[h + offset] = value, with h read on the device (no host sync, capturable)."""
        idx = self.h if offset == 0 else self.h + offset
        getattr(self, name).index_copy_(0, idx, value.unsqueeze(0))


class GraphedRollout:
    """Rollouts of ``batch_size`` starts under ``policy``, one horizon step captured as a CUDA graph.

        runner = GraphedRollout(model, policy, batch_size=1024, horizon=15)
        batch = runner(starts=1024, generator=g)    # captures on the first call, replays after

    Returns what ``rollout`` returns (same keys, shapes, order). The policy contract is
    ``rollout``'s plus: it returns a torch.Tensor on the model's device, (B, N) integer
    (discrete) or (B, N, act_dim) floating (continuous), for all B rows at once; it is row-wise
    (a row's action depends only on that row) for the results to equal the eager loop's; it
    does not modify its inputs in place; it is capturable (see the module docstring). Python
    values the policy reads (an epsilon, a flag) are frozen at capture; tensors it reads (network
    weights updated in place by an optimiser) are read at each replay. Rebuild the runner after
    moving or replacing the model's or the policy's tensors.

    model:        a fitted world model on a CUDA device (any device with capture=False)
    policy:       ``(obs (B, N, D), avail (B, N, n_actions) bool or None) -> actions``
    batch_size:   starts per call (static: every call must bring this many)
    horizon, u_threshold: as in ``rollout``
    generator:    a CUDA generator on the model's device is used (and registered) for the
                  ensemble's MOPO sampling; a CPU generator seeds a new CUDA one; None:
                  ``config.seed``. (The starts of each call are drawn with the call's generator.)
    generators:   CUDA generators the policy draws from, registered with the graph (the
                  device's default generator always is)
    capture:      False runs the same static-buffer step eagerly, on any device (tests, debugging)
    """

    def __init__(
        self,
        model,
        policy: Callable[[torch.Tensor, torch.Tensor | None], Any],
        batch_size: int,
        horizon: int = 15,
        u_threshold: float | None = None,
        generator: torch.Generator | None = None,
        generators: Sequence[torch.Generator] = (),
        capture: bool = True,
    ):
        model._require_net()
        if capture:
            _require_cuda(model)
        check_rollout_args(horizon, u_threshold)
        problems = []
        if not callable(policy):
            problems.append(f"policy must be callable, got {type(policy).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            problems.append(f"batch_size must be an int >= 1, got {batch_size!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            problems.append(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        generators = list(generators)
        for i, g in enumerate(generators):
            if not isinstance(g, torch.Generator):
                problems.append(f"generators[{i}] must be a torch.Generator, got {type(g).__name__}")
            elif not _same_device(g.device, model.device):
                problems.append(
                    f"generators[{i}] is on {g.device}, the model on {model.device} (a graph can "
                    "only advance generators of its own device)"
                )
        if problems:
            raise ValueError("GraphedRollout: bad arguments:\n  - " + "\n  - ".join(problems))
        spec, device = model.spec, model.device
        self.model, self.policy, self.capture = model, policy, capture
        self.batch_size, self.horizon, self.u_threshold = int(batch_size), int(horizon), u_threshold
        self.penalty = model.config.reward_penalty if model.has_uncertainty else 0.0
        self.sample_gen: torch.Generator | None = None
        if model.kind == "ensemble" and model.config.sample_members:
            if generator is not None and _same_device(generator.device, device):
                self.sample_gen = generator
            else:
                seed = model.config.seed if generator is None else int(torch.randint(2**62, (1,), generator=generator))
                self.sample_gen = torch.Generator(device=device).manual_seed(seed)
        self.generators = generators + ([self.sample_gen] if self.sample_gen is not None else [])
        self.bufs = _StepBuffers.allocate(spec, self.batch_size, self.horizon, device)
        if not spec.discrete:
            am = torch.as_tensor(spec.act_mask(), device=device)
            self._act_mask = am
            if model.action_low is not None and model.action_high is not None:
                lo, hi = model.action_low.to(device), model.action_high.to(device)
                tol = _BOUND_TOL * (1 + torch.maximum(lo.abs(), hi.abs()))
                self._act_lo, self._act_hi = lo - tol, hi + tol
            else:
                self._act_lo = self._act_hi = None
        self.graph: torch.cuda.CUDAGraph | None = None

    # ---- the captured step ---------------------------------------------------------------------
    def _policy_actions(self) -> torch.Tensor:
        """Call the policy on the static buffers; check what it returned (Python only: capturable)."""
        b, spec = self.bufs, self.model.spec
        a = self.policy(b.obs, b.avail)
        want = (self.batch_size, spec.n_agents) if spec.discrete else (self.batch_size, spec.n_agents, spec.act_dim)
        if not isinstance(a, torch.Tensor):
            raise ValueError(
                f"{_WHAT}: policy {_policy_name(self.policy)} returned {type(a).__name__}; under a "
                f"CUDA graph it must return a torch.Tensor on {self.model.device} (numpy arrays and "
                "lists live on the CPU, which a graph cannot reach)"
            )
        problems = []
        if not _same_device(a.device, self.model.device):
            problems.append(f"on {a.device}, the model is on {self.model.device}")
        if tuple(a.shape) != want:
            problems.append(
                f"shape {tuple(a.shape)}, expected {want} (all {self.batch_size} rows at every step: "
                "shapes are fixed in a graph)"
            )
        if spec.discrete and (a.is_floating_point() or a.is_complex() or a.dtype == torch.bool):
            problems.append(f"dtype {a.dtype} is not an integer type (discrete task)")
        if not spec.discrete and not a.is_floating_point():
            problems.append(f"dtype {a.dtype} is not floating point (continuous task)")
        if problems:
            raise ValueError(
                f"{_WHAT}: policy {_policy_name(self.policy)} returned actions with " + "; ".join(problems)
            )
        return a

    def _checked_actions(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> actions as chosen (int64/float32), actions safe to feed the model, (B,) bool: bad rows.

        The same conditions as ``check_step_inputs`` (which reports them after the run); the safe
        copy clamps what would otherwise index out of range or poison the step with NaN.
        """
        spec, b = self.model.spec, self.bufs
        B = self.batch_size
        if spec.discrete:
            a = a.to(torch.int64)
            out = (a < 0) | (a >= spec.n_actions)
            safe = a.clamp(0, spec.n_actions - 1)
            chosen = torch.gather(b.avail, 2, safe.unsqueeze(-1)).squeeze(-1)
            return a, safe, (out | ~chosen).reshape(B, -1).any(1)
        a = a.to(torch.float32)
        finite = torch.isfinite(a)
        bad = ~finite | ((a != 0) & ~self._act_mask & finite)
        if self._act_lo is not None:
            bad = bad | (((a < self._act_lo) | (a > self._act_hi)) & self._act_mask)
        safe = torch.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        return a, safe, bad.reshape(B, -1).any(1)

    def _predict(
        self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, state_is_prediction: bool
    ) -> tuple[StepResult, torch.Tensor]:
        """``WorldModel._predict`` without its host checks: -> StepResult, (B,) bool non-finite rows."""
        model, net = self.model, self.model.net
        chunk = model.config.step_chunk
        outs = []
        for i in range(0, obs.shape[0], chunk):
            o = net.clip_obs(obs[i : i + chunk])
            s = net.clip_state(state[i : i + chunk])
            outs.append(net.predict(o, s, actions[i : i + chunk], self.sample_gen, state_is_prediction))
        cat = {k: (None if outs[0].get(k) is None else torch.cat([o[k] for o in outs])) for k in outs[0]}
        bad = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        for k in ("next_obs", "next_state", "reward", "term_logit", "avail_logits", "u"):
            if cat.get(k) is not None:
                bad = bad | ~torch.isfinite(cat[k]).reshape(cat[k].shape[0], -1).all(1)
        return model._step_result(cat), bad

    def step(self, state_is_prediction: bool = True) -> None:
        """One horizon step on the static buffers (what the graph captures; callable eagerly).

        ``state_is_prediction``: False for the first step only (the starts' states are real); the
        graph captures a later step, and ``run`` runs the first one eagerly where that matters
        (a hybrid LOGO model switches its state head).
        """
        b = self.bufs
        raw, safe, bad_a = self._checked_actions(self._policy_actions())
        res, bad_p = self._predict(b.obs, b.state, safe, state_is_prediction)
        alive = b.alive
        keep = alive if self.u_threshold is None else alive & (res.u <= self.u_threshold)
        reward = res.reward - self.penalty * res.u if self.penalty else res.reward
        for name, value in (
            ("actions", raw),
            ("reward", reward),
            ("u", res.u),
            ("terminal", res.terminal),
            ("keep", keep),
            ("live", alive),
            ("bad_action", alive & bad_a),
            ("bad_pred", alive & bad_p),
        ):
            b.record(name, value)
        # Rows running this step take their predicted state (kept or not, as in the eager loop);
        # stopped rows, and rows whose prediction is not finite, keep theirs.
        adv = alive & ~bad_p
        b.obs.copy_(torch.where(adv[:, None, None], res.next_obs, b.obs))
        b.state.copy_(torch.where(adv[:, None], res.next_state, b.state))
        b.record("obs_t", b.obs, 1)
        b.record("state_t", b.state, 1)
        if b.avail is not None:
            b.avail.copy_(torch.where(adv[:, None, None], res.next_avail, b.avail))
            b.record("avail_t", b.avail, 1)
        b.alive.copy_(keep & ~res.terminal & ~bad_a & ~bad_p)
        b.h.add_(1)

    # ---- capture -------------------------------------------------------------------------------
    def _capture(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None) -> None:
        """Two warm-up steps on a side stream (lazy initialisation, then a check for host syncs), then capture."""
        device = self.model.device
        name = _policy_name(self.policy)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            self.step()  # first calls may synchronise legitimately (cuBLAS handles, Triton autotuning)
            before = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                self.step()
            except RuntimeError as err:
                if "synchroniz" not in str(err).lower():
                    raise
                raise GraphCaptureError(
                    f"{_WHAT}: the horizon step (policy {name} or the model step) waits for "
                    f"the GPU (a host synchronisation, see the traceback above): {err}. "
                    f"{_CAPTURE_HINT}"
                ) from err
            finally:
                torch.cuda.set_sync_debug_mode(before)
        torch.cuda.current_stream(device).wait_stream(side)
        self.bufs.reset(obs, state, avail)
        graph = torch.cuda.CUDAGraph()
        if self.generators and not hasattr(graph, "register_generator_state"):
            raise GraphCaptureError(
                f"{_WHAT}: this torch ({torch.__version__}) cannot register a torch.Generator "
                "with a CUDA graph (CUDAGraph.register_generator_state, torch >= 2.5); draw "
                "from the default CUDA generator instead"
            )
        for g in self.generators:
            graph.register_generator_state(g)
        try:
            # thread_local: an allocation in another thread (a data loader) cannot invalidate this capture
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(device=device), capture_error_mode="thread_local"):
                self.step()
        except Exception as err:
            chain, e = [], err
            while e is not None and len(chain) < 4:
                chain.append(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
                e = e.__cause__ or e.__context__
            raise GraphCaptureError(
                f"{_WHAT}: capturing the horizon step (policy {name} and the model step) "
                f"failed: {' <- '.join(reversed(chain))}. {_CAPTURE_HINT}"
            ) from err
        self.graph = graph

    # ---- running -------------------------------------------------------------------------------
    def __call__(
        self,
        starts: Any,
        dataset: OfflineDataset | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Roll out from ``starts`` (``rollout``'s forms; exactly ``batch_size`` of them)."""
        if self.capture:
            _require_cuda(self.model)
        obs, state, avail, row = prepare_starts(self.model, starts, dataset, generator)
        return self.run(obs, state, avail, row, progress)

    def run(
        self,
        obs: torch.Tensor,
        state: torch.Tensor,
        avail: torch.Tensor | None,
        row: torch.Tensor,
        progress: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Roll out from prepared starts (``rollout.prepare_starts``'s outputs)."""
        from ..progress import progress as progress_bar

        if obs.shape[0] != self.batch_size:
            raise ValueError(
                f"{_WHAT}: {obs.shape[0]} starts, but this runner was built for batch_size="
                f"{self.batch_size} (shapes are fixed in a graph)"
            )
        net = self.model.net
        net.eval()
        with torch.no_grad():
            if self.capture and self.graph is None:
                self.bufs.reset(obs, state, avail)
                self._capture(obs, state, avail)
            self.bufs.reset(obs, state, avail)
            # The captured step treats its input state as a prediction; for a model whose step
            # depends on that (hybrid LOGO) the first step, from the real starts, runs eagerly.
            first_differs = self.model.kind == "logo" and net.cfg.deductive_state == "hybrid"
            for h in progress_bar(
                range(self.horizon), desc=f"rollout {self.model.kind} (graph)", quiet=not progress, unit="step"
            ):
                if self.graph is not None and not (h == 0 and first_differs):
                    self.graph.replay()
                else:
                    self.step(state_is_prediction=h > 0)
        self._raise_first_error()
        return self._collect(row)

    def _raise_first_error(self) -> None:
        """Raise what the eager loop would have raised at the first step with a bad row (one host sync)."""
        b = self.bufs
        bad_a, bad_p = b.bad_action.any(1), b.bad_pred.any(1)
        if not bool((bad_a | bad_p).any()):
            return
        h = int(torch.nonzero(bad_a | bad_p)[0, 0])
        live = torch.nonzero(b.live[h]).flatten()
        what = f"rollout: policy actions at horizon step {h}"
        if bool(bad_a[h]):
            av = None if b.avail_t is None else b.avail_t[h][live]
            self.model._check(b.obs_t[h][live], b.state_t[h][live], b.actions[h][live], av, what)
            rows = torch.nonzero(b.bad_action[h][live]).flatten().tolist()
            raise ValueError(f"{what}: bad actions in rows {rows[:16]}")  # not reached: _check names them
        # the eager step on the same rows raises the eager loop's NonFinitePredictionError (same rows)
        self.model._predict(b.obs_t[h][live], b.state_t[h][live], b.actions[h][live], self.sample_gen,
                            state_is_prediction=h > 0)
        idx = torch.nonzero(b.bad_pred[h][live]).flatten().tolist()
        # reached only when the rerun's fresh sampling draws (ensemble) came out finite
        raise ValueError(f"{type(self.model).__name__}: non-finite prediction in rows {idx[:16]}")

    def _collect(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """The kept transitions in the eager loop's order: by step, then by row."""
        b, H, B = self.bufs, self.horizon, self.batch_size
        m = b.keep
        steps = torch.arange(H, device=m.device)[:, None].expand(H, B)
        out = {
            "obs": b.obs_t[:-1][m],
            "state": b.state_t[:-1][m],
            "actions": b.actions[m],
            "rewards": b.reward[m],
            "terminals": b.terminal[m],
            "next_obs": b.obs_t[1:][m],
            "next_state": b.state_t[1:][m],
            "u": b.u[m],
            "horizon_step": steps[m],
            "start": row[None].expand(H, B)[m],
        }
        if b.avail_t is not None:
            out["avail_actions"] = b.avail_t[:-1][m]
            out["next_avail"] = b.avail_t[1:][m]
        return {k: out[k] for k in ROLLOUT_KEYS if k in out}


def graphed_rollout(
    model,
    policy: Callable[[torch.Tensor, torch.Tensor | None], Any],
    starts: Any,
    horizon: int = 15,
    u_threshold: float | None = None,
    generator: torch.Generator | None = None,
    dataset: OfflineDataset | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """``rollout(..., cuda_graph=True)``: one rollout through a ``GraphedRollout`` built for it.

    Raises ValueError before any work when the model is not on a CUDA device. To capture once
    for many rollouts of one batch size, keep a ``GraphedRollout``.
    """
    _require_cuda(model)
    check_rollout_args(horizon, u_threshold)
    obs, state, avail, row = prepare_starts(model, starts, dataset, generator)
    runner = GraphedRollout(model, policy, obs.shape[0], horizon=horizon, u_threshold=u_threshold, generator=generator)
    return runner.run(obs, state, avail, row, progress)
