"""Broadcasting size-1 dimensions: ``ExpandSize`` (BigDL ``nn``).
"""
from __future__ import annotations

import numpy as np

from ..module import Module, check_grad_output

__all__ = ["ExpandSize"]


class ExpandSize(Module):
    """Expands size-1 dimensions of the input to ``target_sizes`` (BigDL ``ExpandSize``,
    Torch ``expand``); the backward sums the gradient over the expanded dimensions.

    Args:
        sizes: the output size per dimension; -1 keeps the input's size there (BigDL's name;
            ``target_sizes=`` also works).

    Input shape: a tensor with ``len(sizes)`` dimensions, each equal to the target or 1.
    Output shape: ``sizes`` (with -1 entries taken from the input).
    """

    def __init__(self, sizes=None, *, target_sizes=None):
        super().__init__()
        if (sizes is None) == (target_sizes is None):
            raise TypeError("ExpandSize: give the sizes once (sizes, or target_sizes)")
        if sizes is None:
            sizes = target_sizes
        self._init_args["sizes"] = sizes
        self._init_args.pop("target_sizes", None)
        target_sizes = sizes
        if not isinstance(target_sizes, (list, tuple)) or not target_sizes or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                and (s > 0 or s == -1) for s in target_sizes):
            raise ValueError(f"ExpandSize: sizes must be a non-empty list of positive "
                             f"ints or -1, got {target_sizes!r}")
        self.target_sizes = tuple(int(s) for s in target_sizes)

    def update_output(self, input):
        expected = "(" + ", ".join("*" if s == -1 else f"{s} or 1"
                                   for s in self.target_sizes) + ")"
        x = self._as_array(input, (len(self.target_sizes),), expected)
        shape = tuple(d if t == -1 else t for d, t in zip(x.shape, self.target_sizes))
        if any(d != t and d != 1 for d, t in zip(x.shape, shape)):
            self._fail(expected, x)
        out = self._buffer("output", shape, x.dtype)
        out[...] = x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output)
        axes = tuple(a for a, (d, t) in enumerate(zip(input.shape, g.shape)) if d != t)
        return g.sum(axis=axes, keepdims=True) if axes else np.array(g, copy=True)

    def extra_repr(self):
        return ", ".join(map(str, self.target_sizes))
