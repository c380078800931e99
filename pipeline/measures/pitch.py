"""Pitch metrics of one sample: ranges, histograms, entropies, scale consistency, and histogram distances.

Pure functions over MIDI pitches in onset order; the empty-input rule and the
definitions (muspy, mgeval) are :mod:`pipeline.measures.metrics`'s.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

# muspy's masks (C major, C natural minor); other tonics are rotations.
_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
_SCALES = np.stack(
    [np.roll(_MAJOR, r) for r in range(12)] + [np.roll(_MINOR, r) for r in range(12)]
)  # (24, 12): rows are major C..B then minor C..B

DEFAULT_MAX_INTERVAL = 12


# --------------------------------------------------------------------------- input

def _pitch_array(pitches: Sequence[int]) -> np.ndarray:
    """Validate pitches and return them as an int64 array of shape (n_notes,)."""
    arr = np.asarray(pitches)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"pitches must be a flat sequence of ints, got dtype {arr.dtype}, shape {arr.shape}")
    if arr.min() < 0 or arr.max() > 127:
        raise ValueError(f"pitches must lie in 0..127, got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------- pitch

def pitch_range(pitches: Sequence[int]) -> int:
    """Highest minus lowest pitch in semitones (muspy, mgeval ``pitch_range``).

    Returns ``0`` for empty input (as muspy) and for a single note.
    """
    p = _pitch_array(pitches)
    return int(p.max() - p.min()) if p.size else 0


def n_pitches_used(pitches: Sequence[int]) -> int:
    """Number of distinct pitches (muspy; mgeval ``total_used_pitch``). ``0`` if empty."""
    return int(np.unique(_pitch_array(pitches)).size)


def n_pitch_classes_used(pitches: Sequence[int]) -> int:
    """Number of distinct pitch classes, 0-12 (muspy). ``0`` if empty."""
    return int(np.unique(_pitch_array(pitches) % 12).size)


def _pitch_class_counts(pitches: Sequence[int]) -> np.ndarray:
    return np.bincount(_pitch_array(pitches) % 12, minlength=12).astype(float)


def pitch_class_histogram(pitches: Sequence[int]) -> np.ndarray:
    """Share of notes in each pitch class (mgeval ``total_pitch_class_histogram``).

    Counts notes, not durations, since pitches carry no timing.

    Returns
    -------
    hist : float array of shape (12,), index 0 = C; sums to 1, or all zeros
        for empty input. A single note gives a one-hot vector.
    """
    return _normalise(_pitch_class_counts(pitches))


def pitch_entropy(pitches: Sequence[int]) -> float:
    """Shannon entropy in bits of the pitch histogram (muspy).

    ``0.0`` for a single note or one repeated pitch (the collapse), at most
    ``log2(128)``; ``nan`` for empty input.
    """
    return _entropy_bits(np.bincount(_pitch_array(pitches), minlength=128))


def pitch_class_entropy(pitches: Sequence[int]) -> float:
    """Shannon entropy in bits of the pitch-class histogram (muspy).

    In ``[0, log2(12)]``; ``0.0`` for a single note; ``nan`` for empty input.
    """
    return _entropy_bits(_pitch_class_counts(pitches))


def scale_consistency(pitches: Sequence[int]) -> float:
    """Largest share of notes inside one major or natural-minor scale (muspy).

    The maximum over the 24 scales (12 tonics x major/minor) of the
    pitch-in-scale rate. In ``[7/12, 1]`` for any non-empty input: each pitch
    class lies in 7 of the 12 major scales, so the best scale holds at least
    the average share, and an even chromatic line reaches exactly 7/12.
    ``1.0`` for a single note; ``nan`` for empty input, as muspy.
    """
    counts = _pitch_class_counts(pitches)
    total = counts.sum()
    if total == 0:
        return math.nan
    return float((_SCALES @ counts).max() / total)


# ------------------------------------------------------------------------ interval

def _interval_counts(pitches: Sequence[int], max_interval: int) -> np.ndarray:
    if max_interval < 1:
        raise ValueError(f"max_interval must be >= 1, got {max_interval}")
    steps = np.clip(np.diff(_pitch_array(pitches)), -max_interval, max_interval)
    return np.bincount(steps + max_interval, minlength=2 * max_interval + 1).astype(float)


def interval_histogram(pitches: Sequence[int], max_interval: int = DEFAULT_MAX_INTERVAL) -> np.ndarray:
    """Histogram of signed melodic intervals between consecutive pitches.

    Intervals are ``pitches[i + 1] - pitches[i]`` in semitones, clipped to
    ``[-max_interval, max_interval]`` so that leaps wider than an octave (by
    default) share the end bins. Chord notes are consecutive in the list, so
    the steps inside a chord count too: the list has no onsets to tell them
    apart. Being about intervals, the histogram ignores transposition.

    Returns
    -------
    hist : float array of shape (2 * max_interval + 1,); bin ``k`` holds
        interval ``k - max_interval`` (the middle bin is a repeated pitch).
        Sums to 1, or all zeros when there are fewer than two notes.
    """
    return _normalise(_interval_counts(pitches, max_interval))


# ------------------------------------------------------------------------ distance

def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``0.5 * sum(|p - q|)`` between two histograms.

    Both are normalised first, so raw counts are fine. Chosen because it is a
    true metric (symmetric), bounded in ``[0, 1]`` (0 identical, 1 disjoint
    supports) and finite on disjoint supports, where KL divergence is
    infinite; and it equals ``1 - overlap``, the overlapping area of the two
    histograms (mgeval's comparison, there taken over fitted densities).

    Parameters
    ----------
    p, q : non-negative arrays of the same shape (n_bins,).

    Returns
    -------
    float in ``[0, 1]``; ``nan`` if either histogram is all zeros (an empty
    sample has no distribution to compare).
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"histograms must be 1-D and the same shape, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("histograms must be non-negative")
    if p.sum() == 0 or q.sum() == 0:
        return math.nan
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def _as_histogram(
    x: Sequence[int] | np.ndarray, n_bins: int, make: Callable[[Sequence[int]], np.ndarray]
) -> np.ndarray:
    # A floating-point ndarray is a histogram (what the histogram functions
    # return); anything else (list, tuple, int array) is a pitch list. A
    # length-12 list of pitches would otherwise be indistinguishable from counts.
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        if x.shape != (n_bins,):
            raise ValueError(f"histogram must have shape ({n_bins},), got {x.shape}")
        return x
    return make(x)


def pitch_class_histogram_distance(
    a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray
) -> float:
    """Total variation distance between two pitch-class histograms.

    Parameters
    ----------
    a, b : each either pitches (list/tuple/int array) or a float histogram of
        shape (12,) such as :func:`pitch_class_histogram` or
        :attr:`Reference.pitch_class_histogram` returns.

    Returns
    -------
    float in ``[0, 1]`` (see :func:`histogram_distance`); ``nan`` if either
    side is empty. Two single notes give 0 (same class) or 1.
    """
    return histogram_distance(
        _as_histogram(a, 12, pitch_class_histogram), _as_histogram(b, 12, pitch_class_histogram)
    )


def interval_distribution_distance(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    max_interval: int = DEFAULT_MAX_INTERVAL,
) -> float:
    """Total variation distance between two interval histograms.

    Parameters
    ----------
    a, b : each either pitches or a float histogram of shape
        (2 * max_interval + 1,) from :func:`interval_histogram`.

    Returns
    -------
    float in ``[0, 1]``; ``nan`` if either side has fewer than two notes.
    """
    def make(p: Sequence[int]) -> np.ndarray:
        return interval_histogram(p, max_interval)

    n_bins = 2 * max_interval + 1
    return histogram_distance(_as_histogram(a, n_bins, make), _as_histogram(b, n_bins, make))
