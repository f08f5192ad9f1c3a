"""Multi-head attention (BigDL ``Attention``) and a Transformer encoder layer.

``Attention(hidden_size, num_heads, attention_dropout)`` follows BigDL (itself the TensorFlow
official Transformer): query, key, value and output projections without bias, queries scaled
by ``1/sqrt(hidden_size / num_heads)``, an additive attention bias, softmax, dropout on the
attention weights.  With the projections copied in, it computes what
``torch.nn.MultiheadAttention(hidden_size, num_heads, bias=False, batch_first=True)`` does.
"""
from __future__ import annotations


import numpy as np

from ..._checks import int_arg, probability
from .. import random
from ..activation.activations import ReLU, softmax
from ..containers import Sequential
from .composite import Composite
from ..regularization.dropout import Dropout
from ..initializers import Xavier, Zeros
from ..core.linear import Linear
from ..normalization.layer_norm import LayerNormalization
from ..module import check_grad_output
from ..shape.reshape import keep
from ..table.tables import Bottle, unbroadcast

__all__ = ["Attention", "TransformerEncoderLayer"]


def _dense(n_in, n_out, with_bias):
    """BigDL's ``TransformerOperation.dense``: a Linear with Xavier weights and zero bias."""
    return Linear(n_in, n_out, with_bias).set_init_method(Xavier(), Zeros())


class Attention(Composite):
    """Multi-head (self-)attention.

    ``q = x Wq^T``, ``k = y Wk^T``, ``v = y Wv^T`` are split into ``num_heads`` heads of size
    ``d = hidden_size / num_heads``; per head ``softmax(q k^T / sqrt(d) + bias) v``; the heads
    are joined and projected by ``Wo``.

    Args:
        hidden_size: size of an input (and output) vector; a multiple of ``num_heads``.
        num_heads: number of heads.
        attention_dropout: probability of dropping an attention weight while training (default
            0).  (BigDL passes ``1 - attention_dropout`` to its Dropout, which drops with that
            probability; here the argument is the drop probability, as its name says.)

    Weights: children 0..3 are the query, key, value and output ``Linear(hidden_size,
    hidden_size)`` maps without bias (Xavier initialized, as BigDL).

    Input shape: ``x`` ``(N, Lq, hidden_size)`` for self-attention; or a table ``[x, y]`` or
    ``[x, y, bias]`` (BigDL's form) with ``y`` ``(N, Lk, hidden_size)`` the keys/values and
    ``bias`` broadcastable to ``(N, num_heads, Lq, Lk)``, added to the attention logits (e.g.
    ``-1e9`` at padded or future positions).
    Output shape: ``(N, Lq, hidden_size)``.  The gradient is a tensor for a tensor input, and a
    table ``[dx, dy(, dbias)]`` for a table input.
    """

    def __init__(self, hidden_size, num_heads, attention_dropout=0.0):
        super().__init__()
        self.hidden_size = int_arg("Attention", "hidden_size", hidden_size, lambda v: v > 0,
                                   "a positive int")
        self.num_heads = int_arg("Attention", "num_heads", num_heads, lambda v: v > 0,
                                 "a positive int")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"Attention: hidden_size ({hidden_size!r}) must be a multiple of "
                             f"num_heads ({num_heads!r})")
        self.attention_dropout = probability("Attention", "attention_dropout", attention_dropout)
        self.depth = self.hidden_size // self.num_heads
        h = self.hidden_size
        self.query, self.key, self.value, self.output_layer = (
            _dense(h, h, False) for _ in range(4))
        self._own(self.query, self.key, self.value, self.output_layer)

    # ------------------------------------------------------------------ input handling
    def _parse(self, input):
        h = self.hidden_size
        expected = f"(N, L, {h}) or a table [x (N, Lq, {h}), y (N, Lk, {h})(, bias)]"
        if isinstance(input, np.ndarray):
            parts = [input, input]
        elif isinstance(input, (list, tuple)) and len(input) in (2, 3) and all(
                isinstance(t, np.ndarray) for t in input):
            parts = list(input)
        else:
            self._fail(expected, input)
        x, y = (self._as_array(t, (3,), expected) for t in parts[:2])
        if x.shape[2] != h or y.shape[2] != h or x.shape[0] != y.shape[0]:
            self._fail(expected, input)
        bias = None
        if len(parts) == 3:
            bias = parts[2].astype(x.dtype, copy=False)
            full = (x.shape[0], self.num_heads, x.shape[1], y.shape[1])
            try:
                ok = np.broadcast_shapes(bias.shape, full) == full
            except ValueError:
                ok = False
            if not ok:
                self._fail(f"a bias broadcastable to ({', '.join(map(str, full))})", input)
        return x, y, bias

    def _split(self, t, n, length):
        """``(n * length, hidden)`` -> ``(n, heads, length, depth)``."""
        return t.reshape(n, length, self.num_heads, self.depth).transpose(0, 2, 1, 3)

    def _join(self, t):
        """``(n, heads, length, depth)`` -> ``(n * length, hidden)``."""
        n, _, length, _ = t.shape
        return t.transpose(0, 2, 1, 3).reshape(n * length, self.hidden_size)

    # ------------------------------------------------------------------ the three verbs
    def update_output(self, input):
        x, y, bias = self._parse(input)
        n, lq, lk, hid = x.shape[0], x.shape[1], y.shape[1], self.hidden_size
        scale = self.depth ** -0.5
        q = self._split(self.query.forward(x.reshape(-1, hid)), n, lq) * scale
        k = self._split(self.key.forward(y.reshape(-1, hid)), n, lk)
        v = self._split(self.value.forward(y.reshape(-1, hid)), n, lk)
        logits = q @ k.transpose(0, 1, 3, 2)
        if bias is not None:
            logits += bias
        p = softmax(logits, -1, out=logits)
        mask = None
        if self.train and self.attention_dropout > 0:
            kept = random.rng().random(p.shape, dtype=np.float32) >= self.attention_dropout
            mask = kept.astype(p.dtype) / (1 - self.attention_dropout)
        dropped = p if mask is None else p * mask
        context = self._join(dropped @ v)
        keep(self, cache=(q, k, v, p, mask, dropped, context))
        out = self.output_layer.forward(context)
        return out.reshape(n, lq, hid)

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        x, y, bias = self._parse(input)
        q, k, v, p, mask, dropped, context = self._scratch["cache"]
        n, lq, hid = x.shape[0], x.shape[1], self.hidden_size
        g_context = self.output_layer.backward(context, np.reshape(grad_output, (-1, hid)))
        g_heads = self._split(g_context, n, lq)
        g_dropped = g_heads @ v.transpose(0, 1, 3, 2)
        g_v = dropped.transpose(0, 1, 3, 2) @ g_heads
        g_p = g_dropped if mask is None else g_dropped * mask
        g_logits = p * (g_p - np.sum(g_p * p, axis=-1, keepdims=True))
        g_q = (g_logits @ k) * self.depth ** -0.5
        g_k = g_logits.transpose(0, 1, 3, 2) @ q
        gx = self.query.backward(x.reshape(-1, hid), self._join(g_q)).reshape(x.shape).copy()
        gy = self.key.backward(y.reshape(-1, hid), self._join(g_k)).reshape(y.shape).copy()
        gy += self.value.backward(y.reshape(-1, hid), self._join(g_v)).reshape(y.shape)
        if isinstance(input, np.ndarray):
            gx += gy
            self.grad_input = gx
        else:
            self.grad_input = [gx, gy]
            if bias is not None:
                self.grad_input.append(unbroadcast(g_logits, bias.shape).reshape(bias.shape))
        return self.grad_input

    def extra_repr(self):
        return f"{self.hidden_size}, {self.num_heads} heads" + (
            f", dropout {self.attention_dropout:g}" if self.attention_dropout else "")


class TransformerEncoderLayer(Composite):
    """A Transformer encoder layer: self-attention and a position-wise feed-forward network,
    each with a residual connection and layer normalization.

    ``norm_first=False`` (default, the original Transformer and
    ``torch.nn.TransformerEncoderLayer``'s default)::

        h = LayerNorm1(x + Attention(x));   y = LayerNorm2(h + FFN(h))

    ``norm_first=True`` (BigDL's / TensorFlow's Transformer)::

        h = x + Attention(LayerNorm1(x));   y = h + FFN(LayerNorm2(h))

    with ``FFN(h) = Linear2(Dropout(ReLU(Linear1(h))))``.  With the weights copied in and
    dropout 0 it computes what ``torch.nn.TransformerEncoderLayer(hidden_size, num_heads,
    filter_size, dropout=0, batch_first=True, layer_norm_eps=1e-6)`` computes when the
    attention's biases are zero (BigDL's attention has none).

    Args:
        hidden_size: size of an input vector (a multiple of ``num_heads``).
        num_heads: number of attention heads.
        filter_size: width of the feed-forward network's hidden layer.
        attention_dropout: drop probability of the attention weights (default 0).
        ffn_dropout: drop probability after the feed-forward ReLU (default 0).
        norm_first: normalize before each sub-layer instead of after the residual sum.

    Weights: child 0 is the ``Attention``, 1 and 2 the two ``LayerNormalization``, 3 the
    feed-forward network (``Bottle`` of ``Linear(hidden, filter)``, ReLU, Dropout,
    ``Linear(filter, hidden)``).

    Input shape: ``x`` ``(N, L, hidden_size)``, or a table ``[x, bias]`` with an attention bias
    broadcastable to ``(N, num_heads, L, L)`` (a padding or causal mask).
    Output shape: ``(N, L, hidden_size)``; the gradient of a table input is ``[dx, dbias]``.
    """

    def __init__(self, hidden_size, num_heads, filter_size, attention_dropout=0.0,
                 ffn_dropout=0.0, norm_first=False):
        super().__init__()
        self.filter_size = int_arg("TransformerEncoderLayer", "filter_size", filter_size,
                                   lambda v: v > 0, "a positive int")
        self.ffn_dropout = probability("TransformerEncoderLayer", "ffn_dropout", ffn_dropout)
        self.norm_first = bool(norm_first)
        self.attention = Attention(hidden_size, num_heads, attention_dropout)
        self.hidden_size, self.num_heads = self.attention.hidden_size, self.attention.num_heads
        self.norm1 = LayerNormalization(self.hidden_size)
        self.norm2 = LayerNormalization(self.hidden_size)
        self.ffn = Bottle(Sequential()
                          .add(_dense(self.hidden_size, self.filter_size, True))
                          .add(ReLU())
                          .add(Dropout(self.ffn_dropout))
                          .add(_dense(self.filter_size, self.hidden_size, True)), 2)
        self._own(self.attention, self.norm1, self.norm2, self.ffn)

    def _parse(self, input):
        expected = f"(N, L, {self.hidden_size}) or a table [x, attention bias]"
        if isinstance(input, np.ndarray):
            return input, None
        if isinstance(input, (list, tuple)) and len(input) == 2 and all(
                isinstance(t, np.ndarray) for t in input):
            return input[0], input[1]
        self._fail(expected, input)

    def _attend(self, x, bias):
        return self.attention.forward(x if bias is None else [x, x, bias])

    def _attend_back(self, x, bias, g):
        """Gradient of the attention's input ``x`` (used as query, key and value)."""
        if bias is None:
            return self.attention.backward(x, g), None
        gx, gy, gbias = self.attention.backward([x, x, bias], g)
        return gx + gy, gbias

    def update_output(self, input):
        x, bias = self._parse(input)
        if x.ndim != 3 or x.shape[2] != self.hidden_size:
            self._fail(f"(N, L, {self.hidden_size})", input)
        if self.norm_first:
            h = x + self._attend(self.norm1.forward(x), bias)
            keep(self, h=h)
            return h + self.ffn.forward(self.norm2.forward(h))
        r1 = x + self._attend(x, bias)
        h = self.norm1.forward(r1)
        r2 = h + self.ffn.forward(h)
        keep(self, r1=r1, r2=r2)
        return self.norm2.forward(r2)

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        x, bias = self._parse(input)
        g = np.asarray(grad_output)
        if self.norm_first:
            h = self._scratch["h"]
            g_h = g + self.norm2.backward(h, self.ffn.backward(self.norm2.output, g))
            g_n1, g_bias = self._attend_back(self.norm1.output, bias, g_h)
            gx = g_h + self.norm1.backward(x, g_n1)
        else:
            g_r2 = self.norm2.backward(self._scratch["r2"], g)
            g_h = g_r2 + self.ffn.backward(self.norm1.output, g_r2)
            g_r1 = self.norm1.backward(self._scratch["r1"], g_h)
            g_att, g_bias = self._attend_back(x, bias, g_r1)
            gx = g_r1 + g_att
        self.grad_input = gx if bias is None else [gx, g_bias]
        return self.grad_input

    def extra_repr(self):
        return (f"{self.hidden_size}, {self.num_heads} heads, filter {self.filter_size}"
                + (", norm first" if self.norm_first else ""))
