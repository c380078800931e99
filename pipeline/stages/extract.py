"""Stage 1: MIDI/ABC files -> ``processed/<dataset>/``.

Parses every input file (in parallel, each file's failure reported and
skipped), encodes the note table, assigns the split and hands it all to
:func:`pipeline.store.dataset.write_dataset`, the owner of the folder's format, in a
folder that is swapped in atomically (the old one survives a failed run).
Files whose sha256 is unchanged since the last run are not parsed again.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from pipeline.codecs import CODECS, group_onsets, timing_stats
from pipeline.codecs.frames import GRID_BEATS
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError, NoUsableInputError, PipelineError
from pipeline.core.fsutil import atomic_dir, folder_lock, sha256_file
from pipeline.core.notes import empty_note_table, normalise_note_table, note_table_bytes
from pipeline.core.procs import die_with_parent
from pipeline.inputs import abc_io, midi_io
from pipeline.inputs.abc_io import ABC_HEADERS, music_text
from pipeline.inputs.rolls import read_rolls, rolls_to_notes
from pipeline.store.dataset import (
    read_manifest_config,
    CachedFile,
    DatasetError,
    assign_split,
    previous_inputs,
    read_cached,
    read_previous,
    write_dataset,
)

ABC_SUFFIXES = (".abc",)
# piano-roll benchmark files; .json only when named on the command line (a folder's .json files are rarely rolls)
ROLL_SUFFIXES = (".mat", ".pickle", ".pkl")
INPUT_SUFFIXES = midi_io.MIDI_SUFFIXES + ABC_SUFFIXES + ROLL_SUFFIXES
ROLL_SIDES = {"train": "train", "valid": "validation", "test": "test"}  # a roll file's split -> the dataset's side


@dataclass
class ExtractConfig(StageConfig):
    """Options of the extract stage, saved in the manifest."""

    name: str = ""                  # "" = the first input's folder name, or the corpus name
    out: str = "processed"
    onset_tolerance: float = 0.02   # seconds; notes starting this close form one chord
    val_fraction: float = 0.2       # share of pieces held out (at least one)
    split_seed: int = 0
    workers: int = 0                # 0 = one per core
    abc_header: str = "music"       # chars text: "music" (R: M: L: K: and the notes) or "full" (as written)
    frame_seconds: float = 0.3      # a piano-roll file's time step, in seconds (its frames carry no tempo)

    def validate(self) -> None:
        super().validate()
        if not 0 < self.val_fraction < 1:
            raise ConfigError("--val-fraction must be between 0 and 1")
        if self.onset_tolerance < 0:
            raise ConfigError("--onset-tolerance must be >= 0 seconds")
        if not 0 < self.frame_seconds <= 10:
            raise ConfigError("--frame-seconds must be above 0 and at most 10")
        if self.workers < 0:
            raise ConfigError("--workers must be >= 0 (0 = one per core)")
        if self.abc_header not in ABC_HEADERS:
            raise ConfigError(f"--abc-header must be one of {', '.join(ABC_HEADERS)}, not {self.abc_header!r}")


@dataclass
class FileResult:
    """Outcome of parsing one input file (picklable, crosses process boundaries)."""

    path: str
    sha256: str
    kind: str
    status: str = "ok"
    reason: str = ""
    notes: pd.DataFrame | None = None
    texts: dict[str, str] = field(default_factory=dict)   # piece -> ABC text (chars encoding)
    pieces: int = 0
    tracks: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped_units: list[dict] = field(default_factory=list)  # e.g. ABC tunes that failed
    parquet: bytes = b""  # ``notes`` as the cache file, made in the worker so the parent only writes it

    def manifest_entry(self) -> dict:
        entry = {k: v for k, v in asdict(self).items() if k not in ("notes", "texts", "parquet")}
        entry["note_count"] = 0 if self.notes is None else int(len(self.notes))
        return entry


def _not_regular(p: Path) -> str:
    """Why an input-named path that is not a regular file cannot be read ("" if it is a folder)."""
    import stat

    if p.is_symlink() and not p.exists():
        return f"a broken link (to {os.readlink(p)})"
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return ""
    return "not a regular file (a pipe, socket or device); reading it could wait forever"


def collect_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], list[dict]]:
    """Expand files and folders (recursively) into input files, sorted.

    Returns the usable files and a list of ``{"path", "reason"}`` for paths
    that were given but cannot be used (missing, wrong suffix, a broken link or
    a pipe named like a MIDI file).
    """
    files: list[Path] = []
    rejected: list[dict] = []
    for p in map(Path, paths):
        if p.is_dir():
            found, seen = [], 0
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() not in INPUT_SUFFIXES:
                    continue
                if f.is_file():
                    found.append(f)
                elif reason := _not_regular(f):
                    rejected.append({"path": str(f), "reason": reason})
                seen += 1
            if not seen:
                rejected.append({"path": str(p), "reason": "folder holds no .mid/.midi/.abc file (nor .mat/.pickle piano rolls)"})
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() in INPUT_SUFFIXES + (".json",):
                files.append(p)
            else:
                rejected.append({"path": str(p), "reason": f"unsupported file type {p.suffix or '(none)'}"})
        elif p.exists() or p.is_symlink():
            rejected.append({"path": str(p), "reason": _not_regular(p)})
        else:
            rejected.append({"path": str(p), "reason": "no such file or folder"})
    unique = list(dict.fromkeys(f.resolve() for f in files))
    return unique, rejected


def hash_inputs(files: list[Path]) -> tuple[list[Path], list[str], list[dict]]:
    """sha256 of every file: ``(readable files, their hashes, {"path", "reason"} of unreadable ones)``.

    A file that cannot be read (permission denied, an I/O error, deleted meanwhile)
    is reported and skipped like a corrupt one, never the end of the extraction.
    """
    kept, shas, rejected = [], [], []
    for f in files:
        try:
            shas.append(sha256_file(f))
        except OSError as exc:
            rejected.append({"path": str(f), "reason": f"cannot read it ({exc.strerror or type(exc).__name__})"})
            continue
        kept.append(f)
    return kept, shas, rejected


def check_name(name: str) -> None:
    """A dataset name must be a plain folder name: no path separators, not ``.`` or ``..``."""
    if not name or name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name \
            or name.startswith("."):
        raise ConfigError(f"--name must be a plain folder name such as 'nocturnes', not {name!r}")


def check_output(folder: Path, files: list[Path], paths: Iterable[str | Path]) -> None:
    """Refuse an output folder that is or holds an input (replacing it would delete the input)."""
    out = folder.resolve()
    for p in [*map(Path, paths), *files]:
        p = p.resolve()
        if p == out or out in p.parents:
            raise ConfigError(f"the output folder {folder} would hold or replace the input {p}; "
                              "choose another --out or --name")


def _parse_midi(path: str, sha: str, piece: str) -> FileResult:
    res = FileResult(path=path, sha256=sha, kind="midi")
    try:
        notes, report = midi_io.midi_file_to_notes(path, piece=piece)
    except PipelineError as exc:
        res.status, res.reason = "skipped", str(exc)
        return res
    res.notes, res.pieces, res.tracks, res.dropped = notes, 1, report.tracks, report.dropped
    return res


def _parse_rolls(path: str, sha: str, piece: str, frame_seconds: float) -> FileResult:
    """Every piece of a piano-roll benchmark file, named ``<file>#<side>-<NNN>``; the file's split is kept.

    A frame is one sixteenth-note step of the ``frames`` grid lasting ``frame_seconds``.
    """
    res = FileResult(path=path, sha256=sha, kind="rolls")
    try:
        rolls = read_rolls(path)
    except PipelineError as exc:
        res.status, res.reason = "skipped", str(exc)
        return res
    names, pieces = [], []
    for side, side_pieces in rolls.splits.items():
        for i, frames in enumerate(side_pieces):
            names.append(f"{piece}#{side}-{i:03d}")
            pieces.append(frames)
    res.notes = rolls_to_notes(pieces, frame_seconds=frame_seconds, frame_beats=GRID_BEATS, names=names)
    res.pieces, res.tracks = len(pieces), len(pieces)
    res.dropped = rolls.report()
    return res


def roll_side(piece: str) -> str | None:
    """The side a piece of a piano-roll file keeps (``train``, ``validation``, ``test``); None for other pieces."""
    head, sep, tail = piece.rpartition("#")
    side = tail.rpartition("-")[0]
    return ROLL_SIDES.get(side) if sep else None


def _parse_abc(path: str, sha: str, piece: str) -> FileResult:
    """Every tune of an ABC file, as abc2midi plays it (read through symusic; no music21)."""
    res = FileResult(path=path, sha256=sha, kind="abc")
    try:
        tunes = abc_io.read_abc_file(path)
    except PipelineError as exc:
        res.status, res.reason = "skipped", str(exc)
        return res
    frames = []
    for i, tune in enumerate(tunes):
        tune_id = f"{piece}#{tune.number if tune.number is not None else i + 1}"
        if tune_id in res.texts:
            tune_id = f"{tune_id}.{i + 1}"
        try:
            frames.append(abc_io.tune_to_notes_symusic(tune, tune_id))
        except PipelineError as exc:
            res.skipped_units.append({"tune": tune_id, "title": tune.title, "reason": str(exc)})
            continue
        for reason, count in frames[-1].attrs.get("dropped", {}).items():
            res.dropped[reason] = res.dropped.get(reason, 0) + count
        res.texts[tune_id] = tune.text
    if not frames:
        res.status, res.reason = "skipped", f"none of {len(tunes)} tunes could be parsed"
        return res
    res.notes = normalise_note_table(pd.concat(frames, ignore_index=True))
    res.pieces = len(frames)
    res.tracks = int(res.notes.groupby("piece")["track"].nunique().sum())
    if res.skipped_units:
        res.dropped["unparseable tune"] = len(res.skipped_units)
    return res


def parse_file(path: str, sha: str, piece: str, frame_seconds: float = 0.3) -> FileResult:
    """Parse one input file into a :class:`FileResult`; never raises on bad input."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix in ROLL_SUFFIXES + (".json",):
            res = _parse_rolls(path, sha, piece, frame_seconds)
        else:
            res = (_parse_abc if suffix in ABC_SUFFIXES else _parse_midi)(path, sha, piece)
        if res.notes is not None:
            res.parquet = note_table_bytes(res.notes)
        return res
    except Exception as exc:  # a reader bug must not kill a 1,000-file extraction
        return FileResult(path=path, sha256=sha, kind="unknown", status="skipped",
                          reason=f"{Path(path).name}: unexpected {type(exc).__name__}: {exc}"[:300])


def _piece_ids(files: list[Path], shas: list[str]) -> list[str]:
    """File stems, disambiguated by content hash where two files share a stem."""
    stems = [f.stem for f in files]
    counts = pd.Series(stems).value_counts()
    return [s if counts[s] == 1 else f"{s}~{h[:8]}" for s, h in zip(stems, shas)]


def _run_parallel(jobs: list[tuple], workers: int, progress: Callable | None) -> list[FileResult]:
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(parse_file(*job))
            if progress:
                progress(1)
        return results
    # the readers' libraries, imported once here so that the forked workers start with them
    import pyarrow.parquet  # noqa: F401
    import symusic  # noqa: F401

    pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(parse_file, *job) for job in jobs]
        results = []
        for fut in futures:
            results.append(fut.result())
            if progress:
                progress(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: do not parse the files still queued
        raise
    pool.shutdown()
    return results


def extract(paths: list[str | Path], config: ExtractConfig,
            progress: Callable[[int], None] | None = None,
            log: Callable[[str], None] = lambda s: None) -> dict:
    """Parse input files into ``<config.out>/<config.name>/``.

    Parameters
    ----------
    paths : files and folders (searched recursively for .mid/.midi/.abc, any case).
    config : stage options.
    progress : called with the number of files finished, for a progress bar.
    log : called with one line per skipped file.

    Returns
    -------
    summary : dict with the output folder, counts of files ok/skipped/reused,
        pieces, notes and tokens per encoding.

    Raises
    ------
    NoUsableInputError
        When no file at all could be used; the previous output is left intact.
    FolderInUseError
        When another process is writing the same dataset (its lock is held throughout).
    """
    config.validate()
    check_name(config.name)
    folder = Path(config.out) / config.name
    files, rejected = collect_inputs(paths)
    check_output(folder, files, paths)
    with folder_lock(folder, what=" (another extract writing it)"):
        return _extract_locked(paths, files, rejected, folder, config, progress, log)


def _extract_locked(paths, files: list[Path], rejected: list[dict], folder: Path, config: ExtractConfig,
                    progress: Callable[[int], None] | None, log: Callable[[str], None]) -> dict:
    files, shas, unreadable = hash_inputs(files)
    rejected = rejected + unreadable
    for r in rejected:
        log(f"skipped {r['path']}: {r['reason']}")
    if not files:
        if unreadable:
            raise NoUsableInputError(f"none of the {len(unreadable)} input files could be read "
                                     f"(first: {unreadable[0]['path']}: {unreadable[0]['reason']})")
        raise NoUsableInputError("no .mid/.midi/.abc files (nor .mat/.pickle/.json piano rolls) found in " + ", ".join(map(str, paths)))

    previous, checksums = read_previous(folder)
    if read_manifest_config(folder).get("frame_seconds", 0.3) != config.frame_seconds:
        # the cached notes of piano-roll files were timed with another --frame-seconds
        previous = {k: v for k, v in previous.items() if v.get("kind") != "rolls"}
    gone = sorted(set(previous_inputs(folder)) - {str(f) for f in files})
    if gone:
        more, many = " ..." if len(gone) > 5 else "", len(gone) > 1
        log(f"notice: {len(gone)} input{'s' if many else ''} of the last extract into {folder} "
            f"{'are' if many else 'is'} gone and left out: {', '.join(gone[:5])}{more}")
    first_of: dict[str, Path] = {}  # sha256 -> the first file with that content; the others are duplicates
    duplicates = []
    for f, sha in zip(files, shas):
        if sha in first_of:
            duplicates.append({"path": str(f), "sha256": sha, "status": "skipped",
                               "reason": f"duplicate of {first_of[sha]}", "duplicate_of": str(first_of[sha])})
        else:
            first_of[sha] = f
    files, shas = list(first_of.values()), list(first_of)
    pieces = _piece_ids(files, shas)

    results: dict[str, FileResult] = {}
    jobs = []
    for f, sha, piece in zip(files, shas, pieces):
        old = previous.get(sha)
        if old is None:
            jobs.append((str(f), sha, piece, config.frame_seconds))
            continue
        res = FileResult(path=str(f), sha256=sha, kind=old.get("kind", "midi"), status=old["status"],
                         reason=old.get("reason", ""), pieces=old.get("pieces", 0),
                         tracks=old.get("tracks", 0), dropped=old.get("dropped", {}),
                         skipped_units=old.get("skipped_units", []))
        if res.status == "ok":
            try:
                res.notes, res.texts = _renamed(*read_cached(folder, sha, checksums), piece, res.kind)
            except DatasetError as exc:  # a damaged cache is only a lost shortcut: parse the file again
                log(f"notice: {exc}; parsing {f.name} again")
                jobs.append((str(f), sha, piece, config.frame_seconds))
                continue
        results[sha] = res
    reused = len(results)
    if progress and reused + len(duplicates) + len(unreadable):
        progress(reused + len(duplicates) + len(unreadable))
    workers = config.workers or (os.cpu_count() or 1)
    for res in _run_parallel(jobs, min(workers, len(jobs)), progress):
        results[res.sha256] = res

    ordered = [results[s] for s in dict.fromkeys(shas)]
    for res in ordered:
        if res.status != "ok":
            log(f"skipped {res.path}: {res.reason}")
        for unit in res.skipped_units:
            log(f"skipped tune {unit['tune']} in {Path(res.path).name}: {unit['reason']}")
    for d in duplicates:
        log(f"skipped {d['path']}: {d['reason']}")
    ok = [r for r in ordered if r.status == "ok"]
    if not ok:
        raise NoUsableInputError(f"none of the {len(ordered)} input files could be used "
                                 f"(first reason: {ordered[0].reason})")

    notes = normalise_note_table(pd.concat([r.notes for r in ok], ignore_index=True)) if ok else empty_note_table()
    texts = {k: v for r in ok for k, v in r.texts.items()}
    piece_names = sorted(notes["piece"].unique())
    groups = group_onsets(notes, config.onset_tolerance)  # every piece in one pass
    note_codecs = {enc: c for enc, c in CODECS.items() if c.plays_notes}
    sequences = {enc: c.encode_pieces(notes, groups, config.onset_tolerance) for enc, c in note_codecs.items()}
    lengths = {p: min(len(sequences[enc][p]) for enc in note_codecs) for p in piece_names}
    fixed = {p: side for p in piece_names if (side := roll_side(p))}  # a roll file's own split is kept
    free = [p for p in piece_names if p not in fixed]
    split = assign_split(free, config.val_fraction, config.split_seed, lengths=lengths) if free else \
        {"train": [], "validation": []}
    for side in ("train", "validation", "test"):
        split[side] = sorted([*split.get(side, []), *(p for p, s in fixed.items() if s == side)])
    if texts:  # tunes as text: the codecs that read text (chars)
        as_read = music_text if config.abc_header == "music" else str
        for enc, codec in CODECS.items():
            if codec.reads_text:
                sequences[enc] = {p: codec.encode_text(as_read(texts[p])) for p in sorted(texts)}
    manifest = {
        "dataset": config.name,
        "config": config.to_dict(),
        "files": [r.manifest_entry() for r in ordered] + duplicates + [
            {"path": r["path"], "sha256": None, "status": "skipped", "reason": r["reason"]} for r in rejected],
        "gone_since_last_run": gone,
        "totals": {
            "files_ok": len(ok), "files_skipped": len(ordered) - len(ok) + len(duplicates) + len(rejected),
            "files_reused": reused, "pieces": len(piece_names), "notes": int(len(notes)),
            # notes a reader left out, and notes an encoding cannot hold (counted, never silently lost)
            "dropped": _sum_dicts([*(r.dropped for r in ok), *(c.dropped(notes) for c in note_codecs.values())]),
        },
    }
    with atomic_dir(folder, "dataset") as tmp:
        write_dataset(tmp, notes=notes, sequences=sequences, split=split,
                      timing=timing_stats(notes, config.onset_tolerance), manifest=manifest,
                      cache=[CachedFile(r.sha256, r.notes, r.texts, r.parquet) for r in ok],
                      previous=folder if previous else None)
    return {"folder": str(folder), **manifest["totals"]}


def _renamed(notes: pd.DataFrame, texts: dict[str, str], piece: str,
             kind: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cached notes under this run's piece id (a file's id changes when another file with its stem arrives)."""
    def rename(name: str) -> str:
        # ABC tunes are <piece>#<n>, a roll file's pieces <piece>#<side>-<n>
        return f"{piece}#{name.rpartition('#')[2]}" if kind in ("abc", "rolls") else piece
    return notes.assign(piece=notes["piece"].map(rename)), {rename(k): v for k, v in texts.items()}


def _sum_dicts(dicts: Iterable[dict]) -> dict:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out
