"""``Optimizer``: BigDL's training entry point, and the local (in-process) training loop.

``Optimizer(model, training_set, criterion, end_trigger, batch_size, optim_method)`` trains on
in-memory arrays here, one ``loop.IterationStep`` per iteration; an RDD or DataFrame is handed
to the distributed engine (``workbench.distributed.engine_for``: ``workbench.spark``'s
trainer), which runs the same step in its tasks.  The loop emits events to listeners (console
progress, TensorBoard summaries, dashboards) and knows nothing else about them.
"""
from __future__ import annotations

import glob
import os
import threading
import time

import numpy as np

from .. import io
from .._checks import check_int
from .._config import check_bigdl_type
from ..data.sample import samples_to_arrays
from ..distributed import engine_for
from ..nn import backend, batch
from ..nn import random as nn_random
from ..nn.criteria.criterion import Criterion
from ..nn.introspect import LayerProfile
from ..nn.module import Module
from .events import (CheckpointEvent, FinishedEvent, IterationEvent, LayerProfileEvent, Listener,
                     TrainingState, ValidationEvent)
from .methods import SGD, ConstantClipping, L2NormClipping, MultiOptimMethod, as_optim_method
from .loop import Divergence, IterationStep, TrainingError, epoch_permutation, objective
from .progress import ConsoleProgress
from .triggers import MaxEpoch
from .validation import evaluate

__all__ = ["Optimizer", "TrainerSettings", "TrainingError", "load_checkpoint", "epoch_permutation",
           "objective"]

CHECKPOINT_FORMAT = "workbench-checkpoint"


def _as_arrays(data, what):
    """``(X, y)`` from a tuple of arrays or a list of Samples, or None if neither.  ``X`` (and
    ``y``) may be a table: a list of arrays, one per model input (output)."""
    if isinstance(data, tuple) and len(data) == 2 and all(hasattr(a, "shape") or
                                                         isinstance(a, list) for a in data):
        X, y = batch.as_batch(data[0], f"{what} features"), batch.as_batch(data[1],
                                                                           f"{what} labels")
    elif isinstance(data, list) and data and hasattr(data[0], "features"):
        X, y = samples_to_arrays(data)
    else:
        return None
    n = batch.num_rows(X, f"{what} features")
    if n != batch.num_rows(y, f"{what} labels"):
        raise ValueError(f"{what}: {n} feature rows but {batch.num_rows(y)} labels")
    if n == 0:
        raise ValueError(f"{what} is empty")
    return X, y


class TrainerSettings:
    """What every trainer configures the same way: its listeners (summaries, dashboards, the
    run registry) and gradient clipping.  ``Optimizer`` and
    ``workbench.spark.StreamingTrainer`` share it; a subclass sets ``self.listeners`` and
    ``self.gradclip`` (both lists) in its constructor."""

    listeners: list
    gradclip: list

    def set_train_summary(self, summary):
        """Write training scalars (Loss, Throughput, LearningRate) with a ``TrainSummary``."""
        return self.add_listener(summary)

    def set_val_summary(self, summary):
        """Write validation scores with a ``ValidationSummary``."""
        return self.add_listener(summary)

    def add_listener(self, listener):
        """Register a listener (see ``workbench.optim.events.Listener``)."""
        if listener not in self.listeners:
            self.listeners.append(listener)
        return self

    def remove_listener(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)
        return self

    def emit(self, name, event):
        """Call ``name`` (``on_iteration``, ...) on every listener with ``event``."""
        for listener in list(self.listeners):
            # listeners written before an event existed (not subclassing Listener) skip it
            handler = getattr(listener, name, None)
            if handler is not None:
                handler(event)

    #: profile every n-th iteration per layer (0: never); see ``set_profile``
    profile_every = 0

    def set_profile(self, every=50):
        """Time each layer's forward and backward every ``every`` iterations (iterations
        ``every``, ``2 * every`` ...) and emit a ``LayerProfileEvent`` (the dashboard's layer
        chart, the run record, TensorBoard's ``Profile/`` scalars).  The profiled iteration
        computes exactly what an unprofiled one does; its cost is a clock read around each
        layer call.  On Spark, task 0 profiles its share of the batch.  ``0`` turns it off."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"set_profile: every must be an int >= 0, got {every!r}")
        self.profile_every = every
        return self

    def profiles(self, iteration):
        """Whether iteration ``iteration`` (1-based) is one to profile."""
        return bool(self.profile_every) and iteration % self.profile_every == 0

    def set_gradclip_const(self, min_value, max_value):
        """Clip every gradient value into ``[min_value, max_value]`` before each update."""
        self.gradclip = [c for c in self.gradclip if not isinstance(c, ConstantClipping)]
        self.gradclip.append(ConstantClipping(min_value, max_value))
        return self

    def set_gradclip_l2norm(self, clip_norm):
        """Scale the gradient vector down to global L2 norm ``clip_norm`` when it is larger."""
        self.gradclip = [c for c in self.gradclip if not isinstance(c, L2NormClipping)]
        self.gradclip.append(L2NormClipping(clip_norm))
        return self

    def disable_gradclip(self):
        """Turn both kinds of gradient clipping off."""
        self.gradclip = []
        return self

    def clip_gradients(self, grads):
        """Apply the configured clipping to the flat gradient vector in place."""
        for clip in self.gradclip:
            clip(grads)
        return grads

    # BigDL's Scala (and older Python) camelCase spellings
    setTrainSummary = set_train_summary
    setValSummary = set_val_summary
    setConstantGradientClipping = set_gradclip_const
    setGradientClippingByl2Norm = set_gradclip_l2norm
    disableGradientClipping = disable_gradclip


class Optimizer(TrainerSettings):
    """Trains a model (BigDL's ``Optimizer``; argument order as in BigDL).

    Args:
        model: the ``Module`` to train (trained in place and returned by ``optimize``).
        training_set: ``(X, y)`` numpy arrays, a list of ``Sample``, or an RDD of Samples or
            a DataFrame (trained on Spark).  For a multi-input model ``X`` is a list of arrays
            (one per input; Samples hold several feature tensors); for a multi-output
            criterion (``ParallelCriterion``) ``y`` may be a list of arrays too.  BigDL's
            ``training_rdd`` keyword also works.
        criterion: the loss, e.g. ``ClassNLLCriterion()``.
        end_trigger: when to stop (default ``MaxEpoch(1)``, as in BigDL).
        batch_size: global mini-batch size (default 32).
        optim_method: e.g. ``SGD(learningrate=0.01)`` (default ``SGD()``), or a dict
            ``{submodule name: OptimMethod}`` (see ``set_optim_methods``).
        seed: seed of the per-epoch shuffling (default: drawn from ``workbench.nn.random``).
        progress: show a console progress bar (default True).
        cores: BigDL's local optimizer's number of cores: here the threads of the native
            kernels and the BLAS while ``optimize()`` trains in this process (default: the
            process's setting, see ``workbench.nn.backend.set_num_threads``).  On a Spark
            training set, the threads of every training task (default: the task's
            ``spark.task.cpus``, see ``workbench.nn.backend``).
        bigdl_type: BigDL's numeric type, ``"float"`` or ``"double"`` (checked; the model's
            own dtype decides, see ``Module.double()``).
        **distributed: options of the Spark trainer (``features_col``, ``label_col``,
            ``gradient_compression``, ``allreduce``, ``max_retries`` ...; see
            ``workbench.spark.TRAINER_OPTIONS``), for an RDD or DataFrame training set only.
    """

    def __init__(self, model, training_set=None, criterion=None, end_trigger=None, batch_size=32,
                 optim_method=None, bigdl_type="float", *, training_rdd=None, seed=None,
                 progress=True, cores=None, **distributed):
        check_bigdl_type("Optimizer", bigdl_type)
        self.cores = None if cores is None else check_int("Optimizer", "cores", cores)
        if training_set is None:
            training_set = training_rdd
        if not isinstance(model, Module):
            raise TypeError("Optimizer: model must be a workbench Module, "
                            f"got {type(model).__name__}")
        if not isinstance(criterion, Criterion):
            raise TypeError("Optimizer: criterion must be a Criterion, "
                            f"got {type(criterion).__name__}")
        batch_size = check_int("Optimizer", "batch_size", batch_size)
        optim_method = as_optim_method(model, SGD() if optim_method is None else optim_method)
        self.model, self.criterion = model, criterion
        self.end_trigger = end_trigger or MaxEpoch(1)
        self.batch_size, self.optim_method = int(batch_size), optim_method
        self.seed = seed
        self.distributed_options = distributed
        self.listeners: list[Listener] = [ConsoleProgress()] if progress else []
        self.validation = None
        self.checkpoint = None
        self.gradclip = []  # ConstantClipping / L2NormClipping, applied in this order
        self.state = TrainingState()
        self._stop = threading.Event()
        self._runner = None
        self._set_training_set(training_set)

    def _set_training_set(self, training_set):
        self.training_set = training_set
        self._arrays = _as_arrays(training_set, "training_set")
        self._runner = None
        if self._arrays is None:
            engine = engine_for(training_set)
            if engine is None:
                raise TypeError("Optimizer: training_set must be (X, y) arrays, a list of "
                                "Samples, an RDD of Samples or a DataFrame, got "
                                f"{type(training_set).__name__}")
            self._runner = engine.SparkTrainer(self)
        elif self.distributed_options:
            raise TypeError(f"Optimizer: unexpected arguments {sorted(self.distributed_options)}")

    @classmethod
    def create(cls, model, training_set, criterion, end_trigger=None, batch_size=32,
               optim_method=None, cores=None, bigdl_type="float", **kwargs):
        """BigDL's factory: the same as the constructor (``cores`` as there: the threads of
        local training)."""
        return cls(model, training_set, criterion, end_trigger, batch_size, optim_method,
                   bigdl_type, cores=cores, **kwargs)

    # ------------------------------------------------------------------ configuration (BigDL)
    def set_validation(self, batch_size, val_set=None, trigger=None, val_method=None, *local,
                       val_rdd=None):
        """Validate on ``val_set`` whenever ``trigger`` fires (default every epoch) with the
        given validation methods (default ``[Top1Accuracy()]``).

        BigDL's local form ``set_validation(batch_size, X_val, Y_val, trigger, val_method)``
        (its ``LocalOptimizer``) also works: an array in the place of the trigger is the
        labels."""
        from .triggers import EveryEpoch
        from .validation import Top1Accuracy
        if hasattr(trigger, "shape") and hasattr(val_set, "shape"):  # (X_val, Y_val, ...)
            if len(local) > 1:
                raise TypeError("set_validation: too many arguments")
            val_set, trigger, val_method = (val_set, trigger), val_method, (
                local[0] if local else None)
        elif local:
            raise TypeError("set_validation: too many arguments (batch_size, val_set, "
                            "trigger, val_method)")
        val_set = val_rdd if val_set is None else val_set
        if val_set is None:
            raise ValueError("set_validation: no validation set given")
        methods = val_method if val_method is not None else [Top1Accuracy()]
        methods = list(methods) if isinstance(methods, (list, tuple)) else [methods]
        arrays = _as_arrays(val_set, "validation set")
        if arrays is None and self._runner is None:
            raise TypeError("set_validation: a local training set needs (X, y) arrays or Samples "
                            f"for validation, got {type(val_set).__name__}")
        self.validation = dict(batch_size=int(batch_size), data=val_set, arrays=arrays,
                               trigger=trigger or EveryEpoch(), methods=methods)
        return self

    def set_checkpoint(self, checkpoint_trigger, checkpoint_path, is_overwrite=True, *,
                       isOverWrite=None):
        """Save weights + optim method state + counters to ``checkpoint_path`` when the trigger
        fires.  With ``is_overwrite`` only the newest checkpoint is kept."""
        if isOverWrite is not None:
            is_overwrite = isOverWrite
        os.makedirs(checkpoint_path, exist_ok=True)
        self.checkpoint = dict(trigger=checkpoint_trigger, path=str(checkpoint_path),
                               overwrite=bool(is_overwrite))
        return self

    def set_end_when(self, end_trigger):
        """Replace the end trigger."""
        self.end_trigger = end_trigger
        return self

    def set_model(self, model):
        """BigDL: train another model (of the same parameter layout if the optim method has
        state) with this optimizer's settings."""
        if not isinstance(model, Module):
            raise TypeError(f"set_model: model must be a workbench Module, got "
                            f"{type(model).__name__}")
        self.model = model
        return self

    def set_criterion(self, criterion):
        """BigDL: replace the loss, for optimizer reuse."""
        if not isinstance(criterion, Criterion):
            raise TypeError(f"set_criterion: criterion must be a Criterion, got "
                            f"{type(criterion).__name__}")
        self.criterion = criterion
        return self

    def set_traindata(self, training_set, batch_size=None):
        """BigDL: train on another data set (of any kind the constructor takes), optionally
        with another batch size, for optimizer reuse."""
        if batch_size is not None:
            self.batch_size = check_int("set_traindata", "batch_size", batch_size)
        self._set_training_set(training_set)
        return self

    def prepare_input(self):
        """BigDL: load the input ahead of ``optimize()``.  Nothing to do here (local arrays are
        in memory, and Spark data is read by the training job itself); returns self."""
        return self

    def set_optim_method(self, optim_method):
        """Replace the optim method (an OptimMethod, or a dict as for ``set_optim_methods``)."""
        self.optim_method = as_optim_method(self.model, optim_method)
        return self

    def set_optim_methods(self, optim_methods):
        """One optim method per named submodule, e.g. ``{"fc1": SGD(0.1), "conv": Adam()}``:
        each updates its submodule's slice of the flat parameters (every trainable parameter
        must belong to exactly one of them)."""
        if not isinstance(optim_methods, dict):
            raise TypeError(f"set_optim_methods: expected a dict {{submodule name: "
                            f"OptimMethod}}, got {type(optim_methods).__name__}")
        return self.set_optim_method(optim_methods)

    def stop(self):
        """Ask training to stop; honoured after the current iteration (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self):
        return self._stop.is_set()

    def sync_parameters(self):
        """Make ``self.model``'s weights those the last iteration produced, and return it.

        The local loop trains ``self.model`` itself: nothing to do.  On Spark the tasks train
        copies during a stretch of iterations and the driver's model changes when a stretch
        ends; called from an ``on_iteration`` listener, this fetches the iteration's weights
        from the tasks (and its gradient, if a listener has ``needs_parameters = True``).
        Listeners that read the weights during training (TensorBoard's parameter histograms)
        call it."""
        sync = getattr(self._runner, "sync_parameters", None)
        if sync is not None:
            sync()
        return self.model

    # BigDL's Scala (and older Python) camelCase spellings of the setters above
    setValidation = set_validation
    setCheckpoint = set_checkpoint
    setEndWhen = set_end_when
    setOptimMethod = set_optim_method
    setOptimMethods = set_optim_methods
    setModel = set_model
    setCriterion = set_criterion
    setTrainData = set_traindata

    # ------------------------------------------------------------------ training
    def optimize(self, resume_from=None):
        """Train until the end trigger fires (or ``stop()``); returns the trained model.

        Args:
            resume_from: a checkpoint file, or a checkpoint directory (its newest checkpoint):
                weights, optim method state, counters and random state are restored and training
                continues exactly where the checkpoint was taken.
        """
        self._stop.clear()
        if self.seed is None:
            self.seed = int(nn_random.rng().integers(2 ** 31))
        self._bind_trainable()
        if resume_from is not None:
            self._restore(resume_from)
        for listener in list(self.listeners):
            listener.on_start(self)
        try:
            if self._runner is not None:
                self._runner.run()
            elif self.cores is not None:
                previous = backend.set_num_threads(self.cores)
                try:
                    self._train_local()
                finally:
                    backend.set_num_threads(previous)
            else:
                self._train_local()
        except BaseException as e:
            self.emit("on_finished", FinishedEvent(self.state.epoch, self.state.iteration,
                                                   self.model, error=str(e), state=self.state))
            raise
        self.emit("on_finished", FinishedEvent(self.state.epoch, self.state.iteration, self.model,
                                               stopped=self._stop.is_set(), state=self.state))
        return self.model

    def _bind_trainable(self):
        """Fit the optim method to the model's trainable parameters as they are now (fine-tuning
        changes them between ``optimize()`` calls: ``freeze``, ``unfreeze``, ``stop_gradient``,
        ``replace``): when they changed since the last run, the method's buffers (momentum,
        moments), which belonged to the old vector, are cleared; a per-submodule method's slices
        are recomputed."""
        layout = [(path, getattr(m, n).size)
                  for path, m, n in self.model.named_parameters(trainable_only=True)]
        if getattr(self, "_trainable", None) not in (None, layout):
            self.optim_method.clear_history()
        self._trainable = layout
        if isinstance(self.optim_method, MultiOptimMethod) and \
                self.optim_method.slices is not None:
            self.optim_method.rebind(self.model)

    def epoch_permutation(self, epoch, n):
        """The order of the records in ``epoch`` (a function of the seed and the epoch only)."""
        return epoch_permutation(self.seed, epoch, n)

    def _train_local(self):
        model, method, state = self.model, self.optim_method, self.state
        X, y = self._arrays
        X = batch.apply(X, lambda a: a if a.dtype == model.dtype else a.astype(model.dtype))
        n = batch.num_rows(X)
        state.records_per_epoch = n
        step = IterationStep(model, self.criterion)
        model.training()
        order = self.epoch_permutation(state.epoch, n)
        while not self.end_trigger(state) and not self._stop.is_set():
            if state.start_iteration():
                order = self.epoch_permutation(state.epoch, n)
            start = time.perf_counter()
            idx = order[state.records_in_epoch:state.records_in_epoch + self.batch_size]
            xb, yb = batch.take(X, idx), batch.take(y, idx)
            profile = LayerProfile(model) if self.profiles(state.iteration + 1) else None
            if profile is None:
                loss = step.gradient(xb, yb)
            else:
                with profile.watch():
                    loss = step.gradient(xb, yb)
            bad_loss, bad_gradient = step.non_finite(loss)
            if bad_loss or bad_gradient:
                raise Divergence(state.iteration + 1, state.epoch, loss,
                                 "loss" if bad_loss else "gradient").error()
            closure = self._batch_feval(step, xb, yb, loss) if method.needs_closure else None
            lr = step.update(method, step.weights, step.grads, state.epoch, loss,
                             clip=self.clip_gradients, closure=closure)
            elapsed = time.perf_counter() - start
            state.finish_iteration(len(idx), loss)
            self.emit("on_iteration", IterationEvent(state.epoch, state.iteration, loss,
                                                     len(idx) / max(elapsed, 1e-9), lr, len(idx),
                                                     time.time(), state))
            if profile is not None:
                self.emit("on_profile", LayerProfileEvent(state.epoch, state.iteration,
                                                          profile.layers(), time.time()))
            self.after_iteration()

    def _batch_feval(self, step, xb, yb, loss):
        """``feval(w) -> (loss, grad)`` on this mini-batch for methods that evaluate several
        points (LBFGS); its first call returns the loss and gradient already computed."""
        first = [True]

        def feval(w):
            if first[0]:
                first[0] = False
                return loss, step.grads
            if w is not step.weights:
                np.copyto(step.weights, w)
            value = step.gradient(xb, yb)
            return value, self.clip_gradients(step.grads)
        return feval

    def after_iteration(self, validate=None, checkpoint=None):
        """Validation and checkpoints on their triggers (shared by the local and Spark loops).

        ``validate`` / ``checkpoint``: the triggers' answers when the caller has already asked
        them for this iteration (the Spark loop does, to know where a stretch ends); None asks
        the trigger now."""
        state = self.state
        if validate is None:
            validate = self.validation is not None and self.validation["trigger"](state)
        if checkpoint is None:
            checkpoint = self.checkpoint is not None and self.checkpoint["trigger"](state)
        if validate and self.validation is not None:
            scores = self.run_validation()
            self.emit("on_validation", ValidationEvent(state.epoch, state.iteration, scores,
                                                       time.time(), state))
        if checkpoint and self.checkpoint is not None:
            path = self.save_checkpoint()
            self.emit("on_checkpoint", CheckpointEvent(state.epoch, state.iteration, path,
                                                       time.time()))

    def run_validation(self):
        v = self.validation
        if self._runner is not None:
            results = self._runner.evaluate(v["data"], v["batch_size"], v["methods"])
        else:
            results = evaluate(self.model, v["arrays"], v["batch_size"], v["methods"])
        scores = {r.name: float(r.value) for r in results}
        self.state.score = float(results[0].value)
        self.optim_method.state["score"] = self.state.score
        self.model.training()
        return scores

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path=None):
        """Write a checkpoint (weights, optim state, counters, random state); returns its path."""
        state = self.state
        if path is None:
            path = os.path.join(self.checkpoint["path"], f"checkpoint-{state.iteration:08d}.bigdl")
        optim_doc, optim_arrays = self.optim_method.get_state()
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optim/{k}": v for k, v in optim_arrays.items()})
        document = {
            "kind": CHECKPOINT_FORMAT,
            "model": self.model.get_config(),
            "optim_method": self.optim_method.get_config(),
            "optim_state": optim_doc,
            "state": {k: getattr(state, k) for k in state.__dataclass_fields__},
            "seed": self.seed,
            "rng": nn_random.get_state(),
        }
        io.write_archive(path, document, arrays)
        if self.checkpoint is not None and self.checkpoint["overwrite"]:
            for old in glob.glob(os.path.join(os.path.dirname(path), "checkpoint-*.bigdl")):
                if os.path.abspath(old) != os.path.abspath(path):
                    os.remove(old)
        return path

    def _restore(self, path):
        document, arrays = load_checkpoint(path)
        model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        self.model.load_state_dict(model_state)
        self.optim_method.load_state(document["optim_state"],
                                     {k[len("optim/"):]: v for k, v in arrays.items()
                                      if k.startswith("optim/")})
        fields = TrainingState.__dataclass_fields__
        self.state = TrainingState(**{k: v for k, v in document["state"].items() if k in fields})
        self.seed = int(document["seed"])
        nn_random.set_state(document["rng"])


def load_checkpoint(path):
    """``(document, arrays)`` of a checkpoint file, or of the newest one in a directory."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "checkpoint-*.bigdl")))
        if not files:
            raise FileNotFoundError(f"no checkpoint-*.bigdl file in {path}")
        path = files[-1]
    document, arrays = io.read_archive(path)
    if document.get("kind") != CHECKPOINT_FORMAT:
        raise io.ModelFileError(f"{path}: not a training checkpoint")
    return document, arrays
