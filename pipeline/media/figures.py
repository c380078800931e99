"""Matplotlib figures without pyplot: one way to make a figure, one way to save it.

Every picture of the package (training curves, report plots, heatmaps, piano
rolls) is made by :func:`new_figure`, a :class:`~matplotlib.figure.Figure` on
its own Agg canvas: no pyplot state to leak or close, no display needed, and
no ``matplotlib.use`` switching the backend under a caller (a notebook, a
test run) that set its own. :func:`atomic_write_figure` saves it as PNG, so a
killed run never leaves half a picture.

matplotlib is imported inside the functions: stages that draw nothing do not
pay for it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float], dpi: float | None = None) -> "Figure":
    """A figure of ``figsize`` inches on a fresh Agg canvas.

    ``dpi`` None means matplotlib's default (``rcParams["figure.dpi"]``, 100);
    the saved size in pixels follows the ``dpi`` given to
    :func:`atomic_write_figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def atomic_write_figure(path: str | Path, fig: "Figure", dpi: int = 100) -> Path:
    """Save a figure as PNG at ``dpi`` atomically; parent folders are created.

    The figure is saved as it is laid out (no ``bbox_inches``), so its size in
    pixels is ``figsize * dpi``.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


__all__ = ["new_figure", "atomic_write_figure"]
