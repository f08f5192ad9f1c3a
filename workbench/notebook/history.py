"""``History``: a training listener that keeps every iteration's and validation's metrics and
gives them back as a pandas DataFrame."""
from __future__ import annotations

from ..optim.events import Listener

__all__ = ["History"]


class History(Listener):
    """Collects ``(epoch, iteration, loss, throughput, lr, wall_time)`` per iteration and the
    scores of every validation.

    ``to_frame()`` returns one row per iteration, indexed by iteration, with the columns
    ``epoch, loss, throughput, lr, wall_time`` and one ``val_<method>`` column per validation
    method (e.g. ``val_Top1Accuracy``), filled on the rows of the iterations after which
    validation ran (NaN elsewhere): ``history.dropna(subset=["val_Top1Accuracy"])`` gives the
    validation rows.
    """

    COLUMNS = ("epoch", "loss", "throughput", "lr", "wall_time")

    def __init__(self):
        self.iterations = []
        self.validations = []
        self.status = None
        self.error = None

    def on_iteration(self, e):
        self.iterations.append((e.iteration, e.epoch, float(e.loss), float(e.throughput),
                                float(e.lr), float(e.wall_time)))

    def on_validation(self, e):
        self.validations.append((e.iteration, e.epoch, dict(e.scores), float(e.wall_time)))

    def on_finished(self, e):
        self.status = "failed" if e.error is not None else "stopped" if e.stopped else "finished"
        self.error = e.error

    def to_frame(self):
        import pandas as pd
        rows = {it: dict(zip(self.COLUMNS, rest)) for it, *rest in self.iterations}
        for it, epoch, scores, wall in self.validations:
            row = rows.setdefault(it, {"epoch": epoch, "wall_time": wall})
            row.update({f"val_{k}": float(v) for k, v in scores.items()})
        columns = list(self.COLUMNS) + sorted({f"val_{k}" for _, _, s, _ in self.validations
                                               for k in s})
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
        frame.index.name = "iteration"
        frame = frame.sort_index()
        if len(frame):
            frame["epoch"] = frame["epoch"].astype("int64")
        return frame

    def __len__(self):
        return len(self.iterations)
