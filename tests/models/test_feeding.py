"""models/feeding.py: windows and streams of training tokens."""

import numpy as np
import torch

from pipeline.models.feeding import make_windows
from pipeline.models.network import ModelConfig, SequenceModel


def test_make_windows_shapes_and_targets():
    x, y = make_windows([np.arange(10)], window=4, stride=3).arrays()
    assert x.shape == y.shape == (2, 4)
    assert x[1].tolist() == [3, 4, 5, 6] and y[1].tolist() == [4, 5, 6, 7]
    assert make_windows([np.arange(3)], 4, 1).arrays()[0].shape == (0, 4)
    # windows never cross a piece boundary, and index one token array instead of copying
    w = make_windows([np.arange(6), np.arange(100, 106)], window=4, stride=1)
    x, y = w.arrays()
    assert len(w.tokens) == 12 and x.shape == (4, 4) and x[2].tolist() == [100, 101, 102, 103]


def joined_epoch(arrays, batch, chunk, g):
    """The trainer's old epoch, kept as the reference: the shuffled pieces joined whole, then cut into rows."""
    order = torch.randperm(len(arrays), generator=g).tolist()
    tokens = torch.cat([torch.from_numpy(arrays[i]) for i in order])
    first = torch.zeros(len(tokens), dtype=torch.bool)
    first[torch.tensor([0] + [len(arrays[i]) for i in order[:-1]]).cumsum(0)] = True
    offset = int(torch.randint(0, chunk, (1,), generator=g))
    offset = 0 if (len(tokens) - 1 - offset) // batch < 1 else offset
    length = (len(tokens) - 1 - offset) // batch
    cut = lambda a, o: a[o:o + batch * length].view(batch, length)  # noqa: E731
    return cut(tokens, offset), cut(tokens, offset + 1), cut(first, offset)


def test_epochs_through_the_key_map_equal_epochs_over_copied_pieces(tiny_dataset):
    """Streams and windows of transposed pieces, gathered through the key map, read exactly what
    copies of every transposed piece gave (the trainer's old way), in the same order for a seed."""
    from pipeline.models.augment import augment_transpositions, training_pieces
    from pipeline.models.feeding import Streams, training_windows
    from pipeline.store.dataset import load_dataset
    ds = load_dataset(tiny_dataset, "pitch")
    pieces = training_pieces(ds, 2)
    copied = augment_transpositions(ds, 2).piece_arrays("train")
    assert len(copied) == 5 * len(pieces.arrays)
    mapped = Streams.of(pieces, 3, 7)
    assert len(mapped.ids) == sum(map(len, pieces.arrays)) and mapped.tokens == sum(map(len, copied))
    assert mapped.tokens == 5 * len(mapped.ids)  # an epoch reads every key; memory holds one
    for seed in range(4):
        a = mapped.epoch(torch.Generator().manual_seed(seed))
        b = joined_epoch(copied, 3, 7, torch.Generator().manual_seed(seed))
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        plan = mapped.plan(torch.Generator().manual_seed(seed))  # chunk by chunk, as training reads it
        chunks = [plan.columns(t, t + 7) for t in range(0, plan.length, 7)]
        assert all(torch.equal(torch.cat(part, 1), whole) for part, whole in zip(zip(*chunks), a))
    w, c = training_windows(pieces, 6, 2), make_windows(copied, 6, 2)
    assert len(w) == len(c) and len(w.tokens) == len(mapped.ids)
    for u, v in zip(w.arrays(), c.arrays()):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------ truncated BPTT and the two validation measures

def test_streams_cover_every_piece_once_per_epoch():
    from pipeline.models.feeding import Streams
    arrays = [torch.arange(0, 50), torch.arange(100, 130), torch.arange(200, 290)]
    s = Streams(arrays, batch=4, chunk=7)
    g = torch.Generator().manual_seed(3)
    x, y, first = s.epoch(g)
    assert x.shape == y.shape == first.shape and x.shape[0] == 4
    # piece starts are marked where their first tokens sit
    assert sorted(x[first].tolist()) == [t for t in (0, 100, 200) if t in x.reshape(-1).tolist()]
    # each row is a contiguous stretch of the joined (shuffled) pieces; targets are the next tokens
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    assert torch.equal(flat_x[1:], flat_y[:-1])
    assert len(set(flat_x.tolist())) == flat_x.numel() and flat_x.numel() >= 170 - 4 - 7
    # the same generator seed gives the same epoch (exact resume), another seed another order
    again = s.epoch(torch.Generator().manual_seed(3))
    assert torch.equal(again[0], x)
    assert not torch.equal(s.epoch(torch.Generator().manual_seed(4))[0][:, :5], x[:, :5])


def test_forward_resetting_starts_each_piece_from_a_zero_state():
    from pipeline.models.feeding import forward_resetting
    torch.manual_seed(0)
    for cell in ("gru", "lstm"):
        model = SequenceModel(ModelConfig(vocab_size=7, cell=cell, layers=2, hidden=6, embed=3))
        model.eval()
        x = torch.randint(0, 7, (2, 9))
        first = torch.zeros(2, 9, dtype=torch.bool)
        first[0, 4] = first[1, 6] = True
        with torch.no_grad():
            _, warm = model(torch.randint(0, 7, (2, 5)))
            out, _ = forward_resetting(model, x, first, warm)
            alone0, _ = model(x[:1, 4:])            # row 0 from its piece start, zero state
            alone1, _ = model(x[1:, 6:])
            carried, _ = model(x[:1, :4], tuple(s[:, :1] for s in warm) if cell == "lstm" else warm[:, :1])
        assert torch.allclose(out[0, 4:], alone0[0], atol=1e-6) and torch.allclose(out[1, 6:], alone1[0], atol=1e-6)
        assert torch.allclose(out[0, :4], carried[0], atol=1e-6)
