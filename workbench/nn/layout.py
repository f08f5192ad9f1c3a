"""Memory formats of 4-D activations: plain NCHW, or channels-last.

A 4-D activation always has the logical shape ``(N, C, H, W)``.  Its memory is either plain
C-contiguous NCHW, or *channels-last*: an ``(N, H, W, C)`` C-contiguous array seen through
``transpose(0, 3, 1, 2)`` (PyTorch's ``channels_last`` memory format).  numpy code reads both
correctly (it follows the strides); the native kernels take either without a copy.

Channels-last is the layout of oneDNN's convolutions on this machine's CPUs: for 16 channels it
is byte for byte the blocked layout (``nChw16c``) oneDNN prefers, and for 32 or 64 channels its
convolutions run on it directly.  So a native convolution with ``n_output_plane % 16 == 0`` (or a
channels-last input) writes its output channels-last, and the native layers after it (batch norm,
element-wise activations, pooling, the next convolution) keep that layout with no reorder:
activations stay in the primitive's layout between consecutive native layers, and numpy code
simply reads them.  ``backend.set_kernel("channels_last", False)`` turns it off (everything plain
NCHW, as the numpy reference computes it).
"""
from __future__ import annotations

import numpy as np

__all__ = ["is_channels_last", "physical", "native_array", "native_like", "empty", "like",
           "match"]


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
