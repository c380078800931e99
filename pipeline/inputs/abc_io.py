"""ABC tunebooks -> tunes -> note tables: reading ABC, and the music21 adapter.

The data layer for ABC input: plain functions over plain data (strings,
:class:`AbcTune`, note tables), file I/O at the edges.

Reading
    ``split_tunebook`` / ``read_abc_file`` cut a tunebook into tunes.
Music
    ``tune_to_notes`` parses one tune with music21 into a note table. Its
    helpers (``parse_abc``, ``time_limit``, ``pitched_notes``...) are the one
    music21 adapter that the other ABC modules share.

Elsewhere: the ``chars`` token codec is in :mod:`pipeline.codecs`, the
tunebooks that ship inside music21 in :mod:`pipeline.inputs.corpus`, MIDI export and
sheet music in :mod:`pipeline.media.engrave`, the validity of a tune
(``check_tune``) in :mod:`pipeline.measures.abc_eval`.

music21 is imported inside the functions that need it: importing it takes
about a second, which the CLI should not pay for ``--help``.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import AbcParseError, MidiReadError, one_line
from pipeline.core.notes import normalise_note_table
from pipeline.core.procs import ParseTimeout, time_limit  # noqa: F401  (abc_eval and engrave import them here)
from pipeline.inputs import midi_io

DEFAULT_QPM = 120.0  # music21's own default when a tune has no Q: field
VELOCITY = 80
PROGRAM = 0  # acoustic grand piano: ABC tunes carry no instrument
PARSE_TIMEOUT_S = 10.0  # real tunes parse in well under a second
X_LINE = re.compile(r"^[ \t]*X:", re.MULTILINE)  # the line that starts a tune


# --------------------------------------------------------------------------- tunes

@dataclass
class AbcTune:
    """One tune of a tunebook.

    ``text`` runs from the tune's ``X:`` line to the line before the next ``X:``
    (or the end of the file), with trailing blank and ``%`` comment lines
    removed: those are commentary about what follows, not part of the tune.
    ``number`` is the ``X:`` value (``None`` when it is not an integer); title,
    meter and key are the first ``T:``, ``M:`` and ``K:`` fields (``M``/``K``
    are ``None`` when absent).
    """

    text: str
    number: int | None = None
    title: str = ""
    meter: str | None = None
    key: str | None = None
    source: str = ""


def _without_comment(value: str) -> str:
    """A field's value without a trailing ``%`` comment (an escaped ``\\%`` stays)."""
    return re.sub(r"(?<!\\)%.*$", "", value).strip()


def field_value(lines: list[str], name: str) -> str | None:
    """Value of the first ``name:`` field line, without a trailing % comment."""
    prefix = name + ":"
    for line in lines:
        if line.startswith(prefix):
            return _without_comment(line[len(prefix):])
    return None


def _tune_from_lines(lines: list[str], source: str) -> AbcTune:
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("%")):
        lines = lines[:-1]
    number_field = field_value(lines, "X") or ""
    number = int(number_field) if number_field.isdigit() else None
    return AbcTune(
        text="\n".join(lines).strip(),
        number=number,
        title=field_value(lines, "T") or "",
        meter=field_value(lines, "M"),
        key=field_value(lines, "K"),
        source=source,
    )


def split_tunebook(text: str, source: str = "") -> list[AbcTune]:
    """Split a tunebook into its tunes at ``X:`` lines.

    Everything before the first ``X:`` line (``%abc-2.1``, comments, free text,
    file-wide fields) is dropped: it belongs to no tune. Every ``X:`` line starts
    a tune, so tunes with no ``K:`` field, no body, or a broken body are still
    returned; :func:`pipeline.measures.abc_eval.check_tune` and :func:`tune_to_notes`
    judge them later, so that every dropped tune is counted with its reason by
    the caller.

    Returns an empty list when the text holds no ``X:`` line.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if X_LINE.match(line)]
    tunes = []
    for k, begin in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        tune_lines = [lines[begin].lstrip()] + lines[begin + 1:end]
        tunes.append(_tune_from_lines(tune_lines, source))
    return tunes


# header fields a model of the music keeps (in this order, ``K:`` last as ABC requires)
MUSIC_HEADER = ("R", "M", "L", "K")
# fields inside the body that change how it is played; other body fields (notes, words, sources) are dropped
MUSIC_BODY_FIELDS = ("M", "L", "K", "P", "V")
ABC_HEADERS = ("music", "full")
_FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")


def default_unit_length(meter: str | None) -> str:
    """The ``L:`` that ABC 2.1 implies when a tune has none: 1/16 below a 3/4 bar, else 1/8."""
    m = (meter or "").strip()
    m = {"C": "4/4", "C|": "2/2"}.get(m, m)
    num, _, den = m.partition("/")
    try:
        ratio = sum(int(x) for x in num.strip("()").split("+")) / int(den)
    except (ValueError, ZeroDivisionError):
        return "1/8"  # M:none, a missing or unreadable meter
    return "1/16" if ratio < 0.75 else "1/8"


def music_text(tune_text: str) -> str:
    """The tune as a model of the music reads it: the fields that say how to play it, and the notes.

    The header keeps ``R:`` (rhythm: jig, reel...), ``M:``, ``L:`` and ``K:``,
    in that order, one each (the last value written wins), with the unit length
    written out where the tune relied on ABC's default; ``X:``, titles,
    sources, notes, transcribers and other metadata are dropped (a model
    cannot know a tune's number, and a long free-text header is where it
    loses track of whether it wrote ``M:``; folk-rnn drops them too). The body
    keeps its music and the fields that change how it is played (``M: L: K:
    P: V:``); comment and lyric lines are dropped, runs of spaces become one
    (in ABC a space only breaks a beam). A text with no ``K:`` line is all
    header and gives only those fields: such a tune cannot be played anyway.
    """
    lines = [line.strip() for line in tune_text.splitlines()]
    k_at = next((i for i, line in enumerate(lines) if line.startswith("K:")), len(lines) - 1)
    fields: dict[str, str] = {}
    for line in lines[:k_at + 1]:
        m = _FIELD_LINE.match(line)
        if m and m.group(1) in MUSIC_HEADER:
            fields[m.group(1)] = _without_comment(m.group(2))
    if "K" in fields and "L" not in fields:
        fields["L"] = default_unit_length(fields.get("M"))
    header = [f"{k}:{fields[k]}" for k in MUSIC_HEADER if k in fields]
    body = []
    for line in lines[k_at + 1:]:
        m = _FIELD_LINE.match(line)
        if not line or line.startswith("%") or (m and m.group(1) not in MUSIC_BODY_FIELDS):
            continue
        body.append(re.sub(r"[ \t]+", " ", line))
    return "\n".join(header + body)


def music_primer(text: str) -> str:
    """The opening of a tune as :func:`music_text` writes tunes; a final newline is kept."""
    body = music_text(text)
    return body + "\n" if body and text.endswith("\n") else body


def with_x_line(tune_text: str, number: int = 1, title: str = "") -> str:
    """The tune as a tunebook entry: ``X:`` (and ``T:``) lines first where it has none.

    abc2midi and abcm2ps only read tunes that start with ``X:``; the ``music``
    text a model writes has none (see :func:`music_text`).
    """
    if X_LINE.search(tune_text):
        return tune_text
    return f"X:{number}\n" + (f"T:{title}\n" if title else "") + tune_text


def read_abc_text(path: str | Path) -> str:
    """The text of an ABC file: UTF-8 (a byte-order mark is dropped), or Latin-1
    for older tunebooks that are not valid UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # never fails: every byte is a character


def read_abc_file(path: str | Path) -> list[AbcTune]:
    """Read every tune of one ABC file (see :func:`split_tunebook`).

    Raises
    ------
    AbcParseError
        The file cannot be read or holds no ``X:`` tune.
    """
    path = Path(path)
    try:
        text = read_abc_text(path)
    except OSError as exc:
        raise AbcParseError(f"{path.name}: cannot read ({one_line(exc)})") from None
    tunes = split_tunebook(text, source=str(path))
    if not tunes:
        raise AbcParseError(f"{path.name}: no ABC tunes (no line starts with 'X:')")
    return tunes


# --------------------------------------------------------------------------- parsing with music21

@contextlib.contextmanager
def _keep_source_bars():
    """Stop music21 from re-barring while it translates ABC.

    music21 splits a bar longer than its time signature into a full bar plus a
    remainder bar with a made-up time signature. That (1) makes exactly the bars
    :func:`pipeline.measures.abc_eval.check_tune` must flag look correct, (2) reuses one
    TimeSignature object in two bars, which later breaks music21's own MIDI
    export, and (3) is super-linear in the bar length, so a garbage tune can
    take minutes.
    Note offsets are the same either way. The patch is module-global for the
    duration of the block.
    """
    from music21.abcFormat import translate

    original = translate.reBar
    translate.reBar = lambda part, *, inPlace=False: None if inPlace else part
    try:
        yield
    finally:
        translate.reBar = original


def parse_abc(text: str, *, timeout_s: float | None = PARSE_TIMEOUT_S):
    """Parse one tune with music21, bars as written; returns ``(score, warnings)``.

    ``converter.parseData`` rather than ``converter.parse``: the latter first
    tries its argument as a file name or URL, which a generated text may look like.
    music21's warnings (it replaces unreadable notes by C) go to ``warnings``
    instead of stderr.

    Raises AbcParseError with one line naming music21's error class.
    """
    if not text.strip():
        raise AbcParseError("empty tune text")
    from music21 import converter, stream

    captured = io.StringIO()
    try:
        with time_limit(timeout_s), contextlib.redirect_stderr(captured), _keep_source_bars():
            parsed = converter.parseData(text, format="abc")
    except ParseTimeout as exc:
        raise AbcParseError(f"music21 {exc} (absurd meter or note lengths?)") from None
    except Exception as exc:  # music21 raises many types on bad ABC (ValueError, ZeroDivisionError...)
        raise AbcParseError(f"music21 cannot parse the tune ({one_line(exc)})") from None
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if len(scores) != 1:
            raise AbcParseError(f"the text holds {len(scores)} tunes, not one; split it first")
        parsed = scores[0]
    warnings = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    return parsed, warnings


def pitched_notes(part):
    """Yield (element, reason_to_drop | None) for every note/chord in a part."""
    from music21 import harmony

    for el in part.flatten().notes:
        if isinstance(el, harmony.Harmony):
            yield el, "chord symbol"  # a guitar-chord annotation, not a sounding note
        elif float(el.quarterLength) <= 0:
            yield el, "grace note"  # no duration of its own in music21
        else:
            yield el, None


def _beats_to_seconds(score, beats: np.ndarray) -> np.ndarray:
    """Seconds at each quarter-note offset, following the score's metronome marks."""
    starts, spq = [], []
    for start, _end, mark in score.metronomeMarkBoundaries():
        try:
            s = float(mark.secondsPerQuarter())
        except Exception:  # a text-only tempo music21 cannot put a number on
            s = 60.0 / DEFAULT_QPM
        starts.append(float(start))
        spq.append(s if math.isfinite(s) and s > 0 else 60.0 / DEFAULT_QPM)
    starts_a, spq_a = np.array(starts), np.array(spq)
    cum = np.concatenate([[0.0], np.cumsum(np.diff(starts_a) * spq_a[:-1])])
    seg = np.clip(np.searchsorted(starts_a, beats, side="right") - 1, 0, len(starts_a) - 1)
    return cum[seg] + (beats - starts_a[seg]) * spq_a[seg]


def tune_to_notes(tune: AbcTune | str, piece_id: str, *,
                  timeout_s: float | None = PARSE_TIMEOUT_S) -> pd.DataFrame:
    """Parse one tune with music21 into a note table (see :mod:`pipeline.core.notes`).

    One row per sounding pitch: a chord gives one row per pitch, tied notes are
    merged into one (music21 ``stripTies``). Repeats are not expanded (the tune
    as written). ``track`` is the voice (music21 part) index, ``program`` 0,
    ``velocity`` 80. Beats are music21 offsets in quarter notes; seconds follow
    the tune's ``Q:`` field, or 120 quarter notes a minute when it has none.

    Grace notes (no duration in music21), guitar-chord symbols and pitches
    outside MIDI's 0-127 are left out; their counts are in ``df.attrs["dropped"]`` and music21's warnings (such as
    an unreadable note it replaced by C) in ``df.attrs["warnings"]``.

    Returns
    -------
    note table, shape (n_notes, 9), sorted by start then pitch.

    Raises
    ------
    AbcParseError
        music21 cannot parse the tune, gives up after ``timeout_s``, or finds no note.
    """
    if not isinstance(tune, AbcTune):
        tune = AbcTune(text=str(tune))
    label = f"tune X:{tune.number} {tune.title!r}" + (f" in {tune.source}" if tune.source else "")
    text = tune.text
    try:
        score, warnings = parse_abc(text, timeout_s=timeout_s)
        with time_limit(timeout_s):
            score = score.stripTies()
            rows, dropped = [], {}
            for track, part in enumerate(score.parts):
                for el, reason in pitched_notes(part):
                    if reason:
                        dropped[reason] = dropped.get(reason, 0) + 1
                        continue
                    on, length = float(el.offset), float(el.quarterLength)
                    for p in el.pitches:
                        if 0 <= p.midi <= 127:
                            rows.append((track, int(p.midi), on, on + length))
                        else:
                            dropped["pitch outside MIDI 0-127"] = dropped.get("pitch outside MIDI 0-127", 0) + 1
    except AbcParseError as exc:
        raise AbcParseError(f"{label}: {exc}") from None
    except ParseTimeout as exc:
        raise AbcParseError(f"{label}: music21 {exc}") from None
    except Exception as exc:  # music21 failing after a successful parse
        raise AbcParseError(f"{label}: music21 failed ({one_line(exc)})") from None
    if not rows:
        raise AbcParseError(f"{label}: no notes")
    arr = np.array([r[2:] for r in rows], dtype=float)
    df = pd.DataFrame({
        "piece": piece_id,
        "track": [r[0] for r in rows],
        "program": PROGRAM,
        "pitch": [r[1] for r in rows],
        "velocity": VELOCITY,
        "start": _beats_to_seconds(score, arr[:, 0]),
        "end": _beats_to_seconds(score, arr[:, 1]),
        "start_beat": arr[:, 0],
        "end_beat": arr[:, 1],
    })
    df = normalise_note_table(df)
    df.attrs["dropped"] = dropped
    df.attrs["warnings"] = warnings
    return df


# --------------------------------------------------------------------------- parsing with abc2midi (symusic)

ABC2MIDI_NOTE_ON_DELAY = 1  # ticks: abc2midi starts every note one tick after its written onset


def tune_to_notes_symusic(tune: AbcTune | str, piece_id: str, *,
                          timeout_s: float | None = PARSE_TIMEOUT_S) -> pd.DataFrame:
    """Play one tune with abc2midi and read its MIDI with symusic into a note table.

    The music21-free twin of :func:`tune_to_notes`, about 30 times faster. It
    gives the tune as abc2midi *plays* it: repeats and endings expanded, broken
    rhythms (``>``), ties merged, grace notes sounded (taking their time from
    the note they ornament), velocities from abc2midi's beat stresses, and the
    program of a ``%%MIDI program`` line. Guitar-chord accompaniment is
    switched off (``-NGUI``), as :func:`tune_to_notes` leaves chord symbols
    out, and the notes of a chord start together (``%%MIDI chordattack 0``;
    abc2midi otherwise strums them 10 ticks apart). ``track`` is abc2midi's track: one per voice. Seconds follow
    the tune's ``Q:`` field, or 120 quarter notes a minute when it has none;
    onsets are moved back by the tick abc2midi delays every note-on, so beats
    fall on the written grid.

    symusic's own ``Score.from_abc`` runs the same abc2midi it bundles with the
    same arguments, but lets abc2midi's messages through to our stdout and sets
    no time limit; so it is called here directly, its messages kept in
    ``df.attrs["warnings"]``. Drum notes (``%%MIDI drum``) and zero-length notes
    are counted in ``df.attrs["dropped"]``.

    Returns
    -------
    note table, shape (n_notes, 9), sorted by start then pitch.

    Raises
    ------
    AbcParseError
        abc2midi writes no MIDI (e.g. no ``K:`` field), gives up after
        ``timeout_s``, or plays no note.
    """
    import os

    import symusic  # sets SYMUSIC_ABC2MIDI to the abc2midi it ships

    if not isinstance(tune, AbcTune):
        tune = AbcTune(text=str(tune))
    label = f"tune X:{tune.number} {tune.title!r}" + (f" in {tune.source}" if tune.source else "")
    if not tune.text.strip():
        raise AbcParseError(f"{label}: empty tune text")
    lines = tune.text.splitlines()
    if not X_LINE.match(lines[0]):
        lines.insert(0, "X:1")  # abc2midi only reads tunes that start with an X: line
    lines.insert(1, "%%MIDI chordattack 0")
    exe = os.environ.get("SYMUSIC_ABC2MIDI") or str(Path(symusic.__file__).parent / "bin" / "abc2midi")
    # two small files a tune: in memory (tmpfs) where there is one, as a corpus has thousands of tunes
    scratch = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="abc2midi-", dir=scratch) as tmp:
        src, out = Path(tmp) / "tune.abc", Path(tmp) / "tune.mid"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            # -NGUI: no guitar-chord accompaniment
            proc = subprocess.run([exe, str(src), "-o", str(out), "-silent", "-NGUI"], capture_output=True,
                                  text=True, errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AbcParseError(f"{label}: abc2midi gave up after {timeout_s:g} s") from None
        # abc2midi counts lines in the file it read: renumber them as lines of the tune text
        shift = len(lines) - len(tune.text.splitlines())
        messages = [re.sub(r"line-char (\d+)", lambda m: f"line-char {max(int(m.group(1)) - shift, 1)}", m.strip())
                    for m in (proc.stdout + proc.stderr).splitlines() if m.strip()]
        if not out.exists() or out.stat().st_size == 0:
            last = messages[-1][:160] if messages else f"exit status {proc.returncode}"
            raise AbcParseError(f"{label}: abc2midi wrote no MIDI ({last})")
        data = out.read_bytes()
    try:
        score = midi_io.read_score(data)
        df, report = midi_io.score_to_notes(score, piece_id, label)
    except MidiReadError as exc:
        reason = str(exc).removeprefix(f"{label}: ").replace(" (the file holds no notes)", "")
        raise AbcParseError(f"{label}: {reason}") from None
    tpq = score.ticks_per_quarter
    tempos = score.tempos.numpy()
    # every onset moves back by the same tick, so the table stays in order
    on = np.maximum(np.rint(df["start_beat"].to_numpy() * tpq).astype(np.int64) - ABC2MIDI_NOTE_ON_DELAY, 0)
    df["start_beat"] = on / tpq
    df["start"] = midi_io.ticks_to_seconds(on, tempos["time"], tempos["mspq"], tpq)
    df.attrs["dropped"] = dict(report.dropped)
    df.attrs["warnings"] = messages
    return df


__all__ = [
    "AbcTune", "split_tunebook", "read_abc_text", "read_abc_file", "tune_to_notes",
    # the chars text of a tune
    "ABC_HEADERS", "music_text", "music_primer", "default_unit_length", "with_x_line",
    # the music21 adapter, shared with pipeline.media.engrave and pipeline.measures.abc_eval
    "PARSE_TIMEOUT_S", "X_LINE", "field_value", "one_line", "ParseTimeout", "time_limit", "parse_abc",
    "pitched_notes",
]
