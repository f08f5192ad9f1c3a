"""Weight regularizers under ``workbench.optim``, where BigDL's Python API keeps them
(``from bigdl.optim.optimizer import L2Regularizer``).

They are the same classes as ``workbench.nn``'s: a layer takes them as ``wRegularizer`` /
``bRegularizer`` and ``Module.backward`` adds the penalty's gradient to the parameter's.
"""
from ..nn.regularizers import L1L2Regularizer, L1Regularizer, L2Regularizer, Regularizer

__all__ = ["Regularizer", "L1Regularizer", "L2Regularizer", "L1L2Regularizer"]
