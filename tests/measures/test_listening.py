"""measures/listening.py: the statistics of a listening test."""
from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
import pytest

from pipeline.measures.listening import (
    binomial_tail,
    bootstrap_mean_ci,
    pairwise_preference,
    picked_as_real,
    rating_summary,
)


def exact_tail(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1)))


# ------------------------------------------------------------------ statistics

def test_binomial_tail_matches_known_and_exact_values():
    assert binomial_tail(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert binomial_tail(3, 4, 1 / 3) == pytest.approx(1 / 9, rel=1e-12)
    for k, n, p in [(7, 20, Fraction(1, 4)), (12, 30, Fraction(1, 3)), (1, 5, Fraction(1, 2))]:
        assert binomial_tail(k, n, float(p)) == pytest.approx(exact_tail(k, n, p), rel=1e-10)
    assert binomial_tail(0, 5, 0.2) == 1.0 and binomial_tail(6, 5, 0.2) == 0.0 and binomial_tail(0, 0, 0.5) == 1.0
    # BachBot's scale: 2,336 listeners, 1% above chance (51% of 2,336 right where half is chance)
    assert 0.15 < binomial_tail(round(0.51 * 2336), 2336, 0.5) < 0.2
    with pytest.raises(ValueError):
        binomial_tail(1, 2, 1.0)


def test_bootstrap_interval_holds_the_mean_and_is_repeatable():
    values = [1, 2, 2, 3, 4, 4, 4, 5, 5, 3]
    mean, low, high = bootstrap_mean_ci(values, resamples=2000, seed=7)
    assert mean == pytest.approx(3.3) and 1 <= low < mean < high <= 5
    assert bootstrap_mean_ci(values, resamples=2000, seed=7) == (mean, low, high)
    wider = bootstrap_mean_ci(values, confidence=0.99, resamples=2000, seed=7)
    assert wider[1] <= low and wider[2] >= high
    assert bootstrap_mean_ci([4]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))


def test_preference_and_picks_count_listeners_times_rows():
    ratings = pd.DataFrame([("ana", "r0", "A", 5), ("ana", "r0", "B", 2), ("ana", "r1", "A", 3), ("ana", "r1", "B", 3),
                            ("ben", "r0", "A", 1), ("ben", "r0", "B", 4), ("ben", "r1", "A", 2)],
                           columns=["listener", "row", "column", "rating"])
    pref = pairwise_preference(ratings, ["A", "B", "C"]).set_index(["a", "b"])
    assert pref.loc[("A", "B")].tolist()[:3] == [3, 1, 1] and pref.loc[("A", "B"), "share"] == pytest.approx(1 / 3)
    assert pref.loc[("B", "A"), "above"] == 1 and pref.loc[("A", "C"), "pairs"] == 0
    assert math.isnan(pref.loc[("A", "C"), "share"])
    scores = rating_summary(ratings, ["A", "B", "C"], resamples=500).set_index("column")
    assert scores.loc["A", "ratings"] == 4 and scores.loc["A", "mean"] == pytest.approx(2.75)
    assert scores.loc["C", "ratings"] == 0 and math.isnan(scores.loc["C", "mean"])
    choices = pd.DataFrame([("ana", "r0", "A"), ("ana", "r1", "A"), ("ben", "r0", "B")],
                           columns=["listener", "row", "choice"])
    picks = picked_as_real(choices, ["A", "B", "C"]).set_index("column")
    assert picks.loc["A", "picked"] == 2 and picks.loc["A", "answered"] == 3
    assert picks.loc["A", "p_value"] == pytest.approx(exact_tail(2, 3, Fraction(1, 3)))
    assert picked_as_real(choices.iloc[:0], ["A", "B"])["p_value"].isna().all()
