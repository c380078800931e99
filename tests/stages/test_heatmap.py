"""Hidden-unit activations, sequence features, unit ranking, heatmap pictures and the CLI."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread

from cli import main
from pipeline.codecs.chars import CHAR_FEATURES
from pipeline.codecs.names import NOTE_FEATURES
from pipeline.core.errors import ConfigError
from pipeline.models.network import ModelConfig, SequenceModel
from pipeline.stages import heatmap as hm
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.heatmap import (
    HeatmapConfig,
    grid_layout,
    heatmap_png,
    rank_units,
    record_activations,
    sequence_features,
    top_units,
)
from pipeline.store.rundir import TrainConfig

TUNE = 'X:1\nT:Hi\nK:G\n"G"[GB]|A2 B|\n'

CHARS = ["<start>", *TUNE, "<end>"]


def char_vocab(extra: str = "") -> list[str]:
    return sorted(set(CHARS) | set(extra), key=lambda t: (len(t) > 1, t))


def tiny_model(cell: str, layers: int = 1, hidden: int = 6, vocab: int = 12, embed: int = 4,
               dropout: float = 0.0, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=vocab, cell=cell, layers=layers, hidden=hidden, embed=embed,
                                     dropout=dropout)).eval()


# ------------------------------------------------------------------ activations

@pytest.mark.parametrize("stack", ["residual", "plain"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_activations_equal_the_models_forward_pass(cell, stack):
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=12, cell=cell, layers=3, hidden=6, embed=4, dropout=0.0,
                                      stack=stack)).eval()
    ids = torch.randint(0, 12, (40,), generator=torch.Generator().manual_seed(1))
    got = record_activations(model, ids)
    assert got.shape == (40, 6) and got.dtype == np.float32
    np.testing.assert_allclose(record_activations(model, ids.numpy(), layer=2), got, atol=0)
    # every layer's row t is that layer's hidden state after the stack has read tokens 0..t, one at a time
    with torch.no_grad():
        x, state, rows = model.inputs(ids[None]), None, []
        for t in range(len(ids)):
            _, state = model.rnn(x[:, t:t + 1], state)
            rows.append((state[0] if cell == "lstm" else state)[:, 0])
        want = torch.stack(rows, 1).numpy()  # (layers, time, hidden)
        top, _ = model.rnn(x)
    for layer in (0, 1, 2):
        np.testing.assert_allclose(record_activations(model, ids, layer=layer), want[layer], atol=1e-5)
        np.testing.assert_allclose(record_activations(model, ids, layer=layer - 3), want[layer], atol=1e-5)
    # a plain stack passes its top layer up as it is; a residual one adds the layer's input (layer 1's passed-up output)
    below = want[1] + want[0] if stack == "residual" else None
    np.testing.assert_allclose(top[0].numpy(), want[2] if below is None else want[2] + below, atol=1e-5)


def test_lstm_cell_state_matches_stepping_the_stack():
    model = tiny_model("lstm", layers=2, dropout=0.3)
    model.train()  # dropout between layers must not leak into the recording
    ids = torch.randint(0, 12, (30,), generator=torch.Generator().manual_seed(2))
    state, cells, hiddens = None, [], []
    with torch.no_grad():
        x = model.inputs(ids[None])
        model.eval()
        for t in range(len(ids)):
            _, state = model.rnn(x[:, t:t + 1], state)
            hiddens.append(state[0][:, 0].numpy())
            cells.append(state[1][:, 0].numpy())
    model.train()
    for layer in (0, 1):
        np.testing.assert_allclose(record_activations(model, ids, layer, "cell"),
                                   np.stack(cells)[:, layer], atol=1e-5)
        np.testing.assert_allclose(record_activations(model, ids, layer, "hidden"),
                                   np.stack(hiddens)[:, layer], atol=1e-5)
    assert record_activations(model, [], 1, "cell").shape == (0, 6)


def test_bad_layer_or_state_is_a_clean_error():
    with pytest.raises(ConfigError, match="out of range"):
        record_activations(tiny_model("gru", layers=2), [1, 2], layer=2)
    with pytest.raises(ConfigError, match="out of range"):
        record_activations(tiny_model("gru", layers=2), [1, 2], layer=-3)
    with pytest.raises(ConfigError, match="needs an LSTM"):
        record_activations(tiny_model("gru"), [1, 2], state="cell")
    with pytest.raises(ConfigError, match="hidden or cell"):
        record_activations(tiny_model("lstm"), [1, 2], state="output")


def test_recording_leaves_the_random_state_alone():
    model = tiny_model("lstm", layers=2)
    before = torch.get_rng_state()
    record_activations(model, [1, 2, 3], 0, "cell")
    assert torch.equal(before, torch.get_rng_state())


# ------------------------------------------------------------------ features and ranking

def test_char_features_of_a_tiny_tune():
    f = sequence_features(CHARS, "chars")
    assert set(f) == set(CHAR_FEATURES) and all(v.shape == (len(CHARS),) for v in f.values())
    text = lambda name: "".join(t if on else "_" for t, on in zip(CHARS, f[name]) if len(t) == 1)  # noqa: E731
    assert text("in_header") == "X:1\nT:Hi\nK:G\n" + "_" * len('"G"[GB]|A2 B|\n')
    assert text("in_title") == "____T:Hi\n" + "_" * (len(TUNE) - 9)
    assert text("in_quotes") == "_" * 13 + '"G"' + "_" * 11
    assert text("in_chord") == "_" * 16 + "[GB]" + "_" * 7
    assert f["marker"].tolist() == [1] + [0] * len(TUNE) + [1]
    assert f["bar_line"].sum() == 2 and f["newline"].sum() == 4 and f["colon"].sum() == 3
    assert f["digit"].sum() == 2 and f["space"].sum() == 1
    assert f["line_position"][1:5].tolist() == [0, 1, 2, 3]
    # a body without a header, and an unclosed quote that stops at its line's end
    g = sequence_features(list('|"Am ab\ncd|'), "chars")
    assert g["in_header"].sum() == 0 and g["in_quotes"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert all(v.shape == (0,) for v in sequence_features([], "chars").values())


def test_note_features():
    toks = ["C4", "C4.E4.G4", "C6", "C6", "C2.G2"]
    f = sequence_features(toks, "names")
    assert f["is_chord"].tolist() == [0, 1, 0, 0, 1]
    assert f["n_notes"].tolist() == [1, 3, 1, 1, 2]
    np.testing.assert_allclose(f["pitch"], [60, 191 / 3, 84, 84, 39.5])
    assert f["high_register"].tolist() == [0, 0, 1, 1, 0] and f["low_register"].tolist() == [0, 0, 0, 0, 1]
    assert f["repeated"].tolist() == [0, 0, 0, 1, 0]
    p = sequence_features(["60", "72", "72"], "pitch")
    assert set(p) == {"pitch", "high_register", "low_register", "repeated"}
    with pytest.raises(ConfigError):
        sequence_features(["C4", "nonsense"], "names")


def test_rank_units_scores_signs_and_degenerate_cases():
    rng = np.random.default_rng(0)
    feat = (rng.random(50) > 0.5).astype(float)
    acts = rng.normal(size=(50, 4)) * 0.1
    acts[:, 1] = -feat + rng.normal(size=50) * 0.01  # anti-correlated
    acts[:, 3] = 0.5                                  # constant unit
    r = rank_units(acts, {"f": feat, "flat": np.ones(50)})
    assert list(r.columns) == ["feature", "rank", "unit", "corr", "score", "sign"]
    assert not r.isna().any().any() and len(r) == 8
    best = r[(r.feature == "f") & (r["rank"] == 1)].iloc[0]
    assert best.unit == 1 and best.sign == -1 and best.score > 0.99
    assert np.isclose(best["corr"], np.corrcoef(acts[:, 1], feat)[0, 1])
    assert r[(r.feature == "f") & (r.unit == 3)].score.item() == 0
    assert (r[r.feature == "flat"].score == 0).all()
    assert len(top_units(r, 2)) == 4 and top_units(r, 1).unit.tolist()[0] == 1
    assert (rank_units(np.zeros((0, 3)), {"f": np.zeros(0)}).score == 0).all()
    assert (rank_units(np.ones((1, 3)), {"f": np.ones(1)}).score == 0).all()


def test_a_unit_set_by_hand_to_fire_on_bar_lines_ranks_first():
    vocab = char_vocab()
    bar = vocab.index("|")
    model = tiny_model("rnn", hidden=4, vocab=len(vocab), embed=0)  # one-hot input
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        rnn = model.rnn
        rnn.weight_ih_l0.copy_(torch.randn(rnn.weight_ih_l0.shape, generator=g) * 0.3)
        rnn.weight_hh_l0.copy_(torch.randn(rnn.weight_hh_l0.shape, generator=g) * 0.3)
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
        rnn.weight_ih_l0[2] = -2.0
        rnn.weight_ih_l0[2, bar] = 4.0
        rnn.weight_hh_l0[2] = 0.0
    tokens = ["<start>", *(TUNE * 3), "<end>"]
    acts = record_activations(model, [vocab.index(t) for t in tokens])
    ranking = rank_units(acts, sequence_features(tokens, "chars"))
    best = top_units(ranking, 1).set_index("feature")
    assert best.loc["bar_line", "unit"] == 2 and best.loc["bar_line", "score"] > 0.95
    assert best.loc["bar_line", "sign"] == 1


# ------------------------------------------------------------------ pictures

def test_grid_layout_breaks_rows_at_newlines_and_columns():
    assert grid_layout(list("ab\ncdef"), 3, chars=True) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert grid_layout(["a\n", "b", "c"], 2, chars=False) == [(0, 0), (0, 1), (1, 0)]


def _png_shape(info: dict) -> tuple[int, int]:
    img = imread(info["path"])
    assert img.shape[:2] == (info["height"], info["width"])
    return img.shape[:2]


@pytest.mark.parametrize("cell,layers,layer,state", [
    ("rnn", 1, 0, "hidden"), ("lstm", 1, 0, "hidden"), ("lstm", 1, 0, "cell"), ("gru", 1, 0, "hidden"),
    ("gru", 2, 0, "hidden"), ("lstm", 2, 1, "cell")])
def test_heatmap_images_for_every_cell_and_layer(tmp_path, cell, layers, layer, state):
    vocab = char_vocab()
    model = tiny_model(cell, layers=layers, vocab=len(vocab))
    acts = record_activations(model, [vocab.index(t) for t in CHARS], layer, state)
    info = heatmap_png(CHARS, acts[:, 0], tmp_path / "h.png", title=f"{cell} {layer} {state}",
                       limit=1.0 if state == "hidden" else None)
    h, w = _png_shape(info)
    assert info["tokens"] == len(CHARS) and 300 <= w <= 2000 and 100 <= h <= 1000


def test_heatmap_size_grows_with_length_and_is_capped(tmp_path, monkeypatch):
    short = heatmap_png(CHARS, np.zeros(len(CHARS)), tmp_path / "a.png", title="short")
    longer = ["<start>", *(TUNE * 4), "<end>"]
    long = heatmap_png(longer, np.linspace(-1, 1, len(longer)), tmp_path / "b.png", title="long")
    assert _png_shape(long)[0] > _png_shape(short)[0]
    notes = ["C4", "C4.E4.G4", "D5"] * 12
    n = heatmap_png(notes, np.linspace(-2, 2, 36), tmp_path / "n.png", title="notes")
    assert _png_shape(n)[1] > _png_shape(heatmap_png(notes[:3], np.zeros(3), tmp_path / "m.png", title="n"))[1]
    monkeypatch.setattr(hm, "MAX_TOKENS", 20)
    capped = heatmap_png(longer, np.zeros(len(longer)), tmp_path / "c.png", title="capped")
    assert capped["tokens"] == 20 and _png_shape(capped)[0] < _png_shape(long)[0]
    monkeypatch.setattr(hm, "MAX_TOKENS", 2000)
    monkeypatch.setattr(hm, "MAX_ROWS", 2)
    rows = heatmap_png(longer, np.zeros(len(longer)), tmp_path / "d.png", title="rows")
    assert rows["tokens"] == 10  # two rows: <start>X:1↵ and T:Hi↵


# ------------------------------------------------------------------ config and CLI

def test_config_round_trip():
    c = HeatmapConfig(text="abc", layer=0, state="cell", units=(3, 17), top=5)
    assert HeatmapConfig.from_dict(c.to_dict()) == c


@pytest.fixture(scope="module")
def note_run(tmp_path_factory, tiny_run) -> Path:
    """A 2-layer LSTM trained one epoch on four tiny MIDI pieces."""
    return tiny_run(tmp_path_factory.mktemp("heat"), notes=40, cell="lstm", layers=2, hidden=8, embed=4, seed=0)


def chars_run(folder: Path, cell: str = "gru") -> Path:
    """A chars run saved by hand in the format `train` writes (untrained weights)."""

    vocab = char_vocab("ACDEFRacdefgilrz3/ \n")
    model = tiny_model(cell, layers=2, hidden=8, vocab=len(vocab))
    tc = TrainConfig(dataset=str(folder / "none"), encoding="chars", cell=cell, layers=2, hidden=8, embed=4)
    folder.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "model_args": model.to_dict(), "vocab": vocab, "encoding": "chars",
                "task": "classify", "train_config": asdict(tc), "epoch": 1, "metrics": []}, folder / "best.pt")
    return folder


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


def ok(args: list[str]) -> str:
    res = invoke(args)
    assert res.exit_code == 0, res.output
    return res.output


def fails(args: list[str], needle: str) -> None:
    res = invoke(args)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output and needle in res.output, res.output


def test_cli_on_a_trained_note_model(note_run, tmp_path):
    out = ok(["heatmap", "--run", str(note_run), "--length", "30"])
    folder = note_run / "heatmaps"
    assert out.count("\n") == 1 and f"-> {folder}/" in out and "LSTM layer 1 (hidden state)" in out
    ranking = pd.read_csv(folder / "ranking.csv")
    assert set(ranking.feature) == set(NOTE_FEATURES) and (ranking.groupby("feature").size() == 3).all()
    feats = pd.read_csv(folder / "features.csv")
    assert list(feats.columns[:2]) == ["step", "token"] and len(feats) == 8 + 30  # primer = one window
    pngs = sorted(p.name for p in folder.glob("heatmap_*.png"))
    assert pngs and all(p.startswith("heatmap_") and "_unit" in p for p in pngs)
    assert (folder / "sample" / "samples.json").exists()

    res = generate(note_run, GenerateConfig(count=2, length=12, primer_length=4))
    out = ok(["heatmap", "--run", str(note_run), "--sample", str(res.folder), "--index", "1", "--layer", "0",
              "--state", "cell", "--units", "1,7", "--top", "2", "--out", str(tmp_path / "h")])
    assert "16 tokens" in out and "layer 0 (cell state)" in out
    assert sorted(p.name for p in (tmp_path / "h").glob("*.png")) == ["heatmap_unit1.png", "heatmap_unit7.png"]
    assert (pd.read_csv(tmp_path / "h" / "ranking.csv").groupby("feature").size() == 2).all()

    fails(["heatmap", "--run", str(tmp_path / "nowhere")], "not a run folder")
    fails(["heatmap", "--run", str(tmp_path)], "no best.pt")
    fails(["heatmap", "--run", str(note_run), "--layer", "2"], "out of range")
    fails(["heatmap", "--run", str(note_run), "--units", "8"], "out of range")
    fails(["heatmap", "--run", str(note_run), "--sample", str(res.folder), "--index", "2"], "holds 2 samples")
    fails(["heatmap", "--run", str(note_run), "--text", "C4 Q9"], "not in the model's vocabulary")
    assert invoke(["heatmap", "--run", str(note_run), "--units", "x"]).exit_code == 2
    # the run folder alone is enough: the held-out opening is kept in the run (primers.json)
    dataset = note_run.parents[1] / "processed"
    dataset.rename(dataset.with_name("moved"))
    try:
        out = ok(["heatmap", "--run", str(note_run), "--length", "6", "--units", "0", "--out", str(tmp_path / "g")])
    finally:
        dataset.with_name("moved").rename(dataset)
    assert "fresh sample" in out and "tokens" in out


def test_cli_on_a_chars_model(tmp_path):
    run = chars_run(tmp_path / "runs" / "abc")
    out = ok(["heatmap", "--run", str(run), "--text", r"X:1\nT:Air\nK:D\n|:DEF A2d|\n", "--columns", "40"])
    assert "GRU layer 1 (hidden state)" in out and "--text" in out
    names = {p.name for p in (run / "heatmaps").glob("*.png")}
    assert any(n.startswith("heatmap_in_header_unit") for n in names)
    assert any(n.startswith("heatmap_bar_line_unit") for n in names)
    assert not any(n.startswith("heatmap_in_quotes") for n in names)  # no quote in the text: nothing to draw
    tokens = pd.read_csv(run / "heatmaps" / "features.csv", keep_default_na=False)["token"].tolist()
    assert tokens[0] == "<start>" and tokens[-1] == "<end>" and "\n" in tokens
    # default: a fresh sample primed with <start>; stale pictures of the last call go away
    ok(["heatmap", "--run", str(run), "--length", "20", "--units", "0"])
    assert [p.name for p in (run / "heatmaps").glob("*.png")] == ["heatmap_unit0.png"]
    abc = tmp_path / "t.abc"
    abc.write_text("% a tunebook\nX:1\nT:Reel\nK:D\n|:dfed cdef|\n\nX:2\nT:Air\nK:D\nAFD|\n")
    ok(["heatmap", "--run", str(run), "--file", str(abc), "--layer", "0"])
    tokens = pd.read_csv(run / "heatmaps" / "features.csv", keep_default_na=False)["token"].tolist()
    assert tokens.count("<start>") == tokens.count("<end>") == 2 and "%" not in tokens  # one frame per tune
    fails(["heatmap", "--run", str(run), "--state", "cell"], "needs an LSTM")
    fails(["heatmap", "--run", str(run), "--file", str(abc), "--text", "abc"], "give one of")
    fails(["heatmap", "--run", str(run), "--file", str(tmp_path / "t.mid")], "is not a file")


def test_help_has_an_example():
    out = ok(["heatmap", "--help"])
    assert "Example" in out and "python cli.py heatmap" in out


def test_heatmap_records_on_the_requested_device(run, tmp_path):
    from pipeline.stages.heatmap import HeatmapConfig, heatmap
    res = heatmap(run, HeatmapConfig(length=30), tmp_path / "h", device="cpu")
    assert res["tokens"] > 30 and res["pictures"]
