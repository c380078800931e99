"""``cli.py tally``: listeners' answers to a blind page, un-blinded and summed up."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from pipeline.stages.tally import TallyConfig, TallyResult, tally


def run(page: str | Path, answers: Sequence[str | Path], config: TallyConfig, *,
        notice: Callable[[str], None] = lambda s: None) -> TallyResult:
    return tally(page, list(answers), config, notice=notice)
