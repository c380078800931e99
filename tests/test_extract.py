"""The extract stage: manifest, split, caching, bad files, atomic output."""
import json
import os

import pandas as pd
import pytest

from conftest import write_pm, melody
from pipeline.core.errors import NoUsableInputError
from pipeline.store.dataset import assign_split, load_dataset
from pipeline.stages.extract import ExtractConfig, extract


def run(paths, tmp_path, **kw):
    return extract(paths, ExtractConfig(name="ds", out=str(tmp_path / "processed"), workers=kw.pop("workers", 1), **kw))


def test_outputs(tiny_dataset):
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    assert m["totals"]["files_ok"] == 4 and m["totals"]["pieces"] == 4
    assert m["totals"]["dropped"] == {"drum track": 1}
    assert all(len(f["sha256"]) == 64 and f["status"] == "ok" for f in m["files"])
    notes = pd.read_parquet(tiny_dataset / "notes.parquet")
    assert list(notes.columns) == ["piece", "track", "program", "pitch", "velocity", "start", "end",
                                   "start_beat", "end_beat"]
    assert len(notes) == m["totals"]["notes"] == 4 * 100
    split = json.loads((tiny_dataset / "split.json").read_text())
    assert len(split["validation"]) >= 1 and set(split["train"]).isdisjoint(split["validation"])
    assert sorted(split["train"] + split["validation"]) == [f"piece{k}" for k in range(4)]
    for enc in ("names", "pitch"):
        ds = load_dataset(tiny_dataset, enc)
        assert set(ds.sequences) == set(split["train"] + split["validation"])
        assert all(t in ds.vocab.index for s in ds.sequences.values() for t in s)


def test_bad_files_are_reported_and_skipped(tmp_path, tiny_midi_dir):
    (tiny_midi_dir / "corrupt.mid").write_bytes(b"MThd garbage")
    (tiny_midi_dir / "empty.MIDI").write_bytes(b"")
    (tiny_midi_dir / "sub").mkdir()
    write_pm(tiny_midi_dir / "sub" / "deep.MID", melody(40, 7))
    (tiny_midi_dir / "notes.txt").write_text("ignored: not an input suffix")
    lines = []
    summary = extract([tiny_midi_dir], ExtractConfig(name="ds", out=str(tmp_path / "p"), workers=2), log=lines.append)
    assert summary["files_ok"] == 5 and summary["files_skipped"] == 2
    assert len(lines) == 2 and all("\n" not in l for l in lines)
    m = json.loads((tmp_path / "p" / "ds" / "manifest.json").read_text())
    skipped = {os.path.basename(f["path"]): f["reason"] for f in m["files"] if f["status"] == "skipped"}
    assert set(skipped) == {"corrupt.mid", "empty.MIDI"}


def test_no_usable_file_fails_and_keeps_previous_output(tmp_path, tiny_midi_dir):
    run([tiny_midi_dir], tmp_path)
    before = (tmp_path / "processed" / "ds" / "manifest.json").read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mid").write_bytes(b"nope")
    with pytest.raises(NoUsableInputError):
        run([bad], tmp_path)
    assert (tmp_path / "processed" / "ds" / "manifest.json").read_text() == before
    with pytest.raises(NoUsableInputError):
        run([tmp_path / "does-not-exist"], tmp_path)


def test_rerun_parses_only_changed_files(tmp_path, tiny_midi_dir):
    first = run([tiny_midi_dir], tmp_path)
    assert first["files_reused"] == 0
    again = run([tiny_midi_dir], tmp_path)
    assert again["files_reused"] == 4
    write_pm(tiny_midi_dir / "piece1.mid", melody(90, 11))
    third = run([tiny_midi_dir], tmp_path)
    assert third["files_reused"] == 3 and third["notes"] != first["notes"]


def test_split_is_deterministic_and_stable_under_additions():
    pieces = [f"p{i}" for i in range(10)]
    a = assign_split(pieces, 0.2, 0)
    assert a == assign_split(list(reversed(pieces)), 0.2, 0)
    assert a["validation"]
    b = assign_split(pieces + ["new1", "new2"], 0.2, 0)
    assert set(a["validation"]) <= set(b["validation"])
    assert set(a["train"]) <= set(b["train"])
    one = assign_split(["only"], 0.2, 0)
    assert one["tail_fraction"] > 0


def test_single_piece_dataset_trains_on_head_validates_on_tail(tmp_path):
    path = write_pm(tmp_path / "solo.mid", melody(200, 1))
    run([path], tmp_path)
    ds = load_dataset(tmp_path / "processed" / "ds", "names")
    tr, va = ds.piece_arrays("train"), ds.piece_arrays("validation")
    assert len(tr[0]) + len(va[0]) == len(ds.sequences["solo"]) and len(va[0]) > 0


def test_parallel_equals_serial(tmp_path, tiny_midi_dir):
    a = extract([tiny_midi_dir], ExtractConfig(name="a", out=str(tmp_path / "p"), workers=1))
    b = extract([tiny_midi_dir], ExtractConfig(name="b", out=str(tmp_path / "p"), workers=2))
    na = pd.read_parquet(tmp_path / "p" / "a" / "notes.parquet")
    nb = pd.read_parquet(tmp_path / "p" / "b" / "notes.parquet")
    pd.testing.assert_frame_equal(na, nb)
    assert a["tokens"] == b["tokens"]


def test_extract_command_imports_neither_torch_nor_music21(tmp_path, tiny_midi_dir):
    import subprocess
    import sys
    from pathlib import Path

    (tiny_midi_dir / "book.abc").write_text("X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|\n")
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from cli import main; "
            f"main(['extract', {str(tiny_midi_dir)!r}, '--name', 'x', '--out', {str(tmp_path / 'p')!r}, "
            "'--workers', '1'], standalone_mode=False); "
            "print('heavy:', sorted(m for m in ('torch', 'music21') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "extracted 5 files" in out.stdout and "heavy: []" in out.stdout
