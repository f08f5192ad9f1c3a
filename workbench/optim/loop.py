"""The one training iteration: what the local loop and every Spark task do with a mini-batch.

An iteration is, in this order (DESIGN.md, "Training: one loop, many listeners"):

1. ``TrainingState.start_iteration()`` — roll over into the next epoch if the last one ended
   (the caller then draws the epoch's order with :func:`epoch_permutation`);
2. :meth:`IterationStep.gradient` — forward, the objective (:func:`objective`), backward into
   the model's flat gradient vector;
3. :meth:`IterationStep.non_finite` — the finite check; a diverged iteration raises
   :meth:`Divergence.error` and is not applied;
4. :meth:`IterationStep.update` — the learning rate, gradient clipping, the optim method's
   update of the flat weights;
5. ``TrainingState.finish_iteration(records, loss)`` — the counters the triggers read.

The local loop (``optim.optimizer``) runs the five steps on the whole batch.  A Spark task
(``spark.trainer``) runs step 2 on its share of the batch, sums the shares' loss, record counts
and non-finite flags with its peers (``spark.protocol.IterationHeader``), reduce-scatters the
gradient, and runs step 4 on its slice of the weights; the Spark driver counts with step 5.
Nothing here knows about Spark, sockets or listeners.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..nn.module import batch_share

__all__ = ["TrainingError", "Divergence", "IterationStep", "epoch_permutation", "objective"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN/inf); the model keeps its last good
    weights."""


def epoch_permutation(seed, epoch, n):
    """The order of the ``n`` records in ``epoch``: a function of the seed and the epoch only,
    so the Spark tasks compute the same global batches as the local loop."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def objective(model, criterion_loss, share=1.0):
    """The loss the training loops report and minimize: the criterion's loss plus the activity
    penalties of the last forward (``L1Penalty``, ``ActivityRegularization``, ...) plus the
    weight regularizers' penalties (``wRegularizer`` ...), as Keras's total loss.  Their
    gradients are the ones ``backward`` adds, so the reported loss is the function whose
    gradient the update follows.  (BigDL reports the criterion's loss alone.)

    Args:
        model: the model that ran the forward.
        criterion_loss: the criterion's loss of that forward.
        share: the part of the batch this forward saw (a Spark task's; see
            ``workbench.nn.module.batch_share``): the weight penalty is counted in that part.
    """
    loss = float(criterion_loss) + model.penalty_loss()
    reg = model.regularization_loss()
    return loss + share * float(reg) if reg else loss


@dataclass(frozen=True)
class Divergence:
    """An iteration whose loss or gradient was not finite (it is never applied).

    Attributes:
        iteration: the 1-based number of the iteration that diverged.
        epoch: its epoch.
        loss: its (global) loss, possibly NaN or inf.
        what: ``"loss"`` if the loss was not finite, else ``"gradient"``.
    """
    iteration: int
    epoch: int
    loss: float
    what: str

    def error(self):
        """The ``TrainingError`` that ends the run (raise it)."""
        what = f"loss is {self.loss}" if self.what == "loss" else "a gradient is not finite"
        return TrainingError(
            f"training diverged at iteration {self.iteration} (epoch {self.epoch}): {what}; "
            f"the model keeps the weights of iteration {self.iteration - 1} — lower the "
            "learning rate or check the data")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, fields):
        return cls(int(fields["iteration"]), int(fields["epoch"]), float(fields["loss"]),
                   str(fields["what"]))


def _scaled(grad, scale):
    """``grad`` (an array or a table of arrays) times ``scale``, in new arrays."""
    if isinstance(grad, (list, tuple)):
        return type(grad)(_scaled(a, scale) for a in grad)
    return grad * grad.dtype.type(scale)


def _averages(criterion):
    """True if ``criterion``'s loss is a mean over the batch, False for a sum; for a composite
    (``ParallelCriterion``, ``MultiCriterion``) the answer of all its parts, None if they
    differ."""
    parts = getattr(criterion, "criteria", None)
    if isinstance(parts, (list, tuple)) and parts:
        answers = {_averages(c) for c in parts}
        return answers.pop() if len(answers) == 1 else None
    return bool(getattr(criterion, "size_average", True))


class IterationStep:
    """Steps 2–4 of an iteration for one model replica (see the module docstring).

    Args:
        model: the ``Module`` being trained (its flat parameters are fetched once).
        criterion: the ``Criterion``.

    Attributes:
        weights, grads: the model's flat weight and gradient vectors.
    """

    def __init__(self, model, criterion):
        self.model, self.criterion = model, criterion
        self.weights, self.grads = model.get_parameters()
        self.average = _averages(criterion)

    def gradient(self, xb, yb, share=1.0):
        """Zero the gradient, run forward and backward on ``(xb, yb)``; return the objective.

        Args:
            xb, yb: the records (and targets) of this replica's part of the batch.
            share: that part's fraction of the global batch (1 in the local loop).  The
                criterion's mean is weighted by it (a sum criterion adds up as it is),
                per-record penalties add up as they are, and whole-batch terms (weight
                regularizers, averaged penalties) are weighted by the share inside the passes,
                so the sum over the replicas is the local loop's objective and gradient.

        Returns:
            this part's objective (a float; summed over the replicas on Spark).
        """
        model, criterion = self.model, self.criterion
        if self.average is None and share != 1.0:
            raise ValueError(f"{type(criterion).__name__} mixes criteria that average over the "
                             "batch and criteria that sum: its loss cannot be split between "
                             "Spark tasks; give all its criteria the same size_average")
        self.grads.fill(0)
        scale = share if self.average else 1.0
        with batch_share(share):
            output = model.forward(xb)
            loss = criterion.forward(output, yb)
            grad_output = criterion.backward(output, yb)
            if scale != 1.0:
                grad_output = _scaled(grad_output, scale)
            # nothing reads the data's gradient: no backward where nothing trained is left
            model.backward_params(xb, grad_output)
            return objective(model, float(loss) * scale, share)

    def non_finite(self, loss):
        """``(bad_loss, bad_gradient)``: whether ``loss`` or any gradient of the last
        :meth:`gradient` is NaN or inf."""
        return not np.isfinite(loss), not np.isfinite(self.grads.sum())

    @staticmethod
    def update(method, weights, grads, epoch, loss, clip=None, learning_rate=None,
               closure=None):
        """Apply the optim method: its state learns the epoch, the learning rate is read,
        the gradient clipped, the weights updated, and the loss recorded (schedules such as
        ``Plateau`` read it at the next step).

        Args:
            method: the ``OptimMethod`` (a Spark task's: the one for its slice).
            weights, grads: the flat vectors it updates (a Spark task's slices).
            epoch: the iteration's epoch.
            loss: the iteration's global loss.
            clip: ``clip(grads)`` clips in place (None: no clipping).
            learning_rate: returns the rate to report (default ``method.get_learning_rate``).
            closure: for methods that evaluate several points (``LBFGS``): ``feval(w) ->
                (loss, grad)`` on this batch; its first call returns the gradient computed.

        Returns:
            the learning rate of this update.
        """
        method.state["epoch"] = epoch
        lr = (learning_rate or method.get_learning_rate)()
        if clip is not None:
            clip(grads)
        if closure is not None:
            method.optimize(closure, weights)
        else:
            method.update(weights, grads)
        method.state["loss"] = loss
        return lr
