"""``cli.py render``: samples folders or MIDI files; with no path, the latest run's latest samples
(drawing them first when the run has none)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, RenderPathsResult, render_paths
from pipeline.store.rundir import resolve_run
from pipeline.store.samples import latest_samples


def run(paths: Sequence[str | Path], run_dir: str | Path | None, config: RenderConfig, *,
        runs_root: str | Path = "runs", device: str = "auto", on_start: Callable[[str], None] = lambda s: None,
        progress: Callable[[int], None] | None = None,
        notice: Callable[[str], None] = lambda s: None) -> RenderPathsResult:
    """Render ``paths`` (samples folders, MIDI files or folders of them); with none, the latest samples of
    ``run_dir`` (by default the latest run), drawing them first with the generate defaults when it has none."""
    if paths:
        return render_paths(paths, config, progress=progress, notice=notice)
    run_dir, picked = resolve_run(run_dir, runs_root)
    folders = latest_samples(run_dir)
    if folders:
        on_start(f"rendering {folders[0]} (the latest samples of {'the latest run, ' if picked else ''}{run_dir})")
    else:
        on_start(f"sampling {'the latest run, ' if picked else ''}{run_dir} with the generate defaults, then rendering")
        folders = [generate(run_dir, GenerateConfig(), device=device).folder]
    return render_paths(folders[:1], config, progress=progress, notice=notice)
