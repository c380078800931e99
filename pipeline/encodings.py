"""Token encodings of a note table, each with its decoder.

``names``  one token per onset: ``E4``, or a chord of the notes that start
           together, low to high: ``C4.E4.G4``.
``pitch``  the integer MIDI pitch of every note in onset order (chord notes low
           to high), as the strings ``"0"`` … ``"127"`` so every encoding is a
           list of strings; the vocabulary is fixed so class index == pitch.
``tsd``, ``remi``
           MidiTok's TSD and REMI tokenisations (:mod:`pipeline.tokenize`):
           pitch, duration and time-shift (or bar and position) tokens, so the
           tokens carry the rhythm and a chord's notes sound together.
``chars``  ABC text character by character, each tune framed by the
           ``<start>``/``<end>`` markers (:func:`encode_chars` /
           :func:`decode_chars`; :func:`split_generated` cuts a sampled stream
           back into tunes). Tunes are read by :mod:`pipeline.abc_io`.

Onset groups are shared by ``names`` and ``pitch`` so that flattening a
``names`` sequence gives exactly the ``pitch`` sequence. ``START``/``END`` are
defined here and nowhere else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pretty_midi

TIMED_ENCODINGS = ("tsd", "remi")   # MidiTok tokenisations with their own timing (pipeline.tokenize)
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
    groups : in onset order; empty for an empty table.
    """
    if notes.empty:
        return []
    order = np.lexsort((notes["pitch"].to_numpy(), notes["start"].to_numpy()))
    starts = notes["start"].to_numpy()[order]
    pitch = notes["pitch"].to_numpy()[order]
    sb = notes["start_beat"].to_numpy()[order]
    dur = notes["end_beat"].to_numpy()[order] - sb
    vel = notes["velocity"].to_numpy()[order]
    # a group opens where a note starts more than `tolerance` after the group's first note;
    # that depends on the group's first note, so it is a (cheap) sequential scan
    bounds = [0]
    first = starts[0]
    for i in range(1, len(starts)):
        if starts[i] - first > tolerance:
            bounds.append(i)
            first = starts[i]
    bounds.append(len(starts))
    return [OnsetGroup(pitches=sorted(set(pitch[a:b].tolist())), start_beat=float(sb[a]),
                       duration_beat=float(dur[a:b].max()), velocity=int(round(float(vel[a:b].mean()))))
            for a, b in zip(bounds, bounds[1:])]


def pitch_to_name(pitch: int) -> str:
    return pretty_midi.note_number_to_name(int(pitch))


def name_to_pitch(name: str) -> int:
    return int(pretty_midi.note_name_to_number(name))


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
        from . import tokenize

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


def encode_notes(notes: pd.DataFrame, encoding: str, tolerance: float = 0.02) -> list[str]:
    """One piece's note table -> tokens of a note encoding.

    Timed encodings quantise onsets to their beat grid instead of using ``tolerance``.
    """
    if is_timed(encoding):
        from . import tokenize

        return tokenize.encode(notes, encoding)
    return groups_to_tokens([g.pitches for g in onset_groups(notes, tolerance)], encoding)


def transpose_tokens(tokens: Sequence[str], encoding: str, shift: int) -> list[str] | None:
    """The same tokens ``shift`` semitones higher (lower if negative).

    Returns None when a pitch would leave 0..127 (a timed encoding: the piano's
    range), so callers can skip that key. Timed tokens keep their timing tokens.
    """
    if is_timed(encoding):
        from . import tokenize

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
        from . import tokenize

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
            from . import tokenize

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

