"""Shared fixtures: tiny MIDI files built in code, and a tiny processed dataset."""
from __future__ import annotations

from pathlib import Path

import mido
import pretty_midi
import pytest

import os

# ../shared/data/chopin-nocturnes beside the project (as in CI), or wherever MUSICRNN_CHOPIN says
CHOPIN = Path(os.environ.get("MUSICRNN_CHOPIN")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chopin-nocturnes")


def write_pm(path: Path, notes: list[tuple[int, float, float]], program: int = 0, drums: list | None = None,
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


def melody(n: int, seed: int, base: int = 60) -> list[tuple[int, float, float]]:
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
        write_pm(folder / f"piece{k}.mid", melody(80, k), drums=[(36, 0.0, 0.1)] if k == 0 else None)
    return folder


@pytest.fixture
def tiny_dataset(tiny_midi_dir: Path, tmp_path: Path) -> Path:
    from pipeline.stages.extract import ExtractConfig, extract

    extract([tiny_midi_dir], ExtractConfig(name="tiny", out=str(tmp_path / "processed"), workers=1))
    return tmp_path / "processed" / "tiny"


def tiny_train_config(dataset: Path, **kw):
    from pipeline.store.rundir import TrainConfig

    base = dict(dataset=str(dataset), cell="gru", layers=1, hidden=16, embed=8, window=8, stride=4,
                batch=16, epochs=3, patience=10, threads=1, seed=1, transpose=0)
    base.update(kw)
    return TrainConfig(**base)


def type0_file(path: Path) -> Path:
    """A type-0 file written with mido: note-offs as velocity-0 note-ons, overlapping notes."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    tr.append(mido.Message("note_on", note=60, velocity=80, time=0))
    tr.append(mido.Message("note_on", note=64, velocity=80, time=0))      # chord with 60
    tr.append(mido.Message("note_on", note=67, velocity=70, time=240))    # overlaps 60 and 64
    tr.append(mido.Message("note_on", note=60, velocity=0, time=240))     # velocity-0 note-off
    tr.append(mido.Message("note_on", note=64, velocity=0, time=0))
    tr.append(mido.Message("note_off", note=67, velocity=0, time=480))
    tr.append(mido.MetaMessage("end_of_track", time=0))
    mid.save(str(path))
    return path


def tiny_run(root: Path, pieces: int = 4, notes: int = 60, **kw) -> Path:
    """``root/runs/<cell>``: a model trained on ``pieces`` tiny melodies extracted into ``root/processed/tiny``.

    ``kw`` are TrainConfig options over those of :func:`tiny_train_config` (one epoch).
    """
    from pipeline.stages.extract import ExtractConfig, extract
    from pipeline.stages.train import train

    for k in range(pieces):
        write_pm(root / "midi" / f"p{k}.mid", melody(notes, k))
    extract([root / "midi"], ExtractConfig(name="tiny", out=str(root / "processed"), workers=1))
    config = tiny_train_config(root / "processed" / "tiny", **{"epochs": 1, **kw})
    train(config, root / "runs" / config.cell)
    return root / "runs" / config.cell
