"""models/scoring.py: windowed and full-context scores."""

import numpy as np
import pytest
import torch

from pipeline.models.feeding import make_windows
from pipeline.models.network import ModelConfig, SequenceModel


def test_full_context_scores_the_same_targets_as_the_windows():
    from pipeline.models.scoring import score_full_context, score_windows, summarise
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=9, cell="lstm", layers=2, hidden=8, embed=4))
    model.eval()
    pieces = [np.random.default_rng(k).integers(0, 9, n) for k, n in enumerate((40, 6, 25, 11))]
    w = 10
    win = score_windows(model, make_windows(pieces, w, 1))
    full = score_full_context(model, pieces, w, torch.device("cpu"), rows=3, chunk=7)
    assert float(win["n"]) == float(full["n"]) == (40 - w) + (25 - w) + (11 - w)
    # a piece of exactly window + 1 tokens: one target, the same context either way
    one = [np.arange(w + 1) % 9]
    a = summarise(score_windows(model, make_windows(one, w, 1)), "v", "classify")
    b = summarise(score_full_context(model, one, w, torch.device("cpu")), "v", "classify")
    assert a["v_loss"] == pytest.approx(b["v_loss"], abs=1e-5)
    # full context equals one pass over the whole piece, scored from position w on
    with torch.no_grad():
        out, _ = model(torch.as_tensor(pieces[0])[None, :-1])
        ref = torch.nn.functional.cross_entropy(out[0, w - 1:], torch.as_tensor(pieces[0])[w:], reduction="sum")
    alone = score_full_context(model, pieces[:1], w, torch.device("cpu"), chunk=4)
    assert float(alone["loss"]) == pytest.approx(float(ref), rel=1e-5)
