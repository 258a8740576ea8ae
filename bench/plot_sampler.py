"""Summarise a pytest-benchmark JSON of bench/test_bench_sampler.py: ratio table + PNG.

    python bench/plot_sampler.py bench/results/sampler_cpu.json [--out bench/results/sampler_cpu.png]

Prints, for every group and size, each provider's median time and its ratio to logo_fast
(>1 means logo_fast is faster), and checks the project's goals where the data has them:
256 draws from 1e7 unchanged weights >= 100x faster than torch.multinomial and faster than the
sum tree; appending 1e5 items >= 10x cheaper than rebuilding the whole CDF.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    rows = defaultdict(dict)  # (group, N, draws) -> provider -> median seconds
    for b in data["benchmarks"]:
        e = b["extra_info"]
        rows[(e["group"], e["N"], e["draws"])][e["provider"]] = b["stats"]["median"]
    return {"rows": rows, "machine": data.get("machine_info", {}), "datetime": data.get("datetime", "")}


def table(rows: dict) -> list[str]:
    lines = []
    for (group, N, draws), by in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        base = by.get("logo_fast")
        head = f"{group:<27} N={N:<10.0e}" + (f" draws={draws:<6}" if draws else " " * 13)
        parts = []
        for prov, t in sorted(by.items(), key=lambda kv: kv[1]):
            ratio = f" ({t / base:.1f}x)" if base and prov != "logo_fast" else ""
            parts.append(f"{prov}={t * 1e3:.3f}ms{ratio}")
        lines.append(head + "  " + ", ".join(parts))
    return lines


def goals(rows: dict) -> list[str]:
    out = []
    s = rows.get(("sample", 10_000_000, 256), {})
    if "logo_fast" in s:
        for prov, want in (("torch_multinomial", 100.0), ("sumtree_numpy", 1.0)):
            if prov in s:
                r = s[prov] / s["logo_fast"]
                out.append(f"256 draws from 1e7: {r:.1f}x faster than {prov} (goal > {want:g}x): "
                           f"{'MET' if r > want else 'NOT MET'}")
    a = rows.get(("append", 10_000_000, None), {})
    if "logo_fast" in a:
        for prov in ("torch_cumsum_rebuild", "logo_fast_full_rebuild"):
            if prov in a:
                r = a[prov] / a["logo_fast"]
                out.append(f"append 1e5 into 1e7: {r:.1f}x cheaper than {prov} (goal >= 10x): "
                           f"{'MET' if r >= 10 else 'NOT MET'}")
    return out


def plot(rows: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({g for g, _, _ in rows})
    all_providers = sorted({p for by in rows.values() for p in by})
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(all_providers)}  # same colour everywhere
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        keys = sorted(k for k in rows if k[0] == group)
        draws_levels = sorted({d for _, _, d in keys if d}) or [None]
        d = 256 if 256 in draws_levels else draws_levels[0]
        sizes = sorted({N for g, N, dd in keys if dd == d})
        providers = sorted({p for k in keys for p in rows[k]})
        for prov in providers:
            xs = [N for N in sizes if prov in rows[(group, N, d)]]
            ax.plot(xs, [rows[(group, N, d)][prov] * 1e3 for N in xs], marker="o", label=prov, color=colors[prov],
                    linewidth=2.5 if prov == "logo_fast" else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items N")
        ax.set_ylabel("median time (ms)")
        ax.set_title(group + (f" (draws={d})" if d else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    # Written next to the target, then renamed: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default: next to the JSON)")
    args = ap.parse_args()
    data = load(args.json)
    for line in table(data["rows"]):
        print(line)
    for line in goals(data["rows"]):
        print(line)
    cpu = data["machine"].get("cpu", {}).get("brand_raw", "")
    out = args.out or args.json.with_suffix(".png")
    plot(data["rows"], out, f"logo_fast weighted sampling ({cpu or 'unknown CPU'}; {data['datetime'][:19]})")
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
