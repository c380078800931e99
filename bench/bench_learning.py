"""Do the models learn music beyond a Markov chain? Unseen pieces, tunes that end, the grid.

Run (one torch thread; each section can run alone, results are kept under --work):

    PYTHONPATH=. .venv/bin/python bench/bench_learning.py nocturnes            # leave one nocturne out
    PYTHONPATH=. .venv/bin/python bench/bench_learning.py nocturnes --variants default,windows,no-transpose
    PYTHONPATH=. .venv/bin/python bench/bench_learning.py others               # other composers' piano music
    PYTHONPATH=. .venv/bin/python bench/bench_learning.py others --heldout DIR # any folder of unseen MIDI files
    PYTHONPATH=. .venv/bin/python bench/bench_learning.py abc                  # O'Neill's 1850, default chars
    PYTHONPATH=. .venv/bin/python bench/bench_learning.py grid                 # the 24-run nocturne grid

nocturnes  For each of the five shared nocturnes: extract the other four (the
           dataset's own split holds one of them out for early stopping, so three
           train), train a GRU 2x128 on the ``pitch`` encoding with the shipped
           defaults (plus a variant's options), and score it with ``evaluate`` on
           the fifth: the network after every 30-token window, with full context,
           and n-grams of the same (augmented) training pieces on the same targets.
others     Piano music bundled with music21 (Chopin, Mozart, Joplin, Clara
           Schumann, Schoenberg), written out as MIDI and scored by a GRU 2x128
           trained on all five nocturnes (the shipped split), piece by piece.
abc        The default ``--encoding chars`` model on O'Neill's 1850 under
           ``--max-minutes 10``; 100 tunes at T = 1 with the validity checks (and
           MIDI through abc2midi), the real held-out tunes for reference, and the
           exact validation scores (every target) from ``evaluate --side validation``.
grid       ``cli.py grid`` of rnn,lstm,gru x 1-4 layers x 64/128 on the nocturnes
           with the defaults: wall time, and the winners on both measures.

Prints Markdown; never asserts on time. A finished run is reused (delete --work to train again).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

from shared import NOCTURNES, ROOT, require

import torch

from pipeline.stages.evaluate import EvalConfig, evaluate
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.store.rundir import TrainConfig, read_run_config, with_encoding_defaults
from pipeline.stages.train import train

VARIANTS = {   # options on top of the shipped defaults
    "default": {},
    "windows": {"mode": "windows"},
    "no-transpose": {"transpose": 0},
    "windows-no-transpose": {"mode": "windows", "transpose": 0},
    "dropout0.4": {"dropout": 0.4},
    "dropout0": {"dropout": 0.0},
    "wd1e-4": {"weight_decay": 1e-4},
    "wd1e-3": {"weight_decay": 1e-3},
    "hidden256": {"hidden": 256},
    "embed32": {"embed": 32},
    "batch16": {"batch": 16},
    "batch32": {"batch": 32},
    "window60": {"window": 60},
    "lr1e-3": {"lr": 0.001},
    "patience10": {"patience": 10},
}
# music21's bundled piano (keyboard) pieces
PIANO = {
    "chopin/mazurka06-2.krn": "Chopin, Mazurka Op. 6 No. 2",
    "mozart/k545/movement1_exposition.mxl": "Mozart, Sonata K. 545, i (exposition)",
    "joplin/maple_leaf_rag.mxl": "Joplin, Maple Leaf Rag",
    "schumann_clara/polonaise_op1n1.mxl": "Clara Schumann, Polonaise Op. 1 No. 1",
    "schumann_clara/polonaise_op1n2.mxl": "Clara Schumann, Polonaise Op. 1 No. 2",
    "schumann_clara/polonaise_op1n3.mxl": "Clara Schumann, Polonaise Op. 1 No. 3",
    "schumann_clara/polonaise_op1n4.mxl": "Clara Schumann, Polonaise Op. 1 No. 4",
    "schoenberg/opus19/movement2.mxl": "Schoenberg, Op. 19 No. 2",
    "schoenberg/opus19/movement6.mxl": "Schoenberg, Op. 19 No. 6",
}
ABC_REAL_LENGTH = None  # filled from the held-out tunes


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _extract(paths: list[Path], out: Path, name: str) -> Path:
    folder = out / name
    if not (folder / "manifest.json").exists():
        extract(paths, ExtractConfig(name=name, out=str(out), workers=1))
    return folder


def _train(config: TrainConfig, run: Path) -> dict:
    """Train (or read back) one run; the summary as a dict."""
    from dataclasses import asdict

    t = time.perf_counter()
    res = train(config, run, resume=(run / "config.json").exists(),
                on_epoch=lambda r: log(f"  {run.name} epoch {r['epoch']}: val {r['val_loss']:.4f}, "
                                       f"full {r['val_full_loss']:.4f} ({r['seconds']:.0f} s)"))
    return {**asdict(res), "wall_s": time.perf_counter() - t}


def note_config(dataset: Path, threads: int, **options) -> TrainConfig:
    """The shipped defaults for a GRU 2x128 on the pitch encoding (its encoding defaults included), plus ``options``."""
    given = {"dataset", "encoding", "cell", "layers", "hidden", "threads", "seed", *options}
    return with_encoding_defaults(TrainConfig(dataset=str(dataset), encoding="pitch", cell="gru", layers=2, hidden=128,
                                              threads=threads, seed=0, **options), given)


def budget(args) -> dict:
    """``--max-minutes`` as a training option, when given (nocturnes, others and grid runs)."""
    return {"max_minutes": args.max_minutes} if args.max_minutes else {}


# --------------------------------------------------------------------------- nocturnes, leave one out

def bench_nocturnes(args, work: Path) -> dict:
    files = sorted(require(NOCTURNES).glob("*.mid"))
    results = {}
    for variant in args.variants.split(","):
        folds = []
        for test in files:
            rest = [f for f in files if f != test]
            train_ds = _extract(rest, work / "processed", f"loo-{test.stem}-train")
            test_ds = _extract([test], work / "processed", f"loo-{test.stem}-test")
            run = work / "runs" / variant / f"loo-{test.stem}"
            summary = _train(note_config(train_ds, args.threads, **budget(args), **VARIANTS[variant]), run)
            ev = evaluate(run, EvalConfig(dataset=str(test_ds)), device="cpu")
            split = json.loads((train_ds / "split.json").read_text())
            folds.append({"test": test.stem, "validation": split["validation"], "train": summary, "eval": ev})
            log(f"{variant} {test.stem}: net {ev['loss']:.3f} full {ev['full_context_loss']:.3f} "
                f"best n-gram {ev['baselines'][ev['best_baseline']]:.3f} ({ev['best_baseline']})")
        results[variant] = folds
        print_nocturnes(variant, folds)
    return results


def print_nocturnes(variant: str, folds: list[dict]) -> None:
    opts = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in VARIANTS[variant].items()) or "shipped defaults"
    print(f"\n### leave one nocturne out — GRU 2x128, pitch, {opts}\n")
    print("| held out (test) | early-stopping piece | epochs (best) | s | targets | network, 30-token windows | "
          "network, full context | best n-gram | gain (windows) | gain (full) | written key only: gain (windows) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    gains, fgains, nets, fulls, grams, ones = [], [], [], [], [], []
    for f in folds:
        e, t = f["eval"], f["train"]
        best = e["baselines"][e["best_baseline"]]
        gains.append(e["gain"])
        fgains.append(e["full_context_gain"])
        nets.append(e["loss"])
        fulls.append(e["full_context_loss"])
        grams.append(best)
        ones.append(e.get("one_key", e)["gain"])
        print(f"| {f['test']} | {', '.join(v.split('.')[0] for v in f['validation'])} | {t['epochs']} "
              f"({t['best_epoch']}) | {t['seconds']:.0f} | {e['targets']:,} | {e['loss']:.3f} (acc {e['acc']:.3f}) | "
              f"{e['full_context_loss']:.3f} (acc {e['full_context_acc']:.3f}) | {best:.3f} ({e['best_baseline']}) | "
              f"{100 * e['gain']:.1f}% | {100 * e['full_context_gain']:.1f}% | {100 * ones[-1]:.1f}% |")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"| **mean** | | | | | {mean(nets):.3f} | {mean(fulls):.3f} | {mean(grams):.3f} | "
          f"**{100 * mean(gains):.1f}%** | **{100 * mean(fgains):.1f}%** | {100 * mean(ones):.1f}% |")
    print(f"\nkeys averaged: {folds[0]['eval'].get('keys', 1)} (the written key's rows: `one_key` in each eval JSON)")
    # all n-gram orders, for the record
    print("\nn-gram losses per fold (1/2/3/5-gram): " + "; ".join(
        f"{f['test']}: " + "/".join(f"{v:.3f}" for v in f["eval"]["baselines"].values()) for f in folds))


# --------------------------------------------------------------------------- other composers

def write_piano_midi(folder: Path) -> dict[str, str]:
    """music21's bundled piano pieces as MIDI files; ``{file stem: title}`` of those written."""
    from music21 import corpus

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for path, title in PIANO.items():
        stem = path.replace("/", "-").rsplit(".", 1)[0]
        out = folder / f"{stem}.mid"
        if not out.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    corpus.parse(path).write("midi", fp=str(out))
                except Exception as exc:  # a corpus file this music21 cannot read: say so, go on
                    log(f"skipped {path}: {type(exc).__name__}: {exc}")
                    continue
        written[stem] = title
    return written


def bench_others(args, work: Path) -> dict:
    if args.heldout:  # a folder of MIDI files the nocturne model never saw, e.g. other Chopin pieces
        folder = args.heldout.resolve()
        midi = {p.stem: p.stem for p in sorted(folder.glob("*.mid"))}
    else:
        folder = work / "piano"
        midi = write_piano_midi(folder)
    noct = _extract([require(NOCTURNES)], work / "processed", "nocturnes")
    run = work / "runs" / "nocturnes-gru-2x128-pitch"
    summary = _train(note_config(noct, args.threads, **budget(args)), run)
    rows = {}
    for stem, title in midi.items():
        ds = _extract([folder / f"{stem}.mid"], work / "processed", f"piano-{stem}")
        rows[stem] = {"title": title, "eval": evaluate(run, EvalConfig(dataset=str(ds)), device="cpu")}
    every = _extract([folder], work / "processed", f"{folder.name}-all")
    all_ev = evaluate(run, EvalConfig(dataset=str(every)), device="cpu")
    split = json.loads((noct / "split.json").read_text())
    print(f"\n### other composers' piano music — GRU 2x128, pitch, shipped defaults, trained on the nocturnes "
          f"({len(split['train'])} train, {', '.join(split['validation'])} for early stopping; "
          f"{summary['epochs']} epochs)\n")
    print(f"keys averaged: {all_ev.get('keys', 1)}\n")
    print("| piece | notes | network, 30-token windows | network, full context | best n-gram | gain | gain (full) | "
          "written key only: gain |")
    print("|---|---|---|---|---|---|---|---|")
    for stem, r in [*rows.items(), ("all", {"title": "**all of them**", "eval": all_ev})]:
        e = r["eval"]
        best = e["baselines"][e["best_baseline"]]
        print(f"| {r['title']} | {e['tokens']:,} | {e['loss']:.3f} | {e['full_context_loss']:.3f} | {best:.3f} "
              f"({e['best_baseline']}) | {100 * e['gain']:.1f}% | {100 * e['full_context_gain']:.1f}% | "
              f"{100 * e.get('one_key', e)['gain']:.1f}% |")
    return {"train": summary, "pieces": rows, "all": all_ev}


# --------------------------------------------------------------------------- ABC

def abc_config(dataset: Path, args) -> TrainConfig:
    """The DEFAULT chars model: only the data, the budget and execution settings are given."""
    given = {"dataset", "encoding", "threads", "max_minutes", "epochs", "seed"}
    return with_encoding_defaults(TrainConfig(dataset=str(dataset), encoding="chars", threads=args.threads,
                                              max_minutes=args.minutes, epochs=100, seed=0), given)


def bench_abc(args, work: Path) -> dict:
    from pipeline.measures.abc_eval import score_sample_folder, summarise_validity, validate_tunes, validity_markdown
    from pipeline.store.dataset import load_dataset
    from pipeline.codecs import decode_chars
    from pipeline.stages.generate import GenerateConfig, generate

    dataset = args.abc_data or _abc_dataset(work)
    config = abc_config(dataset, args)
    run = work / "runs" / args.abc_name
    summary = _train(config, run)
    t = time.perf_counter()
    samples = generate(run, GenerateConfig(count=100, temperature=1.0, seed=0, primer="start"), device="cpu")
    gen_s = time.perf_counter() - t
    table = score_sample_folder(samples.folder, midi=True, engrave_count=0)
    ds = load_dataset(dataset, "chars")
    real = [decode_chars(ds.sequences[p]) for p in ds.pieces("validation")[:100]]
    tables = {1.0: table, "real held-out tunes": validate_tunes(real, [True] * len(real))}
    summary_v = summarise_validity(tables)
    abc2midi = int((table["midi"] != "").sum())
    playable = int((table["parses"] & (table["midi"] != "")).sum())  # the test: both readers agree
    ev = evaluate(run, EvalConfig(dataset=str(dataset), side="validation"), device="cpu")
    cfg = read_run_config(run)
    print(f"\n### ABC, O'Neill's 1850: the default chars model, --max-minutes {args.minutes:g}\n")
    opts = {k: cfg[k] for k in ("mode", "cell", "layers", "hidden", "embed", "dropout", "lr", "lr_decay", "batch",
                                "window")}
    print(f"defaults: {opts}; {cfg['parameters']:,} parameters; {summary['epochs']} epochs in "
          f"{summary['seconds']:.0f} s (best {summary['best_epoch']}), torch threads {args.threads}\n")
    print("| measure (held-out tunes, every target) | loss (nats/char) | acc |\n|---|---|---|")
    print(f"| network, 30-char windows (the study's) | {ev['loss']:.3f} | {ev['acc']:.3f} |")
    print(f"| network, full context | **{ev['full_context_loss']:.3f}** | {ev['full_context_acc']:.3f} |")
    for k, v in ev["baselines"].items():
        print(f"| char {k} | {v:.3f} | {ev['baseline_acc'][k]:.3f} |")
    print(f"\n{ev['targets']:,} targets in {ev['pieces']} held-out tunes.\n")
    print(f"100 tunes at T = 1 (<start> primer, at most 1,000 chars; {gen_s:.1f} s to sample); "
          f"{abc2midi} written as MIDI by abc2midi, {playable} both parsed by music21 (notes and a key) and "
          f"written by abc2midi:\n")
    print(validity_markdown(summary_v))
    return {"train": summary, "config": opts, "validity": summary_v.to_dict("records"), "abc2midi": abc2midi,
            "parses_and_abc2midi": playable,
            "eval": ev, "sample_seconds": gen_s}


def _abc_dataset(work: Path) -> Path:
    from pipeline.inputs.corpus import corpus_paths

    folder = work / "processed" / "oneills1850"
    if not (folder / "manifest.json").exists():
        t = time.perf_counter()
        extract(corpus_paths("oneills1850"), ExtractConfig(name="oneills1850", out=str(work / "processed")))
        log(f"extracted O'Neill's 1850 in {time.perf_counter() - t:.0f} s")
    return folder


# --------------------------------------------------------------------------- grid

def bench_grid(args, work: Path) -> dict:
    from pipeline.commands import grid as grid_command
    from pipeline.stages.grid import GridConfig

    noct = _extract([require(NOCTURNES)], work / "processed", "nocturnes")
    values = {"dataset": [str(noct)], "cell": ["rnn", "lstm", "gru"], "layers": [1, 2, 3, 4], "hidden": [64, 128],
              "encoding": [args.grid_encoding], "threads": [1], **{k: [v] for k, v in budget(args).items()}}
    t = time.perf_counter()
    res = grid_command.run(values, GridConfig(name=f"grid-{args.grid_encoding}", runs=str(work / "runs"),
                                          workers=args.workers), progress=lambda rid, r: log(f"grid: {rid} {r['status']}"))
    wall = time.perf_counter() - t
    df = res["table"]
    done = df[df["val_loss"].notna()]
    by_full = done.loc[done["val_full_loss"].idxmin()]
    by_win = done.loc[done["val_loss"].idxmin()]
    print(f"\n### the nocturne grid, {args.grid_encoding} encoding, shipped defaults "
          f"({args.workers} workers x 1 thread)\n")
    print(f"wall time {wall:.0f} s for {len(df)} runs ({res['counts']}); epochs run {int(df['epochs_run'].sum())}\n")
    print(f"- best full-context loss: {by_full['run']}: {by_full['val_full_loss']:.4f} "
          f"(windows {by_full['val_loss']:.4f})")
    print(f"- best on the study's measure: {by_win['run']}: {by_win['val_loss']:.4f} "
          f"(full context {by_win['val_full_loss']:.4f})")
    means = done.groupby("cell")[["val_loss", "val_full_loss", "val_acc", "val_full_acc"]].mean()
    print("\n| cell | mean val loss (windows) | mean full-context loss | mean acc | mean full acc |\n|---|---|---|---|---|")
    for cell, r in means.iterrows():
        print(f"| {cell} | {r['val_loss']:.4f} | {r['val_full_loss']:.4f} | {r['val_acc']:.3f} | "
              f"{r['val_full_acc']:.3f} |")
    return {"wall_s": wall, "table": df.to_dict("records")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="+", choices=["nocturnes", "others", "abc", "grid"])
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "learning")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--variants", default="default", help=f"nocturnes: comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--minutes", type=float, default=10.0, help="abc: the training budget")
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="nocturnes, others, grid: the training budget of each run; 0 = none (early stopping)")
    ap.add_argument("--heldout", type=Path, default=None,
                    help="others: a folder of MIDI files to score (default: music21's bundled piano pieces)")
    ap.add_argument("--abc-data", type=Path, default=None, help="abc: an extracted O'Neill's 1850 (else extracted)")
    ap.add_argument("--abc-name", default="oneills-chars-default", help="abc: the run folder name")
    ap.add_argument("--grid-encoding", default="names", help="grid: the encoding")
    ap.add_argument("--workers", type=int, default=1, help="grid: runs at once")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work.resolve()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"# learning benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores "
          f"(load {load:.1f}), torch {torch.__version__}, {args.threads} torch thread(s)")
    out = {}
    for section in args.sections:
        out[section] = {"nocturnes": bench_nocturnes, "others": bench_others, "abc": bench_abc,
                        "grid": bench_grid}[section](args, work)
    path = work / f"bench_learning_{'_'.join(args.sections)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
