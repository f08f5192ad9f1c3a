"""Shakespeare text data and a character LSTM that learns it (loss well below the unigram
entropy of the characters)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from workbench import io
from workbench.data import (CharVocabulary, char_sequences, load_shakespeare,
                            load_shakespeare_chars, shakespeare_works, unigram_entropy)
from workbench.models import CharLSTM, char_lm_criterion, sample_text
from workbench.optim import Adam, MaxIteration, Optimizer
from workbench.optim.events import Listener

PLAYS = ["hamlet", "macbeth", "julius_caesar"]


def entropy_of(ids):
    """Unigram entropy (nats) of a sequence of ids, computed here from the counts."""
    counts = np.unique(ids, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_the_corpus_and_the_vocabulary():
    works = shakespeare_works()
    assert len(works) == 42 and "hamlet" in works and not any(w.endswith("_f") for w in works)
    text = load_shakespeare("macbeth")
    assert "Macbeth" in text and len(text) > 90_000
    assert (load_shakespeare(["hamlet", "macbeth"], max_chars=1000)
            == load_shakespeare("hamlet")[:1000])
    vocab = CharVocabulary(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.max() == vocab.size - 1 == len(set(text)) - 1
    assert vocab.decode(ids) == text
    with pytest.raises(ValueError, match="character '€' is not in the vocabulary"):
        vocab.encode("to be €")
    with pytest.raises(ValueError, match="unknown works \\['hamlett'\\]"):
        load_shakespeare(["hamlett"])
    X, y = char_sequences(ids, 50)
    assert X.shape == y.shape == ((len(ids) - 51) // 50 + 1, 50)
    np.testing.assert_array_equal(y[:, :-1], X[:, 1:])
    np.testing.assert_array_equal(X[3], ids[150:200])
    assert unigram_entropy(ids) == pytest.approx(entropy_of(ids))


class LossLog(Listener):
    def __init__(self):
        self.losses = []

    def on_iteration(self, event):
        self.losses.append(event.loss)


def test_char_lstm_learns_shakespeare(tmp_path):
    (X, y), (X_test, y_test), vocab = load_shakespeare_chars(PLAYS, seq_length=50,
                                                            test_fraction=0.1)
    assert X.shape[1] == 50 and len(X) > 6000 and len(X_test) > 500
    model = CharLSTM(vocab.size, hidden_size=128, embedding_size=32)
    criterion = char_lm_criterion()
    log = LossLog()
    optimizer = Optimizer(model, (X, y), criterion, MaxIteration(300), 32,
                          Adam(learningrate=0.01), seed=3, progress=False)
    optimizer.add_listener(log)
    with threadpool_limits(1):  # one core: small matmuls are fastest single-threaded
        optimizer.optimize()
        model.evaluate()
        held_out = np.mean([criterion.forward(model.forward(X_test[i:i + 256]),
                                              y_test[i:i + 256])
                            for i in range(0, len(X_test), 256)])
    entropy = entropy_of(y_test)  # the best any model that ignores context can do here
    print(f"held-out loss {held_out:.3f} nats/char, unigram entropy {entropy:.3f}, "
          f"training loss {np.mean(log.losses[:10]):.3f} -> {np.mean(log.losses[-10:]):.3f}")
    assert len(log.losses) == 300
    assert held_out < entropy - 0.5
    assert np.mean(log.losses[-10:]) < np.mean(log.losses[:10]) - 1.0

    text = sample_text(model, vocab, "HAMLET.\n", 120, temperature=0.8, seed=0)
    assert text.startswith("HAMLET.\n") and len(text) == 128 and set(text) <= set(vocab.chars)
    assert sample_text(model, vocab, "HAMLET.\n", 120, 0.8, seed=0) == text

    path = str(tmp_path / "char_lstm.bigdl")
    io.save_model(model, path)
    np.testing.assert_array_equal(io.load_model(path).forward(X_test[:4]),
                                  model.forward(X_test[:4]))
