"""The world-model networks' contract where the networks mutation run found no test: how LOGO's training
loss is assembled, the agent-embedding initialisation, the Gaussian NLL and the rollout clip margin.

Each docstring names the breakage (a mutmut mutant, issue 17) it was checked against. Values are checked
against restatements from first principles (torch.distributions, the documented formulas), not against the
functions' own code.
"""

from __future__ import annotations

import math

import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model.networks import LogoNet, masked_nll
from logo_fast.model.networks.losses import masked_mse, row_mse
from logo_fast.model.transitions import TransitionStore, TransitionTable

from .conftest import small_config
from .test_logo_step_restated import _random_net

# Distinct loss weights, so a term taken with the wrong weight (or none) shows in the total.
WEIGHTS = dict(w_obs=1.3, w_recon=0.7, w_aux=0.9, w_state=1.1, w_reward=0.6, w_term=0.4, w_avail=0.8, w_reg=0.45)


@pytest.fixture(scope="module")
def disc_ds():
    return make_toy_dataset(
        n_agents=3, n_episodes=2, episode_len=12, action_type="discrete", heterogeneous=True, seed=11
    )


def _batch(ds, n=16):
    b = TransitionTable(TransitionStore(ds)).batch(torch.arange(n))
    return {k: (v.double() if v.is_floating_point() else v) for k, v in b.items()}


@pytest.mark.parametrize("deductive_state", ["delta", "absolute", "hybrid"])
def test_training_loss_is_the_weighted_parts_plus_the_rollout_mode_regulariser(disc_ds, deductive_state):
    """LOGO's loss (DESIGN.md §1) = w_obs obs + w_recon recon + w_aux aux + the weighted outcome losses on the
    true next obs + w_reg x the same outcome losses on the model's own predictions, which is the outcome part
    of the rollout-mode (``predict``) step. Mutants: the regulariser's state target taken as absolute
    (``delta`` -> None), ``w_reg /`` for ``w_reg *``, the "aux" part renamed; no test assembled the total."""
    net = _random_net(disc_ds, 3, deductive_state=deductive_state, **WEIGHTS).eval()
    b = _batch(disc_ds)
    cfg = net.cfg
    with torch.no_grad():
        total, parts = net.losses(b)
        p = net.predict(b["obs"], b["state"], b["actions"])
        delta = deductive_state != "absolute"
        rollout_parts = net.outcome_losses(
            net.state_target(b["state"], p["next_state"], delta),
            delta,
            net.reward_target(p["reward"]),
            p["term_logit"],
            p["avail_logits"],
            b,
        )
        if deductive_state == "hybrid":  # the absolute head's loss: what a step from a predicted state runs
            p_abs = net.predict(b["obs"], b["state"], b["actions"], state_is_prediction=True)
            rollout_parts["state_abs"] = row_mse(net.state_target(b["state"], p_abs["next_state"], False),
                                                 net.state_target(b["state"], b["next_state"], False))
    hybrid = {"state_abs"} if deductive_state == "hybrid" else set()
    assert set(parts) == {"obs", "recon", "aux", "state", "reward", "term", "avail"} | hybrid
    outcome_w = {"state": cfg.w_state, "reward": cfg.w_reward, "term": cfg.w_term, "avail": cfg.w_avail,
                 **({"state_abs": cfg.w_state} if hybrid else {})}
    reg = sum(outcome_w[k] * float(v.mean()) for k, v in rollout_parts.items())
    want = (
        cfg.w_obs * parts["obs"]
        + cfg.w_recon * parts["recon"]
        + cfg.w_aux * parts["aux"]
        + sum(outcome_w[k] * parts[k] for k in outcome_w)
        + cfg.w_reg * reg
    )
    assert float(total) == pytest.approx(want, rel=1e-10)
    assert cfg.w_reg * reg > 1e-3 * float(total)  # the regulariser is a visible share of the total here


def test_agent_embeddings_start_standard_normal():
    """reset_parameters draws the agent embeddings from N(0, 1): mutant ``normal_(1.0)`` (mean 1) changed every
    model's start and only the seed-determinism tests ran it (two runs of the same wrong init agree)."""
    ds = make_toy_dataset(n_agents=8, n_episodes=1, episode_len=4, action_type="discrete", seed=0)
    net = LogoNet(ds.spec, small_config(agent_embed=32))
    net.reset_parameters(torch.Generator().manual_seed(0))
    e = net.agent_embedding.detach().flatten()
    assert e.numel() == 256
    # mean ~ N(0, 1/256): |mean| < 0.35 is 5.6 sigma; the sample std of 256 normals is within 0.75-1.25
    assert abs(float(e.mean())) < 0.35 and 0.75 < float(e.std()) < 1.25


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_masked_nll_is_the_gaussian_negative_log_likelihood(beta):
    """masked_nll = mean over real features of -log N(target; mu, exp(logstd)) - 0.5 log 2 pi, each feature
    weighted by the detached variance^beta (beta-NLL). Mutants ``(mu + target)`` and ``2 beta / logstd`` passed:
    the ensemble's tests only checked that training runs."""
    g = torch.Generator().manual_seed(4)
    mu, target = (
        torch.randn(5, 3, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 3, 4, generator=g, dtype=torch.float64),
    )
    logstd = 0.6 * torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(3, 4, generator=g) > 0.3).double()
    nll = -torch.distributions.Normal(mu, logstd.exp()).log_prob(target) - 0.5 * math.log(2 * math.pi)
    per_feature = nll * logstd.exp() ** (2 * beta)
    want = (per_feature * mask).flatten(1).sum(1) / mask.sum()
    torch.testing.assert_close(masked_nll(mu, logstd, target, mask, beta), want, rtol=1e-12, atol=1e-12)


def test_rollout_clip_allows_the_configured_margin_only(disc_ds):
    """Predictions are clipped to [lo - m, hi + m] with m = clip_margin (hi - lo) (+1e-6 for constant
    features): mutant ``+ 1.000001`` widened every bound by one unit and no test measured the margin."""
    net = LogoNet(disc_ds.spec, small_config(clip_margin=0.1)).double()
    stats = net.statistics()
    S = stats["state_lo"].numel()
    stats["state_lo"], stats["state_hi"] = torch.full((S,), -2.0), torch.full((S,), 3.0)
    net.set_statistics(stats)
    x = torch.tensor([[-10.0] * S, [10.0] * S, [0.25] * S], dtype=torch.float64)
    got = net.clip_state(x)
    torch.testing.assert_close(got[0], torch.full((S,), -2.5, dtype=torch.float64), rtol=0, atol=2e-6)
    torch.testing.assert_close(got[1], torch.full((S,), 3.5, dtype=torch.float64), rtol=0, atol=2e-6)
    assert torch.equal(got[2], x[2])


def test_hybrid_weighted_holdout_score_counts_both_state_heads(disc_ds):
    """select_by="weighted" on a hybrid model: w_obs obs + the weighted outcome losses of the real-state
    step (delta head) + w_state x the absolute head's state loss from a predicted-state step."""
    net = _random_net(disc_ds, 3, deductive_state="hybrid", select_by="weighted", **WEIGHTS).eval()
    b = _batch(disc_ds)
    with torch.no_grad():
        got = net.holdout_error(b)[:, 0]
        p = net.predict(b["obs"], b["state"], b["actions"])
        p_abs = net.predict(b["obs"], b["state"], b["actions"], state_is_prediction=True)
        obs = masked_mse(net.obs_target(b["obs"], p["next_obs"]), net.obs_target(b["obs"], b["next_obs"]), net.obs_mask)
        parts = net.outcome_losses(net.state_target(b["state"], p["next_state"], True), True,
                                   net.reward_target(p["reward"]), p["term_logit"], p["avail_logits"], b)
        cfg = net.cfg
        want = (cfg.w_obs * obs + cfg.w_state * parts["state"] + cfg.w_reward * parts["reward"]
                + cfg.w_term * parts["term"] + cfg.w_avail * parts["avail"]
                + cfg.w_state * row_mse(net.state_target(b["state"], p_abs["next_state"], False),
                                        net.state_target(b["state"], b["next_state"], False)))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
