"""The cockpit in a real browser (JupyterLab + headless Chromium, see lab_harness.py): the model
summary and the dashboard's time-per-layer chart in a notebook; in the Workbench sidebar a
Spark run's task table (a task slowed by fault injection marked as the straggler) and a run's
layer profile; the comparison of two runs (overlaid curves, hyperparameter diff) and of a
study's trials, whose ranked value is the one the study calls best.  Every number read off
the page is checked against the run's own files (its record and TensorBoard event files).

The runs the sidebar shows are trained here, before the server starts, by real training: two
local runs, a Spark local[2] run and a small study.  Screenshots of each view go to the test's
output directory (or $WORKBENCH_BROWSER_OUTPUT).
"""
import json
import os

import nbformat
import pytest

from lab_harness import (chromium, close_toasts, element_screenshot, jupyterlab,
                         open_notebook, run_cell, screenshots_dir)
from workbench import tune
from workbench.data import Sample, load_digits
from workbench.models import LeNet5
from workbench.nn import ClassNLLCriterion, random
from workbench.optim import SGD, MaxIteration, Optimizer
from workbench.runs import RECORD_FILE
from workbench.summary import TrainSummary, read_scalar

pytestmark = [pytest.mark.browser, pytest.mark.spark]

NOTEBOOK = "cockpit.ipynb"
SHAPES = {"rise": [0.5, 0.7, 0.8], "fall": [0.95, 0.6, 0.4], "flat": [0.6, 0.6, 0.6]}


def _digits(n=256):
    (X, y), _ = load_digits(size=28)
    return X[:n], y[:n]


def _local_run(runs, name, lr):
    from workbench.runs import RunRecorder
    random.set_seed(7)
    X, y = _digits()
    opt = Optimizer(LeNet5(10), (X, y), ClassNLLCriterion(), MaxIteration(12), 32,
                    SGD(learningrate=lr, momentum=0.9), seed=3, progress=False)
    opt.set_profile(4)
    opt.add_listener(RunRecorder(runs, name))
    summary = TrainSummary(str(runs), name)
    opt.set_train_summary(summary)
    opt.optimize()
    summary.close()


def _spark_run(sc, runs):
    from workbench.runs import RunRecorder
    random.set_seed(7)
    X, y = _digits()
    rdd = sc.parallelize([Sample.from_ndarray(a, b) for a, b in zip(X, y)], 2)
    opt = Optimizer(LeNet5(10), rdd, ClassNLLCriterion(), MaxIteration(6), 32, SGD(0.05),
                    seed=3, progress=False, report_every=2,
                    fault_injection={"iteration": 1, "rank": 1, "mode": "slow",
                                     "seconds": 0.25})
    opt.add_listener(RunRecorder(runs, "spark-slow"))
    summary = TrainSummary(str(runs), "spark-slow")
    opt.set_train_summary(summary)
    opt.optimize()
    summary.close()


def _shaped(params, trial):
    # a trial's validation curve by its shape: "fall" peaks highest but ends lowest
    for epoch, value in enumerate(SHAPES[params["shape"]], 1):
        trial.report(value, epoch)
    return SHAPES[params["shape"]][-1]


NOTEBOOK_CELLS = [
    """import numpy as np
from workbench.data import load_digits
from workbench.models import LeNet5
from workbench.nn import ClassNLLCriterion, random
from workbench.optim import Optimizer, SGD, MaxIteration
from workbench.runs import RunRecorder, default_runs_dir
from workbench.summary import TrainSummary
from workbench.notebook import Dashboard
random.set_seed(1)
(X, y), _ = load_digits(size=28)
model = LeNet5(10)""",
    "model.summary((1, 28, 28))",
    """opt = Optimizer(model, (X[:512], y[:512]), ClassNLLCriterion(), MaxIteration(30), 32,
                SGD(0.05), seed=2, progress=False)
opt.set_profile(10)
opt.add_listener(RunRecorder(default_runs_dir(), 'kernel-run'))
tb = TrainSummary(default_runs_dir(), 'kernel-run')
opt.set_train_summary(tb)
dash = Dashboard(opt, run='kernel-run')
display(dash)
opt.optimize(); tb.close()""",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sc):
    base_dir = tmp_path_factory.mktemp("lab")
    root = base_dir / "root"
    runs = root / "runs"
    runs.mkdir(parents=True)
    _local_run(runs, "lenet-lr0.05", 0.05)
    _local_run(runs, "lenet-lr0.2", 0.2)
    _spark_run(sc, runs)
    tune.Study(_shaped, {"shape": tune.choice(list(SHAPES))}, metric="acc", mode="max",
               algo="grid", n_trials=3, parallelism=1, pruner=None, log_dir=runs,
               name="shapes", backend="local").run()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS]
    nbformat.write(nb, str(root / NOTEBOOK))
    with jupyterlab(base_dir, root) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab):
    with chromium(lab["root"].parent / "chromium-profile") as context:
        yield context


def _record(lab, name):
    with open(lab["root"] / "runs" / name / RECORD_FILE) as f:
        return json.load(f)


def _ms(text):
    return float(text.strip())


def _close(shown, exact):
    """A number shown with 3-4 significant digits equals ``exact``."""
    return shown == pytest.approx(exact, rel=6e-3, abs=1e-9)


def test_summary_and_layer_profile_in_the_notebook(lab, browser, tmp_path):
    shots = screenshots_dir(tmp_path)
    page = browser.new_page()
    page.set_default_timeout(120_000)
    open_notebook(page, lab, NOTEBOOK)
    for i in range(len(NOTEBOOK_CELLS)):
        run_cell(page, i)
    # the summary's HTML table: a row per module with its output shape and parameters
    table = page.locator(".wb-model-summary")
    table.wait_for()
    conv = table.locator("tr.wb-summary-row[data-layer='conv2_5x5'] td")
    assert conv.nth(1).inner_text() == "(None, 12, 8, 8)"
    assert conv.nth(2).inner_text() == "1,812"
    assert "Total params: 22,278" in table.inner_text()
    table.screenshot(path=os.path.join(shots, "1-model-summary.png"))

    # the dashboard's time-per-layer chart, against the run's record and TensorBoard files
    page.wait_for_function(
        "() => document.querySelector('.wb-dashboard')?.dataset.status === 'finished'")
    layers = page.locator(".wb-layers tr.wb-layer")
    assert layers.count() == 12
    record = _record(lab, "kernel-run")
    assert record["profile"]["iteration"] == 30
    assert f"iteration {record['profile']['iteration']}" in \
        page.locator(".wb-layers .wb-section-title").inner_text()
    leaves = {t["name"]: t for t in record["profile"]["layers"] if t["leaf"]}
    logdir = str(lab["root"] / "runs" / "kernel-run" / "train")
    for i in range(layers.count()):
        row = layers.nth(i)
        name = row.get_attribute("data-layer")
        fw, bw = _ms(row.locator(".wb-layer-fw").inner_text()), \
            _ms(row.locator(".wb-layer-bw").inner_text())
        assert _close(fw, 1e3 * leaves[name]["forward"]), name
        assert _close(bw, 1e3 * leaves[name]["backward"]), name
        if name == "conv1_5x5":
            events = read_scalar(logdir, f"Profile/{name}/forward_ms")
            assert events[-1, 0] == 30 and _close(fw, events[-1, 1])
    slowest = max(leaves.values(), key=lambda t: t["forward"] + t["backward"])["name"]
    assert page.locator(".wb-layers tr.wb-slowest").get_attribute("data-layer") == slowest
    page.locator(".wb-dashboard").screenshot(path=os.path.join(shots, "2-dashboard-layers.png"))
    page.close()


def test_sidebar_tasks_profile_and_comparison(lab, browser, tmp_path):
    shots = screenshots_dir(tmp_path)
    page = browser.new_page()
    page.set_default_timeout(120_000)
    open_notebook(page, lab, NOTEBOOK)
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='workbench-runs']").click()
    close_toasts(page)

    # the Spark run: one row per task, the slowed task 1 marked, numbers from the record
    spark = page.locator(".jp-Workbench-run[data-run='spark-slow']")
    spark.wait_for()
    cluster = _record(lab, "spark-slow")["cluster"]
    assert cluster["straggler"] == 1 and cluster["iteration"] == 6
    spark.locator(".jp-Workbench-details[data-key='spark-slow/cluster'] summary").click()
    tasks = spark.locator("tr.jp-Workbench-task")
    assert tasks.count() == 2
    assert spark.locator("tr.jp-Workbench-straggler").get_attribute("data-rank") == "1"
    for t in cluster["tasks"]:
        row = spark.locator(f"tr.jp-Workbench-task[data-rank='{t['rank']}']")
        n = t["iterations"]
        assert _close(_ms(row.locator(".jp-Workbench-rate").inner_text()),
                      t["records_per_second"])
        assert _close(_ms(row.locator(".jp-Workbench-compute").inner_text()),
                      1e3 * t["compute"] / n)
        assert _close(_ms(row.locator(".jp-Workbench-waiting").inner_text()),
                      1e3 * t["waiting"] / n)
        assert row.locator(".jp-Workbench-executor").inner_text() == t["executor"]
    rate = read_scalar(str(lab["root"] / "runs" / "spark-slow" / "train"),
                       "Cluster/task1/records_per_s")
    assert rate[-1, 0] == 6 and rate[-1, 1] == pytest.approx(
        cluster["tasks"][1]["records_per_second"], rel=1e-5)
    element_screenshot(spark, os.path.join(shots, "3-sidebar-spark-tasks.png"))

    # a local run's layer profile
    local = page.locator(".jp-Workbench-run[data-run='lenet-lr0.05']")
    local.locator(".jp-Workbench-details[data-key='lenet-lr0.05/profile'] summary").click()
    profile = _record(lab, "lenet-lr0.05")["profile"]
    rows = local.locator("tr.jp-Workbench-layer")
    leaves = [t for t in profile["layers"] if t["leaf"]]
    assert rows.count() == len(leaves)
    for i, t in enumerate(leaves):
        assert rows.nth(i).get_attribute("data-layer") == t["name"]
        assert _close(_ms(rows.nth(i).locator(".jp-Workbench-fw").inner_text()),
                      1e3 * t["forward"])
    slowest = max(leaves, key=lambda t: t["forward"] + t["backward"])["name"]
    assert local.locator("tr.jp-Workbench-slowest").get_attribute("data-layer") == slowest
    element_screenshot(local, os.path.join(shots, "4-sidebar-layer-profile.png"))

    # compare the two local runs: both loss curves, the learning rate among the differences
    for name in ("lenet-lr0.05", "lenet-lr0.2"):
        page.locator(f".jp-Workbench-pick[data-key='{name}']").check()
    compare = page.locator(".jp-Workbench-compare")
    compare.wait_for()
    assert compare.get_attribute("data-count") == "2"
    for name in ("lenet-lr0.05", "lenet-lr0.2"):
        line = compare.locator(f"polyline[data-key='{name}']")
        assert int(line.get_attribute("data-points")) == len(_record(lab, name)["loss_series"])
    lr = compare.locator("tr.jp-Workbench-hparam[data-name='optim.learningrate']")
    assert "jp-Workbench-diff" in lr.get_attribute("class")
    columns = compare.locator("table.jp-Workbench-hparams tr").first.locator("th")
    runs = columns.all_inner_texts()[1:]  # the sidebar's order: the newest run first
    assert sorted(runs) == ["lenet-lr0.05", "lenet-lr0.2"]
    shown = dict(zip(runs, (float(c) for c in lr.locator("td").all_inner_texts()[1:])))
    assert shown == {name: _record(lab, name)["hparams"]["optim.learningrate"] for name in runs}
    assert shown == {"lenet-lr0.05": 0.05, "lenet-lr0.2": 0.2}
    same = compare.locator("tr.jp-Workbench-hparam[data-name='batch_size']")
    assert "jp-Workbench-diff" not in same.get_attribute("class")
    element_screenshot(compare, os.path.join(shots, "5-compare-runs.png"))

    # the study: trials ranked by the value shown (final value), which makes the best trial
    with open(lab["root"] / "runs" / "shapes" / "study.json") as f:
        study = json.load(f)
    finals = {t["number"]: t["value"] for t in study["trials"]}
    best = max(finals, key=finals.get)
    board = page.locator(".jp-Workbench-study[data-run='shapes'] .jp-Workbench-leaderboard")
    shown = [float(x) for x in board.locator("td.jp-Workbench-score").all_inner_texts()]
    assert shown == sorted(finals.values(), reverse=True)
    assert board.locator("tr").first.get_attribute("data-trial") == str(best)
    assert board.locator("tr.jp-Workbench-best").get_attribute("data-trial") == str(best)
    metrics = page.locator(".jp-Workbench-study[data-run='shapes'] .jp-Workbench-metrics")
    assert f"best acc {finals[best]:g} (trial {best})" in metrics.inner_text()
    # compare two trials: their curves per epoch and their params
    for t in study["trials"][:2]:
        page.locator(f".jp-Workbench-pick[data-key='shapes#{t['number']}']").check()
    assert compare.get_attribute("data-count") == "4"
    assert compare.locator("polyline[data-key^='shapes#']").count() == 2
    shape = compare.locator("tr.jp-Workbench-hparam[data-name='shape']")
    labels = columns.all_inner_texts()[3:]
    shown = dict(zip(labels, shape.locator("td").all_inner_texts()[3:]))
    assert shown == {f"shapes #{t['number']}": t["params"]["shape"] for t in study["trials"][:2]}
    page.locator(".jp-Workbench-panel").screenshot(path=os.path.join(shots, "6-compare-trials.png"))
    page.close()
