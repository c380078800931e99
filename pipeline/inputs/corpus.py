"""The corpora bundled with music21: one catalogue, and the input paths ``extract`` reads.

A user with no files of their own still gets a real corpus, and it goes
through exactly the path a user's files take:

``midi`` corpora
    music21 scores (e.g. the Bach chorales) written out once as MIDI files
    into a folder (about 0.3 s a score; files already there are kept).
``abc`` corpora
    tunebooks shipped inside music21, read as they are.

:data:`CORPORA` names every corpus; :func:`corpus_paths` turns a name into
input paths for ``extract``; :func:`bundled_corpus_tunes` reads the tunes of
an ABC corpus without parsing them.

music21 is imported inside the functions that need it: importing it takes
about a second, which the CLI should not pay for ``--help``.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.inputs.abc_io import AbcTune, read_abc_text, split_tunebook
from pipeline.core.errors import ConfigError, NoUsableInputError
from pipeline.core.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class BundledCorpus:
    """Where one bundled corpus comes from.

    kind     ``"midi"``: scores written out as MIDI; ``"abc"``: tunebooks read as they are
    sources  for ``midi``, (music21 composer, file-name prefix); for ``abc``,
             globs under music21's corpus folder or names of other ABC corpora to join
    """

    kind: str
    sources: tuple[str, ...]


# Counts of tunes for music21 10.x are in the comments (see list_bundled_corpora()).
CORPORA: dict[str, BundledCorpus] = {
    "bach-chorales": BundledCorpus("midi", ("bach", "bwv")),                  # 413 chorales; --limit of them
    "oneills1850": BundledCorpus("abc", ("oneills1850/*.abc",)),              # 2,009 Irish tunes, 39 files
    "ryansMammoth": BundledCorpus("abc", ("ryansMammoth/*.abc",)),            # 1,059 fiddle tunes, one a file
    "airdsAirs": BundledCorpus("abc", ("airdsAirs/*.abc",)),                  # 1,180 Scottish airs, 6 books
    "miscFolk": BundledCorpus("abc", ("miscFolk/*.abc",)),                    # 185 fife and Northumbrian tunes
    "nottingham": BundledCorpus("abc", ("nottingham-dataset/*.abc",)),        # 2 reels (only this sample ships)
    # 8,462 German (and other) folksongs; test*.abc are music21's own test fixtures
    "essenFolksong": BundledCorpus("abc", tuple(f"essenFolksong/{p}*.abc" for p in (
        "altdeu", "ballad", "boehme", "dva", "erk", "fink", "folkHaydn",
        "han", "irl", "kinder", "lot", "lux", "variant", "zuccal"))),
    "josquin": BundledCorpus("abc", ("josquin/*.abc",)),                      # 29 parts of Renaissance polyphony
    # British, Irish and American instrumental folk tunes (4,435); "default" is the default ABC corpus
    "folk": BundledCorpus("abc", ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "nottingham")),
    "default": BundledCorpus("abc", ("folk",)),
}

ABC_CORPORA = tuple(name for name, c in CORPORA.items() if c.kind == "abc")


def _lookup(name: str, kinds: tuple[str, ...] = ("midi", "abc")) -> BundledCorpus:
    corpus = CORPORA.get(name)
    if corpus is None or corpus.kind not in kinds:
        choices = [n for n, c in CORPORA.items() if c.kind in kinds]
        what = "bundled corpus" if len(kinds) > 1 else f"bundled {kinds[0].upper()} corpus"
        raise ConfigError(f"unknown {what} {name!r}; choose from {', '.join(choices)}")
    return corpus


def corpus_paths(name: str, limit: int = 60, folder: str | Path = "raw_midi",
                 progress: Callable[[int], None] | None = None) -> list[Path]:
    """Input paths for ``extract`` that hold the bundled corpus ``name``.

    Parameters
    ----------
    name : a key of :data:`CORPORA`.
    limit : scores of a ``midi`` corpus to write out (ignored for ``abc``).
    folder : a ``midi`` corpus is written into ``folder/name``.
    progress : called with 1 for each score of a ``midi`` corpus.

    Returns
    -------
    ``[folder/name]`` for a ``midi`` corpus; the corpus's ABC files, sorted,
    for an ``abc`` corpus.

    Raises
    ------
    ConfigError
        ``name`` is not a key of :data:`CORPORA`.
    NoUsableInputError
        The installed music21 has none of an ABC corpus's files.
    """
    if _lookup(name).kind == "midi":
        return [_write_midi_corpus(Path(folder) / name, name, limit, progress)]
    return _abc_files(name)


def _write_midi_corpus(folder: Path, name: str, limit: int, progress: Callable[[int], None] | None) -> Path:
    """Write up to ``limit`` bundled music21 scores as MIDI files into ``folder``.

    Files already present are kept (writing is the slow part: ~0.3 s a score),
    so a second call is instant. Returns ``folder``.
    """
    from music21 import corpus, midi as m21midi

    composer, prefix = _lookup(name, ("midi",)).sources
    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in corpus.getComposer(composer) if Path(p).name.startswith(prefix))[:limit]
    for p in paths:
        out = folder / (Path(p).stem.replace(".", "_") + ".mid")
        if not out.exists():
            score = corpus.parse(p)
            mf = m21midi.translate.music21ObjectToMidiFile(score)
            atomic_write_bytes(out, mf.writestr())
        if progress:
            progress(1)
    return folder


def _corpus_root() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def _corpus_files(name: str) -> list[Path]:
    files: list[Path] = []
    for part in _lookup(name, ("abc",)).sources:
        if part in CORPORA:
            files += _corpus_files(part)
        else:
            files += sorted(Path(p) for p in glob.glob(str(_corpus_root() / part)))
    return list(dict.fromkeys(files))  # a file reached twice is read once


def _abc_files(name: str) -> list[Path]:
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
        ``name`` is not an ``abc`` corpus of :data:`CORPORA`.
    NoUsableInputError
        The installed music21 has none of the corpus's files.
    """
    root = _corpus_root()
    tunes: list[AbcTune] = []
    for path in _abc_files(name):
        tunes += split_tunebook(read_abc_text(path), source=path.relative_to(root).as_posix())
        if limit is not None and len(tunes) >= limit:
            return tunes[:limit]
    return tunes


def list_bundled_corpora() -> dict[str, int]:
    """Number of tunes in each ABC corpus (0 where music21 lacks its files)."""
    return {name: len(bundled_corpus_tunes(name)) if _corpus_files(name) else 0 for name in ABC_CORPORA}


__all__ = ["BundledCorpus", "CORPORA", "ABC_CORPORA", "corpus_paths", "bundled_corpus_tunes",
           "list_bundled_corpora"]
