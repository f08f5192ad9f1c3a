"""TextCNN (Kim 2014): sentence classification with parallel 1-D convolutions."""
from __future__ import annotations

import numpy as np

from ..nn import (Concat, Dropout, Linear, LogSoftMax, LookupTable, Max, ReLU, Sequential,
                  TemporalConvolution)

__all__ = ["TextCNN"]


def TextCNN(vocab_size, embedding_dim, seq_len, class_num, kernel_sizes=(3, 4, 5),
            num_filters=100, dropout=0.5, embedding_weights=None, padding_value=None):
    """Embedding → for each width, a 1-D convolution with ``num_filters`` filters + ReLU +
    max over time → concatenation → dropout → linear → log-softmax.

    Args:
        vocab_size: number of token ids (> 1); ids are zero-based.
        embedding_dim: size of the token embeddings (> 0).
        seq_len: tokens per record (>= the widest kernel); records are padded / cut to it.
        class_num: number of classes (> 1).
        kernel_sizes: widths of the convolutions (default ``(3, 4, 5)``).
        num_filters: filters per width (> 0, default 100).
        dropout: dropout probability before the linear layer (default 0.5).
        embedding_weights: optional pre-trained word vectors ``(vocab_size, embedding_dim)``
            (GloVe, word2vec, ...) copied into the embedding, row ``i`` for token id ``i``;
            they stay trainable (``model.freeze("embedding")`` keeps them fixed).  Default:
            ``LookupTable``'s random start.
        padding_value: the token id used for padding (e.g. 0): its embedding row gets no
            gradient, so a zero row stays zero.  Default None: no padding id.

    Input shape: ``(N, seq_len)`` zero-based token ids.
    Output shape: ``(N, class_num)`` log-probabilities (train with ``ClassNLLCriterion``).
    """
    for arg, value, low in (("vocab_size", vocab_size, 2), ("embedding_dim", embedding_dim, 1),
                            ("seq_len", seq_len, 1), ("class_num", class_num, 2),
                            ("num_filters", num_filters, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"TextCNN: {arg} must be an int >= {low}, got {value!r}")
    kernel_sizes = tuple(kernel_sizes)
    if not kernel_sizes or not all(isinstance(k, int) and 0 < k <= seq_len
                                   for k in kernel_sizes):
        raise ValueError(f"TextCNN: kernel_sizes must be ints in [1, seq_len={seq_len}], got "
                         f"{kernel_sizes!r}")
    branches = Concat(2).set_name("convs")
    for k in kernel_sizes:
        branches.add(Sequential().set_name(f"conv{k}_branch")
                     .add(TemporalConvolution(embedding_dim, num_filters, k).set_name(f"conv{k}"))
                     .add(ReLU().set_name(f"relu{k}"))
                     .add(Max(1, 2).set_name(f"max_over_time{k}")))
    embedding = LookupTable(vocab_size, embedding_dim,
                            padding_value=padding_value).set_name("embedding")
    if embedding_weights is not None:
        vectors = np.asarray(embedding_weights)
        if vectors.shape != (vocab_size, embedding_dim) or vectors.dtype.kind not in "fiu":
            raise ValueError(f"TextCNN: embedding_weights must be numbers of shape "
                             f"(vocab_size, embedding_dim) = {(vocab_size, embedding_dim)}, got "
                             f"{vectors.dtype} {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("TextCNN: embedding_weights contain NaN or infinite values")
        embedding.weight[...] = vectors
    return (Sequential().add(embedding)
            .add(branches).add(Dropout(dropout).set_name("dropout"))
            .add(Linear(num_filters * len(kernel_sizes), class_num).set_name("fc"))
            .add(LogSoftMax().set_name("log_softmax")))
