"""Timing-aware encodings: MidiTok's REMI and TSD tokenisations of a note table.

``tsd``   MidiTok TSD: ``Pitch_60 Duration_1.0.12`` per note, a ``TimeShift_0.6.12``
          between onsets; the notes of a chord follow each other with no shift
          between them, so they sound together.
``remi``  MidiTok REMI: ``Bar_None`` at every 4/4 bar, ``Position_k`` (k twelfths of
          a beat into the bar) before each onset, then ``Pitch``/``Duration`` per note.

Both tokenise every track of a piece as one stream (a piano reduction), on a grid
of 12 steps per beat (sixteenths and eighth-note triplets, the same grid as the
rhythm metrics of :mod:`pipeline.measures.metrics`) up to 4 beats and 4 steps per beat up
to 12 beats; longer notes are cut to 12 beats and longer gaps take several
``TimeShift`` tokens (TSD) or empty bars (REMI). Pitches are the piano's, 21-108.
Velocity is not encoded: decoded notes get one velocity (the corpus's median).

The token strings are MidiTok's own, and the vocabulary is the tokenizer's whole
vocabulary (less its padding token), so every transposition and every duration
has an id. Tokenising and de-tokenising is MidiTok's (``encode``/``decode`` on a
``symusic.Score``); this module only turns note tables into Scores and back.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from fractions import Fraction
from typing import Sequence

import numpy as np
import pandas as pd
import pretty_midi
from symusic import Note, Score, Track

from pipeline.codecs.base import Codec, chord_names
from pipeline.codecs.onsets import TimingModel
from pipeline.core.notes import empty_note_table, normalise_note_table



def _miditok():
    """``import miditok`` without its PyTorch data loaders.

    miditok's package ``__init__`` imports ``miditok.pytorch_data`` (and so torch,
    ~3 s) whenever torch is installed, and skips it on ImportError. We use only its
    tokenizers, and extracting must not pay for torch, so unless torch is loaded
    already that optional submodule is marked absent before the import.
    """
    if "miditok" not in sys.modules and "torch" not in sys.modules:
        sys.modules.setdefault("miditok.pytorch_data", None)  # None in sys.modules: ImportError on import
    import miditok  # lazy: see above (torch must not load with it)

    return miditok


BEAT_RES = {(0, 4): 12, (4, 12): 4}   # grid steps per beat, by duration range in beats
PITCH_RANGE = (21, 109)               # MidiTok's range is [low, high): the 88 piano keys
BEATS_PER_BAR = 4                     # REMI's bars (time signatures are not encoded)
DEFAULT_VELOCITY = 80
PAD = "PAD_None"
MIDITOK_ENCODINGS = ("tsd", "remi")  # the tokenisations this module serves
TIMED_FEATURES = ("is_pitch", "is_duration", "is_time", "is_bar", "pitch", "high_register", "low_register",
                  "duration", "beat_in_bar", "chord_note")  # token_features, in this order


def _config():
    TokenizerConfig = _miditok().TokenizerConfig

    return TokenizerConfig(pitch_range=PITCH_RANGE, beat_res=BEAT_RES, use_velocities=False,
                           use_time_signatures=False, use_tempos=False, use_chords=False, use_rests=False,
                           use_programs=False, remove_duplicated_notes=True, special_tokens=["PAD"])


@lru_cache(maxsize=None)
def tokenizer(encoding: str):
    """The MidiTok tokenizer of a timed encoding (built once per process)."""
    miditok = _miditok()

    classes = {"tsd": miditok.TSD, "remi": miditok.REMI}
    if encoding not in classes:
        raise ValueError(f"not a timed encoding: {encoding!r}")
    return classes[encoding](_config())


def vocabulary(encoding: str) -> list[str]:
    """Every token of the encoding in MidiTok's id order, less the padding token."""
    vocab = tokenizer(encoding).vocab
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t != PAD]


# ------------------------------------------------------------------ encode

def notes_to_score(notes: pd.DataFrame, ticks_per_beat: int):
    """One piece's note table -> a one-track ``symusic.Score`` (every track merged), timed in beats."""
    score = Score(ticks_per_beat)
    track = Track(program=0)
    on = np.rint(notes["start_beat"].to_numpy(float) * ticks_per_beat).astype(np.int64)
    off = np.rint(notes["end_beat"].to_numpy(float) * ticks_per_beat).astype(np.int64)
    for t, d, p, v in zip(on, np.maximum(off - on, 1), notes["pitch"].to_numpy(), notes["velocity"].to_numpy()):
        track.notes.append(Note(int(t), int(d), int(p), int(v)))
    score.tracks.append(track)
    return score


def encode(notes: pd.DataFrame, encoding: str) -> list[str]:
    """One piece's note table -> tokens (notes outside the piano's range are left out by MidiTok).

    Returns ``[]`` for an empty table.
    """
    if notes.empty:
        return []
    tok = tokenizer(encoding)
    seqs = tok.encode(notes_to_score(notes, tok.time_division))
    seq = seqs[0] if isinstance(seqs, list) else seqs
    return list(seq.tokens)


# ------------------------------------------------------------------ decode

def decode(tokens: Sequence[str], encoding: str, *, qpm: float = 120.0, velocity: int = DEFAULT_VELOCITY,
           piece: str = "sample") -> pd.DataFrame:
    """Tokens -> a one-track note table, each note at its own decoded time.

    Tokens MidiTok cannot place (a ``Pitch`` with no ``Duration`` after it, a
    ``Duration`` with no ``Pitch`` before it) give no note; :func:`token_errors`
    counts them. Unknown tokens raise ``ValueError``.

    Returns
    -------
    notes : note table (:mod:`pipeline.core.notes`); beats from the first token,
        seconds at ``qpm``.
    """
    miditok = _miditok()

    tok = tokenizer(encoding)
    unknown = sorted({t for t in tokens if t not in tok.vocab})
    if unknown:
        raise ValueError(f"not {encoding} tokens: {' '.join(unknown[:5])}")
    if not tokens:
        return empty_note_table()
    seq = miditok.TokSequence(tokens=list(tokens))
    tok.complete_sequence(seq)
    score = tok.decode([seq])
    tpq = score.ticks_per_quarter
    rows = [(n.time / tpq, (n.time + n.duration) / tpq, n.pitch) for tr in score.tracks for n in tr.notes]
    if not rows:
        return empty_note_table()
    start, end, pitch = (np.array(c) for c in zip(*rows))
    spb = 60.0 / qpm
    return normalise_note_table(pd.DataFrame({
        "piece": piece, "track": 0, "program": 0, "pitch": pitch, "velocity": int(velocity),
        "start": start * spb, "end": end * spb, "start_beat": start, "end_beat": end}))


def decode_continuation(context: Sequence[str], tokens: Sequence[str], encoding: str, *, qpm: float = 120.0,
                        velocity: int = DEFAULT_VELOCITY, piece: str = "sample") -> pd.DataFrame:
    """The notes of ``tokens`` as they sound after ``context`` (e.g. a sample after its primer).

    Decoding the two together keeps what the context sets up: REMI's position in
    the bar, and TSD's duration of a note whose ``Pitch`` closes the context.
    The notes of the context are dropped and the rest is moved back by whole bars,
    so the continuation starts in its first bar with its beat phase kept.
    """
    notes = decode([*context, *tokens], encoding, qpm=qpm, velocity=velocity, piece=piece)
    made_by = _pitch_token_of(notes, [*context, *tokens])
    out = notes[made_by >= len(context)]
    if out.empty:
        return empty_note_table()
    shift = np.floor(out["start_beat"].min() / BEATS_PER_BAR) * BEATS_PER_BAR
    out = out.copy()
    out[["start_beat", "end_beat"]] -= shift
    out[["start", "end"]] -= shift * 60.0 / qpm
    return normalise_note_table(out)


def _pitch_token_of(notes: pd.DataFrame, tokens: Sequence[str]) -> np.ndarray:
    """For each row of ``notes`` (decoded from ``tokens``), the index of the ``Pitch`` token that made it.

    A note is matched to the first unmatched Pitch token of its pitch at its onset
    (:func:`token_times`), so a Pitch that made no note (no Duration after it) takes none.

    Returns
    -------
    index : int64 (n_notes,); -1 where no token matches (never for MidiTok's own decoding).
    """
    waiting: dict[tuple[float, int], list[int]] = {}
    for i, (tok, t) in enumerate(zip(tokens, token_times(tokens))):
        if tok.startswith("Pitch_"):
            waiting.setdefault((round(t, 6), int(tok[6:])), []).append(i)
    out = np.full(len(notes), -1, dtype=np.int64)
    for row, (b, p) in enumerate(zip(notes["start_beat"].to_numpy(), notes["pitch"].to_numpy())):
        found = waiting.get((round(float(b), 6), int(p)))
        if found:
            out[row] = found.pop(0)
    return out

# ------------------------------------------------------------------ token arithmetic

def _beats(value: str) -> float:
    """MidiTok's ``beats.steps.resolution`` duration value in beats: ``1.6.12`` -> 1.5."""
    b, s, r = (int(x) for x in value.split("."))
    return b + s / r


def token_times(tokens: Sequence[str]) -> list[float]:
    """The time in beats at which each token stands (TSD: after the shifts before it; REMI: bar + position).

    Follows the decoders' rules, so ``token_times(t)[i]`` is the onset of the
    note whose ``Pitch`` is ``t[i]``.
    """
    out, now, bar, bar_start = [], 0.0, -1, 0.0
    res = max(BEAT_RES.values())
    for tok in tokens:
        kind, _, value = tok.partition("_")
        if kind == "TimeShift":
            out.append(now)
            now += _beats(value)
            continue
        if kind == "Bar":  # as MidiTok's REMI decoder: the first Bar opens bar 0 where time stands
            bar += 1
            bar_start = bar_start + BEATS_PER_BAR if bar > 0 else now
            now = bar_start
        elif kind == "Position":
            bar = max(bar, 0)
            now = bar_start + int(value) / res
        out.append(now)
    return out


def pitches(tokens: Sequence[str]) -> list[int]:
    """The pitch of every ``Pitch`` token, in token order (chord notes low to high)."""
    return [int(t[6:]) for t in tokens if t.startswith("Pitch_")]


def transpose(tokens: Sequence[str], shift: int) -> list[str] | None:
    """The same tokens ``shift`` semitones higher; None when a pitch would leave the piano's range."""
    lo, hi = PITCH_RANGE
    out = []
    for t in tokens:
        if t.startswith("Pitch_"):
            p = int(t[6:]) + shift
            if not lo <= p < hi:
                return None
            t = f"Pitch_{p}"
        out.append(t)
    return out


def onset_groups(tokens: Sequence[str]) -> list[list[int]]:
    """Pitches grouped by onset, in time order: ``[[60, 64, 67], [72], ...]``."""
    groups: dict[float, list[int]] = {}
    for tok, t in zip(tokens, token_times(tokens)):
        if tok.startswith("Pitch_"):
            groups.setdefault(round(t, 6), []).append(int(tok[6:]))
    return [sorted(groups[t]) for t in sorted(groups)]


def token_errors(tokens: Sequence[str], encoding: str) -> float:
    """Share of tokens that break the encoding's grammar (MidiTok's ``tokens_errors``); nan if empty."""
    miditok = _miditok()

    if not tokens:
        return float("nan")
    seq = miditok.TokSequence(tokens=list(tokens))
    tokenizer(encoding).complete_sequence(seq)
    return float(tokenizer(encoding).tokens_errors(seq))


def short_label(token: str) -> str:
    """A few characters for a heatmap cell: ``C4``, ``d3/2`` (duration), ``+1/4`` (time shift),
    ``|`` (bar), ``@5/2`` (position in beats); no ``.``, which would split the label into lines."""
    kind, _, value = token.partition("_")
    if kind == "Pitch":
        return pretty_midi.note_number_to_name(int(value))
    if kind in ("Duration", "TimeShift"):
        b, st, r = (int(x) for x in value.split("."))
        return ("d" if kind == "Duration" else "+") + str(Fraction(b) + Fraction(st, r))
    if kind == "Bar":
        return "|"
    if kind == "Position":
        return "@" + str(Fraction(int(value), max(BEAT_RES.values())))
    return token[:6]


def token_features(tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """What each token of a timed sequence is, for the heatmaps: name -> float (time,).

    ``is_pitch``, ``is_duration``, ``is_time`` (TimeShift, Bar or Position), ``is_bar``;
    ``pitch`` (of the latest note, carried forward), ``high_register``/``low_register``
    (that pitch >= 72 / < 48), ``duration`` (beats of the latest Duration, carried),
    ``beat_in_bar`` (time within a 4/4 bar, continuous), ``chord_note`` (a Pitch at an
    onset that already had one).
    """
    n = len(tokens)
    f = {k: np.zeros(n) for k in ("is_pitch", "is_duration", "is_time", "is_bar", "pitch", "high_register",
                                  "low_register", "duration", "beat_in_bar", "chord_note")}
    pitch, dur, last_onset = 60.0, 0.0, None
    for i, (tok, t) in enumerate(zip(tokens, token_times(tokens))):
        kind, _, value = tok.partition("_")
        if kind == "Pitch":
            pitch = float(value)
            f["is_pitch"][i] = 1
            f["chord_note"][i] = last_onset == t
            last_onset = t
        elif kind == "Duration":
            dur = _beats(value)
            f["is_duration"][i] = 1
        elif kind in ("TimeShift", "Bar", "Position"):
            f["is_time"][i] = 1
            f["is_bar"][i] = kind == "Bar"
        f["pitch"][i], f["duration"][i] = pitch, dur
        f["high_register"][i], f["low_register"][i] = pitch >= 72, pitch < 48
        f["beat_in_bar"][i] = t % BEATS_PER_BAR
    return f


class TimedCodec(Codec):
    """A MidiTok tokenisation: its tokens carry their own rhythm, and a chord's notes sound together."""

    timed = True
    default_length = 300

    def __init__(self, name: str):
        self.name = name

    def encode(self, notes: pd.DataFrame, tolerance: float = 0.02) -> list[str]:
        """Onsets quantised to MidiTok's beat grid (``tolerance`` does not apply)."""
        return encode(notes, self.name)

    def dropped(self, notes: pd.DataFrame) -> dict[str, int]:
        lo, hi = PITCH_RANGE
        n = int(((notes["pitch"] < lo) | (notes["pitch"] >= hi)).sum())
        return {"outside the piano's 88 keys (tsd/remi)": n} if n else {}

    def vocabulary(self, sequences) -> list[str]:
        """The tokenizer's whole vocabulary (every transposition and duration)."""
        return vocabulary(self.name)

    def to_groups(self, tokens: Sequence[str]) -> list[list[int]]:
        return onset_groups(tokens)

    def pitches(self, tokens: Sequence[str]) -> list[int]:
        return pitches(tokens)

    def onset_tokens(self, tokens: Sequence[str]) -> list[str]:
        """Each onset as one chord name (``C4.E4.G4``): a repeated chord is a repeated token whatever
        its rhythm, and an 8-gram spans 8 onsets as it does for ``names``."""
        return chord_names(onset_groups(tokens))

    def decode(self, tokens: Sequence[str], timing: TimingModel, *, seed: int = 0,
               context: Sequence[str] = ()) -> pd.DataFrame:
        """The tokens' own timing at ``timing.qpm``; ``context`` is decoded with them, then left out."""
        return decode_continuation(context, tokens, self.name, qpm=timing.qpm, velocity=timing.velocity)

    def transpose(self, tokens: Sequence[str], shift: int) -> list[str] | None:
        return transpose(tokens, shift)

    def features(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        return token_features(tokens)

    def label(self, token: str) -> str:
        return short_label(token)

    def grammar_errors(self, tokens: Sequence[str]) -> float | None:
        return token_errors(tokens, self.name)


__all__ = ["tokenizer", "vocabulary", "encode", "decode", "decode_continuation", "pitches",
           "transpose", "onset_groups", "token_times", "token_errors", "token_features", "short_label", "TimedCodec"]
