"""Training (resume, determinism, tasks), sampling and rendering."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_train_config
from pipeline.errors import ConfigError, RunError
from pipeline.generate import GenerateConfig, generate, sample_refeed
from pipeline.model import ModelConfig, SequenceModel
from pipeline.render import RenderConfig, render_samples
from pipeline.rundir import TrainConfig, load_checkpoint
from pipeline.train import make_windows, train, transpositions

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


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_killed_run_resumes_to_the_same_end(tiny_dataset, tmp_path, cell):
    cfg = tiny_train_config(tiny_dataset, cell=cell, epochs=4, dropout=0.3, layers=2)
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
    s = train(tiny_train_config(tiny_dataset, targets="last", stride=1, epochs=1, optimizer="adagrad"), tmp_path / "l")
    assert s.epochs == 1


@pytest.mark.parametrize("cell,embed", [("lstm", 5), ("gru", 0), ("rnn", 5)])
def test_stateful_sampling_equals_full_refeed(cell, embed):
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=11, cell=cell, layers=2, hidden=12, embed=embed))
    primer = torch.randint(0, 11, (3, 6))
    g = torch.Generator().manual_seed(0)
    greedy = model.generate(primer, 15, 0.0, g)
    # greedy re-feeding the whole history (window larger than the sequence) must agree exactly
    refeed = sample_refeed(model, primer, 15, 1e-9, torch.Generator().manual_seed(0), window=100)
    assert greedy == refeed


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
    from pipeline.midi_io import midi_file_to_notes
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
    from pipeline.encodings import transpose_tokens
    from pipeline.dataset import load_dataset
    assert transpose_tokens(["C4.E4", "G4"], "names", 2) == ["D4.F#4", "A4"]
    assert transpose_tokens(["127"], "pitch", 1) is None
    ds = load_dataset(tiny_dataset, "names")
    keys = transpositions(ds, 2)
    assert len(keys.views) == 5 * len(ds.split["train"])
    assert keys.vocab.tokens[:len(ds.vocab)] == ds.vocab.tokens  # old ids keep their meaning
    run = tmp_path / "t"
    train(tiny_train_config(tiny_dataset, transpose=2, epochs=1), run)
    assert json.loads((run / "config.json").read_text())["vocab_size"] == len(keys.vocab)
    out = generate(run, GenerateConfig(count=1, length=5))
    assert len(out.samples[0]) == 5
    with pytest.raises(ConfigError):
        tiny_train_config(tiny_dataset, transpose=2, encoding="chars").validate()


def test_transpositions_read_the_stored_pieces_in_every_key(tiny_dataset):
    """The id maps give exactly the pieces moved token by token, and windows that never copy the corpus."""
    from pipeline.dataset import Dataset, load_dataset
    from pipeline.encodings import Vocabulary, transpose_tokens
    ds = load_dataset(tiny_dataset, "names")
    keys = transpositions(ds, 3)
    want, new = {}, []
    for p in ds.pieces("train"):  # the reference: every piece moved as strings, new tokens numbered as met
        for k in range(-3, 4):
            moved = transpose_tokens(ds.sequences[p], "names", k)
            if moved is not None:
                want[p if k == 0 else f"{p}@{k:+d}"] = moved
                new += [t for t in moved if t not in ds.vocab.index]
    assert keys.vocab.tokens == ds.vocab.tokens + sorted(set(new), key=new.index)
    stored = ds.piece_arrays("train")
    assert {n: keys.vocab.decode(a) for n, a in zip(keys.names, keys.arrays(stored))} == want
    windows, copied = make_windows(stored, 8, 3, keys), make_windows(keys.arrays(stored), 8, 3)
    assert len(windows.tokens) == sum(map(len, stored)) and len(copied.tokens) == 7 * len(windows.tokens)
    for a, b in zip(windows.arrays(), copied.arrays()):
        np.testing.assert_array_equal(a, b)
    # a key that would push a pitch past 127 (or below 0) is left out for that piece only
    pitch = Dataset(tiny_dataset, "pitch", {"a": ["60", "127"], "b": ["0", "64"], "c": ["5", "6"], "v": ["60"]},
                    Vocabulary([str(p) for p in range(128)]), {"train": ["a", "b", "c"], "validation": ["v"]}, {})
    assert transpositions(pitch, 1).names == ["a", "b", "c", "a@-1", "b@+1", "c@-1", "c@+1"]


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
