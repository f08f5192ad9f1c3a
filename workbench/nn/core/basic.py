"""Pass-through layers: ``Identity`` and ``Echo`` (BigDL ``nn``).
"""
from __future__ import annotations

from ..module import Module, shape_of

__all__ = ["Identity", "Echo"]


class Identity(Module):
    """Passes the input (a tensor or a table) through unchanged.

    Input shape: any.  Output shape: the input.
    """

    def update_output(self, input):
        return input

    def update_grad_input(self, input, grad_output):
        return grad_output


class Echo(Module):
    """Passes the input (a tensor or a table) through unchanged and prints its shape on the way
    forward and the gradient's shape on the way back: a probe for debugging a model.

    Input shape: any.  Output shape: the input.
    """

    def update_output(self, input):
        print(f"{self.label()} : activation size is {shape_of(input)}")
        return input

    def update_grad_input(self, input, grad_output):
        print(f"{self.label()} : gradient size is {shape_of(grad_output)}")
        return grad_output
