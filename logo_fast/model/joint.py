"""``JointWorldModel``: the centralised MLP baseline (MAMBA-style global modelling), LOGO's size."""

from __future__ import annotations

from ..data.schema import DatasetSpec
from .base import WorldModel
from .networks import JointNet, matched_hidden


class JointWorldModel(WorldModel):
    """One MLP from (every observation, global state, joint action) to every next-step quantity.

    Its width is ``config.joint_hidden`` or, when that is 0, solved so that its parameter count
    matches ``LogoWorldModel``'s for the same spec and config (within ~10%; see
    ``networks.matched_hidden``). It has no uncertainty estimate: ``u`` is all zeros and
    ``has_uncertainty`` is False.
    """

    kind = "joint"
    has_uncertainty = False

    def hidden_width(self, spec: DatasetSpec) -> int:
        return self.config.joint_hidden or matched_hidden(spec, self.config)

    def _make_net(self, spec: DatasetSpec) -> JointNet:
        return JointNet(spec, self.config, self.hidden_width(spec))
