"""logo_fast.progress: a bar on a terminal, plain periodic lines in a pipe, nothing when quiet."""

from __future__ import annotations

import io
import time

import pytest

from logo_fast.progress import progress, progress_mode


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_pipe_gets_lines_not_frames(monkeypatch):
    monkeypatch.delenv("LOGO_FAST_PROGRESS", raising=False)
    out = _Stream(tty=False)
    assert progress_mode(out) == "lines"
    total = 0
    for i in progress(range(20), desc="fit", unit="step", interval_s=0, file=out):
        total += i
    assert total == sum(range(20))
    text = out.getvalue()
    assert "\r" not in text and "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0].startswith("fit: 0/20 step") and lines[-1].startswith("fit: 20/20 step")
    assert len(lines) >= 10  # interval 0: a line per update, each a whole line


def test_interval_limits_the_lines(monkeypatch):
    monkeypatch.delenv("LOGO_FAST_PROGRESS", raising=False)
    out = _Stream(tty=False)
    bar = progress(1000, desc="collect", unit="ep", interval_s=3600, file=out)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("collect: 1000/1000 ep"), lines  # start and final line


def test_terminal_gets_a_bar_and_quiet_gets_nothing(monkeypatch):
    monkeypatch.delenv("LOGO_FAST_PROGRESS", raising=False)
    tty = _Stream(tty=True)
    assert progress_mode(tty) == "bar"
    for _ in progress(range(5), desc="x", file=tty, leave=True):
        time.sleep(0)
    assert "\r" in tty.getvalue()
    quiet = _Stream(tty=False)
    assert list(progress(range(3), desc="x", quiet=True, file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""


def test_mode_override_and_bad_values(monkeypatch):
    monkeypatch.setenv("LOGO_FAST_PROGRESS", "off")
    out = _Stream(tty=True)
    list(progress(range(3), file=out))
    assert out.getvalue() == ""
    monkeypatch.setenv("LOGO_FAST_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="LOGO_FAST_PROGRESS must be one of"):
        progress(range(3), file=out)
    monkeypatch.setenv("LOGO_FAST_PROGRESS", "lines")
    with pytest.raises(ValueError, match="interval_s must be"):
        progress(range(3), interval_s=-1, file=out)
