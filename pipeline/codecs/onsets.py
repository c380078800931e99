"""Onsets and rhythm: notes grouped by onset, and the corpus rhythm that untimed tokens are played with.

``names`` and ``pitch`` tokens carry pitch only: a dataset keeps the rhythm of its
pieces (:func:`timing_stats`, in ``timing.json``) and their decoders place each
onset with an (inter-onset interval, duration) pair drawn from it
(:class:`TimingModel`), at the corpus's median tempo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.core.notes import normalise_note_table, sort_order


@dataclass
class OnsetGroup:
    """Notes that start together: pitches low to high, timing in beats."""

    pitches: list[int]
    start_beat: float
    duration_beat: float
    velocity: int


@dataclass
class GroupedNotes:
    """Onset groups of one or more pieces as flat arrays (what :func:`onset_groups` gives as objects).

    ``g`` groups, in piece order (pieces sorted by name) and onset order within
    a piece; group ``i`` belongs to piece ``pieces[piece[i]]`` and holds the
    distinct pitches ``pitches[offsets[i]:offsets[i + 1]]``, low to high.

    start_beat, duration_beat : shape (g,), float64, in quarter-note beats.
    velocity : shape (g,), int64, the group's mean velocity, rounded.
    piece : shape (g,), int64, index into ``pieces``.
    pitches : shape (k,), int64, k <= number of notes.
    offsets : shape (g + 1,), int64.
    pieces : the piece names, sorted.
    """

    start_beat: np.ndarray
    duration_beat: np.ndarray
    velocity: np.ndarray
    piece: np.ndarray
    pitches: np.ndarray
    offsets: np.ndarray
    pieces: list[str]

    def __len__(self) -> int:
        return len(self.start_beat)

    def piece_bounds(self) -> np.ndarray:
        """Shape (len(pieces) + 1,): piece ``j``'s groups are ``bounds[j]:bounds[j + 1]``."""
        return np.searchsorted(self.piece, np.arange(len(self.pieces) + 1))


def group_onsets(notes: pd.DataFrame, tolerance: float = 0.02) -> GroupedNotes:
    """Group notes by onset, piece by piece, as arrays; see :func:`onset_groups` for the rule.

    ``notes`` may hold many pieces (a group never spans two); one call for a
    whole dataset costs about what one call for a single piece does.
    Vectorised: a gap of more than ``tolerance`` after the previous note always
    opens a group; only runs of notes closer than that and longer than
    ``tolerance`` overall (fast runs, spread chords) need the note-by-note scan.
    """
    n = len(notes)
    piece_code, pieces = pd.factorize(notes["piece"], sort=True)
    starts = notes["start"].to_numpy(dtype=np.float64)
    pitch = notes["pitch"].to_numpy().astype(np.int64)
    order = sort_order(piece_code, starts, pitch)
    if order is None:  # a normalised table is in onset order already
        order = slice(None)
    piece_code, starts, pitch = piece_code[order].astype(np.int64), starts[order], pitch[order]
    sb = notes["start_beat"].to_numpy(dtype=np.float64)[order]
    dur = notes["end_beat"].to_numpy(dtype=np.float64)[order] - sb
    vel = notes["velocity"].to_numpy().astype(np.float64)[order]
    if n == 0:
        empty = np.zeros(0, np.int64)
        return GroupedNotes(empty * 0.0, empty * 0.0, empty, empty, empty, np.zeros(1, np.int64), [])
    # a note more than `tolerance` after the previous one is more than that after its group's first
    # note; a new piece opens a group too
    opens = np.flatnonzero((np.diff(starts) > tolerance) | (np.diff(piece_code) != 0)) + 1
    runs = np.concatenate([[0], opens, [n]])
    long_runs = np.flatnonzero(starts[runs[1:] - 1] - starts[runs[:-1]] > tolerance)
    extra = []
    for a, b in zip(runs[long_runs].tolist(), runs[long_runs + 1].tolist()):
        first = starts[a]  # the group's first note decides, so scan this run note by note
        for i in range(a + 1, b):
            if starts[i] - first > tolerance:
                extra.append(i)
                first = starts[i]
    heads = np.sort(np.concatenate([[0], opens, extra])).astype(np.int64)
    counts = np.diff(np.append(heads, n))
    group = np.repeat(np.arange(len(heads)), counts)
    # distinct pitches of each group, low to high
    by_pitch = np.argsort(group * 128 + pitch, kind="stable")  # nearly sorted already: cheap
    gp, pp = group[by_pitch], pitch[by_pitch]
    keep = np.ones(n, bool)
    keep[1:] = (gp[1:] != gp[:-1]) | (pp[1:] != pp[:-1])
    offsets = np.concatenate([[0], np.cumsum(np.bincount(gp[keep], minlength=len(heads)))])
    return GroupedNotes(start_beat=sb[heads], duration_beat=np.maximum.reduceat(dur, heads),
                        velocity=np.rint(np.add.reduceat(vel, heads) / counts).astype(np.int64),
                        piece=piece_code[heads], pitches=pp[keep], offsets=offsets.astype(np.int64),
                        pieces=[str(p) for p in pieces])


def onset_groups(notes: pd.DataFrame, tolerance: float = 0.02) -> list[OnsetGroup]:
    """Group one piece's notes by onset.

    A note joins the current group when it starts within ``tolerance`` seconds
    of the group's first note (human-played chords are never exactly
    simultaneous; score-timed files need 0). A pitch sounding twice in one
    group (e.g. both hands) is kept once.

    Parameters
    ----------
    notes : note table of one piece, any order.
    tolerance : seconds.

    Returns
    -------
    groups : in onset order; empty for an empty table. (:func:`group_onsets`
        gives the same as arrays, faster for large tables.)
    """
    g = group_onsets(notes, tolerance)
    pitches = g.pitches.tolist()
    return [OnsetGroup(pitches=pitches[a:b], start_beat=float(s), duration_beat=float(d), velocity=int(v))
            for a, b, s, d, v in zip(g.offsets[:-1].tolist(), g.offsets[1:].tolist(), g.start_beat,
                                     g.duration_beat, g.velocity)]


def timing_stats(notes: pd.DataFrame, tolerance: float) -> dict:
    """Onset-interval / duration pairs (in beats) and tempo, to render tokens with plausible timing.

    Returns a dict with ``pairs`` (list of [ioi_beats, duration_beats], at most
    20,000, sampled evenly), ``qpm`` (median tempo in quarter notes per minute)
    and ``velocity`` (median).
    """
    groups = group_onsets(notes, tolerance)  # all pieces in one pass
    same_piece = groups.piece[1:] == groups.piece[:-1]
    # each onset group's gap to the next one in its piece, and its own duration
    ioi = np.diff(groups.start_beat)[same_piece].tolist()
    duration = np.maximum(groups.duration_beat[:-1], 1e-3)[same_piece].tolist()
    keep = range(len(ioi)) if len(ioi) <= 20000 else np.linspace(0, len(ioi) - 1, 20000).astype(int).tolist()
    pairs = [[round(ioi[i], 4), round(duration[i], 4)] for i in keep]
    spans = notes.groupby("piece", sort=True).agg(s0=("start", "min"), s1=("end", "max"),
                                                  b0=("start_beat", "min"), b1=("end_beat", "max"))
    span_s, span_b = spans["s1"] - spans["s0"], spans["b1"] - spans["b0"]
    qpms = (60.0 * span_b / span_s)[(span_s > 0) & (span_b > 0)].tolist()
    return {"pairs": pairs or [[0.5, 0.5]], "qpm": float(np.median(qpms)) if qpms else 120.0,
            "velocity": int(notes["velocity"].median()) if len(notes) else 80}


MIN_IOI_SECONDS = 0.06  # well above any onset tolerance, so rendered chords stay chords


@dataclass
class TimingModel:
    """How to place onset groups in time.

    pairs : (n, 2) array of [inter-onset interval, duration] in beats.
    qpm : tempo in quarter notes per minute.
    fixed_beats : when > 0, every onset lasts and is spaced by this many beats.
    """

    pairs: np.ndarray
    qpm: float = 120.0
    velocity: int = 80
    fixed_beats: float = 0.0

    @classmethod
    def from_stats(cls, stats: dict, fixed_beats: float = 0.0) -> "TimingModel":
        return cls(np.asarray(stats.get("pairs") or [[0.5, 0.5]], float), float(stats.get("qpm", 120.0)),
                   int(stats.get("velocity", 80)), fixed_beats)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Onset intervals and durations in seconds, each shape (n,)."""
        spb = 60.0 / self.qpm
        if self.fixed_beats > 0:
            ioi = np.full(n, self.fixed_beats * spb)
            return ioi, ioi.copy()
        pick = self.pairs[rng.integers(0, len(self.pairs), n)]
        ioi = np.maximum(pick[:, 0] * spb, MIN_IOI_SECONDS)
        dur = np.maximum(pick[:, 1] * spb, MIN_IOI_SECONDS / 2)
        return ioi, dur


def groups_to_notes(groups: list[list[int]], timing: TimingModel, rng: np.random.Generator,
                    piece: str = "sample") -> pd.DataFrame:
    """Pitch groups (onset order) -> a one-track note table with drawn timing."""
    ioi, dur = timing.draw(len(groups), rng)
    starts = np.concatenate([[0.0], np.cumsum(ioi)[:-1]]) if len(groups) else np.zeros(0)
    spb = 60.0 / timing.qpm
    rows = [(piece, 0, 0, p, timing.velocity, s, s + d, s / spb, (s + d) / spb)
            for g, s, d in zip(groups, starts, dur) for p in g]
    return normalise_note_table(pd.DataFrame(rows, columns=[
        "piece", "track", "program", "pitch", "velocity", "start", "end", "start_beat", "end_beat"]))
