"""One progress helper for every long-running command: a live bar on a terminal, log lines in a pipe.

    from logo_fast.progress import progress

    for batch in progress(loader, desc="fit logo", unit="step", quiet=args.quiet):
        ...
    bar = progress(total=n_steps, desc="collect", unit="step")   # or progress(n_steps, ...)
    bar.update(25); bar.set_postfix(loss=0.1); bar.close()       # it is a tqdm object

On a terminal it is a normal tqdm bar (carriage-return frames). When the stream is not a
terminal (a pipe, a log file, CI) the frames would pile up as ~KB/s of ``\\r`` garbage, so it
prints instead one plain line every ``interval_s`` seconds (default 30, or
``$LOGO_FAST_PROGRESS_INTERVAL``) plus a final line when it closes::

    collect expert: 512/1000 step [00:30<00:28, 17.1 step/s]

``quiet=True`` prints nothing. ``$LOGO_FAST_PROGRESS`` = ``bar`` | ``lines`` | ``off`` forces a
mode (default: ``bar`` on a terminal, else ``lines``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

__all__ = ["progress", "progress_mode"]

DEFAULT_INTERVAL_S = 30.0
_MODES = ("bar", "lines", "off")
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves tqdm writes for stacked bars


class _LineWriter:
    """A file for tqdm that turns each carriage-return frame into one plain line; blank frames vanish."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, s: str) -> int:
        for part in re.split(r"[\r\n]", _CONTROL.sub("", s)):
            part = part.strip()
            if part:
                self.stream.write(part + "\n")
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def progress_mode(stream: IO[str] | None = None) -> str:
    """``bar``, ``lines`` or ``off``: ``$LOGO_FAST_PROGRESS`` if set, else bar on a terminal, lines otherwise."""
    forced = os.environ.get("LOGO_FAST_PROGRESS", "").strip().lower()
    if forced:
        if forced not in _MODES:
            raise ValueError(f"LOGO_FAST_PROGRESS must be one of {_MODES}, got {forced!r}")
        return forced
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def _interval(interval_s: float | None) -> float:
    if interval_s is not None:
        value, source = interval_s, "interval_s"
    else:
        value, source = os.environ.get("LOGO_FAST_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S), "LOGO_FAST_PROGRESS_INTERVAL"
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{source} must be a number of seconds >= 0, got {value!r}")
    return value


def progress(
    iterable: Iterable[Any] | int | None = None,
    desc: str = "",
    quiet: bool = False,
    *,
    total: int | float | None = None,
    unit: str = "it",
    leave: bool = False,
    interval_s: float | None = None,
    file: IO[str] | None = None,
) -> tqdm:
    """A tqdm progress bar over ``iterable`` (or a manual one of ``total`` steps) that behaves in pipes.

    iterable:   what to iterate, or an int (the total, for a manual bar driven by ``update``)
    desc:       label in front of the numbers
    quiet:      print nothing (the returned object still iterates and counts)
    total:      number of steps when ``iterable`` has no ``len`` (or for a manual bar)
    unit:       what one step is ("step", "ep", "epoch")
    leave:      keep the final bar on a terminal (in line mode the final line is always kept)
    interval_s: seconds between lines when not on a terminal (default 30)
    file:       stream to write to (default stderr)
    """
    if isinstance(iterable, int) and not isinstance(iterable, bool):
        total, iterable = iterable, None
    stream = sys.stderr if file is None else file
    mode = "off" if quiet else progress_mode(stream)
    if mode == "off":
        return tqdm(iterable, total=total, disable=True)
    if mode == "bar":
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream)
    every = _interval(interval_s)
    counts = "{n_fmt}/{total_fmt}" if total is not None or hasattr(iterable, "__len__") else "{n_fmt}"
    timing = "[{elapsed}<{remaining}, {rate_fmt}{postfix}]" if "total" in counts else "[{elapsed}, {rate_fmt}{postfix}]"
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=True,
        file=_LineWriter(stream),
        mininterval=every,
        maxinterval=max(every, 10.0),
        miniters=1,
        ascii=True,
        dynamic_ncols=False,
        bar_format="{desc}: " + counts + " " + "{unit} " + timing if desc else counts + " {unit} " + timing,
    )
