"""Summarise a pytest-benchmark JSON of bench/test_bench_sampler.py: ratio table + PNG.

    python bench/plot_sampler.py bench/results/sampler_cpu.json [--out bench/results/sampler_cpu.png]

Prints, for every group and size, each provider's median time and its ratio to logo_fast
(>1 means logo_fast is faster), and checks the project's goals where the data has them (1e7 items):
256 draws >= 100x faster than torch.multinomial; 256 and 4096 draws faster than the NumPy sum tree
and >= 2x faster than cpprb's C++ segment tree; a scattered update of 256 indices no slower than
cpprb's; appending 1e5 items >= 10x cheaper than a full rebuild.
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
    """The sampler issues' goals, where the data has them (1e7 items)."""
    out = []

    def check(text: str, ratio: float, want: float) -> None:
        out.append(f"{text}: {ratio:.2f}x (goal >= {want:g}x): {'MET' if ratio >= want else 'NOT MET'}")

    for draws in (256, 4096):
        s = rows.get(("sample", 10_000_000, draws), {})
        if "logo_fast" in s:
            for prov, want in (("torch_multinomial", 100.0 if draws == 256 else 1.0), ("sumtree_numpy", 1.0),
                               ("cpprb", 2.0)):
                if prov in s:
                    check(f"{draws} draws from 1e7, {prov} time / logo_fast time", s[prov] / s["logo_fast"], want)
    for group in ("update_hot", "update_cold"):
        u = rows.get((group, 10_000_000, None), {})
        if "logo_fast" in u and "cpprb" in u:
            check(f"{group} of 256 indices at 1e7, cpprb time / logo_fast time", u["cpprb"] / u["logo_fast"], 1.0)
    a = rows.get(("append", 10_000_000, None), {})
    f = rows.get(("fill", 10_000_000, None), {})
    if "logo_fast" in a and "logo_fast" in f:
        check("append 1e5 into 1e7 vs a full rebuild (fill) of logo_fast", f["logo_fast"] / a["logo_fast"], 10.0)
    if "logo_fast" in a and "torch_cumsum_rebuild" in a:
        check("append 1e5 into 1e7 vs a torch cumsum rebuild", a["torch_cumsum_rebuild"] / a["logo_fast"], 10.0)
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
