"""Stage 8: look inside a model: hidden-unit heatmaps and the units that track structure.

``record_activations`` runs a sequence through any layer of a recurrent stack
and keeps every unit at every step (``torch.nn.RNN|LSTM|GRU`` only return the
top layer's outputs); ``sequence_features`` describes each step of the sequence
(header line, bar line, chord, register...); ``rank_units`` scores every unit
against every feature; ``heatmap_png`` draws one unit over the sequence laid
out as text. ``heatmap`` does all of it for a run folder (the CLI command).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from pipeline.codecs import CHORD_SEP, END, START, Vocabulary, get_codec
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError, RunError
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.store.samples import read_samples
from pipeline.media.figures import atomic_write_figure, new_figure
from pipeline.core.fsutil import atomic_write_json, atomic_write_text, claim
from pipeline.models.network import SequenceModel, Stack, resolve_device
from pipeline.store.rundir import Checkpoint, load_checkpoint

from pipeline.models.network import model_from_checkpoint
MAX_TOKENS = 2000   # a heatmap draws at most this many tokens (the rest is noted in its title)
MAX_ROWS = 250      # ... and at most this many rows of text, so images stay near 5,000 px high or less
STATES = ("hidden", "cell")


# ------------------------------------------------------------------ activations

def _check_layer(model: SequenceModel, layer: int, state: str) -> int:
    n = model.rnn.num_layers
    if not -n <= layer < n:
        raise ConfigError(f"--layer {layer} is out of range: the model has {n} layer{'s' * (n > 1)} "
                          f"(0..{n - 1}, or -1 for the top)")
    if state not in STATES:
        raise ConfigError(f"--state must be hidden or cell, not {state!r}")
    if state == "cell" and model.config.cell != "lstm":
        raise ConfigError(f"--state cell needs an LSTM; this model is a {model.config.cell.upper()} "
                          "(its only state is the hidden one)")
    return layer % n


@torch.no_grad()
def record_activations(model: SequenceModel, ids, layer: int = -1, state: str = "hidden") -> np.ndarray:
    """Every unit of one recurrent layer at every step of one sequence.

    The stack is run layer by layer with the model's own weights, from a zero
    state and without dropout (as in evaluation): a layer's hidden activations
    are its own output, before a residual stack adds the layer's input to it.

    Parameters
    ----------
    model : a :class:`~pipeline.models.network.SequenceModel` (RNN, LSTM or GRU stack).
    ids : token ids, shape (time,) or (1, time); list, numpy array or tensor.
    layer : which recurrent layer, 0 = the lowest; negative counts from the top.
    state : ``hidden`` (h_t, the layer's output) or, for LSTM only, ``cell`` (c_t).

    Returns
    -------
    activations : float32 (time, hidden); row t is the state after reading token t.
        An empty sequence gives shape (0, hidden).

    Raises
    ------
    ConfigError
        ``layer`` out of range, an unknown ``state``, or ``cell`` on a non-LSTM.
    """
    k = _check_layer(model, layer, state)
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(1, -1)
    hidden = model.rnn.hidden_size
    if ids.shape[1] == 0:
        return np.zeros((0, hidden), np.float32)
    rnn = model.rnn
    x = model.inputs(ids.to(next(model.parameters()).device))
    for j in range(k + 1):
        layer_in = x  # no dropout: evaluation
        h, _ = rnn.layers[j](layer_in)
        x = rnn.passed_up(layer_in, h, j)
    if state == "cell":
        return _lstm_cells(rnn, k, layer_in[0], h[0]).float().cpu().numpy()
    return h[0].float().cpu().numpy()


def _lstm_cells(rnn: Stack, k: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """c_t of LSTM layer ``k`` at every step, from its inputs x (time, in) and outputs h (time, hidden).

    nn.LSTM returns only the last c, and stepping it token by token costs a
    module call per step. With every h_{t-1} known, all gates come from two
    matrix products; only c_t = f_t * c_{t-1} + i_t * g_t is left to scan.
    """
    h_prev = torch.cat([h.new_zeros(1, h.shape[1]), h[:-1]])
    gates = x @ getattr(rnn, f"weight_ih_l{k}").T + h_prev @ getattr(rnn, f"weight_hh_l{k}").T
    if rnn.bias:
        gates = gates + getattr(rnn, f"bias_ih_l{k}") + getattr(rnn, f"bias_hh_l{k}")
    i, f, g, _ = gates.chunk(4, dim=1)  # torch's gate order: input, forget, cell, output
    f, ig = torch.sigmoid(f).numpy(force=True), (torch.sigmoid(i) * torch.tanh(g)).numpy(force=True)
    c = np.empty_like(ig)
    prev = np.zeros(ig.shape[1], ig.dtype)
    for t in range(len(ig)):
        prev = c[t] = f[t] * prev + ig[t]
    return torch.from_numpy(c)


# ------------------------------------------------------------------ features

def sequence_features(tokens: Sequence[str], encoding: str) -> dict[str, np.ndarray]:
    """Describe every step of a token sequence, to compare units against: the encoding's codec says
    what each token is (:meth:`pipeline.codecs.base.Codec.features`; its docstring lists the features).

    Returns
    -------
    features : name -> float64 array of shape (time,); binary features are 0/1.
        An empty sequence gives arrays of shape (0,).
    """
    try:
        return get_codec(encoding).features(tokens)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"not a {encoding} token sequence: {exc}") from None


def rank_units(activations: np.ndarray, features: dict[str, np.ndarray]) -> pd.DataFrame:
    """Score every unit against every feature by its Pearson correlation.

    For a 0/1 feature this is the point-biserial correlation. A unit or a
    feature that is constant over the sequence (or a sequence shorter than two
    steps) scores 0, never NaN.

    Parameters
    ----------
    activations : (time, hidden).
    features : name -> (time,), as from :func:`sequence_features`.

    Returns
    -------
    ranking : one row per (feature, unit): ``feature``, ``rank`` (1 = best),
        ``unit``, ``corr`` (signed r), ``score`` (abs r), ``sign`` (+1, -1, or 0);
        features in the given order, units best first.
    """
    a = np.asarray(activations, np.float64)
    if a.ndim != 2:
        raise ValueError(f"activations must be (time, hidden), not shape {a.shape}")
    time, hidden = a.shape
    rows = []
    az, a_ok = _standardise(a)
    for name, values in features.items():
        v = np.asarray(values, np.float64).reshape(-1, 1)
        if len(v) != time:
            raise ValueError(f"feature {name!r} has {len(v)} steps, activations have {time}")
        vz, v_ok = _standardise(v)
        r = (az * vz).mean(0) if time > 1 else np.zeros(hidden)
        r = np.clip(np.where(a_ok & v_ok[0], r, 0.0), -1, 1)
        order = np.argsort(-np.abs(r), kind="stable")
        rows.append(pd.DataFrame({"feature": name, "rank": np.arange(1, hidden + 1), "unit": order,
                                  "corr": r[order], "score": np.abs(r[order]), "sign": np.sign(r[order]).astype(int)}))
    if not rows:
        return pd.DataFrame(columns=["feature", "rank", "unit", "corr", "score", "sign"])
    return pd.concat(rows, ignore_index=True)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns to zero mean, unit variance; and which columns vary at all."""
    if len(x) == 0:
        return x, np.zeros(x.shape[1], bool)
    centred = x - x.mean(0)
    std = centred.std(0)
    # float32 noise on a constant unit is ~1e-7 of its size: not a signal
    ok = std > 1e-6 * np.maximum(1.0, np.abs(x).max(0))
    return centred / np.where(ok, std, 1.0), ok


def top_units(ranking: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` best units of each feature (rows of :func:`rank_units` with rank <= k)."""
    return ranking[ranking["rank"] <= k].reset_index(drop=True)


# ------------------------------------------------------------------ pictures

_CHAR_LABELS = {START: "▸", END: "◂", "\n": "↵", "\t": "→", " ": ""}


def _is_chars(tokens: Sequence[str]) -> bool:
    return all(len(t) == 1 or t in (START, END) for t in tokens)


def grid_layout(tokens: Sequence[str], columns: int, chars: bool) -> list[tuple[int, int]]:
    """(row, column) of each token: rows of ``columns`` cells; for text a newline ends its row."""
    pos, row, col = [], 0, 0
    for t in tokens:
        if col >= columns:
            row, col = row + 1, 0
        pos.append((row, col))
        col += 1
        if chars and t == "\n":
            row, col = row + 1, 0
    return pos


def _label(t: str, chars: bool, lines: int) -> str:
    if chars:
        return _CHAR_LABELS.get(t, t)
    notes = t.split(CHORD_SEP)[::-1]  # highest note on top, as on a staff
    if len(notes) > lines:
        notes = notes[:lines - 1] + [f"+{len(notes) - lines + 1}"]
    return "\n".join(notes)


def heatmap_png(tokens: Sequence[str], values: np.ndarray, out_path: str | Path, *, title: str,
                columns: int | None = None, limit: float | None = None, chars: bool | None = None) -> dict:
    """Draw one unit's activation over a sequence laid out as text.

    Each token is a cell coloured by the unit (diverging ``RdBu_r`` centred on
    0: red positive, blue negative) with a colour bar. ABC text reads as text:
    one character per cell, a newline (drawn ``↵``) starts a new row, markers
    are drawn ``▸``/``◂``. Note tokens are labels in wider cells, chord notes
    stacked high to low. The image grows with the sequence, but at most
    ``MAX_TOKENS`` tokens and ``MAX_ROWS`` rows are drawn; the title says when
    the sequence was cut.

    Parameters
    ----------
    tokens : the sequence, length time.
    values : (time,) activations of one unit.
    out_path : PNG file to write.
    title : first line of the title.
    columns : cells per row; default 80 for text, 16 for notes.
    limit : the colour scale spans [-limit, limit]; default max|values| (1 if all 0).
        Hidden states of all three cells lie in [-1, 1], so 1 compares units fairly.
    chars : lay out as text; default: every token is one character or a marker.

    Returns
    -------
    info : ``path``, ``width`` and ``height`` in pixels, ``tokens`` drawn.
    """
    import matplotlib

    values = np.asarray(values, np.float64).reshape(-1)
    if len(values) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(values)} values")
    chars = _is_chars(tokens) if chars is None else chars
    columns = max(1, columns or (80 if chars else 16))
    pos = grid_layout(tokens[:MAX_TOKENS], columns, chars)
    shown = sum(1 for r, _ in pos if r < MAX_ROWS)
    pos = pos[:shown]
    if shown < len(tokens):
        title = f"{title} (first {shown:,} of {len(tokens):,} tokens)"
    rows = (pos[-1][0] + 1) if pos else 1
    used_cols = max([c for _, c in pos], default=0) + 1
    lines = 1 if chars else min(4, max([t.count(CHORD_SEP) + 1 for t in tokens[:shown]], default=1))
    cell_w, cell_h = (0.12, 0.2) if chars else (0.42, 0.09 + 0.12 * lines)
    left, right, bottom = 0.2, 1.0, 0.2
    # a 9-point character is about 0.065 in wide: widen short pictures for the title, wrap it on long ones
    width = max(4.0, left + used_cols * cell_w + right, min(9.0, 2 * left + 0.065 * len(title)))
    title = "\n".join(textwrap.wrap(title, int((width - 2 * left) / 0.065)) or [""])
    top = 0.3 + 0.16 * (title.count("\n") + 1)
    height = max(1.6, top + rows * cell_h + bottom)

    grid = np.full((rows, used_cols), np.nan)
    for (r, c), v in zip(pos, values):
        grid[r, c] = v
    lim = float(limit) if limit else float(np.max(np.abs(values[:shown]), initial=0.0)) or 1.0
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    fig = new_figure((width, height), dpi=100)
    grid_h, bar_h = rows * cell_h, min(max(rows * cell_h, 1.0), height - top - bottom)
    ax = fig.add_axes((left / width, 1 - (top + grid_h) / height, used_cols * cell_w / width, grid_h / height))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto",
                   interpolation="nearest", extent=(0, used_cols, rows, 0))
    font = dict(fontsize=8 if chars else 6.5, family="DejaVu Sans Mono", ha="center", va="center",
                linespacing=0.95)
    for (r, c), t, v in zip(pos, tokens, values):
        dark = abs(v) > 0.6 * lim
        ax.text(c + 0.5, r + 0.5, _label(t, chars, lines), color="white" if dark else "black", **font)
    ax.set_axis_off()
    cax = fig.add_axes(((width - right + 0.25) / width, 1 - (top + bar_h) / height, 0.15 / width, bar_h / height))
    fig.colorbar(im, cax=cax)
    fig.suptitle(title, x=left / width, y=1 - 0.12 / height, ha="left", va="top", fontsize=9)
    atomic_write_figure(out_path, fig)
    return {"path": str(out_path), "width": round(width * 100), "height": round(height * 100), "tokens": shown}


# ------------------------------------------------------------------ the stage

@dataclass
class HeatmapConfig(StageConfig):
    """Options of the heatmap stage; saved as ``heatmap.json`` beside the pictures.

    The sequence comes from one of ``sample`` (a samples folder or samples.json;
    its primer and sample ``index``), ``file`` (ABC for chars models, MIDI for
    note models), ``text`` (ABC text, or space-separated note tokens); with none
    of them a fresh sample of ``length`` tokens is drawn with ``seed``.
    """

    sample: str = ""
    index: int = 0
    file: str = ""
    text: str = ""
    length: int = 300
    seed: int = 0
    temperature: float = 1.0
    layer: int = -1
    state: str = "hidden"
    units: tuple[int, ...] = ()  # draw these units; empty = the best unit of each feature
    top: int = 3                 # units per feature listed in ranking.csv
    columns: int = 0             # cells per row; 0 = 80 for text, 16 for notes
    checkpoint: str = "best"

    def validate(self) -> None:
        super().validate()
        if self.top < 1:
            raise ConfigError("--top must be at least 1")
        if self.state not in ("hidden", "cell"):
            raise ConfigError("--state must be hidden or cell")


def load_tokens(run_dir: Path, ckpt: Checkpoint, config: HeatmapConfig, out_dir: Path,
                device: str = "auto") -> tuple[list[str], str]:
    """The sequence to look at, and where it came from (one line)."""
    encoding = ckpt.encoding
    codec = get_codec(encoding)
    chosen = [name for name in ("sample", "file", "text") if getattr(config, name)]
    if len(chosen) > 1:
        raise ConfigError(f"give one of --sample, --file and --text, not {' and '.join('--' + c for c in chosen)}")
    if config.sample:
        data = read_samples(config.sample)
        if data.encoding != encoding:
            raise ConfigError(f"{config.sample} holds {data.encoding} samples; this run is a {encoding} model")
        n = len(data.samples)
        if not 0 <= config.index < n:
            raise ConfigError(f"--index {config.index} is out of range: {config.sample} holds {n} samples (0..{n - 1})")
        return data.primer + data.samples[config.index], f"{config.sample} sample {config.index} (with its primer)"
    if config.file:
        path = Path(config.file)
        if not path.is_file():
            raise ConfigError(f"{path} is not a file")
        try:
            return codec.read_file(path), str(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.text:
        return codec.parse_text(config.text), "--text"
    gc = GenerateConfig(count=1, length=config.length, temperature=config.temperature, seed=config.seed,
                        primer=codec.default_primer, checkpoint=config.checkpoint)
    where = f"a fresh sample (seed {config.seed}, T={config.temperature:g})"
    res = generate(run_dir, gc, out_dir / "sample", device=device)  # primers.json in the run: no dataset needed
    return res.primer + res.samples[0], where


def heatmap(run_dir: str | Path, config: HeatmapConfig, out_dir: str | Path | None = None,
            progress: Callable[[int], None] | None = None, device: str = "auto") -> dict:
    """Record one layer over a sequence, rank its units and draw heatmaps.

    Writes into ``out_dir`` (default ``<run>/heatmaps``): ``features.csv`` (one
    row per step: token and features), ``ranking.csv`` (the ``top`` best units of
    each feature: r, |r|, sign), ``heatmap_<feature>_unit<k>.png`` for the best
    unit of each feature that varies over the sequence (or ``heatmap_unit<k>.png``
    for each of ``config.units``) and ``heatmap.json``. Pictures of an earlier
    call in the same folder are removed so the folder matches ranking.csv.

    Returns
    -------
    summary : folder, tokens, source, layer/layers, state, cell, pictures, best
        (feature, unit, r of the strongest match).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run folder (no such folder)")
    config.validate()
    dev = resolve_device(device)
    ckpt = load_checkpoint(run_dir, config.checkpoint)  # on the CPU, whatever device trained it
    model = model_from_checkpoint(ckpt).to(dev)
    layer = _check_layer(model, config.layer, config.state)
    bad = [u for u in config.units if not 0 <= u < model.rnn.hidden_size]
    if bad:
        raise ConfigError(f"--units {bad[0]} is out of range: layers have {model.rnn.hidden_size} units")
    out = claim(Path(out_dir) if out_dir else run_dir / "heatmaps", "heatmaps")  # never a folder of the user's
    tokens, source = load_tokens(run_dir, ckpt, config, out, device)
    if not tokens:
        raise ConfigError(f"{source} gives an empty sequence")
    vocab = Vocabulary(ckpt.vocab)
    unknown = sorted({t for t in tokens if t not in vocab.index})
    if unknown:
        raise ConfigError(f"{len(unknown)} token(s) of {source} are not in the model's vocabulary: "
                          + " ".join(repr(t) for t in unknown[:8]))
    acts = record_activations(model, vocab.encode(tokens), layer, config.state)
    feats = sequence_features(tokens, ckpt.encoding)
    ranking = rank_units(acts, feats)
    top = top_units(ranking, config.top)

    for old in [*out.glob("heatmap_*_unit*.png"), *out.glob("heatmap_unit*.png")]:
        old.unlink()
    atomic_write_text(out / "features.csv", pd.DataFrame({"step": range(len(tokens)), "token": tokens, **feats})
                      .to_csv(index=False))
    atomic_write_text(out / "ranking.csv", top.to_csv(index=False, float_format="%.4f"))
    atomic_write_json(out / "heatmap.json", {"run": str(run_dir), "source": source, **config.to_dict()})

    cell, n_layers = model.config.cell.upper(), model.rnn.num_layers
    where = f"{cell} layer {layer} of 0..{n_layers - 1}, {config.state} state"
    limit = 1.0 if config.state == "hidden" else None  # h is in [-1, 1] for all cells; c is unbounded
    columns = config.columns or None
    best = ranking[ranking["rank"] == 1]
    if config.units:
        jobs = []
        for u in config.units:
            m = ranking[ranking["unit"] == u].sort_values("score", ascending=False, kind="stable").iloc[0]
            jobs.append((f"heatmap_unit{u}.png", u, f"unit {u} · best match {m['feature']} (r={m['corr']:+.2f})"))
    else:
        jobs = [(f"heatmap_{r.feature}_unit{r.unit}.png", int(r.unit),
                 f"unit {r.unit} ~ {r.feature} (r={r.corr:+.2f})") for r in best.itertuples() if r.score > 0]
    pictures = []
    codec = get_codec(ckpt.encoding)
    shown = [codec.label(t) for t in tokens]  # tsd/remi: C4, d1/2, +1/4, | rather than Pitch_60, ...
    for name, u, label in jobs:
        heatmap_png(shown, acts[:, u], out / name, title=f"{label} · {where}", columns=columns, limit=limit,
                    chars=codec.text_layout)
        pictures.append(name)
        if progress:
            progress(1)
    strongest = best.sort_values("score", ascending=False, kind="stable").iloc[0] if len(best) else None
    return {"folder": str(out), "tokens": len(tokens), "source": source, "cell": cell, "layer": layer,
            "layers": n_layers, "state": config.state, "pictures": pictures,
            "features": list(feats), "absent": [r.feature for r in best.itertuples() if r.score == 0],
            "best": None if strongest is None else
            (strongest["feature"], int(strongest["unit"]), float(strongest["corr"]))}
