"""measures/metrics.py (and the pitch and rhythm metrics it re-exports)."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.core.notes import empty_note_table
from pipeline.measures.metrics import (
    NgramIndex,
    build_ngram_index,
    build_reference,
    duration_histogram,
    empty_beat_rate,
    groove_consistency,
    histogram_distance,
    interval_distribution_distance,
    interval_histogram,
    longest_repeat_run,
    n_pitch_classes_used,
    n_pitches_used,
    ngram_copy_rate,
    onset_gap_histogram,
    pitch_class_entropy,
    pitch_class_histogram,
    pitch_class_histogram_distance,
    pitch_entropy,
    pitch_range,
    polyphony,
    polyphony_rate,
    repetition_rate,
    sample_metrics,
    scale_consistency,
)

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]

CHROMATIC = list(range(60, 72))

COLLAPSE = ["E4"] * 50


def one_hot(i: int, n: int) -> np.ndarray:
    v = np.zeros(n)
    v[i] = 1.0
    return v


# ----------------------------------------------------------------------- pitch

def test_pitch_range():
    assert pitch_range([]) == 0
    assert pitch_range([60]) == 0
    assert pitch_range([60, 64, 67, 72]) == 12
    assert pitch_range([72, 48, 60]) == 24


def test_pitches_and_classes_used():
    assert n_pitches_used([]) == 0
    assert n_pitch_classes_used([]) == 0
    assert n_pitches_used([61]) == 1
    assert n_pitch_classes_used([61]) == 1
    assert n_pitches_used([60, 60, 72]) == 2
    assert n_pitch_classes_used([60, 60, 72]) == 1
    assert n_pitch_classes_used(CHROMATIC + [84]) == 12


def test_pitch_class_histogram():
    assert np.array_equal(pitch_class_histogram([]), np.zeros(12))
    assert np.array_equal(pitch_class_histogram([61]), one_hot(1, 12))
    h = pitch_class_histogram([60, 62, 62, 72])
    assert h.shape == (12,)
    assert h[0] == 0.5 and h[2] == 0.5 and h.sum() == 1.0


def test_entropies():
    assert math.isnan(pitch_entropy([]))
    assert math.isnan(pitch_class_entropy([]))
    assert pitch_entropy([60]) == 0.0
    assert pitch_entropy([64] * 50) == 0.0
    assert pitch_entropy([60, 62]) == 1.0
    assert pitch_entropy([60, 72]) == 1.0
    assert pitch_class_entropy([60, 72]) == 0.0
    assert pitch_class_entropy(CHROMATIC) == pytest.approx(math.log2(12))


def test_scale_consistency():
    assert math.isnan(scale_consistency([]))
    assert scale_consistency([61]) == 1.0
    assert scale_consistency(C_MAJOR) == 1.0
    assert scale_consistency([57, 59, 60, 62, 64, 65, 67]) == 1.0  # A minor
    assert scale_consistency(CHROMATIC) == 7 / 12
    # C major plus one F#: 8 of 9 notes fit C major (or G major).
    assert scale_consistency(C_MAJOR + [66]) == 8 / 9


def test_bad_pitches_raise():
    with pytest.raises(ValueError):
        pitch_range([60, 128])
    with pytest.raises(ValueError):
        pitch_range([-1])
    with pytest.raises(ValueError):
        pitch_range([60.5])


# -------------------------------------------------------------------- interval

def test_interval_histogram():
    assert np.array_equal(interval_histogram([]), np.zeros(25))
    assert np.array_equal(interval_histogram([60]), np.zeros(25))
    h = interval_histogram([60, 62, 60, 80])  # +2, -2, +20 clipped to +12
    assert h.shape == (25,)
    assert h[12 + 2] == h[12 - 2] == h[24] == 1 / 3
    assert h.sum() == pytest.approx(1.0)
    assert np.array_equal(interval_histogram([64] * 5), one_hot(12, 25))
    small = interval_histogram([60, 40], max_interval=2)
    assert np.array_equal(small, one_hot(0, 5))
    with pytest.raises(ValueError):
        interval_histogram([60, 62], max_interval=0)


# -------------------------------------------------------------------- distance

def test_histogram_distance_bounds():
    p = pitch_class_histogram(C_MAJOR)
    assert histogram_distance(p, p) == 0.0
    assert histogram_distance(one_hot(0, 12), one_hot(1, 12)) == 1.0
    assert histogram_distance(np.array([2.0, 2.0]), np.array([1.0, 0.0])) == 0.5  # counts ok
    assert math.isnan(histogram_distance(np.zeros(12), p))
    with pytest.raises(ValueError):
        histogram_distance(np.ones(12), np.ones(13))
    with pytest.raises(ValueError):
        histogram_distance(-np.ones(2), np.ones(2))


def test_pitch_class_histogram_distance():
    assert pitch_class_histogram_distance(C_MAJOR, C_MAJOR) == 0.0
    assert pitch_class_histogram_distance([60], [72]) == 0.0  # same class
    assert pitch_class_histogram_distance([60], [62]) == 1.0  # disjoint
    assert pitch_class_histogram_distance([60, 62], [60]) == 0.5
    assert pitch_class_histogram_distance([60, 62], [60]) == pitch_class_histogram_distance([60], [60, 62])
    assert math.isnan(pitch_class_histogram_distance([], C_MAJOR))
    # A float array is a histogram; a list of 12 ints is pitches.
    assert pitch_class_histogram_distance([60, 72], one_hot(0, 12)) == 0.0
    assert pitch_class_histogram_distance(CHROMATIC, np.full(12, 1 / 12)) == 0.0
    with pytest.raises(ValueError):
        pitch_class_histogram_distance([60], np.ones(11))


def test_interval_distribution_distance():
    assert interval_distribution_distance([60, 62, 64], [70, 72, 74, 76]) == 0.0  # transposed
    assert interval_distribution_distance([60, 62, 64], [60, 59, 58]) == 1.0
    assert interval_distribution_distance([60, 62, 60], [60, 62, 64]) == 0.5
    assert math.isnan(interval_distribution_distance([60], [60, 62]))
    assert math.isnan(interval_distribution_distance([], []))
    assert interval_distribution_distance([60, 62], one_hot(14, 25)) == 0.0


# ------------------------------------------------------------------ repetition

def test_longest_repeat_run():
    assert longest_repeat_run([]) == 0
    assert longest_repeat_run(["E4"]) == 1
    assert longest_repeat_run(COLLAPSE) == 50
    assert longest_repeat_run(["A", "B", "B", "B", "A", "A"]) == 3
    assert longest_repeat_run("abccd") == 2  # ABC characters


def test_repetition_rate():
    assert math.isnan(repetition_rate([]))
    assert math.isnan(repetition_rate(["E4"]))
    assert repetition_rate(COLLAPSE) == 49 / 49
    assert repetition_rate(["A", "B", "B", "B", "A", "A"]) == 3 / 5
    assert repetition_rate(["C4", "E4", "C4.E4.G4"]) == 0.0


# ---------------------------------------------------------------- memorisation

TRAIN = [list("abcdefghij"), list("klmnop")]


def test_ngram_copy_rate():
    assert ngram_copy_rate(list("cdefg"), TRAIN, n=3) == 1.0
    assert ngram_copy_rate(list("zyxw"), TRAIN, n=3) == 0.0
    assert ngram_copy_rate(list("abcxyz"), TRAIN, n=3) == 1 / 4
    assert ngram_copy_rate(list("ababab"), [list("aba")], n=3) == 2 / 4  # repeats count
    assert math.isnan(ngram_copy_rate([], TRAIN, n=3))
    assert math.isnan(ngram_copy_rate(list("ab"), TRAIN, n=3))
    assert ngram_copy_rate(list("abc"), TRAIN, n=3) == 1.0  # exactly n long


def test_ngrams_do_not_span_sequences():
    assert ngram_copy_rate(list("ijkl"), TRAIN, n=3) == 0.0


def test_ngram_index_reuse():
    index = build_ngram_index(TRAIN, n=3)
    assert isinstance(index, NgramIndex)
    assert len(index) == 8 + 4
    assert tuple("abc") in index
    assert ngram_copy_rate(list("cdefg"), index) == 1.0
    assert ngram_copy_rate(list("cdefg"), index, n=3) == 1.0
    with pytest.raises(ValueError):
        ngram_copy_rate(list("cdefg"), index, n=4)
    with pytest.raises(ValueError):
        build_ngram_index(TRAIN, n=0)


def test_default_n_is_8():
    seq = [f"P{i}" for i in range(10)]
    assert build_ngram_index([seq]).n == 8
    assert ngram_copy_rate(seq[:8], [seq]) == 1.0
    assert math.isnan(ngram_copy_rate(seq[:7], [seq]))


# ------------------------------------------------------------------ per sample

TRAIN_TOKENS = [["C4", "D4", "E4", "C4.E4.G4"], ["G4", "A4"]]

TRAIN_PITCHES = [[60, 62, 64, 60, 64, 67], [67, 69]]


def test_build_reference_pools_within_sequences():
    ref = build_reference([["x"]], [[60], [62, 62, 62]], n=2)
    assert np.array_equal(ref.pitch_class_histogram, one_hot(0, 12) * 0.25 + one_hot(2, 12) * 0.75)
    # Only the two repeats inside the second sequence; no 60 -> 62 across sequences.
    assert np.array_equal(ref.interval_histogram, one_hot(12, 25))
    assert ref.ngram_index.n == 2 and len(ref.ngram_index) == 0


def test_sample_metrics_without_reference():
    m = sample_metrics(COLLAPSE, [64] * 50)
    assert m == {
        "n_tokens": 50.0,
        "n_notes": 50.0,
        "pitch_range": 0.0,
        "n_pitches_used": 1.0,
        "n_pitch_classes_used": 1.0,
        "pitch_entropy": 0.0,
        "pitch_class_entropy": 0.0,
        "scale_consistency": 1.0,
        "longest_repeat_run": 50.0,
        "repetition_rate": 1.0,
    }
    assert all(isinstance(v, float) for v in m.values())


def test_sample_metrics_with_reference():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2)
    copied = sample_metrics(TRAIN_TOKENS[0], TRAIN_PITCHES[0], ref)
    assert copied["ngram_copy_rate"] == 1.0
    novel = sample_metrics(["B4", "B4", "F#4"], [71, 71, 66], ref)
    assert novel["ngram_copy_rate"] == 0.0
    assert novel["pitch_class_histogram_distance"] == 1.0  # B, F# never in training
    same = build_reference(TRAIN_TOKENS[:1], TRAIN_PITCHES[:1], n=2)
    self_m = sample_metrics(TRAIN_TOKENS[0], TRAIN_PITCHES[0], same)
    assert self_m["pitch_class_histogram_distance"] == 0.0
    assert self_m["interval_distribution_distance"] == 0.0


def test_sample_metrics_empty_sample():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2)
    m = sample_metrics([], [], ref)
    assert m["n_tokens"] == m["pitch_range"] == m["longest_repeat_run"] == 0.0
    for key in ("scale_consistency", "pitch_entropy", "repetition_rate",
                "pitch_class_histogram_distance", "interval_distribution_distance",
                "ngram_copy_rate"):
        assert math.isnan(m[key]), key


def test_sample_metrics_one_note():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2)
    m = sample_metrics(["C4"], [60], ref)
    assert m["pitch_range"] == 0.0 and m["scale_consistency"] == 1.0
    assert m["longest_repeat_run"] == 1.0
    assert math.isnan(m["repetition_rate"])
    assert math.isnan(m["interval_distribution_distance"])
    assert math.isnan(m["ngram_copy_rate"])
    # Training pitch classes: C 2/8, D 1/8, E 2/8, G 2/8, A 1/8; sample all C.
    assert m["pitch_class_histogram_distance"] == pytest.approx(0.75)


# ---------------------------------------------------------------------- rhythm
# Default grid: 12 steps per beat, 4/4 bars of 48 steps; histograms have
# 48 + 1 bins, bin i = (i + 1) / 12 beat, bin 48 = longer than 4 beats.

# C-E-G held for two beats, then C5 for one: 24 steps of 3 pitches, 12 of 1.
TRIAD_THEN_NOTE = ([60, 64, 67, 72], [0, 0, 0, 2], [2, 2, 2, 3])

# The triad for one beat, a one-beat rest, C5 for one beat.
TRIAD_REST_NOTE = ([60, 64, 67, 72], [0, 0, 0, 2], [1, 1, 1, 3])


def test_polyphony():
    assert math.isnan(polyphony([], [], []))
    assert polyphony([60], [0.0], [1.0]) == 1.0
    assert polyphony([60, 62, 64], [0, 1, 2], [1, 2, 3]) == 1.0  # melody
    assert polyphony(*TRIAD_THEN_NOTE) == pytest.approx((3 * 24 + 1 * 12) / 36)
    assert polyphony(*TRIAD_REST_NOTE) == (3 * 12 + 1 * 12) / 24  # silent steps not counted
    assert polyphony([60, 60], [0, 1], [2, 3]) == 1.0  # one pitch sounding twice counts once
    assert polyphony([60], [0.0], [0.01]) == 1.0  # shorter than a step: still one step
    with pytest.raises(ValueError):
        polyphony([60, 62], [0], [1])


def test_polyphony_rate():
    assert math.isnan(polyphony_rate([], [], []))
    assert polyphony_rate([60], [0], [1]) == 0.0
    assert polyphony_rate(*TRIAD_THEN_NOTE) == 24 / 36
    assert polyphony_rate(*TRIAD_REST_NOTE) == 12 / 36  # rests count in the denominator
    assert polyphony_rate(*TRIAD_REST_NOTE, threshold=3) == 0.0  # strictly more than 3
    assert polyphony_rate(*TRIAD_REST_NOTE, threshold=0) == 24 / 36  # any sound
    assert polyphony_rate([60, 64], [0, 0], [1, 1]) == 0.0  # a dyad is not > 2
    assert polyphony_rate([60, 64], [0, 0], [1, 1], threshold=1) == 1.0


def test_empty_beat_rate():
    assert math.isnan(empty_beat_rate([], []))
    assert empty_beat_rate([0], [1]) == 0.0
    assert empty_beat_rate([2], [3]) == 2 / 3  # leading silence is empty
    assert empty_beat_rate([0, 2], [1, 3]) == 1 / 3  # muspy's inclusive end would say 0
    assert empty_beat_rate([0], [2.5]) == 0.0  # a held note fills every beat it touches
    assert empty_beat_rate([0], [1.02]) == 0.0  # snaps to step 12: one beat
    assert empty_beat_rate([0, 3.5], [0.5, 4]) == 2 / 4
    assert empty_beat_rate([0, 2], [1, 3], resolution=1) == 1 / 3


def test_groove_consistency():
    assert math.isnan(groove_consistency([], []))
    assert math.isnan(groove_consistency([0], [1]))
    quarters = np.arange(4.0)
    # One full bar has no neighbour (muspy counts an empty bar after it: 1 - 4/48).
    assert math.isnan(groove_consistency(quarters, quarters + 1))
    two_bars = np.arange(8.0)
    assert groove_consistency(two_bars, two_bars + 1) == 1.0
    # Quarters, then two halves: onsets at steps 0, 12, 24, 36 vs 0, 24.
    assert groove_consistency([0, 1, 2, 3, 4, 6], [1, 2, 3, 4, 6, 8]) == 1 - 2 / 48
    assert groove_consistency([0], [8]) == 1 - 1 / 48  # held into bar 2, which has no onset
    six = np.arange(6.0)
    assert groove_consistency(six, six + 1, beats_per_bar=3) == 1.0
    assert groove_consistency(six, six + 1) == 1 - 2 / 48  # 4/4: steps 0-36 vs 0, 12
    # Three bars: patterns A, B, A; both neighbouring pairs differ in 2 steps.
    assert groove_consistency([0, 2, 4, 5, 8, 10], [1, 3, 5, 6, 9, 12]) == 1 - 4 / 96
    with pytest.raises(ValueError):
        groove_consistency(two_bars, two_bars + 1, beats_per_bar=0)


def test_onset_gap_histogram():
    assert np.array_equal(onset_gap_histogram([]), np.zeros(49))
    assert np.array_equal(onset_gap_histogram([3.0]), np.zeros(49))
    assert np.array_equal(onset_gap_histogram([1.0, 1.0, 1.0]), np.zeros(49))  # one chord
    # Chord at 0, then gaps of 1 beat (bin 11), 1/2 (bin 5) and 5.5 (overflow).
    h = onset_gap_histogram([0, 0, 1, 1.5, 7])
    assert h.shape == (49,)
    assert h[11] == h[5] == h[48] == 1 / 3 and h.sum() == 1.0
    assert np.array_equal(onset_gap_histogram([7, 1.5, 0, 1, 0]), h)  # any order
    assert np.array_equal(onset_gap_histogram([0, 1 / 3, 2 / 3, 1]), one_hot(3, 49))  # triplets
    assert np.array_equal(onset_gap_histogram([0, 4]), one_hot(47, 49))  # 4 beats: last regular bin
    assert np.array_equal(onset_gap_histogram([0, 4 + 1 / 12]), one_hot(48, 49))
    assert np.array_equal(onset_gap_histogram([0, 0.5], resolution=2, max_beats=1), one_hot(0, 3))


def test_duration_histogram():
    assert np.array_equal(duration_histogram([], []), np.zeros(49))
    assert np.array_equal(duration_histogram([0], [1]), one_hot(11, 49))
    h = duration_histogram([0, 0, 1], [1, 0.01, 9])  # 1 beat, under a step (1 step), 8 beats
    assert h[11] == h[0] == h[48] == 1 / 3 and h.sum() == 1.0
    assert np.array_equal(duration_histogram([5.5], [9.5]), one_hot(47, 49))
    assert np.array_equal(duration_histogram([0], [0.5], resolution=2, max_beats=1), one_hot(0, 3))


@pytest.mark.parametrize("start, end", [([0, 1], [1]), ([1], [0.5]), ([-1], [1]), ([np.nan], [1]),
                                        ([[0]], [[1]])])
def test_bad_beats_raise(start, end):
    with pytest.raises(ValueError):
        duration_histogram(start, end)


def test_bad_grid_raises():
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError):
            empty_beat_rate([0], [1], resolution=bad)
    with pytest.raises(ValueError):
        onset_gap_histogram([0, 1], max_beats=0)


# ------------------------------------------------------------- rhythm per sample

def note_table(rows: list[tuple[int, float, float]], piece: str = "p") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pitch", "start_beat", "end_beat"]).assign(piece=piece)


# Piece a: a beat then half a beat; piece b: one two-beat note at beat 10.
TRAIN_NOTES = [note_table([(60, 0, 1), (62, 1, 1.5)], "a"), note_table([(64, 10, 12)], "b")]


def test_build_reference_rhythm_pools_within_pieces():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2, training_notes=TRAIN_NOTES)
    # Only the gap inside piece a; the 9 beats from a's last onset to b's would be overflow.
    assert np.array_equal(ref.onset_gap_histogram, one_hot(11, 49))
    assert np.array_equal(ref.duration_histogram, (one_hot(11, 49) + one_hot(5, 49) + one_hot(23, 49)) / 3)
    assert ref.resolution == 12 and ref.max_beats == 4
    whole = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2, training_notes=pd.concat(TRAIN_NOTES))
    assert np.array_equal(whole.onset_gap_histogram, ref.onset_gap_histogram)
    assert np.array_equal(whole.duration_histogram, ref.duration_histogram)
    coarse = build_reference([], [], training_notes=TRAIN_NOTES, resolution=2, max_beats=1)
    assert np.array_equal(coarse.onset_gap_histogram, one_hot(1, 3))
    assert np.array_equal(coarse.duration_histogram, np.array([1, 1, 1]) / 3)
    plain = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2)
    assert plain.onset_gap_histogram is None and plain.duration_histogram is None


RHYTHM_KEYS = {"polyphony", "polyphony_rate", "empty_beat_rate", "groove_consistency", "pulse_share"}

DISTANCE_KEYS = {"onset_gap_histogram_distance", "duration_histogram_distance"}


def test_sample_metrics_with_notes():
    notes = note_table([(60, 0, 1), (62, 1, 1.5)])
    pitch_only = sample_metrics(["C4", "D4"], [60, 62])
    m = sample_metrics(["C4", "D4"], [60, 62], notes=notes)
    assert set(m) == set(pitch_only) | RHYTHM_KEYS
    assert {k: m[k] for k in pitch_only} == pitch_only
    assert m["polyphony"] == 1.0 and m["polyphony_rate"] == 0.0 and m["empty_beat_rate"] == 0.0
    assert math.isnan(m["groove_consistency"])  # within one bar
    assert all(isinstance(v, float) for v in m.values())
    # A reference without note tables: rhythm metrics, but no rhythm distances.
    plain = sample_metrics(["C4", "D4"], [60, 62], build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2), notes)
    assert RHYTHM_KEYS <= set(plain) and not DISTANCE_KEYS & set(plain)


def test_sample_metrics_rhythm_distances():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2, training_notes=TRAIN_NOTES)
    same = sample_metrics(["C4", "D4"], [60, 62], ref, TRAIN_NOTES[0])
    assert same["onset_gap_histogram_distance"] == 0.0
    # Durations 12 and 6 steps against the reference's 12, 6 and 24: 1/3 apart.
    assert same["duration_histogram_distance"] == pytest.approx(1 / 3)
    eighths = note_table([(60, 0, 0.5), (62, 0.5, 1)])
    m = sample_metrics(["C4", "D4"], [60, 62], ref, eighths)
    assert m["onset_gap_histogram_distance"] == 1.0
    assert m["duration_histogram_distance"] == pytest.approx(2 / 3)


def test_sample_metrics_rhythm_empty_and_one_note():
    ref = build_reference(TRAIN_TOKENS, TRAIN_PITCHES, n=2, training_notes=TRAIN_NOTES)
    m = sample_metrics([], [], ref, empty_note_table())
    for key in RHYTHM_KEYS | DISTANCE_KEYS:
        assert math.isnan(m[key]), key
    one = sample_metrics(["C4"], [60], ref, note_table([(60, 0, 2)]))
    assert one["polyphony"] == 1.0 and one["polyphony_rate"] == 0.0 and one["empty_beat_rate"] == 0.0
    assert math.isnan(one["groove_consistency"])
    assert math.isnan(one["onset_gap_histogram_distance"])  # one onset: no gaps
    assert one["duration_histogram_distance"] == pytest.approx(2 / 3)  # 24 steps: a third of training
    with pytest.raises(ValueError):
        sample_metrics(["C4"], [60], ref, note_table([(60, 0, 2)]).drop(columns="end_beat"))


def test_pulse_share_counts_gaps_between_distinct_onsets():
    from pipeline.measures.metrics import pulse_share

    assert pulse_share([0, 0.5, 1.0, 1.5, 1.5, 2.0]) == 1.0      # a chord is one onset
    assert pulse_share([0, 0.5, 1.0, 2.0]) == pytest.approx(2 / 3)
    assert math.isnan(pulse_share([1.0])) and math.isnan(pulse_share([]))
