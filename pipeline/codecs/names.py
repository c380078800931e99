"""``names``: one token per onset, a note name (``E4``) or the chord of notes that start together (``C4.E4.G4``).

Invertible: a token renders back to exact pitches; the rhythm is the corpus's
(:class:`pipeline.codecs.onsets.TimingModel`). Onset groups are shared with
``pitch``, so flattening a ``names`` sequence gives exactly the ``pitch`` sequence.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline.codecs.base import CHORD_SEP, Codec, chord_names, name_to_pitch, pitch_names, tokens_seen
from pipeline.codecs.onsets import GroupedNotes, TimingModel, group_onsets, groups_to_notes

HIGH_PITCH, LOW_PITCH = 72, 48  # C5 and above is high, below C3 low (heatmap features)
NOTE_FEATURES = ("is_chord", "n_notes", "pitch", "high_register", "low_register", "repeated")


class OnsetCodec(Codec, ABC):
    """Untimed note encodings: onset groups <-> tokens; rhythm drawn from the corpus when decoding."""

    @abstractmethod
    def from_groups(self, groups: Iterable[Sequence[int]]) -> list[str]:
        """Pitch groups (onset order) -> tokens."""

    @abstractmethod
    def tokens_per_group(self, group: Sequence[int]) -> int:
        """How many tokens one onset group of distinct pitches becomes."""

    @abstractmethod
    def grouped_tokens(self, groups: GroupedNotes) -> dict[str, list[str]]:
        """Tokens of every piece in ``groups``: ``{piece: tokens}``, pieces sorted."""

    def encode(self, notes: pd.DataFrame, tolerance: float = 0.02) -> list[str]:
        return next(iter(self.grouped_tokens(group_onsets(notes, tolerance)).values()), [])

    def encode_pieces(self, notes: pd.DataFrame, groups: GroupedNotes, tolerance: float) -> dict[str, list[str]]:
        return self.grouped_tokens(groups)

    def decode(self, tokens: Sequence[str], timing: TimingModel, *, seed: int = 0,
               context: Sequence[str] = ()) -> pd.DataFrame:
        """Onset groups placed with rhythm drawn from ``timing`` (``seed``); ``context`` does not apply."""
        return groups_to_notes(self.to_groups(tokens), timing, np.random.default_rng(seed))

    def transpose(self, tokens: Sequence[str], shift: int) -> list[str] | None:
        groups = self.to_groups(tokens)
        if any(not 0 <= p + shift <= 127 for g in groups for p in g):
            return None
        return self.from_groups([[p + shift for p in g] for g in groups])

    def features(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """``is_chord`` (token holds ``.``), ``n_notes``, ``pitch`` (mean MIDI pitch, continuous),
        ``high_register`` (mean pitch >= 72, C5), ``low_register`` (mean pitch < 48, C3),
        ``repeated`` (same token as the one before); encodings without chords drop the first two."""
        groups = self.to_groups(tokens)
        mean = np.array([float(np.mean(g)) for g in groups]).reshape(-1)
        f = {
            "is_chord": np.array([CHORD_SEP in t for t in tokens], float),
            "n_notes": np.array([len(g) for g in groups], float),
            "pitch": mean,
            "high_register": (mean >= HIGH_PITCH).astype(float),
            "low_register": (mean < LOW_PITCH).astype(float),
            "repeated": np.array([i > 0 and tokens[i] == tokens[i - 1] for i in range(len(tokens))], float),
        }
        if not self.has_chords:  # one note per token: no chords to see
            del f["is_chord"], f["n_notes"]
        return f


class NamesCodec(OnsetCodec):
    name = "names"
    has_chords = True

    def from_groups(self, groups: Iterable[Sequence[int]]) -> list[str]:
        return chord_names(groups)

    def tokens_per_group(self, group: Sequence[int]) -> int:
        return 1

    def grouped_tokens(self, groups: GroupedNotes) -> dict[str, list[str]]:
        pitches, offsets, bounds = groups.pitches.tolist(), groups.offsets.tolist(), groups.piece_bounds().tolist()
        names = [pitch_names()[p] for p in pitches]
        flat = [names[a] if b == a + 1 else CHORD_SEP.join(names[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        return {piece: flat[bounds[j]:bounds[j + 1]] for j, piece in enumerate(groups.pieces)}

    def to_groups(self, tokens: Sequence[str]) -> list[list[int]]:
        return [[name_to_pitch(n) for n in tok.split(CHORD_SEP)] for tok in tokens]

    def vocabulary(self, sequences: Iterable[Sequence[str]]) -> list[str]:
        # low to high by lowest note, then by chord size: readable heatmaps and tables
        return sorted(tokens_seen(sequences), key=lambda t: [name_to_pitch(n) for n in t.split(CHORD_SEP)])
