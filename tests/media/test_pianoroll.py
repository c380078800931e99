"""media/pianoroll.py: piano-roll pictures."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from pipeline.media.pianoroll import piano_roll_png


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels."""
    height, width = imread(str(path)).shape[:2]
    return width, height


def test_piano_roll_from_midi_has_the_fixed_size(three_seconds: Path, tmp_path: Path) -> None:
    out = piano_roll_png(three_seconds, tmp_path / "rolls" / "scale.png", title="scale")
    assert out.is_file()
    assert png_size(out) == (1200, 400)


def test_piano_roll_from_note_table_and_custom_size(tmp_path: Path) -> None:
    notes = pd.DataFrame(
        {"pitch": [60, 64, 67], "start": [0.0, 0.5, 1.0], "end": [0.5, 1.0, 2.0],
         "velocity": [30, 80, 127], "piece": ["a"] * 3}
    )
    out = piano_roll_png(notes, tmp_path / "roll.png", width_px=600, height_px=200)
    assert png_size(out) == (600, 200)


def test_piano_roll_of_no_notes_is_drawn(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["pitch", "start", "end", "velocity"])
    out = piano_roll_png(empty, tmp_path / "empty.png", title="nothing")
    assert png_size(out) == (1200, 400)


def test_piano_roll_rejects_a_table_without_pitch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pitch"):
        piano_roll_png(pd.DataFrame({"start": [0.0]}), tmp_path / "x.png")
