"""``LogoWorldModel``: the LOGO local-to-global world model (DESIGN.md §1)."""

from __future__ import annotations

from ..data.schema import DatasetSpec
from .base import WorldModel
from .networks import LogoNet


class LogoWorldModel(WorldModel):
    """LOGO: per-agent local predictions, a deductive global model, and the two paths' disagreement as u.

    Usage::

        model = LogoWorldModel(config=WorldModelConfig(seed=0)).fit(dataset)
        out = model.step(obs, state, actions, avail)           # StepResult
        batch = model.rollout(policy, starts=1024, horizon=15)  # synthetic transitions with u
        model.save("wm.pt"); model = LogoWorldModel.load("wm.pt")

    ``step`` returns the deductive model's next state; ``u`` is the L2 distance between the
    auxiliary-state head's and the deductive model's next state in normalised state units. If you
    step your own loop from predicted states, pass ``state_is_prediction=True`` after the first
    step (``rollout``, the imagined envs and ``wm eval`` do): with ``deductive_state="hybrid"`` the
    model then infers the state with its absolute head, so the error does not accumulate.
    """

    kind = "logo"
    has_uncertainty = True

    def _make_net(self, spec: DatasetSpec) -> LogoNet:
        return LogoNet(spec, self.config)
