"""Render the README's world-model accuracy table from bench/results/wm_accuracy/*/report.json (seed summaries).

    python scripts/wm_table.py [bench/results/wm_accuracy]

One row per (dataset, model): mean ± std over seeds of the one-step state nMSE, obs nMSE,
Spearman(u, state error), the open-loop state nMSE at h = 1 / 5 / 15 and the step time; then,
per dataset, the ratios the world-model goals name (LOGO vs joint, LOGO vs ensemble).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("mpe_spread_medium", "hopper_3x1_medium", "halfcheetah_6x1_medium", "smax_2s3z_medium", "smax_3s_vs_5z_medium",
         "smax_5m_vs_6m_medium")


def pm(s: dict, digits: int = 2) -> str:
    if s.get("mean") is None:
        return "—"
    return f"{s['mean']:.{digits}g} ± {s['std']:.2g}"


def curve(m: dict, h: int) -> str:
    c = m["open_loop"]["state_nmse"]
    return f"{c['mean'][h - 1]:.2g}" if h - 1 < len(c["mean"]) else "—"


def main(root: str = "bench/results/wm_accuracy") -> None:
    rows = ["| data | model | params | state nMSE | obs nMSE | ρ(u, err) | state nMSE h=1 / 5 / 15 | step ms/1k |",
            "|---|---|---|---|---|---|---|---|"]
    goals = ["| data | seeds | LOGO / joint one-step | LOGO / ensemble one-step | LOGO / joint h=15 "
             "| ρ LOGO vs ensemble | LOGO step / ensemble step |", "|---|---|---|---|---|---|---|"]
    dirs = [Path(root) / n for n in ORDER if (Path(root) / n / "report.json").is_file()]
    for d in dirs:
        r = json.loads((d / "report.json").read_text())
        if "seeds" not in r:
            continue
        env = r["dataset"]["env"]
        for i, (name, m) in enumerate(r["models"].items()):
            o = m["one_step"]
            rows.append(f"| {env if i == 0 else ''} | {name} | {m['n_parameters'] / 1e3:.0f}k | {pm(o['state_nmse'])} "
                        f"| {pm(o['obs_nmse'])} | {pm(o['spearman_u_state_error'])} "
                        f"| {curve(m, 1)} / {curve(m, 5)} / {curve(m, 15)} | {pm(m['step_ms_per_1k_rows'])} |")
        ms = r["models"]
        if {"logo", "joint", "ensemble"} <= set(ms):
            def ratio(a, b, ms=ms):
                return ms[a]["one_step"]["state_nmse"]["mean"] / ms[b]["one_step"]["state_nmse"]["mean"]
            curves = {k: ms[k]["open_loop"]["state_nmse"]["mean"] for k in ("logo", "joint")}
            h15 = curves["logo"][-1] / curves["joint"][-1]
            rl, re = (ms[k]["one_step"]["spearman_u_state_error"]["mean"] for k in ("logo", "ensemble"))
            step = ms["logo"]["step_ms_per_1k_rows"]["mean"] / ms["ensemble"]["step_ms_per_1k_rows"]["mean"]
            goals.append(f"| {env} | {len(r['seeds'])} | {ratio('logo', 'joint'):.2f} "
                         f"| {ratio('logo', 'ensemble'):.2f} "
                         f"| {h15:.2f} | {rl:.2f} vs {re:.2f} | {step:.2f} |")
    print("\n".join(rows))
    print()
    print("\n".join(goals))


if __name__ == "__main__":
    main(*sys.argv[1:])
