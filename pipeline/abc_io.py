"""ABC tunebooks <-> tunes, characters, note tables, MIDI and sheet music.

The data layer for the ``chars`` encoding and for ABC input: plain functions
over plain data (strings, :class:`AbcTune`, note tables), file I/O at the edges.

Reading
    ``split_tunebook`` / ``read_abc_file`` cut a tunebook into tunes;
    ``bundled_corpus_tunes`` reads the ABC tunebooks that ship inside music21.
Characters
    ``encode_chars`` / ``decode_chars`` mirror each other; ``split_generated``
    cuts a sampled stream back into tunes.
Music
    ``tune_to_notes`` (note table), ``abc_to_midi_file`` (music21) and
    ``abc2midi_reference`` (the abcmidi tool) go through a real ABC parser;
    ``check_tune`` scores a generated tune without ever raising;
    ``engrave`` draws it with abcm2ps (or music21 + LilyPond).

music21 is imported inside the functions that need it: importing it takes
about a second, which the CLI should not pay for ``--help``.
"""
from __future__ import annotations

import contextlib
import copy
import glob
import io
import math
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AbcParseError, ConfigError, EngraveError, NoUsableInputError
from .notes import normalise_note_table

START = "<start>"
END = "<end>"

DEFAULT_QPM = 120.0  # music21's own default when a tune has no Q: field
VELOCITY = 80
PROGRAM = 0  # acoustic grand piano: ABC tunes carry no instrument
PARSE_TIMEOUT_S = 10.0  # real tunes parse in well under a second
TOOL_TIMEOUT_S = 60.0

_X_LINE = re.compile(r"^[ \t]*X:", re.MULTILINE)


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


def _field(lines: list[str], name: str) -> str | None:
    """Value of the first ``name:`` field line, without a trailing % comment."""
    prefix = name + ":"
    for line in lines:
        if line.startswith(prefix):
            return re.sub(r"(?<!\\)%.*$", "", line[len(prefix):]).strip()
    return None


def _tune_from_lines(lines: list[str], source: str) -> AbcTune:
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("%")):
        lines = lines[:-1]
    number_field = _field(lines, "X") or ""
    number = int(number_field) if number_field.isdigit() else None
    return AbcTune(
        text="\n".join(lines).strip(),
        number=number,
        title=_field(lines, "T") or "",
        meter=_field(lines, "M"),
        key=_field(lines, "K"),
        source=source,
    )


def split_tunebook(text: str, source: str = "") -> list[AbcTune]:
    """Split a tunebook into its tunes at ``X:`` lines.

    Everything before the first ``X:`` line (``%abc-2.1``, comments, free text,
    file-wide fields) is dropped: it belongs to no tune. Every ``X:`` line starts
    a tune, so tunes with no ``K:`` field, no body, or a broken body are still
    returned; :func:`check_tune` and :func:`tune_to_notes` judge them later, so
    that every dropped tune is counted with its reason by the caller.

    Returns an empty list when the text holds no ``X:`` line.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _X_LINE.match(line)]
    tunes = []
    for k, begin in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        tune_lines = [lines[begin].lstrip()] + lines[begin + 1:end]
        tunes.append(_tune_from_lines(tune_lines, source))
    return tunes


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
        raise AbcParseError(f"{path.name}: cannot read ({_one_line(exc)})") from None
    tunes = split_tunebook(text, source=str(path))
    if not tunes:
        raise AbcParseError(f"{path.name}: no ABC tunes (no line starts with 'X:')")
    return tunes


# --------------------------------------------------------------------------- bundled corpora

# name -> globs under music21's corpus folder, or the names of other corpora to join.
# Counts for music21 10.x are in the comments (see list_bundled_corpora()).
BUNDLED_CORPORA: dict[str, tuple[str, ...]] = {
    "oneills1850": ("oneills1850/*.abc",),          # 2,009 Irish tunes, 39 files
    "ryansMammoth": ("ryansMammoth/*.abc",),        # 1,059 American/Irish fiddle tunes, one a file
    "airdsAirs": ("airdsAirs/*.abc",),              # 1,180 Scottish airs, 6 books
    "miscFolk": ("miscFolk/*.abc",),                # 185 American fife and Northumbrian tunes
    "nottingham": ("nottingham-dataset/*.abc",),    # 2 reels (music21 ships only this sample)
    # 8,462 German (and other) folksongs; test*.abc are music21's own test fixtures
    "essenFolksong": tuple(f"essenFolksong/{p}*.abc" for p in
                           ("altdeu", "ballad", "boehme", "dva", "erk", "fink", "folkHaydn",
                            "han", "irl", "kinder", "lot", "lux", "variant", "zuccal")),
    "josquin": ("josquin/*.abc",),                  # 29 parts of Renaissance polyphony
    # the default: British, Irish and American instrumental folk tunes (4,435)
    "folk": ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "nottingham"),
    "default": ("folk",),
}


def _corpus_root() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def _corpus_files(name: str) -> list[Path]:
    if name not in BUNDLED_CORPORA:
        raise ConfigError(f"unknown bundled corpus {name!r}; choose from {', '.join(BUNDLED_CORPORA)}")
    files: list[Path] = []
    for part in BUNDLED_CORPORA[name]:
        if part in BUNDLED_CORPORA:
            files += _corpus_files(part)
        else:
            files += sorted(Path(p) for p in glob.glob(str(_corpus_root() / part)))
    return list(dict.fromkeys(files))  # a file reached twice is read once


def bundled_corpus_paths(name: str = "default") -> list[Path]:
    """The ABC files of a bundled corpus, sorted, so ``extract`` treats them like a user's files.

    Raises ConfigError for an unknown name and NoUsableInputError when music21 lacks the files.
    """
    files = _corpus_files(name)
    if not files:
        raise NoUsableInputError(f"music21 at {_corpus_root()} has no ABC files for corpus {name!r}")
    return files


def bundled_corpus_tunes(name: str = "default", limit: int | None = None) -> list[AbcTune]:
    """Tunes of an ABC tunebook bundled with music21, read as raw text (not parsed).

    Files are read in sorted order, tunes in file order, so the first ``limit``
    tunes are always the same ones. ``source`` is the path inside music21's
    corpus folder, e.g. ``oneills1850/0001-0050.abc``.

    Raises
    ------
    ConfigError
        ``name`` is not a key of :data:`BUNDLED_CORPORA`.
    NoUsableInputError
        The installed music21 has none of the corpus's files.
    """
    files = _corpus_files(name)
    if not files:
        raise NoUsableInputError(f"music21 at {_corpus_root()} has no ABC files for corpus {name!r}")
    root = _corpus_root()
    tunes: list[AbcTune] = []
    for path in files:
        tunes += split_tunebook(read_abc_text(path), source=path.relative_to(root).as_posix())
        if limit is not None and len(tunes) >= limit:
            return tunes[:limit]
    return tunes


def list_bundled_corpora() -> dict[str, int]:
    """Number of tunes in each bundled corpus (0 where music21 lacks its files)."""
    return {name: len(bundled_corpus_tunes(name)) if _corpus_files(name) else 0
            for name in BUNDLED_CORPORA}


# --------------------------------------------------------------------------- characters

def encode_chars(tune_text: str) -> list[str]:
    """``[START, c1, c2, ..., cn, END]``: one token per character of the tune text.

    The markers are single tokens, so a tune that contains the text ``<start>``
    still encodes to its seven characters and decodes back unchanged.
    """
    return [START, *tune_text, END]


def decode_chars(tokens: list[str]) -> str:
    """Inverse of :func:`encode_chars`: the text up to the first END, markers removed."""
    out = []
    for tok in tokens:
        if tok == END:
            break
        if tok != START:
            out.append(tok)
    return "".join(out)


def split_generated(tokens: list[str]) -> list[str]:
    """Cut a sampled token stream holding several ``START ... END`` tunes into tune texts.

    Each ``START ... END`` pair gives one text (``''`` for ``START END``), and a
    tune cut off by the length limit (a START with no END) is kept as it is.
    Text outside any pair, such as a sample continued from a text primer, is a
    tune too unless it is blank. So ``split_generated(encode_chars(a) +
    encode_chars(b)) == [a, b]``.
    """
    tunes: list[str] = []
    current: list[str] = []
    inside = False  # between a START and its END

    def flush() -> None:
        text = "".join(current)
        if inside or text.strip():
            tunes.append(text)

    for tok in tokens:
        if tok == START or tok == END:
            flush()
            current, inside = [], tok == START
        else:
            current.append(tok)
    flush()
    return tunes


# --------------------------------------------------------------------------- parsing with music21

def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _ParseTimeout(BaseException):
    """Raised by SIGALRM inside music21. A BaseException, so that music21's own
    ``except Exception`` blocks cannot swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Interrupt the block after ``seconds``.

    Needed because music21 is super-linear in the bar length of odd meters:
    a generated ``M:451/8`` or an overlong bar can keep it busy for minutes.
    Only the main thread receives signals, and an ITIMER_REAL someone else
    set is left alone; in both cases the block simply runs without a limit.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    if not usable:
        yield
        return

    def _alarm(signum, frame):
        raise _ParseTimeout(f"gave up after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _keep_source_bars():
    """Stop music21 from re-barring while it translates ABC.

    music21 splits a bar longer than its time signature into a full bar plus a
    remainder bar with a made-up time signature. That (1) makes exactly the bars
    :func:`check_tune` must flag look correct, (2) reuses one TimeSignature
    object in two bars, which later breaks music21's own MIDI export, and (3)
    is super-linear in the bar length, so a garbage tune can take minutes.
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


def _parse_abc(text: str, *, timeout_s: float | None = PARSE_TIMEOUT_S):
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
        with _time_limit(timeout_s), contextlib.redirect_stderr(captured), _keep_source_bars():
            parsed = converter.parseData(text, format="abc")
    except _ParseTimeout as exc:
        raise AbcParseError(f"music21 {exc} (absurd meter or note lengths?)") from None
    except Exception as exc:  # music21 raises many types on bad ABC (ValueError, ZeroDivisionError...)
        raise AbcParseError(f"music21 cannot parse the tune ({_one_line(exc)})") from None
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if len(scores) != 1:
            raise AbcParseError(f"the text holds {len(scores)} tunes, not one; split it first")
        parsed = scores[0]
    warnings = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    return parsed, warnings


def _pitched_notes(part):
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
    """Parse one tune with music21 into a note table (see :mod:`pipeline.notes`).

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
        score, warnings = _parse_abc(text, timeout_s=timeout_s)
        with _time_limit(timeout_s):
            score = score.stripTies()
            rows, dropped = [], {}
            for track, part in enumerate(score.parts):
                for el, reason in _pitched_notes(part):
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
    except _ParseTimeout as exc:
        raise AbcParseError(f"{label}: music21 {exc}") from None
    except Exception as exc:  # music21 failing after a successful parse
        raise AbcParseError(f"{label}: music21 failed ({_one_line(exc)})") from None
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

    from . import midi_io
    from .errors import MidiReadError

    if not isinstance(tune, AbcTune):
        tune = AbcTune(text=str(tune))
    label = f"tune X:{tune.number} {tune.title!r}" + (f" in {tune.source}" if tune.source else "")
    if not tune.text.strip():
        raise AbcParseError(f"{label}: empty tune text")
    lines = tune.text.splitlines()
    if not _X_LINE.match(lines[0]):
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


# --------------------------------------------------------------------------- MIDI

def _write_midi(score, path: Path, expand_repeats: bool) -> None:
    """music21 MIDI export, notes as written unless ``expand_repeats``.

    music21's writer always expands repeats, and its expansion mishandles
    common tunebook habits (sections that close with ``:|`` but never open
    with ``|:`` come out 20 times longer; odd bar lines raise), so by default
    a copy without repeat signs, endings and repeat expressions is written.
    """
    from music21 import bar, repeat, spanner, stream

    if not expand_repeats:
        score = copy.deepcopy(score)
        for m in score.recurse().getElementsByClass(stream.Measure):
            if isinstance(m.leftBarline, bar.Repeat):
                m.leftBarline = bar.Barline("regular")
            if isinstance(m.rightBarline, bar.Repeat):
                m.rightBarline = bar.Barline("regular")
        for el in list(score.recurse().getElementsByClass((spanner.RepeatBracket, repeat.RepeatExpression))):
            el.activeSite.remove(el)
    with contextlib.redirect_stderr(io.StringIO()):
        score.write("midi", fp=str(path))


def abc_to_midi_file(tune_text: str, out_path: str | Path, *, expand_repeats: bool = False,
                     timeout_s: float | None = PARSE_TIMEOUT_S) -> Path:
    """Write one tune as a MIDI file through music21.

    Notes as written (those of :func:`tune_to_notes`, plus the grace notes it
    leaves out), or with music21's repeat expansion when ``expand_repeats``; for
    faithful playback of repeats and endings use :func:`abc2midi_reference`.

    Raises AbcParseError when music21 cannot parse or convert the tune.
    """
    out_path = Path(out_path)
    score, _ = _parse_abc(tune_text, timeout_s=timeout_s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _time_limit(timeout_s):
            _write_midi(score, out_path, expand_repeats)
    except _ParseTimeout as exc:
        raise AbcParseError(f"music21 MIDI export {exc}") from None
    except Exception as exc:
        raise AbcParseError(f"music21 cannot write the tune as MIDI ({_one_line(exc)})") from None
    return out_path


def _ensure_x(tune_text: str) -> str:
    # abc2midi and abcm2ps only read tunes that start with an X: line
    return tune_text if _X_LINE.search(tune_text) else "X:1\n" + tune_text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no message"


def abc2midi_reference(tune_text: str, out_path: str | Path) -> Path | None:
    """Write one tune as MIDI with ``abc2midi`` (abcmidi), the reference ABC player.

    Unlike music21 it plays repeats, broken rhythms and guitar chords the way
    ABC players do, so its MIDI is the one to listen to or compare against.
    Returns ``None`` when abc2midi is not installed.

    Raises AbcParseError when abc2midi writes no MIDI file.
    """
    exe = shutil.which("abc2midi")
    if exe is None:
        return None
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="abc2midi-") as tmp:
        src = Path(tmp) / "tune.abc"
        src.write_text(_ensure_x(tune_text) + "\n", encoding="utf-8")
        tmp_out = Path(tmp) / "tune.mid"
        try:
            proc = subprocess.run([exe, str(src), "-o", str(tmp_out), "-silent"], capture_output=True,
                                  text=True, errors="replace", timeout=TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AbcParseError(f"abc2midi gave up after {TOOL_TIMEOUT_S:g} s") from None
        if not tmp_out.exists() or tmp_out.stat().st_size == 0:
            raise AbcParseError(f"abc2midi wrote no MIDI ({_last_line(proc.stdout + proc.stderr)})")
        shutil.move(str(tmp_out), out_path)
    return out_path


# --------------------------------------------------------------------------- validity of a tune

@dataclass
class TuneValidity:
    """How usable one (typically generated) tune is.

    parses       music21 parses it, it has a ``K:`` field and at least one note
    to_midi      music21 writes it as MIDI that pretty_midi reads back with >= 1 note
    notes        note heads music21 found (each chord pitch and each tied note counted)
    bars_total   bars in all voices (0 when the tune has no bar lines)
    bars_matching bars whose length equals the time signature's bar (see :func:`check_tune`)
    meter        the ``M:`` field as written, ``None`` when absent
    warnings     number of music21 warnings (e.g. an unreadable note replaced by C)
    error        why the first failed check failed, ``None`` when all passed
    """

    parses: bool = False
    to_midi: bool = False
    notes: int = 0
    bars_total: int = 0
    bars_matching: int = 0
    meter: str | None = None
    warnings: int = 0
    error: str | None = None

    @property
    def bar_fraction(self) -> float:
        """bars_matching / bars_total; 0.0 for a tune with no bars."""
        return self.bars_matching / self.bars_total if self.bars_total else 0.0


def _matching_bars(durations: list[float], bar_length: list[float]) -> int:
    """Count bars of the right length, forgiving the short bars ABC writes on purpose.

    A bar is right when its length equals its time signature's bar. Short bars
    are also right when they are:

    - the first bar: an anacrusis (ABC has no other way to write a pickup);
    - the last bar, when it and a short first bar together make one bar;
    - two neighbours that together make one bar: a bar split by a repeat or
      section sign, as in ``G2 z :|: G | ...``.

    Longer-than-bar bars are never right.
    """
    n = len(durations)

    def full(i: int) -> bool:
        return abs(durations[i] - bar_length[i]) < 1e-6

    def short(i: int) -> bool:
        return durations[i] < bar_length[i] - 1e-6

    def completes(i: int, j: int) -> bool:
        return (short(i) and short(j) and abs(bar_length[i] - bar_length[j]) < 1e-6
                and abs(durations[i] + durations[j] - bar_length[i]) < 1e-6)

    ok = [full(i) for i in range(n)]
    if n >= 2 and completes(0, n - 1):
        ok[n - 1] = True
    i = 1 if n and short(0) else 0  # a short first bar is the anacrusis, never half of a pair
    if n and short(0):
        ok[0] = True
    while i < n - 1:
        if not ok[i] and not ok[i + 1] and completes(i, i + 1):
            ok[i] = ok[i + 1] = True
            i += 2
        else:
            i += 1
    return sum(ok)


def _count_midi_notes(path: Path) -> int:
    import warnings

    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
    return sum(len(inst.notes) for inst in pm.instruments)


def check_tune(text: str, *, timeout_s: float | None = PARSE_TIMEOUT_S) -> TuneValidity:
    """Check whether a tune text is usable ABC; never raises.

    Bars are the bars as written (music21 is kept from re-barring). A tune with
    no time signature (no ``M:`` or ``M:none``) has no bar length to compare
    with, so none of its bars match: a generator cannot score by leaving out
    ``M:``. See :func:`_matching_bars` for pickups and split bars. All checks
    together are given ``timeout_s`` (main thread only).

    Returns
    -------
    TuneValidity; ``error`` holds the reason of the first check that failed.
    """
    result = TuneValidity()
    try:
        lines = str(text).splitlines()
        result.meter = _field(lines, "M")
        with _time_limit(timeout_s):
            _check_into(str(text), lines, result)
    except _ParseTimeout as exc:
        result.error = f"music21 {exc} (absurd meter or note lengths?)"
    except Exception as exc:  # garbage in must give a record, never a crash
        result.error = result.error or f"unexpected {_one_line(exc)}"
    return result


def _check_into(text: str, lines: list[str], result: TuneValidity) -> None:
    """Fill ``result`` step by step; the caller catches what escapes."""
    from music21 import meter, stream

    try:
        # no time limit of its own: check_tune's limit covers the whole check
        score, warnings = _parse_abc(text, timeout_s=None)
    except AbcParseError as exc:
        result.error = str(exc)
        return
    result.warnings = len(warnings)
    result.notes = sum(len(el.pitches) for part in score.parts
                       for el, reason in _pitched_notes(part) if reason is None)
    has_key = _field(lines, "K") is not None
    result.parses = has_key and result.notes > 0
    if not has_key:
        result.error = "no K: field"
    elif not result.notes:
        result.error = "no notes"

    has_meter = bool(score.recurse().getElementsByClass(meter.TimeSignature))
    for part in score.parts:
        measures = list(part.getElementsByClass(stream.Measure))
        result.bars_total += len(measures)
        if has_meter and measures:
            result.bars_matching += _matching_bars(
                [float(m.duration.quarterLength) for m in measures],
                [float(m.barDuration.quarterLength) for m in measures])
    if not result.parses:
        return

    with tempfile.TemporaryDirectory(prefix="check-tune-") as tmp:
        out = Path(tmp) / "tune.mid"
        try:
            _write_midi(score, out, expand_repeats=False)
            result.to_midi = _count_midi_notes(out) > 0
            if not result.to_midi:
                result.error = "the MIDI file has no notes"
        except Exception as exc:
            result.error = f"no MIDI ({_one_line(exc)})"


# --------------------------------------------------------------------------- sheet music

def _run_tool(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EngraveError(f"{Path(args[0]).name} gave up after {TOOL_TIMEOUT_S:g} s") from None


def _engrave_abcm2ps(tune_text: str, out_path: Path) -> Path:
    exe = shutil.which("abcm2ps")
    if exe is None:
        raise EngraveError("abcm2ps is not installed")
    with tempfile.TemporaryDirectory(prefix="abcm2ps-") as tmp:
        src = Path(tmp) / "tune.abc"
        src.write_text(_ensure_x(tune_text) + "\n", encoding="utf-8")
        # -g: SVG, one file per tune, named <stem>001.svg, <stem>002.svg, ...
        proc = _run_tool([exe, "-q", "-g", "-O", str(Path(tmp) / "tune.svg"), str(src)], cwd=tmp)
        made = sorted(Path(tmp).glob("tune*.svg"))
        if not made:
            raise EngraveError(f"abcm2ps drew nothing ({_last_line(proc.stdout + proc.stderr)})")
        shutil.move(str(made[0]), out_path)
    return out_path


def _engrave_lilypond(tune_text: str, out_path: Path) -> Path:
    exe = shutil.which("lilypond")
    if exe is None:
        raise EngraveError("lilypond is not installed")
    try:
        score, _ = _parse_abc(tune_text)
    except AbcParseError as exc:
        raise EngraveError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="lilypond-") as tmp:
        ly = Path(tmp) / "tune.ly"
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                score.write("lily", fp=str(ly))
        except Exception as exc:
            raise EngraveError(f"music21 cannot write LilyPond ({_one_line(exc)})") from None
        # music21's .ly includes lilypond-book-preamble, which cuts every system
        # into its own file; without it, -dcrop gives the whole tune in one SVG.
        source = ly.read_text(encoding="utf-8").replace('\\include "lilypond-book-preamble.ly"', "")
        ly.write_text(source, encoding="utf-8")
        proc = _run_tool([exe, "-s", "-dbackend=svg", "-dcrop", "-o", "tune", str(ly)], cwd=tmp)
        made = Path(tmp) / "tune.cropped.svg"
        if not made.exists():
            raise EngraveError(f"lilypond drew nothing ({_last_line(proc.stdout + proc.stderr)})")
        shutil.move(str(made), out_path)
    return out_path


ENGRAVERS = ("abcm2ps", "lilypond")


def engrave(tune_text: str, out_path: str | Path, engine: str = "auto") -> Path:
    """Draw one tune as sheet music in an SVG file.

    ``engine="auto"`` uses abcm2ps (``abcm2ps -g``: reads the ABC itself, so it
    draws exactly what was written, decorations and all) and falls back to
    music21 -> LilyPond (``-dbackend=svg -dcrop``) when abcm2ps is missing or
    draws nothing. ``out_path`` is written as given; an ``.svg`` suffix is the
    honest one.

    Raises
    ------
    EngraveError
        No engraver is installed, or each one tried failed (reasons joined).
    ConfigError
        ``engine`` is not ``auto``, ``abcm2ps`` or ``lilypond``.
    """
    if engine not in ("auto", *ENGRAVERS):
        raise ConfigError(f"unknown engraver {engine!r}; choose from auto, {', '.join(ENGRAVERS)}")
    if not tune_text.strip():
        raise EngraveError("cannot draw an empty tune")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    reasons = []
    for name in (ENGRAVERS if engine == "auto" else (engine,)):
        try:
            draw = _engrave_abcm2ps if name == "abcm2ps" else _engrave_lilypond
            return draw(tune_text, out_path)
        except EngraveError as exc:
            reasons.append(str(exc))
    raise EngraveError("cannot draw the tune: " + "; ".join(reasons))


def available_engraver() -> str | None:
    """The engraver ``engrave(engine="auto")`` tries first, ``None`` when none is installed."""
    return next((name for name in ENGRAVERS if shutil.which(name)), None)


__all__ = [
    "START", "END", "AbcTune", "split_tunebook", "read_abc_text", "read_abc_file",
    "BUNDLED_CORPORA", "bundled_corpus_tunes", "list_bundled_corpora",
    "encode_chars", "decode_chars", "split_generated",
    "tune_to_notes", "abc_to_midi_file", "abc2midi_reference",
    "TuneValidity", "check_tune", "engrave", "available_engraver", "ENGRAVERS",
]
