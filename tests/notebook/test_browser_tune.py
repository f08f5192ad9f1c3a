"""The tuning board in a real browser (JupyterLab + headless Debian Chromium, see
lab_harness.py): set ranges and choices with the widget's controls, press Run, watch the
leaderboard fill while trials run on Spark local[2], see the best trial highlighted and the
best model and the trials DataFrame in the kernel, and the study in the Workbench sidebar."""
import json
import os
import re

import nbformat
import pytest

from lab_harness import (cell_index, cell_output_text, chromium, close_toasts, jupyterlab,
                         open_notebook, run_cell, run_new_cell, screenshots_dir)

pytestmark = pytest.mark.browser  # the default row only (Chromium + Playwright)

NOTEBOOK = "tune_board.ipynb"
SETUP = """\
%load_ext workbench
import os
os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1')
from workbench.spark import get_spark
from workbench.data import load_digits
from workbench.nn import Sequential, Reshape, Linear, ReLU, LogSoftMax
from workbench.notebook import TuningBoard
spark = get_spark('local[2]', app_name='browser-tune', conf={'spark.ui.enabled': 'false'})
spark.sparkContext.setLogLevel('ERROR')
(X, y), (Xt, yt) = load_digits(size=8)

def build(params):
    h = params.get('hidden', 32)
    return (Sequential().add(Reshape([64])).add(Linear(64, h)).add(ReLU())
            .add(Linear(h, 10)).add(LogSoftMax()))

board = TuningBoard(build, data=(X, y), val=(Xt, yt), n_trials=4, parallelism=2, epochs=3,
                    seed=0, name='browser-study')

import time
def slow(params, trial):   # an objective that would report for a long time
    for epoch in range(1, 2001):
        time.sleep(0.05)
        trial.report(params['x'] * epoch / 2000, epoch)
    return params['x']
"""
MAGIC = """\
%%bigdl_tune --objective slow --param x=0.1:1.0 --trials 4 --parallelism 2 --local
--pruner none --name stop-study --out slow_best --trials-out slow_trials --board slow_board
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base_dir = tmp_path_factory.mktemp("lab")
    root = base_dir / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell("board"),
                nbformat.v4.new_code_cell(MAGIC)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / NOTEBOOK)
    with jupyterlab(base_dir, root) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab):
    with chromium(lab["root"].parent / "chromium-profile") as context:
        yield context


def set_number(page, selector, value):
    box = page.locator(selector)
    box.fill(str(value))
    box.press("Tab")   # commits (a change event), like a user leaving the box


def test_board_controls_run_leaderboard_and_sidebar(lab, browser, tmp_path):
    shots = screenshots_dir(tmp_path)
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.set_default_timeout(60_000)
    open_notebook(page, lab, NOTEBOOK)
    run_cell(page, cell_index(page, "%load_ext workbench"))
    run_cell(page, 1)   # shows the board
    tuning = page.locator(".wb-tuning")
    tuning.wait_for(timeout=60_000)
    assert tuning.get_attribute("data-status") == "ready"

    # Define the space with the controls: a learning-rate range (log scale), batch sizes,
    # the hidden layer's range switched on, six trials.
    lr = ".wb-control[data-name='learningrate']"
    set_number(page, f"{lr} .wb-lo-num", 0.02)
    set_number(page, f"{lr} .wb-hi-num", 0.2)
    # the log-scale slider follows the number box
    page.wait_for_function(
        f"""() => Math.abs(Number(document.querySelector("{lr} .wb-lo").value)
                           - Math.log10(0.02)) < 0.01""")
    page.locator(".wb-control[data-name='batch_size'] .wb-choice[data-value='16']").click()
    page.locator(".wb-control[data-name='batch_size'] .wb-choice[data-value='128']").click()
    page.locator(".wb-control[data-name='hidden'] .wb-use").check()
    set_number(page, ".wb-control[data-name='hidden'] .wb-lo-num", 16)
    set_number(page, ".wb-control[data-name='hidden'] .wb-hi-num", 48)
    set_number(page, ".wb-n-trials", 6)
    page.wait_for_selector(".wb-control[data-name='batch_size'] "
                           ".wb-choice[data-value='128'].wb-on")
    page.wait_for_selector(".wb-control[data-name='hidden']:not(.wb-off)")
    close_toasts(page)
    tuning.screenshot(path=os.path.join(shots, "1-board-ready.png"))

    # Run: the study runs in the background; the leaderboard fills while it runs.
    page.locator(".wb-run").click()
    page.wait_for_selector(".wb-tuning[data-status='running']")
    # one snapshot of the page: a leaderboard row while running, with Run disabled (checked
    # apart, a quick study could finish in between and enable Run again)
    page.wait_for_function(
        "() => document.querySelectorAll('.wb-leaderboard tr.wb-trial').length >= 1 && "
        "document.querySelector('.wb-tuning').dataset.status === 'running' && "
        "document.querySelector('.wb-run').disabled")
    page.wait_for_selector(".wb-tuning[data-status='finished']", timeout=600_000)
    rows = page.locator(".wb-leaderboard tr.wb-trial")
    assert rows.count() == 6
    best = page.locator(".wb-leaderboard tr.wb-best")
    assert best.count() == 1
    best_trial = int(best.get_attribute("data-trial"))
    # ranked first: the completed trial with the highest final accuracy
    assert rows.first.get_attribute("data-trial") == str(best_trial)
    assert best.get_attribute("data-status") == "completed"
    finals = [float(v) for v in page.locator(
        ".wb-leaderboard tr.wb-row-completed .wb-trial-final").all_inner_texts()]
    assert float(best.locator(".wb-trial-final").inner_text()) == max(finals)
    assert int(page.locator(".wb-chart-trials").get_attribute("data-series")) == 6
    assert page.locator(".wb-chart-trials polyline.wb-line-best").count() == 1
    assert "best_model" in page.locator(".wb-summary").inner_text()
    close_toasts(page)
    tuning.screenshot(path=os.path.join(shots, "2-board-finished.png"))

    # The kernel ran what the controls said, and has the best model and the DataFrame.
    out = run_new_cell(
        page,
        "import json\n"
        "from workbench.optim import Top1Accuracy\n"
        "print('RESULT', json.dumps({'lr': [float(trials.param_learningrate.min()),\n"
        "    float(trials.param_learningrate.max())],\n"
        "    'bs': sorted(map(int, set(trials.param_batch_size))),\n"
        "    'hidden': sorted(map(int, set(trials.param_hidden))), 'n': len(trials),\n"
        "    'best': board.best, 'model': type(best_model).__name__,\n"
        "    'kernel': os.getpid(),\n"
        "    'workers': sorted({str(r.worker) for r in board.result.trials}),\n"
        "    'acc': best_model.evaluate((Xt, yt), 256, [Top1Accuracy()])[0].value,\n"
        "    'best_value': board.result.best_value}), 'END')", "END")
    result = json.loads(re.search(r"RESULT (\{.*?\}) END", out.replace('\\"', '"')).group(1))
    assert 0.02 <= result["lr"][0] <= result["lr"][1] <= 0.2, result
    assert set(result["bs"]) <= {32, 64, 128} and result["n"] == 6, result
    assert set(result["hidden"]) <= {16, 32, 48}, result
    assert result["best"] == best_trial and result["model"] == "Sequential"
    assert abs(result["acc"] - result["best_value"]) < 1e-9
    # the trials ran in Spark's Python workers, not in the kernel
    assert result["workers"] and not any(w.endswith(f":{result['kernel']}")
                                         for w in result["workers"]), result

    # The Workbench sidebar lists the study: trials, best value, leaders, a line per trial.
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='workbench-runs']").click()
    study = page.locator(".jp-Workbench-study[data-run='browser-study']")
    study.wait_for(timeout=30_000)
    assert study.get_attribute("data-status") == "finished"
    metrics = study.locator(".jp-Workbench-metrics").inner_text()
    assert "trials 6/6" in metrics and f"(trial {best_trial})" in metrics, metrics
    assert int(study.locator("svg.jp-Workbench-trialSparkline").get_attribute("data-series")) == 6
    assert study.locator(".jp-Workbench-best").get_attribute("data-trial") == str(best_trial)
    close_toasts(page)
    page.screenshot(path=os.path.join(shots, "3-sidebar-study.png"))

    # %%bigdl_tune blocks its cell until the study ends; the board's Stop ends it (the click
    # reaches the busy kernel over a comm subshell) and the cell finishes.
    magic = cell_index(page, "%%bigdl_tune --objective slow")
    run_cell(page, magic, wait=False)
    board2 = page.locator(".wb-tuning").nth(1)
    board2.wait_for()
    page.wait_for_function(
        """() => { const b = document.querySelectorAll('.wb-tuning')[1];
                   return b && b.dataset.status === 'running' &&
                          Number(b.querySelector('.wb-chart-trials').dataset.points) >= 4; }""")
    board2.locator(".wb-tune-stop").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.wb-tuning')[1].dataset.status === 'stopped'",
        timeout=120_000)
    page.wait_for_function(
        """(i) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                    return c.model.executionCount !== null && c.promptNode
                           && !c.promptNode.textContent.includes('*'); }""", arg=magic)
    output = cell_output_text(page, magic)
    assert "bigdl_tune: stopped by request" in output, output
    assert "stopped by the Stop button" in board2.locator(".wb-summary").inner_text()
    statuses = board2.locator(".wb-leaderboard .wb-trial-status").all_inner_texts()
    assert statuses and set(statuses) == {"stopped"}, statuses
    board2.screenshot(path=os.path.join(shots, "4-magic-stopped.png"))
    print(f"\nscreenshots in {shots}: {sorted(os.listdir(shots))}")
