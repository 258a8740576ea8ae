"""``logo-fast train`` on 2 gloo ranks: a torchrun launch of the entry point (world model fitted with DDP,
sharded rollouts and replay, data-parallel MACQL) exits 0 with rank 0 as the only writer and resumes;
a rank killed mid-run makes the other stop with a clear error instead of hanging."""

from __future__ import annotations

import json
import os
import queue
import signal
import time

import pytest
import torch
import torch.multiprocessing as mp

from .conftest import ROOT, torchrun

TIMEOUT_S = 60  # a collective waits at most this long; gloo usually notices a dead peer at once


@pytest.fixture(scope="module")
def mpe_data(tmp_path_factory):
    """12 MPE simple_spread episodes (300 steps)."""
    from logo_fast.data.collect import CollectArgs, run_collect

    path = tmp_path_factory.mktemp("data") / "mpe_simple_spread_medium_s0.h5"
    run_collect(CollectArgs(env="mpe:simple_spread", quality="medium", seed=0, out=str(path), n_episodes=12,
                            progress=False))
    return path


def _tiny(dataset, **kw) -> dict:
    """A run of a few seconds: 12 updates of global batch 16 (8 rows per rank, 4 of them real)."""
    cfg = {"env": "mpe:simple_spread", "dataset": str(dataset), "updates": 12, "batch_size": 16,
           "rollout_every": 6, "rollout_starts": 8, "horizon": 2, "replay_capacity": 200, "eval_every": 12,
           "eval_episodes": 2, "eval_batch": 2, "checkpoint_every": 6, "log_every": 3, "progress": "log",
           "wm": {"hidden": 16, "latent": 8, "agent_embed": 4, "layers": 1, "epochs": 1, "max_steps": 4,
                  "batch_size": 32, "eval_every": 2},
           "macql": {"hidden": 16, "mixer_embed": 4}, "random_return": -25.0, "expert_return": -10.0,
           "tensorboard": False}
    cfg.update(kw)
    return cfg


def test_torchrun_train_runs_writes_only_from_rank_0_and_resumes(mpe_data, tmp_path):
    cfg_path, out = tmp_path / "cfg.json", tmp_path / "run"
    cfg_path.write_text(json.dumps(_tiny(mpe_data)))
    job = str(ROOT / "tests" / "distributed" / "_train_job.py")
    res = torchrun(["--tee", "3", job, "train", "--config", str(cfg_path), "--out", str(out)])
    assert "[default0]:" in res.stdout and "update 12/12" in res.stdout
    assert "[default1]:" not in res.stdout  # rank 1 is quiet
    assert json.loads((tmp_path / "writes_rank1.json").read_text()) == []  # and writes nothing in the run folder
    report = json.loads((out / "report.json").read_text())
    assert report["processes"] == 2 and report["n_updates"] == 12 and report["final"]["episodes"] == 2
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2 and ckpt["step"] == 12
    # each rank rolled out its 4 starts into its own shard (2 rollouts x 4 starts x <= 2 steps)
    shards = [p["replay"]["u"].numel() for p in ckpt["ranks"]]
    assert all(0 < n <= 16 for n in shards)
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temp file left behind
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert rows[-1]["n_synthetic"] == sum(shards)  # the log row counts every rank's shard
    assert rows[-1]["synthetic_fraction"] == pytest.approx(0.5)

    # the same command with more updates resumes every rank from its part of the checkpoint
    res = torchrun(["--tee", "3", job, "train", "--config", str(cfg_path), "--out", str(out), "--updates", "18"])
    assert "resuming from" in res.stdout and "update 18/18" in res.stdout
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 18 and ckpt["learner"]["n_updates"] == 18
    assert [r["step"] for r in ckpt["rows"]] == [3, 6, 9, 12, 15, 18]


def _worker(rank: int, init_file: str, cfg: dict, results) -> None:
    torch.set_num_threads(1)
    from logo_fast.distributed import init_distributed
    from logo_fast.pipeline.train import TrainArgs, _from_dict

    init_distributed(backend="gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout_s=TIMEOUT_S)
    problems: list[str] = []
    args = _from_dict(TrainArgs, cfg, "test", problems)
    assert not problems, problems
    try:
        from logo_fast.pipeline.train import train

        train(args)
        results.put((rank, "finished", ""))
    except Exception as e:  # noqa: BLE001 - reported to the test as is
        results.put((rank, type(e).__name__, str(e)))


def _checkpoint_step(path) -> int:
    try:
        return int(torch.load(path, weights_only=False)["step"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return -1


def test_a_killed_rank_makes_the_other_fail_clearly(mpe_data, tmp_path):
    out = tmp_path / "run"
    # far more updates than the test waits for; a checkpoint every 2 (learner alone: no world model)
    cfg = _tiny(mpe_data, world_model="none", updates=1_000_000, eval_every=1_000_000, checkpoint_every=2,
                log_every=1000, progress="none", out=str(out))
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned ranks
    procs = [ctx.Process(target=_worker, args=(r, str(tmp_path / "rendezvous"), cfg, results), daemon=True)
             for r in (0, 1)]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 240
        while _checkpoint_step(out / "checkpoint.pt") < 4:
            assert time.monotonic() < deadline, "the 2-rank run wrote no checkpoint past update 4 within 240 s"
            assert all(p.is_alive() for p in procs), "a rank exited before it was killed"
            time.sleep(0.2)
        os.kill(procs[0].pid, signal.SIGKILL)  # rank 0, the writer, at whatever it is doing
        try:
            rank, kind, message = results.get(timeout=TIMEOUT_S + 30)
        except queue.Empty:
            raise AssertionError("rank 1 neither failed nor finished after rank 0 was killed (a hang)") from None
        assert rank == 1 and kind == "DistributedFitError", (rank, kind, message)
        assert "rank 1 of 2 lost the other ranks" in message and "the last checkpoint is" in message
        procs[1].join(timeout=15)
        assert not procs[1].is_alive(), "rank 1 did not exit after its error"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_before
    saved = torch.load(out / "checkpoint.pt", weights_only=False)  # the last complete checkpoint is intact
    assert saved["step"] >= 4 and saved["world_size"] == 2
