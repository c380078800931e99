"""Stage 6: listen side by side -- one static page comparing several runs.

Every model continues the same opening of the same held-out piece; each
sample is rendered to MIDI, WAV (FluidSynth) and a piano roll and measured
with :mod:`pipeline.measures.metrics`, pitch and rhythm. Beside the networks, an n-gram
sampler (:class:`pipeline.measures.baseline.NGramModel`, fitted on the same training
pieces with the first run's augmentation) continues the same opening: the
baseline a network has to beat by ear. The real continuation of that piece
sits beside them as the reference. The page is plain HTML with relative links,
so it works offline from ``file://``::

    <out>/index.html     the page
    <out>/assets/        .mid .wav .png per sample, the primer and the real continuation
    <out>/compare.json   the CompareConfig (+ the runs, piece and primer used)
    <out>/metrics.csv    every sample's metrics (letters only when blind)
    <out>/samples.json   the generated tokens, by column letter
    <out>/key.json       blind mode only: letter -> run, with each column's metrics

Blind mode makes the page a listening test (:mod:`pipeline.store.page` owns its
record, its key and the listeners' answer files): the real continuation becomes
one more lettered column, every row asks for a 1-5 rating per column and which
one is the real continuation, and the answers stay in the browser until the
listener downloads them for ``tally``.

Rhythm: samples of a timed encoding (``tsd``, ``remi``) carry their own, and
the real continuation is its tokens decoded the same way. Samples of ``names``
and ``pitch`` draw theirs from the corpus (:class:`pipeline.stages.render.TimingModel`),
sample ``i`` of every column with the same seed, so the cells of one row differ
in pitch only; the real continuation then keeps its own notes and timing.
"""
from __future__ import annotations

import random
import shutil
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pipeline.codecs import (
    Vocabulary,
    get_codec,
    onset_groups,
    onset_tokens,
    tokens_to_pitches,
)
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError, DatasetError, RunError
from pipeline.core.fsutil import atomic_dir, atomic_write_json, atomic_write_text, check_replaceable, stable_id
from pipeline.inputs.midi_io import notes_to_midi_file
from pipeline.measures.baseline import NGramModel
from pipeline.measures.metrics import build_reference, sample_metrics
from pipeline.models.augment import training_pieces
from pipeline.models.network import resolve_device
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import TimingModel, render_media, tokens_to_notes
from pipeline.store.dataset import Dataset, latest_dataset, load_dataset, read_notes
from pipeline.store.page import (COLLAPSE_RUN, COPY_FLAG, SHOWN, copy_media, page_html, REAL, page_id,
                                 write_page_record)
from pipeline.store.rundir import (
    is_run,
    load_checkpoint,
    read_metrics,
    read_primers,
    read_run_config,
    read_status,
    read_timing,
)

NGRAM_ORDERS = range(2, 7)   # the orders the n-gram column chooses from, by validation loss
NGRAM_VALIDATION_TARGETS = 2000  # at most this many held-out targets decide the order


@dataclass
class CompareConfig(StageConfig):
    """Options of the compare stage; saved as ``compare.json`` beside the page."""

    temperatures: tuple[float, ...] = (0.8, 1.0, 1.2)
    count: int = 2             # samples per model and temperature
    length: int = 200          # new tokens per sample, and tokens of the real continuation
    seed: int = 0              # sampling, rhythm and (blind) column order
    primer_piece: str = ""     # held-out piece of the first run's primers.json; "" = its first
    primer_length: int = 0     # 0 = the first run's window
    blind: bool = False
    checkpoint: str = "best"
    ngram: bool = True         # add the n-gram sampler's column
    ngram_order: int = 0       # 0 = the order of NGRAM_ORDERS with the lowest validation loss

    def validate(self) -> None:
        super().validate()
        if self.ngram_order < 0:
            raise ConfigError("--ngram-order must be >= 1 (0 = chosen by validation loss)")
        if not self.temperatures or any(not t >= 0 for t in self.temperatures):
            raise ConfigError("--temperature needs one or more numbers >= 0")
        if self.count < 1 or self.length < 1 or self.primer_length < 0:
            raise ConfigError("--count and --length must be at least 1, --primer-length at least 0")



# ------------------------------------------------------------------------ inputs

def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders named directly, or the run sub-folders (with ``best.pt``) of a grid folder."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if is_run(p):
            found = [p]
        else:
            found = sorted(d for d in p.glob("*/") if is_run(d) and (d / "best.pt").exists())
            if not found:
                raise RunError(f"{p} is neither a run folder nor a folder of trained runs")
        runs += [r for r in found if r not in runs]
    if not runs:
        raise RunError("compare needs at least one run folder")
    if len(runs) > len(string.ascii_uppercase):
        raise ConfigError(f"compare shows at most 26 runs, not {len(runs)}")
    return runs


def default_out_dir(run_dirs: Sequence[Path], config: CompareConfig, runs_root: str | Path = "runs") -> Path:
    """``runs/compare-<id>``, the id a hash of the resolved run folders and the options."""
    key = {"runs": [str(Path(r).resolve()) for r in run_dirs], **asdict(config)}
    return Path(runs_root) / f"compare-{stable_id(key)}"


def run_label(run_dir: Path) -> dict:
    """What the page says about a run: name, cell, size, parameters, best validation row."""
    cfg = read_run_config(run_dir)
    out = {"run": str(run_dir), "name": run_dir.name, "cell": cfg.get("cell", "?"), "layers": cfg.get("layers"),
           "hidden": cfg.get("hidden"), "parameters": cfg.get("parameters"), "task": cfg.get("task"),
           "encoding": cfg.get("encoding"), "dataset": cfg.get("dataset"), "window": cfg.get("window")}
    try:
        hist = read_metrics(run_dir)
        best = hist.loc[hist["val_loss"].idxmin()]
        out.update(val_loss=float(best["val_loss"]), val_acc=float(best["val_acc"]),
                   best_epoch=int(best["epoch"]), epochs=int(hist["epoch"].max()))
    except (RunError, KeyError, ValueError):
        pass  # a run without metrics still plays; the label just says less
    return out


def flags(m: dict) -> list[str]:
    """Failure flags of one sample's metrics: ``collapse`` and/or ``copies training``."""
    out = []
    if m.get("longest_repeat_run", 0) >= COLLAPSE_RUN or m.get("pitch_entropy") == 0:
        out.append("collapse")
    if m.get("ngram_copy_rate", 0) >= COPY_FLAG:  # nan compares False
        out.append("copies training")
    return out


def real_notes(ds: Dataset, piece: str, first: int, stop: int) -> pd.DataFrame:
    """The real notes (every track, real timing) of the onsets that tokens ``first:stop`` of a piece encode.

    A chord split across a boundary by the ``pitch`` encoding goes with the
    side its first token is on. Times are shifted so the excerpt starts at 0.
    """
    notes = read_notes(ds.folder, piece)
    groups = onset_groups(notes, ds.onset_tolerance)
    codec = get_codec(ds.encoding)
    if codec.from_groups([g.pitches for g in groups]) != ds.sequences[piece]:
        raise DatasetError(f"{ds.folder}: notes.parquet and the {ds.encoding} tokens of {piece} disagree; "
                           "run `extract` again")
    starts = np.cumsum([0] + [codec.tokens_per_group(g.pitches) for g in groups])[:-1]
    chosen = np.flatnonzero((starts >= first) & (starts < stop))
    if not len(chosen):
        return notes.iloc[:0]
    lo = groups[chosen[0]].start_beat
    hi = groups[chosen[-1] + 1].start_beat if chosen[-1] + 1 < len(groups) else np.inf
    out = notes[(notes["start_beat"] >= lo) & (notes["start_beat"] < hi)].copy()
    t0, b0 = out["start"].min(), out["start_beat"].min()
    out[["start", "end"]] -= t0
    out[["start_beat", "end_beat"]] -= b0
    return out.reset_index(drop=True)


def training_reference(ds: Dataset):
    """Pitch, copy and rhythm statistics of the training pieces (rhythm from their real note tables)."""
    seqs = ds.side_sequences("train")
    pieces = [ds.locate(p)[0] for p in seqs]
    notes = read_notes(ds.folder)
    tables = [notes[notes["piece"] == p] for p in pieces]
    values = list(seqs.values())
    return build_reference([onset_tokens(s, ds.encoding) for s in values],
                           [tokens_to_pitches(s, ds.encoding) for s in values], training_notes=tables)


def measure(tokens: list[str], encoding: str, reference, notes: pd.DataFrame) -> dict:
    """Every metric of one sample (or the real continuation): pitch, repetition and copying, rhythm.

    Repetition and copying count onsets for a timed encoding (:func:`onset_tokens`); such
    an encoding also gets ``token_error_rate``, the share of tokens MidiTok finds out of
    grammar (a Pitch with no Duration, say), which play no note.
    """
    m = sample_metrics(onset_tokens(tokens, encoding), tokens_to_pitches(tokens, encoding), reference, notes=notes)
    errors = get_codec(encoding).grammar_errors(tokens)
    if errors is not None:
        m["n_tokens"] = float(len(tokens))
        m["token_error_rate"] = errors
    return m


# ------------------------------------------------------------------------ the n-gram column

def fit_ngram(ds: Dataset, transpose: int, vocab: Vocabulary, order: int = 0):
    """An n-gram model on the training pieces (with the runs' transpositions), ids of ``vocab``.

    ``order`` 0 picks the order in :data:`NGRAM_ORDERS` with the lowest mean loss
    (nats per token) on the held-out pieces' tokens (at most
    :data:`NGRAM_VALIDATION_TARGETS` of them, evenly spaced), as early stopping picks
    the networks' checkpoints. Returns ``(model, order, validation loss or nan)``.
    """
    pieces = training_pieces(ds, transpose)
    if pieces.vocab.tokens == vocab.tokens:
        arrays = pieces  # each transposed piece made when the fit reaches it
    else:  # the run's vocabulary numbers the tokens otherwise (and refuses one it lacks)
        arrays = [vocab.encode(pieces.vocab.decode(ids)) for ids in pieces]
    if order:
        return NGramModel(order, len(vocab)).fit(arrays), order, float("nan")
    val = [vocab.encode(s) for s in ds.side_sequences("validation").values()]
    targets = [(a, i) for a in val for i in range(1, len(a))]
    pick = np.linspace(0, len(targets) - 1, min(len(targets), NGRAM_VALIDATION_TARGETS)).astype(int)
    best = None
    for n in NGRAM_ORDERS:
        model = NGramModel(n, len(vocab)).fit(arrays)
        loss = float(np.mean([-np.log(model.prob(list(a[max(0, i - n + 1):i]), int(a[i])))
                              for a, i in (targets[k] for k in pick)])) if len(pick) else float("nan")
        if best is None or loss < best[2]:
            best = (model, n, loss)
    return best


def ngram_label(order: int, loss: float, sequences: int) -> dict:
    """The page's description of the n-gram column (a column of its own, like a run's)."""
    return {"run": "", "name": f"{order}-gram", "cell": "ngram", "order": order, "ngram_val_loss": loss,
            "sequences": sequences}


# ------------------------------------------------------------------------ compare

def compare(run_dirs: Sequence[str | Path], config: CompareConfig, out_dir: str | Path, *,
            progress: Callable[[int], None] | None = None,
            notice: Callable[[str], None] = lambda s: None, device: str = "auto") -> dict:
    """Build the comparison page of ``run_dirs`` (run folders or grid folders) in ``out_dir``.

    Returns
    -------
    dict with ``folder``, ``page``, ``key`` (None unless blind), ``columns``
    (letter, run and label of each model column, in page order), ``piece``,
    ``primer`` (tokens), ``metrics`` (DataFrame, one row per sample plus the
    real continuation), ``summary`` (DataFrame, means per column and
    temperature), ``render_seconds`` and ``audio_seconds`` (FluidSynth time
    and the music it rendered).
    """
    config.validate()
    resolve_device(device)  # an absent --device fails before any sampling or rendering
    out_dir = Path(out_dir)
    check_replaceable(out_dir, "compare")  # at once, not after sampling: atomic_dir replaces the folder
    runs = expand_runs(run_dirs)
    labels = [run_label(r) for r in runs]
    ckpts = [load_checkpoint(r, config.checkpoint) for r in runs]
    encoding = ckpts[0].encoding
    if not get_codec(encoding).plays_notes:
        raise ConfigError(f"compare plays note models; {runs[0].name} uses {encoding!r}, whose tokens are not notes")
    for r, c in zip(runs, ckpts):
        if c.encoding != encoding:
            raise ConfigError(f"runs differ in encoding: {runs[0].name} uses {encoding!r}, "
                              f"{r.name} uses {c.encoding!r}; compare runs of one encoding")
    openings = read_primers(runs[0])
    piece = config.primer_piece or next(iter(openings), "")
    if piece not in openings:
        raise ConfigError(f"no held-out piece {piece!r} in {runs[0]}/primers.json; "
                          f"choose from {', '.join(openings) or '(none)'}")
    n_primer = config.primer_length or int(labels[0]["window"] or 30)
    if n_primer > len(openings[piece]):
        raise ConfigError(f"--primer-length {n_primer} exceeds the {len(openings[piece])} tokens kept in primers.json")
    primer = list(openings[piece][:n_primer])
    for r, c in zip(runs, ckpts):
        unknown = sorted(set(primer) - set(c.vocab))
        if unknown:
            raise ConfigError(f"primer token(s) {' '.join(unknown[:5])} of {piece} are not in the vocabulary of "
                              f"{r.name} (trained on other data?); compare runs trained on one dataset")
    if len({lab["dataset"] for lab in labels}) > 1:
        notice(f"runs were trained on different datasets; training statistics come from {labels[0]['dataset']}")

    try:
        ds = load_dataset(labels[0]["dataset"], encoding)
    except DatasetError as exc:
        raise DatasetError(f"compare needs the dataset {runs[0].name} was trained on, for the training statistics "
                           f"and the real continuation: {exc}") from None
    base, offset = ds.locate(piece)
    if ds.sequences[base][offset:offset + n_primer] != primer:
        raise DatasetError(f"{ds.folder} no longer holds the opening saved with {runs[0].name}; extract it again")
    reference = training_reference(ds)
    real_tokens = ds.sequences[base][offset + n_primer:offset + n_primer + config.length]
    timed = get_codec(encoding).timed

    entries = list(labels)
    ngram = None
    if config.ngram:
        vocab = Vocabulary(ckpts[0].vocab)
        transpose = int(ckpts[0].train_config.get("transpose", 0))
        ngram, n, loss = fit_ngram(ds, transpose, vocab, config.ngram_order)
        n_seqs = len(ds.side_sequences("train")) * (1 + 2 * transpose)
        entries.append({**ngram_label(n, loss, n_seqs), "transpose": transpose})
    if config.blind and real_tokens:  # one more blind letter: "which one is the real continuation?"
        entries.append({"run": "", "name": "real continuation", "cell": REAL, "piece": piece})
    order = list(range(len(entries)))
    if config.blind:
        random.Random(config.seed).shuffle(order)
    if len(entries) > len(string.ascii_uppercase):
        raise ConfigError(f"compare shows at most {len(string.ascii_uppercase)} columns, not {len(entries)}")
    columns = [{"letter": string.ascii_uppercase[k], **entries[i]} for k, i in enumerate(order)]
    clock = {"render": 0.0, "audio": 0.0}

    def render(notes: pd.DataFrame, stem: Path, qpm: float) -> dict:
        mid = notes_to_midi_file(notes, stem.with_name(stem.name + ".mid"), tempo=qpm)  # the stem may hold a "."
        t0 = time.perf_counter()
        files = render_media(mid, audio="wav", piano_roll=True, notice=notice)
        clock["render"] += time.perf_counter() - t0
        clock["audio"] += files["audio_seconds"]
        if progress:
            progress(1)
        return {"midi": f"assets/{mid.name}", "audio": f"assets/{files['audio']}", "roll": f"assets/{files['piano_roll']}"}

    rows, cells, tokens = [], {}, {}
    with atomic_dir(out_dir, "compare") as tmp:
        scratch = tmp / ".scratch"  # inside the page being built: gone with it on every exit path, kill -9 included
        assets = tmp / "assets"
        assets.mkdir()
        qpm = float(ds.timing.get("qpm", 120.0))
        timing = TimingModel.from_stats(ds.timing)
        primer_notes = (tokens_to_notes(primer, encoding, timing) if timed
                        else real_notes(ds, base, offset, offset + n_primer))
        opening = {"files": render(primer_notes, assets / "primer", qpm)}
        real = None
        if real_tokens:
            notes = (tokens_to_notes(real_tokens, encoding, timing, context=primer) if timed
                     else real_notes(ds, base, offset + n_primer, offset + n_primer + len(real_tokens)))
            m = measure(real_tokens, encoding, reference, notes)
            real = {"files": render(notes, assets / "real", qpm), "metrics": m, "flags": flags(m)}
            if config.blind:  # a column like the others, under the same file names, in every row
                letter = next(c["letter"] for c in columns if c["cell"] == REAL)
                for t in config.temperatures:
                    for i in range(config.count):
                        cells[letter, t, i] = {**real, "files": copy_media(real["files"], assets,
                                                                           f"{letter}_t{t:g}_{i}")}
                for f in real["files"].values():
                    (tmp / f).unlink()
            rows.append({"column": "real", "run": "", "temperature": np.nan, "sample": 0, **m,
                         "flags": " ".join(real["flags"])})
        else:
            notice(f"{piece} ends within the primer: there is no real continuation to compare with")
        for k, col in enumerate(columns):
            if col["cell"] == REAL:
                continue
            run = Path(col["run"]) if col["run"] else None
            # the n-gram column renders as the first run does
            timing = TimingModel.from_stats(read_timing(run or runs[0]))
            for t in config.temperatures:
                if run is None:
                    drawn = ngram.sample(vocab.encode(primer), config.length, t,
                                         np.random.default_rng([config.seed, k, int(t * 1000)]), count=config.count)
                    samples = [vocab.decode(x) for x in drawn]
                else:
                    gc = GenerateConfig(count=config.count, length=config.length, temperature=t, seed=config.seed,
                                        primer="tokens", primer_tokens=tuple(primer), checkpoint=config.checkpoint)
                    samples = generate(run, gc, out_dir=Path(scratch) / f"{col['letter']}-t{t:g}",
                                       device=device).samples
                tokens.setdefault(col["letter"], {})[f"{t:g}"] = samples
                for i, toks in enumerate(samples):
                    notes = tokens_to_notes(toks, encoding, timing, seed=config.seed * 1000 + i, context=primer)
                    m = measure(toks, encoding, reference, notes)
                    cell = {"files": render(notes, assets / f"{col['letter']}_t{t:g}_{i}", timing.qpm),
                            "metrics": m, "flags": flags(m)}
                    cells[col["letter"], t, i] = cell
                    rows.append({"column": col["letter"], "run": "" if config.blind else col["name"],
                                 "temperature": t, "sample": i, **m, "flags": " ".join(cell["flags"])})
        table = pd.DataFrame(rows)
        if config.blind:
            table = table.drop(columns="run")
        summary = summarise(table)
        info = {"piece": piece, "n_primer": n_primer, "length": config.length, "encoding": encoding,
                "dataset": labels[0]["dataset"], "real_tokens": len(real_tokens), "timed": timed}
        record = {**config.to_dict(), "runs": [str(r) for r in runs], **info}
        record["page_id"] = page_id({"record": record, "columns": [[c["letter"], c["run"], c["name"]] for c in columns],
                                     "primer": primer, "real": real_tokens, "samples": tokens})
        atomic_write_text(tmp / "index.html", page_html(columns, config, info, opening, real, cells, summary,
                                                        record["page_id"]))
        atomic_write_text(tmp / "metrics.csv", table.to_csv(index=False))
        atomic_write_json(tmp / "samples.json", {"piece": piece, "primer": primer, "real": real_tokens,
                                                 "samples": tokens})
        key = None
        if config.blind:
            plain = summary.astype(object).where(summary.notna(), None)
            key = {c["letter"]: {**c, "summary": plain[
                plain["column"] == ("real" if c["cell"] == REAL else c["letter"])].to_dict("records")} for c in columns}
        write_page_record(tmp, record, key)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"folder": str(out_dir), "page": str(out_dir / "index.html"),
            "key": str(out_dir / "key.json") if config.blind else None,
            "columns": columns, "piece": piece, "primer": primer, "metrics": table, "summary": summary,
            "render_seconds": clock["render"], "audio_seconds": clock["audio"]}


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every shown metric per column and temperature (nan ignored), with flag counts."""
    keys = [k for k in SHOWN if k in table]
    t = table.assign(temperature=table["temperature"].fillna(-1),
                     collapse=table["flags"].str.contains("collapse"),
                     copies=table["flags"].str.contains("copies"))
    out = t.groupby(["column", "temperature"], sort=False).agg(
        samples=("sample", "size"), collapse=("collapse", "sum"), copies=("copies", "sum"),
        **{k: (k, "mean") for k in keys}).reset_index()
    out["temperature"] = out["temperature"].where(out["temperature"] >= 0)
    real = out["column"] == "real"
    return pd.concat([out[~real], out[real]], ignore_index=True)  # the reference last


# ------------------------------------------------------------------------ the command

def runs_of_latest_dataset(runs_root: str | Path = "runs", processed: str | Path = "processed") -> tuple[list[Path], Path]:
    """Finished runs (at any depth under ``runs_root``) trained on the most recently extracted dataset."""
    latest = latest_dataset(processed)
    if latest is None:
        raise DatasetError(f"no processed dataset under {processed}/; run `extract` and `train` first")
    want = str(latest.resolve())
    found = []
    for cfg in sorted(Path(runs_root).rglob("config.json")) if Path(runs_root).is_dir() else []:
        run = cfg.parent
        try:
            status = read_status(run)
            same = str(Path(read_run_config(run).get("dataset", "")).resolve()) == want
        except RunError:
            continue
        if same and status is not None and status.finished and (run / "best.pt").exists():
            found.append(run)
    if not found:
        raise RunError(f"no finished run trained on the latest dataset {latest} under {runs_root}/; "
                       "train one first, or name the runs to compare")
    return found, latest
