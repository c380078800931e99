"""Musical metrics of one generated sample, as pure functions over note lists (pitch and rhythm ones in
:mod:`pipeline.measures.pitch` and :mod:`pipeline.measures.rhythm`; repetition, copying and the per-sample
summary here).

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
from typing import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline.measures.pitch import (  # noqa: F401  (re-exported: one import for every metric)
    DEFAULT_MAX_INTERVAL, _MAJOR, _MINOR, _SCALES, _as_histogram, _entropy_bits, _interval_counts, _normalise,
    _pitch_array, _pitch_class_counts, histogram_distance, interval_distribution_distance, interval_histogram,
    n_pitch_classes_used, n_pitches_used, pitch_class_entropy, pitch_class_histogram,
    pitch_class_histogram_distance, pitch_entropy, pitch_range, scale_consistency,
)
from pipeline.measures.rhythm import (  # noqa: F401  (re-exported: one import for every metric)
    DEFAULT_BEATS_PER_BAR, DEFAULT_MAX_BEATS, DEFAULT_POLYPHONY_THRESHOLD, DEFAULT_RESOLUTION, _beat_grid,
    _duration_counts, _onset_gap_counts, _pitches_sounding, _sounding, _step_counts, duration_histogram,
    empty_beat_rate, groove_consistency, onset_gap_histogram, polyphony, polyphony_rate,
    pulse_share,
)

DEFAULT_N = 8


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
        "pulse_share": pulse_share(on, resolution=res),
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
