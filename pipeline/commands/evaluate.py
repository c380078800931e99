"""``cli.py evaluate``: pick the run (default: the latest), score it on a dataset beside n-gram baselines."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.stages.evaluate import EvalConfig, evaluate
from pipeline.store.rundir import resolve_run


def run(run_dir: str | Path | None, config: EvalConfig, *, device: str = "auto",
        on_start: Callable[[str], None] = lambda s: None,
        on_total: Callable[[int, str], None] = lambda n, desc: None,
        progress: Callable[[int], None] | None = None) -> dict:
    run_dir, picked = resolve_run(run_dir)
    if picked:
        on_start(f"using the latest run, {run_dir}")
    return evaluate(run_dir, config, device=device, on_total=on_total, progress=progress)
