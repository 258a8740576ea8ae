"""Rollouts through a CUDA graph (``rollout(..., cuda_graph=True)``, ``GraphedRollout``).

On the CPU: the argument checks, and the static-buffer step the graph captures, run eagerly
(``capture=False``), against the eager loop step for step on awkward shapes. On a GPU (marked
``gpu``, skipped without one): the captured graph against the eager loop and against the same
step run eagerly, capture errors, registered generators.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import EnsembleWorldModel, JointWorldModel, LogoWorldModel, NonFinitePredictionError
from logo_fast.model.graphed_rollout import GraphCaptureError, GraphedRollout

from .conftest import first_available, small_config


def assert_same_rollout(eager: dict, graphed: dict, exact: bool = False) -> None:
    """Same keys in the same order, same shapes and dtypes, ints and bools equal; floats equal (exact) or
    within float32 tolerance (the eager loop steps only the live rows: other matmul shapes, other rounding)."""
    assert list(eager) == list(graphed)
    for k in eager:
        a, b = eager[k], graphed[k]
        assert a.shape == b.shape and a.dtype == b.dtype, k
        if a.is_floating_point() and not exact:
            torch.testing.assert_close(b, a, msg=k)
        else:
            assert torch.equal(a, b), k


def static_rollout(model, policy, starts, horizon, **kw):
    """The graph's step, run eagerly on the static buffers."""
    n = (
        starts
        if isinstance(starts, int)
        else len(next(iter(starts.values())))
        if isinstance(starts, dict)
        else len(starts)
    )
    dataset = kw.pop("dataset", None)
    gen = kw.pop("generator", None)
    return GraphedRollout(model, policy, n, horizon=horizon, capture=False, **kw)(
        starts, dataset=dataset, generator=gen
    )


def long_lived(model, dataset, fraction: float = 0.15):
    """A copy whose termination logit is shifted so ~``fraction`` of the dataset's rows terminate:
    the tiny test models end almost every rollout at step 0, which would leave the later steps'
    bookkeeping untested."""
    m = copy.deepcopy(model)
    logits = torch.logit(m.step(dataset.obs, dataset.state, dataset.actions, dataset.avail_actions).terminal_prob)
    with torch.no_grad():
        m.net.ded_outcome.bias[0, 1] -= float(torch.quantile(logits, 1 - fraction))
    return m


def _median_later_u(free: dict) -> float:
    """A threshold that stops about half the rows after the first step: the median ``u`` of the second
    step (a hybrid model's first from a predicted state, where the tiny test models' u jumps; a
    median over all steps would stop every row there)."""
    return float(free["u"][free["horizon_step"] == 1].median())


def assert_multi_step(out: dict, horizon: int) -> None:
    """The comparison covers later steps: some rows run to the horizon, some stop before."""
    lengths = torch.bincount(out["start"] - out["start"].min())
    lengths = lengths[lengths > 0]
    assert int(lengths.max()) == horizon and int(lengths.min()) < horizon, lengths.tolist()


@pytest.fixture(scope="module")
def long_logo(fitted_logo, discrete_ds):
    return long_lived(fitted_logo, discrete_ds)


@pytest.fixture(scope="module")
def one_agent_model():
    ds = make_toy_dataset(n_agents=1, n_episodes=6, episode_len=12, action_type="discrete", seed=11)
    return long_lived(LogoWorldModel(config=small_config(epochs=1)).fit(ds, progress=False), ds)


# ---- argument checks (CPU) ---------------------------------------------------------------------
def test_cuda_graph_on_cpu_is_a_value_error_before_any_work(fitted_logo):
    calls = []

    def policy(obs, avail):
        calls.append(1)
        return first_available(obs, avail)

    gen = torch.Generator().manual_seed(4)
    before = gen.get_state()
    with pytest.raises(ValueError, match=r"CUDA graphs need a model on a CUDA device.*cpu"):
        fitted_logo.rollout(policy, starts=8, horizon=3, generator=gen, cuda_graph=True)
    assert not calls and torch.equal(gen.get_state(), before), "no policy call, no start drawn"
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedRollout(fitted_logo, policy, batch_size=8)


def test_bad_arguments_are_listed(fitted_logo):
    with pytest.raises(ValueError, match="horizon"):
        GraphedRollout(fitted_logo, first_available, 4, horizon=0, capture=False)
    with pytest.raises(ValueError, match="u_threshold must be finite"):
        GraphedRollout(fitted_logo, first_available, 4, u_threshold=float("nan"), capture=False)
    with pytest.raises(
        ValueError,
        match=r"policy must be callable(.|\n)*batch_size must be an int >= 1(.|\n)*"
        r"generators\[0\] must be a torch.Generator",
    ):
        GraphedRollout(fitted_logo, "not a policy", 0, generators=[3], capture=False)
    runner = GraphedRollout(fitted_logo, first_available, 4, horizon=2, capture=False)
    with pytest.raises(ValueError, match=r"5 starts, but this runner was built for batch_size=4"):
        runner(np.arange(5))


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            lambda o, a: a.long().argmax(-1).numpy(),
            r"returned ndarray; under a CUDA graph it must return a torch.Tensor",
        ),
        (lambda o, a: a.long().argmax(-1)[:1], r"shape \(1, 3\), expected \(4, 3\)"),
        (lambda o, a: a.float().argmax(-1).float(), r"dtype torch.float32 is not an integer type"),
    ],
)
def test_uncapturable_policy_outputs_are_named(fitted_logo, bad, match):
    with pytest.raises(ValueError, match=match):
        static_rollout(fitted_logo, bad, np.arange(4), horizon=2)


# ---- the captured step, run eagerly, equals the eager loop (CPU) -------------------------------
@pytest.mark.parametrize("threshold", [None, "median", "low"])
def test_static_step_equals_eager_loop_discrete(long_logo, threshold):
    starts = np.arange(40)
    free = long_logo.rollout(first_available, starts=starts, horizon=7)
    thr = {None: None, "median": _median_later_u(free), "low": float(free["u"].min()) * 0.5}[threshold]
    eager = long_logo.rollout(first_available, starts=starts, horizon=7, u_threshold=thr)
    assert_same_rollout(eager, static_rollout(long_logo, first_available, starts, 7, u_threshold=thr))
    if threshold != "low":
        assert_multi_step(eager, 7)
    if threshold == "low":
        # every row stops at step 0: the eager loop breaks, the graph runs on masked
        assert eager["u"].numel() == 0 and eager["obs"].shape[0] == 0


def test_static_step_equals_eager_loop_awkward_shapes(one_agent_model, long_logo):
    # one agent, batch 1, a horizon past most terminations
    for starts in (np.array([5]), np.arange(9)):
        eager = one_agent_model.rollout(first_available, starts=starts, horizon=15)
        assert_same_rollout(eager, static_rollout(one_agent_model, first_available, starts, 15))
    assert_multi_step(eager, 15)
    # dict starts (rows numbered 0..B-1), horizon 1, chunked model steps (step_chunk 2 < B = 5)
    ds = long_logo.fit_dataset
    d = {"obs": torch.as_tensor(ds.obs[10:15]), "state": torch.as_tensor(ds.state[10:15])}
    chunked = copy.deepcopy(long_logo)
    chunked.config.step_chunk = 2
    for model, h in ((long_logo, 1), (chunked, 6)):
        assert_same_rollout(
            model.rollout(first_available, starts=d, horizon=h), static_rollout(model, first_available, d, h)
        )


def test_static_step_equals_eager_loop_continuous(fitted_logo_cont, hetero_cont_ds):
    spec = hetero_cont_ds.spec
    high = torch.as_tensor(hetero_cont_ds.action_high) * torch.as_tensor(spec.act_mask())

    def edge_policy(o, a):  # row-wise: an action that depends on the row's obs, at the bounds' edge
        return high * torch.tanh(o[..., :1]).abs()

    model = long_lived(fitted_logo_cont, hetero_cont_ds, fraction=0.5)
    starts = np.arange(24)
    eager = model.rollout(edge_policy, starts=starts, horizon=8)
    assert "avail_actions" not in eager
    assert_multi_step(eager, 8)
    assert_same_rollout(eager, static_rollout(model, edge_policy, starts, 8))


def test_static_step_equals_eager_loop_hybrid_state_head(discrete_ds):
    """A hybrid LOGO model switches its state head after the first step: the static-buffer loop does
    it at the same step as the eager loop (``run``'s first step is eager when a graph is captured)."""
    model = long_lived(LogoWorldModel(config=small_config(epochs=1, deductive_state="hybrid")).fit(
        discrete_ds, progress=False), discrete_ds, fraction=0.3)
    eager = model.rollout(first_available, starts=np.arange(16), horizon=5)
    assert_multi_step(eager, 5)
    assert_same_rollout(eager, static_rollout(model, first_available, np.arange(16), 5))


@pytest.mark.parametrize("cls", [JointWorldModel, EnsembleWorldModel])
def test_static_step_equals_eager_loop_baselines(discrete_ds, cls):
    # the ensemble's mean step (sample_members=False) is deterministic; the penalty is applied to u
    model = cls(config=small_config(epochs=1, reward_penalty=0.5, sample_members=False)).fit(
        discrete_ds, progress=False
    )
    eager = model.rollout(first_available, starts=np.arange(10), horizon=4)
    assert_same_rollout(eager, static_rollout(model, first_available, np.arange(10), 4))


def test_sampling_ensemble_is_seeded(discrete_ds):
    model = EnsembleWorldModel(config=small_config(epochs=1)).fit(discrete_ds, progress=False)

    def run(seed):
        return static_rollout(model, first_available, 10, 4, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert_same_rollout(a, b)
    assert not torch.equal(a["next_state"][:10], c["next_state"][:10])
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())


def test_runner_is_reusable_across_starts(long_logo):
    runner = GraphedRollout(long_logo, first_available, 6, horizon=5, capture=False)
    for starts in (np.arange(6), np.array([100, 3, 77, 3, 42, 9])):
        assert_same_rollout(long_logo.rollout(first_available, starts=starts, horizon=5), runner(starts))


# ---- errors found on the device are the eager loop's (CPU) -------------------------------------
def test_bad_action_error_is_the_eager_loops(long_logo):
    # A row-wise policy that turns bad (an out-of-range action) once a row's first obs feature
    # passes a level no start reaches: the error comes at a later step, after some rows stopped,
    # and names rows by their place among the rows still running, as the eager loop does.
    starts = np.arange(30)
    free = long_logo.rollout(first_available, starts=starts, horizon=6)
    x = free["obs"][:, 0, 0]
    first = free["horizon_step"] == 0
    above = x[~first] > x[first].max()
    sign, level = (1.0, float(x[first].max())) if above.any() else (-1.0, -float(x[first].min()))
    assert (sign * x[~first] > level).any(), "the toy dynamics move obs beyond the starts' range"

    def turns_bad(obs, avail):
        a = avail.long().argmax(-1)
        return torch.where((sign * obs[:, :1, 0] > level), a + 7, a)

    with pytest.raises(ValueError) as eager:
        long_logo.rollout(turns_bad, starts=starts, horizon=6)
    with pytest.raises(ValueError) as graphed:
        static_rollout(long_logo, turns_bad, starts, 6)
    assert "outside [0, 5)" in str(eager.value) and "horizon step 0" not in str(eager.value)
    assert str(graphed.value) == str(eager.value)


def test_unavailable_and_out_of_bounds_actions(fitted_logo, fitted_logo_cont, hetero_cont_ds, discrete_ds):
    def bad_policy(obs, avail):
        return (~avail).long().argmax(-1)  # an unavailable action wherever one exists

    avail = torch.ones(6, 3, 5, dtype=torch.bool)
    avail[4, 2, 0] = False
    starts = {
        "obs": torch.as_tensor(discrete_ds.obs[:6]),
        "state": torch.as_tensor(discrete_ds.state[:6]),
        "avail": avail,
    }
    with pytest.raises(ValueError, match=r"horizon step 0: bad input(.|\n)*1 unavailable actions chosen in rows \[4\]"):
        static_rollout(fitted_logo, bad_policy, starts, 2)
    spec = hetero_cont_ds.spec
    high = torch.as_tensor(hetero_cont_ds.action_high) * torch.as_tensor(spec.act_mask())

    def too_far(o, a):
        x = high.expand(o.shape[0], -1, -1).clone()
        x[1] = 3.0 * x[1] + 1.0 * torch.as_tensor(spec.act_mask())
        return x

    with pytest.raises(ValueError, match=r"outside \[action_low, action_high\] in rows \[1\]"):
        static_rollout(fitted_logo_cont, too_far, np.arange(4), 3)


def test_non_finite_prediction_error_is_the_eager_loops(fitted_logo):
    broken = copy.deepcopy(fitted_logo)
    with torch.no_grad():
        broken.net.ded_state.bias[0, 0] = float("nan")
    with pytest.raises(NonFinitePredictionError) as eager:
        broken.rollout(first_available, starts=np.arange(4), horizon=3)
    with pytest.raises(NonFinitePredictionError) as graphed:
        static_rollout(broken, first_available, np.arange(4), 3)
    assert str(graphed.value) == str(eager.value) == "LogoWorldModel: non-finite prediction in 4 rows [0, 1, 2, 3]"


# ---- on a GPU ----------------------------------------------------------------------------------
def _on_cuda(model, tmp_path):
    path = tmp_path / f"{model.kind}.pt"
    model.save(str(path))
    m = type(model).load(str(path), device="cuda")
    m.fit_dataset = model.fit_dataset
    return m


def cuda_first_available(obs, avail):
    return avail.long().argmax(-1)


@pytest.mark.gpu
@pytest.mark.parametrize("threshold", [None, "median"])
def test_graph_equals_eager_on_gpu(long_logo, tmp_path, threshold):
    model = _on_cuda(long_logo, tmp_path)
    starts = np.arange(64)
    free = model.rollout(cuda_first_available, starts=starts, horizon=15)
    thr = None if threshold is None else _median_later_u(free)
    eager = model.rollout(cuda_first_available, starts=starts, horizon=15, u_threshold=thr)
    graphed = model.rollout(cuda_first_available, starts=starts, horizon=15, u_threshold=thr, cuda_graph=True)
    # the eager loop steps only the live rows (other matmul shapes): float tolerance, same decisions
    assert_same_rollout(eager, graphed, exact=False)
    # the replayed graph against the same step run eagerly on the same buffers: bit for bit
    eager_static = GraphedRollout(model, cuda_first_available, 64, horizon=15, u_threshold=thr, capture=False)
    assert_same_rollout(eager_static(starts), graphed)


@pytest.mark.gpu
def test_graph_equals_eager_on_gpu_continuous_and_reuse(fitted_logo_cont, hetero_cont_ds, tmp_path):
    model = _on_cuda(long_lived(fitted_logo_cont, hetero_cont_ds, fraction=0.5), tmp_path)
    spec = hetero_cont_ds.spec
    high = (torch.as_tensor(hetero_cont_ds.action_high) * torch.as_tensor(spec.act_mask())).cuda()

    def edge_policy(o, a):
        return high * torch.tanh(o[..., :1]).abs()

    runner = GraphedRollout(model, edge_policy, 16, horizon=15)
    for starts in (np.arange(16), np.arange(40, 56)):  # the second call replays the first call's graph
        assert_same_rollout(model.rollout(edge_policy, starts=starts, horizon=15), runner(starts), exact=False)
    assert runner.graph is not None


@pytest.mark.gpu
def test_policy_that_syncs_is_a_capture_error(fitted_logo, tmp_path):
    model = _on_cuda(fitted_logo, tmp_path)

    def item_policy(obs, avail):
        a = avail.long().argmax(-1)
        return a if obs.sum().item() > -1e30 else a + 1  # .item() waits for the GPU

    def nonzero_policy(obs, avail):
        a = avail.long().argmax(-1)
        a[torch.nonzero(obs[..., 0] > 1e30, as_tuple=True)] = 0  # data-dependent shape
        return a

    for policy in (item_policy, nonzero_policy):
        with pytest.raises(GraphCaptureError, match=rf"policy .*{policy.__name__}.*(synchronisation|capturing)"):
            model.rollout(policy, starts=np.arange(8), horizon=3, cuda_graph=True)
    # the device is still usable after a failed capture
    out = model.rollout(cuda_first_available, starts=np.arange(8), horizon=3, cuda_graph=True)
    assert out["u"].numel() >= 8


@pytest.mark.gpu
def test_random_policy_with_registered_generator(long_logo, tmp_path):
    model = _on_cuda(long_logo, tmp_path)
    g = torch.Generator(device="cuda")

    def random_policy(obs, avail):  # uniform among available actions, from g
        scores = torch.rand(avail.shape, generator=g, device=avail.device).masked_fill(~avail, -1.0)
        return scores.argmax(-1)

    def run(seed):
        g.manual_seed(seed)
        return GraphedRollout(model, random_policy, 32, horizon=10, generators=[g])(np.arange(32))

    a, b, c = run(0), run(0), run(1)
    assert_same_rollout(a, b)
    assert not torch.equal(a["actions"], c["actions"])
    # each replay draws fresh numbers: a row's actions are not the same at every step
    first = a["actions"][a["horizon_step"] == 0]
    later = a["actions"][a["horizon_step"] == 1]
    assert not torch.equal(first[: later.shape[0]], later)


@pytest.mark.gpu
def test_sampling_ensemble_on_gpu_is_seeded(discrete_ds, tmp_path):
    model = _on_cuda(EnsembleWorldModel(config=small_config(epochs=1)).fit(discrete_ds, progress=False), tmp_path)

    def run(seed):
        return model.rollout(
            cuda_first_available,
            starts=np.arange(16),
            horizon=6,
            cuda_graph=True,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b = run(0), run(0)
    assert_same_rollout(a, b)
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())
