"""A Spark standalone cluster on this machine: a master and N workers on 127.0.0.1.

    with StandaloneCluster(workers=2) as cluster:
        spark = get_spark(cluster.url)            # or: spark-submit --master cluster.url ...

It uses pyspark's own launcher (``$SPARK_HOME/sbin/spark-daemon.sh`` with the
``org.apache.spark.deploy.master.Master`` / ``...worker.Worker`` classes; the pip wheel ships no
``start-master.sh``), with logs, pid files and work directories in a temporary directory.
Starting takes ~20 s (workers must register with the master).  Used by the cluster tests and
handy for trying spark-submit on a laptop.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["StandaloneCluster", "spark_home"]

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home():
    """``$SPARK_HOME``, or the pyspark package directory (which has bin/ and sbin/)."""
    home = os.environ.get("SPARK_HOME")
    if home and os.path.isdir(os.path.join(home, "sbin")):
        return home
    import pyspark
    return os.path.dirname(os.path.abspath(pyspark.__file__))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandaloneCluster:
    """A standalone master and ``workers`` workers (``cores`` cores and ``memory`` each) on
    127.0.0.1.  ``start()`` / ``stop()``, or use it as a context manager."""

    def __init__(self, workers=2, cores=1, memory="2g", directory=None):
        self.workers, self.cores, self.memory = int(workers), int(cores), str(memory)
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="workbench-standalone-")
        self.ident = f"wb{os.getpid()}-{int(time.time())}"
        self.port = None
        self.url = None
        self.running = False

    # ------------------------------------------------------------------ process management
    def env(self):
        env = dict(os.environ)
        env.update(SPARK_HOME=spark_home(), SPARK_LOCAL_IP="127.0.0.1",
                   SPARK_LOG_DIR=os.path.join(self.directory, "logs"),
                   SPARK_PID_DIR=os.path.join(self.directory, "pids"),
                   SPARK_WORKER_DIR=os.path.join(self.directory, "work"),
                   SPARK_IDENT_STRING=self.ident,
                   PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable))
        for key in ("SPARK_LOG_DIR", "SPARK_PID_DIR", "SPARK_WORKER_DIR"):
            os.makedirs(env[key], exist_ok=True)
        return env

    def _daemon(self, action, cls, instance, *args):
        script = os.path.join(spark_home(), "sbin", "spark-daemon.sh")
        subprocess.run(["bash", script, action, cls, str(instance), *args], env=self.env(),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)

    def _log(self, cls, instance):
        pattern = os.path.join(self.directory, "logs", f"spark-{self.ident}-{cls}-{instance}-*.out")
        text = ""
        for path in glob.glob(pattern):
            with open(path, errors="replace") as f:
                text += f.read()
        return text

    def pid(self, cls, instance):
        path = os.path.join(self.directory, "pids", f"spark-{self.ident}-{cls}-{instance}.pid")
        with open(path) as f:
            return int(f.read().strip())

    def worker_pid(self, i):
        """Process id of worker ``i`` (1-based)."""
        return self.pid(WORKER, i)

    def start(self, timeout=120):
        """Start the master and the workers; return once every worker has registered."""
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self._daemon("start", MASTER, 1, "--host", "127.0.0.1", "--port", str(self.port),
                     "--webui-port", str(_free_port()))
        self.running = True
        deadline = time.monotonic() + timeout
        self._wait(lambda: "Starting Spark master" in self._log(MASTER, 1) or
                   "I have been elected leader" in self._log(MASTER, 1), deadline, "the master")
        for i in range(1, self.workers + 1):
            self._daemon("start", WORKER, i, "--host", "127.0.0.1", "--cores", str(self.cores),
                         "--memory", self.memory, "--webui-port", str(_free_port()), self.url)
        self._wait(lambda: self._log(MASTER, 1).count("Registering worker") >= self.workers,
                   deadline, f"{self.workers} workers to register")
        return self

    def _wait(self, ready, deadline, what):
        while not ready():
            if time.monotonic() > deadline:
                logs = self._log(MASTER, 1)[-2000:]
                self.stop()
                raise RuntimeError(f"standalone cluster: timed out waiting for {what}; master "
                                   f"log tail:\n{logs}")
            time.sleep(0.25)

    def kill_worker(self, i):
        """SIGKILL worker ``i`` (1-based) and the executors it launched."""
        pid = self.worker_pid(i)
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        for p in [pid] + [int(c) for c in children.stdout.split()]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pid

    def stop(self):
        """Stop the workers and the master (and remove the temporary directory)."""
        if not self.running:
            return
        for i in range(1, self.workers + 1):
            try:
                self._daemon("stop", WORKER, i)
            except (subprocess.SubprocessError, OSError):
                pass
        try:
            self._daemon("stop", MASTER, 1)
        except (subprocess.SubprocessError, OSError):
            pass
        self.running = False
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def submit(self, script, *args, conf=None, timeout=600):
        """``spark-submit --master <this cluster> script args``; returns the CompletedProcess."""
        cmd = [os.path.join(spark_home(), "bin", "spark-submit"), "--master", self.url]
        for k, v in {"spark.executor.cores": str(self.cores), **(conf or {})}.items():
            cmd += ["--conf", f"{k}={v}"]
        cmd += [script, *map(str, args)]
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
