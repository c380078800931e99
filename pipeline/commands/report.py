"""``cli.py report``: the summary table and figures of a folder of runs."""
from __future__ import annotations

from pathlib import Path

from pipeline.stages.report import write_report


def run(folder: str | Path) -> dict:
    return write_report(folder)
