"""The custom-learner example in the learners docstring runs, follows the protocol and trains in the pipeline."""

from __future__ import annotations

import re

import torch

import logo_fast.learners as learners
from logo_fast.data import make_toy_dataset
from logo_fast.learners import LEARNERS, Learner
from logo_fast.replay import UncertaintyWeightedReplay


def _example_class():
    code = re.search(r"::\n\n(.*?)\n\n``tests/", learners.__doc__, re.S).group(1)
    namespace: dict = {}
    exec(compile("\n".join(line[4:] for line in code.splitlines()), "learners-docstring", "exec"), namespace)
    return namespace["IndependentQ"]


def test_docstring_example_is_a_learner_and_learns():
    IndependentQ = _example_class()
    ds = make_toy_dataset(n_agents=2, n_episodes=6, episode_len=10, seed=4)
    replay = UncertaintyWeightedReplay(ds, capacity=8, C=2.0, seed=0)
    learner = IndependentQ(ds.spec)
    assert isinstance(learner, Learner)
    losses = [learner.update(replay.sample(64))["loss"] for _ in range(200)]
    assert all(0 <= x < 100 for x in losses)  # bootstrapped TD error need not fall monotonically; it stays bounded
    avail = torch.as_tensor(ds.avail_actions[:50])
    a = learner.act(torch.as_tensor(ds.obs[:50]), avail)
    assert avail.gather(-1, a.unsqueeze(-1)).all()
    state = learner.state_dict()
    other = IndependentQ(ds.spec, seed=1)
    other.load_state_dict(state)
    assert other.n_updates == 200


def test_a_registered_learner_trains_in_the_pipeline(tmp_path, monkeypatch):
    from logo_fast.data import save
    from logo_fast.pipeline.train import TrainArgs, train

    IndependentQ = _example_class()
    monkeypatch.setitem(LEARNERS, "independent_q", lambda spec, configs, low, high: IndependentQ(spec))
    from logo_fast.data import collect

    ds = collect("mpe:simple_spread", "medium", 0, n_episodes=12)
    save(ds, tmp_path / "d.h5")
    report = train(TrainArgs(dataset=str(tmp_path / "d.h5"), method="independent_q", world_model="none", updates=20,
                             batch_size=16, eval_every=20, eval_episodes=8, checkpoint_every=20, log_every=10,
                             random_return=-25.0, expert_return=-10.0, out=str(tmp_path / "run"), progress="none"))
    assert report["method"] == "independent_q" and report["n_updates"] == 20
