"""The LOGO step equals a second, naive statement of DESIGN.md §1 in float64, in every configuration.

The reference (``logo_fast.reference.logo_step``) is the one definition training, prediction and
the kernels share, so a slip in it moves all of them together and no comparison between them can
see it. This test restates the step the plain way, from the network's modules (``GroupMLP``
forward, ``WorldNet.action_input``, the normaliser buffers) over the concatenated input
[o_i, a, s, e_i], and compares every output, ``u`` included. Mutation testing found the reference's
configuration branches (attention pooling, absolute targets, per-agent weights, the ablation
contexts, continuous actions) checked only against themselves.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from logo_fast.data import make_toy_dataset
from logo_fast.model.networks import LogoNet

from .conftest import small_config

CONFIGS = {
    "default": {},  # the hybrid state head, run from a real and from a predicted state
    "delta_state": {"deductive_state": "delta"},
    "absolute_state": {"deductive_state": "absolute", "pool": "attention"},
    "per_agent": {"per_agent_weights": True},
    "attention": {"pool": "attention"},
    "absolute": {"predict_delta": False},
    "separate_aux": {"aux_encoder": "separate"},
    "context_reward": {"deductive_context": "reward"},
    "context_all": {"deductive_context": "all", "per_agent_weights": True},
    "no_embedding": {"agent_embed": 0, "pool": "attention", "predict_delta": False},
}


@pytest.fixture(scope="module", params=["discrete", "continuous"])
def ds(request):
    return make_toy_dataset(n_agents=3, n_episodes=2, episode_len=6, action_type=request.param, heterogeneous=True,
                            seed=7)


def _random_net(ds, seed: int, **overrides) -> LogoNet:
    """Random weights and random normalisers (means, stds, live masks), float64."""
    net = LogoNet(ds.spec, small_config(**overrides))
    g = torch.Generator().manual_seed(seed)
    net.reset_parameters(g)
    with torch.no_grad():
        for p in net.parameters():  # biases too: a dropped bias must show
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    stats = net.statistics()
    for k, v in stats.items():
        if k.endswith("_std"):
            stats[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("_mean"):
            stats[k] = torch.randn(v.shape, generator=g)
        elif k.endswith("_live"):
            stats[k] = (torch.rand(v.shape, generator=g) > 0.25).float()
    net.set_statistics(stats)
    return net.double()


def _inputs(ds, B: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    spec = ds.spec
    mask = torch.as_tensor(spec.obs_mask()).double()
    obs = torch.randn(B, spec.n_agents, spec.obs_dim, generator=g, dtype=torch.float64) * mask
    state = torch.randn(B, spec.state_dim, generator=g, dtype=torch.float64)
    if spec.discrete:
        actions = torch.randint(0, spec.n_actions, (B, spec.n_agents), generator=g)
    else:
        am = torch.as_tensor(spec.act_mask()).double()
        actions = torch.randn(B, spec.n_agents, spec.act_dim, generator=g, dtype=torch.float64) * am
    return obs, state, actions


def naive_step(net: LogoNet, obs, state, actions, state_is_prediction: bool = False) -> dict[str, torch.Tensor]:
    """DESIGN.md §1, written out: obs (B, N, D), state (B, S), actions (B, N) or (B, N, act_dim).

    The deductive state head's output is a normalised state change ("delta"), the normalised state
    itself ("absolute"), or both side by side ("hybrid": the change from a real state, the state
    itself from a predicted one)."""
    spec, cfg = net.spec, net.cfg
    B, N, D = obs.shape
    mask = net.obs_mask.double()
    live_obs = (net.dobs_live if cfg.predict_delta else net.obs_live) * mask
    obs_n = (obs - net.obs_mean) / net.obs_std * mask
    state_n = (state - net.state_mean) / net.state_std
    a = net.action_input(actions)  # (B, A): one-hot or normalised
    x = torch.cat([obs_n, a[:, None].expand(B, N, -1), state_n[:, None].expand(B, N, -1),
                   net.agent_embedding[None].expand(B, N, -1)], -1)  # agent i's input [o_i, a, s, e_i]
    z = net.encoder(x)  # (B, N, L)
    mu = net.obs_head(z)[..., :D] * live_obs
    z_aux = z if net.aux_encoder is None else net.aux_encoder(x)
    if cfg.pool == "mean":
        pooled = z_aux.mean(1)
    else:
        att = torch.softmax((z_aux * net.pool_query).sum(-1) / z_aux.shape[-1] ** 0.5, dim=1)
        pooled = (att[..., None] * z_aux).sum(1)
    aux = net.aux_head(pooled)
    if cfg.predict_delta:
        next_obs = (obs + net.dobs_mean + net.dobs_std * mu) * mask
        aux_state = state + net.dstate_mean + net.dstate_std * aux
    else:
        next_obs = (net.obs_mean + net.obs_std * mu) * mask
        aux_state = net.state_mean + net.state_std * aux
    delta_n = (next_obs - obs - net.dobs_mean) / net.dobs_std * mask
    next_obs_n = (next_obs - net.obs_mean) / net.obs_std * mask
    ded_in = torch.cat([torch.cat([delta_n[:, i], next_obs_n[:, i]], -1) for i in range(N)], -1)
    ctx = torch.cat([state_n, a], -1)
    if cfg.deductive_context == "all":
        ded_in = torch.cat([ded_in, ctx], -1)
    h = F.silu(net.ded_trunk(ded_in))
    S = spec.state_dim
    head = net.ded_state(h)
    form = cfg.deductive_state
    if form == "hybrid":
        form = "absolute" if state_is_prediction else "delta"
        head = head[..., S:] if state_is_prediction else head[..., :S]
    assert head.shape[-1] == S
    if form == "delta":
        next_state = state + net.dstate_mean + net.dstate_std * head
    else:
        next_state = net.state_mean + net.state_std * head
    rest = net.ded_outcome(torch.cat([h, ctx], -1) if cfg.deductive_context == "reward" else h)
    u = ((aux_state - next_state) * net.state_live / net.state_std).square().sum(-1).sqrt()
    return {"next_obs": next_obs, "next_state": next_state, "aux_state": aux_state,
            "reward": net.reward_mean[0] + net.reward_std[0] * rest[:, 0], "term_logit": rest[:, 1],
            "avail_logits": rest[:, 2:].reshape(B, N, spec.n_actions) if spec.discrete else None, "u": u}


@pytest.mark.parametrize("state_is_prediction", [False, True])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_step_equals_the_naive_statement(ds, config, state_is_prediction):
    net = _random_net(ds, seed=len(config), **CONFIGS[config])
    obs, state, actions = _inputs(ds, B=6, seed=1)
    with torch.no_grad():
        got = net.predict(obs, state, actions, state_is_prediction=state_is_prediction)
        want = naive_step(net, obs, state, actions, state_is_prediction)
    for k, v in want.items():
        if v is None:
            assert got[k] is None, k
            continue
        torch.testing.assert_close(got[k], v, rtol=1e-10, atol=1e-10, msg=f"{config}: {k}")
    assert bool((got["next_obs"] * (1 - net.obs_mask.double()) == 0).all()), "padding must be exactly 0"


def test_outcome_dropout_drops_trunk_features_before_the_outcome_heads_only(ds):
    """Training's ``outcome_dropout``: dropout with that p on the trunk features the reward/termination/avail heads
    read; the next-state head sees them whole."""
    from logo_fast.reference import logo_step as ref

    net = _random_net(ds, seed=3)
    w = net.step_weights()
    obs, state, actions = _inputs(ds, B=64, seed=2)
    obs_n, state_n, act = ref.normalise(net.meta, w, obs, state, actions)
    delta_n, next_obs_n = torch.randn_like(obs_n) * net.obs_mask, torch.randn_like(obs_n) * net.obs_mask
    with torch.no_grad():
        s0, r0, t0, _ = ref.deduce(net.meta, w, delta_n, next_obs_n, state_n, act)
        torch.manual_seed(11)
        s1, r1, t1, _ = ref.deduce(net.meta, w, delta_n, next_obs_n, state_n, act, outcome_dropout=0.3)
        # The same draw, restated: features zeroed with p = 0.3, the rest scaled by 1 / 0.7.
        N, D = obs_n.shape[1:]
        x = torch.cat([torch.cat([delta_n[:, i], next_obs_n[:, i]], -1) for i in range(N)], -1)
        h = F.silu(net.ded_trunk(x))
        torch.manual_seed(11)
        rest = net.ded_outcome(F.dropout(h, 0.3, training=True))
    torch.testing.assert_close(s1, s0, rtol=0, atol=0)
    torch.testing.assert_close(r1, rest[:, 0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(t1, rest[:, 1], rtol=1e-10, atol=1e-10)
    assert not torch.allclose(r1, r0)


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_two_agents_with_per_agent_weights_equal_the_naive_statement(action_type):
    """Two agents with per-agent weights (G = N = 2): mutant ``embed @ W_e[0] if G == 2`` gave both agents agent
    0's embedding weight, and every other test has three agents, so G == 2 never occurred."""
    ds2 = make_toy_dataset(n_agents=2, n_episodes=2, episode_len=6, action_type=action_type, heterogeneous=True,
                           seed=7)
    net = _random_net(ds2, seed=5, per_agent_weights=True)
    obs, state, actions = _inputs(ds2, B=5, seed=3)
    with torch.no_grad():
        got = net.predict(obs, state, actions)
        want = naive_step(net, obs, state, actions)
    for k in ("next_obs", "next_state", "aux_state", "u"):
        torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-10, msg=k)
