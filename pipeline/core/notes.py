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

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import DatasetError

PIANO_LOW, PIANO_HIGH = 21, 108  # A0 and C8: the piano's lowest and highest key as MIDI pitches
KEYS = PIANO_HIGH - PIANO_LOW + 1
OUTSIDE_KEYS = "outside the piano's 88 keys"  # the reason an encoding or a roll leaves a note out

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
    """Cast to the schema's dtypes and sort rows by piece, start, pitch (stable)."""
    if df.empty:
        return empty_note_table()
    df = df[list(COLUMNS)]
    casts = {c: t for c, t in COLUMNS.items() if df[c].dtype != pd.api.types.pandas_dtype(t)}
    if casts:
        df = df.astype(casts)
    piece_codes, _ = pd.factorize(df["piece"], sort=True)
    order = sort_order(piece_codes, df["start"].to_numpy(), df["pitch"].to_numpy())
    return df.reset_index(drop=True) if order is None else df.take(order).reset_index(drop=True)


def sort_order(piece: np.ndarray, start: np.ndarray, pitch: np.ndarray) -> np.ndarray | None:
    """Stable order of rows by piece, start, pitch; ``None`` when they are in that order already.

    Parameters
    ----------
    piece : shape (n,), codes that sort as the piece names do.
    start, pitch : shape (n,).

    Tables are usually sorted already (readers sort, and a dataset's files come
    in order), and checking costs a fraction of sorting millions of rows.
    """
    dp, ds, dq = np.diff(piece), np.diff(start), np.diff(pitch)
    if ((dp > 0) | ((dp == 0) & ((ds > 0) | ((ds == 0) & (dq >= 0))))).all():
        return None
    # numpy's lexsort is stable, like pandas' stable sort, and far cheaper than sorting strings row by row
    return np.lexsort((pitch, start, piece))


def check_note_table(notes: pd.DataFrame) -> None:
    """Raise DatasetError unless every note ends at or after its start, in seconds and in beats."""
    for a, b in (("start", "end"), ("start_beat", "end_beat")):
        bad = int((notes[b] < notes[a]).sum()) if a in notes and b in notes else 0
        if bad:
            raise DatasetError(f"{bad} notes end before they start ({b} < {a}); such a note table is never written")


def note_table_bytes(notes: pd.DataFrame) -> bytes:
    """A note table as the bytes of a Parquet file (read it back with ``pandas.read_parquet``).

    The same file ``DataFrame.to_parquet(path, index=False)`` writes, built with
    one thread: pyarrow's default converts columns on a pool of threads started
    for every call, which costs more than the conversion for the thousand small
    tables of a large extraction.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_note_table(notes)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(notes, preserve_index=False, nthreads=1), sink)
    return sink.getvalue().to_pybytes()


def write_note_table(notes: pd.DataFrame, path: str | Path) -> Path:
    """Write a note table to a Parquet file (see :func:`note_table_bytes`)."""
    path = Path(path)
    path.write_bytes(note_table_bytes(notes))
    return path
