"""The base of layers made of child layers that their constructor builds
(``Highway``, ``Attention``, ``Transformer`` ...).
"""
from __future__ import annotations

from ..containers import Container
from ..module import Module



class Composite(Container, abstract=True):
    """A layer made of child layers that its constructor builds (not ``add``): the config holds
    only the constructor's arguments; the weights live in the children (paths ``0.weight``...).
    Subclasses implement ``backward`` through their children (which accumulate their own
    parameter gradients and regularizers)."""

    def add(self, module):
        raise TypeError(f"{self.label()}: its layers are built by the constructor, not with add()")

    def _own(self, *modules):
        for m in modules:
            Container.add(self, m)

    def get_config(self):
        return Module.get_config(self)

    @classmethod
    def _build_from_config(cls, config, positional, args):
        return cls(*positional, **args)

    def reset(self):
        for child in self._children:
            child.reset()
        return self

    def update_grad_input(self, input, grad_output):
        return self.backward(input, grad_output)

    def __repr__(self):
        return Module.__repr__(self)
