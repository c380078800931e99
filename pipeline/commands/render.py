"""``cli.py render``: samples folders or MIDI files; with no path, the latest run's latest samples
(drawing them first when the run has none)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.core.errors import RunError
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, RenderPathsResult, render_paths
from pipeline.store.rundir import latest_run
from pipeline.store.samples import latest_samples


def run(run_dir: Path | None, config: RenderConfig, *, runs_root: str | Path = "runs",
                   device: str = "auto", on_start: Callable[[str], None] = lambda s: None,
                   progress: Callable[[int], None] | None = None,
                   notice: Callable[[str], None] = lambda s: None) -> RenderPathsResult:
    """``cli.py render`` with no paths: the latest samples of a run (by default the latest run),
    drawing them first with the generate defaults when the run has none."""
    picked = run_dir is None
    run_dir = run_dir or latest_run(runs_root)
    if run_dir is None:
        raise RunError(f"no trained run under {runs_root}/; run `train` first (e.g. cli.py train --cell gru)")
    folders = latest_samples(Path(run_dir))
    if folders:
        on_start(f"rendering {folders[0]} (the latest samples of {'the latest run, ' if picked else ''}{run_dir})")
    else:
        on_start(f"sampling {'the latest run, ' if picked else ''}{run_dir} with the generate defaults, then rendering")
        folders = [generate(run_dir, GenerateConfig(), device=device).folder]
    return render_paths(folders[:1], config, progress=progress, notice=notice)
