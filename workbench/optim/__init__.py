"""``workbench.optim``: optim methods, LR schedules, regularizers, triggers, validation methods
and the training loop (``Optimizer``).  Imports only ``nn``, ``data`` and ``io``."""
from .events import *  # noqa: F401,F403
from .methods import *  # noqa: F401,F403
from .schedules import *  # noqa: F401,F403
from .regularizers import *  # noqa: F401,F403
from .triggers import *  # noqa: F401,F403
from .validation import *  # noqa: F401,F403
from .progress import *  # noqa: F401,F403
from .optimizer import *  # noqa: F401,F403
