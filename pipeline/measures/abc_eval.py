"""How good are generated ABC tunes, how fast are they drawn, and what does a char n-gram score?

The evaluation layer of the ``chars`` encoding, reproducing the figures of the
char-level course reports (validity of sampled tunes per temperature, the
validation loss of a char model next to simple baselines).

One tune
    ``check_tune`` parses a tune with music21 (bars as written), counts its
    notes and the bars whose length matches the meter (forgiving pickups and
    split bars), and writes it as MIDI; it gives a :class:`TuneValidity` and
    never raises.
Pure core
    ``tunes_of_samples`` (a ``samples.json`` -> tune texts and whether each
    reached ``<end>``), ``validate_tunes`` (one row of checks per tune),
    ``summarise_validity`` (one row per temperature), ``validity_markdown``.
File I/O at the edges
    ``score_sample_folder`` writes ``sample_NNN.abc`` for every tune, MIDI for
    the playable ones, SVG sheet music for the first few and ``validity.csv``;
    ``write_validity_summary`` writes ``validity_summary.csv``/``.md``.
Measurements
    ``generation_speed`` (characters a second, one batch vs one tune at a
    time) and ``char_ngram_baseline`` (Witten-Bell n-grams on the model's own
    split and validation targets).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from pipeline.inputs.abc_io import (PARSE_TIMEOUT_S, ParseTimeout, field_value, parse_abc, pitched_notes, time_limit,
                     with_x_line)
from pipeline.codecs import END, START, decode_chars, get_codec
from pipeline.media.engrave import abc_to_midi_file, available_engraver, engrave, score_to_midi_file
from pipeline.core.errors import AbcParseError, ConfigError, EngraveError, PipelineError, one_line
from pipeline.core.fsutil import atomic_write_text
from pipeline.store.samples import Samples, read_samples
from pipeline.inputs.midi_io import read_midi

VALIDITY_COLUMNS = ["sample", "parses", "to_midi", "notes", "bars_total", "bars_matching", "bar_fraction",
                    "all_bars_match", "meter", "warnings", "ended", "length", "error"]
SUMMARY_COLUMNS = ["temperature", "tunes", "pct_parses", "pct_midi", "pct_bars_matching",
                   "pct_all_bars_match", "pct_ended", "mean_length"]
# headers of the Markdown summary: what each column means, in words
SUMMARY_HEADERS = {
    "temperature": "T", "tunes": "tunes", "pct_parses": "parses %", "pct_midi": "MIDI %",
    "pct_bars_matching": "bars matching meter % (parsing tunes)", "pct_all_bars_match": "all bars match %",
    "pct_ended": "ended with <end> %", "mean_length": "mean length (chars)",
}
ENGRAVE_FALLBACK_COUNT = 5  # LilyPond takes seconds a tune; abcm2ps ~15 ms, so it draws them all


# --------------------------------------------------------------------------- validity of one tune

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
    return sum(len(inst.notes) for inst in read_midi(path).instruments)


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
        result.meter = field_value(lines, "M")
        with time_limit(timeout_s):
            _check_into(str(text), lines, result)
    except ParseTimeout as exc:
        result.error = f"music21 {exc} (absurd meter or note lengths?)"
    except Exception as exc:  # garbage in must give a record, never a crash
        result.error = result.error or f"unexpected {one_line(exc)}"
    return result


def _check_into(text: str, lines: list[str], result: TuneValidity) -> None:
    """Fill ``result`` step by step; the caller catches what escapes."""
    from music21 import meter, stream

    try:
        # no time limit of its own: check_tune's limit covers the whole check
        score, warnings = parse_abc(text, timeout_s=None)
    except AbcParseError as exc:
        result.error = str(exc)
        return
    result.warnings = len(warnings)
    result.notes = sum(len(el.pitches) for part in score.parts
                       for el, reason in pitched_notes(part) if reason is None)
    has_key = field_value(lines, "K") is not None
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
            score_to_midi_file(score, out, expand_repeats=False)
            result.to_midi = _count_midi_notes(out) > 0
            if not result.to_midi:
                result.error = "the MIDI file has no notes"
        except Exception as exc:
            result.error = f"no MIDI ({one_line(exc)})"


# --------------------------------------------------------------------------- validity of many tunes (pure)

def tunes_of_samples(data: Samples, include_primer: bool = True) -> tuple[list[str], list[bool]]:
    """Tune texts and ``ended`` flags of a chars ``samples.json`` (as read by ``read_samples``).

    Each sample is its primer (``<start>`` or ``<start>`` + the user's text,
    unless ``include_primer`` is false) followed by the new characters, cut at
    the first ``<end>``. ``ended`` is true when the sampler stopped at
    ``<end>`` rather than at the length limit.
    """
    primer = list(data.primer or [START]) if include_primer else []
    texts = [decode_chars(primer + list(s)) for s in data.samples]
    ended = [bool(s) and s[-1] == END for s in data.samples]
    return texts, ended


def _validity_row(i: int, text: str, ended: bool, v: TuneValidity) -> dict:
    return {"sample": i, "parses": v.parses, "to_midi": v.to_midi, "notes": v.notes,
            "bars_total": v.bars_total, "bars_matching": v.bars_matching, "bar_fraction": v.bar_fraction,
            "all_bars_match": bool(v.parses and v.bars_total > 0 and v.bars_matching == v.bars_total),
            "meter": v.meter, "warnings": v.warnings, "ended": bool(ended), "length": len(text),
            "error": v.error}


def validate_tunes(texts: Sequence[str], ended: Sequence[bool], *, timeout_s: float | None = PARSE_TIMEOUT_S,
                   progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Check every tune with :func:`check_tune`; never raises on bad ABC.

    Each tune gets ``timeout_s`` (music21 can take minutes over a generated
    ``M:451/8``); a tune that times out, or that makes the checker fail in a
    way it did not foresee, is a row with ``parses`` false and the reason in
    ``error``, so one tune never costs the batch.

    Parameters
    ----------
    texts : n tune texts (``<start>``/``<end>`` already removed).
    ended : n flags, true where the sampler stopped at ``<end>``.

    Returns
    -------
    DataFrame, shape (n, len(VALIDITY_COLUMNS)), in input order: ``sample``
    (index), the :class:`TuneValidity` fields, ``bar_fraction`` (0 without bars),
    ``all_bars_match`` (parses and every bar, at least one, matches the meter),
    ``ended`` and ``length`` (characters of the text); ``meter`` and ``error``
    are missing (NaN) where absent. Empty input gives an empty frame with these columns.
    """
    if len(texts) != len(ended):
        raise ValueError(f"{len(texts)} texts but {len(ended)} ended flags")
    rows = []
    for i, (text, end) in enumerate(zip(texts, ended)):
        try:
            v = check_tune(text, timeout_s=timeout_s)
        except Exception as exc:  # check_tune promises not to raise; a batch of 300 must not rely on it
            v = TuneValidity(error=f"checker failed: {type(exc).__name__}: {exc}"[:200])
        rows.append(_validity_row(i, text, end, v))
        if progress:
            progress(1)
    df = pd.DataFrame(rows, columns=VALIDITY_COLUMNS).astype(
        {"parses": bool, "to_midi": bool, "all_bars_match": bool, "ended": bool,
         "notes": int, "bars_total": int, "bars_matching": int, "warnings": int, "length": int,
         "bar_fraction": float})
    return df


def _pct(series: pd.Series) -> float:
    return 100.0 * float(series.mean()) if len(series) else math.nan


def summarise_validity(df_by_temperature: Mapping[object, pd.DataFrame]) -> pd.DataFrame:
    """One row per temperature (or any label, e.g. ``"real tunes"``) of :func:`validate_tunes` tables.

    Columns (percentages 0-100):

    - ``tunes``: rows of the table;
    - ``pct_parses``, ``pct_midi``, ``pct_ended``, ``pct_all_bars_match``: share of all tunes;
    - ``pct_bars_matching``: mean ``bar_fraction`` over the tunes that parse (a
      parsing tune without bar lines counts 0);
    - ``mean_length``: mean characters per tune.

    An empty table gives ``tunes`` 0 and NaN elsewhere; ``pct_bars_matching``
    is NaN when no tune parses.
    """
    rows = []
    for label, df in df_by_temperature.items():
        parsing = df[df["parses"].astype(bool)] if len(df) else df
        rows.append({
            "temperature": label, "tunes": len(df),
            "pct_parses": _pct(df["parses"]), "pct_midi": _pct(df["to_midi"]),
            "pct_bars_matching": _pct(parsing["bar_fraction"]) if len(parsing) else math.nan,
            "pct_all_bars_match": _pct(df["all_bars_match"]), "pct_ended": _pct(df["ended"]),
            "mean_length": float(df["length"].mean()) if len(df) else math.nan,
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def validity_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table with readable headers, percentages to one decimal."""
    show = summary.copy()
    for col in SUMMARY_COLUMNS[2:]:
        show[col] = ["" if pd.isna(v) else f"{v:.1f}" if col != "mean_length" else f"{v:.0f}" for v in show[col]]
    show["temperature"] = [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in show["temperature"]]
    show = show.rename(columns=SUMMARY_HEADERS)
    return show.to_markdown(index=False, disable_numparse=True,
                            colalign=["left"] + ["right"] * (len(show.columns) - 1)) + "\n"


# --------------------------------------------------------------------------- files

def default_engrave_count() -> int | None:
    """How many playable tunes to draw per folder by default: all with abcm2ps, else a few."""
    return None if available_engraver() == "abcm2ps" else ENGRAVE_FALLBACK_COUNT


def score_sample_folder(folder: str | Path, *, midi: bool = True, engrave_count: int | None = 0,
                        include_primer: bool = True, timeout_s: float | None = PARSE_TIMEOUT_S,
                        progress: Callable[[int], None] | None = None,
                        notice: Callable[[str], None] = lambda s: None) -> pd.DataFrame:
    """Write the files of a chars samples folder and judge every tune.

    Writes ``sample_NNN.abc`` for every tune, ``sample_NNN.mid`` (music21) for
    each tune that passes every check (``to_midi``) when ``midi``,
    ``sample_NNN.svg`` for the first ``engrave_count`` of those (``None`` = all,
    0 = none) and ``validity.csv``. A MIDI or SVG left by an earlier sampling
    into the same folder is removed where the new tune gets none.

    Returns
    -------
    The :func:`validate_tunes` table plus ``abc``, ``midi`` and ``svg`` (file
    names, ``""`` where none) and ``file_error`` (why a MIDI or SVG failed).

    Raises
    ------
    RunError
        ``folder`` holds no ``samples.json``.
    ConfigError
        The samples are not of a chars model.
    """
    folder = Path(folder)
    data = read_samples(folder)
    if get_codec(data.encoding).plays_notes:
        raise ConfigError(f"{folder} holds {data.encoding} samples, not ABC characters")
    texts, ended = tunes_of_samples(data, include_primer)
    table = validate_tunes(texts, ended, timeout_s=timeout_s, progress=progress)
    files = {"abc": [], "midi": [], "svg": [], "file_error": []}
    drawn = 0
    for i, text in enumerate(texts):
        stem = folder / f"sample_{i:03d}"
        atomic_write_text(stem.with_suffix(".abc"), with_x_line(text, i + 1, f"Sample {i}") + "\n")
        mid, svg, error = "", "", ""
        for stale in (stem.with_suffix(".mid"), stem.with_suffix(".svg")):
            stale.unlink(missing_ok=True)
        playable = bool(table.at[i, "to_midi"])
        if midi and playable:
            try:
                mid = abc_to_midi_file(text, stem.with_suffix(".mid"), timeout_s=timeout_s).name
            except PipelineError as exc:  # passed check_tune; only a time-out should get here
                error = str(exc)
                notice(f"sample {i}: no MIDI ({error})")
        if playable and (engrave_count is None or drawn < engrave_count):
            drawn += 1
            try:
                svg = engrave(text, stem.with_suffix(".svg")).name
            except EngraveError as exc:
                error = "; ".join(filter(None, [error, str(exc)]))
                notice(f"sample {i}: no sheet music ({exc})")
        for key, value in (("abc", stem.with_suffix(".abc").name), ("midi", mid), ("svg", svg),
                           ("file_error", error)):
            files[key].append(value)
    table = table.assign(**files)
    atomic_write_text(folder / "validity.csv", table.to_csv(index=False))
    return table


def write_validity_summary(df_by_temperature: Mapping[object, pd.DataFrame],
                           out_dir: str | Path) -> tuple[pd.DataFrame, list[Path]]:
    """:func:`summarise_validity` into ``validity_summary.csv`` and ``validity_summary.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    summary = summarise_validity(df_by_temperature)
    csv = atomic_write_text(out_dir / "validity_summary.csv", summary.to_csv(index=False))
    md = atomic_write_text(out_dir / "validity_summary.md", validity_markdown(summary))
    return summary, [csv, md]


__all__ = ["TuneValidity", "check_tune", "VALIDITY_COLUMNS", "SUMMARY_COLUMNS", "tunes_of_samples", "validate_tunes",
           "summarise_validity", "validity_markdown", "default_engrave_count", "score_sample_folder",
           "write_validity_summary"]
