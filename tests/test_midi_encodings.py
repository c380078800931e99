"""MIDI reading and the names/pitch encodings, with round trips."""
import numpy as np
import pandas as pd
import pytest

from conftest import type0_file, write_pm
from pipeline.codecs import (Vocabulary, build_vocabulary, encode_notes, groups_to_tokens, onset_groups,
                                tokens_to_groups, tokens_to_pitches)
from pipeline.core.errors import MidiReadError
from pipeline.inputs.midi_io import midi_file_to_notes, notes_to_midi_file
from pipeline.stages.render import TimingModel, tokens_to_notes


def test_single_note(tmp_path):
    notes, report = midi_file_to_notes(write_pm(tmp_path / "a.mid", [(64, 0.0, 0.5)]))
    assert list(notes["pitch"]) == [64]
    assert notes["start"].iloc[0] == pytest.approx(0.0)
    assert notes["end"].iloc[0] == pytest.approx(0.5, abs=1e-3)
    # 120 qpm: half a second is one beat
    assert notes["end_beat"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert encode_notes(notes, "names") == ["E4"]
    assert encode_notes(notes, "pitch") == ["64"]
    assert report.notes == 1 and report.dropped == {}


def test_chord_is_one_names_token_low_to_high(tmp_path):
    path = write_pm(tmp_path / "c.mid", [(67, 0, 1), (60, 0, 1), (64, 0, 1), (72, 1, 2)])
    notes, _ = midi_file_to_notes(path)
    assert encode_notes(notes, "names") == ["C4.E4.G4", "C5"]
    assert encode_notes(notes, "pitch") == ["60", "64", "67", "72"]


def test_onset_tolerance_groups_human_chords():
    df = pd.DataFrame({"piece": "p", "track": 0, "program": 0, "pitch": [60, 64, 67],
                       "velocity": 80, "start": [0.0, 0.012, 0.025], "end": [1.0, 1.0, 1.0],
                       "start_beat": [0.0, 0.024, 0.05], "end_beat": [2.0, 2.0, 2.0]})
    assert encode_notes(df, "names", tolerance=0.0) == ["C4", "E4", "G4"]
    assert encode_notes(df, "names", tolerance=0.03) == ["C4.E4.G4"]


def test_type0_velocity0_noteoff_and_overlap(tmp_path):
    notes, _ = midi_file_to_notes(type0_file(tmp_path / "t0.mid"))
    assert sorted(notes["pitch"]) == [60, 64, 67]
    by = notes.set_index("pitch")
    # the velocity-0 note-on ends C4 at tick 480 = 0.5 s; G4 starts before C4 ends (overlap)
    assert by.loc[60, "end"] == pytest.approx(0.5)
    assert by.loc[67, "start"] == pytest.approx(0.25)
    assert encode_notes(notes, "names") == ["C4.E4", "G4"]


def test_drum_tracks_are_dropped_and_counted(tmp_path):
    path = write_pm(tmp_path / "d.mid", [(60, 0, 1)], drums=[(36, 0, 0.1), (38, 0.5, 0.6)])
    notes, report = midi_file_to_notes(path)
    assert list(notes["pitch"]) == [60]
    assert report.dropped == {"drum track": 2}


@pytest.mark.parametrize("content", [b"", b"MThd\x00\x00\x00\x06\x00\x01", b"hello, not midi", b"\x00" * 100])
def test_bad_files_raise_named_error(tmp_path, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(MidiReadError) as err:
        midi_file_to_notes(path)
    assert "\n" not in str(err.value) and "bad.mid" in str(err.value)


def test_truncated_real_file(tmp_path):
    good = write_pm(tmp_path / "g.mid", [(60 + i, i * 0.5, i * 0.5 + 0.4) for i in range(20)])
    cut = tmp_path / "cut.mid"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(MidiReadError):
        midi_file_to_notes(cut)


def test_file_with_no_notes(tmp_path):
    with pytest.raises(MidiReadError, match="no pitched notes"):
        midi_file_to_notes(write_pm(tmp_path / "e.mid", []))


@pytest.mark.parametrize("encoding", ["names", "pitch"])
def test_tokens_midi_tokens_round_trip(tmp_path, encoding):
    tokens = {"names": ["C4", "C4.E4.G4", "A#2.F5", "B7", "C-1", "G9"],
              "pitch": ["60", "64", "0", "127", "61", "61"]}[encoding]
    timing = TimingModel(np.array([[0.25, 0.5], [1.0, 2.0], [0.02, 0.1]]), qpm=100)
    notes = tokens_to_notes(tokens, encoding, timing, seed=3)
    path = notes_to_midi_file(notes, tmp_path / "rt.mid", tempo=100)
    back, _ = midi_file_to_notes(path)
    assert encode_notes(back, encoding) == tokens


def test_notes_midi_notes_round_trip(tmp_path):
    notes, _ = midi_file_to_notes(write_pm(tmp_path / "a.mid", [(60, 0, 0.5), (62, 0.5, 1.5), (64, 0.5, 1.0)]))
    back, _ = midi_file_to_notes(notes_to_midi_file(notes, tmp_path / "b.mid"))
    cols = ["pitch", "velocity", "start", "end"]
    pd.testing.assert_frame_equal(back[cols], notes[cols], atol=2e-3)


def test_groups_tokens_inverse():
    groups = [[60], [48, 55, 64], [127]]
    assert tokens_to_groups(groups_to_tokens(groups, "names"), "names") == groups
    assert tokens_to_pitches(groups_to_tokens(groups, "names"), "names") == [60, 48, 55, 64, 127]
    with pytest.raises(ValueError):
        tokens_to_groups(["128"], "pitch")


def test_vocabulary_round_trip(tmp_path):
    v = build_vocabulary([["E4", "C4.E4"], ["C4", "E4"]], "names")
    assert v.tokens == ["C4", "C4.E4", "E4"]
    ids = v.encode(["E4", "C4"])
    assert v.decode(ids) == ["E4", "C4"]
    v.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == v
    assert build_vocabulary([], "pitch").encode(["0", "127"]).tolist() == [0, 127]


def test_onset_groups_empty():
    from pipeline.core.notes import empty_note_table
    assert onset_groups(empty_note_table()) == []
