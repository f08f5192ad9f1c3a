"""The engine helper: the active SparkSession, or a new one configured for workbench.

    from workbench.spark import get_spark
    spark = get_spark()                       # local[*], or the session that already runs
    spark = get_spark("spark://host:7077")    # any master URL

Inside ``spark-submit``, a notebook with a session, or a Databricks-style environment, the
session that is already active is returned untouched.
"""
from __future__ import annotations

import os
import sys
import time

__all__ = ["get_spark", "init_engine", "stop_spark", "task_slots", "SlotWatch", "is_local",
           "job_error_message", "create_spark_conf", "get_spark_context", "init_nncontext",
           "explicit_task_threads", "use_task_threads"]

# Conf for sessions that workbench starts itself (never forced on an existing session).
DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "true",
    "spark.python.worker.reuse": "true",
    "spark.ui.showConsoleProgress": "false",
    # A barrier stage that asks for more slots than the cluster has fails after
    # interval * maxFailures (Spark's default: 15 s * 40 = 10 minutes).  The trainer plans
    # a stage on the slots it counted just before, so a failed check means an executor was
    # lost in between; the trainer notices that itself within seconds (``SlotWatch``) and
    # re-plans.  This budget is the backstop, and how long a job abandoned in the check
    # lingers on Spark 3.5, whose job-group cancel cannot reach it: 10 s.
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "2s",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "5",
}


def _python_env():
    """Executors must start this interpreter (the one that has workbench installed)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def get_spark(master=None, app_name="bigdl-workbench", conf=None, log_level="WARN"):
    """The active ``SparkSession``, or a new one.

    Args:
        master: master URL for a new session (default: ``spark-submit``'s ``--master``, else
            ``$WORKBENCH_SPARK_MASTER``, else ``local[*]``; ignored when a session is already
            active).
        app_name: application name of a new session.
        conf: extra Spark conf for a new session (``{"spark.executor.memory": "4g"}``).
        log_level: log level set on a new session's context (None leaves it).

    ``PYSPARK_PYTHON`` / ``PYSPARK_DRIVER_PYTHON`` default to this interpreter, Arrow is on
    (with fallback), and barrier stages that cannot get their slots fail within 10 s.
    """
    _python_env()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        from pyspark import SparkContext
        sc = SparkContext._active_spark_context
        if sc is not None:
            active = SparkSession(sc)
    if active is not None:
        return active
    from pyspark import SparkConf, SparkContext
    SparkContext._ensure_initialized()  # the JVM gateway (spark-submit's, or a new one)
    submitted = SparkConf()  # under spark-submit it holds --master and --conf
    if master is None and submitted.contains("spark.master"):
        master = submitted.get("spark.master")
        builder = SparkSession.builder.appName(app_name)
    else:
        master = master or os.environ.get("WORKBENCH_SPARK_MASTER") or "local[*]"
        builder = SparkSession.builder.master(master).appName(app_name)
    settings = dict(DEFAULT_CONF)
    if master.startswith("local"):
        # Keep everything on the loopback interface in local mode.
        settings.setdefault("spark.driver.host", "127.0.0.1")
        settings.setdefault("spark.driver.bindAddress", "127.0.0.1")
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    if log_level:
        session.sparkContext.setLogLevel(log_level)
    return session


def init_engine(master=None, app_name="bigdl-workbench", conf=None):
    """BigDL's name for :func:`get_spark` (returns the session)."""
    return get_spark(master, app_name, conf)


def create_spark_conf():
    """BigDL's ``create_spark_conf()``: a ``SparkConf`` holding the settings workbench starts
    its own sessions with (Arrow on, Python worker reuse, barrier stages that fail fast), each
    only where the conf does not set it already.  Add your own and pass it to
    :func:`get_spark_context` / :func:`init_nncontext`."""
    _python_env()
    from pyspark import SparkConf
    conf = SparkConf()
    for key, value in DEFAULT_CONF.items():
        conf.setIfMissing(key, value)
    return conf


def _settings(conf):
    """``(master, app_name, dict)`` from a ``SparkConf``, a dict or None."""
    if conf is None:
        return None, None, {}
    items = dict(conf.getAll()) if hasattr(conf, "getAll") else dict(conf)
    return items.pop("spark.master", None), items.pop("spark.app.name", None), items


def get_spark_context(conf=None):
    """BigDL's ``get_spark_context(conf=None)``: the active ``SparkContext``, or a new one
    made from ``conf`` (a ``SparkConf`` or a dict; its ``spark.master`` and
    ``spark.app.name`` are used) as :func:`get_spark` makes sessions."""
    master, app_name, settings = _settings(conf)
    return get_spark(master, app_name or "bigdl-workbench", settings).sparkContext


def init_nncontext(conf=None, spark_log_level="WARN", **_ignored):
    """BigDL's ``init_nncontext(conf=None, spark_log_level="WARN", ...)``: the
    ``SparkContext`` to train on.

    Args:
        conf: a ``SparkConf``, a dict of Spark settings, or a string (the application name).
        spark_log_level: the log level set on a new context.

    BigDL's other keywords (``redirect_spark_log``, ``cluster_mode``...) are accepted and do
    nothing here: the master comes from ``conf``, ``spark-submit`` or ``local[*]``."""
    if isinstance(conf, str):
        conf = {"spark.app.name": conf}
    master, app_name, settings = _settings(conf)
    return get_spark(master, app_name or "bigdl-workbench", settings,
                     log_level=spark_log_level).sparkContext


def stop_spark():
    """Stop the active session, if any."""
    from pyspark.sql import SparkSession
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def is_local(sc):
    return sc.master.startswith("local")


def task_slots(sc, wait=0.0):
    """How many tasks the cluster can run at once right now (what a barrier stage may use).

    Waits up to ``wait`` seconds for executors to register when there are none yet.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            jsc = sc._jsc.sc()
            rp = jsc.resourceProfileManager().defaultResourceProfile()
            slots = int(jsc.maxNumConcurrentTasks(rp))
        except Exception:  # an older or newer JVM side: fall back to the public figure
            slots = int(sc.defaultParallelism)
        if slots > 0 or time.monotonic() >= deadline:
            return slots
        time.sleep(0.5)


class SlotWatch:
    """Tells when the cluster has had fewer task slots than a barrier stage needs for
    ``grace`` seconds in a row: an executor was lost after the stage was planned.

    A barrier stage launches all its tasks at once or none.  Planned on N slots, it waits for
    N: while Spark's slot check retries (``maxConcurrentTasksCheck``), or, when the check had
    passed, forever.  An executor lost between the count and the launch (its worker died
    while it finished the last stage) is such a slot; the stage's driver polls this while it
    waits for the tasks and gives up on the stage when it says so.  Slots that grow (a
    cluster still starting) are never a shortage: a stage is planned on the slots there are.

    Args:
        sc: the ``SparkContext``.
        needed: the stage's task count.
        grace: seconds the shortage must last (0: the first count that is short).
        every: seconds between two counts (each is a call into the JVM).

    Attributes:
        slots: the last count (None before the first).
    """

    def __init__(self, sc, needed, grace=2.0, every=0.5):
        self.sc, self.needed = sc, int(needed)
        self.grace, self.every = float(grace), float(every)
        self.slots = None
        self._short_since = None
        self._next = 0.0

    def short(self):
        """True once the slots have been fewer than ``needed`` for ``grace`` seconds."""
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            self.slots = task_slots(self.sc)
            if self.slots >= self.needed:
                self._short_since = None
            elif self._short_since is None:
                self._short_since = now
        return self._short_since is not None and now - self._short_since >= self.grace


def job_error_message(e):
    """The useful line of a failed Spark job's exception, for a person to read.

    Spark wraps a Python task's exception in JVM stack traces; the Python traceback inside
    ends with the exception's own ``Type: message`` line, the first line after the frames.
    That line (of the innermost traceback, the root cause) is returned; failing that, the first
    line naming an error.  Only for messages: what failed is classified by the tasks'
    ``TaskFailure`` records (``spark.protocol``), never by this text.
    """
    lines = [ln.rstrip() for ln in str(e).splitlines()]
    for i, line in enumerate(lines):
        if line.strip() == "Traceback (most recent call last):":
            for after in lines[i + 1:]:
                if after and not after[0].isspace():
                    return after.strip()[:500]
    named = [ln.strip() for ln in lines if "Error" in ln or "Exception" in ln]
    if named:
        return named[0][:500]
    lines = [ln.strip() for ln in lines if ln.strip()]
    return lines[0][:500] if lines else type(e).__name__


def explicit_task_threads(sc, cores=None):
    """Driver side: the threads the user chose for the native kernels of each task, or None
    (then each task runs ``spark.task.cpus`` threads, see :func:`use_task_threads`).

    ``cores`` (``Optimizer(cores=...)``) first, then the executors' environment as the Spark
    conf sets it: ``spark.executorEnv.WORKBENCH_NUM_THREADS``, then
    ``spark.executorEnv.OMP_NUM_THREADS`` (Spark puts the executor's cores into
    ``OMP_NUM_THREADS`` only when this is not set, so only the conf tells a user's choice)."""
    if cores is not None:
        return int(cores)
    conf = sc.getConf()
    for key in ("spark.executorEnv.WORKBENCH_NUM_THREADS", "spark.executorEnv.OMP_NUM_THREADS"):
        value = (conf.get(key) or "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def use_task_threads(explicit=None):
    """Executor side, at the start of a task: run the native kernels on the task's cores
    (``TaskContext.cpus()``, i.e. ``spark.task.cpus``) or on ``explicit`` threads (from
    :func:`explicit_task_threads`); returns the thread count in force.  Outside a task (no
    ``TaskContext``) the process's setting stays."""
    from pyspark import TaskContext

    from ..nn import backend
    ctx = TaskContext.get()
    if ctx is None:
        return backend.get_num_threads() if explicit is None else \
            backend.use_task_threads(1, explicit)
    return backend.use_task_threads(ctx.cpus(), explicit)
