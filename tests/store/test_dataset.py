"""store/dataset.py: the split."""

from pipeline.store.dataset import assign_split


def test_split_is_deterministic_and_stable_under_additions():
    pieces = [f"p{i}" for i in range(10)]
    a = assign_split(pieces, 0.2, 0)
    assert a == assign_split(list(reversed(pieces)), 0.2, 0)
    assert a["validation"]
    b = assign_split(pieces + ["new1", "new2"], 0.2, 0)
    assert set(a["validation"]) <= set(b["validation"])
    assert set(a["train"]) <= set(b["train"])
    one = assign_split(["only"], 0.2, 0)
    assert one["tail_fraction"] > 0
