"""The experiment grid on a tiny budget: one process per cell, a resumable store, the rendered page."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from logo_fast.pipeline.table import TableArgs, fresh_cells, load_grid, read_store, render, resolved_args, run_table


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory) -> Path:
    from logo_fast.data.collect import CollectArgs, run_collect

    root = tmp_path_factory.mktemp("grid")
    data = root / "mpe_simple_spread_medium_s0.h5"
    run_collect(CollectArgs(env="mpe:simple_spread", quality="medium", seed=0, out=str(data), n_episodes=20,
                            progress=False))
    scenario = {"env": "mpe:simple_spread", "updates": 30, "batch_size": 32, "rollout_every": 15, "rollout_starts": 8,
                "horizon": 2, "eval_every": 30, "eval_episodes": 8, "checkpoint_every": 15, "log_every": 15,
                "random_return": -25.0, "expert_return": -10.0,
                "wm": {"hidden": 16, "latent": 8, "epochs": 1, "max_steps": 10},
                "macql": {"hidden": 16, "mixer_embed": 4}, "bc": {"hidden": 16}}
    (root / "tiny_mpe.json").write_text(json.dumps(scenario))
    grid = {"scenarios": [str(root / "tiny_mpe.json")], "qualities": ["medium"], "methods": ["bc", "macql+logo"],
            "seeds": [0], "train": {"dataset": str(data), "progress": "log"}, "runs_dir": str(root / "runs"),
            "store": str(root / "runs" / "results.jsonl"), "results_md": str(root / "results.md"), "parallel": 2}
    (root / "grid.json").write_text(json.dumps(grid))
    return root


@pytest.mark.slow
def test_table_runs_each_cell_once_and_renders(tiny_grid, capsys):
    grid_path = tiny_grid / "grid.json"
    assert run_table(TableArgs(config=str(grid_path))) == 0
    store = read_store(tiny_grid / "runs" / "results.jsonl")
    assert sorted(store) == ["tiny_mpe/medium/bc/s0", "tiny_mpe/medium/macql+logo/s0"]
    for rec in store.values():
        assert rec["command"].startswith("logo-fast train --config ")
        assert rec["budget"]["updates"] == 30
        run_dir = tiny_grid / "runs" / "tiny_mpe_medium" / rec["method"].replace("+", "_") / "s0"
        assert (run_dir / "report.json").is_file()
    page = (tiny_grid / "results.md").read_text()
    assert "| BC |" in page and "| MACQL + LOGO |" in page and "| not run |" not in page
    assert "--method bc" in page and "--world-model logo" in page

    # resumable: a second call finds both cells in the store and starts nothing
    capsys.readouterr()
    run_table(TableArgs(config=str(grid_path)))
    assert "2 of 2 cells already" in capsys.readouterr().out
    assert len((tiny_grid / "runs" / "results.jsonl").read_text().splitlines()) == 2


def test_cells_missing_from_the_store_say_not_run(tiny_grid):
    grid = json.loads((tiny_grid / "grid.json").read_text())
    grid["methods"] = ["bc", "macql", "macql+logo"]
    grid["seeds"] = [0, 1]
    path = tiny_grid / "grid_wide.json"
    path.write_text(json.dumps(grid))
    g, cells = load_grid(str(path))
    assert len(cells) == 6
    one = cells[0]
    fake = {one.key: {"key": one.key, "final": {"return_mean": -18.0, "normalised": 46.7, "win_rate": None},
                      "dataset": {"episodes": 18, "steps": 450, "return_mean": -20.0, "return_std": 6.0,
                                  "normalised": 33.3},
                      "references": {"random": -25.0, "expert": -10.0, "expert_source": "given"},
                      "world_model": None, "budget": {"updates": 30, "batch_size": 32, "rollout_starts": 8,
                                                      "horizon": 2, "rollout_every": 15, "real_ratio": 0.5,
                                                      "wm_max_steps": 10, "eval_episodes": 8}, "wall_s": 3.0,
                      "args": resolved_args(one)}}
    page = render(g, cells, fake)
    assert "| BC | -18.000 | 46.7 | — | 1/2 | 3 |" in page
    assert page.count("| not run | not run |") == 2  # MACQL and MACQL + LOGO: no seed was run
    assert page.count("# not run") == 5
    assert "## Notes" not in page
    # the grid's notes (ablations around it) close the page, one paragraph each
    page = render({**g, "notes": ["First *finding*.", "Second."]}, cells, fake)
    assert page.rstrip().endswith("## Notes\n\nFirst *finding*.\n\nSecond.")


def test_bad_grids_are_refused_before_any_run(tiny_grid):
    path = tiny_grid / "bad.json"
    path.write_text(json.dumps({"scenarios": ["nope.json"], "qualities": [], "methods": ["macql+mopo"], "seeds": [0],
                                "extra": 1, "notes": "not a list"}))
    with pytest.raises(ValueError) as err:
        load_grid(str(path))
    msg = str(err.value)
    assert "qualities" in msg and "macql+mopo" in msg and "extra" in msg and "notes" in msg

    # a grid flag equal to the built-in default would not override the scenario file: refused
    grid = json.loads((tiny_grid / "grid.json").read_text())
    grid["train"] = {**grid["train"], "wm": {"max_steps": 3000}}  # built-in default; the file says 10
    path.write_text(json.dumps(grid))
    with pytest.raises(ValueError, match=r"wm\.max_steps=3000 equals the built-in default"):
        load_grid(str(path))


def test_a_method_s_own_flags_merge_over_the_grids(tiny_grid):
    grid = json.loads((tiny_grid / "grid.json").read_text())
    grid["methods"] = ["macql+logo", "macql+logo-abs"]
    grid["train"]["wm"] = {"max_steps": 7}
    path = tiny_grid / "grid_abs.json"
    path.write_text(json.dumps(grid))
    _, cells = load_grid(str(path))
    plain, absolute = (" ".join(c.command) for c in cells)
    # the grid's wm flags stay for both; only the ablation adds its own, and it runs in its own folder
    assert "--wm.max-steps 7" in plain and "--wm.max-steps 7" in absolute
    assert "--wm.deductive-state absolute" in absolute and "deductive-state" not in plain
    assert cells[1].run_dir.parent.name == "macql_logo-abs"


@pytest.mark.slow
def test_a_cell_run_with_other_settings_is_stale_and_runs_again(tiny_grid, capsys):
    """A stored cell whose recorded settings differ from what its command resolves to now (here: it ran
    with the delta state head, as the default did before the hybrid one) is not reused: the page says
    "stale", a dry run lists it, and the table reruns it from scratch and replaces its record."""
    grid = json.loads((tiny_grid / "grid.json").read_text())
    grid.update(methods=["macql+logo"], runs_dir=str(tiny_grid / "runs_stale"),
                store=str(tiny_grid / "runs_stale" / "results.jsonl"))
    grid["train"] = {**grid["train"], "wm": {"deductive_state": "delta"}}
    path = tiny_grid / "grid_stale.json"
    path.write_text(json.dumps(grid))
    assert run_table(TableArgs(config=str(path))) == 0
    store_path = Path(grid["store"])
    (key, rec), = read_store(store_path).items()
    assert rec["args"]["wm"]["deductive_state"] == "delta"
    del grid["train"]["wm"]  # the same cell, now on the default
    path.write_text(json.dumps(grid))
    g, cells = load_grid(str(path))
    fresh, stale = fresh_cells(cells, read_store(store_path))
    assert not fresh and "wm.deductive_state: 'delta' then, 'hybrid' now" in stale[key]
    assert "| MACQL + LOGO | stale | stale |" in render(g, cells, read_store(store_path))
    capsys.readouterr()
    run_table(TableArgs(config=str(path), dry_run=True))
    assert "--world-model logo" in capsys.readouterr().out
    # a record without settings, and no run folder to read them from, is not trusted either
    bare = {k: v for k, v in rec.items() if k != "args"}
    elsewhere = dataclasses.replace(cells[0], run_dir=tiny_grid / "nowhere")
    assert fresh_cells([elsewhere], {key: bare})[1] == {key: "its settings were not recorded"}
    run_table(TableArgs(config=str(path)))
    out = capsys.readouterr().out
    assert f"stale {key}: settings changed" in out and "1 to run" in out
    last = read_store(store_path)[key]
    assert last["args"]["wm"]["deductive_state"] == "hybrid"
    assert "starting over" in (cells[0].run_dir / "log.txt").read_text()  # not resumed from the delta run
    assert "| MACQL + LOGO | stale |" not in (tiny_grid / "results.md").read_text()
