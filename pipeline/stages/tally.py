"""Stage 7: the ear's verdict -- listeners' answers to a blind page, un-blinded and summed up.

Reads a blind comparison page (its record and key, through :mod:`pipeline.store.page`)
and any number of listeners' answer files exported from it. A file that cannot be
read, is not an answer file, answers another page or is malformed is skipped with
one reason; so is an earlier export from the same browser (same ``session``) when a
later one is given too. Writes, into ``<page>/tally/`` (replaced as a whole on a re-run)::

    tally.json       the TallyConfig, the page id, the listeners, the skipped files and every figure below
    models.csv       per column (models, the n-gram, the real continuation): ratings, mean rating and its
                     bootstrap interval, how often it was taken for the real continuation, binomial p-value
    preference.csv   per ordered pair (a, b): pairs rated by one listener in one row, how often a was above b
    tally.png        the same as a figure: ratings with intervals, the preference matrix, picks against chance
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from pipeline.core.config import StageConfig
from pipeline.core.errors import AnswersError, ConfigError, NoUsableInputError
from pipeline.core.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from pipeline.measures.listening import pairwise_preference, picked_as_real, rating_summary
from pipeline.media.figures import atomic_write_figure, new_figure
from pipeline.store.page import Answers, ListeningPage, read_answers, read_listening_page

OUT = "tally"


@dataclass
class TallyConfig(StageConfig):
    """Options of the tally stage; saved in ``tally.json``."""

    confidence: float = 0.95   # of the bootstrap interval of each mean rating
    resamples: int = 10_000    # bootstrap resamples
    seed: int = 0              # of the bootstrap

    def validate(self) -> None:
        super().validate()
        if not 0 < self.confidence < 1:
            raise ConfigError("--confidence must lie between 0 and 1")
        if self.resamples < 1:
            raise ConfigError("--resamples must be at least 1")


@dataclass
class TallyResult:
    """What tally found and wrote.

    listeners : one name per answer file used (the file's name where the listener gave none);
    skipped : (file, reason) per file left out; models : one row per column, in page order
    (``column``, ``model``, ``cell``, ratings, mean, interval, picks and p-value);
    preference : one row per ordered pair of columns; real : the real continuation's
    letter (None when the page has none); files : what was written.
    """

    folder: Path
    page_id: str
    listeners: list[str]
    skipped: list[tuple[str, str]]
    models: pd.DataFrame
    preference: pd.DataFrame
    real: str | None
    files: list[Path] = field(default_factory=list)


def gather(page: ListeningPage, paths: Sequence[str | Path],
           notice: Callable[[str], None] = lambda s: None) -> tuple[list[tuple[str, Answers]], list[tuple[str, str]]]:
    """Every usable answer file as ``(file, answers)``, and ``(file, reason)`` for the others.

    ``notice`` gets one ``skipped <file>: <reason>`` line per file left out. Of several
    exports from one browser (one ``session``), the one saved last counts.
    """
    used: dict[str, tuple[str, Answers]] = {}
    skipped: list[tuple[str, str]] = []

    def skip(path: str, reason: str) -> None:
        skipped.append((path, reason))
        notice(f"skipped {path}: {reason}")

    seen: set[Path] = set()
    for path in map(str, paths):
        if Path(path).resolve() in seen:
            skip(path, "named twice")
            continue
        seen.add(Path(path).resolve())
        try:
            answers = read_answers(path, page)
        except AnswersError as exc:
            skip(path, str(exc))
            continue
        session = answers.session or path  # a file without a session is a listener of its own
        if session in used:
            other, before = used[session]
            drop, keep = (other, path) if (answers.saved, path) > (before.saved, other) else (path, other)
            skip(drop, f"the same listener's answers (one browser) as {keep}, which was saved later or is a copy")
            if drop == path:
                continue
        used[session] = (path, answers)
    return list(used.values()), skipped


def long_tables(used: list[tuple[str, Answers]]) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """Listener names, and the ratings and choices tables of :mod:`pipeline.measures.listening`."""
    names, ratings, choices = [], [], []
    for path, a in used:
        name = a.listener or Path(path).stem
        name = name if name not in names else f"{name} ({Path(path).name})"  # two Anas stay two listeners
        names.append(name)
        ratings += [(name, row, col, v) for row, col, v in a.ratings]
        choices += [(name, row, col) for row, col in a.choices]
    return (names, pd.DataFrame(ratings, columns=["listener", "row", "column", "rating"]),
            pd.DataFrame(choices, columns=["listener", "row", "choice"]))


def tally(page_folder: str | Path, answer_paths: Sequence[str | Path], config: TallyConfig | None = None, *,
          notice: Callable[[str], None] = lambda s: None) -> TallyResult:
    """Un-blind and sum up the answers to a blind page; write ``<page_folder>/tally/``.

    Raises :class:`~pipeline.core.errors.PageError` for a folder that is not a blind page
    and :class:`~pipeline.core.errors.NoUsableInputError` when no answer file can be used.
    """
    config = config or TallyConfig()
    config.validate()
    page = read_listening_page(page_folder)
    if not answer_paths:
        raise NoUsableInputError("tally needs at least one answer file (exported from the page)")
    used, skipped = gather(page, answer_paths, notice)
    if not used:
        raise NoUsableInputError(f"none of the {len(answer_paths)} answer files could be used")
    names, ratings, choices = long_tables(used)
    letters = list(page.letters)
    scores = rating_summary(ratings, letters, config.confidence, config.resamples, config.seed)
    picks = picked_as_real(choices, letters) if page.real else pd.DataFrame({"column": letters})
    models = pd.DataFrame({"column": letters, "model": [page.columns[c].get("name", c) for c in letters],
                           "cell": [page.columns[c].get("cell", "") for c in letters]})
    models = models.merge(scores, on="column").merge(picks, on="column")
    preference = pairwise_preference(ratings, letters)
    label = dict(zip(models["column"], models["model"]))
    preference.insert(1, "a_model", preference["a"].map(label))
    preference.insert(3, "b_model", preference["b"].map(label))

    out = Path(page_folder) / OUT
    result = TallyResult(out, page.page_id, names, skipped, models, preference, page.real)
    with atomic_dir(out, "tally") as tmp:
        plain = lambda df: df.astype(object).where(df.notna(), None).to_dict("records")  # noqa: E731 (nan -> null)
        atomic_write_json(tmp / "tally.json", {**config.to_dict(), "page": str(Path(page_folder)),
                                               "page_id": page.page_id, "listeners": names,
                                               "skipped": [{"file": f, "reason": r} for f, r in skipped],
                                               "real": page.real, "models": plain(models),
                                               "preference": plain(preference)})
        atomic_write_text(tmp / "models.csv", models.to_csv(index=False))
        atomic_write_text(tmp / "preference.csv", preference.to_csv(index=False))
        draw(result, config, tmp / "tally.png")
    result.files = [out / n for n in ("tally.json", "models.csv", "preference.csv", "tally.png")]
    return result


def draw(result: TallyResult, config: TallyConfig, path: Path) -> Path:
    """Three panels: mean rating with its interval, the preference matrix, picks as real against chance."""
    m, letters = result.models, list(result.models["column"])
    labels = [f"{c} · {n}" for c, n in zip(letters, m["model"])]
    fig = new_figure((15, 4.8))
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.1, 1]})
    y = np.arange(len(letters))
    err = np.vstack([m["mean"] - m["ci_low"], m["ci_high"] - m["mean"]])
    ax1.errorbar(m["mean"], y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
    ax1.set(yticks=y, yticklabels=labels, xlim=(0.8, 5.2), xlabel="mean rating (1-5)",
            title=f"ratings, {config.confidence:.0%} bootstrap interval")
    ax1.invert_yaxis()
    matrix = (result.preference.pivot(index="a", columns="b", values="share").reindex(index=letters, columns=letters)
              if len(result.preference) else pd.DataFrame(np.nan, index=letters, columns=letters))
    im = ax2.imshow(matrix.to_numpy(float), vmin=0, vmax=1, cmap="RdBu")
    for i, a in enumerate(letters):
        for j, b in enumerate(letters):
            v = matrix.loc[a, b]
            if v == v:
                ax2.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9,
                         color="white" if abs(v - 0.5) > 0.3 else "black")
    ax2.set(xticks=range(len(letters)), xticklabels=letters, yticks=range(len(letters)), yticklabels=labels,
            title="rated above the column (share of rows)")
    fig.colorbar(im, ax=ax2, fraction=0.046)
    if result.real:
        ax3.barh(y, m["share"].fillna(0), color=["tab:green" if c == result.real else "tab:gray" for c in letters])
        ax3.axvline(m["chance"].iloc[0], color="k", ls="--", label="chance")
        for k, (share, p) in enumerate(zip(m["share"], m["p_value"])):
            if share == share:
                ax3.text(share, k, f" {share:.0%} (p={p:.3g})", va="center", fontsize=9)
        ax3.legend(loc="lower right")
    else:
        ax3.text(0.5, 0.5, "no real continuation on this page", ha="center", va="center")
    ax3.set(yticks=y, yticklabels=labels, xlim=(0, 1), xlabel="share of rows picked as the real continuation",
            title="which one is real? (green: the real one)")
    ax3.invert_yaxis()
    fig.suptitle(f"{len(result.listeners)} listener{'s' * (len(result.listeners) != 1)}, page {result.page_id}")
    fig.tight_layout()
    return atomic_write_figure(path, fig)


def summary_text(result: TallyResult) -> str:
    """The per-model table and the preference matrix as plain text, for the command to print."""
    m = result.models
    rows = [["column", "model", "ratings", "mean [interval]", "picked as real", "p (vs chance)"]]
    for r in m.to_dict("records"):
        mean = "–" if r["mean"] != r["mean"] else f"{r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        picked = ("–" if not result.real or not r["answered"] else
                  f"{r['picked']}/{r['answered']} ({r['share']:.0%})" + (" real" if r["column"] == result.real else ""))
        p = "–" if not result.real or r["p_value"] != r["p_value"] else f"{r['p_value']:.3g}"
        rows.append([r["column"], r["model"], str(r["ratings"]), mean, picked, p])
    letters = list(m["column"])
    share = {(r["a"], r["b"]): r["share"] for r in result.preference.to_dict("records")}
    matrix = [["above →"] + letters] + [[a] + ["·" if a == b else "–" if share[a, b] != share[a, b]
                                               else f"{share[a, b]:.2f}" for b in letters] for a in letters]
    return (tabulate(rows[1:], headers=rows[0], disable_numparse=True) + "\n\npreference (share of rows where the "
            "row's column was rated above the column's):\n" + tabulate(matrix[1:], headers=matrix[0],
                                                                        disable_numparse=True) + "\n")


__all__ = ["TallyConfig", "TallyResult", "gather", "long_tables", "summary_text", "tally"]
