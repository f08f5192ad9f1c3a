"""Character-level recurrent language model (BigDL's ``models/rnn`` example, with an LSTM)."""
from __future__ import annotations

import numpy as np

from ..nn import (LSTM, CrossEntropyCriterion, Linear, LookupTable, MultiRNNCell, Recurrent,
                  Sequential, TimeDistributed, TimeDistributedCriterion)
from ..nn.activation.activations import softmax

__all__ = ["CharLSTM", "char_lm_criterion", "sample_text"]


def CharLSTM(vocab_size, hidden_size=128, embedding_size=32, num_layers=1, p=0.0):
    """A character language model: embedding → LSTM(s) → a linear layer at every step.

    Args:
        vocab_size: number of distinct characters (> 1).
        hidden_size: LSTM state size (> 0, default 128).
        embedding_size: size of the character embeddings (> 0, default 32).
        num_layers: stacked LSTMs (>= 1, default 1; more use a ``MultiRNNCell``).
        p: dropout on the LSTMs' inputs and states while training (default 0).

    Input shape: ``(N, T)`` zero-based character ids.
    Output shape: ``(N, T, vocab_size)`` unnormalized scores of the next character; train with
    :func:`char_lm_criterion`.
    """
    for arg, value, low in (("vocab_size", vocab_size, 2), ("hidden_size", hidden_size, 1),
                            ("embedding_size", embedding_size, 1), ("num_layers", num_layers, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"CharLSTM: {arg} must be an int >= {low}, got {value!r}")
    cells = [LSTM(embedding_size if k == 0 else hidden_size, hidden_size, p)
             for k in range(num_layers)]
    model = Sequential()
    model.add(LookupTable(vocab_size, embedding_size).set_name("embedding"))
    model.add(Recurrent().add(cells[0] if num_layers == 1 else MultiRNNCell(cells))
              .set_name("lstm"))
    model.add(TimeDistributed(Linear(hidden_size, vocab_size)).set_name("scores"))
    return model


def char_lm_criterion():
    """Mean cross-entropy per character of ``(N, T, V)`` scores against ``(N, T)`` ids."""
    return TimeDistributedCriterion(CrossEntropyCriterion(), size_average=True)


def _recurrent(model):
    layers = [m for m in model.modules() if isinstance(m, Recurrent)]
    if len(layers) != 1:
        raise ValueError(f"sample_text: expected a model with one Recurrent layer, found "
                         f"{len(layers)}")
    return layers[0]


def sample_text(model, vocab, prime, length, temperature=1.0, seed=None):
    """Generate ``length`` characters after ``prime`` by sampling the model one step at a time
    (the LSTM state is carried from step to step with ``set_hidden_state``).

    Args:
        model: a trained :func:`CharLSTM` (any model with one ``Recurrent`` layer that maps
            ``(N, T)`` ids to ``(N, T, V)`` scores).
        vocab: the ``CharVocabulary`` the model was trained with.
        prime: the text to start from (at least one character of the vocabulary).
        length: number of characters to generate (>= 0).
        temperature: > 0; lower is more conservative, higher more random.
        seed: seed of the sampling (None: unpredictable).

    Returns:
        ``prime`` followed by the generated characters.
    """
    if not prime:
        raise ValueError("sample_text: prime must be a non-empty string")
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"sample_text: length must be an int >= 0, got {length!r}")
    if not temperature > 0:
        raise ValueError(f"sample_text: temperature must be > 0, got {temperature!r}")
    rng = np.random.default_rng(seed)
    recurrent = _recurrent(model)
    was_training = model.is_training()
    model.evaluate()
    generated = []
    try:
        recurrent.set_hidden_state(None)
        scores = model.forward(vocab.encode(prime)[None, :])[0, -1]
        for _ in range(length):
            p = softmax(np.asarray(scores, dtype=np.float64) / temperature, axis=-1)
            c = int(rng.choice(len(p), p=p / p.sum()))
            generated.append(c)
            recurrent.set_hidden_state(recurrent.get_hidden_state())
            scores = model.forward(np.array([[c]]))[0, -1]
    finally:
        recurrent.set_hidden_state(None)
        if was_training:
            model.training()
    return prime + vocab.decode(generated)
