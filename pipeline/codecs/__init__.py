"""Encodings: note tables (or ABC text) <-> token sequences, one codec class per encoding.

Adding an encoding is one module with a :class:`~pipeline.codecs.base.Codec`
subclass and one line in :data:`CODECS`. Later stages ask :func:`get_codec` what
an encoding's tokens are and how they decode; they never test an encoding's name.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from pipeline.codecs.base import CHORD_SEP, END, START, Codec, Vocabulary, name_to_pitch, pitch_to_name
from pipeline.codecs.chars import CharsCodec, decode_chars, encode_chars, split_generated
from pipeline.codecs.frames import FramesCodec
from pipeline.codecs.names import NamesCodec, OnsetCodec
from pipeline.codecs.onsets import GroupedNotes, OnsetGroup, TimingModel, group_onsets, onset_groups, timing_stats
from pipeline.codecs.pitch import PitchCodec
from pipeline.codecs.tokenize import MIDITOK_ENCODINGS, TimedCodec

CODECS: dict[str, Codec] = {c.name: c for c in (
    NamesCodec(),
    PitchCodec(),
    CharsCodec(),
    *(TimedCodec(name) for name in MIDITOK_ENCODINGS),
    FramesCodec(),
)}
ENCODINGS = tuple(CODECS)
NOTE_ENCODINGS = tuple(n for n, c in CODECS.items() if c.plays_notes)
TIMED_ENCODINGS = tuple(n for n, c in CODECS.items() if c.timed)


def get_codec(encoding: str) -> Codec:
    """The codec of an encoding name; ``ValueError`` naming the known ones otherwise."""
    try:
        return CODECS[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r} (known: {', '.join(CODECS)})") from None


def is_timed(encoding: str) -> bool:
    """Whether the encoding's tokens carry their own timing."""
    return get_codec(encoding).timed


def build_vocabulary(sequences: Iterable[Sequence[str]], encoding: str) -> Vocabulary:
    """The vocabulary of a dataset's sequences in one encoding."""
    return Vocabulary(get_codec(encoding).vocabulary(sequences))


def encode_notes(notes, encoding: str, tolerance: float = 0.02) -> list[str]:
    """One piece's note table -> tokens of a note encoding."""
    return get_codec(encoding).encode(notes, tolerance)


def tokens_to_groups(tokens: Iterable[str], encoding: str) -> list[list[int]]:
    """Tokens -> pitch groups by onset; unknown tokens raise ``ValueError``."""
    return get_codec(encoding).to_groups(list(tokens))


def groups_to_tokens(groups: Iterable[Sequence[int]], encoding: str) -> list[str]:
    """Pitch groups (onset order) -> tokens of an onset encoding (``names``, ``pitch``)."""
    codec = get_codec(encoding)
    if not isinstance(codec, OnsetCodec):
        raise ValueError(f"not an onset encoding: {encoding!r}")
    return codec.from_groups(groups)


def transpose_tokens(tokens: Sequence[str], encoding: str, shift: int) -> list[str] | None:
    """The same tokens ``shift`` semitones higher; None where a pitch would leave the range."""
    return get_codec(encoding).transpose(tokens, shift)


def tokens_to_pitches(tokens: Iterable[str], encoding: str) -> list[int]:
    """Pitches in onset order (chords low to high); ``[]`` for an encoding without notes."""
    return get_codec(encoding).pitches(list(tokens))


def onset_tokens(tokens: Sequence[str], encoding: str) -> list[str]:
    """The tokens the repetition and copy metrics count: one per onset where the encoding has onsets."""
    return get_codec(encoding).onset_tokens(tokens)


__all__ = ["CHORD_SEP", "CODECS", "Codec", "END", "ENCODINGS", "GroupedNotes", "NOTE_ENCODINGS", "OnsetGroup",
           "START", "TIMED_ENCODINGS", "TimingModel", "Vocabulary", "build_vocabulary", "decode_chars",
           "encode_chars", "encode_notes", "get_codec", "group_onsets", "groups_to_tokens", "is_timed",
           "name_to_pitch", "onset_groups", "onset_tokens", "pitch_to_name", "split_generated", "timing_stats",
           "tokens_to_groups", "tokens_to_pitches", "transpose_tokens"]
