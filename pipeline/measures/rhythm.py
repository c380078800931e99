"""Rhythm metrics of one sample: polyphony, empty beats, groove consistency, gap and duration histograms.

Pure functions over onsets and offsets in beats (a grid of ``resolution`` steps
a beat, bars of ``beats_per_bar``); the empty-input rule and the definitions
(muspy, mgeval) are :mod:`pipeline.measures.metrics`'s.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pipeline.measures.pitch import _normalise, _pitch_array

# 12 steps per beat hold both sixteenths (3 steps) and eighth-note triplets (4)
DEFAULT_RESOLUTION = 12
DEFAULT_BEATS_PER_BAR = 4
DEFAULT_MAX_BEATS = 4  # rhythm histograms: gaps and durations up to a 4/4 bar, then one overflow bin
DEFAULT_POLYPHONY_THRESHOLD = 2  # muspy's default: "more than 2" pitches, i.e. a triad or more


# -------------------------------------------------------------------------- rhythm

def _beat_grid(start_beat: Sequence[float], end_beat: Sequence[float], resolution: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Validate onsets/offsets in beats; return them as int64 grid steps, each (n_notes,).

    Both snap to the nearest step; a note shorter than half a step still sounds
    for one step, so no note vanishes from the grid.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f"resolution must be an int >= 1 (steps per beat), got {resolution!r}")
    on = np.asarray(start_beat, dtype=float)
    off = np.asarray(end_beat, dtype=float)
    if on.ndim != 1 or on.shape != off.shape:
        raise ValueError(f"start_beat and end_beat must be flat and the same length, got {on.shape} and {off.shape}")
    if not (np.isfinite(on).all() and np.isfinite(off).all()):
        raise ValueError("start_beat and end_beat must be finite")
    if (on < 0).any() or (off < on).any():
        raise ValueError("notes must start at beat >= 0 and end no earlier than they start")
    on_steps = np.rint(on * resolution).astype(np.int64)
    return on_steps, np.maximum(np.rint(off * resolution).astype(np.int64), on_steps + 1)


def _sounding(on: np.ndarray, off: np.ndarray, column: np.ndarray, n_columns: int) -> np.ndarray:
    """Bool roll (last offset, n_columns): True where some note of that column sounds.

    A difference array, so overlapping notes in one column count once (as in
    muspy's binary piano roll) and long pieces cost O(steps * columns).
    """
    diff = np.zeros((int(off.max()) + 1, n_columns), dtype=np.int32)
    np.add.at(diff, (on, column), 1)
    np.add.at(diff, (off, column), -1)
    return np.cumsum(diff, axis=0)[:-1] > 0


def _pitches_sounding(pitches: Sequence[int], start_beat: Sequence[float], end_beat: Sequence[float],
                      resolution: int) -> np.ndarray:
    """Distinct pitches sounding at each grid step, int (last offset,); empty for no notes."""
    p = _pitch_array(pitches)
    on, off = _beat_grid(start_beat, end_beat, resolution)
    if p.shape != on.shape:
        raise ValueError(f"pitches and onsets differ in length: {p.size} and {on.size}")
    if not p.size:
        return np.zeros(0, dtype=np.int64)
    used, column = np.unique(p, return_inverse=True)
    return _sounding(on, off, column.reshape(-1), used.size).sum(axis=1)


def polyphony(pitches: Sequence[int], start_beat: Sequence[float], end_beat: Sequence[float], *,
              resolution: int = DEFAULT_RESOLUTION) -> float:
    """Mean number of distinct pitches sounding, over the steps where any sounds (muspy).

    Parameters
    ----------
    pitches : int (n_notes,), MIDI 0-127.
    start_beat, end_beat : float (n_notes,), in beats from the start of the piece.
    resolution : grid steps per beat.

    Returns
    -------
    float ``>= 1``: ``1.0`` for a single note or a melody without overlaps, 3
    for block triads throughout; ``nan`` for empty input.
    """
    counts = _pitches_sounding(pitches, start_beat, end_beat, resolution)
    sounding = np.count_nonzero(counts)
    return float(counts.sum() / sounding) if sounding else math.nan


def polyphony_rate(pitches: Sequence[int], start_beat: Sequence[float], end_beat: Sequence[float], *,
                   threshold: int = DEFAULT_POLYPHONY_THRESHOLD, resolution: int = DEFAULT_RESOLUTION) -> float:
    """Share of grid steps with more than ``threshold`` distinct pitches sounding (muspy).

    As in muspy the comparison is strict, so the default ``threshold=2``
    counts steps with three or more pitches (a triad and up; MuseGAN's
    "polyphonicity"), and the denominator is every step from beat 0 to the
    last offset, rests included.

    Parameters
    ----------
    pitches, start_beat, end_beat : (n_notes,) as for :func:`polyphony`.

    Returns
    -------
    float in ``[0, 1]``; ``0.0`` for a single note; ``nan`` for empty input.
    """
    counts = _pitches_sounding(pitches, start_beat, end_beat, resolution)
    return float(np.count_nonzero(counts > threshold) / counts.size) if counts.size else math.nan


def empty_beat_rate(start_beat: Sequence[float], end_beat: Sequence[float], *,
                    resolution: int = DEFAULT_RESOLUTION) -> float:
    """Share of beats in which no note sounds (muspy, Pypianoroll).

    The beats are those from beat 0 to the one holding the last offset, so
    leading silence counts as empty. A note covers the beats its half-open
    span ``[start, end)`` touches on the grid. (muspy counts the beat a note
    ends exactly on as covered, and always one beat past the end, so a
    one-beat rest between two one-beat notes reads as 0 there; here it is 1/3.)

    Parameters
    ----------
    start_beat, end_beat : float (n_notes,), in beats.

    Returns
    -------
    float in ``[0, 1)``; ``0.0`` for a single note starting at beat 0;
    ``nan`` for empty input.
    """
    on, off = _beat_grid(start_beat, end_beat, resolution)
    if not on.size:
        return math.nan
    steps = _sounding(on, off, np.zeros_like(on), 1)[:, 0]
    n_beats = -(-steps.size // resolution)
    steps = np.pad(steps, (0, n_beats * resolution - steps.size))
    return np.count_nonzero(~steps.reshape(n_beats, resolution).any(axis=1)) / n_beats


def pulse_share(start_beat: Sequence[float], *, resolution: int = DEFAULT_RESOLUTION) -> float:
    """Share of the gaps between consecutive onsets that equal the commonest gap: how steady the pulse is.

    Onsets snap to ``resolution`` steps a beat and notes starting together count once,
    so a chord is one onset. ``1.0``: every onset the same distance after the one
    before (a metronome); ``nan`` with fewer than two onsets.
    """
    steps = np.unique(np.rint(np.asarray(start_beat, dtype=np.float64) * resolution).astype(np.int64))
    gaps = np.diff(steps)
    if len(gaps) == 0:
        return math.nan
    return float(np.bincount(gaps).max() / len(gaps))


def groove_consistency(start_beat: Sequence[float], end_beat: Sequence[float], *,
                       beats_per_bar: int = DEFAULT_BEATS_PER_BAR, resolution: int = DEFAULT_RESOLUTION) -> float:
    """One minus the mean Hamming distance between neighbouring bars' onset patterns (muspy).

    Each bar's pattern is a bool vector of ``beats_per_bar * resolution``
    steps, True where a note starts. The distance between two neighbouring
    bars is the share of steps where their patterns differ; the result is 1
    minus its mean over all neighbouring pairs. Bars run from beat 0 in a
    constant meter; they are those up to the one holding the last offset
    (muspy adds an empty bar when the music ends on a barline).

    Parameters
    ----------
    start_beat, end_beat : float (n_notes,), in beats.
    beats_per_bar : beats in one bar (4 for 4/4).

    Returns
    -------
    float in ``[0, 1]``; ``1.0`` when every bar repeats the same rhythm;
    ``nan`` for music within one bar (including empty input and a single
    note), which has no neighbouring bars.
    """
    if beats_per_bar < 1:
        raise ValueError(f"beats_per_bar must be >= 1, got {beats_per_bar}")
    on, off = _beat_grid(start_beat, end_beat, resolution)
    bar = beats_per_bar * resolution
    n_bars = -(-int(off.max()) // bar) if on.size else 0
    if n_bars < 2:
        return math.nan
    pattern = np.zeros((n_bars, bar), dtype=bool)
    pattern[on // bar, on % bar] = True
    return float(1.0 - np.count_nonzero(pattern[1:] != pattern[:-1]) / (bar * (n_bars - 1)))


def _step_counts(steps: np.ndarray, resolution: int, max_beats: int) -> np.ndarray:
    if max_beats < 1:
        raise ValueError(f"max_beats must be >= 1, got {max_beats}")
    top = max_beats * resolution
    return np.bincount(np.minimum(steps, top + 1) - 1, minlength=top + 1).astype(float)


def _onset_gap_counts(start_beat: Sequence[float], resolution: int, max_beats: int) -> np.ndarray:
    on, _ = _beat_grid(start_beat, start_beat, resolution)  # onsets only: zero-length spans are fine
    return _step_counts(np.diff(np.unique(on)), resolution, max_beats)


def _duration_counts(start_beat: Sequence[float], end_beat: Sequence[float], resolution: int,
                     max_beats: int) -> np.ndarray:
    on, off = _beat_grid(start_beat, end_beat, resolution)
    return _step_counts(off - on, resolution, max_beats)


def onset_gap_histogram(start_beat: Sequence[float], *, resolution: int = DEFAULT_RESOLUTION,
                        max_beats: int = DEFAULT_MAX_BEATS) -> np.ndarray:
    """Histogram of the gaps between successive onsets, in grid steps.

    Notes whose onsets snap to the same step are one onset (a chord), so a gap
    is never 0; the gaps are the differences of the sorted distinct onsets.
    A rest counts into the gap it follows, since an onset gap (inter-onset
    interval) is what a listener hears as rhythm.

    Bins lie on the beat grid: bin ``i`` holds ``i + 1`` steps, that is
    ``(i + 1) / resolution`` beats, for ``i < max_beats * resolution``; the
    last bin, ``max_beats * resolution``, holds every longer gap. By default
    (12 steps per beat, 4 beats) that is 1/12 beat to a whole 4/4 bar in 48
    bins plus one overflow bin.

    Parameters
    ----------
    start_beat : float (n_notes,), in beats, any order.

    Returns
    -------
    hist : float array of shape (max_beats * resolution + 1,); sums to 1, or
        all zeros with fewer than two distinct onsets (empty input, a single
        note or a single chord).
    """
    return _normalise(_onset_gap_counts(start_beat, resolution, max_beats))


def duration_histogram(start_beat: Sequence[float], end_beat: Sequence[float], *,
                       resolution: int = DEFAULT_RESOLUTION, max_beats: int = DEFAULT_MAX_BEATS) -> np.ndarray:
    """Histogram of note durations, in grid steps (one count per note).

    A duration is the snapped offset minus the snapped onset, at least one
    step. Bins as in :func:`onset_gap_histogram`: bin ``i`` holds ``i + 1``
    steps, the last one everything longer than ``max_beats``.

    Parameters
    ----------
    start_beat, end_beat : float (n_notes,), in beats.

    Returns
    -------
    hist : float array of shape (max_beats * resolution + 1,); sums to 1, or
        all zeros for empty input. A single note gives a one-hot vector.
    """
    return _normalise(_duration_counts(start_beat, end_beat, resolution, max_beats))
