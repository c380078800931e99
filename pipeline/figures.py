"""Figures: a matplotlib Figure on the Agg canvas (no pyplot state) and an atomic PNG writer."""
from __future__ import annotations

import io
from pathlib import Path

from .fsutil import atomic_write_bytes


def new_figure(width: float, height: float, dpi: int = 100):
    """A Figure of ``width`` x ``height`` inches drawn by Agg; no display, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save a figure as PNG atomically (a killed run never leaves half a picture)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())
