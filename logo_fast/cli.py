"""The ``logo-fast`` command line.

    logo-fast demo                                   the main job on its built-in default (MPE)
    logo-fast collect --env ENV --quality Q --seed S --out PATH
    logo-fast data info PATH
    logo-fast wm eval --dataset PATH --models logo,joint,ensemble --seeds 0,1,2 --out DIR
    logo-fast train --config FILE                    one offline learner run (dataset, world model, MACQL/BC)
    logo-fast table --config FILE                    the comparison grid, docs/results.md
    logo-fast backend                                what can run here, and why not
    logo-fast --version

Each command is a dataclass parsed by tyro (``logo-fast CMD --help`` lists every field) and a
run function; modules load only when their command runs, so ``--help`` stays fast.

Errors: bad values (a ValueError, a missing file, an unavailable backend, ...) print one
``logo-fast CMD: error: MESSAGE`` to stderr and exit with status 2, like tyro's own parse
errors; ``--traceback`` (anywhere on the line) or ``LOGO_FAST_DEBUG=1`` also prints the
traceback. Ctrl-C exits with 130 and SIGTERM with 143, after the command's temp files are
removed (both arrive as exceptions, so every atomic writer cleans up on the way out). Anything
else is a bug and shows its full traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tyro

from . import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


@dataclass(frozen=True)
class _Command:
    module: str
    """Module that defines the command (imported only when the command runs)."""
    args_class: str
    """Name of its arguments dataclass, parsed by tyro."""
    run: str
    """Name of its run function: takes the parsed arguments; an int result is the exit status."""
    summary: str
    """One line for the command list."""


COMMANDS: dict[tuple[str, ...], _Command] = {
    ("demo",): _Command(
        "logo_fast.pipeline.demo", "DemoArgs", "run_demo",
        "the default job: MPE data, LOGO + MACQL vs MACQL vs BC vs the behaviour data, a report",
    ),
    ("train",): _Command(
        "logo_fast.pipeline.train", "TrainArgs", "run_train",
        "train MACQL/BC on real + world-model data, evaluate in the real environment",
    ),
    ("table",): _Command(
        "logo_fast.pipeline.table", "TableArgs", "run_table", "run the comparison grid, render docs/results.md"
    ),
    ("collect",): _Command("logo_fast.data.collect", "CollectArgs", "run_collect", "collect an offline dataset"),
    ("data", "info"): _Command(
        "logo_fast.data.info", "InfoArgs", "info_main", "sizes, return statistics and validation of a dataset"
    ),
    ("data", "behaviour"): _Command(
        "logo_fast.data.policies.train", "BehaviourArgs", "run_behaviour",
        "train (or resume) a scenario's behaviour policy and export it to the policy zoo",
    ),
    ("wm", "eval"): _Command(
        "logo_fast.model.report", "EvalArgs", "run_eval", "world-model accuracy: LOGO vs its baselines"
    ),
    ("backend",): _Command("logo_fast.backend", "BackendArgs", "run_backend", "available backends and why not"),
}

# Command groups ("data", "wm"): the first word of the two-word commands.
GROUPS: dict[str, list[tuple[str, ...]]] = {}
for _words in COMMANDS:
    if len(_words) == 2:
        GROUPS.setdefault(_words[0], []).append(_words)


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so context managers and ``finally`` blocks run."""


def _usage() -> str:
    lines = ["usage: logo-fast COMMAND [ARGS]", "", "commands:"]
    for words, cmd in COMMANDS.items():
        lines.append(f"  {' '.join(words):<12} {cmd.summary}")
    lines += [
        "",
        "`logo-fast COMMAND --help` lists a command's options; `logo-fast --version` prints the version.",
        "On an error, `--traceback` or LOGO_FAST_DEBUG=1 also prints the traceback.",
    ]
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    lines = [f"usage: logo-fast {group} SUBCOMMAND [ARGS]", "", "subcommands:"]
    for words in GROUPS[group]:
        lines.append(f"  {words[1]:<12} {COMMANDS[words].summary}")
    lines += ["", f"`logo-fast {group} SUBCOMMAND --help` lists a subcommand's options."]
    return "\n".join(lines)


def _match(argv: Sequence[str]) -> tuple[tuple[str, ...], _Command] | None:
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, COMMANDS[words]
    return None


def plain(text: str) -> str:
    """Help text without reST/Markdown inline markup: ``x`` and `x` become x."""
    return re.sub(r"``([^`]+)``|`([^`]+)`", lambda m: m.group(1) or m.group(2), text)


def _debug_requested(argv: list[str]) -> bool:
    return "--traceback" in argv or os.environ.get("LOGO_FAST_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _flags(args_class: type, prefix: str = "") -> dict[str, str]:
    """Field name (and dotted path for nested configs) -> the tyro flag that sets it."""
    out: dict[str, str] = {}
    if not dataclasses.is_dataclass(args_class):
        return out
    for f in dataclasses.fields(args_class):
        path = f"{prefix}{f.name}"
        out[path] = "--" + path.replace("_", "-")
        nested = f.type if isinstance(f.type, type) else None
        if nested is None and f.default_factory is not dataclasses.MISSING:
            nested = type(f.default_factory())
        elif nested is None and dataclasses.is_dataclass(f.default):
            nested = type(f.default)
        if nested is not None and dataclasses.is_dataclass(nested):
            for name, flag in _flags(nested, path + ".").items():
                out.setdefault(name, flag)
                out.setdefault(name.rsplit(".", 1)[-1], flag)  # messages name the bare field
    return out


def _name_options(message: str, args_class: type | None) -> str:
    """Lines of ``message`` that start with a field name get the option's flag: 'n_episodes must...' ->
    '--n-episodes must...'. Only at the start of a line (or of a '- ' list item), where the
    project's messages name the field, so ordinary words are never rewritten."""
    flags = _flags(args_class) if args_class is not None else {}
    if not flags:
        return message
    names = sorted(flags, key=len, reverse=True)
    pattern = re.compile(r"^(\s*(?:- )?)(" + "|".join(re.escape(n) for n in names) + r")\b(?![.(\[])", re.M)
    return pattern.sub(lambda m: m.group(1) + flags[m.group(2)], message)


def _user_error(err: BaseException) -> bool:
    """Errors that mean bad input or environment (shown as one message), not a bug (shown as a traceback)."""
    if isinstance(err, ValueError | OSError):
        return True
    backend = sys.modules.get("logo_fast.backend")
    return backend is not None and isinstance(err, backend.BackendUnavailableError)


def _device_values(args: Any, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    if not dataclasses.is_dataclass(args):
        return out
    for f in dataclasses.fields(args):
        value = getattr(args, f.name, None)
        if f.name == "device" and isinstance(value, str):
            out.append((f"{prefix}{f.name}", value))
        elif dataclasses.is_dataclass(value):
            out += _device_values(value, f"{prefix}{f.name}.")
    return out


def _check_devices(args: Any) -> None:
    """A CUDA device requested where none can run: one clear ValueError before any work."""
    wanted = [(name, value) for name, value in _device_values(args) if value.strip().lower().startswith("cuda")]
    if not wanted:
        return
    import torch  # only when a CUDA device is asked for: plain commands stay fast

    if torch.cuda.is_available():
        return
    name, value = wanted[0]
    flag = "--" + name.replace("_", "-")
    if torch.version.cuda is None:
        why = f"this torch build ({torch.__version__}) has no CUDA support"
    else:
        why = f"no CUDA GPU is visible to torch {torch.__version__}"
    raise ValueError(f"{flag} {value}: {why}; use {flag} cpu")


def _run(words: tuple[str, ...], cmd: _Command, argv: list[str], prog: str, holder: dict[str, Any]) -> int:
    module = importlib.import_module(cmd.module)
    args_class = getattr(module, cmd.args_class)
    holder["args_class"] = args_class
    args = tyro.cli(
        args_class,
        args=argv[len(words):],
        prog=prog,
        description=plain(inspect.cleandoc(args_class.__doc__ or cmd.summary)),
    )
    _check_devices(args)
    result = getattr(module, cmd.run)(args)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`logo-fast ... | head`): not an error worth a message. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    argv = [a for a in argv if a != "--traceback"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"logo-fast {__version__}")
        return 0
    found = _match(argv)
    if found is None:
        if argv[0] in GROUPS:
            if len(argv) == 1 or argv[1] in ("-h", "--help"):
                print(_group_usage(argv[0]))
                return 0
            print(f"logo-fast {argv[0]}: unknown subcommand {argv[1]!r}\n\n{_group_usage(argv[0])}", file=sys.stderr)
            return EXIT_USAGE
        print(f"logo-fast: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    words, cmd = found
    prog = f"logo-fast {' '.join(words)}"
    holder: dict[str, Any] = {}
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return _run(words, cmd, argv, prog, holder)
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        if debug:
            traceback.print_exc()
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as err:
        if not _user_error(err):
            raise
        if debug:
            traceback.print_exc()
        message = _name_options(str(err) or type(err).__name__, holder.get("args_class"))
        print(f"{prog}: error: {message}", file=sys.stderr)
        if not debug:
            print(f"({prog} --traceback shows where)", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
