"""How long does the nocturne study's grid take, and how much do the defaults save?

Usage::

    .venv/bin/python bench/bench_grid.py            # the full study: 24 runs, up to 200 epochs
    .venv/bin/python bench/bench_grid.py --quick    # 2 configurations, 2 epochs (a smoke test)
    .venv/bin/python bench/bench_grid.py --data other/folder --workers 4

The shared Chopin nocturnes are extracted into a temporary folder, then:

(a) the grid  rnn,lstm,gru × layers 1,2,3,4 × hidden 64,128  is trained with this
    project's defaults (one run per core, one torch thread each; TrainConfig's
    window, stride, loss targets and early-stopping patience, printed with the
    result) for up to 200 epochs; the wall time and the winning configuration are printed.
(b) the naive baseline, as in the study: one process, torch's default threads,
    every window (stride 1), loss on the last token only, 200 epochs without early
    stopping. One epoch of a few configurations (the 12 corners layers 1|4 × hidden
    64|128 × cell; exact if an epoch costs a + b·layers·hidden²) is timed and
    extrapolated to 24 runs × 200 epochs, and set against (a).
(c) processes against threads: the same configurations trained as one run per
    core with one thread each, and one run at a time with all cores' threads.

Timings are printed, never asserted; other work on the machine changes them (the
load average is printed first).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from shared import NOCTURNES, require

import torch

from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.grid import GridConfig, cpu_count, expand_grid, run_grid
from pipeline.store.rundir import TrainConfig
from pipeline.stages.train import train

FULL = {"cell": ["rnn", "lstm", "gru"], "layers": [1, 2, 3, 4], "hidden": [64, 128]}
QUICK = [("rnn", 1, 64), ("gru", 2, 128)]


def configs_for(dataset: Path, triples, **kw) -> list[TrainConfig]:
    return [TrainConfig(dataset=str(dataset), cell=c, layers=n, hidden=h, **kw) for c, n, h in triples]


def timed_grid(configs: list[TrainConfig], runs: Path, name: str, workers: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = run_grid(configs, GridConfig(name=name, runs=str(runs), workers=workers))
    return time.perf_counter() - t0, res


def baseline_epochs(configs: list[TrainConfig], runs: Path, threads: int) -> list[float]:
    """Seconds of one naive epoch (stride 1, last-token loss) per configuration, one after another."""
    torch.set_num_threads(threads)  # train() leaves threads=0 to whatever the process has set
    out = []
    for i, c in enumerate(configs):
        c = replace(c, stride=1, targets="last", epochs=1, threads=threads)
        out.append(train(c, runs / f"naive-t{threads}-{i}").seconds_per_epoch)
        print(f"    {c.cell} {c.layers}x{c.hidden}, {threads} thread{'s' * (threads > 1)}: "
              f"{out[-1]:.2f} s/epoch", flush=True)
    return out


def fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 configurations, 2 epochs")
    ap.add_argument("--data", type=Path, default=NOCTURNES, help="MIDI folder to extract")
    ap.add_argument("--workers", type=int, default=0, help="grid workers; 0 = one per core")
    ap.add_argument("--epochs", type=int, default=0, help="epochs for (a); default 200, or 2 with --quick")
    args = ap.parse_args()
    cores = cpu_count()
    epochs = args.epochs or (2 if args.quick else 200)
    print(f"{cores} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"torch {torch.__version__}, default threads {torch.get_num_threads()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = extract([require(args.data)], ExtractConfig(name="nocturnes", out=str(tmp / "processed")))
        dataset = tmp / "processed" / "nocturnes"
        print(f"dataset: {ds['pieces']} pieces, {ds['tokens']['names']:,} name tokens", flush=True)
        if args.quick:
            grid = configs_for(dataset, QUICK, epochs=epochs)
            probe = configs_for(dataset, QUICK)
        else:
            grid = [replace(c, epochs=epochs) for c in expand_grid({"dataset": [str(dataset)], **FULL})[0]]
            probe = configs_for(dataset, [(c, n, h) for c in FULL["cell"] for n in (1, 4) for h in (64, 128)])

        # (a) the grid with the defaults
        c0 = grid[0]
        print(f"\n(a) grid of {len(grid)} runs, up to {epochs} epochs, window {c0.window}, stride {c0.stride}, "
              f"targets {c0.targets}, patience {c0.patience}; {args.workers or cores} workers x 1 thread",
              flush=True)
        wall, res = timed_grid(grid, tmp / "runs", "study", args.workers)
        t = res["table"]
        best = t.iloc[0]
        print(f"    wall time {fmt(wall)}; {int(t['epochs_run'].sum())} epochs in all "
              f"(median {int(t['epochs_run'].median())} per run), {int(res['counts']['failed'])} failed")
        print(f"    winner: {best['cell']} {best['layers']}x{best['hidden']} ({best['parameters']:,} parameters): "
              f"val loss {best['val_loss']:.4f}, val acc {best['val_acc']:.3f} at epoch {best['best_epoch']}",
              flush=True)

        # (b) the naive baseline, extrapolated
        print(f"\n(b) naive baseline: one epoch of stride 1, last-token loss, {len(probe)} configurations "
              f"in turn", flush=True)
        naive = {th: statistics.mean(baseline_epochs(probe, tmp / "naive", th)) for th in sorted({cores, 1})}
        default_epoch = float((t["seconds"].sum() / t["epochs_run"].sum()))
        for th, sec in naive.items():
            this = sec * len(grid) * epochs
            study = sec * 24 * 200
            label = f"{th} threads (torch's default)" if th == cores else "1 thread"
            print(f"    {label}: {sec:.2f} s/epoch -> this grid ({len(grid)} x {epochs} epochs) "
                  f"{fmt(this)}, {this / wall:.1f}x the grid's wall time; 24 runs x 200 epochs: {fmt(study)}")
        print(f"    per epoch, naive (default threads) against the defaults: "
              f"{naive[cores]:.2f} s vs {default_epoch:.2f} s", flush=True)

        # (c) processes against threads, same work
        n_ep = 2 if args.quick else 5
        work = [replace(c, epochs=n_ep, patience=n_ep) for c in probe]
        print(f"\n(c) {len(work)} runs x {n_ep} epochs: {cores} processes x 1 thread vs "
              f"1 process x {cores} threads", flush=True)
        procs, pr = timed_grid([replace(c, threads=1) for c in work], tmp / "c", "procs", cores)
        threads, th = timed_grid([replace(c, threads=cores) for c in work], tmp / "c", "threads", 1)
        rates = {}
        for label, w, r, n in ((f"{cores} x 1 thread ", procs, pr, cores), (f"1 x {cores} threads", threads, th, 1)):
            # steady state: each of n busy workers does sum(epochs)/sum(seconds) epochs a second;
            # leaves out process start-up and data loading, which a short run is mostly made of
            rates[n] = n * r["table"]["epochs_run"].sum() / r["table"]["seconds"].sum()
            print(f"    {label}: wall {fmt(w)} (with start-up), {rates[n]:.2f} epochs/s while training")
        speedup = rates[cores] / rates[1]
        print(f"    processes: {threads / procs:.2f}x the threads' speed in wall time, "
              f"{speedup:.2f}x in training throughput", flush=True)

        print(f"\nsummary: grid {fmt(wall)} (winner {best['cell']} {best['layers']}x{best['hidden']}); "
              f"naive estimate {fmt(naive[cores] * len(grid) * epochs)} for the same runs "
              f"({naive[cores] * len(grid) * epochs / wall:.1f}x); processes vs threads {speedup:.2f}x "
              f"(training throughput), {threads / procs:.2f}x (wall, with start-up)")


if __name__ == "__main__":
    main()
