"""A console progress bar: the default listener outside notebooks."""
from __future__ import annotations

import sys
import time

from .events import Listener

__all__ = ["ConsoleProgress"]


class ConsoleProgress(Listener):
    """Prints epoch progress, loss, records/s and ETA; one line per epoch and per validation.

    On a terminal the current line is redrawn at most ``refresh`` times a second; elsewhere
    (logs, CI) only the end-of-epoch lines are printed.
    """

    def __init__(self, stream=None, refresh=4.0, width=24):
        self.stream = stream
        self.refresh, self.width = float(refresh), int(width)
        self._last = 0.0
        self._epoch_start = None

    def _out(self):
        return self.stream or sys.stdout

    def on_start(self, optimizer):
        self._epoch_start = time.time()
        self._rate = None

    def _line(self, e, took=None):
        s = e.state
        total = max(s.records_per_epoch, 1)
        done = min(s.records_in_epoch, total)
        filled = int(self.width * done / total)
        bar = "#" * filled + "-" * (self.width - filled)
        self._rate = e.throughput if self._rate is None else 0.9 * self._rate + 0.1 * e.throughput
        eta = (total - done) / max(self._rate, 1e-9)
        tail = f"took {took:.1f}s" if took is not None else f"ETA {eta:4.0f}s"
        return (f"epoch {e.epoch} [{bar}] {done}/{total}  iter {e.iteration}  "
                f"loss {e.loss:.4f}  {self._rate:,.0f} rec/s  lr {e.lr:.3g}  {tail}")

    def on_iteration(self, e):
        out = self._out()
        tty = getattr(out, "isatty", lambda: False)()
        now = time.time()
        if e.state.epoch_finished:
            line = self._line(e, took=now - (self._epoch_start or now))
            out.write(("\r" if tty else "") + line + "\n")
            out.flush()
            self._epoch_start = now
        elif tty and now - self._last >= 1.0 / self.refresh:
            out.write("\r" + self._line(e))
            out.flush()
            self._last = now

    def on_validation(self, e):
        scores = "  ".join(f"{k} {v:.4f}" for k, v in e.scores.items())
        self._out().write(f"  validation after iteration {e.iteration}: {scores}\n")
        self._out().flush()

    def on_checkpoint(self, e):
        self._out().write(f"  checkpoint: {e.path}\n")

    def on_finished(self, e):
        out = self._out()
        if e.error:
            out.write(f"\ntraining failed at iteration {e.iteration}: {e.error}\n")
        elif e.stopped:
            out.write(f"\ntraining stopped by request after iteration {e.iteration}\n")
        out.flush()
