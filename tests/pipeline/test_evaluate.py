"""Evaluation in the real environment and the references of the normalised score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from logo_fast.pipeline.evaluate import _expert_from_manifests, evaluate_policy, normalised_score


def test_every_copy_contributes_the_same_number_of_episodes():
    calls = []

    def policy(obs, state, avail):
        calls.append(obs.shape)
        return np.zeros(obs.shape[:2], np.int64)

    res = evaluate_policy("mpe:simple_spread", policy, n_episodes=10, seed=0, batch_size=4)
    assert res["episodes"] == 12  # ceil(10 / 4) = 3 episodes from each of the 4 copies
    assert len(calls) == 3 * 25 and calls[0] == (4, 3, 18)
    assert res["win_rate"] is None
    again = evaluate_policy("mpe:simple_spread", policy, n_episodes=10, seed=0, batch_size=4)
    assert again["returns"] == res["returns"]  # a seed fixes the episodes


def test_normalised_score():
    assert normalised_score(-15.0, -25.0, -10.0) == pytest.approx(100 * 10 / 15)
    assert normalised_score(1.0, None, 2.0) is None
    assert normalised_score(1.0, 2.0, 2.0) is None


def test_mamujoco_expert_comes_from_the_manifests(tmp_path):
    data = tmp_path / "mamujoco_Hopper-3x1_medium_s0.h5"
    ret, source = _expert_from_manifests("mamujoco:Hopper-3x1", data)
    assert ret is None and source.startswith("none")
    # a dataset collected from the policy zoo names its trainer in words: no expert from it, no crash
    (tmp_path / "mamujoco_Hopper-3x1_medium_s0.manifest.json").write_text(
        json.dumps({"behaviour": {"trainer": "td3 (joint action from the global state)"}}))
    assert _expert_from_manifests("mamujoco:Hopper-3x1", data)[0] is None
    (tmp_path / "mamujoco_Hopper-3x1_medium_s0.manifest.json").write_text(
        json.dumps({"behaviour": {"trainer": {"expert_checkpoint": {"eval_return": 490.0}}}}))
    assert _expert_from_manifests("mamujoco:Hopper-3x1", data)[0] == 490.0
    (tmp_path / "mamujoco_Hopper-3x1_expert_s0.manifest.json").write_text(
        json.dumps({"episode_return": {"mean": 455.5}}))
    ret, source = _expert_from_manifests("mamujoco:Hopper-3x1", data)
    assert ret == 455.5 and "expert dataset" in source
