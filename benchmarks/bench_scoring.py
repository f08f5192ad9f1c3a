"""DataFrame scoring (``workbench.spark.scoring.transform``) vs in-process batch ``predict``.

    .venv/bin/python benchmarks/bench_scoring.py        # writes benchmarks/results/scoring.json

An MLP 784-512-10 scores a 100k-row DataFrame (``features`` array<float>, cached in memory,
local[2]); the same rows as one numpy array go through ``model.predict`` in this process.
Scoring paths, each timed with a ``noop`` write (every row computed, nothing collected):

- ``arrow_udf``: ``transform`` as shipped (iterator ``arrow_udf``, pyspark >= 4.1);
- ``pandas_udf``: the same core through an iterator ``pandas_udf`` (pyspark 3.5's path);
- ``mapInArrow``: the same core as a ``mapInArrow`` over whole record batches;
- ``row_udf``: a per-row Python UDF (one forward per row), the floor, on a 10k-row slice;
- ``scan``: the noop write of the cached frame without scoring (what Spark costs alone);
- ``transfer_only``: an ``arrow_udf`` that takes the features and returns a constant: moving
  the rows from the JVM into Python and back, no model (the ceiling of any Python scoring).

The in-process side runs with this process's BLAS threads (all cores) and, in a subprocess,
with one thread, as each Spark Python worker runs (``OMP_NUM_THREADS=1``).  Repeats alternate
the paths; medians are reported.  The goal (never a test) is transform >= 0.8x in-process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "scoring.json")
ROWS, ROW_UDF_ROWS, FEATURES = 100_000, 10_000, 784


def mlp(seed=0):
    from workbench.nn import Linear, LogSoftMax, ReLU, Sequential, random
    random.set_seed(seed)
    return (Sequential().add(Linear(FEATURES, 512)).add(ReLU()).add(Linear(512, 10))
            .add(LogSoftMax()))


def data(n=ROWS):
    import numpy as np
    return np.random.default_rng(0).standard_normal((n, FEATURES)).astype(np.float32)


def in_process(repeats, batch_size):
    """Rows/s of ``model.predict`` on the in-memory array (median of ``repeats``)."""
    model, X = mlp(), data()
    model.predict(X[:1000], batch_size)  # warm the kernels and buffers
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(X, batch_size)
        times.append(time.perf_counter() - t)
    return ROWS / statistics.median(times)


def one_thread_part(args):
    print("RESULT " + json.dumps({"rows_per_s": in_process(args.repeats, args.batch)}))


def in_process_one_thread(repeats, batch_size):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--part", "one_thread", "--repeats",
                          str(repeats), "--batch", str(batch_size)], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])["rows_per_s"]


def load():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=-1, help="rows per forward (-1: chosen)")
    args = parser.parse_args()
    if args.part == "one_thread":
        return one_thread_part(args)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from workbench.spark import get_spark, scoring
    spark = get_spark("local[2]", app_name="bench-scoring",
                      conf={"spark.ui.enabled": "false", "spark.driver.memory": "6g"},
                      log_level="ERROR")
    res = {"benchmark": "DataFrame scoring vs in-process predict (MLP 784-512-10)",
           "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
           "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "python": platform.python_version(), "pyspark": __import__("pyspark").__version__,
           "rows": ROWS, "master": "local[2]", "batch_size": args.batch,
           "arrow_max_records_per_batch": spark.conf.get(
               "spark.sql.execution.arrow.maxRecordsPerBatch"),
           "load_before": load()}
    model, X = mlp(), data()

    # the DataFrame: written to parquet once, read back and cached in memory
    tmp = tempfile.mkdtemp(prefix="bench-scoring-")
    path = os.path.join(tmp, "rows.parquet")
    import pyarrow.parquet as pq
    flat = pa.array(X.reshape(-1))
    offsets = pa.array(np.arange(ROWS + 1, dtype=np.int32) * FEATURES)
    pq.write_table(pa.table({"id": pa.array(np.arange(ROWS)),
                             "features": pa.ListArray.from_arrays(offsets, flat)}), path,
                   row_group_size=10_000)
    df = spark.read.parquet(path).repartition(2).cache()
    assert df.count() == ROWS
    small = df.limit(ROW_UDF_ROWS).cache()
    assert small.count() == ROW_UDF_ROWS

    def arrow_path():
        return scoring.transform(df, model, batch_size=args.batch)

    def pandas_path():
        shipped = scoring._ship(model)
        udf = scoring._make_udf(shipped, model, "outputs", args.batch, None,
                                ["column 'features'"], engine="pandas")
        return df.withColumn("prediction", udf("features"))

    def map_in_arrow_path():
        token, payload = scoring._ship(model)
        spec = (token, payload, "outputs", args.batch, None, np.dtype(model.dtype).str,
                ("column 'features'",), np.float32)
        names = df.columns + ["prediction"]

        def score(batches):
            for b in batches:
                y = scoring._score(spec, (b.column(names.index("features")),))
                yield pa.RecordBatch.from_arrays(b.columns + [scoring._to_arrow(y, "outputs")],
                                                 names=names)
        schema = StructType(df.schema.fields + [StructField("prediction",
                                                            ArrayType(FloatType()))])
        return df.mapInArrow(score, schema)

    def row_udf_path():
        bc = spark.sparkContext.broadcast(model)

        @F.udf(ArrayType(FloatType()))
        def score_row(v):
            m = bc.value  # unpickled once per task by pyspark
            return m.predict(np.asarray(v, np.float32)[None], 1)[0].tolist()
        return small.withColumn("prediction", score_row("features"))

    def scan_path():
        return df

    def transfer_path():  # the rows into Python as Arrow and a constant back: no model
        from pyspark.sql.pandas.functions import arrow_udf
        from pyspark.util import PythonEvalType

        def zeros(batches):
            for a in batches:
                yield pa.array(np.zeros(len(a)))
        return df.withColumn("z", arrow_udf(zeros, "double",
                                            PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF)("features"))

    paths = {"arrow_udf": (arrow_path, ROWS), "pandas_udf": (pandas_path, ROWS),
             "mapInArrow": (map_in_arrow_path, ROWS), "row_udf": (row_udf_path, ROW_UDF_ROWS),
             "scan": (scan_path, ROWS), "transfer_only": (transfer_path, ROWS)}
    if not scoring._has_arrow_udf():
        del paths["arrow_udf"], paths["transfer_only"]

    # correctness first: the shipped path equals in-process predict
    expected = model.predict(X[:2000])
    got = np.array([r.prediction for r in arrow_path().filter("id < 2000").orderBy("id")
                    .collect()])
    res["max_abs_diff_vs_predict"] = float(np.abs(got - expected).max())

    times = {name: [] for name in paths}
    for make, _ in paths.values():  # warm-up: Python workers, models unpickled
        make().write.format("noop").mode("overwrite").save()
    inproc = []
    for r in range(args.repeats):
        inproc.append(in_process(1, args.batch))
        for name, (make, _) in paths.items():
            t = time.perf_counter()
            make().write.format("noop").mode("overwrite").save()
            times[name].append(time.perf_counter() - t)
            print(f"repeat {r}: {name} {times[name][-1]:.2f} s", flush=True)
    inproc_rate = statistics.median(inproc)
    one_thread = in_process_one_thread(args.repeats, args.batch)
    rates = {name: rows / statistics.median(times[name]) for name, (_, rows) in paths.items()}
    res["in_process_rows_per_s"] = inproc_rate
    res["in_process_one_thread_rows_per_s"] = one_thread
    res["spark_rows_per_s"] = rates
    res["seconds"] = times
    res["ratio_to_in_process"] = {k: v / inproc_rate for k, v in rates.items() if k != "scan"}
    res["ratio_to_in_process_one_thread"] = {k: v / one_thread for k, v in rates.items()
                                             if k != "scan"}
    if "transfer_only" in rates:  # how close scoring gets to moving the rows alone
        res["transform_ratio_to_transfer_only"] = rates["arrow_udf"] / rates["transfer_only"]
    shipped = "arrow_udf" if "arrow_udf" in rates else "pandas_udf"
    res["transform_path"] = shipped
    res["transform_ratio"] = rates[shipped] / inproc_rate
    res["row_udf_ratio"] = rates["row_udf"] / inproc_rate
    res["goal"] = "transform >= 0.8x in-process predict (a benchmark goal, never a test)"
    res["load_after"] = load()
    df.unpersist()
    small.unpersist()
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
