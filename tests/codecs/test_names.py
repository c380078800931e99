"""codecs/names.py: the names encoding (one token an onset, chords as dotted names)."""

import pytest

from pipeline.codecs import encode_notes, groups_to_tokens, tokens_to_groups, tokens_to_pitches
from pipeline.inputs.midi_io import midi_file_to_notes


def test_single_note(write_pm, tmp_path):
    notes, report = midi_file_to_notes(write_pm(tmp_path / "a.mid", [(64, 0.0, 0.5)]))
    assert list(notes["pitch"]) == [64]
    assert notes["start"].iloc[0] == pytest.approx(0.0)
    assert notes["end"].iloc[0] == pytest.approx(0.5, abs=1e-3)
    # 120 qpm: half a second is one beat
    assert notes["end_beat"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert encode_notes(notes, "names") == ["E4"]
    assert encode_notes(notes, "pitch") == ["64"]
    assert report.notes == 1 and report.dropped == {}


def test_chord_is_one_names_token_low_to_high(write_pm, tmp_path):
    path = write_pm(tmp_path / "c.mid", [(67, 0, 1), (60, 0, 1), (64, 0, 1), (72, 1, 2)])
    notes, _ = midi_file_to_notes(path)
    assert encode_notes(notes, "names") == ["C4.E4.G4", "C5"]
    assert encode_notes(notes, "pitch") == ["60", "64", "67", "72"]


def test_groups_tokens_inverse():
    groups = [[60], [48, 55, 64], [127]]
    assert tokens_to_groups(groups_to_tokens(groups, "names"), "names") == groups
    assert tokens_to_pitches(groups_to_tokens(groups, "names"), "names") == [60, 48, 55, 64, 127]
    with pytest.raises(ValueError):
        tokens_to_groups(["128"], "pitch")
