"""RNN, LSTM and GRU on the Chopin nocturnes, side by side: metrics and render cost.

Usage::

    .venv/bin/python bench/bench_compare.py                      # 2×128, up to 30 epochs / 10 min per model
    .venv/bin/python bench/bench_compare.py --quick              # a smoke test: tiny models, one epoch, short samples
    .venv/bin/python bench/bench_compare.py --runs runs/a runs/b # reuse trained run folders (any number)
    .venv/bin/python bench/bench_compare.py --work /tmp/noct --max-minutes 20 --count 4

The shared nocturnes are extracted into ``<work>/processed/nocturnes`` (a
temporary folder unless ``--work`` is given), one run per cell is trained at
the same size on the ``names`` encoding with the project's default options, and
:func:`pipeline.stages.compare.compare` builds the listening page in ``<work>/compare``.
Printed: the training summary, a Markdown table of the sample metrics averaged
per model and temperature next to the real held-out continuation, and FluidSynth's
render time per minute of music. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from shared import NOCTURNES, require

from pipeline.stages.compare import SHOWN, CompareConfig, compare, run_label
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.store.rundir import TrainConfig
from pipeline.stages.train import train

CELLS = ("rnn", "lstm", "gru")


def train_runs(work: Path, data: Path, args) -> list[Path]:
    extract([data], ExtractConfig(name="nocturnes", out=str(work / "processed"), workers=1))
    runs = []
    for cell in CELLS:
        run = work / "runs" / f"nocturnes-{cell}-{args.layers}x{args.hidden}"
        if not (run / "best.pt").exists():
            t0 = time.perf_counter()
            s = train(TrainConfig(dataset=str(work / "processed" / "nocturnes"), cell=cell, layers=args.layers,
                                  hidden=args.hidden, epochs=args.epochs, max_minutes=args.max_minutes,
                                  threads=args.threads), run, resume=(run / "last.pt").exists())
            print(f"trained {cell}: {s.epochs} epochs, val loss {s.val_loss:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        runs.append(run)
    return runs


def markdown(res: dict) -> str:
    summary = res["summary"].copy()
    names = {c["letter"]: f"{c['cell'].upper()} {c['layers']}×{c['hidden']} ({c['name']})" for c in res["columns"]}
    summary.insert(0, "model", [names.get(c, "real continuation") for c in summary["column"]])
    summary = summary.drop(columns="column")
    summary["temperature"] = [("–" if t != t else f"{t:g}") for t in summary["temperature"]]
    for key, (label, fmt) in SHOWN.items():
        if key in summary:
            summary[key] = ["–" if v != v else fmt.format(v) for v in summary[key]]
    summary = summary.rename(columns={k: v[0] for k, v in SHOWN.items()})
    return summary.to_markdown(index=False, disable_numparse=True,
                               colalign=["left"] + ["right"] * (summary.shape[1] - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=NOCTURNES)
    ap.add_argument("--work", type=Path, help="Folder for the dataset, runs and page (default: a temporary one).")
    ap.add_argument("--runs", type=Path, nargs="+", help="Reuse these run folders instead of training.")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--max-minutes", type=float, default=10.0, help="Training budget per model.")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run; 0 = torch's default.")
    ap.add_argument("--temperature", default="0.8,1.0,1.2")
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="1×32 models, one epoch, 1 sample of 40 tokens at T=1.")
    args = ap.parse_args()
    if args.quick:
        args.layers, args.hidden, args.epochs, args.max_minutes = 1, 32, 1, 1.0
        args.temperature, args.count, args.length = "1.0", 1, 40

    print(f"# compare benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}{' (quick)' if args.quick else ''}\n")
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        work = args.work or Path(tmp)
        runs = args.runs or train_runs(work, require(args.data), args)
        config = CompareConfig(temperatures=tuple(float(t) for t in args.temperature.split(",")),
                               count=args.count, length=args.length)
        print("| run | cell | size | parameters | epochs | best val loss | val acc |\n|---|---|---|--:|--:|--:|--:|")
        for r in runs:
            lab = run_label(r)
            print(f"| {lab['name']} | {lab['cell']} | {lab['layers']}×{lab['hidden']} | {lab['parameters']:,} | "
                  f"{lab.get('epochs', '')} | {lab.get('val_loss', float('nan')):.3f} | "
                  f"{lab.get('val_acc', float('nan')):.3f} |")
        t0 = time.perf_counter()
        res = compare(runs, config, work / "compare")
        wall = time.perf_counter() - t0
        print(f"\nSamples primed with the first {len(res['primer'])} tokens of the held-out {res['piece']}; "
              f"{config.count} × {config.length} tokens per model and temperature; means over samples:\n")
        print(markdown(res))
        minutes = res["audio_seconds"] / 60
        print(f"\nFluidSynth: {res['render_seconds']:.1f} s for {minutes:.2f} min of music = "
              f"{res['render_seconds'] / max(minutes, 1e-9):.1f} s per minute of music "
              f"({len(res['metrics']) + 1} files; whole compare {wall:.1f} s)")
        print(f"page: {res['page']}" + ("" if args.work else " (temporary; pass --work to keep it)"))


if __name__ == "__main__":
    main()
