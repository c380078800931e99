"""Stage 2c: summaries of a folder of runs (usually a grid): one table and comparison figures.

Reads only the run folders (``config.json``, ``status.json``, ``metrics.csv``,
through :mod:`pipeline.store.rundir`, without torch) and, for a grid,
``grid.json`` (which runs belong to it and how failed ones failed), so it can
be run at any time, also while the grid is training. Writes, into that folder:

- ``summary.csv`` and ``summary.md``  one row per run, best validation loss first
- ``curves_<cell>.png``               training (solid) and validation (dashed: 30-token windows,
                                      dotted: full context) loss per run of a cell
- ``loss_vs_params.png``              best validation loss against parameter count, per cell

and draws a single run's ``curves.png`` (:func:`plot_curves`, which ``train`` calls when it
stops; :func:`ensure_run_curves` for a run stopped while drawing it).
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import RunError
from pipeline.media.figures import atomic_write_figure, new_figure
from pipeline.core.fsutil import atomic_write_text
from pipeline.store.rundir import (TrainConfig, is_run, normalise_options, read_metrics, read_run_config, read_status,
                     selection_metric)

ALWAYS = ("cell", "layers", "hidden")  # shown even when not swept
NOT_OPTIONS = ("threads", "device")            # execution settings, never a column
CELL_COLOURS = {"rnn": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}


def read_grid_file(folder: str | Path) -> dict:
    """``grid.json`` of a grid folder, or ``{}`` for a plain folder of runs."""
    path = Path(folder) / "grid.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise RunError(f"{path} is damaged ({exc}); re-run the grid to rewrite it") from None


def read_run(run_dir: str | Path) -> dict:
    """One run folder as a record.

    Returns
    -------
    ``{"run", "config" (config.json as a dict, or None), "has_checkpoint",
    "status", "error", "history" (DataFrame, one row per finished epoch; empty
    before the first checkpoint)}``. ``status`` is ``finished`` when the run says
    so, ``failed`` when a file is damaged (``error`` says which), else ``incomplete``.
    """
    run_dir = Path(run_dir)
    record = {"run": run_dir.name, "config": None, "has_checkpoint": (run_dir / "last.pt").exists(),
              "status": "incomplete", "error": "", "history": pd.DataFrame()}
    try:
        if is_run(run_dir):
            record["config"] = read_run_config(run_dir)
        status = read_status(run_dir)
        if status is not None:
            # metrics.csv is written with last.pt; cut it at the epoch status.json vouches for
            hist = read_metrics(run_dir)
            record["history"] = hist[hist["epoch"] <= status.epoch] if len(hist) else hist
            record["status"] = "finished" if status.finished else "incomplete"
    except RunError as exc:
        record.update(status="failed", error=str(exc))
    except (ValueError, KeyError) as exc:
        record.update(status="failed", error=f"{run_dir} is damaged ({type(exc).__name__}: {exc})")
    return record


def curves_title(config: TrainConfig) -> str:
    return f"{config.cell.upper()} {config.layers}x{config.hidden} · {config.encoding} · {config.task}"


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    """A run's ``curves.png``: loss and accuracy per epoch, training solid, validation dashed.

    ``rows`` are metrics rows (``epoch``, ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``).
    """
    fig = new_figure((10, 3.6))
    a, b = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for ax, kind in ((a, "loss"), (b, "acc")):
        for side, style, label in (("train", "-", "train"), ("val", "--", "validation, windows"),
                                   ("val_full", ":", "validation, full context")):
            if f"{side}_{kind}" in rows[0]:
                ax.plot(epochs, [r[f"{side}_{kind}"] for r in rows], style, label=label)
        ax.set(xlabel="epoch", ylabel="loss" if kind == "loss" else "accuracy",
               title="loss" if kind == "loss" else "accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write_figure(path, fig)


def ensure_run_curves(run_dir: str | Path) -> bool:
    """Draw ``curves.png`` of a run that has epochs but no picture (its training was
    stopped while drawing it); True if it drew one."""
    run_dir = Path(run_dir)
    if (run_dir / "curves.png").exists():
        return False
    record = read_run(run_dir)
    if record["config"] is None or not len(record["history"]):
        return False
    plot_curves(record["history"].to_dict("records"), run_dir / "curves.png",
                curves_title(TrainConfig.from_dict(record["config"])))
    return True


def _metrics_row(record: dict) -> dict:
    """Metrics of a run at its best epoch (:func:`pipeline.store.rundir.selection_metric`); NaN where it has none."""
    h = record["history"]
    cfg = record["config"] or {}
    row = {"parameters": cfg.get("parameters", np.nan), "val_loss": np.nan, "val_acc": np.nan,
           "val_full_loss": np.nan, "val_full_acc": np.nan,
           "best_epoch": np.nan, "epochs_run": 0, "sec_per_epoch": np.nan, "seconds": 0.0}
    if len(h):
        metric = selection_metric(record["options"])
        best = h.loc[h[metric if metric in h else "val_loss"].idxmin()]
        row.update(val_loss=float(best["val_loss"]), val_acc=float(best["val_acc"]),
                   best_epoch=int(best["epoch"]), epochs_run=int(h["epoch"].max()),
                   sec_per_epoch=float(h["seconds"].mean()), seconds=float(h["seconds"].sum()))
        for col in ("val_mae", "val_full_loss", "val_full_acc", "val_full_mae"):
            if col in h:
                row[col] = float(best[col])
    return row


def collect_runs(folder: str | Path) -> list[dict]:
    """Records of every run of a folder: those ``grid.json`` lists, then any other run sub-folder.

    A listed run without a folder (it failed before training, or has not started)
    gets its configuration from ``grid.json``. ``status`` is ``failed`` when the
    grid recorded an error and the run has not finished since.
    """
    folder = Path(folder)
    entries = {e["id"]: e for e in read_grid_file(folder).get("runs", [])}
    names = list(entries) + sorted(p.name for p in folder.iterdir()
                                   if p.is_dir() and (p / "config.json").exists() and p.name not in entries)
    records = []
    for name in names:
        run_dir, entry = folder / name, entries.get(name, {})
        record = read_run(run_dir) if run_dir.exists() else {
            "run": name, "config": None, "has_checkpoint": False, "status": "incomplete", "error": "",
            "history": pd.DataFrame()}
        record["options"] = normalise_options(record["config"] or entry.get("config", {}))
        if record["status"] == "incomplete" and entry.get("status") == "failed":
            record["status"], record["error"] = "failed", entry.get("error", "")
        records.append(record)
    return records


def swept_options(records: list[dict]) -> list[str]:
    """Training options, besides cell, layers and hidden, whose value differs between the runs."""
    names = [f.name for f in fields(TrainConfig) if f.name not in NOT_OPTIONS and f.name not in ALWAYS]
    return [k for k in names if len({json.dumps(r["options"].get(k)) for r in records}) > 1]


def summary_table(records: list[dict]) -> pd.DataFrame:
    """One row per run, best validation loss first (runs without one last).

    Columns: run, cell, layers, hidden, every other option that differs between
    the runs (:func:`swept_options`), parameters, val_loss and val_acc (the study's
    measure: the next token after every 30-token window), val_full_loss and
    val_full_acc (the same targets, the state carried over each whole held-out
    piece; NaN for runs written before it existed), val_mae and val_full_mae for
    regression, best_epoch (by :func:`pipeline.store.rundir.selection_metric`: the
    full-context loss for tbptt runs), epochs_run, sec_per_epoch, seconds
    (training time, summed over epochs), status (and error when a run failed).
    Rows are sorted by val_full_loss when every run with a finished epoch has one,
    else by val_loss. An empty list gives an empty table with those columns.
    """
    swept = swept_options(records)
    rows = []
    for r in records:
        row = {"run": r["run"], **{k: r["options"].get(k) for k in (*ALWAYS, *swept)}, **_metrics_row(r),
               "status": r["status"], "error": r["error"]}
        rows.append(row)
    cols = ["run", *ALWAYS, *swept, "parameters", "val_loss", "val_acc", "val_mae", "val_full_loss", "val_full_acc",
            "val_full_mae", "best_epoch", "epochs_run", "sec_per_epoch", "seconds", "status", "error"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("val_mae", "val_full_mae"):
        if not df[col].notna().any():
            df = df.drop(columns=col)
    if not (df["error"].astype(bool)).any():
        df = df.drop(columns="error")
    for col in ("parameters", "best_epoch", "epochs_run"):
        df[col] = df[col].astype("Int64")
    done = df["val_loss"].notna()
    key = "val_full_loss" if done.any() and df.loc[done, "val_full_loss"].notna().all() else "val_loss"
    return df.sort_values([key, "run"], na_position="last", kind="stable").reset_index(drop=True)


def to_markdown(df: pd.DataFrame) -> str:
    """The summary as a Markdown table, metrics rounded for reading (the CSV keeps full precision)."""
    show = df.copy()
    for col, fmt in (("val_loss", "{:.4f}"), ("val_acc", "{:.3f}"), ("val_mae", "{:.2f}"),
                     ("val_full_loss", "{:.4f}"), ("val_full_acc", "{:.3f}"), ("val_full_mae", "{:.2f}"),
                     ("sec_per_epoch", "{:.2f}"), ("seconds", "{:.1f}")):
        if col in show:
            show[col] = [("" if pd.isna(v) else fmt.format(v)) for v in show[col]]
    for col in ("parameters", "best_epoch"):
        show[col] = [("" if pd.isna(v) else f"{int(v):,}" if col == "parameters" else str(int(v)))
                     for v in show[col]]
    numeric = {"layers", "hidden", "parameters", "val_loss", "val_acc", "val_mae", "val_full_loss", "val_full_acc",
               "val_full_mae", "best_epoch", "epochs_run", "sec_per_epoch", "seconds"} | {c for c in show if pd.api.types.is_numeric_dtype(df[c])}
    show = show.astype(object).where(show.notna(), "")
    return show.to_markdown(index=False, disable_numparse=True,
                            colalign=["right" if c in numeric else "left" for c in show.columns]) + "\n"


def _label(options: dict, swept: list[str]) -> str:
    extra = [f"{k} {options.get(k)}" for k in swept]
    return " · ".join([f"{options.get('layers')}×{options.get('hidden')}", *extra])


def plot_curves_by_cell(records: list[dict], swept: list[str], folder: Path) -> list[Path]:
    """One figure per cell: training (solid) and validation (dashed) loss, one colour per run."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    written = []
    for cell in sorted({r["options"].get("cell") for r in records if len(r["history"])}):
        runs = sorted((r for r in records if r["options"].get("cell") == cell and len(r["history"])),
                      key=lambda r: (r["options"].get("layers"), r["options"].get("hidden"), r["run"]))
        cmap = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
        fig = new_figure((9, 5.5))
        ax = fig.subplots()
        for i, r in enumerate(runs):
            h, colour = r["history"], cmap(i % cmap.N)
            ax.plot(h["epoch"], h["train_loss"], "-", color=colour, label=_label(r["options"], swept))
            ax.plot(h["epoch"], h["val_loss"], "--", color=colour)
            if "val_full_loss" in h:
                ax.plot(h["epoch"], h["val_full_loss"], ":", color=colour)
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="grey", ls="-", label="training"),
                    Line2D([], [], color="grey", ls="--", label="validation, 30-token windows"),
                    Line2D([], [], color="grey", ls=":", label="validation, full context")]
        ax.legend(handles=handles, title="layers × hidden", fontsize=8, ncol=2 if len(runs) > 8 else 1)
        ax.set(xlabel="epoch", ylabel="loss",
               title=f"{cell.upper()}: training (solid) and validation (dashed: windows, dotted: full context) loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(atomic_write_figure(folder / f"curves_{cell}.png", fig))
    return written


def plot_loss_vs_params(df: pd.DataFrame, folder: Path) -> Path | None:
    """Best validation loss against parameter count (log x), coloured and labelled per run."""
    done = df[df["val_loss"].notna() & df["parameters"].notna()]
    if done.empty:
        return None
    fig = new_figure((8, 5.5))
    ax = fig.subplots()
    for cell, part in done.groupby("cell", sort=True):
        ax.scatter(part["parameters"].astype(float), part["val_loss"], s=40, label=cell,
                   color=CELL_COLOURS.get(cell))
        if part["val_full_loss"].notna().any():  # hollow: the same runs, full context
            ax.scatter(part["parameters"].astype(float), part["val_full_loss"], s=40, facecolors="none",
                       edgecolors=CELL_COLOURS.get(cell))
        for _, r in part.iterrows():
            ax.annotate(f"{r['layers']}×{r['hidden']}", (float(r["parameters"]), r["val_loss"]),
                        textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="validation loss at the best epoch",
           title="Validation loss against model size (filled: 30-token windows, hollow: full context)")
    ax.legend(title="cell")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return atomic_write_figure(folder / "loss_vs_params.png", fig)


def write_report(folder: str | Path) -> dict:
    """Summarise every run of a folder into its table and figures.

    Returns ``{"table": DataFrame (see :func:`summary_table`), "files": paths written}``.
    Raises RunError when the folder holds no run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder} is not a folder of runs")
    records = collect_runs(folder)
    if not records:
        raise RunError(f"{folder} holds no run (no sub-folder with config.json, no grid.json)")
    df = summary_table(records)
    swept = swept_options(records)
    files = [atomic_write_text(folder / "summary.csv", df.to_csv(index=False)),
             atomic_write_text(folder / "summary.md", to_markdown(df))]
    files += plot_curves_by_cell(records, swept, folder)
    plot = plot_loss_vs_params(df, folder)
    files += [plot] if plot else []
    return {"table": df, "files": [str(f) for f in files]}
