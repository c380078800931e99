"""Learned rhythm on the Chopin nocturnes: which tokenisation, and do samples move like the music?

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_rhythm.py --work bench/out/rhythm --threads 1
    PYTHONPATH=$PWD .venv/bin/python bench/bench_rhythm.py --work bench/out/rhythm --train-only   # trainings alone

The five shared nocturnes are extracted (four train, Op. 72 No. 1 held out: the
dataset's fixed split) and these runs trained one after another (each skipped
when already finished in ``--work``, resumed when interrupted):

1. the choice of tokenisation: a GRU 2×128 on MidiTok ``tsd`` and on ``remi``, same
   options; printed: vocabulary (whole and used), tokens per onset, validation loss per
   token and per onset (loss × the held-out piece's tokens per onset);
2. RNN, LSTM and GRU 2×128 on the chosen encoding with ``--transpose`` (every training piece
   also shifted by -N..+N semitones) and ``--stride`` (30 = every target once an epoch).

Then, for the GRU at T = 1: the rhythm of ``--count`` samples continuing the held-out
opening against the real held-out nocturne (onset-gap and duration histogram distances
to the training pieces, polyphony against the range of the real pieces, longest
repeated-token run against the training data's); and the listening page's summary
table (:func:`pipeline.stages.compare.compare`): RNN, LSTM, GRU, the n-gram sampler and the
real continuation, pitch and rhythm metrics side by side. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from shared import NOCTURNES, ROOT, require

import pandas as pd
import torch

from pipeline.store.dataset import load_dataset, read_notes
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.store.rundir import read_metrics
from pipeline.store.rundir import TrainConfig
from pipeline.stages.train import train

CELLS = ("rnn", "lstm", "gru")


def trained(run: Path, config: TrainConfig) -> Path:
    """Train ``run`` unless it is finished; resume it when interrupted."""
    from pipeline.store.rundir import read_status

    status = read_status(run) if (run / "config.json").exists() else None
    if status is not None and status.finished:
        return run
    t0 = time.perf_counter()
    res = train(config, run, resume=(run / "config.json").exists())
    print(f"trained {run.name}: {res.epochs} epochs (best {res.best_epoch}), val loss {res.val_loss:.3f}, "
          f"{res.seconds_per_epoch:.0f} s/epoch ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return run


def train_all(args) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    data = args.work / "processed" / "nocturnes"
    if not (data / "manifest.json").exists():
        extract([require(args.data)], ExtractConfig(name="nocturnes", out=str(args.work / "processed"), workers=1))
    base = dict(dataset=str(data), layers=args.layers, hidden=args.hidden, threads=args.threads, seed=0,
                patience=3)
    choice = {enc: trained(args.work / "runs" / f"choice-{enc}", TrainConfig(
        encoding=enc, cell="gru", epochs=args.epochs, max_minutes=args.choice_minutes, **base))
        for enc in ("tsd", "remi")}
    tag = f"{args.layers}x{args.hidden}-t{args.transpose}-s{args.stride}"
    models = {cell: trained(args.work / "runs" / f"{args.encoding}-{cell}-{tag}", TrainConfig(
        encoding=args.encoding, cell=cell, epochs=args.epochs, max_minutes=args.max_minutes,
        transpose=args.transpose, stride=args.stride, **base)) for cell in CELLS}
    return data, choice, models


# ------------------------------------------------------------------ 1. the choice

def choice_table(data: Path, runs: dict[str, Path]) -> str:
    names = load_dataset(data, "names")
    held = names.pieces("validation")[0]
    lines = ["| encoding | vocabulary (used) | tokens per onset (all / held-out) | best val loss per token "
             "| val loss per onset | val acc | epochs (best) | s/epoch |", "|---|---|---|---|---|---|---|---|"]
    for enc, run in runs.items():
        ds = load_dataset(data, enc)
        used = len({t for s in ds.sequences.values() for t in s})
        per_onset = sum(map(len, ds.sequences.values())) / sum(map(len, names.sequences.values()))
        held_per_onset = len(ds.sequences[held]) / len(names.sequences[held])
        m = read_metrics(run)
        best = m.loc[m["val_loss"].idxmin()]
        lines.append(f"| {enc} | {len(ds.vocab)} ({used}) | {per_onset:.2f} / {held_per_onset:.2f} | "
                     f"{best['val_loss']:.3f} | {best['val_loss'] * held_per_onset:.2f} | {best['val_acc']:.3f} | "
                     f"{int(m['epoch'].max())} ({int(best['epoch'])}) | {m['seconds'].mean():.0f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ 2. the rhythm of samples

def rhythm_check(data: Path, run: Path, encoding: str, count: int, length: int, seed: int) -> str:
    from pipeline.stages.compare import measure, training_reference
    from pipeline.codecs import onset_tokens
    from pipeline.stages.generate import GenerateConfig, generate
    from pipeline.measures.metrics import longest_repeat_run
    from pipeline.codecs.tokenize import decode_continuation

    ds = load_dataset(data, encoding)
    train_pieces = ds.pieces("train")
    held = ds.pieces("validation")[0]
    notes = read_notes(data)
    ref = training_reference(ds)
    seqs = [ds.sequences[p] for p in train_pieces]
    rows = []
    for piece, table in notes.groupby("piece", sort=True):
        m = measure(ds.sequences[piece], encoding, ref, table)
        rows.append({"what": f"{piece} ({'held out' if piece == held else 'training'})", **m})
    s = generate(run, GenerateConfig(count=count, length=length, temperature=1.0, seed=seed))
    for i, toks in enumerate(s.samples):
        m = measure(toks, encoding, ref, decode_continuation(s.primer, toks, encoding))
        rows.append({"what": f"sample {i}", **m})
    t = pd.DataFrame(rows)
    train_run = max(longest_repeat_run(onset_tokens(s, encoding)) for s in seqs)
    real = t[t["what"].str.contains(r"\(")]
    samples = t[t["what"].str.startswith("sample")]
    held_row = t[t["what"].str.contains("held out")].iloc[0]
    cols = ["onset_gap_histogram_distance", "duration_histogram_distance", "polyphony", "polyphony_rate",
            "empty_beat_rate", "groove_consistency", "longest_repeat_run", "n_notes", "pitch_range",
            "pitch_class_histogram_distance", "scale_consistency", "token_error_rate"]
    out = [t[["what", *cols]].to_markdown(index=False, floatfmt=".3f"), ""]
    for key in ("onset_gap_histogram_distance", "duration_histogram_distance"):
        mean = samples[key].mean()
        out.append(f"{key}: samples mean {mean:.3f} (max {samples[key].max():.3f}), held-out nocturne "
                   f"{held_row[key]:.3f}: ratio {mean / held_row[key]:.2f}x (target <= 1.5x)")
    lo, hi = real["polyphony"].min(), real["polyphony"].max()
    inside = samples["polyphony"].between(lo, hi).sum()
    out.append(f"polyphony: real pieces {lo:.2f}..{hi:.2f}; samples {samples['polyphony'].min():.2f}.."
               f"{samples['polyphony'].max():.2f} (mean {samples['polyphony'].mean():.2f}), "
               f"{inside}/{len(samples)} inside the real range")
    out.append(f"longest run of one repeated onset (note or chord): training pieces {train_run}, samples max "
               f"{int(samples['longest_repeat_run'].max())} (no collapse if <= training)")
    out.append(f"tokens out of MidiTok's grammar: samples {samples['token_error_rate'].mean():.3%} "
               f"(max {samples['token_error_rate'].max():.3%}), real pieces {real['token_error_rate'].max():.3%}")
    return "\n".join(out)


def page_table(runs: list[Path], out: Path, count: int, length: int, temperatures: tuple[float, ...]) -> str:
    from pipeline.stages.compare import SHOWN, CompareConfig, compare

    t0 = time.perf_counter()
    res = compare(runs, CompareConfig(temperatures=temperatures, count=count, length=length, seed=0), out,
                  device="cpu")
    summary = res["summary"].copy()
    names = {c["letter"]: c["name"] for c in res["columns"]}
    summary.insert(0, "model", [names.get(c, "real continuation") for c in summary["column"]])
    summary["temperature"] = [("–" if t != t else f"{t:g}") for t in summary["temperature"]]
    keep = ["model", "temperature", "samples", "collapse", "copies", *[k for k in SHOWN if k in summary]]
    summary = summary[keep].rename(columns={k: v[0] for k, v in SHOWN.items()})
    losses = "; ".join(f"{c['name']}: {c.get('val_loss', c.get('ngram_val_loss')):.3f}" for c in res["columns"])
    return (summary.to_markdown(index=False, floatfmt=".2f")
            + f"\n\nvalidation loss per token (networks: best epoch; n-gram: the order chosen): {losses}"
            + f"\npage: {res['page']} ({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "rhythm")
    ap.add_argument("--data", type=Path, default=NOCTURNES)
    ap.add_argument("--encoding", default="tsd")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--transpose", type=int, default=5)
    ap.add_argument("--stride", type=int, default=30, help="of the RNN/LSTM/GRU runs (the choice runs use 5)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--max-minutes", type=float, default=7.0)
    ap.add_argument("--choice-minutes", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--count", type=int, default=8, help="samples for the rhythm check")
    ap.add_argument("--length", type=int, default=1000, help="tokens per sample for the rhythm check")
    ap.add_argument("--page-count", type=int, default=4)
    ap.add_argument("--page-length", type=int, default=400)
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# bench_rhythm: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    data, choice, models = train_all(args)
    if args.train_only:
        return
    print("\n## 1. Tokenisation (GRU 2x128, no augmentation, same options)\n")
    print(choice_table(data, choice))
    print(f"\n## 2. Rhythm of GRU samples at T=1 ({args.count} x {args.length} tokens) against the real nocturnes\n")
    print(rhythm_check(data, models["gru"], args.encoding, args.count, args.length, seed=0))
    print("\n## 3. The listening page's summary table\n")
    print(page_table([models[c] for c in CELLS], args.work / "compare", args.page_count, args.page_length, (1.0,)))


if __name__ == "__main__":
    main()
