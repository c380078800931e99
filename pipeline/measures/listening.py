"""Statistics of a listening test: ratings with bootstrap intervals, pairwise preference, discrimination.

Pure functions over plain tables; :mod:`pipeline.stages.tally` feeds them the
un-blinded answers of every listener. Two long tables carry the answers:

- ratings: one row per (listener, row, column) rated, columns ``listener``, ``row``,
  ``column`` and ``rating`` (1-5);
- choices: one row per (listener, row) where the listener said which column is the real
  continuation, columns ``listener``, ``row`` and ``choice`` (a column).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

CHUNK = 4_000_000  # draws per batch of bootstrap resamples


def bootstrap_mean_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval.

    Resamples the values themselves, with replacement, ``resamples`` times from a
    generator seeded with ``seed`` (same input, same interval). Every rating counts
    as one draw: a listener's ratings are treated as independent of each other.

    Returns
    -------
    (mean, low, high); all nan for empty ``values``, (v, v, v) for a single value.
    """
    x = np.asarray(values, dtype=float)
    if not len(x):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK // len(x))  # resamples drawn together: memory stays bounded for large tests
    means = np.concatenate([x[rng.integers(0, len(x), size=(min(step, resamples - i), len(x)))].mean(axis=1)
                            for i in range(0, resamples, step)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(x.mean()), float(low), float(high)


def binomial_tail(k: int, n: int, p: float) -> float:
    """One-sided exact binomial test: P(X >= k) for X ~ Binomial(n, p).

    Summed in log space (``lgamma``), so it stays exact to float precision for
    thousands of trials. ``k <= 0`` gives 1; ``k > n`` gives 0 (also for ``n = 0``).
    """
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, not {p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    return min(1.0, math.fsum(math.exp(log_n - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * log_p
                                       + (n - j) * log_q) for j in range(k, n + 1)))


def rating_summary(ratings: pd.DataFrame, columns: Sequence[str], confidence: float = 0.95,
                   resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per column: how many ratings, their mean and its bootstrap interval.

    Returns one row per entry of ``columns`` (in that order): ``column``, ``ratings``,
    ``mean``, ``ci_low``, ``ci_high``; a column nobody rated has 0 ratings and nan.
    """
    rows = []
    for c in columns:
        values = ratings.loc[ratings["column"] == c, "rating"].to_numpy(float) if len(ratings) else []
        mean, low, high = bootstrap_mean_ci(values, confidence, resamples, seed)
        rows.append({"column": c, "ratings": len(values), "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["column", "ratings", "mean", "ci_low", "ci_high"])


def pairwise_preference(ratings: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Every ordered pair (a, b) of ``columns``: how often a was rated above b.

    Counted over the (listener, row) pairs in which both were rated. Returns one row
    per ordered pair (a != b): ``a``, ``b``, ``pairs``, ``above`` (a rated higher),
    ``ties`` and ``share`` (``above / pairs``; nan where no listener rated both).
    """
    if len(ratings):
        wide = ratings.pivot_table(index=["listener", "row"], columns="column", values="rating", aggfunc="last")
    else:
        wide = pd.DataFrame()
    out = []
    for a in columns:
        for b in columns:
            if a == b:
                continue
            if a in wide and b in wide:
                both = wide[[a, b]].dropna()
                pairs, above, ties = len(both), int((both[a] > both[b]).sum()), int((both[a] == both[b]).sum())
            else:
                pairs = above = ties = 0
            out.append({"a": a, "b": b, "pairs": pairs, "above": above, "ties": ties,
                        "share": above / pairs if pairs else math.nan})
    return pd.DataFrame(out, columns=["a", "b", "pairs", "above", "ties", "share"])


def picked_as_real(choices: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per column: how often listeners took it for the real continuation, against chance.

    Chance is ``1 / len(columns)`` (every column of a row is a choice). ``p_value`` is the
    one-sided exact binomial test that the column is picked more often than chance: for
    the real continuation, that listeners tell it from the models; for a model, that it
    passes for the real piece. Returns ``column``, ``picked``, ``answered`` (choices made
    in all), ``share`` and ``p_value`` (nan when nobody chose).
    """
    answered = len(choices)
    chance = 1 / len(columns) if len(columns) > 1 else math.nan
    rows = []
    for c in columns:
        k = int((choices["choice"] == c).sum()) if answered else 0
        p = binomial_tail(k, answered, chance) if answered and chance == chance else math.nan
        rows.append({"column": c, "picked": k, "answered": answered,
                     "share": k / answered if answered else math.nan, "chance": chance, "p_value": p})
    return pd.DataFrame(rows, columns=["column", "picked", "answered", "share", "chance", "p_value"])


__all__ = ["bootstrap_mean_ci", "binomial_tail", "rating_summary", "pairwise_preference", "picked_as_real"]
