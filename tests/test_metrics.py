"""Exact values of every metric on hand-made note lists, edge cases included."""
import math

import numpy as np
import pytest

from pipeline.metrics import (
    NgramIndex,
    build_ngram_index,
    build_reference,
    histogram_distance,
    interval_distribution_distance,
    interval_histogram,
    longest_repeat_run,
    n_pitch_classes_used,
    n_pitches_used,
    ngram_copy_rate,
    pitch_class_entropy,
    pitch_class_histogram,
    pitch_class_histogram_distance,
    pitch_entropy,
    pitch_range,
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
