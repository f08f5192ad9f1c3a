"""BigDL's Transformer language model and its position-wise feed-forward block."""
from __future__ import annotations

import math

import numpy as np

from .. import random
from ..activation.activations import ANY_NDIM
from .multihead import Attention
from ..._checks import check_int, finite_real, probability
from .composite import Composite
from ..embedding.lookup import LookupTable
from ..initializers import Xavier, Zeros
from ..normalization.layer_norm import LayerNormalization
from ..module import Module, check_grad_output
from ..shape.reshape import keep

__all__ = ["FeedForwardNetwork", "Transformer"]


class FeedForwardNetwork(Module):
    """The position-wise feed-forward block of the Transformer (BigDL ``FeedForwardNetwork``):
    ``Linear(hidden -> filter) -> ReLU -> Dropout(relu_dropout) -> Linear(filter -> hidden)``
    applied to the last dimension.

    Args:
        hidden_size: model size (> 0).
        filter_size: inner size (> 0).
        relu_dropout: drop probability after the ReLU while training, in [0, 1) (BigDL hands
            its Dropout ``1 - relu_dropout``; here it is the drop probability, as its name says).

    Parameters: ``filter_weight (filter, hidden)``, ``filter_bias``, ``output_weight (hidden,
    filter)``, ``output_bias``; Xavier weights and zero biases as in BigDL.

    Input shape: ``(..., hidden_size)``, e.g. ``(N, T, hidden_size)``.
    Output shape: same as input.
    """

    def __init__(self, hidden_size, filter_size, relu_dropout):
        super().__init__()
        cls = "FeedForwardNetwork"
        self.hidden_size = check_int(cls, "hidden_size", hidden_size)
        self.filter_size = check_int(cls, "filter_size", filter_size)
        self.relu_dropout = finite_real(cls, "relu_dropout", relu_dropout, minimum=0)
        if self.relu_dropout >= 1:
            raise ValueError(f"{cls}: relu_dropout must be in [0, 1), got {relu_dropout!r}")
        self.weight_init_method = Xavier()
        self.bias_init_method = Zeros()
        self._add_parameter("filter_weight", (self.filter_size, self.hidden_size))
        self._add_parameter("filter_bias", (self.filter_size,))
        self._add_parameter("output_weight", (self.hidden_size, self.filter_size))
        self._add_parameter("output_bias", (self.hidden_size,))
        self.reset()

    def reset(self):
        h, f = self.hidden_size, self.filter_size
        self.weight_init_method.init(self.filter_weight, h, f)
        self.bias_init_method.init(self.filter_bias, h, f)
        self.weight_init_method.init(self.output_weight, f, h)
        self.bias_init_method.init(self.output_bias, f, h)
        return self

    def update_output(self, input):
        expected = f"(..., {self.hidden_size})"
        x = self._as_array(input, ANY_NDIM, expected)
        if x.ndim == 0 or x.shape[-1] != self.hidden_size:
            self._fail(expected, x)
        x2 = x.reshape(-1, self.hidden_size)
        hidden = np.maximum(x2 @ self.filter_weight.T + self.filter_bias, 0)
        mask = None
        if self.train and self.relu_dropout > 0:
            kept = random.rng().random(hidden.shape, dtype=np.float32) >= self.relu_dropout
            mask = kept.astype(hidden.dtype) / (1 - self.relu_dropout)
            dropped = hidden * mask
        else:
            dropped = hidden
        keep(self, cache=(x2, hidden, mask, dropped))
        out = dropped @ self.output_weight.T + self.output_bias
        return out.reshape(x.shape)

    def _grads(self, grad_output):
        check_grad_output(self, grad_output)
        x2, hidden, mask, dropped = self._scratch["cache"]
        g = np.asarray(grad_output, dtype=self.output_weight.dtype).reshape(-1, self.hidden_size)
        g_dropped = g @ self.output_weight
        g_hidden = g_dropped if mask is None else g_dropped * mask
        g_hidden = g_hidden * (hidden > 0)
        return g, g_hidden

    def update_grad_input(self, input, grad_output):
        _, g_hidden = self._grads(grad_output)
        return (g_hidden @ self.filter_weight).reshape(np.shape(input))

    def acc_grad_parameters(self, input, grad_output):
        g, g_hidden = self._grads(grad_output)
        x2, _, _, dropped = self._scratch["cache"]
        self.grad_output_weight += g.T @ dropped
        self.grad_output_bias += g.sum(axis=0)
        self.grad_filter_weight += g_hidden.T @ x2
        self.grad_filter_bias += g_hidden.sum(axis=0)

    def extra_repr(self):
        return f"{self.hidden_size} -> {self.filter_size} -> {self.hidden_size}, " \
               f"relu_dropout={self.relu_dropout:g}"


def position_encoding(length, channels):
    """The Transformer's sinusoidal position signal ``(length, channels)``: sines then cosines
    of ``position / 10000^(i / (channels/2 - 1))`` (``channels`` odd: a last zero column)."""
    half = channels // 2
    increment = math.log(1.0e4) / max(half - 1, 1)
    inv = np.exp(np.arange(half) * -increment)
    scaled = np.arange(length)[:, None] * inv[None]
    signal = np.zeros((length, channels))
    signal[:, :half], signal[:, half:2 * half] = np.sin(scaled), np.cos(scaled)
    return signal


class Transformer(Composite):
    """The Transformer language model of BigDL (``Transformer`` with ``LanguageModel`` type,
    after TensorFlow's official Transformer): a stack of pre-normalized decoder blocks with
    causal self-attention over token ids.

    ``x = shift_right(embed(ids) * sqrt(hidden_size)) + position_encoding``, dropout; then
    ``num_hidden_layers`` times ``x = x + drop(Attention(LN(x), LN(x), causal_bias))`` and
    ``x = x + drop(FeedForwardNetwork(LN(x)))``; then a final ``LayerNormalization``.  The shift
    puts a zero vector first and drops the last step, so the output at step ``t`` sees only the
    tokens before ``t`` (it predicts token ``t``).  With ``with_share_weights_linear`` the
    result is projected to vocabulary logits by the transposed embedding matrix (tied weights:
    the projection's gradient goes to the embedding).  The encoder-decoder translation variant
    and beam-search decoding are not provided.

    Args:
        vocab_size: number of token ids (> 0); ids are zero-based.
        hidden_size: model size (> 0, a multiple of ``num_heads``).
        num_heads: attention heads (> 0).
        filter_size: inner size of the feed-forward networks (> 0).
        num_hidden_layers: number of blocks (> 0).
        postprocess_dropout: drop probability of the embedded input and of each sub-layer's
            output before its residual sum (BigDL's ``embeddingDropout``).
        attention_dropout: drop probability of the attention weights.
        relu_dropout: drop probability after the feed-forward ReLU (BigDL's ``ffnDropout``).
        padding_value: the padding id, embedded as a zero vector (its row gets no gradient
            through the lookup; default 0, as BigDL); None: no padding id.
        with_share_weights_linear: output vocabulary logits (default False: hidden states).

    (BigDL's own dropout layers take keep probabilities here; these are drop probabilities,
    as their names say, like ``Attention`` and ``FeedForwardNetwork``.)

    Weights: child 0 is the embedding ``LookupTable(vocab_size, hidden_size)``; each block adds
    a ``LayerNormalization``, an ``Attention``, a ``LayerNormalization`` and a
    ``FeedForwardNetwork``; the last child is the final ``LayerNormalization``.

    Input shape: ``(N, T)`` token ids.
    Output shape: ``(N, T, hidden_size)``, or ``(N, T, vocab_size)`` logits with
    ``with_share_weights_linear``.  The ids get a zero gradient.
    """

    def __init__(self, vocab_size, hidden_size, num_heads, filter_size, num_hidden_layers,
                 postprocess_dropout, attention_dropout, relu_dropout, padding_value=0,
                 with_share_weights_linear=False):
        super().__init__()
        cls = "Transformer"
        self.vocab_size = check_int(cls, "vocab_size", vocab_size)
        self.hidden_size = check_int(cls, "hidden_size", hidden_size)
        self.num_heads = check_int(cls, "num_heads", num_heads)
        self.filter_size = check_int(cls, "filter_size", filter_size)
        self.num_hidden_layers = check_int(cls, "num_hidden_layers", num_hidden_layers)
        self.postprocess_dropout = probability(cls, "postprocess_dropout", postprocess_dropout)
        self.attention_dropout = probability(cls, "attention_dropout", attention_dropout)
        self.relu_dropout = probability(cls, "relu_dropout", relu_dropout)
        if padding_value is not None and (isinstance(padding_value, bool) or not isinstance(
                padding_value, (int, np.integer))):
            raise ValueError(f"{cls}: padding_value must be an int id or None, got "
                             f"{padding_value!r}")
        self.padding_value = None if padding_value is None else int(padding_value)
        self.with_share_weights_linear = bool(with_share_weights_linear)
        h = self.hidden_size
        self.embedding = LookupTable(self.vocab_size, h, padding_value=self.padding_value)
        self.blocks = []
        for _ in range(self.num_hidden_layers):
            self.blocks.append((LayerNormalization(h), Attention(h, self.num_heads,
                                                                 self.attention_dropout),
                                LayerNormalization(h),
                                FeedForwardNetwork(h, self.filter_size, self.relu_dropout)))
        self.final_norm = LayerNormalization(h)
        self._own(self.embedding, *[m for block in self.blocks for m in block], self.final_norm)

    def _drop(self, x):
        if not (self.train and self.postprocess_dropout > 0):
            return x, None
        kept = random.rng().random(x.shape, dtype=np.float32) >= self.postprocess_dropout
        mask = kept.astype(x.dtype) / (1 - self.postprocess_dropout)
        return x * mask, mask

    def update_output(self, input):
        expected = "(N, T) token ids"
        if not isinstance(input, np.ndarray) or input.ndim != 2 or input.shape[1] < 1:
            self._fail(expected, input)
        n, t = input.shape
        emb = self.embedding.forward(input)
        dtype = emb.dtype
        pad = None
        if self.padding_value is not None:
            pad = (np.asarray(input) == self.padding_value)[..., None]
        scale = math.sqrt(self.hidden_size)
        e = np.where(pad, 0, emb * scale) if pad is not None else emb * scale
        x = np.zeros_like(e)
        x[:, 1:] = e[:, :-1]
        x += position_encoding(t, self.hidden_size).astype(dtype)
        x, mask0 = self._drop(x)
        bias = np.triu(np.full((t, t), -1e9, dtype=dtype), k=1)[None, None]
        steps = []   # per block: the inputs of the two sub-layers and the dropout masks
        for norm1, attention, norm2, ffn in self.blocks:
            n1 = norm1.forward(x)
            a, m1 = self._drop(attention.forward([n1, n1, bias]))
            x_ffn = x + a
            f, m2 = self._drop(ffn.forward(norm2.forward(x_ffn)))
            steps.append((x, x_ffn, m1, m2))
            x = x_ffn + f
        y = self.final_norm.forward(x)
        keep(self, pad=pad, mask0=mask0, steps=steps, bias=bias, x_last=x, y=y)
        if self.with_share_weights_linear:
            return y @ self.embedding.weight.T
        return y

    def backward(self, input, grad_output):
        check_grad_output(self, grad_output)
        sc = self._scratch
        g = np.asarray(grad_output, dtype=sc["y"].dtype)
        if self.with_share_weights_linear:
            if not self.embedding._frozen:
                self.embedding.grad_weight += np.einsum("ntv,nth->vh", g, sc["y"])
            g = g @ self.embedding.weight
        gx = self.final_norm.backward(sc["x_last"], g)
        for (norm1, attention, norm2, ffn), (x_att, x_ffn, m1, m2) in zip(
                reversed(self.blocks), reversed(sc["steps"])):
            gf = gx if m2 is None else gx * m2
            gx = gx + norm2.backward(x_ffn, ffn.backward(norm2.output, gf))
            ga = gx if m1 is None else gx * m1
            g_n1, g_y, _ = attention.backward([norm1.output, norm1.output, sc["bias"]], ga)
            gx = gx + norm1.backward(x_att, g_n1 + g_y)
        if sc["mask0"] is not None:
            gx = gx * sc["mask0"]
        ge = np.zeros_like(gx)
        ge[:, :-1] = gx[:, 1:]
        ge *= math.sqrt(self.hidden_size)
        if sc["pad"] is not None:
            ge = np.where(sc["pad"], 0, ge)
        self.grad_input = self.embedding.backward(input, ge)
        return self.grad_input

    def extra_repr(self):
        return (f"vocab {self.vocab_size}, hidden {self.hidden_size}, {self.num_heads} heads, "
                f"filter {self.filter_size}, {self.num_hidden_layers} layers"
                + (", shared-weights logits" if self.with_share_weights_linear else ""))
