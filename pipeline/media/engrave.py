"""ABC tunes -> MIDI files and sheet music, through music21 and the ABC tools.

Writing
    ``abc_to_midi_file`` (music21, notes as written) and ``abc2midi_reference``
    (the abcmidi tool, repeats played as ABC players do) write one tune as MIDI;
    ``score_to_midi_file`` writes an already parsed music21 score.
Drawing
    ``engrave`` draws one tune as SVG sheet music with abcm2ps, or music21 +
    LilyPond when abcm2ps is missing; ``available_engraver`` says which one
    would be used.

Tunes are parsed by :mod:`pipeline.inputs.abc_io`; external tools get
``TOOL_TIMEOUT_S`` each. music21 is imported inside the functions that need it.
"""
from __future__ import annotations

import contextlib
import copy
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.inputs.abc_io import PARSE_TIMEOUT_S, ParseTimeout, parse_abc, time_limit, with_x_line
from pipeline.core.errors import AbcParseError, ConfigError, EngraveError, one_line

TOOL_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- MIDI

def score_to_midi_file(score, path: Path, expand_repeats: bool = False) -> None:
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

    Notes as written (those of :func:`pipeline.inputs.abc_io.tune_to_notes`, plus the grace notes it
    leaves out), or with music21's repeat expansion when ``expand_repeats``; for
    faithful playback of repeats and endings use :func:`abc2midi_reference`.

    Raises AbcParseError when music21 cannot parse or convert the tune.
    """
    out_path = Path(out_path)
    score, _ = parse_abc(tune_text, timeout_s=timeout_s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with time_limit(timeout_s):
            score_to_midi_file(score, out_path, expand_repeats)
    except ParseTimeout as exc:
        raise AbcParseError(f"music21 MIDI export {exc}") from None
    except Exception as exc:
        raise AbcParseError(f"music21 cannot write the tune as MIDI ({one_line(exc)})") from None
    return out_path


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
        src.write_text(with_x_line(tune_text) + "\n", encoding="utf-8")
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
        src.write_text(with_x_line(tune_text) + "\n", encoding="utf-8")
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
        score, _ = parse_abc(tune_text)
    except AbcParseError as exc:
        raise EngraveError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="lilypond-") as tmp:
        ly = Path(tmp) / "tune.ly"
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                score.write("lily", fp=str(ly))
        except Exception as exc:
            raise EngraveError(f"music21 cannot write LilyPond ({one_line(exc)})") from None
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


__all__ = ["TOOL_TIMEOUT_S", "score_to_midi_file", "abc_to_midi_file", "abc2midi_reference",
           "ENGRAVERS", "engrave", "available_engraver"]
