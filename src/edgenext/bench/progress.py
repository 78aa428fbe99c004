"""Progress of a bench phase: a tqdm bar on a terminal, and log lines where there is none (a
log file, CI), so a long run says how far it is and about how long is left either way."""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

log = logging.getLogger("edgenext.bench")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PhaseProgress:
    """``with PhaseProgress(total, "timing", "run") as bar: ... bar.update()``: done / total and an
    estimate of the time left from the mean time per step so far."""

    def __init__(self, total: int, phase: str, unit: str, *, terminal: Optional[bool] = None) -> None:
        self.total, self.phase, self.unit = total, phase, unit
        self.done = 0
        self.start = time.monotonic()
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self._bar = None
        if terminal:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=f"bench {phase}", unit=unit, leave=False)
        # without a terminal: a line per step for a short phase, else about every tenth
        self._every = max(1, total // 10) if total > 12 else 1
        self._postfix = ""

    def __enter__(self) -> "PhaseProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def estimate_left(self) -> Optional[float]:
        """Seconds left at the mean pace so far (None before the first step)."""
        if not self.done:
            return None
        return (time.monotonic() - self.start) / self.done * (self.total - self.done)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.done % self._every == 0 or self.done == self.total:
            left = self.estimate_left()
            log.info("%s: %d/%d %ss, %s elapsed, about %s left (last: %s)", self.phase, self.done, self.total,
                     self.unit, _duration(time.monotonic() - self.start), _duration(left or 0.0), self._postfix)
