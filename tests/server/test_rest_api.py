"""The server extension's REST API through a real Jupyter server: token required, no path
outside the runs dir, runs listed, TensorBoard launched behind jupyter-server-proxy."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from helpers import wait_until
from workbench.nn import ClassNLLCriterion, Linear, LogSoftMax, Sequential
from workbench.optim import SGD, EveryEpoch, MaxEpoch, Optimizer, Top1Accuracy
from workbench.runs import RunRecorder
from workbench.summary import TrainSummary, ValidationSummary

TOKEN = "test-token-5e1f"
SECRET = "outside-the-runs-dir"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_run(runs, name, record=True):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    opt = Optimizer(Sequential().add(Linear(4, 2)).add(LogSoftMax()), (X, y),
                    ClassNLLCriterion(), MaxEpoch(2), 8, SGD(learningrate=0.1), progress=False)
    opt.set_validation(32, (X, y), EveryEpoch(), [Top1Accuracy()])
    opt.set_train_summary(TrainSummary(runs, name)).set_val_summary(ValidationSummary(runs, name))
    if record:
        opt.add_listener(RunRecorder(runs, name))
    opt.optimize()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    runs = root / "runs"
    train_run(runs, "recorded")
    train_run(runs, "events-only", record=False)
    (root / "notebooks").mkdir()
    (root / "notebooks" / "02_tutorial.ipynb").write_text("{}")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text(SECRET)
    (outside / "train").mkdir()
    os.symlink(outside, runs / "escape")
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(root / ".rt"),
               JUPYTER_CONFIG_DIR=str(root / ".config"), WORKBENCH_RUNS_DIR="")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--allow-root"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # bounds a hang only: a loaded machine starts it slowly
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("jupyter server did not start:\n" + (root / "server.log").read_text())
            time.sleep(0.2)
    yield base, root
    proc.terminate()
    proc.wait(30)
    log.close()


def call(server, path, method="GET", token=TOKEN, raw=False):
    base, _ = server
    request = urllib.request.Request(base + path, method=method,
                                     data=b"" if method in ("POST", "PUT") else None)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            body = r.read().decode()
            return r.status, body if raw else json.loads(body or "{}")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


ENDPOINTS = [("GET", "/workbench/api/runs"), ("GET", "/workbench/api/runs/recorded"),
             ("POST", "/workbench/api/runs/recorded/stop"),
             ("POST", "/workbench/api/runs/recorded/tensorboard"),
             ("DELETE", "/workbench/api/runs/recorded/tensorboard"),
             ("POST", "/workbench/api/tensorboard"), ("GET", "/workbench/api/tensorboards"),
             ("GET", "/workbench/api/tutorials"), ("GET", "/workbench/api/config")]


@pytest.mark.parametrize("method,path", ENDPOINTS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_are_refused(server, method, path, token):
    status, body = call(server, path, method, token=token)
    assert status == 403, (status, body)
    assert "recorded" not in body and "tensorboard" not in body.lower().replace(path, "")


def test_lists_runs_with_their_records(server):
    status, body = call(server, "/workbench/api/runs")
    assert status == 200 and body["runs_dir"] == "runs"
    runs = {r["name"]: r for r in body["runs"]}
    assert set(runs) == {"recorded", "events-only"}  # the symlink out of the dir is not a run
    rec = runs["recorded"]
    assert rec["status"] == "finished" and rec["iteration"] == 8 and rec["log_dir"] == "recorded"
    assert "Top1Accuracy" in rec["metrics"] and len(rec["loss_series"]) == 8
    ev = runs["events-only"]
    assert ev["source"] == "event files" and ev["iteration"] == 8 and ev["loss"] is not None
    root = str(server[1])
    assert root not in json.dumps(body)  # no server path is disclosed


TRAVERSALS = ["/workbench/api/runs/..", "/workbench/api/runs/%2e%2e",
              "/workbench/api/runs/..%2F..%2F", "/workbench/api/runs/..%2Fsecret.txt",
              "/workbench/api/runs/%2Fetc%2Fpasswd", "/workbench/api/runs/escape",
              "/workbench/api/runs/escape/tensorboard", "/workbench/api/runs/..%2F/tensorboard",
              "/workbench/api/runs/.%2E%2Fruns/tensorboard", "/workbench/api/runs/%2E%2E/stop",
              "/workbench/api/runs/../../etc/passwd", "/workbench/api/runs/nope/tensorboard"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(server, path):
    for method in ("GET", "POST"):
        status, body = call(server, path, method, raw=True)
        assert status in (400, 404, 405), (method, status, body)
        assert SECRET not in str(body)
    _, listed = call(server, "/workbench/api/tensorboards")
    assert all(t["run"] in (None, "recorded", "events-only") for t in listed["tensorboards"])


def test_stop_request_is_written_for_the_run(server):
    status, body = call(server, "/workbench/api/runs/events-only/stop", "POST")
    assert status == 202 and body == {"stop_requested": "events-only"}
    assert (server[1] / "runs" / "events-only" / "workbench-stop-request").exists()


def test_tutorials_and_config(server):
    assert call(server, "/workbench/api/tutorials")[1] == {
        "folder": "notebooks", "notebooks": ["notebooks/02_tutorial.ipynb"]}
    status, cfg = call(server, "/workbench/api/config")
    assert status == 200 and cfg["runs_dir"] == "runs"


def test_tensorboard_for_a_run_through_the_proxy(server):
    status, tb = call(server, "/workbench/api/runs/recorded/tensorboard", "POST")
    assert status == 200 and tb["run"] == "recorded" and tb["alive"]
    assert tb["path"] == f"proxy/{tb['port']}/"
    again = call(server, "/workbench/api/runs/recorded/tensorboard", "POST")[1]
    assert again["port"] == tb["port"]  # reused, not a second process
    # through jupyter-server-proxy; TensorBoard answers before its first scan of the log dir
    # may have finished (a background thread, slow on a busy machine): wait for both runs
    listed_runs = []

    def both_runs_listed():
        status, runs = call(server, f"/{tb['path']}data/runs")
        listed_runs.append((status, runs))
        return status == 200 and set(runs) == {"train", "validation"}
    wait_until(both_runs_listed, message=lambda: f"both runs through the proxy: {listed_runs[-1]}")
    status, page = call(server, f"/{tb['path']}", raw=True)
    assert status == 200 and "tb-relative-root" in page
    status, body = call(server, f"/{tb['path']}data/runs", token=None, raw=True)
    assert '"validation"' not in body  # the proxy wants the token too (login page or 403)
    listed = call(server, "/workbench/api/tensorboards")[1]["tensorboards"]
    assert [t["run"] for t in listed] == ["recorded"]
    status, body = call(server, "/workbench/api/runs/recorded/tensorboard", "DELETE")
    assert status == 200 and body["stopped"] is True
    assert call(server, "/workbench/api/tensorboards")[1]["tensorboards"] == []
