"""Memory formats of 4-D activations: plain NCHW, or channels-last.

A 4-D activation always has the logical shape ``(N, C, H, W)``.  Its memory is either plain
C-contiguous NCHW, or *channels-last*: an ``(N, H, W, C)`` C-contiguous array seen through
``transpose(0, 3, 1, 2)`` (PyTorch's ``channels_last`` memory format).  numpy code reads both
correctly (it follows the strides); the native kernels take either without a copy.

Channels-last is the layout of oneDNN's convolutions on this machine's CPUs: for 16 channels it
is byte for byte the blocked layout (``nChw16c``) oneDNN prefers, and for 32 or 64 channels its
convolutions run on it directly.  For channel counts below a block (LeNet-5's 6 and 12) it is
what oneDNN's JIT pooling needs: on plain NCHW oneDNN 3.2 pools with its scalar ``simple_nchw``
loops (LeNet-5's two max-poolings took 2x the rest of its inference step), on channels-last with
``jit:avx2``, 11x faster.  So every native convolution writes its output channels-last, and the
native layers after it (batch norm, element-wise activations, pooling, the next convolution) keep
that layout with no reorder: activations stay in the primitive's layout between consecutive
native layers, and numpy code simply reads them.
``backend.set_kernel("channels_last", False)`` turns it off (everything plain NCHW, as the numpy
reference computes it).

The *data format* of a layer is another matter: BigDL's ``format="NHWC"`` /
``data_format="NHWC"`` (pooling, batch norm) says the user's arrays have the logical shape
``(N, H, W, C)``.  :class:`DataFormat` gives such a layer NHWC input and output by viewing them
as NCHW (``to_nchw``: no copy, the view is channels-last memory, which the kernels take as it
is) around the layer's NCHW code.
"""
from __future__ import annotations

import numpy as np

__all__ = ["is_channels_last", "physical", "native_array", "native_like", "empty", "like",
           "match", "check_data_format", "to_nchw", "to_nhwc", "DataFormat"]


def is_channels_last(a) -> bool:
    """True if ``a`` is a 4-D array whose memory is channels-last and not also plain NCHW (for
    ``C == 1`` or ``H == W == 1`` the two coincide: then it counts as plain)."""
    return (isinstance(a, np.ndarray) and a.ndim == 4 and not a.flags.c_contiguous
            and a.transpose(0, 2, 3, 1).flags.c_contiguous)


def physical(a):
    """The C-contiguous array behind ``a``: ``a`` itself when it is C-contiguous, the
    ``(N, H, W, C)`` array of a channels-last ``a``; None for any other memory."""
    if a.flags.c_contiguous:
        return a
    if is_channels_last(a):
        return a.transpose(0, 2, 3, 1)
    return None


def native_array(a, channels_last):
    """The C-contiguous array a native kernel takes for activation ``a``: its ``(N, H, W, C)``
    memory when ``channels_last`` (``a`` must be), else ``a`` as a C-contiguous NCHW array (a
    copy only if it is not one)."""
    return a.transpose(0, 2, 3, 1) if channels_last else np.ascontiguousarray(a)


def native_like(a, channels_last):
    """``native_array`` of ``a`` converted to the asked memory format first (a copy only when
    ``a`` has the other one): for a gradient that may arrive in either format."""
    return native_array(like(a, channels_last), channels_last)


def empty(shape, dtype, channels_last=False):
    """An uninitialized ``(N, C, H, W)`` array, channels-last if asked (and 4-D)."""
    if channels_last and len(shape) == 4:
        n, c, h, w = shape
        return np.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    return np.empty(shape, dtype=dtype)


def like(a, channels_last, out=None):
    """``a`` in the asked memory format: ``a`` itself if it has it, else a copy (into ``out``
    when given, which must have that format)."""
    a = np.asarray(a)
    if (is_channels_last(a) if channels_last else a.flags.c_contiguous):
        return a
    if not channels_last and a.ndim != 4:
        return np.ascontiguousarray(a) if out is None else _copy(out, a)
    if out is None:
        out = empty(a.shape, a.dtype, channels_last)
    return _copy(out, a)


def _copy(out, a):
    np.copyto(out, a)
    return out


def match(a, template):
    """``a`` in the memory format of ``template`` (a copy only when they differ)."""
    return like(a, is_channels_last(template))


# ---------------------------------------------------------------------- BigDL's data formats
DATA_FORMATS = ("NCHW", "NHWC")


def check_data_format(owner, name, value):
    """A BigDL data format argument: ``"NCHW"`` or ``"NHWC"`` (any case); raises ValueError
    naming ``owner`` and the argument otherwise."""
    if not isinstance(value, str) or value.upper() not in DATA_FORMATS:
        raise ValueError(f"{owner}: {name} must be 'NCHW' or 'NHWC', got {value!r}")
    return value.upper()


def to_nchw(a):
    """An ``(N, H, W, C)`` (or ``(H, W, C)``) array as its ``(N, C, H, W)`` (``(C, H, W)``)
    view, without a copy."""
    a = np.asarray(a)
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a.transpose(2, 0, 1)


def to_nhwc(a):
    """The inverse of :func:`to_nchw`: an ``(N, C, H, W)`` (or ``(C, H, W)``) array as its
    ``(N, H, W, C)`` view."""
    a = np.asarray(a)
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a.transpose(1, 2, 0)


class DataFormat:
    """Mixin of a ``Module`` with NCHW code that also takes BigDL's ``"NHWC"`` data format.

    The layer sets ``self.data_format`` (see :func:`check_data_format`) and implements its
    verbs for NCHW.  With ``"NHWC"``, ``forward`` / ``backward`` take and return ``(N, H, W, C)``
    (or ``(H, W, C)``) arrays: the input and the output gradient are viewed as NCHW, the layer
    runs, and its output and input gradient are viewed back.  Fusion with the next layer
    (``fused_forward``) is only offered for NCHW.
    """

    data_format = "NCHW"
    _viewing = False  # True while the NCHW code runs on NHWC arrays seen as NCHW

    def _fail(self, expected, got):
        # errors of the NCHW code name the shape the user gave (NHWC), not the NCHW view
        if self._viewing and isinstance(got, np.ndarray) and got.ndim in (3, 4):
            got = to_nhwc(got)
        super()._fail(expected, got)

    def forward(self, input):
        if self.data_format == "NCHW":
            return super().forward(input)
        if not isinstance(input, np.ndarray) or input.ndim not in (3, 4):
            self._fail("(N, H, W, C) or (H, W, C) (data format NHWC)", input)
        self._viewing = True
        try:
            self.output = to_nhwc(super().forward(to_nchw(input)))
        finally:
            self._viewing = False
        return self.output

    def backward(self, input, grad_output):
        if self.data_format == "NCHW":
            return super().backward(input, grad_output)
        from .module import check_grad_output
        check_grad_output(self, grad_output)
        self.output = to_nchw(self.output)  # the NCHW code checks the gradient against it
        self._viewing = True
        try:
            grad_input = super().backward(to_nchw(input), to_nchw(grad_output))
        finally:
            self.output = to_nhwc(self.output)
            self._viewing = False
        self.grad_input = None if grad_input is None else to_nhwc(grad_input)
        return self.grad_input

    def fused_forward(self, input, successor):
        fused = getattr(super(), "fused_forward", None)
        if self.data_format != "NCHW" or fused is None:
            return None
        return fused(input, successor)
