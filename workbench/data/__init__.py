"""``workbench.data``: samples, mini-batches and bundled datasets (numpy only)."""
from .sample import *  # noqa: F401,F403
from .datasets import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
