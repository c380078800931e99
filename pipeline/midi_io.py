"""MIDI files <-> note tables, mirroring each other.

``midi_file_to_notes`` reads with pretty_midi (which reads through mido) and
``notes_to_midi_file`` writes with pretty_midi. Both speak the note table of
:mod:`pipeline.notes`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi

from .errors import MidiReadError
from .notes import empty_note_table, normalise_note_table

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class MidiReadReport:
    """What reading one file kept and what it dropped, with reasons."""

    notes: int = 0
    tracks: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def read_midi(path: str | Path) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file with pretty_midi; every parser failure becomes one-line :class:`MidiReadError`.

    pretty_midi and mido raise many exception types on bad files (OSError,
    EOFError, KeyError, ValueError, IndexError, KeySignatureError...), so all are caught.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about tempo events on non-zero tracks, which
            # LilyPond writes routinely; the timing it derives is still right.
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(path))
    except EOFError:  # mido's word for a file that stops short
        empty = path.is_file() and path.stat().st_size == 0
        raise MidiReadError(f"{path.name}: {'the file is empty' if empty else 'the file is truncated (it ends inside a track)'}") from None
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise MidiReadError(f"{path.name}: not a readable MIDI file ({_one_line(exc)})") from None


def midi_file_to_notes(path: str | Path, piece: str | None = None) -> tuple[pd.DataFrame, MidiReadReport]:
    """Read one MIDI file into a note table.

    Drum tracks are dropped (they have no pitch in the melodic sense) and so are
    zero-length notes; both are counted in the report.

    Parameters
    ----------
    path : MIDI file (type 0 or 1).
    piece : identifier for the ``piece`` column; defaults to the file stem.

    Returns
    -------
    notes : note table, one row per kept note.
    report : counts of notes, tracks and dropped notes by reason.

    Raises
    ------
    MidiReadError
        The file is unreadable, not MIDI, truncated, or holds no pitched note.
    """
    path = Path(path)
    piece = piece or path.stem
    report = MidiReadReport()
    pm = read_midi(path)

    rows = []
    for track, inst in enumerate(pm.instruments):
        if inst.is_drum:
            report.drop("drum track", len(inst.notes))
            continue
        kept = [n for n in inst.notes if n.end > n.start]
        report.drop("zero-length note", len(inst.notes) - len(kept))
        if not kept:
            continue
        report.tracks += 1
        starts = np.array([n.start for n in kept])
        ends = np.array([n.end for n in kept])
        rows.append(pd.DataFrame({
            "piece": piece,
            "track": track,
            "program": int(inst.program),
            "pitch": [n.pitch for n in kept],
            "velocity": [n.velocity for n in kept],
            "start": starts,
            "end": ends,
            # ticks / resolution = quarter-note beats, robust to tempo changes
            "start_beat": [pm.time_to_tick(t) / pm.resolution for t in starts],
            "end_beat": [pm.time_to_tick(t) / pm.resolution for t in ends],
        }))
    if not rows:
        raise MidiReadError(f"{path.name}: only drum notes" if report.dropped.get("drum track")
                            else f"{path.name}: no pitched notes")
    notes = normalise_note_table(pd.concat(rows, ignore_index=True))
    report.notes = len(notes)
    return notes, report


def notes_to_midi_file(notes: pd.DataFrame, path: str | Path, *, tempo: float = 120.0) -> Path:
    """Write a note table (one piece) to a MIDI file, one instrument per track.

    Parameters
    ----------
    notes : note table; ``start``/``end`` in seconds are used, beats are ignored.
    path : where to write the ``.mid`` file (parent folders are created).
    tempo : initial tempo written to the file, in quarter notes per minute.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    if notes.empty:
        notes = empty_note_table()
    for (track, program), group in notes.groupby(["track", "program"], sort=True):
        inst = pretty_midi.Instrument(program=int(program), name=f"track {track}")
        for row in group.itertuples(index=False):
            inst.notes.append(pretty_midi.Note(
                velocity=int(row.velocity), pitch=int(row.pitch),
                start=float(row.start), end=float(row.end)))
        pm.instruments.append(inst)
    pm.write(str(path))
    return path
