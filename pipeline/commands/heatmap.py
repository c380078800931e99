"""``cli.py heatmap``: pick the run (default: the latest), record a layer, rank its units, draw them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.stages.heatmap import HeatmapConfig, heatmap
from pipeline.store.rundir import resolve_run


def run(run_dir: str | Path | None, config: HeatmapConfig, out: str | Path | None = None, *,
        device: str = "auto", on_start: Callable[[str], None] = lambda s: None,
        progress: Callable[[int], None] | None = None) -> dict:
    run_dir, picked = resolve_run(run_dir)
    if picked:
        on_start(f"using the latest run, {run_dir}")
    return heatmap(run_dir, config, out, progress=progress, device=device)
