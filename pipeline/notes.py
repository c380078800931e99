"""The note table: the one data shape every reader produces and every writer consumes.

One row per note. Columns (dtype):

========== ======= =====================================================
piece      str     identifier of the piece or tune (unique in a dataset)
track      int     index of the instrument/part within the piece
program    int     General MIDI program 0-127
pitch      int     MIDI pitch 0-127
velocity   int     MIDI velocity 1-127
start      float   onset in seconds
end        float   offset in seconds (> start)
start_beat float   onset in quarter-note beats from the start of the piece
end_beat   float   offset in quarter-note beats
========== ======= =====================================================

Rows are sorted by piece, start, pitch.
"""
from __future__ import annotations

import pandas as pd

COLUMNS: dict[str, str] = {
    "piece": "string",
    "track": "int16",
    "program": "int16",
    "pitch": "int16",
    "velocity": "int16",
    "start": "float64",
    "end": "float64",
    "start_beat": "float64",
    "end_beat": "float64",
}


def empty_note_table() -> pd.DataFrame:
    """An empty note table with the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def normalise_note_table(df: pd.DataFrame) -> pd.DataFrame:
    """Cast to the schema's dtypes and sort rows by piece, start, pitch."""
    if df.empty:
        return empty_note_table()
    df = df[list(COLUMNS)].astype(COLUMNS)
    return df.sort_values(["piece", "start", "pitch"], kind="stable").reset_index(drop=True)
