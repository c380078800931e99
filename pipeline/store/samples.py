"""Owner of a samples folder (``runs/<run>/samples/<tag>/``): its reader and writer.

``samples.json`` holds the generated tokens and how they were drawn; the
rendered files beside it are named ``sample_NNN.<ext>`` (``.mid``, ``.wav``,
``.png``, and ``.abc``/``.svg`` for chars models). The run a folder was drawn
from is stored relative to the folder, so a run folder can be moved or
rendered from any working directory.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import RunError
from pipeline.core.fsutil import atomic_write_json, claim

SAMPLES = "samples.json"


def sample_stem(i: int) -> str:
    return f"sample_{i:03d}"


@dataclass
class Samples:
    """The content of a samples folder.

    folder : where it lives; run : the run folder it was drawn from (absolute once read).
    samples : one token list per sample (primer excluded); primer : the primer tokens.
    config : the GenerateConfig fields it was drawn with.
    """

    folder: Path
    run: Path
    encoding: str
    task: str
    config: dict
    primer: list[str]
    samples: list[list[str]]
    primer_info: dict = field(default_factory=dict)

    def path(self, i: int, suffix: str) -> Path:
        """``<folder>/sample_NNN<suffix>``."""
        return self.folder / (sample_stem(i) + suffix)


def is_samples_folder(folder: str | Path) -> bool:
    return (Path(folder) / SAMPLES).is_file()


def write_samples(s: Samples) -> Path:
    claim(s.folder, "samples")
    run = os.path.relpath(Path(s.run).resolve(), s.folder.resolve())
    return atomic_write_json(s.folder / SAMPLES, {
        "run": run, "encoding": s.encoding, "task": s.task, "config": s.config, "primer": s.primer,
        "primer_info": s.primer_info, "samples": s.samples})


def read_samples(folder: str | Path) -> Samples:
    """Read a samples folder (or its ``samples.json``); the run path resolves against the folder."""
    folder = Path(folder)
    path = folder if folder.suffix == ".json" else folder / SAMPLES
    folder = path.parent
    if not path.exists():
        raise RunError(f"{folder} holds no {SAMPLES}; run `generate` first")
    try:
        d = json.loads(path.read_text())
        return Samples(folder=folder, run=(folder / d["run"]).resolve(), encoding=d["encoding"],
                       task=d.get("task", "classify"), config=d.get("config", {}), primer=list(d["primer"]),
                       samples=[list(s) for s in d["samples"]], primer_info=d.get("primer_info", {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None


def read_config(folder: str | Path) -> dict | None:
    """The generate options a folder was drawn with, or None if it holds no readable samples."""
    try:
        return json.loads((Path(folder) / SAMPLES).read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None


def latest_samples(run_dir: Path) -> list[Path]:
    """Samples folders of a run, most recent first."""
    found = [p.parent for p in (run_dir / "samples").glob("*/samples.json")]
    return sorted(found, key=lambda p: (p / "samples.json").stat().st_mtime_ns, reverse=True)
