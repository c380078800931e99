"""Char-level ABC generation, as in the course reports: models vs char n-grams, validity of tunes, speed.

Run:  .venv/bin/python bench/bench_abc.py [--corpus oneills1850] [--work bench/out/abc] [--max-minutes 20]
      .venv/bin/python bench/bench_abc.py --quick     # 300 tunes, 1 epoch: proves the path end to end

Steps: (a) extract the corpus; (b) train the reports' LSTM 1x150 (one-hot input, dropout
0.2, window 30) and a larger LSTM 2x256, each under --max-minutes; (c) validation loss
and accuracy next to char n-gram baselines on the same targets and the reports' figures;
(d) 100 tunes at T = 0.5, 1, 2 from the better model, with the validity table;
(e) characters a second, one batch vs one tune at a time.

Prints Markdown; never asserts on time. --work keeps processed/ and runs/, so a second
call reuses the extraction and resumes or skips finished training (a finished run keeps
its own epochs and budget: use a new --work to train again).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import platform
import sys
import time
from pathlib import Path

from shared import ROOT

import pandas as pd
import torch

from pipeline.inputs import abc_io
from pipeline.measures.abc_eval import (score_sample_folder,
                               summarise_validity, validate_tunes, validity_markdown, write_validity_summary)
from pipeline.inputs.corpus import corpus_paths
from bench.abc_tools import char_ngram_baseline, generation_speed
from pipeline.codecs import decode_chars
from pipeline.store.dataset import load_dataset
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.store.rundir import TrainConfig
from pipeline.stages.train import train

WINDOW = 30
# The reports' best set-up: LSTM 1x150, dropout 0.2, 30-char windows, one-hot input (Keras-style).
# Windows start every 30 chars with the loss at every position: each char is a target once an epoch,
# at 1/30 of the cost of stride 1 with only the last target.
MODELS = {
    "reports": dict(cell="lstm", layers=1, hidden=150, embed=0, dropout=0.2, stride=30),
    # expected to do better: two layers, more units, a learnt embedding; windows every 15 chars
    # so every target is also seen with at least 15 chars of context
    "larger": dict(cell="lstm", layers=2, hidden=256, embed=32, dropout=0.2, stride=15),
}
REPORTS = {"val_loss": "1.47 / 1.62 / ~1.8", "val_acc": "0.52 (best)"}
TEMPERATURES = (0.5, 1.0, 2.0)


def corpus_files(corpus: str, tunes: int | None) -> tuple[list[Path], int]:
    """The corpus's files; with ``tunes``, whole files (in order) until at least that many tunes."""
    files = corpus_paths(corpus)
    counts = [len(abc_io.split_tunebook(abc_io.read_abc_text(f))) for f in files]
    if tunes is None:
        return files, sum(counts)
    keep, total = [], 0
    for f, n in zip(files, counts):
        if total >= tunes:
            break
        keep.append(f)
        total += n
    return keep, total


def step_extract(args, work: Path) -> tuple[Path, dict]:
    name = args.corpus if args.tunes is None else f"{args.corpus}-{args.tunes}"
    folder = work / "processed" / name
    if (folder / "manifest.json").exists():
        manifest = json.loads((folder / "manifest.json").read_text())
        return folder, {**manifest["totals"], "seconds": 0.0, "reused": True}
    files, _ = corpus_files(args.corpus, args.tunes)
    t = time.perf_counter()
    summary = extract(files, ExtractConfig(name=name, out=str(work / "processed")))
    return folder, {**summary, "seconds": time.perf_counter() - t, "reused": False}


def step_train(args, dataset: Path, work: Path, key: str) -> dict:
    opts = MODELS[key]
    cfg = TrainConfig(dataset=str(dataset), encoding="chars", window=WINDOW, targets="all", batch=64, lr=0.002,
                      optimizer="adam", epochs=args.epochs, patience=5, seed=0, threads=args.threads,
                      max_minutes=args.max_minutes, **opts)
    run = work / "runs" / f"{dataset.name}-{opts['cell']}-{opts['layers']}x{opts['hidden']}"
    t = time.perf_counter()
    summary = asdict(train(cfg, run, resume=(run / "config.json").exists(),
                    on_epoch=lambda r: print(f"  {run.name} epoch {r['epoch']}: val loss {r['val_loss']:.4f}, "
                                             f"val acc {r['val_acc']:.3f}, {r['seconds']:.0f} s", file=sys.stderr)))
    meta = json.loads((run / "config.json").read_text())
    return {**summary, "wall_s": time.perf_counter() - t, "train_windows": meta["train_windows"],
            "val_windows": meta["val_windows"], "vocab": meta["vocab_size"], "config": opts}


def step_generate(args, run: Path, dataset: Path) -> pd.DataFrame:
    tables = {}
    for t in TEMPERATURES:
        res = generate(run, GenerateConfig(count=args.count, length=args.length, temperature=t, seed=0,
                                           primer="start"))
        tables[t] = score_sample_folder(res.folder, engrave_count=5)
    summary, _ = write_validity_summary(tables, run / "samples")
    # the same checks on real held-out tunes: the ceiling the models aim at
    ds = load_dataset(dataset, "chars")
    real = [decode_chars(ds.sequences[p]) for p in ds.pieces("validation")[:args.count]]
    tables["held-out real tunes"] = validate_tunes(real, [True] * len(real))
    return summarise_validity(tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="oneills1850", help="A bundled ABC corpus (oneills1850: 2,009 tunes).")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "abc",
                    help="Keeps processed/ and runs/; reused when present.")
    ap.add_argument("--tunes", type=int, default=None, help="Use whole files until this many tunes (default: all).")
    ap.add_argument("--epochs", type=int, default=50, help="Most epochs per model (early stopping, patience 5).")
    ap.add_argument("--max-minutes", type=float, default=20.0, help="Training budget per model; 0 = none.")
    ap.add_argument("--count", type=int, default=100, help="Tunes per temperature.")
    ap.add_argument("--length", type=int, default=1000, help="Character limit per tune.")
    ap.add_argument("--baseline-targets", type=int, default=0,
                    help="Score the n-grams on this many validation targets, evenly spaced; 0 = all "
                         "(pure Python, about 25 µs a target and order: all of O'Neill's in about a minute).")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default (all cores).")
    ap.add_argument("--quick", action="store_true",
                    help="300 tunes, 1 epoch, 20 tunes per temperature: proves the path works.")
    args = ap.parse_args()
    if args.quick:
        args.tunes, args.epochs, args.max_minutes = args.tunes or 300, 1, 0.0
        args.count, args.baseline_targets = min(args.count, 20), min(args.baseline_targets or 5000, 5000)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work.resolve()
    t_all = time.perf_counter()
    print(f"# ABC char-level benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
          f"{' (--quick)' if args.quick else ''}\n")

    dataset, ex = step_extract(args, work)
    split = json.loads((dataset / "split.json").read_text())
    print(f"## (a) extraction of {args.corpus}\n")
    took = f"reused {dataset}" if ex["reused"] else f"{ex['seconds']:.0f} s"
    print(f"{ex['pieces']:,} tunes ({len(split['train']):,} train / {len(split['validation']):,} validation), "
          f"{ex['tokens'].get('chars', 0):,} characters, {ex.get('dropped', {}).get('unparseable tune', 0)} "
          f"tunes skipped; {took}\n")

    results = {}
    for key in MODELS:
        results[key] = step_train(args, dataset, work, key)
    print("## (b, c) validation: next character after every 30-character window of the held-out tunes\n")
    t = time.perf_counter()
    base = char_ngram_baseline(dataset, WINDOW, (3, 5, 7), max_targets=args.baseline_targets or None)
    base_s = time.perf_counter() - t
    print("| model | parameters | epochs | s/epoch | val loss (nats/char) | val acc |\n|---|---|---|---|---|---|")
    for key, label in (("reports", "LSTM 1x150, one-hot, dropout 0.2, stride 30 (the reports' set-up)"),
                       ("larger", "LSTM 2x256, embed 32, dropout 0.2, stride 15")):
        r = results[key]
        print(f"| {label} | {r['parameters']:,} | {r['epochs']} (best {r['best_epoch']}) | "
              f"{r['seconds_per_epoch']:.0f} | {r['val_loss']:.3f} | {r['val_acc']:.3f} |")
    for name, r in base.items():
        print(f"| char {name} (Witten-Bell) | | | | {r['loss']:.3f} | {r['acc']:.3f} |")
    print(f"| course reports (their own data and splits) | | | | {REPORTS['val_loss']} | {REPORTS['val_acc']} |")
    first = next(iter(base.values()))
    sub = (f"n-grams scored on {first['targets']:,} of the {first['total_targets']:,} targets, evenly spaced"
           if first["targets"] < first["total_targets"] else f"all {first['total_targets']:,} targets")
    print(f"\n{results['reports']['val_windows']:,} validation targets for the models; {sub} "
          f"({base_s:.0f} s). Training windows: {results['reports']['train_windows']:,} (stride 30), "
          f"{results['larger']['train_windows']:,} (stride 15); vocabulary {results['reports']['vocab']}.\n")

    best = min(results, key=lambda k: results[k]["val_loss"])
    run = Path(results[best]["run"])
    t = time.perf_counter()
    summary = step_generate(args, run, dataset)
    gen_s = time.perf_counter() - t
    print(f"## (d) {args.count} tunes per temperature from {run.name} (<start> primer, at most "
          f"{args.length:,} chars)\n")
    print(validity_markdown(summary))
    print(f"({gen_s:.0f} s for sampling, checks, MIDI and 5 SVGs per temperature; files under {run}/samples/)\n")

    speed = generation_speed(run, count=args.count, length=args.length, temperature=1.0)
    print(f"## (e) generation speed, {run.name}, {args.count} tunes, T=1, at most {args.length:,} chars\n")
    print("| way | seconds | characters | chars/s |\n|---|---|---|---|")
    for way, label in (("single", "one tune at a time"), ("batch", f"one batch of {args.count}")):
        s = speed[way]
        print(f"| {label} | {s['seconds']:.2f} | {s['chars']:,} | {s['chars_per_s']:,.0f} |")
    print(f"\nbatch is {speed['speedup']:.1f}x faster ({speed['threads']} torch threads)\n")

    out = work / "bench_abc.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "extract": ex,
                               "models": results, "baselines": base, "validity": summary.to_dict("records"),
                               "speed": speed}, indent=2, default=str))
    print(f"total {time.perf_counter() - t_all:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
