"""codecs/pitch.py (with names): tokens -> MIDI -> the same tokens."""

import numpy as np
import pytest

from pipeline.codecs import encode_notes
from pipeline.inputs.midi_io import midi_file_to_notes, notes_to_midi_file
from pipeline.stages.render import TimingModel, tokens_to_notes


@pytest.mark.parametrize("encoding", ["names", "pitch"])
def test_tokens_midi_tokens_round_trip(tmp_path, encoding):
    tokens = {"names": ["C4", "C4.E4.G4", "A#2.F5", "B7", "C-1", "G9"],
              "pitch": ["60", "64", "0", "127", "61", "61"]}[encoding]
    timing = TimingModel(np.array([[0.25, 0.5], [1.0, 2.0], [0.02, 0.1]]), qpm=100)
    notes = tokens_to_notes(tokens, encoding, timing, seed=3)
    path = notes_to_midi_file(notes, tmp_path / "rt.mid", tempo=100)
    back, _ = midi_file_to_notes(path)
    assert encode_notes(back, encoding) == tokens
