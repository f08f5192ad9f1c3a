"""The tuning widget and %%bigdl_tune in a real IPython shell, on real studies
(workbench.tune, in-process trials; tests/notebook/test_browser_tune.py runs them on Spark in
JupyterLab): the controls define the space, Run/Stop messages, the kernel-interrupt and sidebar
stops, throttled updates, what lands in the namespace, one-line mistakes, and the study in the run
registry (the sidebar's data)."""
import json
import os
import signal
import textwrap
import threading
import time

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

from workbench import tune
from workbench.data import load_digits
from workbench.nn import Linear, LogSoftMax, ReLU, Reshape, Sequential
from workbench.notebook import TuningBoard
from workbench.notebook.tuning import controls_for, default_mode
from workbench.notebook import tune_options
from workbench.optim import Top1Accuracy
from workbench import runs as registry


def build(params):
    hidden = params.get("hidden", 32)
    return (Sequential().add(Reshape([64])).add(Linear(64, hidden)).add(ReLU())
            .add(Linear(hidden, 10)).add(LogSoftMax()))


@pytest.fixture(scope="module")
def digits():
    return load_digits(size=8)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def slow_objective(params, trial):
    """Reports a value every 20 ms for up to 400 epochs (stopped long before)."""
    for epoch in range(1, 401):
        time.sleep(0.02)
        trial.report(params["x"] * epoch / 400, epoch)
    return params["x"]


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------------- the controls
def test_default_controls_and_the_space_they_define(digits):
    board = TuningBoard(build, data=digits[0], val=digits[1], namespace={})
    c = board.controls
    assert list(c) == ["learningrate", "batch_size", "optim", "hidden", "dropout"]
    assert [c[k]["kind"] for k in c] == ["log", "choice", "choice", "int", "float"]
    assert not c["hidden"]["on"] and not c["dropout"]["on"] and c["learningrate"]["on"]
    assert c["learningrate"]["min"] < 1e-3 and c["learningrate"]["max"] > 0.3
    assert {"SGD", "Adam", "Adagrad"} <= set(c["optim"]["options"])
    assert set(board.space) == {"learningrate", "batch_size", "optim"}
    board.set_range("learningrate", 0.01, 0.1)
    board.set_choices("batch_size", [32])
    board.switch("hidden", True)
    board.set_range("hidden", 16, 48)
    assert board.space == {"learningrate": tune.loguniform(0.01, 0.1),
                           "batch_size": tune.choice([32]), "optim": tune.choice(["SGD", "Adam"]),
                           "hidden": tune.randint(16, 48, step=32)}
    with pytest.raises(ValueError):
        board.set_range("learningrate", 0.0, 0.1)   # a log range needs low > 0
    with pytest.raises(KeyError):
        board.set_range("optim", 1, 2)
    # the data become the study's data dict; the epochs control exists for a build function
    assert set(board.data) == {"train", "val"} and board.epochs == 5
    assert TuningBoard(slow_objective, space={"x": tune.uniform(0, 1)}).epochs == 0


def test_controls_follow_a_given_space():
    space = {"lr": tune.loguniform(1e-4, 1e-2), "units": tune.randint(8, 64, step=8),
             "p": tune.uniform(0.1, 0.3), "act": tune.choice(["relu", "tanh"]),
             "momentum": tune.conditional("act", {"relu": tune.uniform(0.5, 0.9)})}
    c = controls_for(space)
    assert [c[k]["kind"] for k in c] == ["log", "int", "float", "choice", "fixed"]
    assert c["units"]["step"] == 8 and c["units"]["min"] >= 8
    assert c["p"]["min"] == 0.0 and c["p"]["max"] == 1.0
    assert all(c[k]["on"] for k in c)
    assert tune.space_from_dict({k: v["dist"] for k, v in c.items()}) == space
    assert default_mode("Loss") == "min" and default_mode("Top1Accuracy") == "max"


# ---------------------------------------------------------------------- running the board
def test_run_button_runs_in_the_background_and_fills_the_namespace(digits, runs):
    ns = {}
    board = TuningBoard(build, data=digits[0], val=digits[1], epochs=3, n_trials=6,
                        parallelism=2, seed=0, backend="local", namespace=ns, out="best",
                        trials_out="df")
    board.set_range("learningrate", 0.01, 0.2)
    board._on_frontend_msg(board, {"type": "run"}, [])   # what the Run button sends
    assert board.running or board.status == "finished"
    result = board.wait(120)
    assert board.status == "finished" and result is board.result
    df = ns["df"]
    assert len(df) == 6 and set(df["status"]) <= {"completed", "pruned"}
    assert df["param_learningrate"].between(0.01, 0.2).all()
    assert set(df["param_optim"]) <= {"SGD", "Adam"}
    # the best trial is highlighted and its model is the one in the namespace
    best = result.best_trial
    assert board.best == best.number and board.best_value == pytest.approx(result.best_value)
    (score,) = ns["best"].evaluate(digits[1], 256, [Top1Accuracy()])
    assert score.value == pytest.approx(result.best_value)
    rows = {r["number"]: r for r in board.trials}
    assert sorted(rows) == list(range(6))
    assert [tuple(p) for p in rows[best.number]["reports"]] == \
        [(e, pytest.approx(v)) for e, v in best.reports]
    assert all(r["status"] in ("completed", "pruned") for r in rows.values())
    summary = dict(board.summary)
    assert summary["best trial"].startswith(f"{best.number}: Top1Accuracy")
    assert summary["model"] == "best" and summary["trials"] == "df (DataFrame)"
    # the study's files are where the sidebar reads them
    (record,) = registry.list_runs(runs)
    assert record["kind"] == "study" and record["name"] == board.study_name
    assert record["status"] == "finished" and record["trials_done"] == 6
    assert record["best"] == best.number
    assert record["best_value"] == pytest.approx(result.best_value)
    assert len(record["trials"]) == 6 and record["trials"][best.number]["reports"]
    # running again makes a new study
    board.n_trials = 2
    board.run(block=True)
    assert len(ns["df"]) == 2 and board.study_name != record["name"]
    assert {r["name"] for r in registry.list_runs(runs)} >= {record["name"], board.study_name}


def test_bad_settings_are_shown_not_run(digits, runs):
    board = TuningBoard(build, data=digits[0], val=digits[1], namespace={})
    for name in list(board.controls):
        board.switch(name, False)
    board._on_frontend_msg(board, {"type": "run"}, [])
    assert board.status == "ready" and "search space is empty" in board.message
    assert board.study is None
    with pytest.raises(ValueError):
        TuningBoard(build, algo="bayes")
    with pytest.raises(TypeError):
        TuningBoard("build")


def test_stop_button_message_stops_a_running_study(runs):
    ns = {}
    board = TuningBoard(slow_objective, space={"x": tune.uniform(0.1, 1.0)}, n_trials=8,
                        parallelism=2, pruner=None, backend="local", seed=1, namespace=ns)
    board.run()
    wait_for(lambda: any(len(r["reports"]) >= 3 for r in board.trials))
    board._on_frontend_msg(board, {"type": "stop"}, [])
    assert board.status in ("stopping", "stopped")
    result = board.wait(60)
    assert board.status == "stopped" and result.stopped and board.stop_via == "the Stop button"
    statuses = [r["status"] for r in board.trials]
    assert len(statuses) < 8 and "stopped" in statuses
    assert all(len(r["reports"]) < 400 for r in board.trials)
    assert dict(board.summary)["status"] == "stopped by the Stop button"
    assert len(ns["trials"]) == len(statuses)


def test_a_kernel_interrupt_stops_a_blocking_run(runs):
    board = TuningBoard(slow_objective, space={"x": tune.uniform(0.1, 1.0)}, n_trials=4,
                        parallelism=2, pruner=None, backend="local", namespace={})

    def interrupt():
        wait_for(lambda: any(len(r["reports"]) >= 2 for r in board.trials))
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    result = board.run(block=True)
    assert result.stopped and board.status == "stopped"
    assert board.stop_via == "a kernel interrupt"
    assert signal.getsignal(signal.SIGINT) is previous


def test_the_sidebar_stop_request_stops_the_study(runs):
    board = TuningBoard(slow_objective, space={"x": tune.uniform(0.1, 1.0)}, n_trials=4,
                        parallelism=1, pruner=None, backend="local", namespace={}, name="side")
    board.run()
    wait_for(lambda: any(r["reports"] for r in board.trials))
    (record,) = registry.list_runs(runs)
    assert record["kind"] == "study" and record["status"] == "running"
    assert record["trials_running"] == 1
    registry.request_stop(runs, "side")
    board.wait(60)
    assert board.status == "stopped" and board.stop_via == "the Workbench sidebar"
    assert registry.read_run(runs, "side")["status"] == "stopped"


def test_updates_are_throttled_with_a_trailing_update(runs):
    board = TuningBoard(slow_objective, space={"x": tune.uniform(0.5, 1.0)}, n_trials=1,
                        parallelism=1, pruner=None, backend="local", namespace={},
                        interval=3600)
    board.run()
    wait_for(lambda: board.trials and board.trials[0]["status"] == "running")
    with board._lock:  # the update that showed "running" has finished counting itself
        sent = board.updates_sent
    wait_for(lambda: board.study.trials and len(board.study.trials[0].reports) >= 20)
    assert board.updates_sent == sent    # 20 reports, no update within the interval
    board.stop()
    board.wait(60)
    assert board.updates_sent > sent and board.trials[0]["status"] == "stopped"
    # the front end's copy is complete at the end
    assert len(board.trials[0]["reports"]) == len(board.study.trials[0].reports)


# ---------------------------------------------------------------------- the magic's options
@pytest.mark.parametrize("text, kind, expected", [
    ("1e-3:0.3", "log", {"type": "loguniform", "low": 1e-3, "high": 0.3}),
    ("0.01,0.1", "log", {"type": "choice", "options": [0.01, 0.1]}),
    ("0.05", "log", {"type": "choice", "options": [0.05]}),
    ("32:256:32", "int", {"type": "randint", "low": 32, "high": 256, "step": 32}),
    ("8:16", "int", {"type": "randint", "low": 8, "high": 16, "step": 1}),
    ("0:0.5", "float", {"type": "uniform", "low": 0.0, "high": 0.5}),
    ("1:5", "uniform", {"type": "randint", "low": 1, "high": 5, "step": 1}),
    ("log:1e-5:1e-3", "uniform", {"type": "loguniform", "low": 1e-5, "high": 1e-3}),
])
def test_ranges(text, kind, expected):
    assert tune_options.parse_range(text, "--x", kind) == expected


@pytest.mark.parametrize("text, kind, message", [
    ("0:0.3", "log", "LOW > 0"), ("0.3:0.1", "log", "LOW must be < HIGH"),
    ("32:250:32", "int", "multiple of the step"), ("a:b", "float", "not a number"),
    ("1:2:3:4", "float", "expected LOW:HIGH"), ("1.5:4", "int", "not an integer"),
])
def test_range_mistakes_are_one_line(text, kind, message):
    with pytest.raises(UsageError, match=message):
        tune_options.parse_range(text, "--x", kind)


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()  # one per session
    shell.run_line_magic("load_ext", "workbench")
    shell.run_cell(textwrap.dedent("""
        from workbench.nn import Sequential, Reshape, Linear, LogSoftMax, ReLU, Dropout
        from workbench.data import load_digits
        from workbench import tune
        (X, y), (Xt, yt) = load_digits(size=8)
    """))
    return shell


def test_load_ext_registers_bigdl_tune(ip):
    assert ip.find_cell_magic("bigdl_tune") and ip.find_line_magic("bigdl_tune")
    doc = ip.find_line_magic("bigdl_tune").__doc__
    for flag in ("--data", "--val", "--trials", "--parallelism", "--algo", "--pruner", "--lr",
                 "--batch-size", "--optim", "--hidden", "--dropout", "--out", "--trials-out",
                 "--master", "--metric", "--epochs", "--space", "--param"):
        assert flag in doc, flag


def test_magic_tunes_and_puts_the_results_in_the_namespace(ip, runs, capsys):
    for name in ("best_model", "trials", "tuning_board", "tuned", "table"):
        ip.user_ns.pop(name, None)
    result = ip.run_cell(
        "%%bigdl_tune --data X y --val Xt yt --trials 6 --parallelism 2 --epochs 3 --local\n"
        "--lr 0.01:0.3 --batch-size 16,32 --optim SGD,Adam --hidden 16:64:16 --dropout 0:0.3\n"
        "--seed 3 --name magic-study --out tuned --trials-out table\n"
        "def build(params):   # the body runs first\n"
        "    h = params['hidden']\n"
        "    return (Sequential().add(Reshape([64])).add(Linear(64, h)).add(ReLU())\n"
        "            .add(Dropout(params['dropout'])).add(Linear(h, 10)).add(LogSoftMax()))\n")
    assert result.success, result.error_in_exec
    ns = ip.user_ns
    board = ns["tuning_board"]
    table = ns["table"]
    assert board.status == "finished" and board.study_name == "magic-study"
    assert len(table) == 6
    assert table["param_learningrate"].between(0.01, 0.3).all()
    assert set(table["param_batch_size"]) <= {16, 32}
    assert set(table["param_hidden"]) <= {16, 32, 48, 64}
    assert table["param_dropout"].between(0, 0.3).all()
    best = board.result.best_trial
    (score,) = ns["tuned"].evaluate((ns["Xt"], ns["yt"]), 256, [Top1Accuracy()])
    assert score.value == pytest.approx(best.value) and best.value > 0.5
    out = capsys.readouterr().out
    assert "TuningBoard(study=None, status='ready', trials=0)" in out   # shown before it ran
    assert (f"best trial {best.number}: Top1Accuracy {best.value:.4f}; model in 'tuned', "
            "trials in 'table'") in out
    doc = json.loads((runs / "magic-study" / "study.json").read_text())
    assert doc["status"] == "finished" and len(doc["trials"]) == 6
    magics = ip.magics_manager.registry["WorkbenchMagics"]
    assert magics.last_tune is board and magics.last_run == (str(runs), "magic-study")


def test_magic_runs_the_trials_as_spark_tasks(ip, runs, spark):
    result = ip.run_cell(
        "%%bigdl_tune --data X y --val Xt yt --trials 2 --parallelism 2 --epochs 1\n"
        "--master local[2] --lr 0.02:0.1 --name on-spark --trials-out spark_trials\n"
        "def build(params):\n"
        "    return Sequential().add(Reshape([64])).add(Linear(64, 10)).add(LogSoftMax())\n")
    assert result.success, result.error_in_exec
    board = ip.user_ns["tuning_board"]
    assert board.status == "finished" and len(ip.user_ns["spark_trials"]) == 2
    workers = {r.worker for r in board.result.trials}
    assert workers and not any(w.endswith(f":{os.getpid()}") for w in workers), workers


def test_magic_takes_a_space_from_the_body(ip, runs):
    result = ip.run_cell(
        "%%bigdl_tune --data X y --val Xt yt --trials 2 --epochs 1 --local --name body-space\n"
        "space = {'learningrate': tune.loguniform(0.02, 0.05), 'batch_size': tune.choice([64])}\n"
        "def build(params):\n"
        "    return Sequential().add(Reshape([64])).add(Linear(64, 10)).add(LogSoftMax())\n")
    assert result.success, result.error_in_exec
    table = ip.user_ns["trials"]
    assert list(table["param_batch_size"]) == [64, 64]
    assert table["param_learningrate"].between(0.02, 0.05).all()


@pytest.mark.parametrize("cell, message", [
    ("%bigdl_tune --data X y --val Xt yt --lr 1e-3:0.3 --build nobuild", "no variable named"),
    ("%bigdl_tune --data X yt --val Xt yt --lr 1e-3:0.3 --build small", "labels"),
    ("%bigdl_tune --data X y --val Xt yt --build small", "no search space"),
    ("%bigdl_tune --data X y --val Xt yt --lr 0:0.3 --build small", "LOW > 0"),
    ("%bigdl_tune --data X y --val Xt yt --optim SDG --build small", "did you mean 'SGD'"),
    ("%bigdl_tune --data X y --lr 1e-3:0.3 --build small", "give validation data"),
    ("%bigdl_tune --data X y --val Xt yt --lr 1e-3:0.3 --build small --trials 0", "positive"),
    ("%bigdl_tune --data X y --val Xt yt --lr 1e-3:0.3 --build small --algo bayes",
     "invalid choice"),
    ("%bigdl_tune --data X y --val Xt yt --build small --param 'wd=loguniform(0, 1)'",
     "low must be > 0"),
    ("%bigdl_tune --data X y --val Xt yt --lr 1e-3:0.3 --build small --out trials", "already"),
])
def test_magic_mistakes_are_one_line(ip, runs, cell, message):
    ip.run_cell("def small(params):\n"
                "    return Sequential().add(Reshape([64])).add(Linear(64, 10))"
                ".add(LogSoftMax())\n")
    result = ip.run_cell(cell)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    text = str(result.error_in_exec)
    assert text.startswith("bigdl_tune:") and message in text and "\n" not in text, text
