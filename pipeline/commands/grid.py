"""``cli.py grid``: pick the dataset (default: the latest), expand the options, run the grid."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from pipeline.stages.grid import GridConfig, expand_grid, local_gpus, run_grid
from pipeline.store.dataset import resolve_dataset


def run(values: Mapping[str, Sequence], grid: GridConfig, *, given: set[str] | None = None,
                 on_start: Callable[[str], None] = lambda s: None,
                 on_total: Callable[[int, str], None] = lambda n, desc: None,
                 notice: Callable[[str], None] = lambda s: None,
                 progress: Callable[[str, dict], None] | None = None) -> dict:
    """What ``cli.py grid`` does: pick the dataset (default: the latest), expand the options, run the grid."""
    values = dict(values)
    dataset, picked = resolve_dataset(values["dataset"][0] if values.get("dataset") else None)
    values["dataset"] = [dataset]
    grid = replace(grid, name=grid.name or f"{Path(dataset).name}-grid")
    configs, skipped = expand_grid(values, given)
    if grid.executor == "local":
        local_gpus(configs)  # an absent --device is the one line, before the grid is announced
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    for reason, n in reasons.items():
        notice(f"skipped {n} invalid combination{'s' if n > 1 else ''}: {reason}")
    on_start(f"grid {grid.name}: {len(configs)} runs on {'the latest dataset, ' if picked else ''}{dataset}")
    on_total(len(configs), f"grid {grid.name}")
    return run_grid(configs, grid, skipped=skipped, progress=progress)
