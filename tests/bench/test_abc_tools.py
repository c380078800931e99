"""bench/abc_tools.py: generation speed and the character n-gram baseline of a tiny chars run."""
from __future__ import annotations

import math

from bench.abc_tools import char_ngram_baseline, generation_speed


def test_generation_speed_batch_vs_single(chars_run):
    speed = generation_speed(chars_run, count=3, length=20)
    for way in ("batch", "single"):
        assert speed[way]["chars"] > 0 and speed[way]["chars_per_s"] > 0
    assert speed["speedup"] > 0 and speed["count"] == 3


# --------------------------------------------------------------------------- baseline

def test_char_ngram_baseline_on_the_models_targets(chars_window, tunes_dataset):
    res = char_ngram_baseline(tunes_dataset, chars_window)
    assert list(res) == ["3-gram", "5-gram", "7-gram"]
    for r in res.values():
        assert math.isfinite(r["loss"]) and r["loss"] > 0 and 0 <= r["acc"] <= 1
        assert r["targets"] == r["total_targets"] > 0
    few = char_ngram_baseline(tunes_dataset, chars_window, orders=(2,), max_targets=5)
    assert few["2-gram"]["targets"] == 5 < few["2-gram"]["total_targets"]
