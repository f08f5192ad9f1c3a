"""Shakespeare text data and a character LSTM that learns it (loss well below the unigram
entropy of the characters)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from workbench import io
from workbench.data import (PLAY_GENRES, SHAKESPEARE_GENRES, CharVocabulary, char_sequences,
                            load_shakespeare, load_shakespeare_chars, load_shakespeare_speeches,
                            parse_speeches, shakespeare_works, unigram_entropy)
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


def test_speeches_are_parsed_in_the_three_ways_the_editions_name_speakers():
    text = ("THE TEMPEST\n\nPERSONS REPRESENTED.\n\nALONSO, King of Naples.\nMIRANDA.\n\n"
            "SCENE: An island.\n\nACT I.\n\nSCENE I. On a ship.\n\n[Enter a Master.]\n\n"
            "Mast.\nBoatswain!\n\nMRS. PAGE.\nFarewell, [Exit.] sweet\nJack.\n\n"
            "THESEUS\nNow, fair Hippolyta,\nour nuptial hour.\n\n"
            "CYMBELINE. Thou foolish thing!\nAway with her.\n\nSome prose without a speaker.\n")
    assert parse_speeches(text) == [("Mast", "Boatswain!"), ("MRS. PAGE", "Farewell, sweet Jack."),
                                    ("THESEUS", "Now, fair Hippolyta, our nuptial hour."),
                                    ("CYMBELINE", "Thou foolish thing! Away with her.")]


def test_speeches_labelled_with_the_genre_of_their_play():
    # the First Folio's three sections: 14 comedies, 10 histories, 12 tragedies
    genres = [PLAY_GENRES[p] for p in PLAY_GENRES]
    assert [genres.count(g) for g in SHAKESPEARE_GENRES] == [14, 10, 12]
    assert set(PLAY_GENRES) < set(shakespeare_works())
    assert {"pericles", "sonnets", "rape_of_lucrece"}.isdisjoint(PLAY_GENRES)
    macbeth = load_shakespeare_speeches("macbeth")
    assert macbeth[0] == ("When shall we three meet again? In thunder, lightning, or in rain?",
                          SHAKESPEARE_GENRES.index("tragedy"), "macbeth")
    assert 600 < len(macbeth) < 700  # one speech per speaker change; no list of persons
    long = load_shakespeare_speeches(["henry_v", "tempest"], min_words=30)
    assert all(len(s.split()) >= 30 for s, _, _ in long)
    assert {(p, SHAKESPEARE_GENRES[g]) for _, g, p in long} == {("henry_v", "history"),
                                                                ("tempest", "comedy")}
    assert [p for _, _, p in long] == sorted(p for _, _, p in long)  # play order, text order
    assert not any("[" in s or "Enter" in s.split()[:1] for s, _, _ in long)
    everything = load_shakespeare_speeches()
    counts = np.bincount([g for _, g, _ in everything])
    assert counts.sum() > 29_000 and (counts > 7_000).all()
    with pytest.raises(ValueError, match=r"\['sonnets'\] are no plays with a genre"):
        load_shakespeare_speeches(["hamlet", "sonnets"])
    with pytest.raises(ValueError, match="min_words must be an int >= 1"):
        load_shakespeare_speeches("hamlet", min_words=0)
