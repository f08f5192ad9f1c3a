"""BigDL's optimization surface: ``SGD(learningrates=, weightdecays=)`` per parameter,
``Loss(cri=)``, ``Optimizer.create(cores=)``, ``bigdl_type=``, the local
``set_validation(batch_size, X, Y, trigger, methods)`` form, the reuse setters and the camelCase
aliases."""
import numpy as np
import pytest

from workbench.nn import (ClassNLLCriterion, Linear, LogSoftMax, MSECriterion, Sequential, Tanh,
                          backend, random)
from workbench.optim import (SGD, Adam, Loss, MaxEpoch, MaxIteration, MultiOptimMethod, Optimizer,
                             Top1Accuracy)


def problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def mlp(seed=3):
    random.set_seed(seed)
    return (Sequential().add(Linear(6, 5).set_name("fc1")).add(Tanh())
            .add(Linear(5, 2).set_name("fc2")).add(LogSoftMax()))


# ---------------------------------------------------------------------- SGD per parameter
def manual_sgd(w, grads, lr, lrs=None, wds=None, momentum=0.0, dampening=0.0):
    """BigDL's SGD written out: g += wds * w; buf = g | mom * buf + (1 - damp) * g;
    w -= lr * lrs * buf."""
    w = w.astype(np.float64).copy()
    buf = None
    for g in grads:
        d = g + (wds * w if wds is not None else 0)
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = buf
        w -= lr * (lrs if lrs is not None else 1) * d
    return w


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_per_parameter_learning_rates_and_weight_decays_are_bigdls_update(momentum):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(10)
    grads = [rng.standard_normal(10) for _ in range(4)]
    lrs = np.array([0, 0.5, 1, 2, 3, 0, 1, 1, 4, 0.25])
    wds = np.linspace(0, 0.9, 10)
    for kw in ({"learningrates": lrs}, {"weightdecays": wds},
               {"learningrates": lrs, "weightdecays": wds}):
        sgd = SGD(0.1, momentum=momentum, dampening=0.0, **kw)
        w = w0.copy()
        for g in grads:
            sgd.update(w, g.copy())
        expected = manual_sgd(w0, grads, 0.1, kw.get("learningrates"), kw.get("weightdecays"),
                              momentum)
        np.testing.assert_allclose(w, expected, rtol=1e-12)
        # a zero learning rate freezes that value, and the per-parameter arrays matter
        assert w[0] == w0[0] or "learningrates" not in kw
        plain = w0.copy()
        sgd_plain = SGD(0.1, momentum=momentum, dampening=0.0)
        for g in grads:
            sgd_plain.update(plain, g.copy())
        assert not np.allclose(w, plain)


def test_per_parameter_rates_in_training_and_float32_weights():
    X, y = problem()
    model = mlp()
    weights = model.get_parameters()[0]
    lrs = np.ones(weights.size)
    lrs[:6 * 5 + 5] = 0.0  # fc1's weight and bias do not move
    before = weights.copy()
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxEpoch(2), 16,
              SGD(0.5, learningrates=lrs), progress=False).optimize()
    after = model.get_parameters()[0]
    np.testing.assert_array_equal(after[:35], before[:35])
    assert not np.allclose(after[35:], before[35:])


def test_for_slice_updates_equal_the_whole_vector_update():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(9)
    grads = [rng.standard_normal(9) for _ in range(3)]
    lrs, wds = rng.uniform(0, 2, 9), rng.uniform(0, 0.1, 9)
    whole = SGD(0.2, momentum=0.5, learningrates=lrs, weightdecays=wds)
    parts = [whole.for_slice(0, 4), whole.for_slice(4, 9)]
    w, split = w0.copy(), w0.copy()
    for g in grads:
        whole.update(w, g.copy())
        parts[0].update(split[:4], g[:4].copy())
        parts[1].update(split[4:], g[4:].copy())
    np.testing.assert_allclose(split, w, rtol=1e-12)
    # a slice of a slice indexes the arrays from the start of the whole vector
    inner = parts[1].for_slice(2, 5)
    v = w0[6:9].copy()
    inner.update(v, grads[0][6:9].copy())
    np.testing.assert_allclose(v, manual_sgd(w0[6:9], [grads[0][6:9]], 0.2, lrs[6:9], wds[6:9]))


def test_per_parameter_rates_inside_per_submodule_methods():
    X, y = problem()
    model = mlp()
    fc2_size = 5 * 2 + 2
    lrs = np.zeros(fc2_size)
    lrs[-2:] = 1.0  # only fc2's bias moves
    before = model.get_parameters()[0].copy()
    Optimizer(model, (X, y), ClassNLLCriterion(), MaxIteration(5), 16,
              {"fc1": Adam(0.01), "fc2": SGD(0.5, learningrates=lrs)}, progress=False).optimize()
    after = model.get_parameters()[0]
    np.testing.assert_array_equal(after[35:-2], before[35:-2])
    assert not np.allclose(after[-2:], before[-2:]) and not np.allclose(after[:35], before[:35])
    # the method of a slice of the vector keeps its part of the per-parameter array
    multi = MultiOptimMethod.for_model(model, {"fc1": Adam(), "fc2": SGD(learningrates=lrs)})
    assert multi.for_slice(30, 47).optim_methods["fc2"]._part == (0, 12)


def test_per_parameter_arrays_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="SGD: learningrates must be finite and >= 0"):
        SGD(learningrates=[1.0, -1.0])
    with pytest.raises(ValueError, match="SGD: weightdecays must be a non-empty array"):
        SGD(weightdecays=[])
    with pytest.raises(ValueError, match="give weightdecay or weightdecays"):
        SGD(weightdecay=0.1, weightdecays=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"SGD: learningrates holds 3 values but the parameter "
                                         r"vector has 47"):
        Optimizer(mlp(), problem(), ClassNLLCriterion(), MaxIteration(1), 16,
                  SGD(learningrates=[1.0, 1.0, 1.0]), progress=False).optimize()


def test_sgd_keeps_bigdls_positional_order():
    schedule_lrs = np.ones(4)
    sgd = SGD(0.1, 0.0, 0.0, 0.0, 0.0, False, None, schedule_lrs, None, bigdl_type="float")
    assert sgd.learningrates is not None and sgd.weightdecays is None


# ---------------------------------------------------------------------- Loss(cri=)
def test_loss_takes_bigdls_cri_keyword():
    out = np.array([[0.5, 1.0], [2.0, 0.0]], np.float32)
    target = np.zeros((2, 2), np.float32)
    for method in (Loss(cri=MSECriterion()), Loss(MSECriterion()),
                   Loss(criterion=MSECriterion())):
        result = method.batch(out, target)
        assert result.value == pytest.approx(np.mean(out ** 2))
        assert method.get_config()["args"]["criterion"]["__object__"]["class"] == "MSECriterion"
    with pytest.raises(TypeError, match="Loss: give the criterion once"):
        Loss(MSECriterion(), cri=MSECriterion())


# ---------------------------------------------------------------------- Optimizer
def test_create_with_cores_sets_the_threads_while_training_only():
    X, y = problem()
    before = backend.get_num_threads()
    seen = []

    class Threads:
        def on_start(self, optimizer):
            pass

        def on_iteration(self, event):
            seen.append(backend.get_num_threads())

        def __getattr__(self, name):
            return lambda *args: None

    opt = Optimizer.create(mlp(), (X, y), ClassNLLCriterion(), MaxIteration(2), 16, SGD(0.1),
                           cores=1, bigdl_type="float", progress=False)
    opt.add_listener(Threads())
    opt.optimize()
    assert seen == [1, 1]
    assert backend.get_num_threads() == before
    with pytest.raises(ValueError, match="Optimizer: cores must be a positive int"):
        Optimizer(mlp(), (X, y), ClassNLLCriterion(), cores=0)
    with pytest.raises(ValueError, match="Optimizer: bigdl_type must be 'float' or 'double'"):
        Optimizer.create(mlp(), (X, y), ClassNLLCriterion(), bigdl_type="int")


def test_local_set_validation_form_and_camel_case_aliases(tmp_path):
    X, y = problem()
    opt = Optimizer(mlp(), (X, y), ClassNLLCriterion(), MaxEpoch(1), 16, SGD(0.1),
                    progress=False)
    # BigDL's LocalOptimizer: set_validation(batch_size, X_val, Y_val, trigger, val_method)
    opt.set_validation(32, X[:20], y[:20], MaxIteration(2), [Top1Accuracy(), Loss()])
    assert opt.validation["trigger"].get_config()["class"] == "MaxIteration"
    assert [type(m).__name__ for m in opt.validation["methods"]] == ["Top1Accuracy", "Loss"]
    np.testing.assert_array_equal(opt.validation["arrays"][0], X[:20])
    assert opt.setValidation(8, (X, y)) is opt and opt.validation["batch_size"] == 8
    assert opt.setCheckpoint(MaxIteration(1), str(tmp_path)).checkpoint["path"] == str(tmp_path)
    for camel, snake in [("setValidation", "set_validation"), ("setCheckpoint", "set_checkpoint"),
                         ("setTrainSummary", "set_train_summary"),
                         ("setValSummary", "set_val_summary"), ("setEndWhen", "set_end_when"),
                         ("setOptimMethod", "set_optim_method"), ("setModel", "set_model"),
                         ("setCriterion", "set_criterion"), ("setTrainData", "set_traindata"),
                         ("setConstantGradientClipping", "set_gradclip_const"),
                         ("setGradientClippingByl2Norm", "set_gradclip_l2norm"),
                         ("disableGradientClipping", "disable_gradclip")]:
        assert getattr(Optimizer, camel) is getattr(Optimizer, snake), camel
    with pytest.raises(TypeError, match="set_validation: too many arguments"):
        opt.set_validation(8, (X, y), MaxIteration(1), [Loss()], "extra")


def test_reuse_setters_train_another_model_data_and_criterion():
    X, y = problem()
    opt = Optimizer(mlp(), (X[:32], y[:32]), ClassNLLCriterion(), MaxIteration(3), 16, SGD(0.1),
                    progress=False)
    other = mlp(seed=9)
    before = other.get_parameters()[0].copy()
    criterion = ClassNLLCriterion()
    assert opt.set_model(other).set_criterion(criterion).set_traindata((X, y), 8) is opt
    assert opt.prepare_input() is opt
    opt.optimize()
    assert opt.model is other and opt.criterion is criterion and opt.batch_size == 8
    assert opt.state.records == 3 * 8
    assert not np.allclose(other.get_parameters()[0], before)
    with pytest.raises(TypeError, match="set_model: model must be a workbench Module"):
        opt.set_model("model")
    with pytest.raises(TypeError, match="set_criterion: criterion must be a Criterion"):
        opt.set_criterion(None)
    with pytest.raises(TypeError, match="Optimizer: training_set must be"):
        opt.set_traindata("data")
