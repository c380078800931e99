"""Shared fixtures: tiny MIDI files, ABC tunebooks and roll files built in code, tiny datasets and runs.

Helpers that a test calls are fixtures that return the function (``write_pm``, ``melody``,
``tiny_train_config``, ``tiny_run`` ...), so no test module imports this file.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

# ../shared/data/chopin-nocturnes beside the project (as in CI), or wherever MUSICRNN_CHOPIN says
CHOPIN = Path(os.environ.get("MUSICRNN_CHOPIN")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chopin-nocturnes")


def _write_pm(path: Path, notes: list[tuple[int, float, float]], program: int = 0, drums: list | None = None,
             velocity: int = 90) -> Path:
    """Write (pitch, start, end) notes as a one-instrument MIDI file with pretty_midi."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=velocity, pitch=p, start=s, end=e) for p, s, e in notes]
    pm.instruments.append(inst)
    if drums:
        d = pretty_midi.Instrument(program=0, is_drum=True)
        d.notes = [pretty_midi.Note(velocity=100, pitch=p, start=s, end=e) for p, s, e in drums]
        pm.instruments.append(d)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


def _melody(n: int, seed: int, base: int = 60) -> list[tuple[int, float, float]]:
    """A deterministic scale-wise melody with a chord every fourth onset."""
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    notes, t = [], 0.0
    for i in range(n):
        p = base + scale[(i * (seed + 1) + i // 3) % len(scale)]
        notes.append((p, t, t + 0.4))
        if i % 4 == 0:
            notes.append((p - 12, t, t + 0.8))
        t += 0.5
    return notes


@pytest.fixture
def tiny_midi_dir(tmp_path: Path) -> Path:
    """Four small pieces (about 80 onsets each) in a folder, one with a drum track."""
    folder = tmp_path / "midi"
    for k in range(4):
        _write_pm(folder / f"piece{k}.mid", _melody(80, k), drums=[(36, 0.0, 0.1)] if k == 0 else None)
    return folder


@pytest.fixture
def tiny_dataset(tiny_midi_dir: Path, tmp_path: Path) -> Path:
    from pipeline.stages.extract import ExtractConfig, extract

    extract([tiny_midi_dir], ExtractConfig(name="tiny", out=str(tmp_path / "processed"), workers=1))
    return tmp_path / "processed" / "tiny"


def _tiny_train_config(dataset: Path, **kw):
    from pipeline.store.rundir import TrainConfig

    base = dict(dataset=str(dataset), encoding="names", cell="gru", layers=1, hidden=16, embed=8, window=8, stride=4,
                batch=16, epochs=3, patience=10, threads=1, seed=1, transpose=0)
    base.update(kw)
    return TrainConfig(**base)


def _tiny_run(root: Path, pieces: int = 4, notes: int = 60, **kw) -> Path:
    """``root/runs/<cell>``: a model trained on ``pieces`` tiny melodies extracted into ``root/processed/tiny``.

    ``kw`` are TrainConfig options over those of :func:`_tiny_train_config` (one epoch).
    """
    from pipeline.stages.extract import ExtractConfig, extract
    from pipeline.stages.train import train

    for k in range(pieces):
        _write_pm(root / "midi" / f"p{k}.mid", _melody(notes, k))
    extract([root / "midi"], ExtractConfig(name="tiny", out=str(root / "processed"), workers=1))
    config = _tiny_train_config(root / "processed" / "tiny", **{"epochs": 1, **kw})
    train(config, root / "runs" / config.cell)
    return root / "runs" / config.cell


@pytest.fixture(scope="session")
def write_pm():
    """``write_pm(path, [(pitch, start, end), ...], program=0, drums=None, velocity=90)``: a MIDI file."""
    return _write_pm


@pytest.fixture(scope="session")
def melody():
    """``melody(n, seed, base=60)``: (pitch, start, end) notes of a scale-wise melody."""
    return _melody


@pytest.fixture(scope="session")
def tiny_train_config():
    """``tiny_train_config(dataset, **options)``: a TrainConfig small enough for a test."""
    return _tiny_train_config


@pytest.fixture(scope="session")
def tiny_run():
    """``tiny_run(root, pieces=4, notes=60, **options)``: extract tiny melodies and train one epoch on them."""
    return _tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained GRU (its dataset beside it), one a test module."""
    return _tiny_run(tmp_path_factory.mktemp("devices"))


# ------------------------------------------------------------------ the shared Chopin nocturnes

@pytest.fixture
def chopin() -> Path:
    """The nocturnes' folder; the test is skipped where it is missing, except in CI.

    In CI the shared files must be there: a missing folder fails instead of skipping unseen.
    """
    if not CHOPIN.is_dir() and not os.environ.get("CI"):
        pytest.skip(f"shared Chopin files not found at {CHOPIN} (set MUSICRNN_CHOPIN)")
    return CHOPIN


@pytest.fixture
def chopin_files() -> list[Path]:
    """The nocturnes' MIDI files; the test is skipped where there are none."""
    paths = sorted(CHOPIN.glob("*.mid")) if CHOPIN.is_dir() else []
    if not paths:
        pytest.skip(f"shared Chopin files not found at {CHOPIN} (set MUSICRNN_CHOPIN)")
    return paths


# ------------------------------------------------------------------ audio

def _write_midi(path: Path, notes: list[tuple[int, float, float]], *, drums: bool = False) -> Path:
    """Write one piano (or drum) track of (pitch, start, end) notes at velocity 100."""
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0, is_drum=drums)
    inst.notes = [pretty_midi.Note(velocity=100, pitch=p, start=s, end=e) for p, s, e in notes]
    midi.instruments.append(inst)
    midi.write(str(path))
    return path


@pytest.fixture(scope="session")
def write_midi():
    """``write_midi(path, notes, drums=False)``: one track at velocity 100, as the audio tests want it."""
    return _write_midi


@pytest.fixture
def three_seconds(tmp_path: Path) -> Path:
    """A C major scale fragment: six half-second notes, ending at 3.0 s."""
    scale = [60, 62, 64, 65, 67, 69]
    return _write_midi(tmp_path / "scale.mid", [(p, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate(scale)])


# ------------------------------------------------------------------ ABC tunebooks and a tiny chars run

TUNES = [
    "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|",
    "X:2\nT:Down\nM:4/4\nL:1/4\nK:C\ncBAG|FEDC|",
    "X:3\nT:Jig\nM:6/8\nL:1/8\nK:G\nGAB c2d|e2d cBA|G3 G3|",
    "X:4\nT:Waltz\nM:3/4\nL:1/4\nK:D\nDFA|d2c|BAG|F3|",
    "X:5\nT:Reel\nM:4/4\nL:1/8\nK:D\nd2fd Adfd|g2bg fgaf|",
    "X:6\nT:Air\nM:3/4\nL:1/4\nK:F\nFAc|f2e|dcB|A3|",
]
CHARS_WINDOW = 8  # the window of ``chars_run``


def _write_book(path: Path, tunes: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("%abc-2.1\n% a header that belongs to no tune\n\n" + "\n\n".join(tunes) + "\n")
    return path


def _run_extract(book: Path, out: Path, name: str, abc_header: str = "music") -> Path:
    from pipeline.stages.extract import ExtractConfig, extract

    extract([book], ExtractConfig(name=name, out=str(out), workers=1, abc_header=abc_header))
    return out / name


@pytest.fixture(scope="session")
def tunes() -> list[str]:
    """Six short tunes, the first a C major scale."""
    return list(TUNES)


@pytest.fixture(scope="session")
def write_book():
    """``write_book(path, tunes)``: a tunebook with a header that belongs to no tune."""
    return _write_book


@pytest.fixture(scope="session")
def run_extract():
    """``run_extract(book, out, name, abc_header="music")``: extract one tunebook, return the dataset folder."""
    return _run_extract


@pytest.fixture(scope="module")
def tunes_dataset(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("abc")
    return _run_extract(_write_book(tmp / "book.abc", TUNES), tmp / "processed", "book")


@pytest.fixture(scope="module")
def chars_window() -> int:
    return CHARS_WINDOW


@pytest.fixture(scope="module")
def chars_run(tunes_dataset, tmp_path_factory) -> Path:
    from pipeline.stages.train import train
    from pipeline.store.rundir import TrainConfig

    run = tmp_path_factory.mktemp("runs") / "chars"
    train(TrainConfig(dataset=str(tunes_dataset), encoding="chars", cell="lstm", layers=1, hidden=16, embed=8,
                      window=CHARS_WINDOW, stride=4, batch=16, epochs=1, threads=1, seed=0), run)
    return run


@pytest.fixture
def ends_at_once(chars_run, tmp_path) -> Path:
    """A copy of the tiny run whose head always says <end> (a hand-set bias)."""
    from pipeline.codecs import END

    run = tmp_path / "ends"
    shutil.copytree(chars_run, run)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    end = ckpt["vocab"].index(END)
    ckpt["model"]["head.bias"][end] = 50.0
    torch.save(ckpt, run / "best.pt")
    return run


# ------------------------------------------------------------------ roll files

CHORDS = [[60, 64, 67], [60, 64, 67], [62, 65, 69], [], [59, 62, 67, 74]]


def _roll_file(path: Path, n: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    data = {side: [[CHORDS[int(i)] for i in rng.integers(0, len(CHORDS), 40)] for _ in range(k)]
            for side, k in n.items()}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="session")
def roll_file():
    """``roll_file(path, {"train": 6, "valid": 2, ...})``: a JSON roll file of 40-frame pieces a side."""
    return _roll_file


# ------------------------------------------------------------------ a listening page and its answer files

PAGE_ID = "0123456789ab"

KEY = {"A": {"letter": "A", "cell": "gru", "name": "gru-1x8", "run": "runs/gru"},
       "B": {"letter": "B", "cell": "real", "name": "real continuation", "run": ""},
       "C": {"letter": "C", "cell": "ngram", "name": "3-gram", "run": ""}}


def _answers_file(path: Path, answers: dict, listener: str = "", session: str = "", page: str = PAGE_ID,
                  saved: str = "2025-01-01T10:00:00.000Z") -> Path:
    """An answer file as the page exports it."""
    from pipeline.store.page import ANSWERS_KIND, ANSWERS_VERSION

    path.write_text(json.dumps({"format": ANSWERS_KIND, "version": ANSWERS_VERSION, "page": page,
                                "listener": listener, "session": session, "saved": saved, "answers": answers}))
    return path


@pytest.fixture(scope="session")
def answers_file():
    """``answers_file(path, answers, listener="", session="", page=<the page fixture's id>)``."""
    return _answers_file


@pytest.fixture
def page(tmp_path) -> Path:
    """A blind page's record and key (no media): two rows, columns A (gru), B (real), C (3-gram).

    Its id is ``0123456789ab`` (tests that write answer files by hand spell it as ``PAGE_ID``).
    """
    from pipeline.store.page import write_page_record

    folder = tmp_path / "page"
    folder.mkdir()
    write_page_record(folder, {"blind": True, "page_id": PAGE_ID, "temperatures": [1.0], "count": 2}, KEY)
    return folder
