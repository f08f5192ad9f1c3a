"""The driver↔task contracts of workbench.spark.protocol over real sockets (no Spark needed)."""
import math
import socket

import numpy as np
import pytest

from helpers import make_rings, run_all
from workbench.optim.events import TrainingState
from workbench.optim.loop import Divergence
from workbench.spark.comm import CommError, send_msg
from workbench.spark.protocol import (Addresses, Decision, FaultInjection, Hello, Iteration,
                                      IterationHeader, Parameters, SendParameters, StretchEnd,
                                      StretchPlan, TaskFailure, TaskReport, LayerTimes,
                                      receive, send)

MESSAGES = [
    Hello("t0k3n", 1, "127.0.0.1", 40123, 4242, 0),
    Addresses([["127.0.0.1", 40123], ["10.0.0.2", 40124]]),
    Iteration(7, 2, 0.6931, 128, 0.05, 0.0123),
    Iteration(8, 2, 0.5, 64, None, 0.01),
    Decision(stop=True),
    Decision(stop=False),
    SendParameters(),
    Parameters(weights=248, gradient=0),
    StretchEnd("stopped"),
    StretchEnd("diverged", Divergence(12, 3, float("inf"), "loss")),
    TaskFailure("task 1: ValueError: bad shape", fatal=True),
    TaskReport(10, 1, "127.0.0.1:41000", "host-a", 0, 10, 160, 0.5, 0.1, 0.25, 0.9),
    LayerTimes(20, [["0.", 1, "conv1", "SpatialConvolution", 0.002, 0.003, True]]),
]


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_arrives_as_the_record_that_was_sent(pair, message):
    send(pair[0], message)
    got = receive(pair[1])
    assert type(got) is type(message)
    assert got == message


def test_a_nan_loss_of_a_divergence_survives_the_wire(pair):
    send(pair[0], StretchEnd("diverged", Divergence(5, 1, float("nan"), "loss")))
    got = receive(pair[1], StretchEnd)
    assert isinstance(got.divergence, Divergence) and math.isnan(got.divergence.loss)
    assert "diverged at iteration 5 (epoch 1): loss is nan" in str(got.divergence.error())


def test_a_task_failure_passes_any_expected_type_filter(pair):
    send(pair[0], TaskFailure("task 0: RuntimeError: boom"))
    assert receive(pair[1], Iteration, StretchEnd) == TaskFailure("task 0: RuntimeError: boom")


@pytest.mark.parametrize("frame, error", [
    ({"i": 3, "e": 1}, "not a training message"),                   # the old untyped frame
    ({"type": "Shutdown"}, "not a training message"),
    ({"type": "Iteration", "iteration": 1}, "malformed Iteration"),  # fields missing
    ({"type": "Decision", "stop": True, "extra": 1}, "malformed Decision"),
    ([1, 2, 3], "not a training message"),
])
def test_a_stray_or_malformed_frame_is_a_comm_error(pair, frame, error):
    send_msg(pair[0], frame)
    with pytest.raises(CommError, match=error):
        receive(pair[1])


def test_an_unexpected_message_type_is_a_comm_error(pair):
    send(pair[0], Decision(stop=False))
    with pytest.raises(CommError, match="expected Iteration or StretchEnd, got Decision"):
        receive(pair[1], Iteration, StretchEnd)


def test_the_iteration_header_is_summed_field_by_field_over_the_ring():
    rings = make_rings(3)
    parts = [IterationHeader(loss=0.25 * (r + 1), records=10 + r, bad_loss=float(r == 2),
                             stop=float(r == 0)) for r in range(3)]
    totals = [None] * 3

    def exchange(r):
        totals[r] = parts[r].allreduce(rings[r])

    run_all(exchange, 3)
    for ring in rings:
        ring.close()
    expected = IterationHeader(loss=1.5, records=33, bad_loss=1, bad_gradient=0, stop=1,
                               send_parameters=0)
    for total in totals:
        assert total == expected


def test_fault_injection_option_is_validated_and_typed():
    fault = FaultInjection.from_option({"iteration": 4, "rank": 1, "mode": "exit"})
    assert fault == FaultInjection(iteration=4, rank=1, mode="exit")
    assert FaultInjection.from_option(None) is None
    with pytest.raises(TypeError, match=r"unknown keys \['iteraton'\]"):
        FaultInjection.from_option({"iteraton": 4})
    with pytest.raises(ValueError, match="mode must be 'raise', 'exit', 'hang' or 'slow'"):
        FaultInjection.from_option({"iteration": 4, "mode": "crash"})


def test_a_task_report_and_layer_times_become_the_events_records():
    report = TaskReport(10, 1, "exec:1", "h", 0, 10, 160, 0.5, 0.1, 0.25, 0.9)
    stats = report.stats()
    assert (stats.rank, stats.executor, stats.records) == (1, "exec:1", 160)
    assert stats.records_per_second == pytest.approx(160 / 0.9)
    times = LayerTimes(3, [["0.", 1, "fc", "Linear", 0.001, 0.002, True]]).times()
    assert times[0].name == "fc" and times[0].total == pytest.approx(0.003) and times[0].leaf


def test_a_plan_pickles_with_its_typed_parts():
    import pickle
    state = TrainingState(epoch=2, iteration=9, records_in_epoch=40, records_per_epoch=100)
    plan = StretchPlan(token="x", tasks=2, driver=("127.0.0.1", 1), local=True, timeout=5.0,
                       records=100, offsets=[0, 50], feature_shape=(4,), batch_size=16, seed=3,
                       compression=None, start=state, fault=FaultInjection(iteration=11),
                       task_counts=[50, 50])
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and again.balanced and again.start.iteration == 9
    assert np.array_equal(again.offsets, [0, 50])
