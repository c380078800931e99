"""The embedded default corpus: scores bundled with music21, written out as MIDI.

A user with no files of their own still gets a real MIDI corpus, and the demo
goes through exactly the MIDI path a user's files take.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .fsutil import atomic_write_bytes

# name -> (music21 composer/collection, glob over the corpus paths)
DEFAULT_CORPORA = {
    "bach-chorales": ("bach", "bwv"),
}


def write_default_midi_corpus(folder: str | Path, name: str = "bach-chorales", limit: int = 60,
                              progress: Callable[[int], None] | None = None) -> Path:
    """Write up to ``limit`` bundled music21 scores as MIDI files into ``folder``.

    Files already present are kept (writing is the slow part: ~0.3 s a score),
    so a second call is instant. Returns ``folder``.
    """
    from music21 import corpus, midi as m21midi

    if name not in DEFAULT_CORPORA:
        raise ConfigError(f"unknown default corpus {name!r}; choose from {', '.join(DEFAULT_CORPORA)}")
    composer, prefix = DEFAULT_CORPORA[name]
    folder = Path(folder)
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


def corpus_paths(name: str, *, limit: int = 60, folder: Path = Path("raw_midi"),
                 on_total: Callable[[int, str], None] = lambda n, desc: None,
                 progress: Callable[[int], None] | None = None) -> list[Path]:
    """Input paths of a bundled corpus: MIDI corpora are written out under ``folder/<name>``."""
    if name in DEFAULT_CORPORA:
        on_total(limit, f"writing {name} as MIDI")
        return [write_default_midi_corpus(Path(folder) / name, name, limit, progress=progress)]
    from . import abc_io  # MERGE: one catalogue
    return abc_io.bundled_corpus_paths(name)
