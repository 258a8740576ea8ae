"""One rank killed mid-run: the last checkpoint stays intact and loadable, the other rank stops
with a clear DistributedFitError instead of hanging (every wait below has a timeout)."""

from __future__ import annotations

import os
import queue
import signal
import time

import torch
import torch.multiprocessing as mp

from logo_fast.model import WorldModel

# A collective waits at most this long; gloo usually notices a dead peer at once (closed socket).
TIMEOUT_S = 60


def _worker(rank: int, init_file: str, ckpt: str, results) -> None:
    torch.set_num_threads(1)
    from logo_fast.data import make_toy_dataset
    from logo_fast.distributed import fit_distributed, init_distributed
    from logo_fast.model import LogoWorldModel, WorldModelConfig

    init_distributed(backend="gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout_s=TIMEOUT_S)
    ds = make_toy_dataset(n_agents=2, n_episodes=12, episode_len=10, seed=0)
    # far more steps than the test waits for; a checkpoint at every step
    cfg = WorldModelConfig(hidden=16, latent=8, agent_embed=4, layers=1, batch_size=32, max_steps=1_000_000,
                           eval_every=1, patience=0, seed=0)
    try:
        fit_distributed(LogoWorldModel(config=cfg), ds, progress=False, checkpoint_path=ckpt)
        results.put((rank, "finished", ""))
    except Exception as e:  # noqa: BLE001 - reported to the test as is
        results.put((rank, type(e).__name__, str(e)))


def _checkpoint_step(path: str) -> int:
    try:
        return WorldModel.load(path).train_state.step
    except (FileNotFoundError, ValueError):
        return -1


def test_killed_rank_leaves_checkpoint_and_peer_fails_clearly(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    ckpt = str(tmp_path / "wm.pt")
    init_file = str(tmp_path / "rendezvous")
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned ranks
    procs = [ctx.Process(target=_worker, args=(r, init_file, ckpt, results), daemon=True) for r in (0, 1)]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 240
        while _checkpoint_step(ckpt) < 3:
            assert time.monotonic() < deadline, "the 2-rank fit wrote no checkpoint past step 3 within 240 s"
            assert all(p.is_alive() for p in procs), "a rank exited before it was killed"
            time.sleep(0.2)
        # kill rank 0, the one that writes the checkpoints, at whatever it is doing
        os.kill(procs[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            rank, kind, message = results.get(timeout=TIMEOUT_S + 30)
        except queue.Empty:
            raise AssertionError("rank 1 neither failed nor finished after rank 0 was killed (a hang)") from None
        assert rank == 1 and kind == "DistributedFitError", (rank, kind, message)
        assert "lost the other ranks" in message and "checkpoints go to" in message
        print(f"rank 1 failed {time.monotonic() - killed_at:.1f}s after rank 0 was killed: {message}")
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
    # the last complete checkpoint is intact, loads in one process and predicts
    model = WorldModel.load(ckpt)
    assert model.train_state.step >= 3
    assert all(torch.isfinite(v).all() for v in model.net.state_dict().values() if v.is_floating_point())
