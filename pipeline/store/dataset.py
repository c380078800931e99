"""Owner of the processed-dataset folder ``processed/<dataset>/``: its reader and writer.

Layout (written only by :func:`write_dataset`, read only through this module)::

    manifest.json            every input file: path, sha256, status ok/skipped, reason, counts;
                             the extract options under "config"
    notes.parquet            the note table (:mod:`pipeline.core.notes`)
    <encoding>/sequences.json, <encoding>/vocab.json   tokens per piece and their vocabulary
    split.json               which pieces are train / validation (see :func:`assign_split`)
    timing.json              the corpus's rhythms, used to render generated tokens
    cache/<sha256>.parquet   parsed notes per input file (and .texts.json for ABC), so an
                             unchanged file is not parsed again

The split's one special case lives here and nowhere else: a dataset of a single
piece cannot hold a piece out whole, so it trains on the head of the piece and
validates on its last ``tail_fraction`` of tokens (:meth:`Dataset.piece_arrays`);
its held-out opening is called ``<piece>:tail``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from pipeline.codecs import Vocabulary, build_vocabulary
from pipeline.core.errors import DatasetError
from pipeline.core.fsutil import atomic_write_json, folder_lock, sha256_file, stable_id
from pipeline.core.notes import check_note_table, write_note_table

MANIFEST, NOTES, SPLIT, TIMING, CACHE = "manifest.json", "notes.parquet", "split.json", "timing.json", "cache"
TAIL = ":tail"  # suffix of the held-out opening of a one-piece dataset


@dataclass
class Dataset:
    """One encoding of a processed dataset, as later stages see it.

    sequences : piece -> tokens; vocab : the encoding's vocabulary; split : the
    content of ``split.json``; timing : the content of ``timing.json``.
    """

    folder: Path
    encoding: str
    sequences: dict[str, list[str]]
    vocab: Vocabulary
    split: dict
    timing: dict

    @property
    def tail_fraction(self) -> float:
        return float(self.split.get("tail_fraction") or 0.0)

    def pieces(self, side: str) -> list[str]:
        """Pieces on one side of the split (``train`` or ``validation``) that have tokens."""
        return [p for p in self.split.get(side, []) if p in self.sequences]

    def _tail_cut(self) -> tuple[str, int]:
        piece = self.split["train"][0]
        return piece, int(len(self.sequences[piece]) * (1 - self.tail_fraction))

    def side_sequences(self, side: str) -> dict[str, list[str]]:
        """Tokens of each piece on one side; a one-piece dataset gives its head or its tail."""
        if self.tail_fraction:
            piece, cut = self._tail_cut()
            return {piece: self.sequences[piece][:cut]} if side == "train" else \
                {piece + TAIL: self.sequences[piece][cut:]}
        return {p: self.sequences[p] for p in self.pieces(side)}

    def piece_arrays(self, side: str) -> list[np.ndarray]:
        """Token ids of each piece on one side of the split, shape (n_tokens,) each."""
        return [self.vocab.encode(s) for s in self.side_sequences(side).values()]

    def validation_openings(self, n: int) -> dict[str, list[str]]:
        """The first ``n`` tokens of each held-out piece (``<piece>:tail`` for a one-piece dataset)."""
        return {p: s[:n] for p, s in self.side_sequences("validation").items()}

    def locate(self, key: str) -> tuple[str, int]:
        """(piece, token offset) of a held-out opening's key, as written by :meth:`validation_openings`."""
        if key.endswith(TAIL) and self.tail_fraction:
            return self._tail_cut()
        if key not in self.sequences:
            raise DatasetError(f"the dataset {self.folder} has no piece {key!r}; was it extracted again since?")
        return key, 0

    @property
    def onset_tolerance(self) -> float:
        return float(read_manifest(self.folder).get("config", {}).get("onset_tolerance", 0.02))

    def fingerprint(self) -> dict[str, str]:
        """Short hashes of what a model trained on this encoding depends on.

        ``{"sequences", "vocab", "split"}``: each the sha256 of its canonical JSON,
        so a run can tell exactly what changed after a re-extract.
        """
        def h(obj) -> str:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
            return hashlib.sha256(text.encode()).hexdigest()[:16]
        split = {k: self.split.get(k) for k in ("train", "validation", "tail_fraction")}
        return {"sequences": h(self.sequences), "vocab": h(self.vocab.tokens), "split": h(split)}


# ------------------------------------------------------------------ readers

def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is damaged or unreadable ({type(exc).__name__}); run `extract` again") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path} is damaged (a JSON {type(d).__name__}, not an object); run `extract` again")
    return d


def is_dataset(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def _require(folder: Path) -> None:
    if not is_dataset(folder):
        raise DatasetError(f"{folder} is not a processed dataset (no {MANIFEST}); run `extract` first")


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    _require(folder)
    return _read_json(folder / MANIFEST)


def encodings_of(folder: str | Path) -> list[str]:
    """The encodings a dataset holds, e.g. ``["names", "pitch"]``."""
    return sorted(p.name for p in Path(folder).iterdir() if (p / "sequences.json").exists())


def load_dataset(folder: str | Path, encoding: str) -> Dataset:
    """Read one encoding of a processed dataset; raises DatasetError with the fix."""
    folder = Path(folder)
    _require(folder)
    enc_dir = folder / encoding
    if not (enc_dir / "sequences.json").exists():
        raise DatasetError(f"{folder} has no '{encoding}' encoding (it has: {', '.join(encodings_of(folder))})")
    try:
        seqs = json.loads((enc_dir / "sequences.json").read_text())["pieces"]
        vocab = Vocabulary.load(enc_dir / "vocab.json")
        missing = set().union(*map(set, seqs.values())) - set(vocab.index)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{folder} is damaged ({type(exc).__name__}: {exc}); run `extract` again") from None
    if missing:
        raise DatasetError(f"{enc_dir / 'vocab.json'} is damaged: it lacks {len(missing)} tokens the sequences use "
                           f"(e.g. {sorted(missing)[0]!r}); run `extract` again")
    split = _read_json(folder / SPLIT)
    if not all(isinstance(split.get(side), list) for side in ("train", "validation")):
        raise DatasetError(f"{folder / SPLIT} is damaged (no train and validation lists); run `extract` again")
    return Dataset(folder, encoding, seqs, vocab, split, _read_json(folder / TIMING))


@contextlib.contextmanager
def dataset_read_lock(folder: str | Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold the dataset's lock while reading it whole (``extract`` holds it while writing).

    Waits up to ``timeout`` seconds for a running extract, then raises
    FolderInUseError. A dataset on a read-only disk cannot be locked, and
    nobody can be writing it: it is read without the lock.
    """
    held = contextlib.ExitStack()
    with contextlib.suppress(OSError):
        held.enter_context(folder_lock(folder, timeout=timeout, what=" (an extract is writing it)"))
    with held:
        yield


def read_notes(folder: str | Path, piece: str | None = None) -> pd.DataFrame:
    """The note table, or the notes of one piece."""
    folder = Path(folder)
    _require(folder)
    try:
        return pd.read_parquet(folder / NOTES, filters=[("piece", "==", piece)] if piece is not None else None)
    except Exception as exc:  # pyarrow raises its own types for damaged files
        raise DatasetError(f"{folder / NOTES} is damaged ({type(exc).__name__}); run `extract` again") from None


def read_manifest_config(folder: str | Path) -> dict:
    """The extract options an earlier run recorded in its manifest; ``{}`` when there is none."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return {}


def read_previous(folder: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """What an earlier extract left: manifest entries by sha256 (those still usable) and the
    checksums of its cache files (``{file name: sha256 of its content}``).

    An entry is usable when the file was skipped (its reason stands) or its
    cached notes are there. Anything missing or damaged reads as no earlier run.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        by_sha = {}
        for e in manifest.get("files", []):
            if not e.get("sha256") or e.get("duplicate_of"):
                continue  # a duplicate's entry says nothing about its content: its first copy's does
            if e["status"] == "skipped" or (folder / CACHE / f"{e['sha256']}.parquet").exists():
                by_sha[e["sha256"]] = e
        return by_sha, dict(manifest.get("cache_checksums") or {})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, {}


def previous_inputs(folder: str | Path) -> list[str]:
    """Paths of the input files an earlier extract into ``folder`` read ([] if none or unreadable)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        return [e["path"] for e in manifest.get("files", []) if e.get("sha256") and e.get("path")]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def _verified_bytes(path: Path, checksums: dict[str, str]) -> bytes:
    """The content of a cache file, if it matches the checksum the dataset recorded for it."""
    data = path.read_bytes()
    if checksums.get(path.name) != hashlib.sha256(data).hexdigest():
        raise ValueError("its content does not match the checksum recorded when it was written")
    return data


def read_cached(folder: str | Path, sha: str, checksums: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cached notes (and ABC texts) of one input file, checked against ``checksums``
    (:func:`read_previous`); raises DatasetError if damaged."""
    cache = Path(folder) / CACHE
    try:
        notes = pd.read_parquet(io.BytesIO(_verified_bytes(cache / f"{sha}.parquet", checksums)))
        check_note_table(notes)
        texts_file = cache / f"{sha}.texts.json"
        texts = json.loads(_verified_bytes(texts_file, checksums)) if texts_file.exists() else {}
    except Exception as exc:
        raise DatasetError(f"cache of {sha[:12]} is damaged ({type(exc).__name__}: {exc})") from None
    return notes, texts


# ------------------------------------------------------------------ writer

@dataclass
class CachedFile:
    """Parsed notes of one input file, kept so a re-run need not parse it again.

    ``parquet`` may hold the notes already serialised (by a worker process), so
    the writer only copies bytes.
    """

    sha256: str
    notes: pd.DataFrame
    texts: dict[str, str]
    parquet: bytes = b""


def _link(src: Path, dst: Path) -> bool:
    """Hard-link an unchanged file into the new folder instead of writing it again."""
    try:
        os.link(src, dst)
        return True
    except OSError:  # no such file, or a file system without hard links
        return False


def write_sequences(folder: Path, seqs: dict[str, list[str]], encoding: str) -> int:
    """Write ``sequences.json`` and ``vocab.json`` of one encoding; returns the token count."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "sequences.json", {"encoding": encoding, "pieces": seqs})
    build_vocabulary(seqs.values(), encoding).save(folder / "vocab.json")
    return sum(len(s) for s in seqs.values())


def write_dataset(folder: Path, *, notes: pd.DataFrame, sequences: dict[str, dict[str, list[str]]],
                  split: dict, timing: dict, manifest: dict, cache: Iterable[CachedFile],
                  previous: Path | None = None) -> dict[str, int]:
    """Write every file of a dataset into ``folder`` (a fresh, empty folder: the caller swaps it in).

    ``sequences`` maps encoding -> piece -> tokens. Cached tables of files that
    ``previous`` (the dataset being replaced) already holds are hard-linked, not
    rewritten. Returns tokens per encoding, also stored in ``manifest["totals"]["tokens"]``.
    """
    (folder / CACHE).mkdir(parents=True, exist_ok=True)
    for c in cache:
        cached = folder / CACHE / f"{c.sha256}.parquet"
        if c.parquet:
            cached.write_bytes(c.parquet)
        elif previous is None or not _link(previous / CACHE / cached.name, cached):
            write_note_table(c.notes, cached)
        if c.texts:
            atomic_write_json(folder / CACHE / f"{c.sha256}.texts.json", c.texts)
    # checked on reuse: a cache file damaged in place must never pass for the notes it held
    manifest["cache_checksums"] = {p.name: sha256_file(p) for p in sorted((folder / CACHE).iterdir())}
    write_note_table(notes, folder / NOTES)
    counts = {enc: write_sequences(folder / enc, seqs, enc) for enc, seqs in sequences.items()}
    atomic_write_json(folder / SPLIT, split)
    atomic_write_json(folder / TIMING, timing)
    manifest.setdefault("totals", {})["tokens"] = counts
    atomic_write_json(folder / MANIFEST, manifest)
    return counts


MIN_VALIDATION_TOKENS = 31  # one window of the default 30 tokens and its next token


def assign_split(pieces: list[str], val_fraction: float, seed: int,
                 lengths: dict[str, int] | None = None, min_tokens: int = MIN_VALIDATION_TOKENS) -> dict:
    """Hold out whole pieces for validation, deterministically.

    Each piece gets a score from sha256(seed, piece); pieces scoring below
    ``val_fraction`` are validation, and the lowest-scoring piece is always
    validation so there is at least one. The split is a function of the pieces,
    ``val_fraction`` and ``seed`` alone, never of earlier extracts: a re-extract with
    another fraction or seed gets the split a fresh extract would. Because a piece's
    score does not depend on the others, adding files mostly keeps assignments.

    ``lengths`` (tokens per piece) keeps pieces shorter than ``min_tokens`` out
    of validation while longer ones exist: a held-out piece too short for one
    window of the default size would leave ``train`` with nothing to validate on.

    With a single piece nothing can be held out whole; its last 10 % of tokens
    are used for validation instead (``tail_fraction`` in the result).
    """
    pieces = sorted(pieces)
    if len(pieces) == 1:
        return {"train": pieces, "validation": [], "tail_fraction": 0.1, "seed": seed,
                "note": "single piece: validation is its last 10% of tokens"}
    long_enough = [p for p in pieces if lengths is None or lengths.get(p, 0) >= min_tokens]
    eligible = set(long_enough if len(long_enough) >= 2 else pieces)
    scores = {p: int(stable_id([seed, p], 12), 16) / 16 ** 12 for p in pieces}
    val = {p for p in pieces if p in eligible and scores[p] < val_fraction}
    if not val & eligible:
        val.add(min(eligible, key=scores.get))
    if len(val) == len(pieces):
        val.discard(max(val, key=scores.get))
    return {"train": [p for p in pieces if p not in val], "validation": sorted(val),
            "tail_fraction": 0.0, "seed": seed}


def latest_dataset(root: str | Path = "processed") -> Path | None:
    """The most recently written dataset under ``root`` (by its manifest's time), or None."""
    root = Path(root)
    found = [p for p in root.iterdir() if is_dataset(p)] if root.is_dir() else []
    return max(found, key=lambda p: (p / MANIFEST).stat().st_mtime_ns) if found else None


def resolve_dataset(dataset: str | None, root: str | Path = "processed") -> tuple[str, bool]:
    """The dataset given, or the most recently extracted one under ``root`` (and whether it was picked)."""
    if dataset:
        return str(dataset), False
    latest = latest_dataset(root)
    if latest is None:
        raise DatasetError(f"no processed dataset under {root}/; run `extract` first (e.g. cli.py extract raw_midi/)")
    return str(latest), True
