"""Ahead-of-time compile every Triton kernel for a GPU target, with no GPU (used by CI).

    python -m logo_fast.kernels.aot --arch 90 [--only logo_step local_predict] [--jobs 2] [--json]

prints one line per configuration with registers, spills and shared memory as cuobjdump reports
them, and exits non-zero when a kernel fails to compile, spills registers, or needs more shared
memory than the target has. Needs TRITON_INTERPRET unset (the interpreter cannot compile).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SMEM_LIMIT = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}  # bytes per block


def _resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers, spills (LOCAL) and static shared memory of a cubin, as cuobjdump reports them.
    The cubin is the one Triton built with its own ptxas, so this is what the GPU would run."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        out = subprocess.run([str(tool), "-res-usage", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot read cuobjdump output:\n{out}")
    reg, stack, shared, local = (int(x) for x in m.groups())
    return {"registers": reg, "stack_bytes": stack, "static_shared_bytes": shared, "spill_bytes": local}


def _compile_one(name: str, index: int, arch: int) -> dict:
    """Compile configuration ``index`` of module ``name``'s ``aot_specs()`` (run in a worker process)."""
    import triton
    from triton.backends.compiler import GPUTarget

    module = importlib.import_module(f"{__package__}.{name}")
    spec = module.aot_specs()[index]
    src = triton.compiler.ASTSource(fn=spec["fn"], signature=spec["signature"], constexprs=spec["constexprs"])
    options = {"num_warps": spec["num_warps"]} if "num_warps" in spec else None
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    usage = _resource_usage(compiled.asm["cubin"])
    return {
        "kernel": f"{name}.{spec['fn'].fn.__name__}",
        "dtypes": {k: v for k, v in spec["signature"].items() if v.startswith("*")},
        "constexprs": spec["constexprs"],
        **({"shape": spec["shape"]} if "shape" in spec else {}),
        "arch": arch,
        **usage,
        "shared_bytes": int(compiled.metadata.shared),
        "num_warps": int(compiled.metadata.num_warps),
    }


def compile_all(arch: int = 90, modules: tuple[str, ...] | None = None, jobs: int | None = None) -> list[dict]:
    """Compile every ``aot_specs()`` configuration of ``modules`` (default: all kernel modules) for sm_``arch``.

    ``jobs`` worker processes compile in parallel (default: the CPU count, at most 4); a compile
    of the fused LOGO step takes about 10 s on one core.
    """
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter cannot compile for a GPU target")
    from . import KERNEL_MODULES

    work = []
    for name in modules or KERNEL_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        work += [(name, i) for i in range(len(module.aot_specs()))]
    jobs = jobs or min(4, os.cpu_count() or 1)
    if jobs <= 1:
        return [_compile_one(name, i, arch) for name, i in work]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold Triton/torch state that forked children must not share
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_compile_one, name, i, arch) for name, i in work]
        return [f.result() for f in futures]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile processes (default: CPUs, <= 4)")
    parser.add_argument("--only", nargs="*", default=None, help="kernel modules to compile (default: all)")
    args = parser.parse_args()
    results = compile_all(args.arch, tuple(args.only) if args.only else None, args.jobs)
    limit = SMEM_LIMIT.get(args.arch, 99 * 1024)
    bad = [r for r in results if r["spill_bytes"] > 0 or r["shared_bytes"] > limit or r["registers"] > 255]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            where = r.get("shape", r["constexprs"])
            dtype = next(iter(r["dtypes"].values()), "")
            print(f"{r['kernel']:<55} {dtype:<6} {where} regs={r['registers']} spill={r['spill_bytes']}B "
                  f"smem={r['shared_bytes']}B warps={r['num_warps']}")
    if bad:
        print(f"{len(bad)} configuration(s) spill or exceed sm_{args.arch} limits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
