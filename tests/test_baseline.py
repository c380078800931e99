import math

import numpy as np
import pytest

from pipeline.baseline import NGramModel


def test_probabilities_sum_to_one():
    m = NGramModel(3, 5).fit([[0, 1, 2, 0, 1, 3, 0, 1, 2]])
    for ctx in ([], [0], [0, 1], [4, 4]):
        assert sum(m.prob(ctx, t) for t in range(5)) == pytest.approx(1.0)


def test_trigram_learns_a_deterministic_cycle():
    seq = [0, 1, 2, 3] * 20
    m = NGramModel(3, 4).fit([seq])
    ctx = np.array([[seq[i], seq[i + 1]] for i in range(10)])
    tgt = np.array([seq[i + 2] for i in range(10)])
    res = m.evaluate(ctx, tgt)
    assert res["acc"] == 1.0 and res["loss"] < 0.1
    uni = NGramModel(1, 4).fit([seq]).evaluate(ctx, tgt)
    assert uni["loss"] == pytest.approx(math.log(4)) and uni["acc"] == pytest.approx(0.2)  # ties go to the lowest id (0)


def test_empty_input():
    res = NGramModel(2, 3).fit([[0, 1]]).evaluate(np.zeros((0, 2), int), np.zeros(0, int))
    assert math.isnan(res["loss"]) and math.isnan(res["acc"])
