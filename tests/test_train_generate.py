"""Training (resume, determinism, tasks), sampling and rendering."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_train_config
from pipeline.core.errors import ConfigError, RunError
from pipeline.stages.generate import GenerateConfig, generate, sample_refeed
from pipeline.models.network import ModelConfig, SequenceModel
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.store.rundir import TrainConfig, load_checkpoint
from pipeline.models.feeding import make_windows
from pipeline.stages.train import train

METRIC_COLS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def metrics(run):
    return pd.read_csv(run / "metrics.csv")[METRIC_COLS]


def test_make_windows_shapes_and_targets():
    x, y = make_windows([np.arange(10)], window=4, stride=3).arrays()
    assert x.shape == y.shape == (2, 4)
    assert x[1].tolist() == [3, 4, 5, 6] and y[1].tolist() == [4, 5, 6, 7]
    assert make_windows([np.arange(3)], 4, 1).arrays()[0].shape == (0, 4)
    # windows never cross a piece boundary, and index one token array instead of copying
    w = make_windows([np.arange(6), np.arange(100, 106)], window=4, stride=1)
    x, y = w.arrays()
    assert len(w.tokens) == 12 and x.shape == (4, 4) and x[2].tolist() == [100, 101, 102, 103]


def test_run_folder_contents(tiny_dataset, tmp_path):
    run = tmp_path / "runs" / "r"
    summary = train(tiny_train_config(tiny_dataset, cell="lstm", layers=2), run)
    for f in ("config.json", "metrics.csv", "best.pt", "last.pt", "curves.png", "timing.json"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["cell"] == "lstm" and cfg["layers"] == 2 and cfg["parameters"] == summary.parameters
    assert TrainConfig.from_dict(cfg) == tiny_train_config(tiny_dataset, cell="lstm", layers=2)
    assert len(metrics(run)) == 3


def test_same_seed_same_metrics(tiny_dataset, tmp_path):
    train(tiny_train_config(tiny_dataset), tmp_path / "a")
    train(tiny_train_config(tiny_dataset), tmp_path / "b")
    pd.testing.assert_frame_equal(metrics(tmp_path / "a"), metrics(tmp_path / "b"))


@pytest.mark.parametrize("cell,mode,decay,noise", [("rnn", "windows", 1.0, 0.3), ("gru", "tbptt", 0.5, 0.0),
                                                   ("lstm", "tbptt", 1.0, 0.2)])
def test_killed_run_resumes_to_the_same_end(tiny_dataset, tmp_path, cell, mode, decay, noise):
    cfg = tiny_train_config(tiny_dataset, cell=cell, epochs=4, dropout=0.3, layers=2, mode=mode, lr_decay=decay,
                            token_noise=noise)
    train(cfg, tmp_path / "full")

    def kill_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed", on_epoch=kill_after_two)
    assert len(metrics(tmp_path / "killed")) == 2
    # the run's own config is used; threads is an execution setting and must match for bitwise equality
    train(TrainConfig(threads=1), tmp_path / "killed", resume=True)
    pd.testing.assert_frame_equal(metrics(tmp_path / "full"), metrics(tmp_path / "killed"))
    a, b = load_checkpoint(tmp_path / "full", "last"), load_checkpoint(tmp_path / "killed", "last")
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k])


def test_token_noise_replaces_a_share_of_the_inputs_by_tokens_of_the_batch(tiny_dataset):
    from pipeline.store.dataset import load_dataset
    from pipeline.store.rundir import with_encoding_defaults
    from pipeline.models.trainer import Trainer
    ds = load_dataset(tiny_dataset, "names")
    x = torch.arange(64 * 50).reshape(64, 50) % 97
    for share in (0.0, 0.3):
        cfg = tiny_train_config(tiny_dataset, token_noise=share)
        trainer = Trainer(cfg, ds, SequenceModel(ModelConfig(vocab_size=len(ds.vocab))), torch.device("cpu"))
        a = trainer._noisy(x, torch.Generator().manual_seed(5))
        assert torch.equal(a, trainer._noisy(x, torch.Generator().manual_seed(5)))  # the epoch's generator decides
        changed = (a != x).float().mean().item()
        assert changed == 0.0 if share == 0 else 0.25 < changed < 0.35
        assert set(a.unique().tolist()) <= set(x.unique().tolist())  # replacements are tokens of the batch
    with pytest.raises(ConfigError, match="--token-noise"):
        tiny_train_config(tiny_dataset, token_noise=1.0).validate()
    # the pitch default (README: benchmarks); other encodings are not noised unless asked
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="pitch"), set()).token_noise == 0.3
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="names"), set()).token_noise == 0.0
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="pitch", token_noise=0.0),
                                  {"token_noise"}).token_noise == 0.0


def test_existing_run_is_never_overwritten(tiny_dataset, tmp_path):
    train(tiny_train_config(tiny_dataset, epochs=1), tmp_path / "r")
    with pytest.raises(RunError, match="--resume"):
        train(tiny_train_config(tiny_dataset, epochs=1), tmp_path / "r")
    with pytest.raises(RunError):
        train(tiny_train_config(tiny_dataset), tmp_path / "none", resume=True)


def test_regression_task(tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, encoding="pitch", task="regress"), tmp_path / "reg")
    assert s.val_mae > 0 and 0 <= s.val_acc <= 1
    out = generate(tmp_path / "reg", GenerateConfig(count=2, length=20))
    assert all(0 <= int(t) <= 127 for smp in out.samples for t in smp)
    with pytest.raises(ConfigError, match="pitch"):
        tiny_train_config(tiny_dataset, task="regress").validate()


def test_early_stopping(tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, epochs=50, patience=1, lr=0.5, optimizer="rmsprop"), tmp_path / "es")
    assert s.epochs < 50


def test_targets_last_stride_one(tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, mode="windows", targets="last", stride=1, epochs=1,
                                optimizer="adagrad"), tmp_path / "l")
    assert s.epochs == 1
    with pytest.raises(ConfigError, match="--mode windows"):
        tiny_train_config(tiny_dataset, targets="last").validate()


@pytest.mark.parametrize("cell,embed,stack", [("lstm", 5, "residual"), ("gru", 0, "residual"), ("rnn", 5, "residual"),
                                              ("gru", 5, "plain")])
def test_stateful_sampling_equals_full_refeed(cell, embed, stack):
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=11, cell=cell, layers=3, hidden=12, embed=embed, stack=stack))
    primer = torch.randint(0, 11, (3, 6))
    g = torch.Generator().manual_seed(0)
    greedy = model.generate(primer, 15, 0.0, g)
    # greedy re-feeding the whole history (window larger than the sequence) must agree exactly
    refeed = sample_refeed(model, primer, 15, 1e-9, torch.Generator().manual_seed(0), window=100)
    assert greedy == refeed


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_plain_stack_is_torchs_fused_one_and_reads_its_checkpoints(cell):
    """Runs saved before residual stacks hold a fused nn.GRU/LSTM/RNN(num_layers=3): they load and score the same."""
    torch.manual_seed(0)
    fused = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, 6, num_layers=3, batch_first=True)
    old = {"embed.weight": torch.randn(9, 4), "head.weight": torch.randn(9, 6), "head.bias": torch.randn(9),
           **{f"rnn.{k}": v for k, v in fused.state_dict().items()}}
    args = {"vocab_size": 9, "cell": cell, "layers": 3, "hidden": 6, "embed": 4, "dropout": 0.0, "task": "classify"}
    model = SequenceModel.from_dict(args)  # a checkpoint's model_args, without the stack field
    assert model.config.stack == "plain"
    model.load_state_dict(old)
    x = torch.randint(0, 9, (2, 7))
    with torch.no_grad():
        h, state = fused(old["embed.weight"][x])
        out, mine = model(x)
    assert torch.allclose(out, h @ old["head.weight"].T + old["head.bias"], atol=1e-5)
    for a, b in zip(state if cell == "lstm" else [state], mine if cell == "lstm" else [mine]):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    assert model.rnn.weight_hh_l2 is model.rnn.layers[2].weight_hh_l0
    # the same weights in a residual stack read differently: each layer above the first adds its input
    res = SequenceModel(ModelConfig(**args, stack="residual"))
    res.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(res(x)[0], out, atol=1e-3)


def test_sampling_stops_at_end_token():
    model = SequenceModel(ModelConfig(vocab_size=5, cell="gru", layers=1, hidden=4, embed=3))
    with torch.no_grad():
        model.head.bias[:] = torch.tensor([0, 0, 0, 0, 50.0])  # id 4 plays <end>
    out = model.generate(torch.zeros(4, 2, dtype=torch.long), 100, 1.0, torch.Generator().manual_seed(0), stop_id=4)
    assert out == [[4]] * 4


def test_generate_and_render_from_run_folder_only(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset), run)
    res = generate(run, GenerateConfig(count=3, length=25, temperature=0.9, seed=5))
    assert len(res.samples) == 3 and all(len(s) == 25 for s in res.samples)
    again = generate(run, GenerateConfig(count=3, length=25, temperature=0.9, seed=5))
    assert again.samples == res.samples
    # the primer is the opening of a held-out piece
    split = json.loads((tiny_dataset / "split.json").read_text())
    seqs = json.loads((tiny_dataset / "names" / "sequences.json").read_text())["pieces"]
    assert res.primer == seqs[split["validation"][0]][:8]
    out = render_samples(res.folder, RenderConfig(audio="none", piano_roll=False))
    assert [f["midi"] for f in out.files] == [f"sample_{i:03d}.mid" for i in range(3)]
    from pipeline.inputs.midi_io import midi_file_to_notes
    notes, _ = midi_file_to_notes(f"{res.folder}/sample_000.mid")
    durations = (notes["end"] - notes["start"]).round(3)
    assert durations.nunique() > 1, "timing drawn from the corpus, not all notes the same length"
    render_samples(res.folder, RenderConfig(audio="none", piano_roll=False, fixed_beats=0.5))
    notes, _ = midi_file_to_notes(f"{res.folder}/sample_000.mid")
    assert (notes["end"] - notes["start"]).round(3).nunique() == 1


def test_bad_generate_options(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    with pytest.raises(ConfigError):
        generate(run, GenerateConfig(primer="tokens", primer_tokens=("Z9",)))
    with pytest.raises(ConfigError):
        generate(run, GenerateConfig(primer="start"))
    with pytest.raises(RunError):
        generate(tmp_path / "nope", GenerateConfig())


def test_run_folder_stands_alone_without_its_dataset(tiny_dataset, tmp_path):
    import shutil
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    shutil.rmtree(tiny_dataset)
    res = generate(run, GenerateConfig(count=2, length=10))
    assert len(res.primer) == 8
    assert render_samples(res.folder, RenderConfig(audio="none", piano_roll=False)).files[0]["midi"] == "sample_000.mid"


def test_killed_before_first_checkpoint_starts_again(tiny_dataset, tmp_path):
    def kill_in_epoch_one(row):
        raise KeyboardInterrupt
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(tiny_dataset, epochs=2), run, on_epoch=kill_in_epoch_one)
    (run / "last.pt").unlink()  # as if killed while epoch 1 ran
    (run / "best.pt").unlink()
    s = train(TrainConfig(), run, resume=True)
    assert s.epochs == 2
    s2 = train(TrainConfig(), run, resume=True)  # finished: returns at once
    assert s2 == s


def test_transpose_augmentation(tiny_dataset, tmp_path):
    from pipeline.codecs import transpose_tokens
    from pipeline.store.dataset import load_dataset
    assert transpose_tokens(["C4.E4", "G4"], "names", 2) == ["D4.F#4", "A4"]
    assert transpose_tokens(["127"], "pitch", 1) is None
    from pipeline.models.augment import augment_transpositions
    ds = load_dataset(tiny_dataset, "names")
    aug = augment_transpositions(ds, 2)
    assert len(aug.split["train"]) == 5 * len(ds.split["train"]) and aug.split["validation"] == ds.split["validation"]
    assert aug.vocab.tokens[:len(ds.vocab)] == ds.vocab.tokens  # old ids keep their meaning
    run = tmp_path / "t"
    train(tiny_train_config(tiny_dataset, transpose=2, epochs=1), run)
    assert json.loads((run / "config.json").read_text())["vocab_size"] == len(aug.vocab)
    out = generate(run, GenerateConfig(count=1, length=5))
    assert len(out.samples[0]) == 5
    # chars ignores transposition: the run's identity and config.json say 0
    assert tiny_train_config(tiny_dataset, transpose=2, encoding="chars").transpose == 0


def test_transposed_pieces_are_the_stored_ids_read_through_a_key_map(tiny_dataset):
    """Each piece in each key equals it moved token by token; the pieces themselves are held once."""
    from pipeline.models.augment import training_pieces
    from pipeline.store.dataset import Dataset, load_dataset
    from pipeline.codecs import Vocabulary, transpose_tokens
    ds = load_dataset(tiny_dataset, "names")
    pieces = training_pieces(ds, 3)
    want, new = {p: ds.sequences[p] for p in ds.pieces("train")}, []
    for p in ds.pieces("train"):  # the reference: every piece moved as strings, new tokens numbered as met
        for k in (-3, -2, -1, 1, 2, 3):
            moved = transpose_tokens(ds.sequences[p], "names", k)
            if moved is not None:
                want[f"{p}@{k:+d}"] = moved
                new += [t for t in moved if t not in ds.vocab.index]
    assert pieces.vocab.tokens == ds.vocab.tokens + sorted(set(new), key=new.index)  # old ids keep their meaning
    assert pieces.names == list(want)  # the stored pieces first, then each piece in each key
    assert {n: pieces.vocab.decode(a) for n, a in zip(pieces.names, pieces)} == want
    assert len(pieces.arrays) == len(ds.pieces("train")) and pieces.key_map.shape == (7, len(ds.vocab))
    assert pieces.lengths.tolist() == [len(s) for s in want.values()]
    assert training_pieces(ds).key_map is None and len(training_pieces(ds)) == len(ds.pieces("train"))
    # a key that would push a pitch past 127 (or below 0) is left out for that piece only
    pitch = Dataset(tiny_dataset, "pitch", {"a": ["60", "127"], "b": ["0", "64"], "c": ["5", "6"], "v": ["60"]},
                    Vocabulary([str(p) for p in range(128)]), {"train": ["a", "b", "c"], "validation": ["v"]}, {})
    assert training_pieces(pitch, 1).names == ["a", "b", "c", "a@-1", "b@+1", "c@-1", "c@+1"]


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
    from pipeline.store.dataset import load_dataset
    from pipeline.models.feeding import Streams, training_windows
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


@pytest.mark.slow
def test_sigkilled_cli_training_resumes_to_the_same_end(tiny_dataset, tmp_path):
    """A real kill -9 in the middle of training, then `train --resume`."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    cli = str(Path(__file__).resolve().parents[1] / "cli.py")
    args = [sys.executable, cli, "train", "--data", str(tiny_dataset), "--hidden", "48", "--layers", "2",
            "--window", "8", "--stride", "1", "--epochs", "25", "--patience", "25", "--threads", "1",
            "--mode", "windows", "--transpose", "0",
            "--runs", str(tmp_path)]
    subprocess.run(args + ["--name", "full"], check=True, capture_output=True)
    proc = subprocess.Popen(args + ["--name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # metrics.csv may not even exist yet: the checkpoint is written first and is what resume reads
    assert load_checkpoint(tmp_path / "killed", "last").epoch < 25, "the kill came too late to test anything"
    subprocess.run(args[:3] + ["--runs", str(tmp_path), "--name", "killed", "--resume", "--threads", "1"],
                   check=True, capture_output=True)
    pd.testing.assert_frame_equal(metrics(tmp_path / "full"), metrics(tmp_path / "killed"))


def test_generate_never_overwrites_samples_drawn_with_other_options(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    a = generate(run, GenerateConfig(count=2, length=5))
    assert generate(run, GenerateConfig(count=2, length=5)).folder == a.folder  # same options: same place
    b = generate(run, GenerateConfig(count=3, length=7))
    assert str(b.folder) == str(a.folder) + "-2"
    assert len(json.loads((tmp_path / "run/samples/t1-s0/samples.json").read_text())["samples"]) == 2
    assert len(generate(run, GenerateConfig(count=2)).samples[0]) == 300  # note models: 300 by default


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


def test_full_context_scores_the_same_targets_as_the_windows():
    from pipeline.models.feeding import make_windows
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


def test_tbptt_run_reports_both_measures_and_keeps_the_best_full_context_epoch(tiny_dataset, tmp_path):
    run = tmp_path / "t"
    s = train(tiny_train_config(tiny_dataset, epochs=4, lr=0.02), run)
    m = pd.read_csv(run / "metrics.csv")
    for col in ("val_loss", "val_acc", "val_full_loss", "val_full_acc"):
        assert col in m and m[col].notna().all(), col
    best = m.loc[m["val_full_loss"].idxmin()]
    assert s.best_epoch == best["epoch"] and s.val_full_loss == pytest.approx(best["val_full_loss"])
    assert s.val_loss == pytest.approx(best["val_loss"])
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["mode"] == "tbptt" and cfg["selection_metric"] == "val_full_loss" and cfg["val_window"] == 8
    assert load_checkpoint(run, "best").epoch == s.best_epoch
    w = train(tiny_train_config(tiny_dataset, epochs=2, mode="windows"), tmp_path / "w")
    mw = pd.read_csv(tmp_path / "w" / "metrics.csv")
    assert w.best_epoch == mw.loc[mw["val_loss"].idxmin(), "epoch"] and w.val_full_loss is not None


def test_regression_reports_full_context_mae(tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, encoding="pitch", task="regress", epochs=1), tmp_path / "reg")
    assert s.val_full_mae > 0 and s.val_mae > 0


def test_runs_written_before_tbptt_read_as_windows_runs():
    from pipeline.store.rundir import canonical_config, selection_metric
    old = {k: v for k, v in TrainConfig(mode="windows", transpose=0, stack="plain").to_dict().items()
           if k not in ("mode", "weight_decay", "transpose", "stack")}
    assert TrainConfig.from_dict(old).mode == "windows" and TrainConfig.from_dict(old).transpose == 0
    assert TrainConfig.from_dict(old).stack == "plain" and TrainConfig().stack == "residual"
    assert canonical_config(old) == canonical_config(TrainConfig(mode="windows", transpose=0, stack="plain"))
    assert selection_metric(old) == "val_loss" and selection_metric(TrainConfig()) == "val_full_loss"
    assert TrainConfig().mode == "tbptt" and TrainConfig().transpose == 6


def test_chars_defaults_apply_only_to_options_not_given():
    from pipeline.codecs import get_codec
    from pipeline.store.rundir import with_encoding_defaults
    chars = get_codec("chars").train_defaults
    cfg = with_encoding_defaults(TrainConfig(encoding="chars", seed=3), {"encoding", "seed"})
    for k, v in chars.items():
        assert getattr(cfg, k) == v, k
    if chars:
        key = next(iter(chars))
        mine = with_encoding_defaults(TrainConfig(encoding="chars"), {"encoding", key})
        assert getattr(mine, key) == getattr(TrainConfig(), key)
    assert with_encoding_defaults(TrainConfig(encoding="names"), set()) == TrainConfig(encoding="names")


def test_one_piece_dataset_transposes_its_training_head_only(tiny_midi_dir, tmp_path):
    from pipeline.store.dataset import load_dataset
    from pipeline.stages.extract import ExtractConfig, extract
    from pipeline.models.augment import augment_transpositions
    extract([tiny_midi_dir / "piece1.mid"], ExtractConfig(name="one", out=str(tmp_path / "p"), workers=1))
    ds = load_dataset(tmp_path / "p" / "one", "pitch")
    aug = augment_transpositions(ds, 2)
    (piece,) = ds.split["train"]
    head, tail = ds.side_sequences("train")[piece], ds.side_sequences("validation")[piece + ":tail"]
    assert aug.side_sequences("validation") == {piece + ":tail": tail}
    assert aug.side_sequences("train")[piece] == head and len(aug.split["train"]) == 5
    assert all(len(s) == len(head) for s in aug.side_sequences("train").values())
    s = train(tiny_train_config(tmp_path / "p" / "one", encoding="pitch", transpose=2, epochs=1, window=4,
                                batch=4), tmp_path / "r")
    assert s.epochs == 1


def test_time_budget_cuts_the_epoch_under_way_short(tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, epochs=50, max_minutes=1e-6), tmp_path / "b")
    m = pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert s.stopped == "budget" and s.epochs == 1 and m["steps"].tolist() == [1]
    assert json.loads((tmp_path / "b" / "status.json").read_text())["finished"]


def test_a_samples_folder_renders_from_any_working_directory(tiny_dataset, tmp_path, monkeypatch):
    """samples.json stores its run relative to itself: a moved project, or another cwd, still renders."""
    import shutil
    project = tmp_path / "project"
    train(tiny_train_config(tiny_dataset, epochs=1), project / "runs" / "r")
    monkeypatch.chdir(project)
    folder = generate(Path("runs/r"), GenerateConfig(count=2, length=10)).folder  # drawn with a relative path
    assert not Path(json.loads((folder / "samples.json").read_text())["run"]).is_absolute()
    moved = tmp_path / "moved"
    shutil.move(str(project), str(moved))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = render_samples(moved / "runs" / "r" / "samples" / folder.name, RenderConfig(audio="none", piano_roll=False))
    assert [f["midi"] for f in out.files] == ["sample_000.mid", "sample_001.mid"]
    assert (moved / "runs" / "r" / "samples" / folder.name / "render.json").exists()


def test_report_shows_both_measures_at_each_runs_best_epoch(tiny_dataset, tmp_path):
    from pipeline.stages.report import write_report
    folder = tmp_path / "runs"
    a = train(tiny_train_config(tiny_dataset, epochs=2), folder / "a")
    b = train(tiny_train_config(tiny_dataset, epochs=2, mode="windows", hidden=8), folder / "b")
    res = write_report(folder)
    t = res["table"].set_index("run")
    for name, s in (("a", a), ("b", b)):
        assert t.loc[name, "val_full_loss"] == pytest.approx(s.val_full_loss)
        assert t.loc[name, "val_loss"] == pytest.approx(s.val_loss) and t.loc[name, "best_epoch"] == s.best_epoch
    assert list(res["table"]["val_full_loss"]) == sorted(res["table"]["val_full_loss"])
    assert "val_full_acc" in (folder / "summary.md").read_text()
