"""Devices: --device on every command, checkpoints that move between devices, GPU shares in a grid.

These run on the CPU; the tests of an absent device are skipped where CUDA is present.
"""
import contextlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli import main
from conftest import tiny_train_config
from pipeline.core.errors import ConfigError
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.grid import gpu_share, local_gpus, spread_over_gpus
from pipeline.models.network import ModelConfig, SequenceModel, resolve_device
from pipeline.store.rundir import TrainConfig, load_checkpoint
from pipeline.stages.train import train

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message for an absent GPU")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained GRU (its dataset beside it)."""
    from conftest import tiny_run

    return tiny_run(tmp_path_factory.mktemp("devices"))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(ConfigError, match="one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


@no_cuda
def test_an_absent_device_is_one_line_through_every_command(run, tmp_path, monkeypatch):
    """--device cuda on a machine without CUDA: one line, exit 1, nothing written."""
    monkeypatch.chdir(tmp_path)
    data = TrainConfig.from_dict(__import__("json").loads((run / "config.json").read_text())).dataset
    before = sorted(p.name for p in run.iterdir())
    commands = {
        "train": ["train", "--data", data, "--name", "gpu", "--epochs", "1"],
        "generate": ["generate", "--run", str(run), "--count", "1", "--length", "5"],
        "heatmap": ["heatmap", "--run", str(run), "--text", "C4 D4 E4"],
        "compare": ["compare", str(run), "--count", "1", "--length", "5", "--out", "page"],
        "grid": ["grid", "--data", data, "--hidden", "8,16", "--epochs", "1", "--name", "g"],
        "render": ["render", "--run", str(run)],  # no samples yet: it samples first (and says so first)
    }
    for name, args in commands.items():
        res = CliRunner().invoke(main, args + ["--device", "cuda"])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 + (name == "render") and "Traceback" not in res.output, \
            (name, res.output)
        assert lines[-1].startswith("Error: --device cuda:") and "no CUDA GPU" in lines[-1] and "--device cpu" in lines[-1]
    assert sorted(p.name for p in run.iterdir()) == before  # no samples, no heatmaps
    assert not any(tmp_path.iterdir())  # no run, page or grid folder


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
def test_a_checkpoint_written_on_a_gpu_resumes_and_samples_here(run, tmp_path):
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


def test_sampling_on_an_explicit_device_matches_auto(run, tmp_path):
    if resolve_device("auto").type != "cpu":
        pytest.skip("auto is an accelerator here: another random stream")
    a = generate(run, GenerateConfig(count=3, length=20, seed=4), tmp_path / "a", device="cpu")
    b = generate(run, GenerateConfig(count=3, length=20, seed=4), tmp_path / "b", device="auto")
    assert a.samples == b.samples


def test_heatmap_records_on_the_requested_device(run, tmp_path):
    from pipeline.stages.heatmap import HeatmapConfig, heatmap
    res = heatmap(run, HeatmapConfig(length=30), tmp_path / "h", device="cpu")
    assert res["tokens"] > 30 and res["pictures"]


def test_grid_gpu_shares():
    # local executor: runs that may use a GPU are dealt round robin; explicit devices are kept
    assert spread_over_gpus(["auto", "cuda", "cpu", "auto", "cuda:1", "auto"], 2) == \
        ["cuda:0", "cuda:1", "cpu", "cuda:0", "cuda:1", "cuda:1"]
    assert spread_over_gpus(["auto", "cuda"], 0) == ["auto", "cuda"]
    # Ray: the share of a GPU each task asks for
    assert gpu_share(4, 1) == 0.25 and gpu_share(2, 4) == 1.0 and gpu_share(6, 4) == 0.5
    assert gpu_share(0, 1) == 0.25  # no --workers limit: RUNS_PER_GPU runs to a GPU
    assert local_gpus([TrainConfig(device="cpu")]) == 0


@no_cuda
def test_grid_refuses_cuda_without_a_gpu():
    assert local_gpus([TrainConfig(device="auto")]) == 0
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        local_gpus([TrainConfig(device="cpu"), TrainConfig(device="cuda")])


def test_sampled_frequencies_follow_the_softmax_at_the_temperature():
    """The inverse-CDF sampler draws each token with its softmax probability at temperature T."""
    model = SequenceModel(ModelConfig(vocab_size=5, cell="gru", layers=1, hidden=4, embed=3, dropout=0.0))
    logits = torch.tensor([0.0, 1.0, 2.0, -1e4, 0.5])  # token 3 is (numerically) impossible
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(logits)
    for t in (1.0, 0.5):
        ids = model.generate(torch.zeros(200, 1, dtype=torch.long), 100, t, torch.Generator().manual_seed(1))
        counts = torch.bincount(torch.tensor(ids).flatten(), minlength=5).double()
        want = torch.softmax(logits.double() / t, 0)
        assert counts[3] == 0
        assert torch.allclose(counts / counts.sum(), want, atol=0.01), (counts / counts.sum(), want)


def test_same_seed_same_samples_and_batches_are_independent_draws():
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=9, cell="lstm", layers=2, hidden=8, embed=4))
    primer = torch.randint(0, 9, (4, 3))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a, b = model.generate(primer, 70, 1.0, g(3)), model.generate(primer, 70, 1.0, g(3))
    assert a == b and model.generate(primer, 70, 1.0, g(4)) != a
    assert len({tuple(r) for r in a}) == 4  # one primer, four different continuations
    assert all(len(r) == 70 for r in a)  # 70: not a multiple of the 32-step chunks


def test_regression_sampling_takes_the_nearest_pitch_plus_noise():
    model = SequenceModel(ModelConfig(vocab_size=128, cell="gru", layers=1, hidden=4, embed=3, task="regress"))
    model.set_vocabulary([str(p) for p in range(128)])
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_((64.4 - 60) / 12)  # always predicts pitch 64.4
    primer = torch.zeros(3, 2, dtype=torch.long)
    assert model.generate(primer, 5, 0.0) == [[64] * 5] * 3  # no noise: the nearest pitch
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noisy = model.generate(primer, 300, 1.0, g(), noise=2.0)
    flat = torch.tensor(noisy, dtype=torch.float64)
    assert abs(flat.mean() - 64.4) < 0.3 and 1.6 < flat.std() < 2.4  # N(64.4, 2) rounded to a pitch
    assert noisy == model.generate(primer, 300, 1.0, g(), noise=2.0)
