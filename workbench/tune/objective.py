"""``SupervisedObjective``: the usual objective, "train this model on (X, y) with these
hyperparameters and report the validation metric every epoch"."""
from __future__ import annotations

import copy
import threading

__all__ = ["SupervisedObjective", "make_optim_method"]

_BUILD_LOCK = threading.Lock()  # the layers' random generator is process-wide


def make_optim_method(params):
    """The optim method a trial's params ask for.

    ``params["optim"]``: a ``workbench.optim`` class name (default "SGD");
    ``learningrate`` (default 0.05); ``momentum`` (SGD only, when present);
    ``weight_decay`` (passed as ``weightdecay`` when the method takes it)."""
    import inspect

    from .. import optim
    name = params.get("optim", "SGD")
    cls = getattr(optim, str(name), None)
    if not isinstance(cls, type) or not issubclass(cls, optim.OptimMethod):
        raise ValueError(f"SupervisedObjective: params['optim'] must name a workbench.optim "
                         f"method (SGD, Adam, ...), got {name!r}")
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {}
    if "learningrate" in accepted:
        kwargs["learningrate"] = float(params.get("learningrate", 0.05))
    if params.get("momentum") is not None and "momentum" in accepted:
        kwargs["momentum"] = float(params["momentum"])
    if params.get("weight_decay") is not None and "weightdecay" in accepted:
        kwargs["weightdecay"] = float(params["weight_decay"])
    return cls(**kwargs)


class SupervisedObjective:
    """Train ``build(params)`` with ``workbench.optim.Optimizer`` and report the validation
    metric after every epoch (so the study's pruner can stop bad trials early).

    Args:
        build: ``build(params)`` returns a ``Module``, or ``(Module, optim_method)``.  Without
            an optim method one is made from the params (``params["optim"]``, a
            ``workbench.optim`` class name, default "SGD"; ``learningrate`` default 0.05;
            ``momentum`` for SGD; ``weight_decay``).  Must be picklable (cloudpickle) for Spark.
        train: ``(X, y)`` training arrays, or None to use ``trial.data["train"]`` (the
            recommended way: the study ships its data once per executor).
        val: ``(X, y)`` validation arrays, or None for ``trial.data["val"]``.
        criterion: the loss (default ``ClassNLLCriterion()``; copied per trial).
        epochs: epochs per trial (default 5).
        metric: the validation method's name reported per epoch (default "Top1Accuracy"; any
            ``workbench.optim`` validation method taking no arguments, e.g. "Loss").
        batch_size: mini-batch size when the params have no ``batch_size`` (default 32).
        seed: seed of weight initialization and shuffling (the same for every trial, so trials
            differ by their hyperparameters only).

    Returns (when called as ``objective(params, trial)``): the trained model.
    """

    def __init__(self, build, train=None, val=None, *, criterion=None, epochs=5,
                 metric="Top1Accuracy", batch_size=32, seed=0):
        if not callable(build):
            raise TypeError(f"SupervisedObjective: build must be callable, got "
                            f"{type(build).__name__}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"SupervisedObjective: epochs must be a positive int, got {epochs!r}")
        self.build, self.train, self.val = build, train, val
        self.criterion, self.epochs, self.metric = criterion, epochs, str(metric)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def _data(self, trial, which):
        given = getattr(self, which)
        if given is not None:
            return given
        data = getattr(trial, "data", None)
        if isinstance(data, dict) and data.get(which) is not None:
            return data[which]
        raise ValueError(f"SupervisedObjective: no {which} data; pass {which}=(X, y) or "
                         f"Study(data={{'train': (X, y), 'val': (Xv, yv)}})")

    def __call__(self, params, trial):
        from ..nn import random as nn_random
        from ..nn import ClassNLLCriterion
        from ..optim import EveryEpoch, MaxEpoch, Optimizer
        from ..optim import validation as vmethods
        train, val = self._data(trial, "train"), self._data(trial, "val")
        with _BUILD_LOCK:
            nn_random.set_seed(self.seed)
            built = self.build(params)
        model, method = built if isinstance(built, tuple) else (built, None)
        if method is None:
            method = make_optim_method(params)
        criterion = copy.deepcopy(self.criterion) if self.criterion is not None else \
            ClassNLLCriterion()
        batch = int(params.get("batch_size", self.batch_size))
        opt = Optimizer(model, train, criterion, MaxEpoch(self.epochs), batch, method,
                        seed=self.seed, progress=False)
        if val is not None:
            vcls = getattr(vmethods, self.metric, None)
            if not isinstance(vcls, type):
                raise ValueError(f"SupervisedObjective: no validation method {self.metric!r}")
            opt.set_validation(max(batch, 256), val, EveryEpoch(), [vcls()])
            opt.add_listener(trial.listener(self.metric))
        opt.optimize()
        return model

    def __repr__(self):
        return (f"SupervisedObjective({getattr(self.build, '__name__', self.build)!r}, "
                f"epochs={self.epochs}, metric={self.metric!r})")
