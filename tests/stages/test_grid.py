"""Grids: expansion, stable run ids, parallel training, resume, failures, report, Ray, CLI."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from cli import main
from pipeline.core.errors import ConfigError
from pipeline.core.fsutil import write_marker
from pipeline.stages.grid import GridConfig, expand_grid, gpu_share, local_gpus, run_grid, run_id, spread_over_gpus
from pipeline.stages.report import collect_runs, summary_table, write_report
from pipeline.stages.train import train
from pipeline.store.rundir import TrainConfig, canonical_config

ROOT = Path(__file__).resolve().parents[2]

TINY = dict(layers=[1], embed=[8], window=[8], stride=[4], batch=[16], epochs=[2], patience=[10],
            threads=[1], seed=[1])


@pytest.fixture(scope="module")
def dataset(write_pm, tmp_path_factory) -> Path:
    """Four pieces of 60 random-ish notes, extracted into processed/tiny."""
    from pipeline.stages.extract import ExtractConfig, extract

    tmp = tmp_path_factory.mktemp("grid-data")
    rng = np.random.default_rng(7)
    paths = []
    for k in range(4):
        pitches = 60 + np.cumsum(rng.integers(-3, 4, 60)).clip(-12, 12)
        paths.append(write_pm(tmp / "midi" / f"piece{k}.mid",
                              [(int(p), 0.5 * i, 0.5 * i + 0.4) for i, p in enumerate(pitches)]))
    extract(paths, ExtractConfig(name="tiny", out=str(tmp / "processed"), workers=1))
    return tmp / "processed" / "tiny"


def tiny_values(dataset, **kw):
    return {"dataset": [str(dataset)], **TINY, **kw}


@pytest.fixture(scope="module")
def grid2x2(dataset, tmp_path_factory):
    """The 2×2 grid (rnn, gru × hidden 8, 16; 2 epochs) on two local worker processes."""
    configs, skipped = expand_grid(tiny_values(dataset, cell=["rnn", "gru"], hidden=[8, 16]))
    grid = GridConfig(name="g", runs=str(tmp_path_factory.mktemp("runs")), workers=2)
    return configs, grid, run_grid(configs, grid)


# ------------------------------------------------------------------ configurations

def test_expand_grid_is_the_product_and_skips_invalid_combinations(dataset):
    configs, skipped = expand_grid(tiny_values(dataset, cell=["rnn", "lstm", "gru"], layers=[1, 2],
                                               hidden=[8, 8, 16]))
    assert len(configs) == 12 and not skipped  # the repeated 8 is one configuration
    assert len({run_id(c) for c in configs}) == 12
    assert [run_id(c).rsplit("-", 1)[0] for c in configs[:2]] == ["rnn-1x8", "rnn-1x16"]
    configs, skipped = expand_grid(tiny_values(dataset, encoding=["names", "pitch"], task=["classify", "regress"]))
    assert len(configs) == 3 and len(skipped) == 1 and "pitch" in skipped[0]["reason"]
    assert run_id(configs[-1]).startswith("gru-1x128-pitch-regress-")
    with pytest.raises(ConfigError, match="no valid combination"):
        expand_grid(tiny_values(dataset, task=["regress"]))
    with pytest.raises(ConfigError, match="colour"):
        expand_grid({"colour": ["red"]})


def test_run_id_ignores_threads_and_number_spelling():
    a = TrainConfig(dropout=0, lr=1, dataset="processed/x/", threads=1)
    b = TrainConfig(dropout=0.0, lr=1.0, dataset="processed/x", threads=4)
    assert run_id(a) == run_id(b) and canonical_config(a) == canonical_config(b)
    assert run_id(TrainConfig(seed=1)) != run_id(TrainConfig(seed=2))


@pytest.mark.slow
def test_run_ids_are_equal_across_processes():
    configs = [TrainConfig(cell=c, layers=n, hidden=h, dropout=0.1) for c in ("rnn", "gru") for n in (1, 4)
               for h in (64, 128)]
    code = ("import json; from pipeline.stages.grid import run_id; from pipeline.store.rundir import TrainConfig; "
            f"print(json.dumps([run_id(TrainConfig(**d)) for d in {[c.__dict__ for c in configs]!r}]))")
    theirs = set()
    for seed in ("1", "2"):  # str hashes differ between these processes; the ids must not
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        theirs.add(tuple(json.loads(out)))
    assert theirs == {tuple(run_id(c) for c in configs)}


# ------------------------------------------------------------------ running

@pytest.mark.slow
def test_grid_trains_every_configuration_and_summarises(grid2x2):
    configs, grid, res = grid2x2
    assert res["counts"] == {"trained": 4, "resumed": 0, "restarted": 0, "skipped": 0, "failed": 0}
    table = res["table"]
    assert sorted(table["run"]) == sorted(run_id(c) for c in configs)
    assert list(table["status"]) == ["finished"] * 4 and list(table["epochs_run"]) == [2] * 4
    assert table["val_loss"].is_monotonic_increasing
    for col in ("cell", "layers", "hidden", "parameters", "val_acc", "best_epoch", "sec_per_epoch", "seconds"):
        assert table[col].notna().all(), col
    folder = Path(res["folder"])
    for f in ("grid.json", "summary.csv", "summary.md", "curves_rnn.png", "curves_gru.png", "loss_vs_params.png"):
        assert (folder / f).stat().st_size > 0, f
    saved = json.loads((folder / "grid.json").read_text())
    assert GridConfig(**saved["grid"]) == grid
    listed = saved["runs"]
    assert {e["id"] for e in listed} == set(table["run"]) and {e["status"] for e in listed} == {"finished"}
    for rid in table["run"]:  # each run is an ordinary, self-describing run folder
        assert TrainConfig.from_dict(json.loads((folder / rid / "config.json").read_text())).cell in rid
    csv = pd.read_csv(folder / "summary.csv")
    assert list(csv["run"]) == list(table["run"]) and "|" in (folder / "summary.md").read_text()


@pytest.mark.slow
def test_second_invocation_trains_nothing(grid2x2):
    configs, grid, first = grid2x2
    folder = Path(first["folder"])
    mtimes = {p: p.stat().st_mtime_ns for p in folder.glob("*/last.pt")}
    again = run_grid(configs, grid)
    assert again["counts"]["skipped"] == 4 and again["counts"]["trained"] == again["counts"]["resumed"] == 0
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/last.pt")} == mtimes
    pd.testing.assert_frame_equal(again["table"].drop(columns="seconds"), first["table"].drop(columns="seconds"))


@pytest.mark.slow
def test_killed_and_stale_runs_are_resumed_or_restarted(dataset, tmp_path):
    configs, _ = expand_grid(tiny_values(dataset, cell=["rnn", "gru"], hidden=[8], epochs=[3]))
    grid = GridConfig(name="k", runs=str(tmp_path), workers=1)
    killed, stale = (tmp_path / "k" / run_id(c) for c in configs)

    def kill_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(configs[0], killed, on_epoch=kill_after_one)
    first_epoch = pd.read_csv(killed / "metrics.csv")
    stale.mkdir(parents=True)  # killed during its first epoch: config.json but no last.pt
    write_marker(stale, "run")  # as train marks a run folder before its config.json
    (stale / "config.json").write_text(json.dumps({**configs[1].__dict__, "parameters": 1}))
    write_marker(tmp_path / "k", "grid")  # these runs were trained by hand into a grid's folder
    res = run_grid(configs, grid)
    assert res["counts"] == {"trained": 0, "resumed": 1, "restarted": 1, "skipped": 0, "failed": 0}
    assert list(res["table"]["epochs_run"]) == [3, 3] and set(res["table"]["status"]) == {"finished"}
    pd.testing.assert_frame_equal(pd.read_csv(killed / "metrics.csv").head(1), first_epoch)


@pytest.mark.slow
def test_a_failing_run_does_not_stop_the_others(dataset, tmp_path):
    configs, _ = expand_grid(tiny_values(dataset, cell=["rnn"], hidden=[8], window=[8, 500], epochs=[1],
                                         mode=["windows"]))
    res = run_grid(configs, GridConfig(name="f", runs=str(tmp_path), workers=2))
    assert res["counts"]["failed"] == 1 and res["counts"]["trained"] == 1
    failed = res["table"][res["table"]["status"] == "failed"].iloc[0]
    assert failed["window"] == 500 and "no training window" in failed["error"]
    # the report reads the failure back from grid.json at any later time
    assert write_report(tmp_path / "f")["table"].set_index("run").loc[failed["run"], "status"] == "failed"


def test_report_of_a_run_in_progress(dataset, tmp_path):
    config = expand_grid(tiny_values(dataset, epochs=[3]))[0][0]

    def stop(row):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "loose" / "one", on_epoch=stop)
    table = summary_table(collect_runs(tmp_path / "loose"))  # a plain folder of runs, no grid.json
    assert table.loc[0, "status"] == "incomplete" and table.loc[0, "epochs_run"] == 1


@pytest.mark.slow
def test_ray_executor_gives_the_same_table(grid2x2, tmp_path):
    pytest.importorskip("ray")
    configs, grid, local = grid2x2
    res = run_grid(configs, GridConfig(name="g", runs=str(tmp_path), executor="ray", workers=2))
    assert res["counts"]["trained"] == 4 and res["counts"]["failed"] == 0
    a, b = local["table"].set_index("run"), res["table"].set_index("run")
    assert sorted(a.index) == sorted(b.index)
    np.testing.assert_allclose(b.loc[a.index, "val_loss"], a["val_loss"], rtol=0, atol=1e-6)
    assert (b.loc[a.index, "val_acc"] == a["val_acc"]).all()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2):
    """A real Ray cluster on this machine (`ray start --head`), stopped however the test ends.

    Its address file and sockets live in its own temporary folder (not /tmp/ray), so no
    other Ray user on the machine finds or connects to it; it is stopped by ending the
    `ray start --block` process and its process group, never with `ray stop`, which
    would also stop every other Ray instance on the machine. Token authentication is
    off for this loopback-only cluster and its one client.
    """
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.skip("the `ray` command is not installed")
    port, *more = free_ports(5)
    # under /tmp with a short name: Ray's socket paths must stay under 108 characters
    temp = tempfile.mkdtemp(prefix="musicrnn-ray-")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    cmd = [ray, "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
           "--disable-usage-stats", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
           f"--dashboard-agent-listen-port={more[0]}", f"--dashboard-agent-grpc-port={more[1]}",
           f"--runtime-env-agent-port={more[2]}", f"--metrics-export-port={more[3]}", f"--temp-dir={temp}"]
    log = open(Path(temp) / "ray-start.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (Path(temp) / "ray_current_cluster").exists():  # written once the head node is up
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ray start failed: " + (Path(temp) / "ray-start.log").read_text()[-2000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        proc.terminate()  # ray start --block stops its cluster on SIGTERM
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group outlived it
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow  # about 45 s: a cluster start, two trainings and a stop
def test_grid_on_a_real_ray_cluster_matches_the_local_executor(dataset, tmp_path):
    """`ray start --head`, then `cli.py grid --executor ray --address`: the same runs, ids and results.

    The grid runs in another folder than the dataset and is given a relative dataset
    path: the paths it hands to the cluster are absolute.
    """
    pytest.importorskip("ray")
    work = tmp_path / "here"
    work.mkdir()
    rel = os.path.relpath(dataset, work)
    args = ["grid", "--cell", "rnn,gru", "--layers", "1", "--hidden", "8", "--embed", "8", "--window", "8",
            "--stride", "4", "--batch", "16", "--epochs", "2", "--threads", "1", "--seed", "1", "--name", "g"]
    local = CliRunner().invoke(main, args + ["--data", str(dataset), "--runs", str(tmp_path / "local"),
                                             "--workers", "2"], catch_exceptions=False)
    assert local.exit_code == 0, local.output
    with ray_cluster() as (address, env):
        res = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--data", rel, "--runs", "runs",
                              "--executor", "ray", "--address", address], cwd=work, capture_output=True, text=True,
                             env={**env, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("grid g: 2 runs (2 trained")
    a = pd.read_csv(tmp_path / "local" / "g" / "summary.csv").set_index("run")
    b = pd.read_csv(work / "runs" / "g" / "summary.csv").set_index("run")
    assert sorted(a.index) == sorted(b.index) == sorted(p.name for p in (work / "runs" / "g").iterdir() if p.is_dir())
    np.testing.assert_allclose(b.loc[a.index, "val_loss"], a["val_loss"], rtol=0, atol=1e-6)
    for rid in a.index:  # every run stores its dataset as an absolute path
        assert json.loads((work / "runs" / "g" / rid / "config.json").read_text())["dataset"] == str(dataset.resolve())


def test_grid_on_an_unreachable_ray_cluster_is_one_line(dataset, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port, = free_ports(1)
    res = CliRunner().invoke(main, ["grid", "--data", str(dataset), "--hidden", "8", "--epochs", "1",
                                    "--executor", "ray", "--address", f"127.0.0.1:{port}", "--name", "x"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.strip().splitlines()[-1].startswith(f"Error: cannot connect to the Ray cluster at 127.0.0.1:{port}")


# ------------------------------------------------------------------ CLI

@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_cli_grid_and_report(runner, dataset):
    args = ["grid", "--data", str(dataset), "--cell", "rnn,gru", "--layers", "1", "--hidden", "8",
            "--embed", "8", "--window", "8", "--epochs", "1", "--threads", "1", "--workers", "1", "--name", "c"]
    res = runner.invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("grid c: 2 runs (2 trained") and "-> runs/c/" in last and "summary.md" in last
    res = runner.invoke(main, ["report", "runs/c"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "summarised 2 runs (2 finished) -> runs/c/" in res.output and res.output.count("| rnn ") == 1
    assert Path("runs/c/summary.csv").exists()


def test_cli_grid_failures_and_errors(runner, dataset, monkeypatch):
    args = ["grid", "--data", str(dataset), "--cell", "rnn", "--layers", "1", "--hidden", "8", "--embed", "8",
            "--window", "8,500", "--mode", "windows", "--epochs", "1", "--threads", "1", "--workers", "1",
            "--name", "bad"]
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "Error: 1 of 2 runs failed" in res.output and "no training window" in res.output.splitlines()[-1]
    res = runner.invoke(main, ["grid", "--data", "processed/none", "--name", "x"])
    assert res.exit_code == 1 and "run `extract` first" in res.output
    res = runner.invoke(main, ["report", "."])
    assert res.exit_code == 1 and "holds no run" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = runner.invoke(main, args[:-2] + ["--name", "r", "--executor", "ray"])
    assert res.exit_code == 1 and "pip install .[ray]" in res.output
    for cmd in ("grid", "report"):
        out = runner.invoke(main, [cmd, "--help"]).output
        assert "Example" in out and f"python cli.py {cmd}" in out


@pytest.mark.slow
def test_a_damaged_run_is_reported_not_overwritten(grid2x2, tmp_path):
    import shutil

    configs, _, first = grid2x2
    rid = run_id(configs[0])
    shutil.copytree(Path(first["folder"]) / rid, tmp_path / "d" / rid)
    (tmp_path / "d" / rid / "last.pt").write_bytes(b"not a checkpoint")
    write_marker(tmp_path / "d", "grid")
    res = run_grid(configs[:1], GridConfig(name="d", runs=str(tmp_path), workers=1))
    assert res["counts"]["failed"] == 1 and "damaged" in res["runs"][rid]["error"]
    assert (tmp_path / "d" / rid / "last.pt").read_bytes() == b"not a checkpoint"
    assert list(res["table"]["status"]) == ["failed"]


@pytest.mark.slow
def test_runs_are_found_by_configuration_not_only_by_name(grid2x2, tmp_path):
    """A run written before an option existed (other hash, no such key) is still skipped."""
    import shutil

    configs, _, first = grid2x2
    old = tmp_path / "o" / "gru-1x8-writtenlong"
    shutil.copytree(Path(first["folder"]) / run_id(configs[2]), old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["clip"]  # as if `clip` had been added to TrainConfig since, with a default that keeps behaviour
    (old / "config.json").write_text(json.dumps(cfg))
    write_marker(tmp_path / "o", "grid")
    res = run_grid(configs[2:3], GridConfig(name="o", runs=str(tmp_path), workers=1))
    assert res["counts"]["skipped"] == 1 and list(res["table"]["run"]) == ["gru-1x8-writtenlong"]


def test_rerun_with_a_relative_dataset_path_skips(dataset, tmp_path, monkeypatch):
    """train stores the dataset as an absolute path; a grid given a relative one must still match."""
    monkeypatch.chdir(dataset.parent)
    values = {**tiny_values(dataset, cell=["rnn"], hidden=[8], epochs=[1]), "dataset": [dataset.name]}
    configs, _ = expand_grid(values)
    grid = GridConfig(name="rel", runs=str(tmp_path), workers=1)
    assert run_grid(configs, grid)["counts"]["trained"] == 1
    again = run_grid(expand_grid(values)[0], grid)
    assert again["counts"]["skipped"] == 1 and again["counts"]["failed"] == 0


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message for an absent GPU")


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
