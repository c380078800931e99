"""Musical metrics of one generated sample, as pure functions over note lists.

They exist to catch the ways generative models fail: the "same note forever"
collapse (:func:`longest_repeat_run`, :func:`repetition_rate`, entropies near
zero), drifting away from the training style (the histogram distances, pitch
and rhythm), rhythm falling apart (:func:`groove_consistency`,
:func:`empty_beat_rate`) and memorisation (:func:`ngram_copy_rate`).

Inputs are plain data:

``pitches``  MIDI pitches 0-127 in onset order, chord notes low to high, as
             :func:`pipeline.codecs.tokens_to_pitches` gives them. The
             pitch metrics take no timing, so their histograms count notes,
             not durations (mgeval weights by duration).
``tokens``   the model's tokens (``'E4'``, ``'C4.E4.G4'`` or ABC characters);
             any hashable items work. A chord token is one token.
``start_beat``, ``end_beat``
             the rhythm metrics' input: float arrays of shape (n_notes,),
             onsets and offsets in quarter-note beats from the start of the
             piece (the note table's columns), any order. They snap to a grid
             of ``resolution`` steps per beat (12 by default) and bars of
             ``beats_per_bar`` beats starting at beat 0, as muspy's integer
             times do; the polyphony metrics also take the notes' ``pitches``
             in the same order.

Empty and short input, one rule for the whole module (muspy's):

* counts (``pitch_range``, ``n_pitches_used``, ``n_pitch_classes_used``,
  ``longest_repeat_run``) are ``0`` on empty input;
* histograms are all zeros when there is nothing to count;
* ratios, entropies and distances are ``nan`` when their denominator is zero
  (no notes, no intervals, no n-grams, an all-zero histogram), so an undefined
  value never passes for a perfect or a terrible score. Aggregate with
  ``np.nanmean`` and report how many were ``nan``.

Names and definitions follow muspy (``muspy/metrics/metrics.py``) and mgeval
(Yang & Lerch 2018, "On the evaluation of generative models in music").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

# muspy's masks (C major, C natural minor); other tonics are rotations.
_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
_SCALES = np.stack(
    [np.roll(_MAJOR, r) for r in range(12)] + [np.roll(_MINOR, r) for r in range(12)]
)  # (24, 12): rows are major C..B then minor C..B

DEFAULT_N = 8
DEFAULT_MAX_INTERVAL = 12
# 12 steps per beat hold both sixteenths (3 steps) and eighth-note triplets (4)
DEFAULT_RESOLUTION = 12
DEFAULT_BEATS_PER_BAR = 4
DEFAULT_MAX_BEATS = 4  # rhythm histograms: gaps and durations up to a 4/4 bar, then one overflow bin
DEFAULT_POLYPHONY_THRESHOLD = 2  # muspy's default: "more than 2" pitches, i.e. a triad or more


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



# -------------------------------------------------------------------- repetition

def longest_repeat_run(tokens: Sequence[Hashable]) -> int:
    """Length of the longest run of one token repeated back to back.

    ``0`` for empty input, ``1`` for one token; ``len(tokens)`` for the
    "same note forever" collapse.
    """
    best = run = 0
    prev: object = object()  # equal to no token
    for tok in tokens:
        run = run + 1 if tok == prev else 1
        best = max(best, run)
        prev = tok
    return best


def repetition_rate(tokens: Sequence[Hashable]) -> float:
    """Share of tokens equal to the token before them.

    ``sum(tokens[i] == tokens[i - 1]) / (len(tokens) - 1)``, in ``[0, 1]``;
    ``1.0`` for a collapse to one token. ``nan`` for fewer than two tokens,
    which have no predecessor to compare with.
    """
    toks = list(tokens)
    if len(toks) < 2:
        return math.nan
    return sum(a == b for a, b in zip(toks, toks[1:])) / (len(toks) - 1)


# ---------------------------------------------------------------- memorisation

@dataclass(frozen=True)
class NgramIndex:
    """Every n-gram of the training sequences, built once and reused per sample."""

    n: int
    grams: frozenset = field(repr=False)

    def __len__(self) -> int:
        return len(self.grams)

    def __contains__(self, gram: object) -> bool:
        return gram in self.grams


def _ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    toks = tuple(tokens)
    return [toks[i:i + n] for i in range(len(toks) - n + 1)]


def build_ngram_index(training_sequences: Iterable[Sequence[Hashable]], n: int = DEFAULT_N) -> NgramIndex:
    """Set of the n-grams (as tuples) in the training sequences.

    n-grams never span two sequences, since no sample could have learnt a join
    it never saw; sequences shorter than ``n`` add nothing.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams: set[tuple] = set()
    for seq in training_sequences:
        grams.update(_ngrams(seq, n))
    return NgramIndex(n=n, grams=frozenset(grams))


def ngram_copy_rate(
    tokens: Sequence[Hashable],
    training: NgramIndex | Iterable[Sequence[Hashable]],
    n: int | None = None,
) -> float:
    """Share of the sample's n-grams that occur anywhere in the training data.

    Each of the ``len(tokens) - n + 1`` positions counts once, repeats
    included. ``1.0`` means every window was copied (memorisation); near 0
    means novel at this length. Short n-grams are copied by any tonal music,
    so use a long ``n`` (8 tokens by default).

    Parameters
    ----------
    tokens : the sample.
    training : an :class:`NgramIndex` (fast, for many samples) or the training
        sequences themselves (an index is built on each call).
    n : n-gram length. Default: the index's ``n``, or 8 for raw sequences; an
        explicit ``n`` that disagrees with the index raises ``ValueError``.

    Returns
    -------
    float in ``[0, 1]``; ``nan`` when the sample is shorter than ``n`` (it has
    no n-grams, so nothing could be copied or not).
    """
    if isinstance(training, NgramIndex):
        if n is not None and n != training.n:
            raise ValueError(f"n={n} but the index holds {training.n}-grams")
        index = training
    else:
        index = build_ngram_index(training, DEFAULT_N if n is None else n)
    grams = _ngrams(tokens, index.n)
    if not grams:
        return math.nan
    return sum(g in index.grams for g in grams) / len(grams)


# ------------------------------------------------------------------ per sample

@dataclass(frozen=True, eq=False)
class Reference:
    """Training-set statistics the distance and copy metrics compare against.

    Attributes
    ----------
    pitch_class_histogram : (12,) pooled over all training notes, so long
        pieces weigh more than short ones; all zeros if there were none.
    interval_histogram : (2 * max_interval + 1,) pooled over intervals inside
        each sequence (never across two).
    ngram_index : n-grams of the training tokens.
    max_interval : clipping used for the interval histogram.
    onset_gap_histogram, duration_histogram : (max_beats * resolution + 1,)
        pooled over the training note tables, gaps inside each piece only;
        ``None`` when the reference was built without note tables.
    resolution, max_beats : the beat grid of those two histograms.
    """

    pitch_class_histogram: np.ndarray
    interval_histogram: np.ndarray
    ngram_index: NgramIndex
    max_interval: int = DEFAULT_MAX_INTERVAL
    onset_gap_histogram: np.ndarray | None = None
    duration_histogram: np.ndarray | None = None
    resolution: int = DEFAULT_RESOLUTION
    max_beats: int = DEFAULT_MAX_BEATS


def _note_columns(notes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pitch``, ``start_beat`` and ``end_beat`` of a note table, each (n_notes,)."""
    missing = {"pitch", "start_beat", "end_beat"} - set(notes.columns)
    if missing:
        raise ValueError(f"note table lacks column(s) {', '.join(sorted(missing))}")
    return notes["pitch"].to_numpy(), notes["start_beat"].to_numpy(), notes["end_beat"].to_numpy()


def build_reference(
    training_token_seqs: Iterable[Sequence[Hashable]],
    training_pitch_seqs: Iterable[Sequence[int]],
    n: int = DEFAULT_N,
    max_interval: int = DEFAULT_MAX_INTERVAL,
    *,
    training_notes: pd.DataFrame | Iterable[pd.DataFrame] | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    max_beats: int = DEFAULT_MAX_BEATS,
) -> Reference:
    """Build a :class:`Reference` once from the training data.

    Parameters
    ----------
    training_token_seqs, training_pitch_seqs : one sequence per training piece.
    training_notes : for the rhythm histograms, either one note table per
        piece or a single note table that is split by its ``piece`` column
        (onset gaps never span two pieces). ``None`` leaves them out.
    resolution, max_beats : the rhythm histograms' grid (see
        :func:`onset_gap_histogram`).
    """
    pc = np.zeros(12)
    iv = np.zeros(2 * max_interval + 1)
    for seq in training_pitch_seqs:
        pc += _pitch_class_counts(seq)
        iv += _interval_counts(seq, max_interval)
    gaps = durations = None
    if training_notes is not None:
        if isinstance(training_notes, pd.DataFrame):
            training_notes = (t for _, t in training_notes.groupby("piece", sort=False))
        gaps = np.zeros(max_beats * resolution + 1)
        durations = np.zeros_like(gaps)
        for table in training_notes:
            _, on, off = _note_columns(table)
            gaps += _onset_gap_counts(on, resolution, max_beats)
            durations += _duration_counts(on, off, resolution, max_beats)
        gaps, durations = _normalise(gaps), _normalise(durations)
    return Reference(
        pitch_class_histogram=_normalise(pc),
        interval_histogram=_normalise(iv),
        ngram_index=build_ngram_index(training_token_seqs, n),
        max_interval=max_interval,
        onset_gap_histogram=gaps,
        duration_histogram=durations,
        resolution=resolution,
        max_beats=max_beats,
    )


def sample_metrics(
    tokens: Sequence[Hashable],
    pitches: Sequence[int],
    reference: Reference | None = None,
    notes: pd.DataFrame | None = None,
    *,
    beats_per_bar: int = DEFAULT_BEATS_PER_BAR,
) -> dict[str, float]:
    """Every metric of this module for one sample, as floats.

    Keys: ``n_tokens``, ``n_notes``, ``pitch_range``, ``n_pitches_used``,
    ``n_pitch_classes_used``, ``pitch_entropy``, ``pitch_class_entropy``,
    ``scale_consistency``, ``longest_repeat_run``, ``repetition_rate``; with a
    ``reference`` also ``pitch_class_histogram_distance``,
    ``interval_distribution_distance`` and ``ngram_copy_rate`` against the
    training set (left out without one, rather than filled with ``nan``, so
    "not computed" never reads as "undefined"). With the sample's note table
    ``notes`` (columns ``pitch``, ``start_beat``, ``end_beat``; see
    :mod:`pipeline.core.notes`) also ``polyphony``, ``polyphony_rate``,
    ``empty_beat_rate`` and ``groove_consistency``, and, when the reference
    holds rhythm histograms, ``onset_gap_histogram_distance`` and
    ``duration_histogram_distance``. Rhythm uses the reference's grid, or
    :data:`DEFAULT_RESOLUTION` steps per beat without one. Empty or short
    input gives the values each function documents (ABC samples, with no
    pitches, get ``nan`` pitch ratios).
    """
    out = {
        "n_tokens": float(len(tokens)),
        "n_notes": float(len(pitches)),
        "pitch_range": float(pitch_range(pitches)),
        "n_pitches_used": float(n_pitches_used(pitches)),
        "n_pitch_classes_used": float(n_pitch_classes_used(pitches)),
        "pitch_entropy": pitch_entropy(pitches),
        "pitch_class_entropy": pitch_class_entropy(pitches),
        "scale_consistency": scale_consistency(pitches),
        "longest_repeat_run": float(longest_repeat_run(tokens)),
        "repetition_rate": repetition_rate(tokens),
    }
    if reference is not None:
        out["pitch_class_histogram_distance"] = pitch_class_histogram_distance(
            pitches, reference.pitch_class_histogram
        )
        out["interval_distribution_distance"] = interval_distribution_distance(
            pitches, reference.interval_histogram, reference.max_interval
        )
        out["ngram_copy_rate"] = ngram_copy_rate(tokens, reference.ngram_index)
    if notes is not None:
        out.update(_rhythm_metrics(notes, reference, beats_per_bar))
    return out


def _rhythm_metrics(notes: pd.DataFrame, reference: Reference | None, beats_per_bar: int) -> dict[str, float]:
    p, on, off = _note_columns(notes)
    res = reference.resolution if reference is not None else DEFAULT_RESOLUTION
    out = {
        "polyphony": polyphony(p, on, off, resolution=res),
        "polyphony_rate": polyphony_rate(p, on, off, resolution=res),
        "empty_beat_rate": empty_beat_rate(on, off, resolution=res),
        "groove_consistency": groove_consistency(on, off, beats_per_bar=beats_per_bar, resolution=res),
    }
    if reference is not None and reference.onset_gap_histogram is not None:
        grid = {"resolution": res, "max_beats": reference.max_beats}
        out["onset_gap_histogram_distance"] = histogram_distance(
            onset_gap_histogram(on, **grid), reference.onset_gap_histogram
        )
        out["duration_histogram_distance"] = histogram_distance(
            duration_histogram(on, off, **grid), reference.duration_histogram
        )
    return out
