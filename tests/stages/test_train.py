"""The train stage: run folders, resume, determinism, tasks, budgets, init-from."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from pipeline.core.errors import ConfigError, RunError
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.train import train
from pipeline.store.rundir import TrainConfig, load_checkpoint

METRIC_COLS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def metrics(run):
    return pd.read_csv(run / "metrics.csv")[METRIC_COLS]


def test_run_folder_contents(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "runs" / "r"
    summary = train(tiny_train_config(tiny_dataset, cell="lstm", layers=2), run)
    for f in ("config.json", "metrics.csv", "best.pt", "last.pt", "curves.png", "timing.json"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["cell"] == "lstm" and cfg["layers"] == 2 and cfg["parameters"] == summary.parameters
    assert TrainConfig.from_dict(cfg) == tiny_train_config(tiny_dataset, cell="lstm", layers=2)
    assert len(metrics(run)) == 3


def test_same_seed_same_metrics(tiny_train_config, tiny_dataset, tmp_path):
    train(tiny_train_config(tiny_dataset), tmp_path / "a")
    train(tiny_train_config(tiny_dataset), tmp_path / "b")
    pd.testing.assert_frame_equal(metrics(tmp_path / "a"), metrics(tmp_path / "b"))


@pytest.mark.parametrize("cell,mode,decay,noise", [("rnn", "windows", 1.0, 0.3), ("gru", "tbptt", 0.5, 0.0),
                                                   ("lstm", "tbptt", 1.0, 0.2)])
def test_killed_run_resumes_to_the_same_end(tiny_train_config, tiny_dataset, tmp_path, cell, mode, decay, noise):
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


def test_existing_run_is_never_overwritten(tiny_train_config, tiny_dataset, tmp_path):
    train(tiny_train_config(tiny_dataset, epochs=1), tmp_path / "r")
    with pytest.raises(RunError, match="--resume"):
        train(tiny_train_config(tiny_dataset, epochs=1), tmp_path / "r")
    with pytest.raises(RunError):
        train(tiny_train_config(tiny_dataset), tmp_path / "none", resume=True)


def test_regression_task(tiny_train_config, tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, encoding="pitch", task="regress"), tmp_path / "reg")
    assert s.val_mae > 0 and 0 <= s.val_acc <= 1
    out = generate(tmp_path / "reg", GenerateConfig(count=2, length=20))
    assert all(0 <= int(t) <= 127 for smp in out.samples for t in smp)
    with pytest.raises(ConfigError, match="pitch"):
        tiny_train_config(tiny_dataset, task="regress").validate()


def test_early_stopping(tiny_train_config, tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, epochs=50, patience=1, lr=0.5, optimizer="rmsprop"), tmp_path / "es")
    assert s.epochs < 50


def test_targets_last_stride_one(tiny_train_config, tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, mode="windows", targets="last", stride=1, epochs=1,
                                optimizer="adagrad"), tmp_path / "l")
    assert s.epochs == 1
    with pytest.raises(ConfigError, match="--mode windows"):
        tiny_train_config(tiny_dataset, targets="last").validate()


def test_killed_before_first_checkpoint_starts_again(tiny_train_config, tiny_dataset, tmp_path):
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


@pytest.mark.slow
def test_sigkilled_cli_training_resumes_to_the_same_end(tiny_dataset, tmp_path):
    """A real kill -9 in the middle of training, then `train --resume`."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    cli = str(Path(__file__).resolve().parents[2] / "cli.py")
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


def test_tbptt_run_reports_both_measures_and_keeps_the_best_full_context_epoch(tiny_train_config, tiny_dataset,
                                                                              tmp_path):
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


def test_regression_reports_full_context_mae(tiny_train_config, tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, encoding="pitch", task="regress", epochs=1), tmp_path / "reg")
    assert s.val_full_mae > 0 and s.val_mae > 0


def test_time_budget_cuts_the_epoch_under_way_short(tiny_train_config, tiny_dataset, tmp_path):
    s = train(tiny_train_config(tiny_dataset, epochs=50, max_minutes=1e-6), tmp_path / "b")
    m = pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert s.stopped == "budget" and s.epochs == 1 and m["steps"].tolist() == [1]
    assert json.loads((tmp_path / "b" / "status.json").read_text())["finished"]


# ------------------------------------------------------------------ devices

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message for an absent GPU")


@contextlib.contextmanager
def saved_as_if_on_a_gpu():
    """torch.save tags every CPU tensor as stored on cuda:0, as a checkpoint written on a GPU machine is."""
    saved_as_if_on_a_gpu.active = True
    try:
        yield
    finally:
        saved_as_if_on_a_gpu.active = False


saved_as_if_on_a_gpu.active = False
torch.serialization.register_package(
    1, lambda obj: "cuda:0" if saved_as_if_on_a_gpu.active and obj.device.type == "cpu" else None,
    lambda obj, location: None)


@no_cuda
def test_a_checkpoint_written_on_a_gpu_resumes_and_samples_here(tiny_train_config, run, tmp_path):
    config = tiny_train_config(Path(TrainConfig.from_dict(
        __import__("json").loads((run / "config.json").read_text())).dataset), epochs=3, dropout=0.3, layers=2)
    def stop_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
    with saved_as_if_on_a_gpu(), pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "gpu", on_epoch=stop_after_two)
    with pytest.raises(RuntimeError, match="CUDA"):  # really tagged for a GPU: torch.load alone refuses it
        torch.load(tmp_path / "gpu" / "last.pt", weights_only=True)
    resumed = train(config, tmp_path / "gpu", resume=True)  # model and optimizer state mapped to the CPU
    straight = train(config, tmp_path / "cpu")
    assert resumed.epochs == 3 and resumed.val_loss == straight.val_loss
    assert load_checkpoint(tmp_path / "gpu", "best").model["head.weight"].device.type == "cpu"
    assert len(generate(tmp_path / "gpu", GenerateConfig(count=2, length=4), device="cpu").samples) == 2


def test_init_from_starts_from_another_runs_weights_and_says_so(roll_file, tiny_run, tmp_path):
    import torch

    import cli
    from pipeline.models.network import model_from_checkpoint
    from pipeline.store.rundir import load_checkpoint, read_run_config

    base = tiny_run(tmp_path / "base", encoding="frames", window=10, hidden=12)
    other = tmp_path / "other"
    src = roll_file(tmp_path / "mine.json", {"train": 3, "valid": 1})
    extract([src], ExtractConfig(name="mine", out=str(other / "processed"), workers=1))
    r = CliRunner().invoke(cli.main, ["train", "--data", str(other / "processed" / "mine"), "--encoding", "frames",
                                      "--init-from", str(base), "--epochs", "1", "--window", "10", "--batch", "2",
                                      "--runs", str(other / "runs"), "--name", "tuned"])
    assert r.exit_code == 0, r.output
    tuned = other / "runs" / "tuned"
    config = read_run_config(tuned)
    assert config["init_from"] == str(base.resolve()) and config["hidden"] == 12  # the base's width, not asked for
    # a resume and an evaluate still work from the run folder alone
    r = CliRunner().invoke(cli.main, ["train", "--runs", str(other / "runs"), "--name", "tuned", "--resume",
                                      "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tuned, "last").epoch == 2
    # a names run cannot start from a frames run: one line
    r = CliRunner().invoke(cli.main, ["train", "--data", str(tmp_path / "base" / "processed" / "tiny"),
                                      "--encoding", "names", "--init-from", str(base), "--epochs", "1", "--runs", str(other / "runs"),
                                      "--name", "bad"])
    assert r.exit_code != 0 and "vocabulary" in r.output and "Traceback" not in r.output
    assert isinstance(model_from_checkpoint(load_checkpoint(tuned)), torch.nn.Module)
