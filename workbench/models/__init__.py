"""``workbench.models``: the model zoo."""
from .autoencoder import *  # noqa: F401,F403
from .inception import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .names import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .ssd import *  # noqa: F401,F403
from .textcnn import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
