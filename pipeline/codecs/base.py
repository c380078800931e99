"""What every codec shares: the :class:`Codec` interface, the :class:`Vocabulary`, note names, markers.

A codec turns one piece's note table (or one tune's text) into tokens and back.
Each encoding is one subclass in a module of its own, registered by one line in
:mod:`pipeline.codecs`; the stages ask the codec, never test an encoding's name.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import pandas as pd
import pretty_midi

from pipeline.core.errors import ConfigError
from pipeline.inputs.midi_io import MIDI_SUFFIXES, midi_file_to_notes

CHORD_SEP = "."
START = "<start>"  # the chars markers: one token each, never characters of a tune
END = "<end>"


class EncodingError(ConfigError):
    """An encoding asked for what its tokens are not (notes of ABC characters, text of a note table)."""


def pitch_to_name(pitch: int) -> str:
    return pretty_midi.note_number_to_name(int(pitch))


@functools.lru_cache(maxsize=1)
def pitch_names() -> list[str]:
    """The name of every MIDI pitch 0..127 (``pitch_names()[60] == "C4"``)."""
    return [pitch_to_name(p) for p in range(128)]


@functools.lru_cache(maxsize=1)
def _name_pitches() -> dict[str, int]:
    return {name: p for p, name in enumerate(pitch_names())}


def name_to_pitch(name: str) -> int:
    pitch = _name_pitches().get(name)  # the names pitch_to_name gives; pretty_midi parses other spellings
    return int(pretty_midi.note_name_to_number(name)) if pitch is None else pitch


def chord_names(groups: Iterable[Sequence[int]]) -> list[str]:
    """Pitch groups -> one name each, low to high: ``[[60, 64, 67]] -> ["C4.E4.G4"]`` (empty groups left out)."""
    names = pitch_names()
    return [CHORD_SEP.join(names[p] for p in sorted(g)) for g in groups if g]


def tokens_seen(sequences: Iterable[Sequence[str]]) -> set[str]:
    """Every token of ``sequences``."""
    seen: set[str] = set()
    for seq in sequences:
        seen.update(seq)
    return seen


class Codec:
    """One encoding: note table <-> tokens, and what later stages need to know of its tokens.

    Class attributes say what kind of encoding it is, and the stages ask them before
    calling a method; a method a kind does not have (decoding ``chars`` to notes, say)
    refuses with :class:`EncodingError`, one line naming the encoding, should a
    caller ask anyway. Instances hold no state.
    """

    name: ClassVar[str]
    plays_notes: ClassVar[bool] = True     # tokens stand for notes: they render to MIDI, take metrics
    reads_text: ClassVar[bool] = False     # encodes a tune's text (ABC), not a note table
    timed: ClassVar[bool] = False          # the tokens carry their own rhythm (else the corpus's is drawn)
    transposable: ClassVar[bool] = True    # --transpose and key averaging apply
    can_regress: ClassVar[bool] = False    # a token is a number a regressor can predict (--task regress)
    has_chords: ClassVar[bool] = False     # one token may hold several notes
    default_length: ClassVar[int] = 300    # tokens a sample draws when --length is not given
    default_temperature: ClassVar[float] = 1.0  # sampling temperature when --temperature is not given
    eval_window: ClassVar[int] = 30        # evaluate's window measure (the nocturne study's); 0 = full context only
    default_primer: ClassVar[str] = "validation"  # what a sample starts from when no primer is given
    text_layout: ClassVar[bool] = False    # heatmaps lay tokens out as the text they spell (chars)
    train_defaults: ClassVar[dict[str, Any]] = {}  # train options this encoding sets unless given

    # ---------------------------------------------------------------- encode
    def encode(self, notes: pd.DataFrame, tolerance: float = 0.02) -> list[str]:
        """One piece's note table -> tokens (``tolerance``: seconds within which onsets form a chord)."""
        raise EncodingError(f"{self.name} tokens are not made from note tables")

    def encode_text(self, text: str) -> list[str]:
        """One tune's text -> tokens (encodings that read text)."""
        raise EncodingError(f"{self.name} tokens are not made from text")

    def encode_pieces(self, notes: pd.DataFrame, groups, tolerance: float) -> dict[str, list[str]]:
        """Every piece of a dataset's note table -> tokens, ``{piece: tokens}`` with pieces sorted.

        ``groups`` is :func:`pipeline.codecs.onsets.group_onsets` of the table (computed once for
        all codecs); a codec that quantises on its own grid ignores it.
        """
        return {str(p): self.encode(t, tolerance) for p, t in notes.groupby("piece", sort=True)}

    def read_file(self, path: Path) -> list[str]:
        """A user's file as tokens of this encoding (a MIDI file; ``ValueError`` for another kind)."""
        if path.suffix.lower() not in MIDI_SUFFIXES:
            raise ValueError(f"this is a {self.name} model: give a MIDI file, not {path.name}")
        notes, _ = midi_file_to_notes(path)
        return self.encode(notes)

    def parse_text(self, text: str) -> list[str]:
        """Tokens typed as text: whitespace-separated."""
        return text.split()

    def primer_tokens(self, text: str, *, music_text: bool = False) -> list[str]:
        """The tokens a user typed as a primer (``--primer-tokens``): whitespace-separated tokens."""
        return text.split()

    def dropped(self, notes: pd.DataFrame) -> dict[str, int]:
        """Notes of a table this encoding cannot hold, counted by reason (``{}``: none)."""
        return {}

    def vocabulary(self, sequences: Iterable[Sequence[str]]) -> list[str]:
        """The tokens of a dataset's vocabulary, in their id order."""
        return sorted(tokens_seen(sequences))

    # ---------------------------------------------------------------- decode
    def to_groups(self, tokens: Sequence[str]) -> list[list[int]]:
        """Pitches by onset, in time order; unknown tokens raise ``ValueError``."""
        raise EncodingError(f"{self.name} tokens hold no notes")

    def pitches(self, tokens: Sequence[str]) -> list[int]:
        """Every pitch in onset order (chords low to high); ``[]`` for an encoding without notes."""
        if not self.plays_notes:
            return []
        return [p for g in self.to_groups(tokens) for p in g]

    def onset_tokens(self, tokens: Sequence[str]) -> list[str]:
        """The tokens the repetition and copy metrics count: one per onset where the encoding has onsets."""
        return list(tokens)

    def decode(self, tokens: Sequence[str], timing, *, seed: int = 0, context: Sequence[str] = ()) -> pd.DataFrame:
        """Tokens -> a one-track note table (:mod:`pipeline.core.notes`).

        ``timing`` is the dataset's :class:`pipeline.codecs.onsets.TimingModel` (tempo, and the
        corpus's rhythm that untimed encodings draw with ``seed``); ``context`` is what the
        tokens follow (a sample's primer), for encodings whose tokens need it.
        Unknown tokens raise ``ValueError``.
        """
        raise EncodingError(f"{self.name} tokens do not decode to notes")

    # ---------------------------------------------------------------- keys
    def transpose(self, tokens: Sequence[str], shift: int) -> list[str] | None:
        """The same tokens ``shift`` semitones higher; None where a pitch would leave the encoding's range."""
        raise EncodingError(f"{self.name} tokens do not transpose")

    def move_token(self, token: str, shift: int) -> str | None:
        """One token moved ``shift`` semitones (exactly one token), None where it would leave the range."""
        if token.startswith("<"):
            return token
        moved = self.transpose([token], shift)
        return None if moved is None else moved[0]

    # ---------------------------------------------------------------- looking inside
    def features(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """What each token is, for hidden-unit heatmaps: name -> float64 (time,), binary ones 0/1."""
        raise EncodingError(f"{self.name} has no heatmap features")

    def label(self, token: str) -> str:
        """A few characters for a heatmap cell."""
        return token

    def scored_frames(self, tokens: Sequence[str]) -> int | None:
        """Time steps a piece's loss is divided by for a per-frame figure; None: not a frame encoding."""
        return None

    def grammar_errors(self, tokens: Sequence[str]) -> float | None:
        """Share of tokens that play nothing because they break the grammar; None where no grammar applies."""
        return None


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

    def to_json(self) -> list[str]:
        return list(self.tokens)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls(json.loads(Path(path).read_text()))
