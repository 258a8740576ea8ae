"""``logo-fast train`` under torchrun, with every write a rank other than 0 makes under ``--out`` recorded.

Run as ``torchrun --standalone --nproc-per-node 2 tests/distributed/_train_job.py train --config CFG --out OUT``;
each rank r > 0 writes the list of paths it opened for writing (or renamed into) under OUT to
``OUT/../writes_rank{r}.json`` (the test expects it empty: only rank 0 writes the run folder).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import sys
from pathlib import Path


def _guard(out: Path, writes: list[str]) -> None:
    real_open, real_replace, real_rename = builtins.open, os.replace, os.rename

    def inside(p) -> bool:
        try:
            return Path(os.fspath(p)).resolve().is_relative_to(out)
        except TypeError:  # a file descriptor
            return False

    def open_(file, mode="r", *a, **kw):
        if any(c in mode for c in "wax+") and inside(file):
            writes.append(f"open {file} {mode}")
        return real_open(file, mode, *a, **kw)

    def replace(src, dst, *a, **kw):
        if inside(dst):
            writes.append(f"replace {dst}")
        return real_replace(src, dst, *a, **kw)

    def rename(src, dst, *a, **kw):
        if inside(dst):
            writes.append(f"rename {dst}")
        return real_rename(src, dst, *a, **kw)

    builtins.open = io.open = open_
    os.replace, os.rename = replace, rename


def main(argv: list[str]) -> int:
    from logo_fast.cli import main as cli_main

    out = Path(argv[argv.index("--out") + 1]).resolve()
    rank = int(os.environ["RANK"])
    writes: list[str] = []
    if rank:
        _guard(out, writes)
    rc = cli_main(argv)
    if rank:
        Path(out.parent / f"writes_rank{rank}.json").write_text(json.dumps(writes))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
