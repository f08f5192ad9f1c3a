"""``workbench.nn``: modules, containers, layers, criteria and initializers (numpy only).

Everything a model is made of; BigDL's class names and argument order.
"""
from . import random  # noqa: F401 - re-exported
from .module import LayerError, Module  # noqa: F401 - re-exported
from .criterion import Criterion, LabelError  # noqa: F401 - re-exported
from .initializers import *  # noqa: F401,F403
from .regularizers import *  # noqa: F401,F403
from .containers import *  # noqa: F401,F403
from .graph import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .table import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .convolution import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .convolution_ext import *  # noqa: F401,F403
from .temporal import *  # noqa: F401,F403
from .volumetric import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .local_norm import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .criteria import *  # noqa: F401,F403
from .criteria_classification import *  # noqa: F401,F403
from .criteria_regression import *  # noqa: F401,F403
from .criteria_embedding import *  # noqa: F401,F403
from .criteria_distribution import *  # noqa: F401,F403
from .criteria_composite import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .conv_lstm import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .bigdl_extra import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from .conv_map import *  # noqa: F401,F403
from .detection import *  # noqa: F401,F403
