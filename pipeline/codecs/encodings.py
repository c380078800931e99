"""Token encodings of a note table, each with its decoder.

``names``  one token per onset: ``E4``, or a chord of the notes that start
           together, low to high: ``C4.E4.G4``.
``pitch``  the integer MIDI pitch of every note in onset order (chord notes low
           to high), as the strings ``"0"`` … ``"127"`` so every encoding is a
           list of strings; the vocabulary is fixed so class index == pitch.
``tsd``, ``remi``
           MidiTok's TSD and REMI tokenisations (:mod:`pipeline.codecs.tokenize`):
           pitch, duration and time-shift (or bar and position) tokens, so the
           tokens carry the rhythm and a chord's notes sound together.
``chars``  ABC text character by character, each tune framed by the
           ``<start>``/``<end>`` markers (:func:`encode_chars` /
           :func:`decode_chars`; :func:`split_generated` cuts a sampled stream
           back into tunes). Tunes are read by :mod:`pipeline.inputs.abc_io`.

Onset groups are shared by ``names`` and ``pitch`` so that flattening a
``names`` sequence gives exactly the ``pitch`` sequence. ``START``/``END`` are
defined here and nowhere else.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pretty_midi

from pipeline.core.notes import sort_order

TIMED_ENCODINGS = ("tsd", "remi")   # MidiTok tokenisations with their own timing (pipeline.codecs.tokenize)
ENCODINGS = ("names", "pitch", "chars", *TIMED_ENCODINGS)
NOTE_ENCODINGS = ("names", "pitch", *TIMED_ENCODINGS)
CHORD_SEP = "."
START = "<start>"  # the chars markers: one token each, never characters of a tune
END = "<end>"


@dataclass
class OnsetGroup:
    """Notes that start together: pitches low to high, timing in beats."""

    pitches: list[int]
    start_beat: float
    duration_beat: float
    velocity: int


@dataclass
class GroupedNotes:
    """Onset groups of one or more pieces as flat arrays (what :func:`onset_groups` gives as objects).

    ``g`` groups, in piece order (pieces sorted by name) and onset order within
    a piece; group ``i`` belongs to piece ``pieces[piece[i]]`` and holds the
    distinct pitches ``pitches[offsets[i]:offsets[i + 1]]``, low to high.

    start_beat, duration_beat : shape (g,), float64, in quarter-note beats.
    velocity : shape (g,), int64, the group's mean velocity, rounded.
    piece : shape (g,), int64, index into ``pieces``.
    pitches : shape (k,), int64, k <= number of notes.
    offsets : shape (g + 1,), int64.
    pieces : the piece names, sorted.
    """

    start_beat: np.ndarray
    duration_beat: np.ndarray
    velocity: np.ndarray
    piece: np.ndarray
    pitches: np.ndarray
    offsets: np.ndarray
    pieces: list[str]

    def __len__(self) -> int:
        return len(self.start_beat)

    def piece_bounds(self) -> np.ndarray:
        """Shape (len(pieces) + 1,): piece ``j``'s groups are ``bounds[j]:bounds[j + 1]``."""
        return np.searchsorted(self.piece, np.arange(len(self.pieces) + 1))


def group_onsets(notes: pd.DataFrame, tolerance: float = 0.02) -> GroupedNotes:
    """Group notes by onset, piece by piece, as arrays; see :func:`onset_groups` for the rule.

    ``notes`` may hold many pieces (a group never spans two); one call for a
    whole dataset costs about what one call for a single piece does.
    Vectorised: a gap of more than ``tolerance`` after the previous note always
    opens a group; only runs of notes closer than that and longer than
    ``tolerance`` overall (fast runs, spread chords) need the note-by-note scan.
    """
    n = len(notes)
    piece_code, pieces = pd.factorize(notes["piece"], sort=True)
    starts = notes["start"].to_numpy(dtype=np.float64)
    pitch = notes["pitch"].to_numpy().astype(np.int64)
    order = sort_order(piece_code, starts, pitch)
    if order is None:  # a normalised table is in onset order already
        order = slice(None)
    piece_code, starts, pitch = piece_code[order].astype(np.int64), starts[order], pitch[order]
    sb = notes["start_beat"].to_numpy(dtype=np.float64)[order]
    dur = notes["end_beat"].to_numpy(dtype=np.float64)[order] - sb
    vel = notes["velocity"].to_numpy().astype(np.float64)[order]
    if n == 0:
        empty = np.zeros(0, np.int64)
        return GroupedNotes(empty * 0.0, empty * 0.0, empty, empty, empty, np.zeros(1, np.int64), [])
    # a note more than `tolerance` after the previous one is more than that after its group's first
    # note; a new piece opens a group too
    opens = np.flatnonzero((np.diff(starts) > tolerance) | (np.diff(piece_code) != 0)) + 1
    runs = np.concatenate([[0], opens, [n]])
    long_runs = np.flatnonzero(starts[runs[1:] - 1] - starts[runs[:-1]] > tolerance)
    extra = []
    for a, b in zip(runs[long_runs].tolist(), runs[long_runs + 1].tolist()):
        first = starts[a]  # the group's first note decides, so scan this run note by note
        for i in range(a + 1, b):
            if starts[i] - first > tolerance:
                extra.append(i)
                first = starts[i]
    heads = np.sort(np.concatenate([[0], opens, extra])).astype(np.int64)
    counts = np.diff(np.append(heads, n))
    group = np.repeat(np.arange(len(heads)), counts)
    # distinct pitches of each group, low to high
    by_pitch = np.argsort(group * 128 + pitch, kind="stable")  # nearly sorted already: cheap
    gp, pp = group[by_pitch], pitch[by_pitch]
    keep = np.ones(n, bool)
    keep[1:] = (gp[1:] != gp[:-1]) | (pp[1:] != pp[:-1])
    offsets = np.concatenate([[0], np.cumsum(np.bincount(gp[keep], minlength=len(heads)))])
    return GroupedNotes(start_beat=sb[heads], duration_beat=np.maximum.reduceat(dur, heads),
                        velocity=np.rint(np.add.reduceat(vel, heads) / counts).astype(np.int64),
                        piece=piece_code[heads], pitches=pp[keep], offsets=offsets.astype(np.int64),
                        pieces=[str(p) for p in pieces])


def onset_groups(notes: pd.DataFrame, tolerance: float = 0.02) -> list[OnsetGroup]:
    """Group one piece's notes by onset.

    A note joins the current group when it starts within ``tolerance`` seconds
    of the group's first note (human-played chords are never exactly
    simultaneous; score-timed files need 0). A pitch sounding twice in one
    group (e.g. both hands) is kept once.

    Parameters
    ----------
    notes : note table of one piece, any order.
    tolerance : seconds.

    Returns
    -------
    groups : in onset order; empty for an empty table. (:func:`group_onsets`
        gives the same as arrays, faster for large tables.)
    """
    g = group_onsets(notes, tolerance)
    pitches = g.pitches.tolist()
    return [OnsetGroup(pitches=pitches[a:b], start_beat=float(s), duration_beat=float(d), velocity=int(v))
            for a, b, s, d, v in zip(g.offsets[:-1].tolist(), g.offsets[1:].tolist(), g.start_beat,
                                     g.duration_beat, g.velocity)]


def pitch_to_name(pitch: int) -> str:
    return pretty_midi.note_number_to_name(int(pitch))


def name_to_pitch(name: str) -> int:
    pitch = _name_pitches().get(name)  # the names pitch_to_name gives; pretty_midi parses other spellings
    return int(pretty_midi.note_name_to_number(name)) if pitch is None else pitch


@functools.lru_cache(maxsize=1)
def _name_pitches() -> dict[str, int]:
    return {name: p for p, name in enumerate(_pitch_names())}


def is_timed(encoding: str) -> bool:
    """Whether the encoding's tokens carry their own timing (``tsd``, ``remi``)."""
    return encoding in TIMED_ENCODINGS


def groups_to_tokens(groups: Sequence[Sequence[int]], encoding: str) -> list[str]:
    """Pitch groups (onset order) -> tokens of ``names`` or ``pitch``."""
    if encoding == "names":
        return [CHORD_SEP.join(pitch_to_name(p) for p in sorted(g)) for g in groups if g]
    if encoding == "pitch":
        return [str(p) for g in groups for p in sorted(g)]
    raise ValueError(f"not a note encoding: {encoding!r}")


def tokens_to_groups(tokens: Iterable[str], encoding: str) -> list[list[int]]:
    """Inverse of :func:`groups_to_tokens`: tokens -> pitch groups.

    ``pitch`` tokens carry no chord information, so each becomes its own group;
    timed tokens give the pitches of each onset. Unknown tokens raise ``ValueError``.
    """
    if is_timed(encoding):
        from pipeline.codecs import tokenize

        return tokenize.onset_groups(tokens)
    if encoding == "names":
        return [[name_to_pitch(n) for n in tok.split(CHORD_SEP)] for tok in tokens]
    if encoding == "pitch":
        out = []
        for tok in tokens:
            p = int(tok)
            if not 0 <= p <= 127:
                raise ValueError(f"pitch out of range: {tok}")
            out.append([p])
        return out
    raise ValueError(f"not a note encoding: {encoding!r}")


_PITCH_TOKENS = [str(p) for p in range(128)]


def grouped_tokens(groups: GroupedNotes, encoding: str) -> dict[str, list[str]]:
    """Tokens of a note encoding for every piece in ``groups``: ``{piece: tokens}``, pieces sorted.

    The same as :func:`groups_to_tokens` of each piece's onset groups.
    """
    pitches, offsets, bounds = groups.pitches.tolist(), groups.offsets.tolist(), groups.piece_bounds().tolist()
    if encoding == "pitch":
        flat = [_PITCH_TOKENS[p] for p in pitches]
        return {piece: flat[offsets[bounds[j]]:offsets[bounds[j + 1]]] for j, piece in enumerate(groups.pieces)}
    if encoding == "names":
        names = [_pitch_names()[p] for p in pitches]
        flat = [names[a] if b == a + 1 else CHORD_SEP.join(names[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        return {piece: flat[bounds[j]:bounds[j + 1]] for j, piece in enumerate(groups.pieces)}
    raise ValueError(f"not a note encoding: {encoding!r}")


def encode_notes(notes: pd.DataFrame, encoding: str, tolerance: float = 0.02) -> list[str]:
    """One piece's note table -> tokens of a note encoding.

    Timed encodings quantise onsets to their beat grid instead of using ``tolerance``.
    """
    if is_timed(encoding):
        from pipeline.codecs import tokenize

        return tokenize.encode(notes, encoding)
    by_piece = grouped_tokens(group_onsets(notes, tolerance), encoding)
    return next(iter(by_piece.values()), [])


@functools.lru_cache(maxsize=1)
def _pitch_names() -> list[str]:
    return [pitch_to_name(p) for p in range(128)]


def transpose_tokens(tokens: Sequence[str], encoding: str, shift: int) -> list[str] | None:
    """The same tokens ``shift`` semitones higher (lower if negative).

    Returns None when a pitch would leave 0..127 (a timed encoding: the piano's
    range), so callers can skip that key. Timed tokens keep their timing tokens.
    """
    if is_timed(encoding):
        from pipeline.codecs import tokenize

        return tokenize.transpose(tokens, shift)
    groups = tokens_to_groups(tokens, encoding)
    if any(not 0 <= p + shift <= 127 for g in groups for p in g):
        return None
    return groups_to_tokens([[p + shift for p in g] for g in groups], encoding)


def tokens_to_pitches(tokens: Iterable[str], encoding: str) -> list[int]:
    """Flatten tokens to pitches in onset order (chords low to high); chars give []."""
    if encoding == "chars":
        return []
    if is_timed(encoding):
        from pipeline.codecs import tokenize

        return tokenize.pitches(tokens)
    return [p for g in tokens_to_groups(tokens, encoding) for p in g]


def onset_tokens(tokens: Sequence[str], encoding: str) -> list[str]:
    """The tokens the repetition and copy metrics count: one per onset where the encoding has onsets.

    Timed tokens become the ``names`` token of each onset (``C4.E4.G4``), so a
    repeated chord is a repeated token whatever its rhythm, and an 8-gram spans 8
    onsets as it does for ``names``, not two notes' worth of pitch and duration
    tokens. Other encodings are returned as they are.
    """
    if is_timed(encoding):
        return groups_to_tokens(tokens_to_groups(tokens, encoding), "names")
    return list(tokens)


# --------------------------------------------------------------------------- chars

def encode_chars(tune_text: str) -> list[str]:
    """``[START, c1, c2, ..., cn, END]``: one token per character of the tune text.

    The markers are single tokens, so a tune that contains the text ``<start>``
    still encodes to its seven characters and decodes back unchanged.
    """
    return [START, *tune_text, END]


def decode_chars(tokens: list[str]) -> str:
    """Inverse of :func:`encode_chars`: the text up to the first END, markers removed."""
    out = []
    for tok in tokens:
        if tok == END:
            break
        if tok != START:
            out.append(tok)
    return "".join(out)


def split_generated(tokens: list[str]) -> list[str]:
    """Cut a sampled token stream holding several ``START ... END`` tunes into tune texts.

    Each ``START ... END`` pair gives one text (``''`` for ``START END``), and a
    tune cut off by the length limit (a START with no END) is kept as it is.
    Text outside any pair, such as a sample continued from a text primer, is a
    tune too unless it is blank. So ``split_generated(encode_chars(a) +
    encode_chars(b)) == [a, b]``.
    """
    tunes: list[str] = []
    current: list[str] = []
    inside = False  # between a START and its END

    def flush() -> None:
        text = "".join(current)
        if inside or text.strip():
            tunes.append(text)

    for tok in tokens:
        if tok == START or tok == END:
            flush()
            current, inside = [], tok == START
        else:
            current.append(tok)
    flush()
    return tunes


# --------------------------------------------------------------------------- vocabulary

class Vocabulary:
    """Token <-> index mapping, saved as JSON beside the sequences."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(tokens)
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.tokens == self.tokens

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Tokens -> int64 array of shape (n,); unknown tokens raise KeyError."""
        return np.array([self.index[t] for t in tokens], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], encoding: str) -> "Vocabulary":
        """Vocabulary of a dataset; ``pitch`` is fixed to the 128 MIDI pitches, a timed
        encoding to its tokenizer's whole vocabulary (every transposition and duration)."""
        if encoding == "pitch":
            return cls([str(p) for p in range(128)])
        if is_timed(encoding):
            from pipeline.codecs import tokenize

            return cls(tokenize.vocabulary(encoding))
        seen = set()
        for seq in sequences:
            seen.update(seq)
        if encoding == "names":
            # low to high by lowest note, then by chord size: readable heatmaps and tables
            key = lambda t: [name_to_pitch(n) for n in t.split(CHORD_SEP)]  # noqa: E731
        else:
            key = lambda t: (len(t) > 1, t)  # noqa: E731  markers after single characters
        return cls(sorted(seen, key=key))

    def to_json(self) -> list[str]:
        return list(self.tokens)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls(json.loads(Path(path).read_text()))

