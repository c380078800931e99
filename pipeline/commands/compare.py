"""``cli.py compare``: pick the runs (default: finished runs of the latest dataset), build the page."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from pipeline.core.fsutil import check_replaceable
from pipeline.stages.compare import CompareConfig, compare, default_out_dir, expand_runs, runs_of_latest_dataset


def run(runs: Sequence[str | Path], config: CompareConfig, out: str | Path | None = None, *,
                    on_start: Callable[[str], None] = lambda s: None,
                    on_total: Callable[[int, str], None] = lambda n, desc: None,
                    progress: Callable[[int], None] | None = None,
                    notice: Callable[[str], None] = lambda s: None, device: str = "auto") -> dict:
    """What ``cli.py compare`` does: pick the runs (default: finished runs of the latest dataset), build the page."""
    config.validate()
    if out:
        check_replaceable(Path(out), "compare")  # a typo in --out is the first thing said
    if runs:
        run_dirs = expand_runs(runs)
    else:
        run_dirs, latest = runs_of_latest_dataset()
        on_start(f"comparing the {len(run_dirs)} finished runs trained on the latest dataset, {latest}: "
                 + ", ".join(r.name for r in run_dirs))
    out = Path(out) if out else default_out_dir(run_dirs, config)
    on_total((len(run_dirs) + config.ngram) * len(config.temperatures) * config.count + 2, "compare")
    return compare(run_dirs, config, out, progress=progress, notice=notice, device=device)
