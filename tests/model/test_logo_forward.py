"""LOGO's forward pass: the split algebra equals the concatenated form, and the deductive model is local-to-global."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from logo_fast.model.networks import LogoNet
from logo_fast.model.transitions import TransitionStore, TransitionTable
from logo_fast.reference import logo_step as ref

from .conftest import small_config


def _random_net(ds, seed=0, **overrides) -> LogoNet:
    """A LogoNet with random weights *and* random normalisers, in float64 (so equalities hold to round-off)."""
    net = LogoNet(ds.spec, small_config(**overrides))
    g = torch.Generator().manual_seed(seed)
    net.reset_parameters(g)
    stats = net.statistics()
    for k, v in stats.items():
        if k.endswith("_std"):
            stats[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("_mean"):
            stats[k] = torch.randn(v.shape, generator=g)
        elif k.endswith("_live"):
            stats[k] = (torch.rand(v.shape, generator=g) > 0.2).float()
    net.set_statistics(stats)
    return net.double()


def _batch(ds, n=17):
    table = TransitionTable(TransitionStore(ds))
    b = table.batch(torch.arange(n))
    return {k: (v.double() if v.is_floating_point() else v) for k, v in b.items()}


def _concat_first_layer(net: LogoNet, obs_n, state_n, actions):
    """The first encoder layer the way it was written before the split: one matmul over [o_i, a, s, e_i]."""
    B, N, _ = obs_n.shape
    act_in = net.action_input(actions)
    x = torch.cat([obs_n, act_in[:, None].expand(B, N, -1), state_n[:, None].expand(B, N, -1),
                   net.agent_embedding.expand(B, N, -1)], -1)
    lin = net.encoder.linears[0]
    if lin.weight.shape[0] == 1:
        return x @ lin.weight[0] + lin.bias[0]
    return torch.einsum("bni,nio->bno", x, lin.weight) + lin.bias


@pytest.mark.parametrize("fixture", ["discrete_ds", "continuous_ds", "hetero_ds", "hetero_cont_ds"])
@pytest.mark.parametrize("per_agent", [False, True])
def test_split_first_layer_equals_the_concatenated_form(request, fixture, per_agent):
    ds = request.getfixturevalue(fixture)
    net = _random_net(ds, per_agent_weights=per_agent)
    b = _batch(ds)
    w = net.step_weights()
    obs_n, state_n, act = ref.normalise(net.meta, w, b["obs"], b["state"], b["actions"])
    split = ref.encoder_first_layer(net.meta, w.encoder, w.embed, obs_n, state_n, act)
    torch.testing.assert_close(split, _concat_first_layer(net, obs_n, state_n, b["actions"]), rtol=1e-12, atol=1e-12)


def test_split_first_layer_with_one_agent_and_a_batch_of_one():
    from logo_fast.data import make_toy_dataset

    ds = make_toy_dataset(n_agents=1, n_episodes=3, episode_len=5, action_type="discrete", seed=7)
    net = _random_net(ds, agent_embed=0)
    b = _batch(ds, n=1)
    w = net.step_weights()
    obs_n, state_n, act = ref.normalise(net.meta, w, b["obs"], b["state"], b["actions"])
    split = ref.encoder_first_layer(net.meta, w.encoder, w.embed, obs_n, state_n, act)
    assert split.shape == (1, 1, net.cfg.hidden)
    torch.testing.assert_close(split, _concat_first_layer(net, obs_n, state_n, b["actions"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fixture", ["discrete_ds", "hetero_cont_ds"])
def test_deductive_model_sees_only_the_local_predictions(request, fixture):
    """Default context: the deductive outputs (state delta, reward, termination, avail) ignore s and a
    once the local predictions are fixed; the ablation "all" does not."""
    ds = request.getfixturevalue(fixture)
    b = _batch(ds)
    g = torch.Generator().manual_seed(3)
    other_state = b["state"] + torch.randn(b["state"].shape, generator=g, dtype=torch.float64)
    if ds.spec.discrete:
        other_act = (b["actions"] + 1) % ds.spec.n_actions
    else:
        other_act = -b["actions"]
    for context, moves in (("none", False), ("all", True)):
        net = _random_net(ds, deductive_context=context)
        w = net.step_weights()
        delta = torch.randn(b["obs"].shape, generator=g, dtype=torch.float64) * w.obs_mask
        nxt = torch.randn(b["obs"].shape, generator=g, dtype=torch.float64) * w.obs_mask
        _, s0, a0 = ref.normalise(net.meta, w, b["obs"], b["state"], b["actions"])
        _, s1, a1 = ref.normalise(net.meta, w, b["obs"], other_state, other_act)
        out0 = ref.deduce(net.meta, w, delta, nxt, s0, a0)
        out1 = ref.deduce(net.meta, w, delta, nxt, s1, a1)
        same = all(torch.equal(x, y) for x, y in zip(out0, out1, strict=True) if x is not None)
        assert same != moves, f"context {context!r}"


def test_absolute_deductive_state_is_a_function_of_the_local_predictions_alone(discrete_ds):
    """deductive_state="absolute": the predicted next state does not move with the current state once the
    local predictions are fixed (the delta form adds its output to the current state)."""
    b = _batch(discrete_ds)
    for target, moves in (("absolute", False), ("delta", True)):
        net = _random_net(discrete_ds, deductive_state=target)
        # Hold the local predictions fixed by zeroing the obs head: next_obs = obs + dobs_mean.
        with torch.no_grad():
            for lin in net.obs_head.linears[-1:]:
                lin.weight.zero_()
                lin.bias.zero_()
        p0 = net.predict(b["obs"], b["state"], b["actions"])
        p1 = net.predict(b["obs"], b["state"] + 1.0, b["actions"])
        assert torch.equal(p0["next_obs"], p1["next_obs"])
        assert (not torch.allclose(p0["next_state"], p1["next_state"])) == moves, target


def test_hybrid_state_head_is_the_delta_head_from_a_real_state_and_the_absolute_one_from_a_prediction(discrete_ds):
    """deductive_state="hybrid": its state head's first S columns are a delta model's head, the next S an
    absolute model's; a step runs the first from a real state and the second from a predicted one, and
    every other output is the same either way."""
    b = _batch(discrete_ds)
    hybrid = _random_net(discrete_ds, deductive_state="hybrid")
    S = discrete_ds.spec.state_dim
    assert hybrid.ded_state.weight.shape[-1] == 2 * S
    p_real = hybrid.predict(b["obs"], b["state"], b["actions"])
    p_pred = hybrid.predict(b["obs"], b["state"], b["actions"], state_is_prediction=True)
    for form, cols, p in (("delta", slice(0, S), p_real), ("absolute", slice(S, 2 * S), p_pred)):
        single = _random_net(discrete_ds, deductive_state=form)
        sd = hybrid.state_dict()
        for k in ("ded_state.weight", "ded_state.bias"):
            sd[k] = sd[k][..., cols]
        single.load_state_dict(sd)
        q = single.predict(b["obs"], b["state"], b["actions"])
        for k in ("next_obs", "next_state", "aux_state", "reward", "term_logit", "avail_logits", "u"):
            torch.testing.assert_close(p[k], q[k], rtol=0, atol=0, msg=lambda m, k=k, f=form: f"{f} {k}: {m}")
    assert not torch.allclose(p_real["next_state"], p_pred["next_state"])
    # non-hybrid models ignore the flag
    delta = _random_net(discrete_ds, deductive_state="delta")
    torch.testing.assert_close(delta.predict(b["obs"], b["state"], b["actions"], state_is_prediction=True),
                               delta.predict(b["obs"], b["state"], b["actions"]), rtol=0, atol=0)


def test_step_is_the_reference_and_u_depends_on_the_auxiliary_path(discrete_ds):
    net = _random_net(discrete_ds)
    b = _batch(discrete_ds)
    p = net.predict(b["obs"], b["state"], b["actions"])
    r = ref.logo_step(net.meta, net.step_weights(), b["obs"], b["state"], b["actions"])
    for k in ("next_obs", "next_state", "aux_state", "reward", "term_logit", "avail_logits", "u"):
        torch.testing.assert_close(p[k], r[k], rtol=0, atol=0)
    # Perturbing only the auxiliary head moves u and nothing the deductive path predicts.
    with torch.no_grad():
        net.aux_head.linears[-1].bias.add_(0.5)
    q = net.predict(b["obs"], b["state"], b["actions"])
    assert not torch.allclose(q["u"], p["u"])
    torch.testing.assert_close(q["next_state"], p["next_state"], rtol=0, atol=0)
    torch.testing.assert_close(q["next_obs"], p["next_obs"], rtol=0, atol=0)


def test_separate_auxiliary_encoder_is_its_own_path(discrete_ds):
    net = _random_net(discrete_ds, aux_encoder="separate")
    b = _batch(discrete_ds)
    p = net.predict(b["obs"], b["state"], b["actions"])
    with torch.no_grad():
        net.aux_encoder.linears[0].weight.mul_(1.5)
    q = net.predict(b["obs"], b["state"], b["actions"])
    assert not torch.allclose(q["aux_state"], p["aux_state"])
    torch.testing.assert_close(q["next_state"], p["next_state"], rtol=0, atol=0)


def test_deductive_model_is_trained_on_normalised_deltas_of_the_true_next_obs(discrete_ds):
    """The true-input pass feeds (next_obs - obs - dobs_mean) / dobs_std: exactly the local model's target."""
    net = _random_net(discrete_ds)
    b = _batch(discrete_ds)
    w = net.step_weights()
    delta = ref.obs_delta_input(net.meta, w, b["obs"], b["next_obs"])
    torch.testing.assert_close(delta, net.obs_target(b["obs"], b["next_obs"]))
    assert F.mse_loss(delta, torch.zeros_like(delta)) > 0


def test_selection_prefers_the_lower_state_error_over_a_better_reward(discrete_ds):
    """Constructed case: B predicts the reward better but the next state worse than A. The default rule
    (select_by="state_obs") ranks A first; a weighted score dominated by the reward ranks B first."""
    from logo_fast.model.training import holdout_score

    table = TransitionTable(TransitionStore(discrete_ds))
    pos = torch.arange(len(table))
    a = _random_net(discrete_ds).float()
    b = _random_net(discrete_ds).float()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.ded_state.bias.add_(2.0)  # every next-state delta off by 2 std
        b.ded_outcome.weight[0, :, 0] = 0.0  # reward = the training mean exactly: the best constant
        b.ded_outcome.bias[0, 0] = b.reward_target(table.batch(pos)["reward"]).mean()
    assert holdout_score(a, table, pos, "cpu") < holdout_score(b, table, pos, "cpu")
    reward_heavy = a.cfg.replace(select_by="weighted", w_reward=1000.0)
    a.cfg = b.cfg = reward_heavy
    assert holdout_score(b, table, pos, "cpu") < holdout_score(a, table, pos, "cpu")
