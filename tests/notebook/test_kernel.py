"""The dashboard's Stop in a real IPython kernel (ipykernel, driven over ZMQ by jupyter_client, the
way JupyterLab drives it), on every ipykernel the supported Pythons pull in (7.3 on 3.10, 7.4+ on
3.11+):

- the Stop button's message, sent on a kernel subshell while the main shell is busy training
  (what JupyterLab >= 4.4 does), reaches the dashboard, which acknowledges it ("stopping");
- the fallback: a Stop message sent on the busy main shell (a front end without subshells)
  waits behind the training cell, so the button interrupts the kernel, and the interrupt ends
  training gracefully: the cell finishes without a KeyboardInterrupt and the model is kept.
"""
import queue
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(240)

SETUP = textwrap.dedent("""
    import time
    import numpy as np
    from workbench.nn import Linear, LogSoftMax, ClassNLLCriterion, Sequential
    from workbench.notebook import Dashboard
    from workbench.optim import SGD, Listener, MaxEpoch, Optimizer

    class Paced(Listener):  # reports the third iteration, then keeps iterations ~2 ms apart
        def on_iteration(self, e):
            if e.iteration == 3:
                print("TRAINING", flush=True)
            time.sleep(0.002)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = Sequential().add(Linear(6, 2)).add(LogSoftMax())
    opt = Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(100000), 4, SGD(0.1), seed=1)
    dash = Dashboard(opt, run="kernel-test", interval=0.2)
    opt.add_listener(Paced())
    print("COMM", dash.comm.comm_id)
""")

REPORT = ("import ipykernel; print('REPORT', dash.status, dash.stop_via.replace(' ', '_'), "
          "dash.stop_requested_at, dash.stopped_at, opt.state.iteration, ipykernel.__version__)")


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel
    # the kernel runs this interpreter (jupyter_client swaps the kernelspec's "python" for it)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), startup_timeout=120)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code, timeout=120):
    """Runs ``code`` to its end; returns (reply content, stdout text)."""
    out = []
    reply = kc.execute_interactive(
        code, timeout=timeout,
        output_hook=lambda m: out.append(m["content"].get("text", ""))
        if m["msg_type"] == "stream" else None)
    return reply["content"], "".join(out)


def wait_for(kc, predicate, timeout=120):
    """Reads IOPub messages until ``predicate(msg)``; returns the messages read."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        seen.append(msg)
        if predicate(msg):
            return seen
    pytest.fail(f"no such IOPub message in {timeout} s; read {[m['msg_type'] for m in seen]}")


def stdout_has(text):
    return lambda m: m["msg_type"] == "stream" and text in m["content"].get("text", "")


def start_training(kc):
    reply, out = execute(kc, SETUP)
    assert reply["status"] == "ok", reply
    comm_id = out.split("COMM ")[1].split()[0]
    msg_id = kc.execute("trained = opt.optimize()")
    wait_for(kc, stdout_has("TRAINING"))
    return comm_id, msg_id


def stop_message(kc, comm_id, subshell_id=None):
    """The Stop button's message as JupyterLab sends it (ipywidgets' custom message)."""
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "method": "custom", "content": {"type": "stop"}}})
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)


def finish(kc, msg_id):
    """Waits for the training cell's reply; returns the REPORT fields."""
    deadline = time.monotonic() + 120
    while True:
        reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "ok", reply["content"]  # no KeyboardInterrupt
    content, out = execute(kc, REPORT)
    assert content["status"] == "ok", content
    status, via, requested, stopped, iteration, version = out.split("REPORT ")[1].split()
    return status, via.replace("_", " "), int(requested), int(stopped), int(iteration), version


def test_stop_message_on_a_subshell_reaches_the_busy_kernel(kernel):
    km, kc = kernel
    kc.kernel_info()
    info = kc.get_shell_msg(timeout=30)["content"]
    assert "kernel subshells" in info.get("supported_features", []), info  # ipykernel >= 7
    comm_id, msg_id = start_training(kc)

    kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
    created = kc.control_channel.get_msg(timeout=30)["content"]
    assert created["status"] == "ok", created
    stop_message(kc, comm_id, created["subshell_id"])
    # the acknowledgement that keeps the front end from falling back to an interrupt
    wait_for(kc, lambda m: m["msg_type"] == "comm_msg"
             and m["content"]["data"].get("content") == {"type": "stopping"})

    status, via, requested, stopped, iteration, version = finish(kc, msg_id)
    assert (status, via) == ("stopped", "the Stop button"), version
    assert requested >= 3 and 0 <= stopped - requested <= 1 and iteration == stopped


def test_without_a_subshell_the_interrupt_fallback_stops_gracefully(kernel):
    km, kc = kernel
    comm_id, msg_id = start_training(kc)
    stop_message(kc, comm_id)  # queued behind the busy training cell
    km.interrupt_kernel()      # what the button does when no "stopping" comes back
    status, via, requested, stopped, iteration, version = finish(kc, msg_id)
    assert (status, via) == ("stopped", "a kernel interrupt"), version
    assert requested >= 3 and 0 <= stopped - requested <= 1 and iteration == stopped
    # the queued message was handled after the cell (the kernel still answers), harmlessly
    content, out = execute(kc, "print('ALIVE', dash.status, opt.state.iteration)")
    assert out.split() == ["ALIVE", "stopped", str(stopped)]
