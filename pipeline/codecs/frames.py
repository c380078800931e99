"""The ``frames`` encoding: a piece on a time grid, one frame after another.

Each frame is written as the names of the notes sounding in it, low to high
(``C4``, ``F#3``: :func:`pretty_midi.note_number_to_name`), then one
end-of-frame token :data:`FRAME_END`. An empty frame is the ``|`` alone. The
vocabulary is fixed, the 88 piano keys A0..C8 and ``|`` (89 tokens), so no note
of an unseen piece is ever unknown. This is the piano roll of the polyphonic
benchmarks (Boulanger-Lewandowski et al. 2012) as a token sequence: the loss of
every token of a piece, ``|`` included, divided by :func:`count_frames` is
their nats per frame.

A frame holds which pitches sound, not which are struck: a note held over three
frames and the same note struck three times read the same, in the benchmark
rolls as here, and the decoder makes one held note of either.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pretty_midi

from pipeline.codecs.base import Codec, chord_names
from pipeline.codecs.onsets import TimingModel
from pipeline.core.notes import KEYS, OUTSIDE_KEYS, PIANO_HIGH, PIANO_LOW
from pipeline.inputs.rolls import rolls_to_notes

FRAME_END = "|"
NOTE_TOKENS: tuple[str, ...] = tuple(pretty_midi.note_number_to_name(p) for p in range(PIANO_LOW, PIANO_HIGH + 1))
VOCABULARY: tuple[str, ...] = NOTE_TOKENS + (FRAME_END,)  # code k < 88: pitch 21 + k; code 88: FRAME_END

_CODES = {token: code for code, token in enumerate(VOCABULARY)}
_TOKENS = np.array(VOCABULARY, dtype=object)


def _codes(tokens: Sequence[str]) -> np.ndarray:
    """Tokens -> codes, shape (len(tokens),) int64; an unknown token raises ValueError."""
    try:
        return np.fromiter((_CODES[t] for t in tokens), np.int64, len(tokens))
    except KeyError as exc:
        raise ValueError(f"not a frames token: {exc.args[0]!r}") from None


def _tokens(frame: np.ndarray, key: np.ndarray, n_frames: int) -> list[str]:
    """Tokens of the sounding (frame, key) pairs, sorted by frame then key (key = pitch - 21).

    The k-th note of frame f stands after k notes and f frame ends; every other
    place of the sequence is a frame end.
    """
    codes = np.full(len(key) + n_frames, KEYS, np.int64)
    codes[np.arange(len(key)) + frame] = key
    return _TOKENS[codes].tolist()


def notes_to_frames(notes: pd.DataFrame, grid_beats: float = 0.25, *,
                    n_frames: int | None = None) -> tuple[list[str], dict[str, int]]:
    """One piece's note table -> frame tokens on a beat grid.

    A note of ``start_beat`` s and ``end_beat`` e sounds in frames ``round(s/g)``
    to ``max(round(s/g) + 1, round(e/g)) - 1`` (so every note sounds in at least
    one frame). The piece runs from frame 0 (beat 0: leading silence is kept as
    empty frames) to its last sounding frame, or to ``n_frames`` frames where
    given: a note table cannot hold trailing silence, so a roll that ends in
    empty frames keeps them only when its length is passed here.

    Parameters
    ----------
    notes : note table of one piece, shape (n_notes, 9); only ``pitch``,
        ``start_beat`` and ``end_beat`` are read.
    grid_beats : frame length in quarter-note beats (0.25: sixteenths).
    n_frames : length of the piece in frames, at least its sounding length.

    Returns
    -------
    tokens : shape (notes in all frames + frames,); ``[]`` for an empty table
        (and ``n_frames`` not given).
    dropped : reason -> count of notes left out (pitches outside 21..108).
    """
    if not grid_beats > 0:
        raise ValueError(f"grid_beats must be positive, not {grid_beats}")
    pitch = notes["pitch"].to_numpy(np.int64)
    inside = (pitch >= PIANO_LOW) & (pitch <= PIANO_HIGH)
    dropped = {} if inside.all() else {OUTSIDE_KEYS: int((~inside).sum())}
    key = pitch[inside] - PIANO_LOW
    on = np.rint(notes["start_beat"].to_numpy(np.float64)[inside] / grid_beats).astype(np.int64)
    off = np.maximum(on + 1, np.rint(notes["end_beat"].to_numpy(np.float64)[inside] / grid_beats).astype(np.int64))
    if len(on) and on.min() < 0:
        raise ValueError(f"a note starts before beat 0 (at beat {on.min() * grid_beats})")
    sounding = int(off.max()) if len(off) else 0
    if n_frames is not None and n_frames < sounding:
        raise ValueError(f"n_frames={n_frames} is shorter than the piece ({sounding} frames)")
    length = sounding if n_frames is None else n_frames
    # +1 where a note starts, -1 where it ends: the running sum counts the copies of each key sounding
    cells = (length + 1) * KEYS
    change = np.bincount(on * KEYS + key, minlength=cells) - np.bincount(off * KEYS + key, minlength=cells)
    frame, key = np.nonzero(change.reshape(length + 1, KEYS).cumsum(axis=0)[:length] > 0)
    return _tokens(frame, key, length), dropped


def rolls_to_tokens(frames: Sequence[Sequence[int]]) -> list[str]:
    """Frames of MIDI pitches (each 21..108, any order) -> tokens; the inverse of :func:`tokens_to_rolls`.

    Parameters
    ----------
    frames : n_frames lists of pitches; a pitch listed twice in a frame counts once.

    Returns
    -------
    tokens : shape (distinct notes in all frames + n_frames,).
    """
    rows = [sorted(set(f)) for f in frames]
    pitch = np.fromiter((p for r in rows for p in r), np.int64)
    if len(pitch) and not (PIANO_LOW <= pitch.min() and pitch.max() <= PIANO_HIGH):
        raise ValueError(f"a pitch is {OUTSIDE_KEYS} ({PIANO_LOW}..{PIANO_HIGH}): {pitch.min()}..{pitch.max()}")
    frame = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return _tokens(frame, pitch - PIANO_LOW, len(rows))


def tokens_to_rolls(tokens: Sequence[str]) -> list[list[int]]:
    """Tokens -> frames of MIDI pitches, each sorted and without repeats.

    Every ``|`` ends a frame; notes after the last ``|`` are a frame of their
    own (a sample cut short keeps its last chord). Unknown tokens raise ValueError.

    Returns
    -------
    frames : n_frames lists of pitches 21..108.
    """
    codes = _codes(tokens)
    ends = np.flatnonzero(codes == KEYS).tolist()
    if len(codes) and (not ends or ends[-1] < len(codes) - 1):
        ends.append(len(codes))  # the notes after the last ``|``
    pitches = (codes + PIANO_LOW).tolist()
    return [sorted(set(pitches[a:b])) for a, b in zip([0] + [e + 1 for e in ends[:-1]], ends)]


def frames_to_notes(tokens: Sequence[str], *, seconds_per_frame: float, beats_per_frame: float,
                    velocity: int = 80, piece: str = "sample") -> pd.DataFrame:
    """Frame tokens -> a note table (one track, program 0).

    A pitch that sounds in consecutive frames is one held note, from the start
    of its first frame to the end of its last: a repeated note and a held note
    are the same here, as in the benchmark rolls.

    Returns
    -------
    notes : note table, shape (n_notes, 9); frame i starts at
        ``i * seconds_per_frame`` seconds and ``i * beats_per_frame`` beats.
    """
    return rolls_to_notes([tokens_to_rolls(tokens)], frame_seconds=seconds_per_frame,
                          frame_beats=beats_per_frame, names=[piece], velocity=velocity)


def move_token(token: str, shift: int) -> str | None:
    """One token ``shift`` semitones higher (lower if negative); ``|`` stays.

    Returns None where the note would leave the piano's keys; unknown tokens raise ValueError.
    """
    code = _codes([token])[0]
    if code == KEYS:
        return token
    return NOTE_TOKENS[code + shift] if 0 <= code + shift < KEYS else None


def transpose(tokens: Sequence[str], shift: int) -> list[str] | None:
    """Every note ``shift`` semitones higher (lower if negative), ``|`` kept.

    Returns None where a note would leave the piano's keys (21..108), so a
    caller can skip that key.
    """
    codes = _codes(tokens)
    notes = codes < KEYS
    moved = codes + shift * notes
    if notes.any() and not (0 <= moved[notes].min() and moved[notes].max() < KEYS):
        return None
    return _TOKENS[moved].tolist()


def count_frames(tokens: Sequence[str]) -> int:
    """How many frames a sequence ends: its ``|`` tokens (what nats per frame divides by)."""
    return sum(1 for t in tokens if t == FRAME_END)


FEATURES = ("is_frame_end", "pitch", "high_register", "low_register", "notes_in_frame", "onset")


def features(tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """What each token of a frames sequence is, for the hidden-unit heatmaps.

    ``is_frame_end``
        1 at ``|``.
    ``pitch``
        MIDI pitch of the note; a ``|`` carries the pitch of the note before it
        (60, middle C, before the first note).
    ``high_register`` / ``low_register``
        that pitch >= 72 (C5) / < 48 (C3).
    ``notes_in_frame``
        how many notes the frame of this token holds (its ``|`` included).
    ``onset``
        1 at a note that did not sound in the frame before (every note of the
        first frame); 0 at a held note and at ``|``.

    Returns
    -------
    features : name -> float64 array of shape (len(tokens),); binary features are 0/1.
    """
    codes = _codes(tokens)
    n = len(codes)
    end = codes == KEYS
    note = ~end
    frame = np.cumsum(end) - end  # the frame each token belongs to: its own ``|`` included
    last_note = np.maximum.accumulate(np.where(note, np.arange(n), -1)) if n else np.zeros(0, np.int64)
    pitch = np.where(last_note >= 0, codes[np.maximum(last_note, 0)] + PIANO_LOW, 60).astype(np.float64)
    cell = frame * KEYS + codes
    onset = note & ~np.isin(cell - KEYS, cell[note])
    return {
        "is_frame_end": end.astype(np.float64),
        "pitch": pitch,
        "high_register": (pitch >= 72).astype(np.float64),
        "low_register": (pitch < 48).astype(np.float64),
        "notes_in_frame": np.bincount(frame, weights=note, minlength=1)[frame] if n else np.zeros(0),
        "onset": onset.astype(np.float64),
    }


__all__ = ["FRAME_END", "VOCABULARY", "NOTE_TOKENS", "FEATURES", "PIANO_LOW", "PIANO_HIGH", "KEYS", "OUTSIDE_KEYS",
           "notes_to_frames", "rolls_to_tokens", "tokens_to_rolls", "frames_to_notes", "move_token",
           "transpose", "count_frames", "features"]


GRID_BEATS = 0.25  # sixteenths for MIDI; a benchmark roll's frame is written as one such step (extract)


class FramesCodec(Codec):
    """``frames``: the piece on a sixteenth-note grid, each frame its sounding notes then ``|``.

    A piece's sequence opens with one ``|`` (the silence before it begins), so the
    first real frame is predicted like every other, from a state reset at the piece's
    start: nats per frame score every token after that marker (:meth:`scored_frames`).
    """

    name = "frames"
    timed = True           # frames carry their own rhythm
    has_chords = True
    eval_window = 0        # nats per frame is a full-context measure; 30-token windows would cost 30x as much
    # samples of the user's three commands on the nocturnes (docs/bench/listen.md): 1.0 wanders out of
    # key (best-scale fit ~0.66); 0.7 keeps it (~0.8) with a steady pulse and no copying
    default_temperature = 0.7
    default_length = 600   # tokens: about 150 frames of four-part writing, 9 s at 0.25 beat a frame and 100 qpm
    # chosen on the validation pieces of the benchmark corpora (docs/bench/polyphonic.md)
    train_defaults: dict[str, Any] = {"hidden": 256, "embed": 32, "dropout": 0.2, "lr": 0.003, "lr_decay": 0.9,
                                      "batch": 32, "window": 100, "stack": "plain", "patience": 3}

    def encode(self, notes: pd.DataFrame, tolerance: float = 0.02) -> list[str]:
        """``|`` then the frames of ``notes`` on the sixteenth grid (``tolerance`` does not apply)."""
        if notes.empty:
            return []
        return [FRAME_END, *notes_to_frames(notes, GRID_BEATS)[0]]

    def dropped(self, notes: pd.DataFrame) -> dict[str, int]:
        n = int(((notes["pitch"] < PIANO_LOW) | (notes["pitch"] > PIANO_HIGH)).sum())
        return {f"{OUTSIDE_KEYS} (frames)": n} if n else {}

    def vocabulary(self, sequences) -> list[str]:
        return list(VOCABULARY)

    def _body(self, tokens: Sequence[str]) -> Sequence[str]:
        return tokens[1:] if len(tokens) and tokens[0] == FRAME_END else tokens

    def to_groups(self, tokens: Sequence[str]) -> list[list[int]]:
        """The pitches struck at each frame (a pitch not sounding in the frame before), frames with one."""
        rolls = tokens_to_rolls(self._body(tokens))
        out, before = [], set()
        for frame in rolls:
            struck = [p for p in frame if p not in before]
            if struck:
                out.append(struck)
            before = set(frame)
        return out

    def onset_tokens(self, tokens: Sequence[str]) -> list[str]:
        """Each onset (the notes struck in a frame) as one chord name (``C4.E4.G4``), as for tsd/remi: a held
        chord is one token, not one per frame, so holding a half note is not a repetition."""
        return chord_names(self.to_groups(tokens))

    def decode(self, tokens: Sequence[str], timing: TimingModel, *, seed: int = 0,
               context: Sequence[str] = ()) -> pd.DataFrame:
        """Consecutive frames of a pitch are one held note; a frame lasts a sixteenth at ``timing.qpm``."""
        return frames_to_notes(self._body(list(tokens)), seconds_per_frame=GRID_BEATS * 60.0 / timing.qpm,
                               beats_per_frame=GRID_BEATS, velocity=timing.velocity)

    def transpose(self, tokens: Sequence[str], shift: int) -> list[str] | None:
        return transpose(tokens, shift)

    def move_token(self, token: str, shift: int) -> str | None:
        return move_token(token, shift)

    def features(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        return features(tokens)

    def scored_frames(self, tokens: Sequence[str]) -> int:
        """Frames a piece's loss is divided by: every ``|`` but the opening marker."""
        return max(count_frames(tokens) - 1, 0) if len(tokens) and tokens[0] == FRAME_END else count_frames(tokens)
