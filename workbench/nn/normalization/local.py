"""Normalization over a sample or a neighbourhood (BigDL ``nn``): Normalize (unit L_p norm),
NormalizeScale, the local response normalizations SpatialCrossMapLRN / SpatialWithinChannelLRN,
and Torch7's local contrast normalizations SpatialSubtractive / Divisive /
ContrastiveNormalization.  (Batch normalization is in ``batch_norm``, LayerNormalization in
``layer_norm``.)"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..._checks import positive_int, real
from ..activation.activations import repr_number
from ..math.elementwise import Expanding
from ..module import Module, check_grad_output

__all__ = ["Normalize", "NormalizeScale", "SpatialCrossMapLRN", "SpatialWithinChannelLRN",
           "SpatialSubtractiveNormalization", "SpatialDivisiveNormalization",
           "SpatialContrastiveNormalization"]

DOUBLEMAX = 1.7976931348623157e308  # BigDL's spelling of an infinite p


def _odd_size(cls, size):
    size = positive_int(cls, "size", size)
    if size % 2 == 0:
        raise ValueError(f"{cls}: size must be odd, got {size!r}")
    return size


# ---------------------------------------------------------------------- layer normalization

# ---------------------------------------------------------------------- L_p normalization

def _check_p(cls, p):
    p = real(cls, "p", p)
    if not p > 0:
        raise ValueError(f"{cls}: p must be > 0 (an L_p norm), got {p!r}")
    return math.inf if p >= DOUBLEMAX else p


class _LpNorm:
    """Forward / backward of ``y = x / ||x||_p`` along axis 1 of a 2-D or 4-D array; the norm
    is ``(sum |x|^p + eps)^(1/p)``, or ``max |x| + eps`` for an infinite ``p`` (BigDL)."""

    def __init__(self, p, eps):
        self.p, self.eps = p, eps

    def __getstate__(self):
        # the norms of the last batch are not part of the model
        return {"p": self.p, "eps": self.eps}

    def forward(self, x):
        a = np.abs(x)
        if self.p == math.inf:
            self.argmax = np.argmax(a, axis=1)
            self.norm = np.max(a, axis=1, keepdims=True) + self.eps
            self.normp = None
        else:
            self.normp = np.sum(a if self.p == 1 else a ** self.p, axis=1, keepdims=True) + self.eps
            self.norm = self.normp ** (1 / self.p)
        return x / self.norm

    def backward(self, x, g):
        dot = np.sum(g * x, axis=1, keepdims=True)
        gi = g / self.norm
        if self.p == math.inf:
            # only the largest |x| moves the norm: d norm / d x_k = sign(x_k)
            k = np.expand_dims(self.argmax, 1)
            sign = np.sign(np.take_along_axis(x, k, axis=1))
            update = -dot * sign / (self.norm * self.norm)
            picked = np.take_along_axis(gi, k, axis=1) + update
            np.put_along_axis(gi, k, picked, axis=1)
            return gi
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(x != 0, np.sign(x) * np.abs(x) ** (self.p - 1), 0)
        gi -= dot * d / (self.norm * self.normp)
        return gi


def _as_rows(module, input, expected):
    """Normalize's inputs: ``(D,)`` is one row, ``(N, D)`` and ``(N, C, H, W)`` are used as is."""
    x = module._as_array(input, (1, 2, 4), expected)
    return x.reshape(1, -1) if x.ndim == 1 else x


class Normalize(Module):
    """Scales each sample to unit L_p norm: ``y = x / (sum |x|^p + eps)^(1/p)``.

    Args:
        p: the norm, > 0; ``float("inf")`` (or BigDL's ``DOUBLEMAX``) for the max norm
            ``max |x| + eps``.
        eps: added to the sum (default 1e-10) so all-zero samples give zeros, not NaN.

    The norm is taken over the features of ``(D,)`` and ``(N, D)`` input, and over the channels
    at each pixel of ``(N, C, H, W)`` input (as BigDL).

    Input shape: ``(D,)``, ``(N, D)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    _EXPECTED = "(D,), (N, D) or (N, C, H, W)"

    def __init__(self, p, eps=1e-10):
        super().__init__()
        self.p = _check_p("Normalize", p)
        self.eps = real("Normalize", "eps", eps)
        if self.eps < 0:
            raise ValueError(f"Normalize: eps must be >= 0, got {eps!r}")
        self._lp = _LpNorm(self.p, self.eps)

    def update_output(self, input):
        x = _as_rows(self, input, self._EXPECTED)
        y = self._lp.forward(x)
        out = self._buffer("output", np.shape(input), x.dtype)
        np.copyto(out, y.reshape(out.shape))
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        x = x.reshape(1, -1) if x.ndim == 1 else x
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.copyto(gi, self._lp.backward(x, np.asarray(grad_output).reshape(x.shape))
                  .reshape(gi.shape))
        return gi

    def extra_repr(self):
        return f"{repr_number(self.p)}, {repr_number(self.eps)}"


class NormalizeScale(Expanding):
    """:class:`Normalize` followed by a learned scale (Caffe's / SSD's ``Normalize`` layer):
    ``y = normalize_p(x) * weight``, the weight of shape ``size`` expanded as in ``CMul``.

    Args:
        p: the norm (see :class:`Normalize`).
        scale: the initial value of every weight.
        size: the weight shape, e.g. ``[1, C, 1, 1]`` for one scale per channel.
        w_regularizer: optional regularizer of the weight.
        eps: see :class:`Normalize` (default 1e-10).

    Input shape: ``(D,)``, ``(N, D)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    def __init__(self, p, scale, size, w_regularizer=None, eps=1e-10):
        super().__init__()
        self.p = _check_p("NormalizeScale", p)
        self.scale = real("NormalizeScale", "scale", scale)
        self.eps = real("NormalizeScale", "eps", eps)
        if self.eps < 0:
            raise ValueError(f"NormalizeScale: eps must be >= 0, got {eps!r}")
        self._init_size(size)
        self._lp = _LpNorm(self.p, self.eps)
        self._add_parameter("weight", self.size)
        self.reset()
        self._set_regularizer("weight", w_regularizer)

    def reset(self):
        self.weight.fill(self.scale)
        return self

    def update_output(self, input):
        x = _as_rows(self, input, Normalize._EXPECTED)
        y = self._lp.forward(x).reshape(np.shape(input))
        self._view(self.weight, y)  # a clear error if the weight does not expand to the input
        normalized = self._buffer("normalized", y.shape, x.dtype)
        np.copyto(normalized, y)
        out = self._buffer("output", y.shape, x.dtype)
        np.multiply(normalized, self._view(self.weight, y), out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        g = np.asarray(grad_output) * self._view(self.weight, self.output)
        gi = self._buffer("grad_input", self.output.shape, self.output.dtype)
        np.copyto(gi, self._lp.backward(rows, g.reshape(rows.shape)).reshape(gi.shape))
        return gi

    def acc_grad_parameters(self, input, grad_output):
        y = self._scratch["normalized"]
        view = self._view(self.weight, y).shape
        self.grad_weight += self._reduce(y * grad_output, view, self.size)

    def extra_repr(self):
        return f"{repr_number(self.p)}, {repr_number(self.scale)}, {list(self.size)}"


# ---------------------------------------------------------------------- local response norms

def _window_sum(a, axis, half):
    """Sum of ``a`` over the window ``[i - half, i + half]`` along ``axis`` (zeros outside)."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (half + 1, half)
    c = np.cumsum(np.pad(a, pad), axis=axis)
    hi = np.take(c, np.arange(2 * half + 1, 2 * half + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return hi - lo


class SpatialCrossMapLRN(Module):
    """Local response normalization across channels (AlexNet's LRN):
    ``y_c = x_c / (k + alpha / size * sum_{c' in window(c)} x_c'^2) ^ beta``, the window the
    ``size`` channels centred on ``c`` (clipped at the edges).

    Args:
        size: the number of channels summed over (odd, default 5).
        alpha: scale (default 1).
        beta: exponent (default 0.75).
        k: additive constant (default 1).
        data_format: ``"NCHW"`` (default) or ``"NHWC"``.

    Input shape: ``(N, C, H, W)`` or ``(N, H, W, C)``.  Output shape: same as input.
    """

    def __init__(self, size=5, alpha=1.0, beta=0.75, k=1.0, data_format="NCHW"):
        super().__init__()
        self.size = _odd_size("SpatialCrossMapLRN", size)
        self.alpha = real("SpatialCrossMapLRN", "alpha", alpha)
        self.beta = real("SpatialCrossMapLRN", "beta", beta)
        self.k = real("SpatialCrossMapLRN", "k", k)
        if not isinstance(data_format, str) or data_format.upper() not in ("NCHW", "NHWC"):
            raise ValueError("SpatialCrossMapLRN: data_format must be 'NCHW' or 'NHWC', "
                             f"got {data_format!r}")
        self.data_format = data_format.upper()

    def _axis(self):
        return 1 if self.data_format == "NCHW" else 3

    def _lrn_native(self, x):
        """``(native module, geometry)`` for the oneDNN LRN (NCHW, float32), or None."""
        if self.data_format != "NCHW" or x.size == 0 or self.k <= 0 or self.size < 3:
            return None
        nat = backend.use_native(x.dtype, "lrn")
        if nat is None:
            return None
        n, c, h, w = x.shape
        geom = nat.LrnGeometry(n=n, c=c, h=h, w=w, size=self.size)
        fast, _ = nat.lrn_info(geom, self.alpha, self.beta, self.k)
        return (nat, geom) if fast else None  # no jit kernel: numpy is faster than oneDNN's ref

    def update_output(self, input):
        x = self._as_array(input, (4,), "(N, C, H, W)" if self.data_format == "NCHW"
                           else "(N, H, W, C)")
        out = self._buffer("output", x.shape, x.dtype)
        found = self._lrn_native(x)
        scratch = self.__dict__.setdefault("_scratch", {})
        scratch["native_geom"] = None  # scratch: a native object, never pickled with the layer
        if found is not None:
            nat, geom = found
            params = (self.alpha, self.beta, self.k)
            ws = self._buffer("workspace", (nat.lrn_workspace_size(geom, *params),), np.uint8)
            nat.lrn_forward(np.ascontiguousarray(x), out, ws, geom, *params)
            scratch["native_geom"] = geom  # backward follows the path forward took
            return out
        half = (self.size - 1) // 2
        scale = self._buffer("scale", x.shape, x.dtype)
        np.copyto(scale, _window_sum(x * x, self._axis(), half))
        scale *= self.alpha / self.size
        scale += self.k
        np.power(scale, -self.beta, out=out)
        out *= x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        geom = self.__dict__.get("_scratch", {}).get("native_geom")
        if geom is not None:
            nat = backend.native()
            gi = self._buffer("grad_input", x.shape, x.dtype)
            nat.lrn_backward(np.ascontiguousarray(x), np.ascontiguousarray(grad_output, x.dtype),
                             gi, self._scratch["workspace"], geom, self.alpha, self.beta, self.k)
            return gi
        scale = self._scratch["scale"]
        half = (self.size - 1) // 2
        ratio = grad_output * self.output / scale  # g_c * x_c * scale_c^(-beta-1)
        gi = self._buffer("grad_input", x.shape, x.dtype)
        np.power(scale, -self.beta, out=gi)
        gi *= grad_output
        gi -= (2 * self.alpha * self.beta / self.size) * x * _window_sum(ratio, self._axis(), half)
        return gi

    def extra_repr(self):
        return (f"{self.size}, {repr_number(self.alpha)}, {repr_number(self.beta)}, "
                f"{repr_number(self.k)}")


class SpatialWithinChannelLRN(Module):
    """Local response normalization within each channel (Caffe's ``WITHIN_CHANNEL`` LRN):
    ``y = x / (1 + alpha * mean_{size x size window} x^2) ^ beta``, the window centred on each
    pixel with zeros outside the image (always divided by ``size^2``).

    Args:
        size: the side of the square window (odd, default 5).
        alpha: scale (default 1).
        beta: exponent (default 0.75).

    Input shape: ``(C, H, W)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    def __init__(self, size=5, alpha=1.0, beta=0.75):
        super().__init__()
        self.size = _odd_size("SpatialWithinChannelLRN", size)
        self.alpha = real("SpatialWithinChannelLRN", "alpha", alpha)
        self.beta = real("SpatialWithinChannelLRN", "beta", beta)

    def _local_mean(self, a):
        half = (self.size - 1) // 2
        s = _window_sum(_window_sum(a, a.ndim - 2, half), a.ndim - 1, half)
        return s / (self.size * self.size)

    def update_output(self, input):
        x = self._as_array(input, (3, 4), "(C, H, W) or (N, C, H, W)")
        scale = self._buffer("scale", x.shape, x.dtype)
        np.copyto(scale, self._local_mean(x * x))
        scale *= self.alpha
        scale += 1
        out = self._buffer("output", x.shape, x.dtype)
        np.power(scale, -self.beta, out=out)
        out *= x
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        scale = self._scratch["scale"]
        ratio = grad_output * self.output / scale
        gi = self._buffer("grad_input", x.shape, x.dtype)
        np.power(scale, -self.beta, out=gi)
        gi *= grad_output
        gi -= (2 * self.alpha * self.beta) * x * self._local_mean(ratio)
        return gi

    def extra_repr(self):
        return f"{self.size}, {repr_number(self.alpha)}, {repr_number(self.beta)}"


# ---------------------------------------------------------------------- local contrast norms

def _correlate_same(s, kernel):
    """``(N, H, W)`` zero-padded 'same' cross-correlation with an odd ``(kh, kw)`` kernel."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    n, h, w = s.shape
    padded = np.pad(s, ((0, 0), (ph, ph), (pw, pw)))
    out = np.zeros_like(s)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j]:
                out += kernel[i, j] * padded[:, i:i + h, j:j + w]
    return out


def _correlate_same_transposed(g, kernel):
    """The adjoint of :func:`_correlate_same` (its gradient with respect to the input)."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    n, h, w = g.shape
    padded = np.zeros((n, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j]:
                padded[:, i:i + h, j:j + w] += kernel[i, j] * g
    return padded[:, ph:ph + h, pw:pw + w]


class _LocalContrast(Module):
    """Shared parts of Torch7's local contrast normalizations.

    Every channel is averaged with the same kernel and the channels are summed, so the local
    estimate is one map per sample, replicated over the channels; ``coef`` (the estimate of an
    all-ones input) corrects the borders, where the zero padding would bias it.
    """

    _cls = "LocalContrast"

    def _init_kernel(self, n_input_plane, kernel):
        cls = self._cls
        self.n_input_plane = positive_int(cls, "n_input_plane", n_input_plane)
        k = np.ones((9, 9)) if kernel is None else np.array(kernel, dtype=np.float64)
        if k.ndim not in (1, 2) or k.size == 0 or any(d % 2 == 0 for d in k.shape):
            raise ValueError(f"{cls}: kernel must be a 1-D or 2-D array with odd sizes, got "
                             f"shape {k.shape}")
        if not np.all(np.isfinite(k)) or k.sum() == 0:
            raise ValueError(f"{cls}: kernel must be finite with a non-zero sum")
        self.kernel = k
        k2 = np.outer(k, k) if k.ndim == 1 else k
        # per-channel weights summing to 1 over all channels (BigDL's normalization)
        self._weights = k2 / (k2.sum() * self.n_input_plane)

    def get_config(self):
        config = super().get_config()
        if config["args"].get("kernel") is None and self._init_args.get("kernel") is not None:
            config["args"]["kernel"] = self.kernel.tolist()
        return config

    def _expected(self):
        c = self.n_input_plane
        return f"({c}, H, W) or (N, {c}, H, W)"

    def _input4(self, input):
        x = self._as_array(input, (3, 4), self._expected())
        if x.shape[-3] != self.n_input_plane:
            self._fail(self._expected(), x)
        return x if x.ndim == 4 else x[None]

    def _coef(self, h, w, dtype):
        cached = self.__dict__.get("_coef_cache")
        if cached is None or cached[0] != (h, w, np.dtype(dtype).str):
            ones = np.full((1, h, w), float(self.n_input_plane))
            cached = self._coef_cache = ((h, w, np.dtype(dtype).str),
                                         _correlate_same(ones, self._weights).astype(dtype))
        return cached[1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_coef_cache", None)
        return state


class SpatialSubtractiveNormalization(_LocalContrast):
    """Subtracts from every pixel the kernel-weighted mean of its neighbourhood taken over all
    channels (Torch7 / BigDL): ``y_c = x_c - (sum_c' x_c' * k) / coef``.

    Args:
        n_input_plane: the number of channels (default 1).
        kernel: the averaging kernel, a 2-D array or a 1-D one used as the separable
            ``outer(kernel, kernel)``; odd sizes (default ``ones(9, 9)``).  It is normalized
            (the caller's array is left alone) and saved in the config.

    Input shape: ``(C, H, W)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    _cls = "SpatialSubtractiveNormalization"

    def __init__(self, n_input_plane=1, kernel=None):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)

    def update_output(self, input):
        x = self._input4(input)
        coef = self._coef(x.shape[2], x.shape[3], x.dtype)
        mean = _correlate_same(x.sum(axis=1), self._weights.astype(x.dtype)) / coef
        out = self._buffer("output", np.shape(input), x.dtype)
        np.subtract(x, mean[:, None], out=out.reshape(x.shape))
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        g = np.asarray(grad_output, dtype=self.output.dtype)
        g4 = g if g.ndim == 4 else g[None]
        coef = self._coef(g4.shape[2], g4.shape[3], g4.dtype)
        gmean = _correlate_same_transposed(g4.sum(axis=1) / coef, self._weights.astype(g.dtype))
        gi = self._buffer("grad_input", g.shape, g.dtype)
        np.subtract(g4, gmean[:, None], out=gi.reshape(g4.shape))
        return gi

    def extra_repr(self):
        return f"{self.n_input_plane}, kernel {'x'.join(map(str, self.kernel.shape))}"


class SpatialDivisiveNormalization(_LocalContrast):
    """Divides every pixel by the kernel-weighted standard deviation of its neighbourhood
    taken over all channels (Torch7 / BigDL):
    ``s = sqrt(sum_c' x_c'^2 * k) / coef``, ``y_c = x_c / (s if s > threshold else thresval)``.

    Args:
        n_input_plane: the number of channels (default 1).
        kernel: the averaging kernel (see :class:`SpatialSubtractiveNormalization`).
        threshold: local deviations at or below it are replaced by ``thresval``
            (default 1e-4).
        thresval: the replacement (default 1e-4).

    Input shape: ``(C, H, W)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    _cls = "SpatialDivisiveNormalization"

    def __init__(self, n_input_plane=1, kernel=None, threshold=1e-4, thresval=1e-4):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.threshold = real(self._cls, "threshold", threshold)
        self.thresval = real(self._cls, "thresval", thresval)
        if self.thresval == 0:
            raise ValueError(f"{self._cls}: thresval must not be 0 (it divides), got {thresval!r}")

    def update_output(self, input):
        x = self._input4(input)
        coef = self._coef(x.shape[2], x.shape[3], x.dtype)
        std = np.sqrt(_correlate_same((x * x).sum(axis=1), self._weights.astype(x.dtype)))
        adjusted = std / coef
        kept = adjusted > self.threshold
        divisor = np.where(kept, adjusted, self.thresval)
        self._state = (std, kept, divisor)
        out = self._buffer("output", np.shape(input), x.dtype)
        np.divide(x, divisor[:, None], out=out.reshape(x.shape))
        return out

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        x = np.asarray(input, dtype=self.output.dtype)
        x4 = x if x.ndim == 4 else x[None]
        g4 = np.asarray(grad_output, dtype=x.dtype).reshape(x4.shape)
        std, kept, divisor = self._state
        coef = self._coef(x4.shape[2], x4.shape[3], x4.dtype)
        g_divisor = -(g4 * x4).sum(axis=1) / (divisor * divisor)
        g_std = np.where(kept, g_divisor, 0) / coef
        with np.errstate(divide="ignore", invalid="ignore"):
            g_var = np.where(std > 0, g_std / (2 * std), 0)
        g_sq = _correlate_same_transposed(g_var, self._weights.astype(x.dtype))
        gi = self._buffer("grad_input", x.shape, x.dtype)
        np.copyto(gi.reshape(x4.shape), g4 / divisor[:, None] + 2 * x4 * g_sq[:, None])
        return gi

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_state", None)
        return state

    def extra_repr(self):
        return (f"{self.n_input_plane}, kernel {'x'.join(map(str, self.kernel.shape))}, "
                f"{repr_number(self.threshold)}, {repr_number(self.thresval)}")


class SpatialContrastiveNormalization(_LocalContrast):
    """Subtractive then divisive local normalization with one kernel (Torch7 / BigDL): see
    :class:`SpatialSubtractiveNormalization` and :class:`SpatialDivisiveNormalization`.

    Args:
        n_input_plane: the number of channels (default 1).
        kernel: the averaging kernel (default ``ones(9, 9)``).
        threshold, thresval: see :class:`SpatialDivisiveNormalization` (default 1e-4).

    Input shape: ``(C, H, W)`` or ``(N, C, H, W)``.  Output shape: same as input.
    """

    _cls = "SpatialContrastiveNormalization"

    def __init__(self, n_input_plane=1, kernel=None, threshold=1e-4, thresval=1e-4):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.threshold = real(self._cls, "threshold", threshold)
        self.thresval = real(self._cls, "thresval", thresval)
        self._sub = SpatialSubtractiveNormalization(self.n_input_plane, self.kernel)
        self._div = SpatialDivisiveNormalization(self.n_input_plane, self.kernel, threshold,
                                                 thresval)

    def update_output(self, input):
        self._input4(input)  # errors name this layer
        return self._div.forward(self._sub.forward(input))

    def update_grad_input(self, input, grad_output):
        check_grad_output(self, grad_output)
        return self._sub.backward(input, self._div.backward(self._sub.output, grad_output))

    def extra_repr(self):
        return (f"{self.n_input_plane}, kernel {'x'.join(map(str, self.kernel.shape))}, "
                f"{repr_number(self.threshold)}, {repr_number(self.thresval)}")
