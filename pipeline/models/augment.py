"""The sequences a run trains on: each training piece stored once, read in every key ``--transpose`` adds.

Small corpora rarely cover every key; a held-out piece in a new key is otherwise
full of unseen tokens, so training also reads every training piece shifted by
-N..+N semitones. A shift is worked out once per vocabulary token, not per token
of the corpus: a piece in another key is its stored ids read through one row of
an id map (:class:`TrainingPieces`), so memory does not grow with the number of
keys (``bench/bench_train_scale.py``). Validation pieces are never transposed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from pipeline.codecs import Vocabulary, get_codec
from pipeline.models.network import KeyAveraged
from pipeline.store.dataset import Dataset
from pipeline.store.rundir import TrainConfig


@dataclass
class TrainingPieces:
    """The training sequences as views of the stored pieces.

    arrays : ids of each training piece as stored, int64 (n_tokens,) each (a one-piece
        dataset's training head, :meth:`pipeline.store.dataset.Dataset.side_sequences`).
    views : int64 (n_sequences, 2): the stored piece (index into ``arrays``) and the
        ``key_map`` row each training sequence reads it through. The stored pieces come
        first, then each piece in each key -N..+N its pitches allow, piece by piece (the
        order of the copies the trainer once made, so a seed shuffles them alike).
    key_map : int64 (2N + 1, len(dataset vocabulary)), or None without transposition.
        Row ``N + k`` holds the id of each token moved ``k`` semitones (row N: itself),
        -1 where a token never occurs in that key.
    names : ``piece`` or ``piece@+k`` for each view.
    vocab : the dataset's vocabulary, then the tokens the shifts create, in order of
        first appearance, so existing ids keep their meaning.
    """

    arrays: list[np.ndarray]
    views: np.ndarray
    key_map: np.ndarray | None
    names: list[str]
    vocab: Vocabulary

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, v: int) -> np.ndarray:
        """The ids of training sequence ``v``: a stored array, or a new one mapped into its key."""
        piece, row = (int(x) for x in self.views[v])
        return self.arrays[piece] if self.key_map is None else self.key_map[row][self.arrays[piece]]

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every training sequence in turn, each made when it is reached (so at most one copy at a time)."""
        return (self[v] for v in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        """Tokens of each training sequence, int64 (n_sequences,)."""
        sizes = np.array([len(a) for a in self.arrays], np.int64)
        return sizes[self.views[:, 0]] if len(self.views) else np.zeros(0, np.int64)


def moved_token(token: str, encoding: str, shift: int) -> str | None:
    """One token ``shift`` semitones higher, None where a pitch would leave the range; ``<start>``/``<end>`` stay.

    Note and timed encodings move a token into exactly one token (a chord stays one ``names`` token).
    """
    return get_codec(encoding).move_token(token, shift)


def training_pieces(ds: Dataset, max_shift: int = 0) -> TrainingPieces:
    """The training pieces of ``ds``, also shifted by -max_shift..+max_shift semitones when ``max_shift`` > 0.

    A piece is left out of a key where one of its pitches would leave 0..127 (a
    timed encoding: the piano's range), as :meth:`pipeline.codecs.base.Codec.transpose`
    says. Equal to transposing every piece token by token (``tests``), without a copy.
    """
    side = ds.side_sequences("train")
    names, arrays = list(side), [ds.vocab.encode(s) for s in side.values()]
    # the stored pieces, each read through the identity row (row max_shift: moved 0 semitones)
    plain = np.stack([np.arange(len(arrays)), np.full(len(arrays), max_shift)], 1).astype(np.int64).reshape(-1, 2)
    if not max_shift:
        return TrainingPieces(arrays, plain, None, names, ds.vocab)
    base, rows = ds.vocab.tokens, 2 * max_shift + 1
    used = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)
    # each token that occurs, moved by each shift (None where it would leave the range): the only transposing done
    moved = {k: {int(t): moved_token(base[t], ds.encoding, k) for t in used}
             for k in range(-max_shift, max_shift + 1) if k}
    possible = np.ones((rows, len(base)), bool)
    for k, row in moved.items():
        for t, m in row.items():
            possible[max_shift + k, t] = m is not None
    tokens, index = list(base), dict(ds.vocab.index)
    key_map = np.full((rows, len(base)), -1, np.int64)
    key_map[max_shift] = np.arange(len(base))
    views, view_names = [plain], list(names)
    for i, (piece, arr) in enumerate(zip(names, arrays)):
        ids, first = np.unique(arr, return_index=True)
        ids = ids[np.argsort(first)]  # in order of first appearance: new tokens are numbered as they are met
        for k in range(-max_shift, max_shift + 1):
            row = max_shift + k
            if not k or not possible[row, ids].all():
                continue
            for t in ids[key_map[row, ids] < 0].tolist():
                token = moved[k][t]
                if token not in index:
                    index[token] = len(tokens)
                    tokens.append(token)
                key_map[row, t] = index[token]
            views.append(np.array([[i, row]], np.int64))
            view_names.append(f"{piece}@{k:+d}")
    return TrainingPieces(arrays, np.concatenate(views), key_map, view_names, Vocabulary(tokens))


def augment_transpositions(ds: Dataset, max_shift: int) -> Dataset:
    """``ds`` with every transposed training piece written out as tokens of its own (copies: small data only).

    Training never holds these (:func:`training_pieces`); this shows what it reads.
    Validation pieces are never transposed; a one-piece dataset gets its training
    head transposed, and its held-out tail stays a validation piece of its own
    (``<piece>:tail``), untouched.
    """
    pieces = training_pieces(ds, max_shift)
    val = ds.side_sequences("validation")
    seqs = {**ds.side_sequences("train"), **val}
    for v in range(len(pieces.arrays), len(pieces)):  # the stored pieces are the first views
        seqs[pieces.names[v]] = pieces.vocab.decode(pieces[v])
    split = {**ds.split, "train": list(pieces.names), "validation": list(val), "tail_fraction": 0.0}
    return replace(ds, sequences=seqs, vocab=pieces.vocab, split=split)


def vocab_key_map(tokens: list[str], encoding: str, max_shift: int) -> np.ndarray:
    """The id of every token of a vocabulary moved into each key -max_shift..+max_shift, int64 (keys, vocab).

    Row ``max_shift + k`` holds the id of each token moved ``k`` semitones, -1 where
    the vocabulary has no such token or the pitch would leave the range; row
    ``max_shift`` is the identity. Tokens without a pitch (``<start>``, ``<end>``,
    timing) stay themselves in every key.
    """
    index = {t: i for i, t in enumerate(tokens)}
    key_map = np.full((2 * max_shift + 1, len(tokens)), -1, np.int64)
    key_map[max_shift] = np.arange(len(tokens))
    for k in range(-max_shift, max_shift + 1):
        if k:
            for i, t in enumerate(tokens):
                moved = moved_token(t, encoding, k)
                if moved is not None:
                    key_map[max_shift + k, i] = index.get(moved, -1)
    return key_map


KEYS = ("all", "one")


def as_predicting(model, ckpt, keys: str = "all"):
    """The network of a run as it predicts: with ``keys`` ``all``, a classifier of a note encoding trained in
    several keys (``--transpose N``) averages its prediction over them (:class:`pipeline.models.network.KeyAveraged`);
    otherwise, and with ``one``, the network as it is."""
    shift = TrainConfig.from_dict(ckpt.train_config).transpose
    if keys != "all" or not shift or ckpt.task != "classify" or not get_codec(ckpt.encoding).transposable:
        return model
    key_map = vocab_key_map(list(ckpt.vocab), ckpt.encoding, shift)
    return KeyAveraged(model, key_map).to(next(model.parameters()).device)
