"""%%bigdl_train's option parsing and resolution: what each option becomes, and the one-line
error for each kind of mistake."""
import numpy as np
import pytest
from IPython.core.error import UsageError

from workbench import optim
from workbench.data import Sample
from workbench.models import LeNet5
from workbench.nn import ClassNLLCriterion, MSECriterion
from workbench.notebook import options


@pytest.fixture
def ns():
    X = np.zeros((40, 1, 28, 28), np.float32)
    y = np.arange(40) % 10
    return {"model": LeNet5(10), "X": X, "y": y, "Xt": X[:10], "yt": y[:10], "pair": (X, y),
            "samples": [Sample.from_ndarray(X[i], y[i]) for i in range(4)],
            "labels_str": np.array(["a"] * 40), "words": np.array(["x"] * 40),
            "my_sgd": optim.SGD(learningrate=0.3), "box": type("Box", (), {"m": LeNet5(10)})()}


def plan(line, ns, cell=""):
    args, code = options.parse(line, cell)
    return options.resolve(args, ns)


def test_defaults(ns, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", "/somewhere/runs")
    p = plan("--model model --data X y", ns)
    assert p.model is ns["model"] and p.training_set[0] is not None
    assert isinstance(p.criterion, ClassNLLCriterion)
    assert isinstance(p.optim_method, optim.SGD)
    assert isinstance(p.end_trigger, optim.MaxEpoch) and p.end_trigger.max_epoch == 1
    assert p.batch_size == 32 and p.validation is None and p.checkpoint is None
    assert p.out_name == "model" and p.history_name == "history" and p.dashboard
    assert p.log_dir == "/somewhere/runs" and p.run.startswith("model-")
    monkeypatch.delenv("WORKBENCH_RUNS_DIR")
    assert plan("--model model --data X y", ns).log_dir == "runs"


def test_optim_method_and_hyperparameters(ns):
    p = plan("--model model --data X y --optim SGD --lr 0.1 --momentum 0.9 --weight-decay 1e-4 "
             "--lr-decay 0.01 --param dampening=0.0 --param nesterov=False", ns)
    m = p.optim_method
    assert (m.learningrate, m.momentum, m.weightdecay, m.learningrate_decay, m.dampening) == \
        (0.1, 0.9, 1e-4, 0.01, 0.0)
    p = plan('--model model --data X y --optim "Adam(learningrate=1e-3, beta1=0.8)"', ns)
    assert isinstance(p.optim_method, optim.Adam) and p.optim_method.learningrate == 1e-3
    p = plan("--model model --data X y --optim Adam --param 'learningrate_schedule=Step(10, 0.5)'",
             ns)
    assert isinstance(p.optim_method.learningrate_schedule, optim.Step)
    assert plan("--model model --data X y --optim my_sgd", ns).optim_method is ns["my_sgd"]


def test_criterion_triggers_validation_checkpoint(ns):
    p = plan("--model model --data pair --criterion MSECriterion --iterations 7 "
             "--val Xt yt --metrics Top1Accuracy Loss 'Top5Accuracy()' --val-every 5 "
             "--val-batch-size 8 --checkpoint-dir /tmp/ck --checkpoint-every 3 --resume "
             "--batch-size 16 --seed 3 --run r1 --out trained --history h --no-dashboard", ns)
    assert isinstance(p.criterion, MSECriterion)
    assert isinstance(p.end_trigger, optim.MaxIteration) and p.end_trigger.max == 7
    v = p.validation
    assert [type(m).__name__ for m in v["methods"]] == ["Top1Accuracy", "Loss", "Top5Accuracy"]
    assert v["methods"][1].criterion is p.criterion  # Loss measures the training criterion
    assert isinstance(v["trigger"], optim.SeveralIteration) and v["trigger"].interval == 5
    assert v["batch_size"] == 8 and v["data"][0].shape == (10, 1, 28, 28)
    assert p.checkpoint["path"] == "/tmp/ck" and p.checkpoint["trigger"].interval == 3
    assert p.resume and p.batch_size == 16 and p.seed == 3 and p.run == "r1"
    assert (p.out_name, p.history_name, p.dashboard) == ("trained", "h", False)
    p = plan("--model model --data X y --end-trigger 'MaxEpoch(3) | MinLoss(0.1)' --val Xt yt",
             ns)
    assert isinstance(p.end_trigger, optim.TriggerOr)
    assert isinstance(p.validation["trigger"], optim.EveryEpoch)
    assert [type(m).__name__ for m in p.validation["methods"]] == ["Top1Accuracy"]


def test_data_forms(ns):
    assert plan("--model model --data pair", ns).training_set[0].shape == (40, 1, 28, 28)
    assert plan("--model model --data samples", ns).training_set is ns["samples"]
    p = plan("--model box.m --data X y", ns)
    assert p.model is ns["box"].m and p.out_name == "trained_model"


def test_options_in_the_cell(ns):
    cell = "--data X y\n  --optim SGD --lr 0.2\nmodel2 = model\n--epochs 2"
    args, code = options.parse("--model model", cell)
    assert code == "model2 = model"
    p = options.resolve(args, ns)
    assert p.optim_method.learningrate == 0.2 and p.end_trigger.max_epoch == 2


ERRORS = [
    ("--model modl --data X y",
     "--model: no variable named 'modl' in the notebook (did you mean 'model'?)"),
    ("--model X --data X y", "--model: X is a ndarray, not a workbench Module"),
    ("--model model --data X yt", "--data: X yt: 40 feature rows but 10 labels"),
    ("--model model --data X", "--data: X is one array: give the labels too"),
    ("--model model --data X y yt", "--data: give two variables (features labels) or one, got 3"),
    ("--model model --data words y", "--data: the features words must be a numeric array"),
    ("--model model --data 'X[:, 0]' y", "--data: 'X[:, 0]' is not a variable name"),
    ("--model model --data X y --optim SDG",
     "--optim: unknown optim method 'SDG'; did you mean 'SGD'?"),
    ("--model model --data X y --optim Adam --momentum 0.9",
     "--optim: Adam has no hyperparameter 'momentum'; it takes learningrate"),
    ("--model model --data X y --optim my_sgd --lr 0.1",
     "--optim: my_sgd is already constructed, so --lr cannot apply"),
    ("--model model --data X y --optim 'SGD(learningrate=-1)'",
     "--optim: SGD(learningrate=-1): SGD: learningrate must be"),
    ("--model model --data X y --optim 'SGD(learningrate=0.1'",
     "--optim: cannot read 'SGD(learningrate=0.1'"),
    ("--model model --data X y --optim 'SGD(lr=nope)'",
     "--optim: SGD(lr=nope): unknown name 'nope'"),
    ("--model model --data X y --param momentum", "--param: expected KEY=VALUE, got 'momentum'"),
    ("--model model --data X y --criterion NLL", "--criterion: unknown criterion 'NLL'"),
    ("--model model --data X y --criterion my_sgd",
     "--criterion: my_sgd is a SGD, not a criterion"),
    ("--model model --data X y --epochs 0", "--epochs: must be a positive number, got 0"),
    ("--model model --data X y --batch-size -4", "--batch-size: must be a positive number, got -4"),
    ("--model model --data X y --epochs 2 --iterations 3",
     "give only one of --epochs, --iterations, --end-trigger"),
    ("--model model --data X y --metrics Loss", "need validation data: add --val"),
    ("--model model --data X y --val Xt yt --metrics Top9",
     "--metrics: unknown validation method 'Top9'"),
    ("--model model --data X y --resume", "--checkpoint-every/--resume: need --checkpoint-dir"),
    ("--model model --data X y --run ../escape", "--run: '../escape' is not a valid run name"),
    ("--model model --data X y --out 'not valid'",
     "--out: 'not valid' is not a valid variable name"),
    ("--model model --data X y --history model",
     "the model and the history cannot both go into 'model'"),
    ("--model model --data X y --features-col f",
     "apply to Spark data only; X y is not an RDD or DataFrame"),
    ("--model model --data X y --bogus 1", "unrecognized arguments: --bogus 1"),
    ("--model model", "the following arguments are required: --data"),
    ("--model model --data X y --optim 'SGD(", "cannot read the options: No closing quotation"),
    ("--model model --data X y --epochs two", "argument --epochs: invalid int value: 'two'"),
]


@pytest.mark.parametrize("line,message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_mistakes_give_one_clear_message(ns, line, message):
    with pytest.raises(UsageError) as info:
        plan(line, ns)
    # exactly IPython's UsageError: IPython prints it as one line, without a traceback
    assert type(info.value) is UsageError
    text = str(info.value)
    assert text.startswith("bigdl_train: ") and message in text, text
    assert "\n" not in text


def test_master_without_spark_is_reported(ns, monkeypatch):
    monkeypatch.setattr(options, "spark_available", lambda: False)
    with pytest.raises(UsageError, match="--master: Spark training .* is not available"):
        plan("--model model --data X y --master local[2]", ns)


def test_every_option_is_documented():
    doc = options.bigdl_train.__doc__
    flags = [s for a in options.bigdl_train.parser._actions for s in a.option_strings]
    assert len(flags) >= 30
    for flag in flags:
        assert flag in doc, flag
    assert "%bigdl_train --model NAME --data NAME" in doc
