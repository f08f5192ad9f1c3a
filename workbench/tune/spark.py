"""Trials as Spark tasks.

Each study thread runs one trial at a time as a Spark job of ONE task
(``sc.parallelize([0], 1).map(...)``, in its own job group so ``stop(now=True)`` can cancel
it); Spark runs the jobs of the ``parallelism`` threads concurrently.  The objective and the
study's data travel once per study in a broadcast (cloudpickle bytes); a Python worker unpickles
them once and keeps them for the following trials of the study (``_LOADS`` counts the loads).

Reports: the task connects to a listening socket the driver opened for this trial
(``workbench.spark.comm``'s length-prefixed JSON frames, as the distributed trainer's driver
link), sends ``{"epoch", "value"}`` per report and waits for ``{"action": "continue" | "prune"
| "stop"}``.  Nothing needs shared storage, so it works on a real cluster.

The task returns its outcome as plain data: status flags, the final value, the error
("ExceptionType: message" for an exception in the objective: the task itself succeeds, so Spark
never retries a trial and no JVM stack trace reaches the record), the worker's host:pid, its
start/end times, and the trained model as the bytes of a workbench model file.
"""
from __future__ import annotations

import os
import secrets
import selectors
import threading
import time

from .study import (Trial, TrialPruned, TrialStopped, error_text, model_to_bytes, parse_return,
                    worker_name)

__all__ = ["SparkExecutor"]

_CACHE = {}   # study key -> (objective, data), in each Python worker
_LOADS = 0    # how many times this worker process unpickled a study payload
REPORT_TIMEOUT = 600.0


# ---------------------------------------------------------------------- on the executors
def _payload(key, bc):
    global _LOADS
    hit = _CACHE.get(key)
    if hit is None:
        from pyspark import cloudpickle
        _CACHE.clear()  # one study at a time per worker: drop the previous study's data
        hit = _CACHE[key] = cloudpickle.loads(bc.value)
        _LOADS += 1
    return hit


class _RemoteTrial(Trial):
    def __init__(self, spec, data, sock):
        super().__init__(spec["number"], spec["params"], data, spec["seed"])
        self._sock = sock

    def _send(self, epoch, value):
        from ..spark.comm import recv_msg, send_msg
        send_msg(self._sock, {"epoch": epoch, "value": value})
        return recv_msg(self._sock)["action"]


def _trial_task(spec, bc):
    """The body of a trial's Spark task: run the objective, return the outcome (plain data)."""
    from ..spark.comm import connect, send_msg
    start = time.time()
    out = {"worker": worker_name(), "pid": os.getpid(), "start": start}
    sock = None
    try:
        objective, data = _payload(spec["key"], bc)
        out["loads"] = _LOADS
        sock = connect(*spec["driver"], timeout=60)
        sock.settimeout(REPORT_TIMEOUT)
        send_msg(sock, {"token": spec["token"]})
        trial = _RemoteTrial(spec, data, sock)
        model, value = parse_return(objective(dict(spec["params"]), trial))
        out["value"] = value
        if model is not None:
            out["model_bytes"] = model_to_bytes(model)
    except TrialStopped:
        out["stopped"] = True
    except TrialPruned:
        out["pruned"] = True
    except Exception as e:  # noqa: BLE001 - the trial failed; the task still succeeds
        out["error"] = error_text(e)
    finally:
        out.setdefault("loads", _LOADS)
        if sock is not None:
            try:
                send_msg(sock, {"end": True})
                sock.close()
            except Exception:  # noqa: BLE001
                pass
    out["end"] = time.time()
    return out


# ---------------------------------------------------------------------- on the driver
class SparkExecutor:
    """Runs a study's trials as one-task Spark jobs (see the module docs)."""

    def __init__(self, study):
        from pyspark import SparkContext
        self.study = study
        self.sc = SparkContext._active_spark_context
        if self.sc is None:
            raise RuntimeError("Study(backend='spark') needs an active SparkContext "
                               "(workbench.spark.get_spark())")
        self._groups = set()
        self._lock = threading.Lock()
        self.bc = None

    def open(self):
        from pyspark import cloudpickle

        from ..spark.engine import is_local
        study = self.study
        self.key = f"{study.name}-{secrets.token_hex(8)}"
        self.bc = self.sc.broadcast(cloudpickle.dumps((study.objective, study.data)))
        local = is_local(self.sc)
        self.bind = "127.0.0.1" if local else "0.0.0.0"
        self.host = "127.0.0.1" if local else self.sc.getConf().get("spark.driver.host")

    def run_trial(self, running):
        from ..spark.comm import listen
        from ..spark.engine import job_error_message
        study, record = self.study, running.record
        server = listen(self.bind, backlog=4)
        token = secrets.token_hex(16)
        spec = {"number": record.number, "params": dict(record.params),
                "seed": study._trial_seed(record.number), "key": self.key, "token": token,
                "driver": (self.host, server.getsockname()[1])}
        group = f"workbench-tune-{token}"
        done = threading.Event()
        server_thread = threading.Thread(target=self._serve, args=(server, token, running, done),
                                         name=f"tune-reports-{record.number}", daemon=True)
        server_thread.start()
        bc = self.bc
        with self._lock:
            self._groups.add(group)
        try:
            if study._stop.is_set():
                return {"stopped": True}
            self.sc.setJobGroup(group, f"workbench tune trial {record.number}",
                                interruptOnCancel=True)
            out = self.sc.parallelize([0], 1).map(lambda _: _trial_task(spec, bc)).collect()[0]
        except Exception as e:  # noqa: BLE001 - a crashed or cancelled task
            if study._stop.is_set():
                out = {"stopped": True}
            else:
                out = {"error": job_error_message(e)}
        finally:
            with self._lock:
                self._groups.discard(group)
            done.set()
            server_thread.join(10)
            server.close()
        record.worker = out.get("worker", record.worker)
        return out

    def _serve(self, server, token, running, done):
        """Answer the task's reports until it ends (or the job is over)."""
        from ..spark.comm import CommError, recv_msg, send_msg
        server.settimeout(0.2)
        conn = None
        while conn is None and not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(REPORT_TIMEOUT)
            try:
                hello = recv_msg(conn, limit=4096)
            except (CommError, ValueError):
                conn.close()
                conn = None
                continue
            if hello.get("token") != token:
                conn.close()
                conn = None
        if conn is None:
            return
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ)
        try:
            while True:
                if not sel.select(timeout=0.5):
                    if done.is_set():
                        return
                    continue
                try:
                    msg = recv_msg(conn)
                except (CommError, ValueError):
                    return
                if msg.get("end"):
                    return
                action = running.report(int(msg["epoch"]), float(msg["value"]))
                send_msg(conn, {"action": action})
        except (CommError, OSError):
            return
        finally:
            sel.close()
            conn.close()

    def cancel_all(self):
        with self._lock:
            groups = list(self._groups)
        for g in groups:
            try:
                self.sc.cancelJobGroup(g)
            except Exception:  # noqa: BLE001 - the context may be gone
                pass

    def close(self):
        if self.bc is not None:
            try:
                self.bc.destroy()
            except Exception:  # noqa: BLE001
                pass
            self.bc = None
