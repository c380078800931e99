"""Faults found by trying to break the tool: bad inputs, kills, concurrent runs, a full disk, changed data.

One test per fault, on real files; where the fault is about processes, real
processes and real signals (``kill -9``, SIGTERM, Ctrl-C on a terminal).
Each test says what used to happen.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.store.dataset import assign_split, load_dataset, read_manifest
from pipeline.core.errors import ConfigError
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.core.fsutil import MARKER, atomic_dir, clean_stale_temporaries, write_marker
from pipeline.store.rundir import load_checkpoint, read_status

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / "cli.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TINY_TRAIN = ["--layers", "1", "--hidden", "8", "--embed", "4", "--window", "8", "--stride", "4",
              "--batch", "16", "--threads", "1"]


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner, args):
    return runner.invoke(main, [str(a) for a in args])


def ok(runner, args) -> str:
    res = invoke(runner, args)
    assert res.exit_code == 0, res.output
    return res.output


def fails(runner, args, *needles) -> str:
    """The command fails with one clean line (no traceback) holding every needle."""
    res = invoke(runner, args)
    assert res.exit_code != 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    for needle in needles:
        assert needle in res.output, res.output
    return res.output


@pytest.fixture
def songs(write_pm, melody):
    """``songs(folder, n=3, onsets=40)``: n melodies as MIDI files in folder."""
    def write(folder: Path, n: int = 3, onsets: int = 40) -> Path:
        for k in range(n):
            write_pm(folder / f"song{k}.mid", melody(onsets, k))
        return folder
    return write


def cli_process(args, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, CLI, *map(str, args)], cwd=cwd, env=ENV, text=True,
                            stdout=kw.pop("stdout", subprocess.PIPE), stderr=kw.pop("stderr", subprocess.PIPE), **kw)


def wait_for(predicate, timeout: float = 120, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def ended(proc: subprocess.Popen):
    """Whatever happens in the block, the process is gone after it."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def children(pid: int) -> set[int]:
    """Direct children of a live process (Linux /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in task.read_text().split()}
    return out


def alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tiny_run(tiny_train_config, tiny_dataset, tmp_path) -> Path:
    from pipeline.stages.train import train

    run = tmp_path / "runs" / "tiny-run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    return run


# ------------------------------------------------------------------ 1. data loss: extract's output folder

def test_extract_never_deletes_a_folder_it_did_not_write(songs, runner, tmp_path):
    """Was: `extract songs --out .` deleted the user's songs/, `--name .` replaced all of processed/,
    `--name /abs/path` deleted an unrelated file; `--out processed/x/..` lost processed/x on a crash."""
    songs(tmp_path / "songs")
    before = tree(tmp_path / "songs")
    fails(runner, ["extract", "songs", "--out", "."], "would hold or replace the input")
    assert tree(tmp_path / "songs") == before

    ok(runner, ["extract", "songs", "--name", "mine", "--workers", "1"])
    mine = tree(tmp_path / "processed" / "mine")
    fails(runner, ["extract", "songs", "--name", "."], "--name must be a plain folder name")
    fails(runner, ["extract", "songs", "--name", ".."], "--name must be a plain folder name")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    fails(runner, ["extract", "songs", "--name", str(victim)], "--name must be a plain folder name")
    assert victim.read_text() == "keep me" and tree(tmp_path / "processed" / "mine") == mine

    # a folder of the user's under the output name is refused, not replaced
    (tmp_path / "elsewhere" / "notes").mkdir(parents=True)
    (tmp_path / "elsewhere" / "notes" / "diary.txt").write_text("mine")
    fails(runner, ["extract", "songs", "--out", "elsewhere", "--name", "notes"], "was not written by this tool")
    assert (tmp_path / "elsewhere" / "notes" / "diary.txt").read_text() == "mine"

    # `..` in --out: the swap once renamed processed/mine away and then failed, losing it
    out = ok(runner, ["extract", "songs", "--out", "processed/mine/..", "--name", "mine", "--workers", "1"])
    assert "1 files" not in out and (tmp_path / "processed" / "mine" / "manifest.json").exists()
    assert not [p for p in (tmp_path / "processed").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert (tmp_path / "processed" / "mine" / MARKER).exists()


def test_outputs_stay_where_they_belong(songs, runner, tmp_path):
    """Was: `train --name ..` wrote checkpoints, metrics and curves into the folder above runs/ (over
    files of the same name), and an --out or --runs that is a file ended in a FileExistsError traceback."""
    songs(tmp_path / "raw")
    ok(runner, ["extract", "raw", "--workers", "1"])
    (tmp_path / "metrics.csv").write_text("the user's own")
    for name in ("..", "../elsewhere", str(tmp_path / "abs")):
        fails(runner, ["train", "--name", name, "--epochs", "1"], "--name is a run folder under --runs")
    assert (tmp_path / "metrics.csv").read_text() == "the user's own" and not (tmp_path / "elsewhere").exists()
    (tmp_path / "afile").write_text("x")
    fails(runner, ["extract", "raw", "--out", "afile"], "afile is a file, not a folder")
    fails(runner, ["train", "--runs", "afile", "--epochs", "1"], "afile is a file, not a folder")
    fails(runner, ["grid", "--runs", "afile", "--epochs", "1"], "afile is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.slow
def test_compare_out_never_replaces_a_folder_it_did_not_write(runner, tiny_run, tmp_path):
    """compare --out is swapped in whole too: only an earlier comparison page may be replaced."""
    base = ["compare", tiny_run, "--temperature", "1", "--count", "1", "--length", "8"]
    user = tmp_path / "my-page"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    fails(runner, [*base, "--out", user], "not a comparison page")
    fails(runner, [*base, "--out", "."], "not a comparison page")
    fails(runner, [*base, "--out", tiny_run], "not a comparison page")
    assert (user / "notes.txt").read_text() == "mine" and (tiny_run / "best.pt").exists()
    ok(runner, [*base, "--out", "page"])
    ok(runner, [*base, "--out", "page"])  # its own page: replaced
    assert (tmp_path / "page" / "index.html").exists() and (tmp_path / "page" / MARKER).exists()
    # the swap itself refuses the user's folder too, whoever calls it
    with pytest.raises(ConfigError, match="not written by this tool"):
        with atomic_dir(user, "compare"):
            pass


# ------------------------------------------------------------------ 2.-3. resume: changed data, changed options

def test_resume_refuses_a_dataset_that_changed(songs, melody, write_pm, runner, tmp_path):
    """Was: `train --resume` after a re-extract went on training on other pieces, silently."""
    songs(tmp_path / "raw", n=4, onsets=60)
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    for enc in ("pitch", "names"):
        ok(runner, ["train", "--data", "processed/d", "--encoding", enc, "--epochs", "1", "--name", enc, *TINY_TRAIN])
    write_pm(tmp_path / "raw" / "added.mid", melody(60, 9))
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    for enc in ("pitch", "names"):
        out = fails(runner, ["train", "--name", enc, "--resume", "--epochs", "3"],
                    f"cannot resume {enc}: the dataset", "changed since the run began", "the pieces' tokens")
        assert len(out.strip().splitlines()) == 2, out  # "resuming ..." and the one-line refusal
        assert read_status(tmp_path / "runs" / enc).epoch == 1


def test_resume_refuses_options_that_change_the_run_and_extends_epochs(runner, tiny_dataset):
    """Was: `train --resume --hidden 64` quietly continued the 8-unit model; now it says so."""
    ok(runner, ["train", "--data", tiny_dataset, "--epochs", "2", "--name", "r", *TINY_TRAIN])
    fails(runner, ["train", "--name", "r", "--resume", "--hidden", "64", "--lr", "0.01"],
          "these differ from it: --hidden, --lr")
    fails(runner, ["train", "--name", "r", "--resume", "--epochs", "1"], "may only extend a run")
    out = ok(runner, ["train", "--name", "r", "--resume", "--epochs", "3", "--threads", "1"])
    assert out.startswith("resuming runs/r at epoch 3") and "trained 3 epochs" in out


# ------------------------------------------------------------------ 4. an unreadable input

def test_an_unreadable_input_is_reported_and_skipped(songs, melody, write_pm, runner, tmp_path):
    """Was: one unreadable file aborted the whole extract with a PermissionError traceback."""
    raw = songs(tmp_path / "raw")
    expected = {}  # path as reported -> reason
    # root reads any chmod-000 file, but not /proc/self/mem at offset 0 (EIO): a file no one can read
    if Path("/proc/self/mem").exists():
        (raw / "mem.mid").symlink_to("/proc/self/mem")
        expected[str((raw / "mem.mid").resolve())] = "cannot read it"
    locked = raw / "locked.mid"
    write_pm(locked, melody(20, 5))
    locked.chmod(0)
    try:
        open(locked, "rb").close()
    except PermissionError:  # not root
        expected[str(locked.resolve())] = "cannot read it (Permission denied)"
    (raw / "gone.mid").symlink_to(raw / "nowhere.mid")
    expected[str(raw / "gone.mid")] = "a broken link"
    os.mkfifo(raw / "pipe.mid")  # opening it would wait forever for a writer
    expected[str(raw / "pipe.mid")] = "not a regular file"
    try:
        res = invoke(runner, ["extract", raw, "--name", "d", "--workers", "1"])
    finally:
        locked.chmod(0o644)
    assert res.exit_code == 0, res.output
    readable = 3 + (str(locked.resolve()) not in expected)  # root reads the chmod-000 file
    assert f"extracted {readable} files" in res.output and "Traceback" not in res.output
    skipped = {f["path"]: f["reason"] for f in read_manifest(tmp_path / "processed" / "d")["files"]
               if f["status"] == "skipped"}
    for path, reason in expected.items():
        assert reason in skipped[path], skipped
        assert f"skipped {path}: {reason}" in res.output, res.output
    fails(runner, ["extract", raw / "pipe.mid", "--name", "p"], "not a regular file")


# ------------------------------------------------------------------ 5. a diverging run

@pytest.mark.slow
def test_a_diverging_run_stops_at_the_first_bad_epoch_and_keeps_the_best(runner, tiny_dataset, tmp_path):
    """Was: NaN losses trained on to the last epoch and wrote NaN checkpoints; `--lr inf` was accepted."""
    fails(runner, ["train", "--data", tiny_dataset, "--lr", "inf"], "--lr must be a finite number")
    fails(runner, ["train", "--data", tiny_dataset, "--dropout", "nan"], "--dropout must be a finite number")
    fails(runner, ["train", "--data", tiny_dataset, "--encoding", "pitch", "--task", "regress", "--lr", "1e30",
                   "--epochs", "3", "--name", "wild", *TINY_TRAIN],
          "training diverged at epoch 1", "lower --lr")
    assert not (tmp_path / "runs" / "wild" / "best.pt").exists()

    ok(runner, ["train", "--data", tiny_dataset, "--epochs", "2", "--name", "r", *TINY_TRAIN])
    best = (tmp_path / "runs" / "r" / "best.pt").read_bytes()
    # weights gone to NaN (a bad step, a damaged checkpoint): the next epoch's loss is not finite
    import torch
    ck = torch.load(tmp_path / "runs" / "r" / "last.pt", weights_only=True)
    ck["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, tmp_path / "runs" / "r" / "last.pt")
    out = fails(runner, ["train", "--name", "r", "--resume", "--epochs", "5"],
                "training diverged at epoch 3", "best.pt keeps epoch")
    assert len(out.strip().splitlines()) == 2, out
    assert (tmp_path / "runs" / "r" / "best.pt").read_bytes() == best
    assert len(pd.read_csv(tmp_path / "runs" / "r" / "metrics.csv")) == 2

    ok(runner, ["train", "--data", tiny_dataset, "--epochs", "1", "--name", "g", *TINY_TRAIN])
    fails(runner, ["generate", "--run", "runs/g", "--temperature", "inf"], "finite")
    fails(runner, ["generate", "--run", "runs/g", "--temperature", "nan"], "--temperature")


# ------------------------------------------------------------------ 6. concurrent runs

def test_two_extracts_into_one_dataset(songs, tmp_path):
    """Was: two extracts into one name both wrote it, the last one winning. Now the second, a real
    process started while the first holds the dataset, is refused and names the first."""
    raw = songs(tmp_path / "raw", n=4)
    second = {}

    def progress(n):
        if not second:  # in the middle of the first extract
            second["res"] = subprocess.run([sys.executable, CLI, "extract", raw, "--name", "d", "--workers", "1"],
                                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)

    extract([raw], ExtractConfig(name="d", out=str(tmp_path / "processed"), workers=1), progress=progress)
    res = second["res"]
    assert res.returncode != 0
    assert f"processed/d is in use by process {os.getpid()}" in res.stderr and "Traceback" not in res.stderr
    assert read_manifest(tmp_path / "processed" / "d")["totals"]["files_ok"] == 4


GRID_FOREVER = ["grid", "--cell", "gru", "--hidden", "8,16", "--epochs", "100000", "--patience", "100000",
                "--workers", "2", "--name", "g", "--layers", "1", "--embed", "4", "--window", "8", "--stride", "4",
                "--batch", "16", "--threads", "1"]


def start_long_grid(tmp_path: Path, dataset: Path) -> tuple[subprocess.Popen, list[Path]]:
    """A grid of two runs that would train for ever, once both runs have finished an epoch."""
    proc = cli_process([*GRID_FOREVER, "--data", dataset], tmp_path)
    runs = tmp_path / "runs" / "g"
    try:
        wait_for(lambda: len(list(runs.glob("*/last.pt"))) == 2, proc=proc, what="both runs' first epoch")
    except BaseException:
        with ended(proc):
            raise
    return proc, sorted(p.parent for p in runs.glob("*/last.pt"))


@pytest.mark.slow
def test_two_grids_on_one_folder(tmp_path, tiny_dataset):
    """Was: a second `grid` on the same folder took the first's live runs for killed ones, deleted
    and retrained them. Now it is refused at once and the first grid's runs carry on untouched."""
    first, runs = start_long_grid(tmp_path, tiny_dataset)
    with ended(first):
        ids = {r: r.stat().st_ino for r in runs}
        second = subprocess.run([sys.executable, CLI, *GRID_FOREVER, "--data", tiny_dataset], cwd=tmp_path, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert f"runs/g is in use by process {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        epochs = {r: read_status(r).epoch for r in runs}
        wait_for(lambda: all(read_status(r).epoch > epochs[r] for r in runs), proc=first, what="more epochs")
        assert {r: r.stat().st_ino for r in runs} == ids and first.poll() is None
        # a lone `train --resume` of a run the grid is training is refused the same way
        res = subprocess.run([sys.executable, CLI, "train", "--runs", "runs/g", "--name", runs[0].name, "--resume"],
                             cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and f"{runs[0].name} is in use by process" in res.stderr, res.stderr


# ------------------------------------------------------------------ 7. kills and SIGTERM

@pytest.mark.slow
def test_sigterm_stops_a_grid_and_its_workers(tmp_path, tiny_dataset):
    """Was: SIGTERM killed the grid process alone: its workers trained on, grid.json said "pending"."""
    proc, runs = start_long_grid(tmp_path, tiny_dataset)
    with ended(proc):
        workers = children(proc.pid)
        assert workers, "the grid has no worker processes"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "interrupted; finished runs and epochs are kept" in err, err
    wait_for(lambda: not any(alive(w) for w in workers), timeout=30, what="the workers to end")
    entries = json.loads((tmp_path / "runs" / "g" / "grid.json").read_text())["runs"]
    assert {e["status"] for e in entries} == {"interrupted"}
    for run in runs:  # the interrupted epoch is lost, the finished ones are kept and drawn
        assert read_status(run).epoch >= 1 and (run / "curves.png").exists()


@pytest.mark.slow
def test_kill9_of_extract_leaves_no_workers_and_no_temporary_folders(songs, melody, write_pm, runner, tmp_path):
    """Was: `kill -9` of extract left its pool workers running and `.<name>.tmp-*` folders of tens
    of MB behind, which no later run removed."""
    raw = tmp_path / "raw"
    for k in range(120):
        write_pm(raw / f"s{k:03d}.mid", melody(300, k % 7))
    proc = cli_process(["extract", raw, "--name", "big", "--workers", "2"], tmp_path,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()

    def pool_started():
        workers.update(children(proc.pid))
        return len(workers) >= 2

    with ended(proc):
        wait_for(pool_started, proc=proc, what="the parser pool")
        proc.kill()
        proc.wait()
    wait_for(lambda: not any(alive(w) for w in workers), timeout=30, what="the orphaned workers to end")

    # a writer killed in the middle of writing the dataset folder
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pipeline.core.fsutil import atomic_dir\n"
        "with atomic_dir('processed/big', 'dataset') as tmp:\n"
        "    (tmp / 'half-written.parquet').write_bytes(b'x' * 2_000_000)\n"
        "    print(tmp, flush=True)\n    time.sleep(600)\n")], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, text=True)
    with ended(holder):
        tmp = Path(holder.stdout.readline().strip())
        assert tmp.name.startswith(".big.tmp-") and tmp.is_dir()
        holder.kill()
        holder.wait()
    holder.stdout.close()
    assert tmp.is_dir()  # what kill -9 leaves
    ok(runner, ["extract", songs(tmp_path / "few"), "--name", "big", "--workers", "1"])
    assert not tmp.exists()
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [".big.lock", "big"]


def test_a_swap_cut_short_by_a_kill_puts_the_previous_folder_back(tmp_path):
    """Between the two renames of a swap, the only copy of the previous output is `.<name>.old-<pid>`:
    tidying must put it back, not delete it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    old = tmp_path / f".d.old-{dead.pid}"
    old.mkdir()
    write_marker(old, "dataset")
    (old / "manifest.json").write_text("{}")
    assert clean_stale_temporaries(tmp_path, "d") == 0
    assert (tmp_path / "d" / "manifest.json").exists() and not old.exists()


# ------------------------------------------------------------------ 8. permissions

@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_follow_the_umask(tiny_train_config, tiny_midi_dir, tmp_path, umask):
    """Was: atomic writes made every file 0600 and every folder 0700, whatever the umask."""
    from pipeline.stages.train import train

    previous = os.umask(umask)
    try:
        extract([tiny_midi_dir], ExtractConfig(name="d", out=str(tmp_path / "processed"), workers=1))
        train(tiny_train_config(tmp_path / "processed" / "d", epochs=1), tmp_path / "runs" / "r")
    finally:
        os.umask(previous)
    written = [p for top in ("processed", "runs") for p in (tmp_path / top).rglob("*")]
    assert len(written) > 20
    for p in written:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


# ------------------------------------------------------------------ 9. a damaged cache

def test_a_truncated_cache_file_is_parsed_again(songs, runner, tmp_path):
    """Was: a truncated cache/<sha>.parquet blocked every re-extract with an ArrowInvalid traceback."""
    songs(tmp_path / "raw")
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    folder = tmp_path / "processed" / "d"
    before = load_dataset(folder, "names").sequences
    cached = sorted((folder / "cache").glob("*.parquet"))[0]
    cached.write_bytes(cached.read_bytes()[:100])
    (folder / "notes.parquet").write_bytes((folder / "notes.parquet").read_bytes()[:50])
    out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    assert "notice: cache of" in out and "is damaged" in out and "2 unchanged" in out
    assert load_dataset(folder, "names").sequences == before
    assert len(pd.read_parquet(folder / "notes.parquet")) > 0


# ------------------------------------------------------------------ 10. identical files

def test_byte_identical_inputs_are_listed_as_duplicates(songs, runner, tmp_path):
    """Was: of two identical files only one appeared in the manifest; the other vanished."""
    raw = songs(tmp_path / "raw")
    shutil.copy(raw / "song0.mid", raw / "zz-copy.mid")
    for _ in range(2):  # the second run reads the cache: the duplicate must not shadow its original
        out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
        assert "extracted 3 files (1 skipped" in out and "duplicate of" in out
        files = {Path(f["path"]).name: f for f in read_manifest(tmp_path / "processed" / "d")["files"]}
        assert files["zz-copy.mid"]["status"] == "skipped"
        assert files["zz-copy.mid"]["reason"] == f"duplicate of {(raw / 'song0.mid').resolve()}"
        assert files["song0.mid"]["status"] == "ok"


# ------------------------------------------------------------------ 11. a held-out piece too short

def test_the_split_holds_out_a_piece_long_enough_for_a_window(melody, write_pm, runner, tmp_path):
    """Was: the split could hold out only a piece shorter than one 30-token window, and the default
    `train` then failed with "no validation window"."""
    names = [f"p{i}" for i in range(6)]
    plain = assign_split(names, 0.2, 0)
    short = plain["validation"][0]  # the piece the hash would hold out: make it short
    for i, name in enumerate(names):
        write_pm(tmp_path / "raw" / f"{name}.mid", melody(12 if name == short else 60, i))
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    split = json.loads((tmp_path / "processed" / "d" / "split.json").read_text())
    assert short in split["train"] and split["validation"]
    out = ok(runner, ["train", "--epochs", "1", "--hidden", "8", "--layers", "1", "--threads", "1"])
    assert "trained 1 epochs" in out
    # with no piece long enough anywhere, the split is the plain hash split
    lengths = {n: 10 for n in names}
    assert assign_split(names, 0.2, 0, lengths=lengths) == plain


# ------------------------------------------------------------------ 12. a full disk

@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and the right to mount; skipped otherwise)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_keeps_earlier_outputs(songs, melody, write_pm, runner, tmp_path, tiny_disk):
    """Was: an OSError/ArrowIOError traceback, half a dataset folder left behind."""
    songs(tmp_path / "raw", n=4)
    out = tiny_disk / "processed"
    ok(runner, ["extract", "raw", "--out", out, "--name", "d", "--workers", "1"])
    before = tree(out / "d")
    free = shutil.disk_usage(tiny_disk).free
    filler = tiny_disk / "filler"
    with open(filler, "wb") as f:  # leave about 24 KiB: less than one dataset
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(0, free - 24 * 1024))
    write_pm(tmp_path / "raw" / "more.mid", melody(60, 8))
    res = fails(runner, ["extract", "raw", "--out", out, "--name", "d", "--workers", "1"], "no space left writing")
    assert len([l for l in res.splitlines() if l.startswith("Error")]) == 1
    assert tree(out / "d") == before
    assert sorted(p.name for p in out.iterdir()) == [".d.lock", "d"]
    filler.unlink()
    ok(runner, ["extract", "raw", "--out", out, "--name", "d", "--workers", "1"])
    assert read_manifest(out / "d")["totals"]["files_ok"] == 5


# ------------------------------------------------------------------ 13. generate: a cap, a progress bar, Ctrl-C

@pytest.mark.slow
def test_generate_has_a_cap_a_progress_bar_and_its_own_interrupt_message(tiny_run, tmp_path):
    """Was: `generate --length 1000000` ran with no cap and no progress bar, and Ctrl-C said
    "finished epochs ... are kept"."""
    runner = CliRunner()
    res = runner.invoke(main, ["generate", "--run", str(tiny_run), "--length", "1000000"])
    assert res.exit_code != 0 and "over the cap of 100,000 tokens" in res.output and "--max-length" in res.output

    # Ctrl-C at a terminal: the bar shows on the terminal (a pty of 80 columns), then SIGINT
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, CLI, "generate", "--run", str(tiny_run), "--length", "100000",
                             "--count", "64"], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        deadline = time.time() + 120
        while b"sampling T=1" not in seen or b"token/s" not in seen:
            assert time.time() < deadline and proc.poll() is None, seen
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        with contextlib.suppress(OSError):
            while select.select([master], [], [], 0.5)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                seen += chunk
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode != 0 and "interrupted; the temperatures reported above are written" in text, text
    assert "epoch" not in text and "Traceback" not in text


# ------------------------------------------------------------------ 14. curves of runs finished at an interrupt

@pytest.mark.slow
def test_a_run_that_finished_as_its_grid_was_interrupted_gets_its_curves(tmp_path, tiny_dataset, runner):
    """Was: a run whose last epoch was saved just before Ctrl-C stopped its plotting never got
    curves.png: re-running the grid skipped it as finished."""
    args = ["grid", "--data", tiny_dataset, "--cell", "gru", "--epochs", "2", "--name", "g", "--workers", "1",
            *TINY_TRAIN]
    ok(runner, args)
    run = next((tmp_path / "runs" / "g").glob("gru-*"))
    (run / "curves.png").unlink()  # what the interrupted plot left
    out = ok(runner, args)
    assert "1 already finished" in out and (run / "curves.png").exists()


# ------------------------------------------------------------------ 15. messages

@pytest.mark.slow
def test_messages_say_what_is_wrong(songs, write_pm, runner, tmp_path, tiny_dataset, monkeypatch):
    """Was: "EOFError: EOFError", "no pitched notes" for a drum file, silence about vanished inputs,
    a whole configuration dict for one bad grid option, and "set $MUSICRNN_SOUNDFONT" when
    FluidSynth itself was missing."""
    raw = songs(tmp_path / "raw")
    whole = (raw / "song0.mid").read_bytes()
    (raw / "empty.mid").write_bytes(b"")
    (raw / "cut.mid").write_bytes(whole[: len(whole) // 2])
    write_pm(raw / "drums.mid", [], drums=[(36, 0.0, 0.1), (38, 0.5, 0.6)])
    out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    lines = {l.split(":", 1)[0].rsplit("/", 1)[-1]: l for l in out.splitlines() if l.startswith("skipped")}
    assert "EOFError" not in out
    assert "empty" in lines["empty.mid"].lower()
    assert "truncated" in lines["cut.mid"].lower()
    assert "only drum notes" in lines["drums.mid"]

    (raw / "song2.mid").unlink()
    out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    assert "is gone and left out" in out and "song2.mid" in out
    assert [Path(p).name for p in read_manifest(tmp_path / "processed" / "d")["gone_since_last_run"]] == ["song2.mid"]

    res = invoke(runner, ["grid", "--data", tiny_dataset, "--encoding", "names,pitch", "--task", "classify,regress",
                          "--epochs", "1", "--name", "g", "--workers", "1", *TINY_TRAIN])
    assert res.exit_code == 0, res.output
    notice = [l for l in res.output.splitlines() if l.startswith("skipped")]
    assert notice == ["skipped 1 invalid combination: --task regress predicts a pitch number: "
                      "use it with --encoding pitch"], notice

    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a machine without FluidSynth
    out = ok(runner, ["render", raw / "song0.mid", "--audio", "wav", "--no-piano-roll"])
    assert "FluidSynth is not installed (install it" in out and "MUSICRNN_SOUNDFONT" not in out


def test_cached_pieces_take_their_new_name(melody, write_pm, runner, tmp_path):
    """Found on the way: a re-extract read an unchanged file's notes from the cache under the piece
    name of the last run, although a new file with the same stem had renamed it (``x`` -> ``x~<sha>``):
    the dataset then held ``x`` and ``x~<sha>``, and the split and sequences disagreed on names."""
    write_pm(tmp_path / "raw" / "a" / "x.mid", melody(40, 1))
    write_pm(tmp_path / "raw" / "a" / "y.mid", melody(40, 2))
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    write_pm(tmp_path / "raw" / "b" / "x.mid", melody(40, 3))
    out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    assert "2 unchanged" in out
    folder = tmp_path / "processed" / "d"
    pieces = set(pd.read_parquet(folder / "notes.parquet")["piece"])
    split = json.loads((folder / "split.json").read_text())
    assert len(pieces) == 3 and "x" not in pieces and all(p.startswith("x~") for p in pieces - {"y"})
    assert set(split["train"]) | set(split["validation"]) == pieces == set(load_dataset(folder, "pitch").sequences)


# ------------------------------------------------------------------ issue 21: ownership by proof, not by file name

def test_extract_never_takes_a_folder_for_its_own_by_a_file_name(songs, melody, write_pm, runner, tmp_path):
    """Was: a user's folder holding a `manifest.json` (a browser extension) was replaced by `extract`;
    files put into a dataset folder were deleted by a re-extract; `--name <a comparison page>` replaced it."""
    songs(tmp_path / "raw")
    webext = tmp_path / "u" / "webext"
    webext.mkdir(parents=True)
    (webext / "manifest.json").write_text('{"manifest_version": 3}')
    (webext / "background.js").write_text("x")
    before = tree(webext)
    fails(runner, ["extract", "raw", "--out", "u", "--name", "webext", "--workers", "1"],
          "was not written by this tool", "move it away")
    (webext / MARKER).write_text("written by musicrnn; this folder may be replaced by a re-run\n")  # any other text
    fails(runner, ["extract", "raw", "--out", "u", "--name", "webext", "--workers", "1"], "was not written by this tool")
    (webext / MARKER).unlink()
    assert tree(webext) == before

    page = tmp_path / "runs" / "page"  # a comparison page of the tool's is not a dataset
    page.mkdir(parents=True)
    write_marker(page, "compare")
    (page / "index.html").write_text("<html>")
    fails(runner, ["extract", "raw", "--out", "runs", "--name", "page", "--workers", "1"],
          "is a comparison page of this tool, not a dataset")
    assert (page / "index.html").read_text() == "<html>"

    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    d = tmp_path / "processed" / "d"
    (d / "my-notes.txt").write_text("mine")
    (d / "cache" / "keep.txt").write_text("mine too")
    write_pm(tmp_path / "raw" / "more.mid", melody(40, 7))
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    assert (d / "my-notes.txt").read_text() == "mine" and (d / "cache" / "keep.txt").read_text() == "mine too"
    assert read_manifest(d)["totals"]["files_ok"] == 4


def test_compare_out_never_takes_a_folder_with_a_compare_json_for_its_own(runner, tmp_path):
    """Was: `compare RUN --out c` replaced a user's folder `c` because it held a `compare.json`."""
    c = tmp_path / "c"
    c.mkdir()
    (c / "compare.json").write_text("{}")
    (c / "notes.txt").write_text("keep")
    (tmp_path / "run").mkdir()  # refused before any run is read
    fails(runner, ["compare", tmp_path / "run", "--out", c], "not a comparison page")
    assert tree(c) == {"compare.json": b"{}", "notes.txt": b"keep"}


def test_render_never_overwrites_the_users_files_beside_a_midi(melody, write_pm, runner, tmp_path):
    """Was: `render song.mid` replaced the user's own song.wav and song.png beside it."""
    write_pm(tmp_path / "music" / "song.mid", melody(8, 1))
    (tmp_path / "music" / "song.wav").write_bytes(b"my recording")
    (tmp_path / "music" / "song.png").write_bytes(b"my picture")
    for target in (tmp_path / "music" / "song.mid", tmp_path / "music"):
        out = ok(runner, ["render", target, "--audio", "wav"])
        assert "music/renders" in out
    assert (tmp_path / "music" / "song.wav").read_bytes() == b"my recording"
    assert (tmp_path / "music" / "song.png").read_bytes() == b"my picture"
    assert (tmp_path / "music" / "renders" / "song.wav").stat().st_size > 1000
    assert (tmp_path / "music" / "renders" / "song.png").exists()
    write_pm(tmp_path / "other" / "song.mid", melody(8, 1))
    (tmp_path / "other" / "renders").mkdir()
    (tmp_path / "other" / "renders" / "song.wav").write_bytes(b"mine")
    fails(runner, ["render", tmp_path / "other" / "song.mid"], "was not written by this tool")
    assert (tmp_path / "other" / "renders" / "song.wav").read_bytes() == b"mine"


def test_train_never_writes_into_a_folder_it_did_not_write(runner, tiny_dataset, tmp_path):
    """Was: `train --name X` into a user's folder overwrote their metrics.csv, curves.png, status.json."""
    mine = tmp_path / "runs" / "x"
    mine.mkdir(parents=True)
    for name in ("metrics.csv", "curves.png", "status.json"):
        (mine / name).write_text(f"my {name}")
    before = tree(mine)
    fails(runner, ["train", "--data", tiny_dataset, "--name", "x", "--epochs", "1", *TINY_TRAIN],
          "was not written by this tool")
    fails(runner, ["train", "--name", "x", "--resume", "--epochs", "1"], "was not written by this tool")
    assert tree(mine) == before


# ------------------------------------------------------------------ issue 21: audio and external tools

@pytest.fixture
def long_piece(write_pm):
    """``long_piece(path, seconds=100.0)``: one note every two seconds."""
    def write(path: Path, seconds: float = 100.0) -> Path:
        return write_pm(path, [(60 + (i % 12), i * 2.0, i * 2.0 + 1.5) for i in range(int(seconds / 2))])
    return write


@pytest.mark.slow
def test_long_audio_is_encoded_in_blocks_in_every_format(long_piece, tmp_path):
    """Was: `render --audio ogg` of a piece of ~95 s or more died of SIGSEGV in libsndfile's Vorbis encoder
    (a truncated .ogg, no piano roll, no message)."""
    long_piece(tmp_path / "long.mid")
    for fmt in ("ogg", "flac", "wav"):
        res = subprocess.run([sys.executable, CLI, "render", "long.mid", "--audio", fmt], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        import soundfile
        assert soundfile.info(str(tmp_path / "renders" / f"long.{fmt}")).duration > 99
    assert (tmp_path / "renders" / "long.png").exists()


def fake_fluidsynth(folder: Path, body: str) -> dict:
    """An environment whose `fluidsynth` is a shell script (answering --help at once) and a SoundFont file."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "fluidsynth"
    script.write_text(f'#!/bin/sh\n[ "$1" = "--help" ] && exit 0\necho $$ > "{folder}/pid"\n{body}\n')
    script.chmod(0o755)
    (folder / "font.sf2").write_bytes(b"not really")
    temp = folder / "tmp"
    temp.mkdir()
    return {**ENV, "PATH": f"{folder}:{os.environ['PATH']}", "MUSICRNN_SOUNDFONT": str(folder / "font.sf2"),
            "TMPDIR": str(temp), "MUSICRNN_FLUIDSYNTH_TIMEOUT": "3"}


@pytest.mark.slow  # real processes that hang and are killed
def test_a_failing_or_hanging_fluidsynth_falls_back_to_the_builtin_synth(melody, write_pm, tmp_path):
    """Was: a FluidSynth that exits 1 skipped the file (no audio, no piano roll); one that hangs was
    waited on forever."""
    write_pm(tmp_path / "song.mid", melody(8, 1))
    for body, said in (("echo 'fluidsynth: error: broken' >&2; exit 1", "fluidsynth failed"),
                       ("exec sleep 600", "fluidsynth took longer than 3 s")):
        env = fake_fluidsynth(tmp_path / "fake", body)
        t0 = time.time()
        res = subprocess.run([sys.executable, CLI, "render", "song.mid"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and said in res.stderr and "used the built-in sine synth instead" in res.stderr, \
            res.stderr
        assert time.time() - t0 < 60
        pid = int((tmp_path / "fake" / "pid").read_text())
        assert not alive(pid)
        assert (tmp_path / "renders" / "song.wav").stat().st_size > 1000 and (tmp_path / "renders" / "song.png").exists()
        assert not list((tmp_path / "fake" / "tmp").iterdir()) and not list((tmp_path / "renders").glob(".musicrnn-audio*"))
        shutil.rmtree(tmp_path / "fake")


@pytest.mark.slow  # real processes that hang and are killed
def test_kill9_of_render_takes_fluidsynth_with_it_and_leaves_no_temporary_folder(melody, write_pm, tmp_path):
    """Was: kill -9 of render orphaned FluidSynth and left a `musicrnn-audio-*` folder in the system's
    temporary directory for good."""
    write_pm(tmp_path / "song.mid", melody(8, 1))
    env = {**fake_fluidsynth(tmp_path / "fake", "exec sleep 600"), "MUSICRNN_FLUIDSYNTH_TIMEOUT": "600"}
    proc = subprocess.Popen([sys.executable, CLI, "render", "song.mid"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with ended(proc):
        wait_for(lambda: (tmp_path / "fake" / "pid").exists(), proc=proc, what="FluidSynth to start")
        synth = int((tmp_path / "fake" / "pid").read_text())
        assert alive(synth)
        proc.kill()
        proc.wait()
    wait_for(lambda: not alive(synth), timeout=30, what="FluidSynth to end with its parent")
    assert not list((tmp_path / "fake" / "tmp").iterdir())  # nothing in the system's temporary directory
    assert list((tmp_path / "renders").glob(".musicrnn-audio-*"))  # what kill -9 leaves, in the tool's folder
    env["PATH"] = os.environ["PATH"]  # the real FluidSynth, or the built-in synth
    env.pop("MUSICRNN_SOUNDFONT")
    res = subprocess.run([sys.executable, CLI, "render", "song.mid"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert not list((tmp_path / "renders").glob(".musicrnn-audio-*"))


# ------------------------------------------------------------------ issue 21: a grid started from a script

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_grid_started_with_sigint_ignored_stops_on_a_signal(tmp_path, tiny_dataset, sig):
    """Was: a grid started in the background of a script (SIGINT ignored by inheritance, `setsid cli.py grid
    ... &`) did not stop on SIGTERM or SIGINT: its workers trained on, and grid.json said `interrupted` for
    runs whose status.json said finished."""
    def script_background():
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = cli_process([*GRID_FOREVER, "--data", tiny_dataset], tmp_path, preexec_fn=script_background)
    folder = tmp_path / "runs" / "g"
    with ended(proc):
        wait_for(lambda: len(list(folder.glob("*/last.pt"))) == 2, proc=proc, what="both runs' first epoch")
        workers = children(proc.pid)
        assert workers
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "interrupted" in err, err
    wait_for(lambda: not any(alive(w) for w in workers), timeout=30, what="the workers to end")
    for entry in json.loads((folder / "grid.json").read_text())["runs"]:
        status = read_status(folder / entry["id"])
        assert entry["status"] == ("finished" if status.finished else "interrupted")
        assert not status.finished  # 100,000 epochs: stopped, not trained to the end


# ------------------------------------------------------------------ issue 21: the split, resume, caps

def test_the_split_follows_the_options_and_not_the_history(songs, runner, tmp_path):
    """Was: a re-extract with a new --val-fraction or --split-seed kept the old split (recording the new seed),
    and deleting an input, re-extracting and restoring it gave another split than a fresh extract."""
    raw = songs(tmp_path / "raw", n=8)

    def split(name: str) -> dict:
        d = json.loads((tmp_path / "processed" / name / "split.json").read_text())
        return {k: d[k] for k in ("train", "validation", "seed")}

    def extract_into(name: str, *opts) -> dict:
        ok(runner, ["extract", "raw", "--name", name, "--workers", "1", *opts])
        return split(name)

    for opts in (["--val-fraction", "0.5"], ["--split-seed", "3"], ["--val-fraction", "0.5", "--split-seed", "7"]):
        again = extract_into("d", *opts)
        assert again == extract_into(f"fresh{len(list((tmp_path / 'processed').iterdir()))}", *opts)
    fresh = extract_into("d")
    for name in ("song3.mid", "song5.mid"):  # delete an input, re-extract, restore it: the fresh split again
        (raw / name).rename(tmp_path / name)
        extract_into("d")
        (tmp_path / name).rename(raw / name)
        assert extract_into("d") == fresh


def test_resume_keeps_the_runs_thread_count(runner, tiny_dataset, tmp_path):
    """Was: `train --resume` without --threads dropped the run's stored thread count for torch's default."""
    ok(runner, ["train", "--data", tiny_dataset, "--epochs", "1", "--name", "r", *TINY_TRAIN])
    ok(runner, ["train", "--name", "r", "--resume", "--epochs", "2"])
    assert load_checkpoint(tmp_path / "runs" / "r", "last").train_config["threads"] == 1
    ok(runner, ["train", "--name", "r", "--resume", "--epochs", "3", "--threads", "2"])
    assert load_checkpoint(tmp_path / "runs" / "r", "last").train_config["threads"] == 2


def test_generate_count_has_a_memory_cap(runner, tiny_run):
    """Was: `generate --count 1000000 --length 2` grew to 10 GB and ended in an allocator traceback."""
    out = fails(runner, ["generate", "--run", tiny_run, "--count", str(10 ** 9), "--length", "2"],
                "of memory available; lower --count")
    assert len([l for l in out.splitlines() if l.startswith("Error")]) == 1
    fails(runner, ["generate", "--run", tiny_run, "--primer-length", "-5"], "--primer-length must be >= 0")
    assert not (tiny_run / "samples").exists() or not list((tiny_run / "samples").glob("*/samples.json"))


# ------------------------------------------------------------------ issue 21: one line, never a traceback

def test_damaged_files_and_bad_options_are_one_line(runner, tiny_run, tiny_dataset, tmp_path):
    """Was: AttributeError for a split.json holding a list, KeyError for a vocabulary lacking tokens,
    NotADirectoryError for `heatmap --out <a file>`, ValueError for odd Ray addresses."""
    (tmp_path / "afile").write_text("x")
    fails(runner, ["heatmap", "--run", tiny_run, "--out", tmp_path / "afile"], "is a file")
    assert (tmp_path / "afile").read_text() == "x"
    for address in ("localhost", "::::", "127.0.0.1:notaport", "host:70000"):
        fails(runner, ["grid", "--data", tiny_dataset, "--executor", "ray", "--address", address, "--epochs", "1"],
              "--address must be HOST:PORT")
    split = tiny_dataset / "split.json"
    good = split.read_text()
    split.write_text('["p0", "p1"]')
    fails(runner, ["train", "--data", tiny_dataset, "--epochs", "1", *TINY_TRAIN], "split.json is damaged")
    fails(runner, ["evaluate", "--run", tiny_run, "--data", tiny_dataset], "split.json is damaged")
    split.write_text(good)
    vocab = tiny_dataset / "names" / "vocab.json"
    tokens = json.loads(vocab.read_text())
    key = "tokens" if isinstance(tokens, dict) else None
    listed = tokens[key] if key else tokens
    cut = listed[: len(listed) // 2]
    vocab.write_text(json.dumps({**tokens, key: cut} if key else cut))
    fails(runner, ["train", "--data", tiny_dataset, "--encoding", "names", "--epochs", "1", *TINY_TRAIN], "vocab.json is damaged",
          "lacks")


# ------------------------------------------------------------------ issue 21: overwrites and leftovers

@pytest.mark.slow
def test_evaluate_files_never_collide_and_a_killed_write_leaves_nothing(songs, runner, tiny_run, tmp_path):
    """Was: two datasets named alike (a/d, b/d) scored against one run wrote the same eval file; kill -9
    during evaluate left a hidden 0-byte temporary file for good."""
    for k, where in enumerate(("a", "b")):
        songs(tmp_path / f"raw{where}", n=2, onsets=40 + 10 * k)
        ok(runner, ["extract", f"raw{where}", "--out", where, "--name", "d", "--workers", "1"])
    files = set()
    for where in ("a", "b"):
        ok(runner, ["evaluate", "--run", tiny_run, "--data", f"{where}/d", "--window", "8", "--device", "cpu"])
        files = {p.name for p in (tiny_run / "eval").glob("*.json")}
    assert len(files) == 2 and all(f.startswith("d-") for f in files)

    # a writer killed (SIGKILL, for real) in the middle of writing the eval file
    from pipeline.store.rundir import eval_name
    target = tiny_run / "eval" / f"{eval_name(tmp_path / 'a' / 'd')}.json"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\nfrom pipeline.core import fsutil\n"
        "def fdopen(fd, *a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "fsutil.os.fdopen = fdopen\n"
        f"fsutil.atomic_write_bytes({str(target)!r}, b'x')\n")], cwd=tmp_path, env=ENV, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    leftovers = lambda: [p for p in (tiny_run / "eval").iterdir() if p.name.startswith(".") and p.name != MARKER]  # noqa: E731
    assert leftovers()  # what kill -9 leaves
    ok(runner, ["evaluate", "--run", tiny_run, "--data", "a/d", "--window", "8", "--device", "cpu"])
    assert not leftovers()


def test_a_cache_file_damaged_in_place_is_parsed_again(songs, runner, tmp_path):
    """Was: a cache file with 50 bytes zeroed (same size, same name) was taken as unchanged and wrote notes
    with end < start into notes.parquet."""
    songs(tmp_path / "raw")
    ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    folder = tmp_path / "processed" / "d"
    before = pd.read_parquet(folder / "notes.parquet")
    for cached in (folder / "cache").glob("*.parquet"):
        data = bytearray(cached.read_bytes())
        data[len(data) // 3: len(data) // 3 + 50] = bytes(50)
        cached.write_bytes(bytes(data))
    out = ok(runner, ["extract", "raw", "--name", "d", "--workers", "1"])
    assert out.count("does not match the checksum") == 3, out
    after = pd.read_parquet(folder / "notes.parquet")
    assert (after["end"] >= after["start"]).all()
    pd.testing.assert_frame_equal(after, before)
    from pipeline.core.errors import DatasetError
    from pipeline.core.notes import write_note_table
    with pytest.raises(DatasetError, match="end before they start"):
        write_note_table(before.assign(end=before["start"] - 1), tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


# ------------------------------------------------------------------ issue 21: what the user is told

def test_the_user_is_told_what_happens_and_why(melody, write_pm, runner, tiny_run, tiny_dataset, tmp_path):
    """Was: evaluate silent when stderr is not a terminal; a resume after --max-minutes trained one step
    without a word; "another --split-seed" for a one-piece dataset."""
    env = {**ENV, "MUSICRNN_PROGRESS_SECONDS": "0"}
    res = subprocess.run([sys.executable, CLI, "evaluate", "--run", tiny_run, "--data", tiny_dataset, "--window", "8",
                          "--device", "cpu"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert any(l.startswith("evaluate tiny-run on tiny: ") and "target" in l for l in res.stderr.splitlines()), \
        res.stderr

    ok(runner, ["train", "--data", tiny_dataset, "--epochs", "1", "--name", "b", "--max-minutes", "0.0001",
                *TINY_TRAIN])
    fails(runner, ["train", "--name", "b", "--resume", "--epochs", "3"], "has used its --max-minutes 0.0001 budget",
          "resume with a larger --max-minutes")
    out = ok(runner, ["train", "--name", "b", "--resume", "--epochs", "2", "--max-minutes", "0"])
    assert "trained 2 epochs" in out

    write_pm(tmp_path / "solo" / "solo.mid", melody(30, 1))
    ok(runner, ["extract", "solo", "--name", "solo", "--workers", "1"])
    fails(runner, ["train", "--data", "processed/solo", "--encoding", "names", "--epochs", "1", "--mode", "windows", "--window", "20",
                   *TINY_TRAIN[:-6]], "extract more pieces")


def test_notes_an_encoding_cannot_hold_are_counted_with_the_reason(write_pm, runner, tmp_path):
    """Item 8: tsd/remi/frames hold the piano's 88 keys only; notes outside are counted in the manifest, and a
    file of nothing else trains to one line that says where to look, not "lower --batch"."""
    for f in range(3):  # MIDI 10-14: below the piano's A0 (21); three different files
        write_pm(tmp_path / "raw" / f"low{f}.mid", [(10 + (k + f) % 5, 0.5 * k, 0.5 * k + 0.4) for k in range(40)])
    ok(runner, ["extract", "raw", "--name", "low", "--workers", "1"])
    dropped = json.loads((tmp_path / "processed" / "low" / "manifest.json").read_text())["totals"]["dropped"]
    assert dropped["outside the piano's 88 keys (tsd/remi)"] == 2 * 3 * 40  # counted once for each encoding
    assert dropped["outside the piano's 88 keys (frames)"] == 3 * 40
    out = fails(runner, ["train", "--data", "processed/low", "--encoding", "tsd", "--epochs", "1", *TINY_TRAIN],
                "no tsd tokens", "manifest")
    assert "lower --batch" not in out


def test_a_roll_pickle_that_would_run_code_is_refused_and_nothing_runs(runner, tmp_path):
    import pickle

    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (flag,))

    (tmp_path / "rolls.pickle").write_bytes(pickle.dumps({"train": [[[60, 64]], Evil()]}))
    out = fails(runner, ["extract", "rolls.pickle", "--name", "evil"], "refused to unpickle")
    assert not flag.exists() and len(out.strip().splitlines()) <= 2
