"""``EnsembleWorldModel``: the MOPO-style Gaussian ensemble baseline (7 members, 5 elites)."""

from __future__ import annotations

import torch

from ..data.schema import DatasetSpec
from .base import WorldModel
from .networks import EnsembleNet, matched_hidden
from .training import TrainState


class EnsembleWorldModel(WorldModel):
    """``config.n_members`` Gaussian MLPs (stacked weights, one batched forward), ``config.n_elites`` kept.

    Each member has about LOGO's parameter count (its width is solved like the joint MLP's,
    so the ensemble is about ``n_members`` times LOGO's size) and is trained with Gaussian NLL
    on the same minibatches from its own initialisation; each member keeps its own best
    weights, and the elites are the members with the lowest holdout error. ``step`` returns
    the mean of the elites; rollouts draw a random elite and a Gaussian sample per row
    (``config.sample_members``, MOPO). ``u`` is the max over elites of the norm of the
    predicted std (normalised units); with ``config.reward_penalty`` = lambda > 0 rollouts
    report ``reward - lambda * u`` (MOPO).
    """

    kind = "ensemble"
    has_uncertainty = True

    def _make_net(self, spec: DatasetSpec) -> EnsembleNet:
        return EnsembleNet(spec, self.config, self.config.joint_hidden or matched_hidden(spec, self.config, "member"))

    def _after_fit(self, state: TrainState) -> None:
        if state.best_score is None:
            return
        order = torch.argsort(state.best_score, stable=True)[: self.config.n_elites]
        self.net.elites.copy_(order.sort().values.to(self.net.elites.device))

    @property
    def elites(self) -> list[int]:
        self._require_net()
        return self.net.elites.tolist()
