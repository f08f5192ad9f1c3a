"""%load_ext workbench, %%bigdl_train and %bigdl_tensorboard in a real IPython shell."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

from helpers import wait_until
from workbench.summary import tensorboard as tb_processes


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()  # one per session
    shell.run_line_magic("load_ext", "workbench")
    shell.run_cell(textwrap.dedent("""
        import numpy as np
        from workbench.nn import Sequential, Reshape, Linear, LogSoftMax
        from workbench.data import load_digits
        (X, y), (Xt, yt) = load_digits(size=8)
        def small():
            return Sequential().add(Reshape([64])).add(Linear(64, 10)).add(LogSoftMax())
        net = small()
    """))
    return shell


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_load_ext_registers_the_magics(ip):
    assert ip.find_cell_magic("bigdl_train") and ip.find_line_magic("bigdl_train")
    assert ip.find_line_magic("bigdl_tensorboard")
    doc = ip.find_line_magic("bigdl_train").__doc__
    for flag in ("--model", "--data", "--optim", "--lr", "--val", "--metrics", "--checkpoint-dir",
                 "--log-dir", "--run", "--master", "--out", "--history", "--epochs"):
        assert flag in doc


def test_train_puts_model_and_history_in_the_namespace(ip, runs, capsys):
    ip.user_ns.pop("trained", None)
    result = ip.run_cell(
        "%%bigdl_train --model net2 --data X y --epochs 2 --optim SGD --lr 0.1 --momentum 0.9\n"
        "--val Xt yt --metrics Top1Accuracy Loss --run m1 --out trained --history hist\n"
        "net2 = small()   # the body runs first\n")
    assert result.success, result.error_in_exec
    ns = ip.user_ns
    assert ns["trained"] is ns["net2"]
    hist = ns["hist"]
    assert hist["epoch"].max() == 2 and hist["val_Top1Accuracy"].notna().sum() == 2
    assert hist["val_Top1Accuracy"].dropna().iloc[-1] > 0.5
    out = capsys.readouterr().out
    assert "Dashboard(run='m1', status='waiting')" in out  # displayed before training starts
    assert "bigdl_train: finished" in out and "model in 'trained', history in 'hist'" in out
    record = json.loads((runs / "m1" / "workbench-run.json").read_text())
    assert record["status"] == "finished" and record["iteration"] == len(hist)
    assert set(record["metrics"]) == {"Top1Accuracy", "Loss"} and record["loss_series"]
    assert os.listdir(runs / "m1" / "train") and os.listdir(runs / "m1" / "validation")
    magics = ip.magics_manager.registry["WorkbenchMagics"]
    assert magics.last_run == (str(runs), "m1")
    dashboard = magics.last[2]
    assert dashboard.status == "finished" and dashboard.points == len(hist)


@pytest.mark.spark
def test_master_trains_a_dataframe_on_spark(ip, runs, spark):
    """Tutorial 02's Spark cell in small: --master starts (here: reuses) the session before the
    body builds the DataFrames, and the magic trains on their partitions."""
    result = ip.run_cell(
        "%%bigdl_train --model snet --data train_df --val test_df --epochs 2 --seed 7\n"
        "--optim SGD --lr 0.1 --momentum 0.9 --master local[2] --run on-spark\n"
        "--history spark_hist\n"
        "from workbench.spark import get_spark\n"
        "schema = 'features array<double>, label long'\n"
        "rows = lambda X, y: [(x.ravel().tolist(), int(t)) for x, t in zip(X, y)]\n"
        "train_df = get_spark().createDataFrame(rows(X, y), schema)\n"
        "test_df = get_spark().createDataFrame(rows(Xt, yt), schema)\n"
        "snet = small()\n")
    assert result.success, result.error_in_exec
    hist = ip.user_ns["spark_hist"]
    assert hist["epoch"].max() == 2 and hist["val_Top1Accuracy"].notna().sum() == 2
    assert hist["val_Top1Accuracy"].dropna().iloc[-1] > 0.5
    record = json.loads((runs / "on-spark" / "workbench-run.json").read_text())
    assert record["status"] == "finished"
    ranks = sorted(t["rank"] for t in record["cluster"]["tasks"])  # trained by Spark tasks
    assert ranks == [0, 1], record["cluster"]


def test_user_mistakes_are_one_line(ip, runs, capsys):
    for cell in ("%bigdl_train --model nett --data X y",
                 "%bigdl_train --model net --data X yt",
                 "%%bigdl_train --model net --data X y --optim Adam --momentum 0.5\npass\n"):
        result = ip.run_cell(cell)
        assert isinstance(result.error_in_exec, UsageError)
        err = capsys.readouterr().err
        assert err.startswith("UsageError: bigdl_train: ") and "Traceback" not in err
        assert err.strip().count("\n") == 0


def test_a_failure_in_training_is_one_message_and_keeps_the_model(ip, runs, capsys):
    ip.run_cell("Xbad = np.zeros((20, 5), 'float32'); ybad = np.zeros(20, int); keep = small()")
    result = ip.run_cell("%bigdl_train --model keep --data Xbad ybad --iterations 3 --run bad")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "bigdl_train: training failed at iteration 1: Reshape" in err
    assert "the model keeps the weights of iteration 0" in err
    assert len(ip.user_ns["history"]) == 0 and ip.user_ns["keep"] is not None
    record = json.loads((runs / "bad" / "workbench-run.json").read_text())
    assert record["status"] == "failed" and "Reshape" in record["error"]


def test_no_dashboard_prints_console_progress(ip, runs, capsys):
    result = ip.run_cell("%bigdl_train --model net --data X y --iterations 5 --no-dashboard "
                         "--run quiet")
    assert result.success
    out = capsys.readouterr().out
    assert "Dashboard(" not in out and "bigdl_train: finished: 5 iterations" in out


def test_a_user_error_in_the_cell_body_shows_the_users_traceback(ip, runs, capsys):
    result = ip.run_cell("%%bigdl_train --model net --data X y\n1 / 0\n")
    assert result.success  # the magic returned; the body's error was shown
    captured = capsys.readouterr()
    assert "ZeroDivisionError" in captured.out + captured.err
    assert "bigdl_train: finished" not in captured.out  # no training after a failed body


def test_tensorboard_pane_starts_serves_and_stops(ip, runs, capsys):
    ip.run_cell("%bigdl_train --model net --data X y --iterations 3 --run tbrun")
    capsys.readouterr()
    ip.run_line_magic("bigdl_tensorboard", "tbrun")
    running = tb_processes.running()
    (logdir, process), = [(k, v) for k, v in running.items() if k.endswith("tbrun")]
    out = capsys.readouterr().out
    assert "TensorBoardPane('tbrun', port" in out
    # TensorBoard answers HTTP before its first scan of the log dir may have finished (a
    # background thread, slow on a busy machine): wait for the run to be listed
    def runs_listed():
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/data/runs",
                                    timeout=60) as r:
            return "train" in json.loads(r.read())
    wait_until(runs_listed, message="TensorBoard to list the train run")
    ip.run_line_magic("bigdl_tensorboard", "--stop tbrun")
    assert "stopped tbrun" in capsys.readouterr().out
    assert not process.alive and logdir not in tb_processes.running()
    with pytest.raises(UsageError, match="no run directory"):
        ip.run_line_magic("bigdl_tensorboard", "nosuchrun")


def test_tensorboard_dies_with_the_kernel(tmp_path):
    """A kernel killed outright (no atexit) still takes its TensorBoard with it."""
    (tmp_path / "logs").mkdir()
    code = textwrap.dedent(f"""
        import time
        from workbench.summary import tensorboard
        tb = tensorboard.start({str(tmp_path / 'logs')!r}, timeout=300)
        print(tb.process.pid, flush=True)
        time.sleep(600)
    """)
    kernel = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(kernel.stdout.readline())
    os.kill(pid, 0)  # TensorBoard is up
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    deadline = time.time() + 120  # generous: the claim is that it dies, not how soon
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":  # a zombie: exited, waiting to be reaped
                    break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("TensorBoard outlived the kernel that started it")
