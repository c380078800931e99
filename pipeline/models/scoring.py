"""Scoring: the loss and accuracy of a model over windows (the study's measure) and over whole pieces.

Shared by training (validation every epoch) and ``evaluate`` (any dataset).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from pipeline.models.feeding import Windows
from pipeline.models.network import SequenceModel


def _totals(device: torch.device) -> dict[str, torch.Tensor]:
    z = lambda: torch.zeros((), device=device, dtype=torch.float64)  # noqa: E731
    return {"loss": z(), "n": z(), "correct": z(), "abs_err": z()}


def _add(tot: dict, loss: torch.Tensor, st: dict) -> None:
    tot["loss"] += loss * st["n"]
    for k, v in st.items():
        tot[k] += v


def summarise(tot: dict, prefix: str, task: str) -> dict[str, float]:
    """Sums from scoring -> ``{prefix}_loss``, ``{prefix}_acc`` (and ``{prefix}_mae`` for regression)."""
    t = {k: float(v) for k, v in tot.items()}
    n = max(t["n"], 1)
    row = {f"{prefix}_loss": t["loss"] / n if t["n"] else math.nan, f"{prefix}_acc": t["correct"] / n}
    if task == "regress":
        row[f"{prefix}_mae"] = t["abs_err"] / n
    return row


@torch.no_grad()
def score_windows(model: SequenceModel, windows: Windows, batch: int = 512,
                  progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """The study's measure: the next token after every window, each read from a zero state.

    Returns sums over the targets (``loss``, ``n``, ``correct``, ``abs_err``) for :func:`summarise`.
    """
    model.eval()
    dev = windows.tokens.device
    tot = _totals(dev)
    for i in range(0, len(windows), batch):
        x, y = windows.batch(torch.arange(i, min(i + batch, len(windows)), device=dev))
        out, _ = model(x, last=True)
        _add(tot, *model.loss(out, y[:, -1:]))
        if progress:
            progress(len(x))
    return tot


@torch.no_grad()
def score_full_context(model: SequenceModel, arrays: list[np.ndarray], skip: int, device: torch.device,
                       rows: int = 64, chunk: int = 256,
                       progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Full-context measure: every piece read from its first token, the state carried throughout.

    Scores the same targets as :func:`score_windows` with windows of ``skip``
    tokens: the tokens at positions ``skip`` and later of each piece, so the
    two measures differ only in the context the model had. Pieces of similar
    length are read side by side (``rows`` at a time, ``chunk`` steps per call).

    Returns sums as :func:`score_windows` does.
    """
    model.eval()
    tot = _totals(device)
    order = sorted(range(len(arrays)), key=lambda i: -len(arrays[i]))
    for g in range(0, len(order), rows):
        group = [arrays[i] for i in order[g:g + rows]]
        lens = torch.tensor([len(a) for a in group], device=device)
        width = int(lens.max())
        if width <= skip:
            continue
        pad = torch.zeros((len(group), width), dtype=torch.long, device=device)
        for r, a in enumerate(group):
            pad[r, :len(a)] = torch.as_tensor(a, dtype=torch.long, device=device)
        state = None
        for t in range(0, width - 1, chunk):
            stop = min(t + chunk, width - 1)
            out, state = model(pad[:, t:stop], state)
            pos = torch.arange(t, stop, device=device)[None, :]
            # out[:, j] predicts the token at t + j + 1
            mask = (pos + 1 >= skip) & (pos + 1 < lens[:, None])
            if bool(mask.any()):
                _add(tot, *model.loss(out[mask], pad[:, t + 1:stop + 1][mask]))
        if progress:
            progress(int(sum(max(0, len(a) - skip) for a in group)))
    return tot


