"""The TensorBoard pane: ``%bigdl_tensorboard`` shows TensorBoard for a run inside the notebook.

The TensorBoard process is started by the kernel (on 127.0.0.1, a free port) and reached
through jupyter-server-proxy, so it works behind a remote JupyterLab.  It stops when asked
(``%bigdl_tensorboard --stop``) or when the kernel exits.
"""
from __future__ import annotations

import anywidget
import traitlets as t

from ..summary import tensorboard as processes
from .dashboard import STATIC

__all__ = ["TensorBoardPane", "show", "stop"]

_panes: dict[str, list] = {}


class TensorBoardPane(anywidget.AnyWidget):
    """An iframe on the TensorBoard serving ``logdir`` (through ``<base_url>proxy/<port>/``)."""

    _esm = STATIC / "tensorboard.js"
    port = t.Int(0).tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    height = t.Int(640).tag(sync=True)
    stopped = t.Bool(False).tag(sync=True)

    def __repr__(self):
        state = "stopped" if self.stopped else f"port {self.port}"
        return f"TensorBoardPane({self.title!r}, {state})"


def show(logdir, title, height=640):
    """Start (or reuse) TensorBoard for ``logdir``; returns its pane widget."""
    tb = processes.start(logdir)
    pane = TensorBoardPane(port=tb.port, title=title, height=height)
    _panes.setdefault(tb.logdir, []).append(pane)
    return pane


def stop(logdir=None):
    """Stop the TensorBoard of ``logdir`` (every one if None); returns how many stopped."""
    import os
    targets = list(processes.running()) if logdir is None else [os.path.realpath(logdir)]
    count = 0
    for d in targets:
        if processes.stop(d):
            count += 1
        for pane in _panes.pop(d, []):
            pane.stopped = True
    return count
