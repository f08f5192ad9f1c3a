"""A study's TensorBoard files, read back with TensorBoard's own reader and the hparams
plugin's metadata parsing."""
import json
import os

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from workbench import tune


def objective(params, trial):
    if params["optim"] == "bad":
        raise ValueError("no such optimizer")
    base = params["lr"] * (2 if params["optim"] == "SGD" else 1)
    for epoch in (1, 2, 3):
        trial.report(base * epoch, epoch)
    return base * 3


def _load(path):
    acc = EventAccumulator(path, size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_hparams_experiment_sessions_and_scalar_runs(tmp_path):
    space = {"lr": tune.loguniform(0.01, 0.1), "optim": tune.choice(["SGD", "Adam", "bad"]),
             "layers": tune.randint(1, 3),
             "momentum": tune.conditional("optim", {"SGD": tune.uniform(0.5, 0.9)})}
    result = tune.Study(objective, space, metric="acc", algo="grid", grid_resolution=2,
                        n_trials=7, parallelism=1, pruner=None, log_dir=tmp_path, name="hp",
                        backend="local").run()
    root = os.path.join(tmp_path, "hp")

    # the experiment: every hyperparameter with its domain, and the metric
    acc = _load(root)
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    experiment = metadata.parse_experiment_plugin_data(content)
    hparams = {h.name: h for h in experiment.hparam_infos}
    assert set(hparams) == {"lr", "optim", "layers", "momentum"}
    assert (hparams["lr"].domain_interval.min_value,
            hparams["lr"].domain_interval.max_value) == (0.01, 0.1)
    assert sorted(v.string_value for v in hparams["optim"].domain_discrete.values) == \
        ["Adam", "SGD", "bad"]
    assert [m.name.tag for m in experiment.metric_infos] == ["val/acc"]

    assert len(result.trials) == 7
    for t in result.trials:
        run = _load(os.path.join(root, f"trial-{t.number:03d}"))
        tags = run.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            tags[metadata.SESSION_START_INFO_TAG])
        got = {}
        for name, value in start.hparams.items():
            kind = value.WhichOneof("kind")
            got[name] = getattr(value, kind)
        assert got.keys() == t.params.keys()
        for name, v in t.params.items():
            assert got[name] == v or abs(got[name] - v) < 1e-12
        end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
        if t.status == "failed":
            assert end.status == api_pb2.STATUS_FAILURE
            assert "val/acc" not in run.Tags()["scalars"]
        else:
            assert end.status == api_pb2.STATUS_SUCCESS
            # the per-trial curve: one scalar per epoch, the values reported
            scalars = run.Scalars("val/acc")
            assert [(s.step, round(s.value, 6)) for s in scalars] == \
                [(e, round(v, 6)) for e, v in t.reports]
    statuses = [t.status for t in result.trials]
    assert "failed" in statuses and "completed" in statuses

    doc = json.load(open(os.path.join(root, "study.json")))
    assert doc["status"] == "finished" and len(doc["trials"]) == 7
    failed = [t for t in doc["trials"] if t["status"] == "failed"]
    assert failed and failed[0]["error"] == "ValueError: no such optimizer"
