"""``workbench.nn``: modules, containers, layers, criteria and initializers (numpy only).

Everything a model is made of; BigDL's class names and argument order.  Every public name is
importable from ``workbench.nn`` itself.  The infrastructure is at the top: ``module``
(``Module``), ``containers``, ``graph``, ``initializers``,
``regularizers``, ``random``, ``layout``, ``backend`` and ``gemm``.  The layers are grouped by
domain, as Keras groups ``layers/``: ``core``, ``activation``, ``convolution``, ``pooling``,
``normalization``, ``recurrent``, ``embedding``, ``regularization``, ``shape``, ``table``,
``math``, ``attention`` and ``detection``; the losses and their ``Criterion`` base are in
``criteria``.
"""
from . import random  # noqa: F401 - re-exported
from .module import LayerError, Module  # noqa: F401 - re-exported
from .criteria.criterion import Criterion, LabelError  # noqa: F401 - re-exported
from .initializers import *  # noqa: F401,F403
from .regularizers import *  # noqa: F401,F403
from .containers import *  # noqa: F401,F403
from .graph import *  # noqa: F401,F403
from .core import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .math import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .table import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .convolution import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .criteria import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .detection import *  # noqa: F401,F403

# the domain subpackages, in the order above (the notebook magics offer their names)
DOMAINS = ("core", "activation", "convolution", "pooling", "normalization", "recurrent",
           "embedding", "regularization", "shape", "table", "math", "attention", "detection",
           "criteria")
