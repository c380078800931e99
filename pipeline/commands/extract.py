"""``cli.py extract``: resolve bundled corpora and the dataset name, then extract."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

from pipeline.inputs.corpus import CORPORA, corpus_paths
from pipeline.stages.extract import ExtractConfig, collect_inputs, extract


def run(paths: list[str | Path], config: ExtractConfig, *, corpus: Iterable[str] = (),
                    limit: int = 60, raw_root: str | Path = "raw_midi",
                    on_total: Callable[[int, str], None] = lambda n, desc: None,
                    progress: Callable[[int], None] | None = None,
                    log: Callable[[str], None] = lambda s: None) -> dict:
    """What ``cli.py extract`` does: resolve bundled corpora and the dataset name, then :func:`extract`.

    With no path and no corpus the embedded default corpus (Bach chorales bundled
    with music21, written out as MIDI under ``raw_root``) is used. The name
    defaults to the first path's folder name, or the corpus name.
    """
    corpus = list(corpus) or ([] if paths else ["bach-chorales"])
    inputs = list(paths)
    for name in corpus:
        if name in CORPORA and CORPORA[name].kind == "midi":
            on_total(limit, f"writing {name} as MIDI")
        inputs += corpus_paths(name, limit=limit, folder=Path(raw_root), progress=progress)
    name = config.name or (Path(paths[0]).resolve().name.replace(".", "_") if paths else corpus[0])
    config = replace(config, name=name)
    on_total(len(collect_inputs(inputs)[0]), "extract")
    return extract(inputs, config, progress=progress, log=log)
