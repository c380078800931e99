"""inputs/rolls.py: piano-roll files (.mat, .pickle, .json) read exactly, and refused safely."""
from __future__ import annotations

import io
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pipeline.codecs.frames import OUTSIDE_KEYS, notes_to_frames, rolls_to_tokens, tokens_to_rolls
from pipeline.core.errors import PipelineError, RollReadError
from pipeline.inputs.rolls import RollFile, read_rolls, read_rolls_bytes, rolls_to_notes

POLYPHONIC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "polyphonic"

# pieces (train, valid) and train frames, as SOURCES.md lists them
CORPORA = {"jsb-chorales": (229, 76, 13_807), "nottingham": (694, 173, 176_561),
           "musedata": (524, 135, 245_202), "piano-midi": (87, 12, 75_911)}


def corpus(name: str) -> Path:
    path = POLYPHONIC / f"{name}.mat"
    if not path.is_file():
        pytest.skip(f"shared benchmark file not found at {path}")
    return path


@pytest.fixture(scope="module")
def jsb() -> RollFile:
    return read_rolls(corpus("jsb-chorales"))


def mat_bytes(**variables: object) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    return buf.getvalue()


def cell(*pieces: np.ndarray) -> np.ndarray:
    out = np.empty((1, len(pieces)), dtype=object)
    for j, p in enumerate(pieces):
        out[0, j] = p
    return out


def roll_matrix(frames: list[list[int]]) -> np.ndarray:
    m = np.zeros((len(frames), 88), np.uint8)
    for i, f in enumerate(frames):
        m[i, [p - 21 for p in f]] = 1
    return m


def one_line_error(data: bytes, suffix: str, *expected: str) -> str:
    with pytest.raises(RollReadError) as info:
        read_rolls_bytes(data, suffix, label="bad" + suffix)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("bad" + suffix + ": ")
    for text in expected:
        assert text in msg
    return msg


# ------------------------------------------------------------------ the real files

@pytest.mark.parametrize("name", [pytest.param(c, marks=[] if c == "jsb-chorales" else pytest.mark.slow)
                                  for c in CORPORA])  # the big corpora in the slow suite
def test_real_file_round_trips_exactly(name: str):
    """roll -> note table -> frames -> roll is the identity for every piece of every split."""
    rf = read_rolls(corpus(name))
    n_train, n_valid, train_frames = CORPORA[name]
    assert rf.sides == ("train", "valid") and rf.report() == {}
    assert [len(rf.splits[s]) for s in rf.sides] == [n_train, n_valid]
    assert sum(map(len, rf.splits["train"])) == train_frames
    t0 = time.perf_counter()
    for side, pieces in rf.splits.items():
        names = [f"{name}-{side}-{j:03d}" for j in range(len(pieces))]
        notes = rolls_to_notes(pieces, frame_seconds=0.125, frame_beats=0.25, names=names)
        by_piece = dict(tuple(notes.groupby("piece", sort=False)))
        assert set(by_piece) == set(names)  # no piece of the benchmarks is silent throughout
        for piece, roll in zip(names, pieces):
            tokens, dropped = notes_to_frames(by_piece[piece], 0.25, n_frames=len(roll))
            assert dropped == {}
            assert tokens_to_rolls(tokens) == roll, piece
            assert rolls_to_tokens(roll) == tokens, piece
            # without the roll's length the trailing silence goes, the leading silence stays
            bare, _ = notes_to_frames(by_piece[piece], 0.25)
            last = max(i for i, f in enumerate(roll) if f)
            assert tokens_to_rolls(bare) == roll[:last + 1]
    assert time.perf_counter() - t0 < 60


def test_real_file_round_trip_on_a_grid_of_thirds(jsb: RollFile):
    """A grid step that is no binary fraction still puts every frame back on its own index."""
    pieces = jsb.splits["valid"]
    names = [f"p{j}" for j in range(len(pieces))]
    notes = rolls_to_notes(pieces, frame_seconds=0.7, frame_beats=1 / 3, names=names)
    for piece, roll in zip(names, pieces):
        tokens, _ = notes_to_frames(notes[notes["piece"] == piece], 1 / 3, n_frames=len(roll))
        assert tokens_to_rolls(tokens) == roll


def test_pickle_and_json_of_the_same_nesting_read_as_the_mat(jsb: RollFile, tmp_path: Path):
    nested = {"train": jsb.splits["train"], "valid": jsb.splits["valid"]}
    (tmp_path / "jsb.pickle").write_bytes(pickle.dumps(nested, protocol=2))
    (tmp_path / "jsb.json").write_text(json.dumps(nested))
    # the same with tuples for frames, as some exports write them
    (tmp_path / "jsb.pkl").write_bytes(pickle.dumps({k: [[tuple(f) for f in p] for p in v] for k, v in nested.items()}))
    for path in sorted(tmp_path.iterdir()):
        assert read_rolls(path).splits == jsb.splits, path.name


# ------------------------------------------------------------------ splits

def test_a_file_with_only_the_test_split_reads(tmp_path: Path):
    roll = [[60, 64], [60, 64], [], [62]]
    (tmp_path / "only.mat").write_bytes(mat_bytes(testdata=cell(roll_matrix(roll), roll_matrix([[21], [108]]))))
    (tmp_path / "only.json").write_text(json.dumps({"test": [roll, [[21], [108]]]}))
    (tmp_path / "only.pickle").write_bytes(pickle.dumps({"test": [roll, [[21], [108]]]}))
    for path in sorted(tmp_path.iterdir()):
        rf = read_rolls(path)
        assert rf.sides == ("test",) and rf.splits["test"] == [roll, [[21], [108]]], path.name


def test_python2_pickles_read():
    # cPickle protocol 0 of {'test': [[[60L, 64L], []]]}, and protocol 2 with byte-string keys
    p0 = b"(dp0\nS'test'\np1\n(lp2\n(lp3\n(lp4\nL60L\naL64L\naa(lp5\naas."
    p2 = b"\x80\x02}q\x00U\x04testq\x01]q\x02]q\x03(]q\x04(K<K@e]q\x05(K>\x8a\x01Ceeas."
    assert read_rolls_bytes(p0, ".pickle").splits == {"test": [[[60, 64], []]]}
    assert read_rolls_bytes(p2, "pkl").splits == {"test": [[[60, 64], [62, 67]]]}


def test_frames_are_sorted_and_integral_floats_are_pitches():
    rf = read_rolls_bytes(json.dumps({"valid": [[[67, 60.0, 64, 60]]]}).encode(), ".json")
    assert rf.splits == {"valid": [[[60, 64, 67]]]}
    sets = read_rolls_bytes(pickle.dumps({"test": [[{64, 60}, frozenset([62]), ()]]}, protocol=4), ".pickle")
    assert sets.splits == {"test": [[[60, 64], [62], []]]}


# ------------------------------------------------------------------ refusing

class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Open:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path):
    marker = tmp_path / "ran"
    for evil, name in ((_System(f"touch {marker}"), "system"), (_Open(str(marker)), ".open")):
        path = tmp_path / "evil.pickle"
        path.write_bytes(pickle.dumps({"train": [[[60]]], "test": [evil]}))
        with pytest.raises(RollReadError) as info:
            read_rolls(path)
        msg = str(info.value)
        assert msg.startswith("evil.pickle: refused to unpickle ") and name in msg and "\n" not in msg
        assert "only plain lists, dicts, numbers and strings are read" in msg
        assert not marker.exists()


def test_a_pickle_of_numpy_arrays_is_refused_in_one_line():
    data = pickle.dumps({"train": [np.zeros((3, 88), np.uint8)]})
    one_line_error(data, ".pickle", "refused to unpickle numpy.")


@pytest.mark.parametrize("data, suffix, expected", [
    (mat_bytes(traindata=cell(np.zeros((4, 87), np.uint8))), ".mat", "traindata piece 0 has shape 4x87, not T x 88"),
    (mat_bytes(traindata=cell(np.full((4, 88), 2, np.uint8))), ".mat", "values other than 0 and 1"),
    (mat_bytes(traindata=np.zeros((4, 88))), ".mat", "traindata is not a cell array"),
    (mat_bytes(other=cell(np.zeros((4, 88)))), ".mat", "holds none of traindata, validdata, testdata"),
    (mat_bytes(validdata=cell(np.zeros((4, 88))))[:200], ".mat", "not a readable MATLAB file"),
    (b"not a mat file at all", ".mat", "not a readable MATLAB file"),
    (b"", ".mat", "not a readable MATLAB file"),
    (b'{"train": [[[60]]', ".json", "not readable JSON"),
    (b"\xff\xfe", ".json", "not readable JSON"),
    (b"[[[60]]]", ".json", "holds a list, not a dict of splits"),
    (b'{"tracks": []}', ".json", "holds none of the splits"),
    (b'{"train": [[["C4"]]]}', ".json", "train piece 0, frame 0: 'C4' is not a MIDI pitch"),
    (b'{"train": [[[200]]]}', ".json", "pitch 200 is not a MIDI pitch (0..127)"),
    (b'{"train": [[60, 64]]}', ".json", "train piece 0, frame 0 is a int, not a list of pitches"),
    (b'{"valid": {"a": 1}}', ".json", "valid is a dict, not a list of pieces"),
    (pickle.dumps({"train": [[[60, 64]]]})[:-5], ".pickle", "not a readable pickle"),
    (b"", ".pkl", "not a readable pickle"),
    (b"whatever", ".txt", "not a roll file"),
])
def test_malformed_files_raise_one_line(data: bytes, suffix: str, expected: str):
    one_line_error(data, suffix, expected)


def test_missing_file_and_empty_roll_file(tmp_path: Path):
    with pytest.raises(RollReadError, match="nothing.mat: cannot read the file"):
        read_rolls(tmp_path / "nothing.mat")
    with pytest.raises(RollReadError, match="holds none of the splits"):
        RollFile({})
    with pytest.raises(RollReadError, match="unknown split 'extra'"):
        RollFile({"train": [], "extra": []})
    assert issubclass(RollReadError, PipelineError)


# ------------------------------------------------------------------ notes

def test_rolls_to_notes_holds_consecutive_frames_as_one_note():
    notes = rolls_to_notes([[[60], [60, 64], [], [64, 64]], [[], [50]]], frame_seconds=0.5, frame_beats=0.25,
                           names=["a", "b"])
    rows = notes[["piece", "pitch", "start", "end", "start_beat", "end_beat"]].values.tolist()
    assert rows == [["a", 60, 0.0, 1.0, 0.0, 0.5], ["a", 64, 0.5, 1.0, 0.25, 0.5], ["a", 64, 1.5, 2.0, 0.75, 1.0],
                    ["b", 50, 0.5, 1.0, 0.25, 0.5]]
    assert set(notes["track"]) == {0} and set(notes["program"]) == {0} and set(notes["velocity"]) == {80}
    assert rolls_to_notes([], frame_seconds=0.5, frame_beats=0.25, names=[]).empty
    with pytest.raises(ValueError, match="distinct names"):
        rolls_to_notes([[[60]], [[62]]], frame_seconds=0.5, frame_beats=0.25, names=["a", "a"])


def test_notes_outside_the_piano_are_counted_not_dropped_silently():
    # pitch 10 held over two frames (one note), 120 in one frame, 10 again after a gap (a second note)
    rf = read_rolls_bytes(json.dumps({"train": [[[10, 60], [10], [120], [10]]], "valid": [[[60]]]}).encode(), "json")
    assert rf.report() == {f"train: notes {OUTSIDE_KEYS} (21..108)": 3}
    notes = rolls_to_notes(rf.splits["train"], frame_seconds=1, frame_beats=1, names=["x"])
    assert sorted(notes["pitch"]) == [10, 10, 60, 120]  # kept in the table
    tokens, dropped = notes_to_frames(notes, 1, n_frames=4)
    assert dropped == {OUTSIDE_KEYS: 3} and tokens == ["C4", "|", "|", "|", "|"]
