"""Builds logo_fast._C: one pybind11 extension with a C++ CPU path and, where nvcc is found, a CUDA path.

The extension includes no torch headers (it takes raw pointers, sizes and a CUDA stream), so one
build serves torch 2.11-2.14 and builds in seconds. Metadata lives in pyproject.toml.

Environment:
  LOGO_FAST_CUDA        auto (default): compile csrc/*.cu when nvcc is found, else CPU-only;
                        0: CPU-only; 1: CUDA required, a failing nvcc is an error.
  LOGO_FAST_CUDA_ARCHS  semicolon-separated SM versions, default "80;90".
  MAX_JOBS              parallel compile jobs (C++ and nvcc), default: CPU count.
  CUDA_HOME             where to look for nvcc and the CUDA runtime before PATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from pybind11.setup_helpers import build_ext as Pybind11BuildExt
from setuptools import setup

ROOT = Path(__file__).parent.resolve()
CSRC = ROOT / "csrc"


def _log(msg: str) -> None:
    print(f"[logo_fast build] {msg}", file=sys.stderr, flush=True)


def _max_jobs() -> int:
    try:
        return max(1, int(os.environ.get("MAX_JOBS", "") or os.cpu_count() or 1))
    except ValueError:
        raise SystemExit(f"MAX_JOBS must be an integer, got {os.environ['MAX_JOBS']!r}") from None


def _find_nvcc() -> tuple[str | None, Path | None]:
    """-> (nvcc path, CUDA root holding the static runtime) or (None, None)."""
    nvccs, roots = [], []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            nvccs.append(Path(os.environ[var]) / "bin" / "nvcc")
            roots.append(Path(os.environ[var]))
    if shutil.which("nvcc"):
        nvccs.append(Path(shutil.which("nvcc")))
    nvccs.append(Path("/usr/local/cuda/bin/nvcc"))
    nvcc = next((c for c in nvccs if c.is_file() and os.access(c, os.X_OK)), None)
    if nvcc is None:
        return None, None
    # nvcc on PATH may be a wrapper outside the toolkit; look for the runtime where it really is.
    roots += [nvcc.resolve().parent.parent, Path("/usr/local/cuda")]
    for root in roots:
        if any((root / d / "libcudart_static.a").is_file() for d in ("lib64", "lib", "targets/x86_64-linux/lib")):
            return str(nvcc), root
    return str(nvcc), None


def _cuda_archs() -> list[str]:
    raw = os.environ.get("LOGO_FAST_CUDA_ARCHS", "80;90")
    archs = [a.strip().replace(".", "") for a in raw.replace(",", ";").split(";") if a.strip()]
    bad = [a for a in archs if not a.isdigit()]
    if bad or not archs:
        raise SystemExit(f"LOGO_FAST_CUDA_ARCHS must list SM versions like '80;90', got {raw!r}")
    return archs


class BuildExt(Pybind11BuildExt):
    """build_ext that first compiles csrc/*.cu with nvcc and links the objects into _C."""

    def build_extension(self, ext):
        mode = os.environ.get("LOGO_FAST_CUDA", "auto").strip().lower()
        if mode not in ("auto", "0", "1"):
            raise SystemExit(f"LOGO_FAST_CUDA must be auto, 0 or 1, got {mode!r}")
        cu_sources = sorted(CSRC.glob("*.cu"))
        cuda_built = False
        reason = ""
        if mode == "0":
            reason = "LOGO_FAST_CUDA=0"
        elif not cu_sources:
            reason = "no .cu sources"
        else:
            nvcc, cuda_root = _find_nvcc()
            if nvcc is None:
                reason = "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
                if mode == "1":
                    raise SystemExit(f"LOGO_FAST_CUDA=1 but {reason}")
            else:
                try:
                    objects = self._compile_cuda(nvcc, cu_sources)
                except subprocess.CalledProcessError as err:
                    if mode == "1":
                        raise SystemExit(f"LOGO_FAST_CUDA=1 and nvcc failed: {err}") from err
                    reason = f"nvcc failed ({err}); see the compiler output above"
                else:
                    ext.extra_objects += objects
                    if cuda_root is not None:
                        ext.library_dirs += [
                            str(cuda_root / d) for d in ("lib64", "lib", "targets/x86_64-linux/lib")
                            if (cuda_root / d / "libcudart_static.a").is_file()
                        ]
                    # Static cudart: the .so then needs only the driver (libcuda) at run time, so
                    # it imports on machines with no CUDA toolkit and works with any torch build.
                    ext.libraries += ["cudart_static", "dl", "rt", "pthread"]
                    ext.define_macros.append(("LOGO_FAST_WITH_CUDA", "1"))
                    cuda_built = True
        archs = ";".join(_cuda_archs()) if cuda_built else ""
        ext.define_macros.append(("LOGO_FAST_CUDA_ARCHS", f'"{archs}"'))
        # setuptools reuses a C++ object when it is newer than its source, even when the macros
        # changed (a CPU-only object would then be linked with the CUDA path): force a rebuild
        # whenever the macro set differs from the last build's.
        stamp = Path(self.build_temp) / "logo_fast_macros.txt"
        macros = repr(sorted(ext.define_macros))
        if not stamp.is_file() or stamp.read_text() != macros:
            self.force = True
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(macros)
        if cuda_built:
            _log(f"CUDA path compiled for sm_{archs.replace(';', ', sm_')}")
        else:
            _log(f"CUDA path skipped: {reason}; building the CPU path only")
        super().build_extension(ext)

    def _compile_cuda(self, nvcc: str, sources: list[Path]) -> list[str]:
        out_dir = Path(self.build_temp) / "cuda"
        out_dir.mkdir(parents=True, exist_ok=True)
        gencode = []
        for a in _cuda_archs():
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        # PTX for the newest arch too, so a newer GPU can JIT it.
        newest = _cuda_archs()[-1]
        gencode += ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]
        flags = [
            "-O3",
            "-lineinfo",  # compute-sanitizer and ncu name source lines; no effect on the code
            "-std=c++17",
            "-Xcompiler",
            "-fPIC",
            "-DLOGO_FAST_WITH_CUDA=1",
            f"-I{CSRC}",
            "--expt-relaxed-constexpr",
            *gencode,
        ]

        # The object's name carries the flags (archs included) and nvcc's path: an object built for
        # other archs or flags is never reused.
        key = hashlib.sha256("\0".join([nvcc, *flags]).encode()).hexdigest()[:12]

        def compile_one(src: Path) -> str:
            obj = out_dir / f"{src.stem}-{key}.o"
            if obj.exists() and obj.stat().st_mtime > max(
                src.stat().st_mtime, *(h.stat().st_mtime for h in CSRC.glob("*.h"))
            ):
                return str(obj)
            cmd = [nvcc, *flags, "-c", str(src), "-o", str(obj)]
            _log(" ".join(cmd))
            subprocess.run(cmd, check=True)
            return str(obj)

        with ThreadPoolExecutor(max_workers=_max_jobs()) as pool:
            return list(pool.map(compile_one, sources))


ParallelCompile("MAX_JOBS", default=0).install()

ext_modules = [
    Pybind11Extension(
        "logo_fast._C",
        sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.cpp")),
        include_dirs=[str(CSRC)],
        cxx_std=17,
        # Threads come from std::thread, not OpenMP: torch wheels bundle their own libgomp and
        # two OpenMP runtimes in one process is a known source of hangs.
        extra_compile_args=["-O3", "-pthread"],
        extra_link_args=["-pthread"],
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
