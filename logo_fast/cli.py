"""The ``logo-fast`` command line.

    logo-fast demo                                   the main job on its built-in default (MPE)
    logo-fast collect --env ENV --quality Q --seed S --out PATH
    logo-fast data info PATH
    logo-fast wm eval --dataset PATH --models logo,joint,ensemble --out DIR
    logo-fast backend                                what can run here, and why not

Each command is a dataclass parsed by tyro (``logo-fast CMD --help`` lists every field) and a
run function; modules load only when their command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro


@dataclass(frozen=True)
class _Command:
    module: str
    args_class: str
    run: str
    summary: str


COMMANDS: dict[tuple[str, ...], _Command] = {
    ("demo",): _Command(
        "logo_fast.pipeline.demo", "DemoArgs", "run_demo",
        "collect MPE data, fit LOGO and its baselines, roll out, fill the weighted replay, report",
    ),
    ("collect",): _Command("logo_fast.data.collect", "CollectArgs", "run_collect", "collect an offline dataset"),
    ("data", "info"): _Command("logo_fast.data.info", "InfoArgs", "run_info", "sizes and return statistics"),
    ("wm", "eval"): _Command(
        "logo_fast.model.report", "EvalArgs", "run_eval", "world-model accuracy: LOGO vs its baselines"
    ),
    ("backend",): _Command("logo_fast.backend", "BackendArgs", "run_backend", "available backends and why not"),
}


def _usage() -> str:
    lines = ["usage: logo-fast COMMAND [ARGS]", "", "commands:"]
    for words, cmd in COMMANDS.items():
        lines.append(f"  {' '.join(words):<12} {cmd.summary}")
    lines.append("")
    lines.append("`logo-fast COMMAND --help` lists a command's options.")
    return "\n".join(lines)


def _match(argv: Sequence[str]) -> tuple[tuple[str, ...], _Command] | None:
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, COMMANDS[words]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    found = _match(argv)
    if found is None:
        print(f"logo-fast: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, cmd = found
    module = importlib.import_module(cmd.module)
    args_class = getattr(module, cmd.args_class)
    args = tyro.cli(
        args_class,
        args=argv[len(words):],
        prog=f"logo-fast {' '.join(words)}",
        description=(args_class.__doc__ or cmd.summary).strip(),
    )
    result = getattr(module, cmd.run)(args)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
