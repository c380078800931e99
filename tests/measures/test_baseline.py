"""measures/baseline.py: the n-gram model."""

import math
import time

import numpy as np
import pytest

from pipeline.measures.baseline import NGramModel


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


# --------------------------------------------------------------------------- sampling

CYCLE = [0, 1, 2, 3] * 20


def random_model(order: int = 3, vocab: int = 20, seed: int = 0) -> NGramModel:
    rng = np.random.default_rng(seed)
    return NGramModel(order, vocab).fit([rng.integers(0, vocab, 200).tolist() for _ in range(3)])


def test_distribution_is_prob_for_every_id():
    m = NGramModel(3, 5).fit([[0, 1, 2, 0, 1, 3, 0, 1, 2]])
    for ctx in ([], [0], [0, 1], [4, 4], [2, 0, 1]):
        d = m.distribution(ctx)
        assert d.shape == (5,) and d.sum() == pytest.approx(1.0)
        assert d == pytest.approx([m.prob(ctx, t) for t in range(5)], rel=1e-12)
    m.fit([[4, 4, 4, 4]])  # more data: the sampler's cached statistics must follow
    assert m.distribution([4, 4]) == pytest.approx([m.prob([4, 4], t) for t in range(5)], rel=1e-12)


def test_sample_is_deterministic_for_a_seed():
    m = random_model()
    a = m.sample([1, 2], 50, 1.0, 7, count=4)
    assert len(a) == 4 and all(len(s) == 50 for s in a)
    assert all(type(t) is int and 0 <= t < 20 for s in a for t in s)
    assert m.sample([1, 2], 50, 1.0, np.random.default_rng(7), count=4) == a
    assert m.sample([1, 2], 50, 1.0, 8, count=4) != a
    assert a[0] != a[1]  # rows draw independently


def test_greedy_reproduces_a_deterministic_corpus():
    m = NGramModel(3, 4).fit([CYCLE])
    assert m.sample([0, 1], 10, 0, 0, count=3) == [[2, 3, 0, 1, 2, 3, 0, 1, 2, 3]] * 3
    # After 0 comes 0 or 1 equally often; only the trigram context tells them apart.
    swing = NGramModel(3, 2).fit([[0, 0, 1] * 20])
    assert swing.sample([0, 1], 7, 0, 0) == [[0, 0, 1, 0, 0, 1, 0]]


def test_temperature():
    # Unigram: counts 6, 3, 1 -> Witten-Bell (10 p + 3 / 3) / 13 = (7, 4, 2) / 13.
    m = NGramModel(1, 3).fit([[0] * 6 + [1] * 3 + [2]])
    p = np.array([7, 4, 2]) / 13
    assert m.distribution([]) == pytest.approx(p)
    for t, expected in ((1.0, p), (0.5, p ** 2 / (p ** 2).sum()), (2.0, p ** 0.5 / (p ** 0.5).sum()),
                        (1e6, np.full(3, 1 / 3))):
        draws = np.concatenate(m.sample([], 20, t, 3, count=1000))
        assert np.bincount(draws, minlength=3) / draws.size == pytest.approx(expected, abs=0.01), t
    assert m.sample([], 5, 0, 3, count=2) == [[0] * 5] * 2  # greedy
    # A low temperature follows the cycle; a very high one wanders off it.
    cyc = NGramModel(3, 4).fit([CYCLE])
    assert cyc.sample([0, 1], 40, 0.05, 0, count=5) == [(CYCLE[2:] + CYCLE)[:40]] * 5
    assert cyc.sample([0, 1], 40, 100.0, 0, count=5) != [(CYCLE[2:] + CYCLE)[:40]] * 5


def test_stop_id_ends_a_sample_and_is_kept():
    assert NGramModel(3, 4).fit([CYCLE]).sample([0, 1], 10, 0, 0, stop_id=3) == [[2, 3]]
    m = random_model()
    stopped = m.sample([5, 3], 200, 1.0, 1, count=6, stop_id=3)  # a 3 in the primer does not stop
    assert any(len(s) < 200 for s in stopped)
    for s in stopped:
        assert 3 not in s[:-1] and (s[-1] == 3 or len(s) == 200)
    # the other rows are drawn as without a stop id until they stop
    free = m.sample([5, 3], 200, 1.0, 1, count=6)
    assert all(f[:len(s)] == s for f, s in zip(free, stopped))


def test_unknown_context_backs_off():
    m = NGramModel(3, 6).fit([CYCLE])  # ids 4 and 5 never occur
    assert m.distribution([5, 4]) == pytest.approx(m.distribution([]))
    assert m.distribution([5, 1]) == pytest.approx(m.distribution([1]))
    # nothing known: the unigram tie goes to the lowest id, then the cycle's own contexts take over
    assert m.sample([5, 4], 6, 0, 0) == [[0, 1, 2, 3, 0, 1]]
    assert m.sample([], 6, 0, 0) == [[0, 1, 2, 3, 0, 1]]
    assert m.sample([5, 1], 3, 0, 0) == [[2, 3, 0]]  # the bigram context (1,) still applies
    unfitted = NGramModel(2, 4)
    draws = np.concatenate(unfitted.sample([], 10, 1.0, 0, count=100))
    assert set(draws.tolist()) == {0, 1, 2, 3}  # uniform floor only


def test_sample_edge_cases():
    m = random_model()
    assert m.sample([1], 0, 1.0, 0, count=3) == [[], [], []]
    assert m.sample([1], 5, 1.0, 0, count=0) == []
    with pytest.raises(ValueError):
        m.sample([20], 5, 1.0, 0)  # id outside the vocabulary
    with pytest.raises(ValueError):
        m.sample([1], 5, -1.0, 0)
    with pytest.raises(ValueError):
        m.sample([1], 5, float("nan"), 0)


def test_sampling_is_vectorised():
    # 10 x 1,000 tokens of a 1,000-id vocabulary take ~0.3 s on one slow shared core; the loose
    # bound (never flaky under load) only catches a fall back to Python work per token and id.
    rng = np.random.default_rng(0)
    m = NGramModel(3, 1000).fit([rng.integers(0, 1000, 5000).tolist() for _ in range(4)])
    t0 = time.perf_counter()
    out = m.sample([1, 2, 3], 1000, 0.8, 0, count=10)
    assert time.perf_counter() - t0 < 10.0
    assert [len(s) for s in out] == [1000] * 10
