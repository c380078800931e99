"""Look at MIDI: piano-roll pictures of a MIDI file or a note table.

A roll is drawn on a :func:`pipeline.media.figures.new_figure` (Agg canvas, no
pyplot) at a fixed pixel size with fixed axes margins, so that rolls of
different pieces line up on a comparison page. MIDI files are read through
:func:`pipeline.inputs.midi_io.midi_file_to_notes`, like every other MIDI the package
reads: drum tracks and zero-length notes are left out, and a file with no
pitched note is a :class:`~pipeline.core.errors.MidiReadError`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi

from pipeline.media.figures import atomic_write_figure, new_figure
from pipeline.inputs.midi_io import midi_file_to_notes

ROLL_COLUMNS = ("pitch", "start", "end", "velocity")


def piano_roll_png(
    notes: str | Path | pd.DataFrame,
    out_path: str | Path,
    *,
    title: str | None = None,
    width_px: int = 1200,
    height_px: int = 400,
    dpi: int = 100,
) -> Path:
    """Draw a piano roll as a PNG of exactly ``width_px`` x ``height_px`` pixels.

    Time in seconds runs along x, pitch up y (ticks at every C, named as in
    pretty_midi: C4 = 60), and velocity is the colour of each note (viridis,
    dark = soft, yellow = loud, scale on the right). The axes sit at the same
    place in every picture so rolls line up when stacked. Notes are drawn as
    rectangles, not a sampled roll, so short notes do not vanish.

    Parameters
    ----------
    notes : str, Path or pd.DataFrame
        A MIDI file, or a table with columns pitch, start, end, velocity
        (seconds), such as a note table, shape (n_notes, >= 4). Other columns
        are ignored.
    out_path : str or Path
        Written as PNG whatever its suffix; parent folders are created.
    title : str, optional
    width_px, height_px, dpi : int
        Picture size in pixels and the dpi that text sizes refer to.

    Returns
    -------
    Path
        ``out_path``. A table with no rows gives an empty C4-C5 roll with the
        text "no notes".

    Raises
    ------
    MidiReadError
        ``notes`` is a path to an unreadable MIDI file, or to one with no pitched note.
    ValueError
        ``notes`` is a table without the needed columns.
    """
    # Imported here so that callers that only render audio do not pay for matplotlib.
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    if isinstance(notes, pd.DataFrame):
        lacking = [c for c in ROLL_COLUMNS if c not in notes.columns]
        if lacking:
            raise ValueError(f"note table lacks column(s) {', '.join(lacking)}")
        table = notes
    else:
        table, _ = midi_file_to_notes(notes)
    pitch = table["pitch"].to_numpy(dtype=float)
    start = table["start"].to_numpy(dtype=float)
    end = table["end"].to_numpy(dtype=float)
    velocity = table["velocity"].to_numpy(dtype=float)

    fig = new_figure((width_px / dpi, height_px / dpi), dpi=dpi)
    # Fixed fractions (not tight_layout) so every picture has its axes in the same place.
    ax = fig.add_axes((0.06, 0.13, 0.87, 0.77))
    cax = fig.add_axes((0.945, 0.13, 0.012, 0.77))
    ax.set_facecolor("#16181d")
    cmap, norm = colormaps["viridis"], Normalize(vmin=0, vmax=127)

    if len(table):
        verts = np.stack(
            [np.stack([start, pitch - 0.4], 1), np.stack([end, pitch - 0.4], 1),
             np.stack([end, pitch + 0.4], 1), np.stack([start, pitch + 0.4], 1)], axis=1
        )  # (n_notes, 4 corners, xy)
        colours = cmap(norm(velocity))
        # A thin edge in the note's colour keeps notes shorter than a pixel visible.
        ax.add_collection(PolyCollection(verts, facecolors=colours, edgecolors=colours,
                                         linewidths=0.4))
        lo, hi = pitch.min(), pitch.max()
        if hi - lo < 12:  # at least an octave, so there is always a C to label
            mid = (lo + hi) / 2
            lo, hi = mid - 6, mid + 6
        ax.set_xlim(0, max(end.max(), 1e-3) * 1.01)
        ax.set_ylim(lo - 1.5, hi + 1.5)
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(59.5, 72.5)
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center",
                color="white", fontsize=14)

    y0, y1 = ax.get_ylim()
    cs = [p for p in range(int(np.ceil(y0)), int(y1) + 1) if p % 12 == 0 and 0 <= p <= 127]
    ax.set_yticks(cs, [pretty_midi.note_number_to_name(p) for p in cs])
    ax.grid(axis="y", color="white", alpha=0.15, linewidth=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax).set_label("velocity", fontsize=8)
    cax.tick_params(labelsize=7)
    return atomic_write_figure(out_path, fig, dpi=dpi)  # no bbox_inches: it would change the size


__all__ = ["ROLL_COLUMNS", "piano_roll_png"]
