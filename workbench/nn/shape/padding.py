"""Padding, cropping and resizing (BigDL ``nn``): SpatialZeroPadding, Padding, Cropping2D,
Cropping3D, UpSampling1D / 2D / 3D (nearest neighbour) and ResizeBilinear."""
from __future__ import annotations

import numpy as np

from ..._checks import check_int, int_list, real
from ..activation.activations import ANY_NDIM
from ..module import Module, check_grad_output

__all__ = ["SpatialZeroPadding", "Padding", "Cropping2D", "Cropping3D", "UpSampling1D",
           "UpSampling2D", "UpSampling3D", "ResizeBilinear"]


def _format(cls, arg, value, allowed):
    if not isinstance(value, str) or value.upper() not in allowed:
        raise ValueError(f"{cls}: {arg} must be one of {', '.join(repr(a) for a in allowed)}, "
                         f"got {value!r}")
    return value.upper()


def _fmt(shape):
    return "(" + ", ".join(map(str, shape)) + ")"


def _image_shape(data_format):
    """The expected 4-D input of an ``"NCHW"`` / ``"NHWC"`` layer, for error messages."""
    return "(N, C, H, W)" if data_format == "NCHW" else "(N, H, W, C)"


def _height_axis(data_format):
    """The axis of the rows of a 4-D ``"NCHW"`` / ``"NHWC"`` input (the columns follow it)."""
    return 2 if data_format == "NCHW" else 1


def _image(module, input):
    """``input`` checked as a 4-D image batch in ``module.data_format``."""
    return module._as_array(input, (4,), _image_shape(module.data_format))


def _stored(module, key, value, dtype):
    """``value`` copied into the layer's cached ``key`` buffer of ``dtype``."""
    buf = module._buffer(key, value.shape, dtype)
    np.copyto(buf, value)
    return buf


class _Reframe(Module):
    """A layer that pads (positive amounts) or crops (negative amounts) some axes: the output
    is a constant frame with a block of the input copied in; the backward copies it back."""

    _value = 0.0

    def _pads(self, x):
        """``{axis: (before, after)}`` for a checked input ``x``."""
        raise NotImplementedError

    def _plan(self, x):
        pads = self._pads(x)
        out_shape, src, dst = list(x.shape), [slice(None)] * x.ndim, [slice(None)] * x.ndim
        for axis, (before, after) in pads.items():
            n = x.shape[axis]
            m = n + before + after
            if m <= 0:
                return None
            start, stop = max(0, -before), n - max(0, -after)
            length = max(0, stop - start)
            out_shape[axis] = m
            src[axis] = slice(start, start + length)
            dst[axis] = slice(max(0, before), max(0, before) + length)
        return tuple(out_shape), tuple(src), tuple(dst)

    def update_output(self, input):
        x = self._checked(input)
        plan = self._plan(x)
        if plan is None:
            self._fail(self._expected() + " large enough to keep something after cropping", x)
        out_shape, src, dst = self._last_plan = plan
        out = self._buffer("output", out_shape, x.dtype)
        out.fill(self._value)
        out[dst] = x[src]
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        _, src, dst = self._last_plan
        gi = self._buffer("grad_input", np.shape(input), self.output.dtype)
        gi.fill(0)
        gi[src] = np.asarray(grad_output)[dst]
        return gi

    def _checked(self, input):
        raise NotImplementedError

    def _expected(self):
        raise NotImplementedError


class SpatialZeroPadding(_Reframe):
    """Pads each feature map with zeros; negative amounts crop instead.

    Args:
        pad_left, pad_right, pad_top, pad_bottom: columns / rows added on each side.

    Input shape: ``(C, H, W)`` or ``(N, C, H, W)``.
    Output shape: ``(..., H + pad_top + pad_bottom, W + pad_left + pad_right)``.
    """

    def __init__(self, pad_left, pad_right, pad_top, pad_bottom):
        super().__init__()
        self.pad_left, self.pad_right, self.pad_top, self.pad_bottom = (
            check_int("SpatialZeroPadding", arg, v, None) for arg, v in (
                ("pad_left", pad_left), ("pad_right", pad_right), ("pad_top", pad_top),
                ("pad_bottom", pad_bottom)))

    def _expected(self):
        return "(C, H, W) or (N, C, H, W)"

    def _checked(self, input):
        return self._as_array(input, (3, 4), self._expected())

    def _pads(self, x):
        return {x.ndim - 2: (self.pad_top, self.pad_bottom),
                x.ndim - 1: (self.pad_left, self.pad_right)}

    def extra_repr(self):
        return f"l={self.pad_left}, r={self.pad_right}, t={self.pad_top}, b={self.pad_bottom}"


class Cropping2D(_Reframe):
    """Crops rows and columns off the borders of 4-D input.

    Args:
        heightCrop: ``[top, bottom]`` rows to remove (ints >= 0).
        widthCrop: ``[left, right]`` columns to remove.
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Input shape: ``(N, C, H, W)`` or ``(N, H, W, C)``.
    Output shape: ``(N, C, H - top - bottom, W - left - right)`` (or NHWC).
    """

    def __init__(self, heightCrop, widthCrop, data_format="NCHW"):  # noqa: N803
        super().__init__()
        self.height_crop = int_list("Cropping2D", "heightCrop", heightCrop, 2, 0)
        self.width_crop = int_list("Cropping2D", "widthCrop", widthCrop, 2, 0)
        self.data_format = _format("Cropping2D", "data_format", data_format, ("NCHW", "NHWC"))

    def _expected(self):
        return _image_shape(self.data_format)

    def _checked(self, input):
        return _image(self, input)

    def _pads(self, x):
        h = _height_axis(self.data_format)
        return {h: tuple(-c for c in self.height_crop), h + 1: tuple(-c for c in self.width_crop)}

    def extra_repr(self):
        return f"{list(self.height_crop)}, {list(self.width_crop)}"


class Cropping3D(_Reframe):
    """Crops the three spatial dimensions of 5-D input.

    Args:
        dim1Crop, dim2Crop, dim3Crop: ``[before, after]`` amounts to remove on each.
        data_format: ``"channel_first"`` (default, ``(N, C, D1, D2, D3)``) or
            ``"channel_last"`` (``(N, D1, D2, D3, C)``).

    Input shape: ``(N, C, D1, D2, D3)`` or ``(N, D1, D2, D3, C)``.
    Output shape: the same with each ``Di`` reduced by its two crops.
    """

    def __init__(self, dim1Crop, dim2Crop, dim3Crop, data_format="channel_first"):  # noqa: N803
        super().__init__()
        self.crops = tuple(int_list("Cropping3D", arg, v, 2, 0) for arg, v in (
            ("dim1Crop", dim1Crop), ("dim2Crop", dim2Crop), ("dim3Crop", dim3Crop)))
        if data_format not in ("channel_first", "channel_last"):
            raise ValueError("Cropping3D: data_format must be 'channel_first' or 'channel_last', "
                             f"got {data_format!r}")
        self.data_format = data_format

    def _expected(self):
        return ("(N, C, D1, D2, D3)" if self.data_format == "channel_first"
                else "(N, D1, D2, D3, C)")

    def _checked(self, input):
        return self._as_array(input, (5,), self._expected())

    def _pads(self, x):
        first = 2 if self.data_format == "channel_first" else 1
        return {first + i: (-a, -b) for i, (a, b) in enumerate(self.crops)}

    def extra_repr(self):
        return ", ".join(str(list(c)) for c in self.crops)


class Padding(Module):
    """Inserts ``|pad|`` units of ``value`` into dimension ``dim`` (BigDL / Torch7 ``Padding``).

    Args:
        dim: the 1-based dimension of one sample to pad.
        pad: how many units; negative pads on the left (before the ``n_index``-th element),
            positive on the right (after the ``n_index``-th element from the end).
        n_input_dim: the number of dimensions of one sample; input with another number of
            dimensions has a leading batch dimension (and ``dim`` shifts by one).
        value: the padding value (default 0).
        n_index: where the padding goes, counted from the padded side (default 1: at the edge).

    Input shape: any with the ``dim``-th sample dimension.
    Output shape: same as input with ``|pad|`` more along that dimension.
    """

    def __init__(self, dim, pad, n_input_dim, value=0.0, n_index=1):
        super().__init__()
        self.dim = check_int("Padding", "dim", dim, 1)
        self.pad = check_int("Padding", "pad", pad, None)
        self.n_input_dim = check_int("Padding", "n_input_dim", n_input_dim, 1)
        self.value = real("Padding", "value", value)
        self.n_index = check_int("Padding", "n_index", n_index, 1)

    def _plan(self, x):
        axis = self.dim if x.ndim != self.n_input_dim else self.dim - 1
        expected = (f"a tensor with dimension {self.dim} of {self.n_input_dim} per sample "
                    f"and at least {self.n_index - 1} elements there")
        if axis >= x.ndim:
            self._fail(expected, x)
        n = x.shape[axis]
        at = self.n_index - 1 if self.pad < 0 else n - self.n_index + 1
        if not 0 <= at <= n:
            self._fail(expected, x)
        return axis, at

    def update_output(self, input):
        x = self._as_array(input, ANY_NDIM, "a tensor")
        axis, at = self._last_plan = self._plan(x)
        width = abs(self.pad)
        shape = list(x.shape)
        shape[axis] += width
        out = self._buffer("output", shape, x.dtype)
        out.fill(self.value)
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(0, at)
        out[tuple(idx)] = x[tuple(idx)]
        src = list(idx)
        src[axis], idx[axis] = slice(at, None), slice(at + width, None)
        out[tuple(idx)] = x[tuple(src)]
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        axis, at = self._last_plan
        g = np.asarray(grad_output)
        keep = np.r_[0:at, at + abs(self.pad):g.shape[axis]]
        gi = self._buffer("grad_input", np.shape(input), self.output.dtype)
        gi[...] = np.take(g, keep, axis=axis)
        return gi

    def extra_repr(self):
        return f"{self.dim}, {self.pad}, {self.n_input_dim}, {self.value:g}, {self.n_index}"


# ---------------------------------------------------------------------- nearest up-sampling

class _Repeat(Module):
    """Nearest-neighbour up-sampling: each of some axes repeated by an integer factor."""

    def _axes(self, x):
        """``[(axis, factor), ...]`` for a checked input."""
        raise NotImplementedError

    def update_output(self, input):
        x = self._checked(input)
        out = x
        for axis, factor in self._axes(x):
            out = np.repeat(out, factor, axis=axis)
        return _stored(self, "output", out, x.dtype)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input)
        g = np.asarray(grad_output)
        shape, sum_axes = [], []
        factors = dict(self._axes(x))
        for axis, n in enumerate(x.shape):
            shape.append(n)
            if axis in factors:
                shape.append(factors[axis])
                sum_axes.append(len(shape) - 1)
        gi = self._buffer("grad_input", x.shape, self.output.dtype)
        np.sum(g.reshape(shape), axis=tuple(sum_axes), out=gi)
        return gi


class UpSampling1D(_Repeat):
    """Repeats each time step ``length`` times: ``(N, T, F)`` -> ``(N, T * length, F)``.

    Args:
        length: the up-sampling factor (> 0).

    Input shape: ``(N, T, F)``.  Output shape: ``(N, T * length, F)``.
    """

    def __init__(self, length):
        super().__init__()
        self.length = check_int("UpSampling1D", "length", length, 1)

    def _checked(self, input):
        return self._as_array(input, (3,), "(N, T, F)")

    def _axes(self, x):
        return [(1, self.length)]

    def extra_repr(self):
        return str(self.length)


class UpSampling2D(_Repeat):
    """Repeats rows ``size[0]`` times and columns ``size[1]`` times (nearest neighbour).

    Args:
        size: ``[height_factor, width_factor]`` (positive ints).
        data_format: ``"nchw"`` (default) or ``"nhwc"`` (either case).

    Input shape: ``(N, C, H, W)`` or ``(N, H, W, C)``.
    Output shape: ``(N, C, H * size[0], W * size[1])`` (or NHWC).
    """

    def __init__(self, size, data_format="nchw"):
        super().__init__()
        self.size = int_list("UpSampling2D", "size", size, 2, 1)
        self.data_format = _format("UpSampling2D", "data_format", data_format, ("NCHW", "NHWC"))

    def _checked(self, input):
        return _image(self, input)

    def _axes(self, x):
        h = _height_axis(self.data_format)
        return [(h, self.size[0]), (h + 1, self.size[1])]

    def extra_repr(self):
        return f"{list(self.size)}"


class UpSampling3D(_Repeat):
    """Repeats depth, rows and columns by ``size`` (nearest neighbour).

    Args:
        size: ``[depth_factor, height_factor, width_factor]`` (positive ints).

    Input shape: ``(N, C, D, H, W)``.
    Output shape: ``(N, C, D * size[0], H * size[1], W * size[2])``.
    """

    def __init__(self, size):
        super().__init__()
        self.size = int_list("UpSampling3D", "size", size, 3, 1)

    def _checked(self, input):
        return self._as_array(input, (5,), "(N, C, D, H, W)")

    def _axes(self, x):
        return [(2 + i, f) for i, f in enumerate(self.size)]

    def extra_repr(self):
        return f"{list(self.size)}"


# ---------------------------------------------------------------------- bilinear resize

def interpolation_matrix(in_size, out_size, align_corners, dtype=np.float64):
    """``(out_size, in_size)`` matrix of BigDL's (TensorFlow 1's) bilinear weights along one
    axis: output ``i`` samples input position ``i * scale`` with ``scale = (in - 1) / (out - 1)``
    when aligning corners, else ``in / out``."""
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    pos = np.arange(out_size) * scale
    lower = np.minimum(np.floor(pos).astype(np.int64), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    lerp = pos - lower
    m = np.zeros((out_size, in_size), dtype=dtype)
    rows = np.arange(out_size)
    np.add.at(m, (rows, lower), 1 - lerp)
    np.add.at(m, (rows, upper), lerp)
    return m


class ResizeBilinear(Module):
    """Resizes images to ``output_height x output_width`` by bilinear interpolation.

    Args:
        output_height, output_width: the output size (positive ints).
        align_corner: if True the corner pixels of input and output coincide (as
            ``torch.nn.functional.interpolate(..., align_corners=True)``); if False (default)
            output pixel ``i`` samples input position ``i * in / out`` (TensorFlow 1 and
            BigDL; not PyTorch's half-pixel rule).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Input shape: ``(N, C, H, W)`` or ``(N, H, W, C)``.
    Output shape: ``(N, C, output_height, output_width)`` (or NHWC).
    """

    def __init__(self, output_height, output_width, align_corner=False, data_format="NCHW"):
        super().__init__()
        self.output_height = check_int("ResizeBilinear", "output_height", output_height, 1)
        self.output_width = check_int("ResizeBilinear", "output_width", output_width, 1)
        self.align_corner = bool(align_corner)
        self.data_format = _format("ResizeBilinear", "data_format", data_format,
                                   ("NCHW", "NHWC"))

    def _matrices(self, h, w, dtype):
        key = (h, w, np.dtype(dtype).str)
        cached = self.__dict__.get("_weights")
        if cached is None or cached[0] != key:
            cached = self._weights = (key, (
                interpolation_matrix(h, self.output_height, self.align_corner, dtype),
                interpolation_matrix(w, self.output_width, self.align_corner, dtype)))
        return cached[1]

    def _nchw(self, a):
        return a if self.data_format == "NCHW" else a.transpose(0, 3, 1, 2)

    def update_output(self, input):
        x = _image(self, input)
        xc = self._nchw(x)
        my, mx = self._matrices(xc.shape[2], xc.shape[3], x.dtype)
        y = my @ xc @ mx.T  # (N, C, out_h, out_w)
        if self.data_format == "NHWC":
            y = y.transpose(0, 2, 3, 1)
        return _stored(self, "output", y, x.dtype)

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input)
        xc_shape = self._nchw(x).shape
        my, mx = self._matrices(xc_shape[2], xc_shape[3], self.output.dtype)
        g = self._nchw(np.asarray(grad_output))
        gx = my.T @ g @ mx
        if self.data_format == "NHWC":
            gx = gx.transpose(0, 2, 3, 1)
        return _stored(self, "grad_input", gx, self.output.dtype)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_weights", None)
        return state

    def extra_repr(self):
        corners = ", align corners" if self.align_corner else ""
        return f"{self.output_height}x{self.output_width}{corners}"
