"""``workbench.models``: the model zoo."""
from .lenet import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
