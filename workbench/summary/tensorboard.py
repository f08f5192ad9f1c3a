"""Starting and stopping TensorBoard processes (for the notebook pane and the server extension).

Each TensorBoard runs as a child process on 127.0.0.1 and a free port; the browser reaches it
through jupyter-server-proxy (``<base_url>proxy/<port>/``), so it works behind a remote
JupyterLab too.  A child dies with its parent: it gets SIGTERM when the process that started it
exits (Linux ``PR_SET_PDEATHSIG``), and every one still running is stopped at interpreter exit.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

__all__ = ["TensorBoardProcess", "start", "ready", "stop", "stop_all", "running"]

_lock = threading.Lock()
_running: dict[str, "TensorBoardProcess"] = {}


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class TensorBoardProcess:
    """One TensorBoard serving ``logdir`` on ``127.0.0.1:port``."""

    def __init__(self, logdir, port, process, output):
        self.logdir, self.port, self.process = logdir, port, process
        self.output = output  # an anonymous temp file: nothing is left on disk
        self.started = time.time()

    @property
    def alive(self):
        return self.process.poll() is None

    def proxy_path(self):
        """The path under the Jupyter server's base URL that reaches this TensorBoard."""
        return f"proxy/{self.port}/"

    def stop(self, timeout=5.0):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()

    def read_output(self, limit=2000):
        """The last ``limit`` characters TensorBoard printed."""
        try:
            self.output.seek(0)
            return self.output.read().decode(errors="replace")[-limit:]
        except (OSError, ValueError):
            return ""

    def to_dict(self):
        return {"port": self.port, "pid": self.process.pid, "alive": self.alive,
                "path": self.proxy_path(), "started": self.started}

    def __repr__(self):
        return f"TensorBoardProcess(port={self.port}, pid={self.process.pid}, alive={self.alive})"


def _wait_ready(tb, timeout):
    deadline = time.time() + timeout
    url = f"http://127.0.0.1:{tb.port}/data/environment"
    while time.time() < deadline:
        if not tb.alive:
            break
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.15)
    return False


def start(logdir, *, timeout=60.0, reload_interval=2, wait=True):
    """Start (or reuse) a TensorBoard for ``logdir``; returns the :class:`TensorBoardProcess`
    once it answers HTTP (with ``wait=False`` at once: call ``ready(tb)`` later).  Raises
    ``RuntimeError`` with TensorBoard's own output if it does not come up.

    Call it from a long-lived thread (the main thread, an event loop): the child is bound to
    the thread that starts it (``PR_SET_PDEATHSIG``)."""
    logdir = os.path.realpath(os.fspath(logdir))
    with _lock:
        tb = _running.get(logdir)
        if tb is not None and tb.alive:
            return tb
        port = _free_port()
        output = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
               "--host", "127.0.0.1", "--port", str(port),
               "--reload_interval", str(reload_interval)]
        process = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env,
                                   preexec_fn=_die_with_parent if os.name == "posix" else None)
        tb = TensorBoardProcess(logdir, port, process, output)
        _running[logdir] = tb
    if wait:
        ready(tb, timeout)
    return tb


def ready(tb, timeout=60.0):
    """Wait until ``tb`` answers HTTP; on failure stop it and raise ``RuntimeError``."""
    if not _wait_ready(tb, timeout):
        output = tb.read_output()
        tb.stop()
        with _lock:
            if _running.get(tb.logdir) is tb:
                _running.pop(tb.logdir)
        raise RuntimeError(f"TensorBoard did not start for {tb.logdir}:\n{output}")
    return tb


def running():
    """``{logdir: TensorBoardProcess}`` of the live TensorBoards started by this process."""
    with _lock:
        return {k: v for k, v in _running.items() if v.alive}


def stop(logdir):
    """Stop the TensorBoard serving ``logdir``; True if one was running."""
    logdir = os.path.realpath(os.fspath(logdir))
    with _lock:
        tb = _running.pop(logdir, None)
    if tb is None:
        return False
    alive = tb.alive
    tb.stop()
    return alive


@atexit.register
def stop_all():
    """Stop every TensorBoard this process started."""
    with _lock:
        tbs = list(_running.values())
        _running.clear()
    for tb in tbs:
        tb.stop()
