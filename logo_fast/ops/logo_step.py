"""``logo_fast::logo_step``: one LOGO world-model step (local prediction, pooling, deductive model, u) as a custom op.

The math is ``logo_fast.reference.logo_step.logo_step`` (the one definition, also used for
training). ``LogoNet.predict`` calls ``logo_step`` here; the op is declared with
``torch.library`` (a fake implementation lets ``torch.compile(fullgraph=True)`` trace through
it) and runs one of three paths, chosen per call:

- ``reference``: the pure-PyTorch reference, the CPU path and the truth (every configuration,
  every dtype, autograd);
- ``fused``: ``kernels/logo_step.py``, one Triton kernel per tile of rows (local predictions never
  leave registers);
- ``two_kernel``: ``kernels/local_predict.py`` + ``kernels/global_aggregate.py``, the same math
  in two launches for models too wide for one tile (the deductive input makes one round trip
  through memory).

``step_path(meta, weights, device)`` says which path a model takes and why; the backend registry
(``LOGO_FAST_BACKEND``, ``logo_fast.backend.choose_backend``) decides whether Triton may run at
all. Forward only: when autograd needs the step (weights or inputs requiring grad), the wrapper
calls the reference directly so gradients flow as in training.
"""

from __future__ import annotations

import torch

from ..backend import BackendUnavailableError, choose_backend, requested_backend
from ..reference.logo_step import Layers, StepMeta, StepWeights, resolve_state_form
from ..reference.logo_step import logo_step as logo_step_reference

# StepWeights fields that are single tensors, in the flattened op input's order; the Layers fields follow.
_TENSOR_FIELDS = ("obs_mean", "obs_std", "obs_mask", "dobs_mean", "dobs_std", "obs_target_mask", "state_mean",
                  "state_std", "dstate_mean", "dstate_std", "u_scale", "reward_mean", "reward_std", "action_mean",
                  "action_std", "act_mask", "embed", "pool_query")
_LAYER_FIELDS = ("encoder", "obs_head", "aux_encoder", "aux_head", "ded_trunk", "ded_state", "ded_outcome")
_OUTPUTS = ("next_obs", "next_state", "aux_state", "reward", "term_logit", "avail_logits", "u")
_TRITON_DTYPES = (torch.float32, torch.bfloat16)
# The Triton paths have been checked under the interpreter and compiled for sm_90, but have never
# run on a GPU (no GPU was lent to the sessions that wrote them). Until scripts/gpu_logo_step.py
# passes on one, LOGO_FAST_BACKEND=auto keeps rollouts on the reference and only an explicit
# LOGO_FAST_BACKEND=triton runs the kernels. Flip this when the GPU check is green.
TRITON_VERIFIED_ON_GPU = False

# Size limits of the Triton paths (padded to powers of two, as the kernels tile them). Beyond the
# fused limits the live (rows, H) tiles or the per-agent obs tiles no longer fit registers; the
# two-kernel path holds fewer of them at once. `python -m logo_fast.kernels.aot` compiles a
# configuration at each limit and fails on spills.
FUSED_LIMITS = {"hidden": 256, "latent": 128, "obs_dim": 64, "state_dim": 256}
TWO_KERNEL_LIMITS = {"hidden": 512, "latent": 128, "obs_dim": 128, "state_dim": 256}


def flatten_weights(weights: StepWeights) -> tuple[list[torch.Tensor], list[int]]:
    """StepWeights -> (tensors, layout): the op's Tensor[] input and the number of linears of each Layers field."""
    tensors = [getattr(weights, f) for f in _TENSOR_FIELDS]
    layout = []
    for f in _LAYER_FIELDS:
        layers: Layers = getattr(weights, f)
        layout.append(len(layers.weights))
        tensors += list(layers.weights) + list(layers.biases)
    return tensors, layout


def unflatten_weights(tensors: list[torch.Tensor], layout: list[int]) -> StepWeights:
    """The inverse of ``flatten_weights``."""
    fields = dict(zip(_TENSOR_FIELDS, tensors[: len(_TENSOR_FIELDS)], strict=True))
    pos = len(_TENSOR_FIELDS)
    for f, n in zip(_LAYER_FIELDS, layout, strict=True):
        fields[f] = Layers(list(tensors[pos : pos + n]), list(tensors[pos + n : pos + 2 * n]))
        pos += 2 * n
    return StepWeights(**fields)


def meta_ints_of(meta: StepMeta) -> list[int]:
    """The op's ``meta_ints`` argument: the StepMeta's sizes and switches as ints.

    The op runs one state form per call: a hybrid model is resolved first
    (``reference.logo_step.resolve_state_form``), which also cuts its state head to S columns."""
    if meta.state_target not in ("delta", "absolute"):
        raise ValueError(f"meta_ints_of: state_target {meta.state_target!r}; resolve a hybrid model to the form "
                         "one step runs first (reference.logo_step.resolve_state_form)")
    return [meta.n_agents, meta.obs_dim, meta.state_dim, meta.n_actions, meta.act_dim, int(meta.predict_delta),
            int(meta.state_target == "absolute")]


def _meta_from(ints: list[int], pool: str, context: str) -> StepMeta:
    n, d, s, na, ad, delta, absolute = ints
    return StepMeta(n_agents=n, obs_dim=d, state_dim=s, n_actions=na, act_dim=ad, predict_delta=bool(delta),
                    pool=pool, context=context, state_target="absolute" if absolute else "delta")


def _p2(x: int) -> int:
    return max(16, 1 << (max(1, x) - 1).bit_length())


def step_path(meta: StepMeta, weights: StepWeights, dtype: torch.dtype = torch.float32) -> tuple[str, str]:
    """Which path the Triton backend would run for this model: ("fused" | "two_kernel" | "reference", why).

    The Triton kernels cover the default LOGO configuration: shared weights, the shared
    auxiliary encoder, mean pooling, deductive context "none", layers = 2, fp32/bf16, with any
    deductive state form (delta, absolute, hybrid: a step runs one of the first two). Everything
    else runs the reference (which is always correct); the reason names what is missing.
    """
    why = []
    if weights.encoder.weights and weights.encoder.weights[0].shape[0] != 1:
        why.append("per-agent weights (the kernels read one shared weight set)")
    if weights.aux_encoder.weights:
        why.append('aux_encoder="separate" (a second encoder per agent is not fused)')
    if meta.pool != "mean":
        why.append(f"pool={meta.pool!r} (only mean pooling is fused)")
    if meta.context != "none":
        why.append(f"deductive_context={meta.context!r} (an ablation; only 'none' is fused)")
    if len(weights.encoder.weights) != 3 or len(weights.ded_trunk.weights) != 2:
        why.append(f"layers={len(weights.encoder.weights) - 1} (the kernels are written for layers=2)")
    if dtype not in _TRITON_DTYPES:
        why.append(f"dtype {dtype} (the kernels run float32 and bfloat16)")
    if why:
        return "reference", "; ".join(why)
    H, L = weights.encoder.weights[1].shape[-1], weights.encoder.weights[2].shape[-1]
    sizes = {"hidden": _p2(H), "latent": _p2(L), "obs_dim": _p2(meta.obs_dim), "state_dim": _p2(meta.state_dim)}
    over = [f"{k} {v} > {FUSED_LIMITS[k]}" for k, v in sizes.items() if v > FUSED_LIMITS[k]]
    if not over:
        return "fused", f"fits one tile (padded hidden {sizes['hidden']}, obs {sizes['obs_dim']})"
    over2 = [f"{k} {v} > {TWO_KERNEL_LIMITS[k]}" for k, v in sizes.items() if v > TWO_KERNEL_LIMITS[k]]
    if not over2:
        return "two_kernel", "too wide for one fused tile (" + ", ".join(over) + ")"
    return "reference", "too wide for the Triton kernels (" + ", ".join(over2) + ")"


def _run_triton(path: str, meta: StepMeta, w: StepWeights, obs, state, actions) -> dict[str, torch.Tensor]:
    if path == "fused":
        from ..kernels.logo_step import logo_step_fused

        return logo_step_fused(meta, w, obs, state, actions)
    from ..kernels.global_aggregate import logo_step_two_kernel

    return logo_step_two_kernel(meta, w, obs, state, actions)


def _reference_tuple(meta: StepMeta, w: StepWeights, obs, state, actions) -> tuple[torch.Tensor, ...]:
    out = logo_step_reference(meta, w, obs, state, actions)
    if out["avail_logits"] is None:
        out["avail_logits"] = obs.new_zeros(obs.shape[0], meta.n_agents, 0)
    # term_logit and avail_logits are views of one head output: a custom op's outputs may not alias
    return tuple(out[k].clone() if k in ("term_logit", "avail_logits") else out[k] for k in _OUTPUTS)


@torch.library.custom_op("logo_fast::logo_step", mutates_args=())
def _logo_step_op(obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, weights: list[torch.Tensor],
                  layout: list[int], meta_ints: list[int], pool: str, context: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                             torch.Tensor]:
    meta = _meta_from(meta_ints, pool, context)
    w = unflatten_weights(weights, layout)
    path, why = step_path(meta, w, obs.dtype)
    impls = ("torch", "triton") if path != "reference" else ("torch",)
    if not TRITON_VERIFIED_ON_GPU and requested_backend() == "auto":
        impls = ("torch",)
    try:
        backend = choose_backend("logo_step", obs.device, impls)
    except BackendUnavailableError as err:
        raise BackendUnavailableError(f"{err}; this model's step takes the {path} path: {why}") from None
    if backend == "triton":
        out = _run_triton(path, meta, w, obs, state, actions)
        return tuple(out[k] for k in _OUTPUTS)
    return _reference_tuple(meta, w, obs, state, actions)


@_logo_step_op.register_fake
def _(obs, state, actions, weights, layout, meta_ints, pool, context):
    n, d, s, na = meta_ints[:4]
    B = obs.shape[0]
    return (obs.new_empty(B, n, d), obs.new_empty(B, s), obs.new_empty(B, s), obs.new_empty(B), obs.new_empty(B),
            obs.new_empty(B, n, na), obs.new_empty(B))


def _problems(meta: StepMeta, weights: StepWeights, obs, state, actions) -> list[str]:
    problems = []
    for name, t in (("obs", obs), ("state", state), ("actions", actions)):
        if not isinstance(t, torch.Tensor):
            problems.append(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if problems:
        return problems
    N, D, S = meta.n_agents, meta.obs_dim, meta.state_dim
    if obs.dim() != 3 or tuple(obs.shape[1:]) != (N, D):
        problems.append(f"obs must be (B, {N}, {D}), got {tuple(obs.shape)}")
    B = obs.shape[0] if obs.dim() else -1
    if state.dim() != 2 or tuple(state.shape) != (B, S):
        problems.append(f"state must be ({B}, {S}), got {tuple(state.shape)}")
    if meta.n_actions:
        if actions.dim() != 2 or tuple(actions.shape) != (B, N):
            problems.append(f"discrete actions must be ({B}, {N}), got {tuple(actions.shape)}")
        if actions.is_floating_point() or actions.is_complex():
            problems.append(f"discrete actions must be integer indices, got {actions.dtype}")
    elif actions.dim() != 3 or tuple(actions.shape) != (B, N, meta.act_dim):
        problems.append(f"continuous actions must be ({B}, {N}, {meta.act_dim}), got {tuple(actions.shape)}")
    for name, t in (("obs", obs), ("state", state)):
        if not t.is_floating_point():
            problems.append(f"{name} must be floating point, got {t.dtype}")
    if state.dtype != obs.dtype:
        problems.append(f"state dtype {state.dtype} != obs dtype {obs.dtype}")
    w_dtype = weights.encoder.weights[0].dtype if weights.encoder.weights else None
    if w_dtype is not None and w_dtype != obs.dtype:
        problems.append(f"obs dtype {obs.dtype} != network dtype {w_dtype}")
    devices = {obs.device, state.device, actions.device} | {t.device for t in flatten_weights(weights)[0]}
    if len(devices) > 1:
        problems.append(f"all tensors must be on one device, got {sorted(str(d) for d in devices)}")
    return problems


def logo_step(meta: StepMeta, weights: StepWeights, obs: torch.Tensor, state: torch.Tensor,
              actions: torch.Tensor, state_is_prediction: bool = False) -> dict[str, torch.Tensor | None]:
    """One LOGO step on raw tensors: obs (B, N, D), state (B, S), actions (B, N) int or (B, N, act_dim).

    Returns next_obs (B, N, D), next_state (B, S), aux_state (B, S), reward (B,), term_logit (B,),
    avail_logits (B, N, n_actions) or None and u (B,); see
    ``logo_fast.reference.logo_step.logo_step``. ``state_is_prediction`` (hybrid models only):
    ``state`` came from the model, so the absolute state head runs. Raises one ValueError listing
    every problem with the inputs before any work.
    """
    problems = _problems(meta, weights, obs, state, actions)
    if problems:
        raise ValueError("logo_step: bad input:\n  - " + "\n  - ".join(problems))
    # The op and the kernels see a single-form model (delta or absolute) per call.
    meta, weights = resolve_state_form(meta, weights, state_is_prediction)
    tensors, layout = flatten_weights(weights)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (obs, state, *tensors)):
        # Forward-only kernels: a step that autograd must see runs the differentiable reference.
        return logo_step_reference(meta, weights, obs, state, actions)
    out = _logo_step_op(obs, state, actions, tensors, layout, meta_ints_of(meta), meta.pool, meta.context)
    result = dict(zip(_OUTPUTS, out, strict=True))
    if not meta.n_actions:
        result["avail_logits"] = None
    return result
