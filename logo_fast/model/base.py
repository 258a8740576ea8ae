"""The interface every world model shares: ``fit``, ``step``, ``rollout``, ``save``/``load``.

``LogoWorldModel``, ``JointWorldModel`` and ``EnsembleWorldModel`` differ only in the network
they build (``_make_net``) and what they do after training (the ensemble picks its elites);
validation, normalisation, the fit loop, clipping, rollouts and checkpoints live here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..data.schema import DatasetSpec, OfflineDataset
from .checkpoint import read_checkpoint, write_checkpoint
from .config import WorldModelConfig
from .inputs import check_step_inputs
from .networks import WorldNet, count_parameters
from .training import TrainState

# kind -> WorldModel subclass, filled by the subclasses themselves (``__init_subclass__``).
MODEL_KINDS: dict[str, type[WorldModel]] = {}


def model_class(kind: str) -> type[WorldModel]:
    """The WorldModel subclass for a checkpoint's ``kind``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown world-model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind]


class NonFinitePredictionError(ValueError):
    """A world model produced NaN/Inf; the message names the offending rows."""


@dataclass
class StepResult:
    """One predicted step for B rows (tensors on the model's device).

    next_obs:       (B, N, obs_dim) float32, padded features exactly 0
    next_state:     (B, state_dim) float32
    reward:         (B,) float32 team reward
    terminal:       (B,) bool, termination probability > 0.5
    terminal_prob:  (B,) float32
    next_avail:     (B, N, n_actions) bool (every agent keeps >= 1 available action), None for continuous
    u:              (B,) float32 uncertainty (all zeros for models with ``has_uncertainty = False``)
    """

    next_obs: torch.Tensor
    """(B, N, obs_dim) float32 next local observations, padded features exactly 0."""
    next_state: torch.Tensor
    """(B, state_dim) float32 next global state."""
    reward: torch.Tensor
    """(B,) float32 team reward."""
    terminal: torch.Tensor
    """(B,) bool: termination probability > 0.5."""
    terminal_prob: torch.Tensor
    """(B,) float32 termination probability."""
    next_avail: torch.Tensor | None
    """(B, N, n_actions) bool next available actions (every agent keeps at least one); None for continuous tasks."""
    u: torch.Tensor
    """(B,) float32 uncertainty (all zeros for models with has_uncertainty = False)."""

    def numpy(self) -> dict[str, np.ndarray | None]:
        """Every field as a numpy array (None stays None)."""
        return {f.name: (None if (v := getattr(self, f.name)) is None else v.detach().cpu().numpy())
                for f in dataclasses.fields(self)}


class WorldModel:
    """Base class of the world models; use ``LogoWorldModel``, ``JointWorldModel`` or ``EnsembleWorldModel``."""

    kind: ClassVar[str] = ""
    has_uncertainty: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            MODEL_KINDS[cls.kind] = cls

    def __init__(self, spec: DatasetSpec | None = None, config: WorldModelConfig | None = None):
        self.config = dataclasses.replace(config) if config is not None else WorldModelConfig()
        self.config.validate()
        self.spec: DatasetSpec | None = None
        self.net: WorldNet | None = None
        self.action_low: torch.Tensor | None = None  # (N, act_dim) continuous bounds, from the dataset
        self.action_high: torch.Tensor | None = None
        self.train_state: TrainState | None = None
        self.fit_dataset: OfflineDataset | None = None  # rollout starts index into it (not saved)
        self.data_fingerprint: str | None = None  # of the data fit() saw (saved): see model.fingerprint
        if spec is not None:
            self._build(spec)

    # ---- construction -------------------------------------------------------------------------
    def _make_net(self, spec: DatasetSpec) -> WorldNet:
        # abstract: each model kind (logo, joint, ensemble) builds its own network
        raise NotImplementedError(f"{type(self).__name__} must define _make_net(spec)")

    def _build(self, spec: DatasetSpec) -> None:
        self.spec = spec
        net = self._make_net(spec)
        net.reset_parameters(torch.Generator().manual_seed(self.config.seed))
        self.net = net.to(self.device)

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def num_parameters(self) -> int:
        self._require_net()
        return count_parameters(self.net)

    def _require_net(self) -> None:
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__}: no network yet; call fit() or load() first")

    def _after_fit(self, state: TrainState) -> None:
        """Hook run once training ends (the ensemble chooses its elites here)."""

    def __repr__(self) -> str:
        size = f", {self.num_parameters():,} parameters" if self.net is not None else ""
        return f"{type(self).__name__}(spec={self.spec}{size})"

    # ---- training -----------------------------------------------------------------------------
    def fit(
        self,
        dataset: OfflineDataset,
        holdout: OfflineDataset | None = None,
        progress: bool = True,
        resume_from: str | None = None,
        checkpoint_path: str | None = None,
    ) -> WorldModel:
        """Train on ``dataset``; early-stop on ``holdout`` (default: ``config.holdout_fraction`` of the episodes).

        The dataset is validated first (one ValueError listing every problem). Normalisers and
        clipping bounds come from the training split only. Without ``holdout`` the held-out
        episodes are exactly those of ``dataset.split_episodes(config.holdout_fraction, config.seed)``.
        ``resume_from``: a checkpoint written by ``save`` (or by ``checkpoint_path`` during a fit)
        whose model, spec and data match: its weights, optimiser, RNG and step continue; its
        config is kept except ``epochs``, ``max_steps``, ``patience`` and ``device``, taken from this
        model's config. ``checkpoint_path``: also save a resumable checkpoint at every evaluation.
        Returns self.
        """
        from ..data.validate import validate_dataset
        from .fingerprint import dataset_fingerprint
        from .normalizer import dataset_statistics
        from .training import fit_loop
        from .transitions import TransitionStore, TransitionTable, holdout_episodes

        for name, ds in (("dataset", dataset), ("holdout", holdout)):
            if ds is not None and not isinstance(ds, OfflineDataset):
                raise TypeError(f"fit: {name} must be an OfflineDataset (logo_fast.data.load, collect or "
                                f"OfflineDataset.from_arrays), got {type(ds).__name__}")
        validate_dataset(dataset)
        if holdout is not None:
            validate_dataset(holdout)
            dataset.spec.check_compatible(holdout.spec)
        fingerprint = dataset_fingerprint(dataset)
        payload = None
        if resume_from is not None:
            payload = read_checkpoint(resume_from, expected_kind=self.kind, spec=dataset.spec)
            if payload.get("training") is None:
                raise ValueError(f"{resume_from}: checkpoint holds no training state to resume from")
            saved = payload["manifest"].get("data_fingerprint")
            if saved is not None and saved != fingerprint:
                raise ValueError(f"{resume_from}: the checkpoint was trained on other data (fingerprint {saved}, "
                                 f"this dataset {fingerprint}); start a new fit instead of resuming")
            keep = {k: getattr(self.config, k) for k in ("epochs", "max_steps", "patience", "device")}
            self.config = WorldModelConfig.from_dict({**payload["manifest"]["config"], **keep})
        if self.spec is not None:
            self.spec.check_compatible(dataset.spec)
        cfg = self.config
        store = TransitionStore(dataset)
        if holdout is None:
            if dataset.n_episodes < 2:
                raise ValueError(f"fit: need >= 2 episodes to hold some out (dataset has {dataset.n_episodes}); "
                                 "pass holdout=")
            held = holdout_episodes(dataset.n_episodes, cfg.holdout_fraction, cfg.seed)
            train_eps = np.setdiff1d(np.arange(dataset.n_episodes), held)
            train_table, hold_table = TransitionTable(store, train_eps), TransitionTable(store, held)
        else:
            train_table, hold_table = TransitionTable(store), TransitionTable(TransitionStore(holdout))
        problems = []
        if len(train_table) == 0:
            problems.append("the training split has no transition with a next observation")
        if len(hold_table) == 0:
            problems.append("the holdout split has no transition with a next observation")
        if problems:
            raise ValueError("fit: " + "; ".join(problems))

        self._build(dataset.spec)
        if not dataset.spec.discrete and dataset.action_low is not None and dataset.action_high is not None:
            self.action_low = torch.as_tensor(np.asarray(dataset.action_low), dtype=torch.float32)
            self.action_high = torch.as_tensor(np.asarray(dataset.action_high), dtype=torch.float32)
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        if payload is None:
            self.net.set_statistics(dataset_statistics(train_table, torch.as_tensor(dataset.spec.obs_mask())))
            state = TrainState()
        else:
            self._load_payload(payload)
            state = TrainState.from_dict(payload["training"])
            if state.optimizer_state is not None:
                optimizer.load_state_dict(state.optimizer_state)
            if state.generator_state is not None:
                generator.set_state(state.generator_state)
        self.train_state = state
        self.fit_dataset = dataset
        self.data_fingerprint = fingerprint
        fit_loop(self, train_table, hold_table, state, optimizer, generator, progress, checkpoint_path)
        self._after_fit(state)
        return self

    # ---- prediction ---------------------------------------------------------------------------
    def _predict(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
                 generator: torch.Generator | None = None, state_is_prediction: bool = False) -> StepResult:
        """Validated tensors in, clipped and checked StepResult out (chunked over rows)."""
        net = self.net
        net.eval()
        outs: list[dict[str, torch.Tensor]] = []
        chunk = self.config.step_chunk
        with torch.no_grad():
            for i in range(0, obs.shape[0], chunk):
                o = net.clip_obs(obs[i : i + chunk])
                s = net.clip_state(state[i : i + chunk])
                p = net.predict(o, s, actions[i : i + chunk], generator, state_is_prediction)
                bad = None
                for k in ("next_obs", "next_state", "reward", "term_logit", "avail_logits", "u"):
                    if p.get(k) is None:
                        continue
                    rows = ~torch.isfinite(p[k]).reshape(p[k].shape[0], -1).all(1)
                    bad = rows if bad is None else bad | rows
                if bad is not None and bad.any():
                    idx = (torch.nonzero(bad).flatten() + i).tolist()
                    raise NonFinitePredictionError(
                        f"{type(self).__name__}: non-finite prediction in {len(idx)} rows {idx[:16]}"
                        f"{' ...' if len(idx) > 16 else ''}")
                outs.append(p)
        cat = {k: (None if outs[0].get(k) is None else torch.cat([o[k] for o in outs])) for k in outs[0]}
        return self._step_result(cat)

    def _step_result(self, cat: dict[str, torch.Tensor | None]) -> StepResult:
        """The network's raw predictions (``net.predict``'s dict, all rows) -> the clipped StepResult.

        No host synchronisation, so the CUDA-graph rollout (``graphed_rollout``) captures it too.
        """
        net = self.net
        prob = torch.sigmoid(cat["term_logit"])
        next_avail = None
        if cat.get("avail_logits") is not None:
            logits = cat["avail_logits"]
            next_avail = logits > 0
            # An agent with no available action would dead-end a rollout: keep its most likely one.
            none = ~next_avail.any(-1, keepdim=True)
            best = torch.zeros_like(next_avail).scatter_(-1, logits.argmax(-1, keepdim=True), True)
            next_avail = torch.where(none, best, next_avail)
        return StepResult(
            next_obs=net.clip_obs(cat["next_obs"]),
            next_state=net.clip_state(cat["next_state"]),
            reward=net.clip_reward(cat["reward"]),
            terminal=prob > 0.5,
            terminal_prob=prob,
            next_avail=next_avail,
            u=cat["u"].float(),
        )

    def _check(self, obs, state, actions, avail, what: str):
        self._require_net()
        return check_step_inputs(self.spec, obs, state, actions, avail, self.device,
                                 self.action_low, self.action_high, what=what)

    def step(self, obs: Any, state: Any, actions: Any, avail: Any = None,
             state_is_prediction: bool = False) -> StepResult:
        """Predict one step for a batch of rows (any number; chunked by ``config.step_chunk``).

        obs: (B, N, obs_dim) float, state: (B, state_dim) float, actions: (B, N) int (discrete)
        or (B, N, act_dim) float (continuous), avail: (B, N, n_actions) bool or None. numpy or
        torch. ``state_is_prediction``: the state is the model's own earlier prediction (every
        rollout step after the first); LOGO with ``deductive_state="hybrid"`` then infers the next
        state from the local predictions alone, other models ignore it. Inputs are clipped to the
        data bounds widened by ``config.clip_margin`` before prediction and predictions to the same
        bounds after. Bad input (shapes, dtypes, NaN/Inf, agent count, out-of-range or unavailable
        actions) raises one ValueError listing every problem; a non-finite prediction raises
        ``NonFinitePredictionError`` naming the rows.
        """
        obs, state, actions, _ = self._check(obs, state, actions, avail, "step")
        return self._predict(obs, state, actions, state_is_prediction=state_is_prediction)

    def rollout(
        self,
        policy: Callable[[torch.Tensor, torch.Tensor | None], Any],
        starts: Any,
        horizon: int = 15,
        u_threshold: float | None = None,
        generator: torch.Generator | None = None,
        dataset: OfflineDataset | None = None,
        progress: bool = False,
        cuda_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Branched synthetic rollouts; see ``logo_fast.model.rollout.rollout`` for every argument.

        ``cuda_graph=True`` (a model on a CUDA device; ValueError otherwise, before any work): one
        horizon step (policy, model step, stopping masks) is captured as a CUDA graph and replayed
        per step; the policy must be capturable and row-wise (``logo_fast.model.graphed_rollout``).
        """
        if cuda_graph:
            from .graphed_rollout import graphed_rollout

            return graphed_rollout(self, policy, starts, horizon=horizon, u_threshold=u_threshold,
                                   generator=generator, dataset=dataset, progress=progress)
        from .rollout import rollout

        return rollout(self, policy, starts, horizon=horizon, u_threshold=u_threshold, generator=generator,
                       dataset=dataset, progress=progress)

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write a checkpoint atomically (temp file + rename): manifest, weights, training state."""
        self._require_net()
        write_checkpoint(self, path)

    def _load_payload(self, payload: dict[str, Any]) -> None:
        m = payload["manifest"]
        if self.net is None or self.spec != DatasetSpec.from_dict(m["spec"]):
            self._build(DatasetSpec.from_dict(m["spec"]))
        self.net.load_state_dict(payload["state_dict"])
        self.action_low = m.get("action_low")
        self.action_high = m.get("action_high")
        self.data_fingerprint = m.get("data_fingerprint")

    @classmethod
    def load(cls, path: str, spec: DatasetSpec | None = None, device: str | None = None) -> WorldModel:
        """Load a checkpoint written by ``save``; ``spec`` (optional) must match the checkpoint's.

        Called on a subclass, the checkpoint must hold that kind of model; ``WorldModel.load``
        (or ``load_world_model``) returns whichever kind it holds.
        """
        payload = read_checkpoint(path, expected_kind=cls.kind or None, spec=spec)
        config = WorldModelConfig.from_dict(payload["manifest"]["config"])
        if device is not None:
            config.device = device
        klass = model_class(payload["manifest"]["kind"]) if not cls.kind else cls
        model = klass(config=config)
        model._load_payload(payload)
        if payload.get("training") is not None:
            model.train_state = TrainState.from_dict(payload["training"])
        return model


def load_world_model(path: str, spec: DatasetSpec | None = None, device: str | None = None) -> WorldModel:
    """Load any kind of world-model checkpoint (LOGO, joint or ensemble)."""
    return WorldModel.load(str(path), spec=spec, device=device)
