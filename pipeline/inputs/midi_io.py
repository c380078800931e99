"""MIDI files <-> note tables, mirroring each other.

Reading
    ``midi_file_to_notes`` reads a file (or its bytes) with symusic, whose C++
    parser reads the five Chopin nocturnes in about a millisecond where
    pretty_midi takes a quarter of a second. Given a ``pretty_midi.PrettyMIDI``
    it reads that object instead, the way this module read every file before;
    the tests keep that path as the reference the symusic path must agree with.
    ``read_score`` and ``read_midi`` give the parsed symusic ``Score`` and
    ``pretty_midi.PrettyMIDI`` themselves, for callers that want the objects.
Writing
    ``notes_to_midi_file`` writes with pretty_midi.

All of them speak the note table of :mod:`pipeline.core.notes`. pretty_midi is
imported only by the functions that use it, so extracting a MIDI corpus does
not pay for it.

Where the two readers differ (neither case occurs in the nocturnes):

- a pitch struck again on the same channel before its note-off: symusic pairs
  note-offs with note-ons first in, first out, so each note keeps its own
  length (and a pretty_midi-written file reads back as written); pretty_midi
  ends every sounding copy at the first note-off;
- tempo events on tracks other than the first: symusic follows them, pretty_midi
  ignores them (with a warning).
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import pandas as pd

from pipeline.core.errors import MidiReadError, one_line
from pipeline.core.notes import COLUMNS, empty_note_table, normalise_note_table

if TYPE_CHECKING:
    import pretty_midi
    import symusic

MIDI_SUFFIXES = (".mid", ".midi")
DEFAULT_MSPQ = 500_000  # 120 quarter notes a minute until the first tempo event (the MIDI default)

#: What the readers accept: a path, the bytes of a file, or an already parsed pretty_midi object.
MidiSource = Union[str, Path, bytes, "pretty_midi.PrettyMIDI"]


@dataclass
class MidiReadReport:
    """What reading one file kept and what it dropped, with reasons."""

    notes: int = 0
    tracks: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count


def _label(source: object) -> str:
    """How error messages name a source: the file name, or what kind of object it is."""
    if isinstance(source, (str, Path)):
        return Path(source).name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "MIDI bytes"
    return type(source).__name__


def _read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise MidiReadError(f"{_label(source)}: cannot read the file ({one_line(exc)})") from None


def _structure_problem(data: bytes) -> str | None:
    """Why ``data`` is not a whole Standard MIDI File, judged from its chunk headers only.

    Checked before parsing so that the common failures get a plain reason
    whichever parser fails on them: a header (14 bytes) and as many track
    chunks as it declares, each as long as its length field says. ``None``
    when the chunks are whole; the events inside are the parser's business.
    """
    if not data:
        return "file is empty or truncated (0 bytes)"
    if not data.startswith(b"MThd"[:len(data)]):
        return "not a MIDI file (it does not start with 'MThd')"
    if len(data) < 14:
        return f"file is empty or truncated ({len(data)} bytes, shorter than a MIDI header)"
    header_len, _fmt, n_tracks = struct.unpack(">IHH", data[4:12])
    pos, found = 8 + header_len, 0
    while found < n_tracks:
        if pos + 8 > len(data):
            return f"file is empty or truncated (the header declares {n_tracks} tracks, the file holds {found})"
        kind, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if pos + 8 + length > len(data):
            return (f"file is empty or truncated (track {found + 1} of {n_tracks} needs {length} bytes, "
                    f"{len(data) - pos - 8} are left)")
        found += kind == b"MTrk"  # other chunk types are allowed and skipped
        pos += 8 + length
    return None


def read_score(source: str | Path | bytes) -> "symusic.Score":
    """Parse a MIDI file or its bytes with symusic (times in ticks).

    Raises
    ------
    MidiReadError
        One line naming the file: unreadable, empty or truncated, not MIDI, or
        corrupt inside (e.g. a data byte above 127).
    """
    import symusic

    label = _label(source)
    data = _read_bytes(source)
    problem = _structure_problem(data)
    if problem is None:
        try:
            score = symusic.Score.from_midi(data)
        except Exception as exc:  # noqa: BLE001 - symusic raises RuntimeError with minimidi's reason
            problem = f"corrupt MIDI data ({one_line(exc)})"
        else:
            if score.ticks_per_quarter <= 0:
                problem = "SMPTE time division is not supported (no ticks per quarter note)"
    if problem:
        raise MidiReadError(f"{label}: not a readable MIDI file ({problem})")
    return score


def read_midi(source: MidiSource) -> "pretty_midi.PrettyMIDI":
    """Parse a MIDI file or its bytes with pretty_midi; a PrettyMIDI object is returned as it is.

    For callers that want pretty_midi's objects (audio rendering); the note
    table comes faster from :func:`midi_file_to_notes`.

    Raises
    ------
    MidiReadError
        One line naming the file. pretty_midi and mido raise many exception
        types on bad files (OSError, EOFError, KeyError, ValueError,
        IndexError, KeySignatureError...), so all are caught; files that are
        empty, truncated or not MIDI are named as such first.
    """
    import pretty_midi

    if isinstance(source, pretty_midi.PrettyMIDI):
        return source
    label = _label(source)
    data = _read_bytes(source)
    problem = _structure_problem(data)
    if problem:
        raise MidiReadError(f"{label}: not a readable MIDI file ({problem})")
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about tempo events on non-zero tracks, which
            # LilyPond writes routinely
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise MidiReadError(f"{label}: not a readable MIDI file ({one_line(exc)})") from None


def ticks_to_seconds(ticks: np.ndarray, tempo_ticks: np.ndarray, mspq: np.ndarray, tpq: int) -> np.ndarray:
    """Seconds at MIDI ticks under a tempo map, in float64.

    Parameters
    ----------
    ticks : shape (n,), ticks from the start of the file.
    tempo_ticks, mspq : shape (k,), each tempo event's tick and microseconds per
        quarter note, in file order (the last of several events on one tick
        wins). Before the first event the tempo is 120 quarter notes a minute.
    tpq : ticks per quarter note.

    Returns
    -------
    seconds : shape (n,), float64. (symusic's own second-based scores are
        float32, which is off by tens of microseconds after a few minutes.)
    """
    order = np.argsort(tempo_ticks, kind="stable")
    tt = np.asarray(tempo_ticks, dtype=np.int64)[order]
    mq = np.asarray(mspq, dtype=np.float64)[order]
    if len(tt) == 0 or tt[0] > 0:
        tt, mq = np.concatenate([[0], tt]), np.concatenate([[float(DEFAULT_MSPQ)], mq])
    sec_per_tick = mq / 1e6 / tpq
    seg_start = np.concatenate([[0.0], np.cumsum(np.diff(tt) * sec_per_tick[:-1])])
    k = np.searchsorted(tt, ticks, side="right") - 1
    return seg_start[k] + (np.asarray(ticks, dtype=np.int64) - tt[k]) * sec_per_tick[k]


def _empty_reason(report: MidiReadReport) -> str:
    drums, zero = report.dropped.get("drum track", 0), report.dropped.get("zero-length note", 0)
    if drums and not zero:
        return f"no pitched notes: only drum notes ({drums} in drum tracks)"
    if drums or zero:
        return f"no pitched notes ({drums} drum notes, {zero} zero-length notes dropped)"
    return "no pitched notes (the file holds no notes)"


def score_to_notes(score: "symusic.Score", piece: str, label: str = "") -> tuple[pd.DataFrame, MidiReadReport]:
    """A tick-based symusic ``Score`` -> note table; see :func:`midi_file_to_notes`.

    ``track`` is symusic's track index: one track per MIDI track, channel and
    program that holds notes, ordered by MIDI track, then channel and program.
    """
    report = MidiReadReport()
    tpq = int(score.ticks_per_quarter)
    tempos = score.tempos.numpy()
    frames = []
    for track, tr in enumerate(score.tracks):
        arr = tr.notes.numpy()
        if tr.is_drum:
            report.drop("drum track", len(arr["time"]))
            continue
        keep = arr["duration"] > 0
        report.drop("zero-length note", int((~keep).sum()))
        if not keep.any():
            continue
        report.tracks += 1
        on = arr["time"][keep].astype(np.int64)
        off = on + arr["duration"][keep]
        frames.append({
            "track": np.full(len(on), track), "program": np.full(len(on), int(tr.program)),
            "pitch": arr["pitch"][keep], "velocity": arr["velocity"][keep],
            # seconds follow the tempo map; beats are ticks / resolution, whatever the tempo
            "start": ticks_to_seconds(on, tempos["time"], tempos["mspq"], tpq),
            "end": ticks_to_seconds(off, tempos["time"], tempos["mspq"], tpq),
            "start_beat": on / tpq, "end_beat": off / tpq,
        })
    if not frames:
        raise MidiReadError(f"{label or piece}: {_empty_reason(report)}")
    cols = {c: np.concatenate([f[c] for f in frames]) for c in frames[0]}
    # the schema's order and dtypes, made here with numpy: normalise_note_table's pandas calls
    # cost more than the reading itself, a thousand times over in a large corpus
    order = np.lexsort((cols["pitch"], cols["start"]))
    cols = {c: v[order].astype(COLUMNS[c]) for c, v in cols.items()}
    # one string repeated: taking it is much cheaper than pandas checking every row's copy
    cols["piece"] = pd.array([piece], dtype=COLUMNS["piece"]).take(np.zeros(len(order), np.intp))
    notes = pd.DataFrame({c: cols[c] for c in COLUMNS})
    report.notes = len(notes)
    return notes, report


def _pretty_midi_to_notes(pm: "pretty_midi.PrettyMIDI", piece: str, label: str) -> tuple[pd.DataFrame, MidiReadReport]:
    """The pretty_midi reading of a file: the reference :func:`score_to_notes` is tested against."""
    report = MidiReadReport()
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
            "start_beat": [pm.time_to_tick(t) / pm.resolution for t in starts],
            "end_beat": [pm.time_to_tick(t) / pm.resolution for t in ends],
        }))
    if not rows:
        raise MidiReadError(f"{label}: {_empty_reason(report)}")
    notes = normalise_note_table(pd.concat(rows, ignore_index=True))
    report.notes = len(notes)
    return notes, report


def midi_file_to_notes(path: MidiSource, piece: str | None = None) -> tuple[pd.DataFrame, MidiReadReport]:
    """Read one MIDI file into a note table.

    Drum tracks are dropped (they have no pitch in the melodic sense) and so are
    zero-length notes; both are counted in the report.

    Parameters
    ----------
    path : MIDI file (type 0 or 1), its bytes, or a ``pretty_midi.PrettyMIDI``
        (read with pretty_midi, as the reference reader).
    piece : identifier for the ``piece`` column; defaults to the file stem
        (``"piece"`` for bytes and objects).

    Returns
    -------
    notes : note table, shape (n_notes, 9), one row per kept note.
    report : counts of notes, tracks and dropped notes by reason.

    Raises
    ------
    MidiReadError
        The file is unreadable, empty or truncated, not MIDI, corrupt, or holds
        no pitched note (e.g. only drum notes).
    """
    label = _label(path)
    if isinstance(path, (str, Path)):
        piece = piece or Path(path).stem
    piece = piece or "piece"
    if isinstance(path, (str, Path, bytes, bytearray, memoryview)):
        return score_to_notes(read_score(path), piece, label)
    return _pretty_midi_to_notes(read_midi(path), piece, label)


def notes_to_midi_file(notes: pd.DataFrame, path: str | Path, *, tempo: float = 120.0) -> Path:
    """Write a note table (one piece) to a MIDI file, one instrument per track.

    Parameters
    ----------
    notes : note table; ``start``/``end`` in seconds are used, beats are ignored.
    path : where to write the ``.mid`` file (parent folders are created).
    tempo : initial tempo written to the file, in quarter notes per minute.
    """
    import pretty_midi

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
