"""codecs/frames.py: the frames encoding (piano-roll frames as tokens)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.codecs import get_codec
from pipeline.codecs.frames import (
    FEATURES,
    FRAME_END,
    NOTE_TOKENS,
    OUTSIDE_KEYS,
    VOCABULARY,
    count_frames,
    features,
    frames_to_notes,
    move_token,
    notes_to_frames,
    rolls_to_tokens,
    tokens_to_rolls,
    transpose,
)
from pipeline.codecs.onsets import TimingModel
from pipeline.core.notes import empty_note_table
from pipeline.inputs.midi_io import midi_file_to_notes, notes_to_midi_file


def table(*notes: tuple[int, float, float]) -> pd.DataFrame:
    """(pitch, start_beat, end_beat) -> a note table at 120 quarter notes a minute."""
    return pd.DataFrame({"piece": "t", "track": 0, "program": 0, "pitch": [n[0] for n in notes], "velocity": 80,
                         "start": [n[1] / 2 for n in notes], "end": [n[2] / 2 for n in notes],
                         "start_beat": [n[1] for n in notes], "end_beat": [n[2] for n in notes]})


def test_vocabulary_is_the_88_keys_and_the_frame_end():
    assert len(VOCABULARY) == 89 and len(set(VOCABULARY)) == 89
    assert NOTE_TOKENS[0] == "A0" and NOTE_TOKENS[39] == "C4" and NOTE_TOKENS[-1] == "C8"
    assert VOCABULARY[-1] == FRAME_END == "|" and "F#3" in VOCABULARY


def test_notes_to_frames_on_the_grid():
    notes = table((64, 0.5, 1.0), (60, 0.5, 0.75), (67, 0.55, 0.6), (48, 1.0, 1.24))
    tokens, dropped = notes_to_frames(notes, 0.25)
    # frames 0, 1 empty (leading silence kept); a note shorter than a step sounds in one frame
    assert tokens == ["|", "|", "C4", "E4", "G4", "|", "E4", "|", "C3", "|"]
    assert dropped == {} and count_frames(tokens) == 5
    assert notes_to_frames(empty_note_table()) == ([], {})
    assert notes_to_frames(empty_note_table(), n_frames=2) == (["|", "|"], {})
    assert notes_to_frames(notes, 0.25, n_frames=7)[0] == tokens + ["|", "|"]
    with pytest.raises(ValueError, match="shorter than the piece"):
        notes_to_frames(notes, 0.25, n_frames=4)
    outside, dropped = notes_to_frames(table((20, 0, 1), (60, 0, 0.5), (109, 0, 1), (127, 3, 4)), 0.5)
    assert outside == ["C4", "|"] and dropped == {OUTSIDE_KEYS: 3}


def test_overlapping_copies_of_a_pitch_sound_once():
    tokens, _ = notes_to_frames(table((60, 0, 1), (60, 0.5, 1.5)), 0.5)
    assert tokens == ["C4", "|", "C4", "|", "C4", "|"]


def test_rolls_and_tokens_are_inverse():
    rolls = [[21, 60, 108], [], [], [64, 60], [62]]
    tokens = rolls_to_tokens(rolls)
    assert tokens == ["A0", "C4", "C8", "|", "|", "|", "C4", "E4", "|", "D4", "|"]
    assert tokens_to_rolls(tokens) == [[21, 60, 108], [], [], [60, 64], [62]]
    assert rolls_to_tokens(tokens_to_rolls(tokens)) == tokens
    assert tokens_to_rolls(["C4", "|", "E4", "G4"]) == [[60], [64, 67]]  # a last frame without its |
    assert tokens_to_rolls(["|"]) == [[]] and tokens_to_rolls([]) == [] and rolls_to_tokens([]) == []
    with pytest.raises(ValueError, match="not a frames token: 'C.E'"):
        tokens_to_rolls(["C4", "C.E", "|"])
    with pytest.raises(ValueError, match="outside the piano"):
        rolls_to_tokens([[20]])


def test_frames_to_notes_holds_a_repeated_note():
    notes = frames_to_notes(["C4", "|", "C4", "E4", "|", "|", "E4", "|"], seconds_per_frame=0.5,
                            beats_per_frame=0.25, velocity=70, piece="s")
    assert notes[["pitch", "start", "end", "start_beat", "end_beat"]].values.tolist() == [
        [60, 0.0, 1.0, 0.0, 0.5], [64, 0.5, 1.0, 0.25, 0.5], [64, 1.5, 2.0, 0.75, 1.0]]
    assert set(notes["piece"]) == {"s"} and set(notes["velocity"]) == {70}
    assert frames_to_notes([], seconds_per_frame=1, beats_per_frame=1).empty


def test_transposition():
    tokens = ["A0", "C4", "|", "|", "B7", "|"]
    up = transpose(tokens, 1)
    assert up == ["A#0", "C#4", "|", "|", "C8", "|"]
    assert transpose(up, -1) == tokens and transpose(tokens, 0) == tokens
    assert transpose(tokens, 2) is None and transpose(tokens, -1) is None
    assert transpose(["|", "|"], 50) == ["|", "|"]
    assert move_token("C4", 3) == "D#4" and move_token("|", 5) == "|" and move_token("C8", 1) is None
    with pytest.raises(ValueError):
        move_token("X", 1)


def test_features():
    tokens = ["C4", "E4", "|", "E4", "C5", "|", "|", "C2", "|"]
    f = features(tokens)
    assert list(f) == list(FEATURES)
    assert all(v.shape == (len(tokens),) and v.dtype == np.float64 for v in f.values())
    assert f["is_frame_end"].tolist() == [0, 0, 1, 0, 0, 1, 1, 0, 1]
    assert f["pitch"].tolist() == [60, 64, 64, 64, 72, 72, 72, 36, 36]
    assert f["high_register"].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert f["low_register"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert f["notes_in_frame"].tolist() == [2, 2, 2, 2, 2, 2, 0, 1, 1]
    assert f["onset"].tolist() == [1, 1, 0, 0, 1, 0, 0, 1, 0]
    assert features(["|"])["pitch"].tolist() == [60]
    assert all(v.shape == (0,) for v in features([]).values())


@pytest.mark.parametrize("grid", [0.25, 1 / 3])
def test_quantised_midi_round_trips_through_frames(chopin_files: list[Path], tmp_path: Path, grid: float):
    """nocturne -> frames -> notes -> MIDI file -> notes -> frames: the same tokens, the same notes."""
    for path in chopin_files:
        notes, _ = midi_file_to_notes(path)
        tokens, dropped = notes_to_frames(notes, grid)
        assert dropped == {} and count_frames(tokens) > 500
        decoded = frames_to_notes(tokens, seconds_per_frame=grid / 2, beats_per_frame=grid, piece=path.stem)
        back, _ = midi_file_to_notes(notes_to_midi_file(decoded, tmp_path / path.name, tempo=120.0))
        again, _ = notes_to_frames(back, grid)
        assert again == tokens, path.name
        cols = ["pitch", "start_beat", "end_beat"]
        if grid == 0.25:  # sixteenths are whole ticks of pretty_midi's 220 a beat: the notes come back as written
            assert back[cols].values.tolist() == decoded[cols].values.tolist()


def test_codec_round_trip_and_the_opening_marker():
    codec = get_codec("frames")
    notes = codec.decode([FRAME_END, "C4", "E4", "|", "C4", "E4", "|", "|", "G4", "|"], TimingModel(np.ones((1, 2)), 60))
    tokens = codec.encode(notes)
    assert tokens == [FRAME_END, "C4", "E4", "|", "C4", "E4", "|", "|", "G4", "|"]
    assert codec.scored_frames(tokens) == 4 and len(codec.vocabulary([])) == 89
    assert codec.to_groups(tokens) == [[60, 64], [67]]  # struck notes only: a held chord is not struck again
    assert codec.onset_tokens(tokens) == ["C4.E4", "G4"]  # one token an onset: a held chord is no repetition
