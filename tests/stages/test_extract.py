"""The extract stage: manifest, split, caching, bad files, atomic output; ABC tunebooks and roll files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline.codecs import END, START, decode_chars
from pipeline.core.errors import NoUsableInputError
from pipeline.inputs import abc_io
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.store.dataset import load_dataset


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


def test_bad_files_are_reported_and_skipped(melody, write_pm, tmp_path, tiny_midi_dir):
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


def test_rerun_parses_only_changed_files(melody, write_pm, tmp_path, tiny_midi_dir):
    first = run([tiny_midi_dir], tmp_path)
    assert first["files_reused"] == 0
    again = run([tiny_midi_dir], tmp_path)
    assert again["files_reused"] == 4
    write_pm(tiny_midi_dir / "piece1.mid", melody(90, 11))
    third = run([tiny_midi_dir], tmp_path)
    assert third["files_reused"] == 3 and third["notes"] != first["notes"]


def test_single_piece_dataset_trains_on_head_validates_on_tail(melody, write_pm, tmp_path):
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
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from cli import main; "
            f"main(['extract', {str(tiny_midi_dir)!r}, '--name', 'x', '--out', {str(tmp_path / 'p')!r}, "
            "'--workers', '1'], standalone_mode=False); "
            "print('heavy:', sorted(m for m in ('torch', 'music21') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "extracted 5 files" in out.stdout and "heavy: []" in out.stdout


NO_KEY = "X:7\nT:Broken\nM:4/4\nL:1/4\nCDEF|GABc|"  # no K: field: abc2midi (extract's reader) plays nothing


# --------------------------------------------------------------------------- extract

@pytest.mark.parametrize("header", ["music", "full"])
def test_two_tune_book_to_framed_chars_and_back(tunes, run_extract, write_book, tmp_path, header):
    book = write_book(tmp_path / "two.abc", tunes[:2])
    folder = run_extract(book, tmp_path / "processed", "two", header)
    seqs = json.loads((folder / "chars" / "sequences.json").read_text())["pieces"]
    vocab = json.loads((folder / "chars" / "vocab.json").read_text())
    assert sorted(seqs) == ["two#1", "two#2"]
    texts = [t.text for t in abc_io.split_tunebook(book.read_text())]
    for piece, text in zip(["two#1", "two#2"], texts):
        seq = seqs[piece]
        assert seq[0] == START and seq[-1] == END and START not in seq[1:-1] and END not in seq[1:-1]
        assert decode_chars(seq) == (abc_io.music_text(text) if header == "music" else text)
    assert texts == tunes[:2]
    assert {START, END} <= set(vocab) and "\n" in vocab
    split = json.loads((folder / "split.json").read_text())
    assert sorted(split["train"] + split["validation"]) == ["two#1", "two#2"] and split["validation"]


def test_broken_tune_is_counted_listed_and_skipped(tunes, run_extract, write_book, tmp_path):
    book = write_book(tmp_path / "book.abc", [tunes[0], NO_KEY, tunes[2]])
    folder = run_extract(book, tmp_path / "processed", "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    [entry] = manifest["files"]
    assert entry["status"] == "ok" and entry["pieces"] == 2
    [unit] = entry["skipped_units"]
    assert unit["tune"] == "book#7" and unit["title"] == "Broken" and unit["reason"]
    assert manifest["totals"]["dropped"]["unparseable tune"] == 1
    seqs = json.loads((folder / "chars" / "sequences.json").read_text())["pieces"]
    assert sorted(seqs) == ["book#1", "book#3"]


def test_a_pickle_that_runs_code_is_refused_in_one_line(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps({"train": [[[60]]], "x": Evil()}))
    with pytest.raises(Exception):
        extract([bad], ExtractConfig(name="bad", out=str(tmp_path / "processed"), workers=1))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["jsb-chorales", "piano-midi"])
def test_a_benchmark_file_extracts_to_frames_that_give_its_rolls_back(corpus, tmp_path):
    """roll -> extract -> frames -> roll, exact for every piece (up to a piece's trailing silent frames, which a
    note table cannot hold), each side of the file's split kept as it was."""
    from pipeline.codecs.frames import tokens_to_rolls
    from pipeline.inputs.rolls import read_rolls
    from pipeline.stages.extract import ExtractConfig, extract
    from pipeline.store.dataset import load_dataset

    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "polyphonic" / f"{corpus}.mat"
    if not path.exists():
        pytest.skip(f"shared benchmark file not found at {path}")
    extract([path], ExtractConfig(name="b", out=str(tmp_path), workers=1))
    ds = load_dataset(tmp_path / "b", "frames")
    rolls = read_rolls(path)
    for side, ours in (("train", "train"), ("valid", "validation")):
        assert len(ds.split[ours]) == len(rolls.splits[side])
        for i, roll in enumerate(rolls.splits[side]):
            want = [sorted(f) for f in roll]
            while want and not want[-1]:
                want.pop()
            tokens = ds.sequences[f"{corpus}#{side}-{i:03d}"]
            assert tokens[0] == "|" and tokens_to_rolls(tokens[1:]) == want
