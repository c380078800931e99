"""codecs/onsets.py: grouping notes by onset."""

import pandas as pd

from pipeline.codecs import encode_notes, onset_groups


def test_onset_tolerance_groups_human_chords():
    df = pd.DataFrame({"piece": "p", "track": 0, "program": 0, "pitch": [60, 64, 67],
                       "velocity": 80, "start": [0.0, 0.012, 0.025], "end": [1.0, 1.0, 1.0],
                       "start_beat": [0.0, 0.024, 0.05], "end_beat": [2.0, 2.0, 2.0]})
    assert encode_notes(df, "names", tolerance=0.0) == ["C4", "E4", "G4"]
    assert encode_notes(df, "names", tolerance=0.03) == ["C4.E4.G4"]


def test_onset_groups_empty():
    from pipeline.core.notes import empty_note_table
    assert onset_groups(empty_note_table()) == []
