"""Training at scale: memory and throughput with and without transposition augmentation.

A synthetic corpus large enough to matter: the five shared nocturnes, each copy
shifted into another key and started at another bar, written as a processed
dataset of ``--pieces`` pieces (1,250 by default: 2.06 million ``pitch`` tokens)
through :func:`pipeline.dataset.write_dataset`. Each case runs in its own
process (so peak memories do not mix) and reports

* train tokens and windows (``--transpose 6`` trains on 13x the tokens),
* peak resident memory (``ru_maxrss``) and what the process held before loading
  any data (Python, torch, pandas), so the data's own share shows,
* training throughput over ``--batches`` batches of the first epoch, or a whole
  epoch with ``--full-epoch``, per second of the process's CPU time.

Cases: windows as offsets into one token array (``train.Windows``, what
``train`` does), against the old way, every window copied out as its own row of
``window`` int64 inputs and targets (``n_windows x window`` x 2), measured in
the same run. Usage::

    PYTHONPATH=$PWD python bench/bench_train_scale.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOCTURNES = ROOT.parent / "shared" / "data" / "chopin-nocturnes"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def build_corpus(work: Path, pieces: int, seed: int = 0) -> Path:
    """``work/scale``: ``pieces`` copies of the nocturnes in other keys and from other bars."""
    import pandas as pd

    from pipeline.dataset import assign_split, is_dataset, load_dataset, write_dataset
    from pipeline.encodings import transpose_tokens
    from pipeline.extract import ExtractConfig, extract

    out = work / f"scale-{pieces}"
    if is_dataset(out):
        return out
    if not is_dataset(work / "nocturnes"):
        extract([NOCTURNES], ExtractConfig(name="nocturnes", out=str(work), workers=1))
    src = {e: load_dataset(work / "nocturnes", e) for e in ("pitch", "names")}
    rng = random.Random(seed)
    names = sorted(src["pitch"].sequences)
    seqs: dict[str, dict[str, list[str]]] = {"pitch": {}, "names": {}}
    for i in range(pieces):
        base, shift = names[i % len(names)], rng.randint(-5, 5)
        for enc, ds in src.items():
            moved = transpose_tokens(ds.sequences[base], enc, shift) or ds.sequences[base]
            cut = len(moved) * rng.randint(0, 7) // 8   # start from another bar, wrap around
            seqs[enc][f"{base}~{i:04d}"] = moved[cut:] + moved[:cut]
    split = assign_split(sorted(seqs["pitch"]), val_fraction=0.02, seed=0)
    manifest = {"files": [], "config": {"note": f"synthetic: {pieces} shifted copies of the nocturnes"}}
    notes = pd.read_parquet(work / "nocturnes" / "notes.parquet").iloc[:0]
    out.mkdir(parents=True)
    write_dataset(out, notes=notes, sequences=seqs, split=split, timing=src["pitch"].timing,
                  manifest=manifest, cache=[])
    return out


class MaterialisedWindows:
    """The old way: every window's inputs and targets copied out, int64 (n_windows, window) each."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx):
        return self.x[idx], self.y[idx]


def run_case(data: str, method: str, transpose: int, batches: int, threads: int, encoding: str) -> dict:
    """One case, in this process: set up training as ``train`` does, then train ``batches`` batches."""
    import torch

    from pipeline.dataset import load_dataset
    from pipeline.model import SequenceModel
    from pipeline.rundir import TrainConfig
    from pipeline.train import Trainer, model_config, transpositions

    torch.set_num_threads(threads)
    before = rss_mib()
    config = TrainConfig(dataset=data, encoding=encoding, cell="gru", layers=1, hidden=32, embed=16,
                         dropout=0.0, batch=256, window=30, stride=5, transpose=transpose, seed=0, threads=threads)
    t0 = time.perf_counter()
    ds = load_dataset(data, encoding)  # as train() does
    keys = transpositions(ds, transpose) if transpose else None
    if keys is not None:
        ds = replace(ds, vocab=keys.vocab)
    torch.manual_seed(0)
    model = SequenceModel(model_config(config, len(ds.vocab)))
    model.set_vocabulary(ds.vocab.tokens)
    trainer = Trainer(config, ds, model, torch.device("cpu"), keys)
    windows, stored = len(trainer.train), ds.piece_arrays("train")
    views = keys.views if keys else [(i, 0) for i in range(len(stored))]
    tokens = sum(len(stored[i]) for i, _ in views)  # what one epoch trains on (13x with --transpose 6)
    del stored
    stored_ids = len(trainer.train.tokens)
    if method == "materialised":  # filled in chunks, so the peak is the copies', not a gather's on top
        x, y = (torch.empty((windows, config.window), dtype=torch.long) for _ in range(2))
        for i in range(0, windows, 1 << 16):
            x[i:i + (1 << 16)], y[i:i + (1 << 16)] = trainer.train.batch(torch.arange(i, min(i + (1 << 16), windows)))
        trainer.train, stored_ids = MaterialisedWindows(x, y), x.numel() + y.numel()
        del x, y
    del ds
    setup = time.perf_counter() - t0
    rates = []  # the first `batches` batches of three epochs; the best, as other work disturbs the rest
    for epoch in range(1, 4 if batches else 2):
        t0 = time.process_time()  # CPU time: a shared machine disturbs it far less than the wall clock
        trainer.train_epoch(epoch, max_batches=batches or None)
        done = windows if not batches else min(windows, batches * config.batch)
        rates.append(done / (time.process_time() - t0))
    return {"method": method, "transpose": transpose, "train_tokens": tokens,
            "stored_ids": stored_ids, "windows": windows,
            "rss_before_data_mib": round(before, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
            "setup_s": round(setup, 2), "trained_windows": done, "windows_per_s": round(max(rates), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "train_scale"))
    ap.add_argument("--pieces", type=int, default=1250)
    ap.add_argument("--batches", type=int, default=100, help="batches of 256 windows timed, in each of 3 epochs")
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the cases (the best throughput is kept)")
    ap.add_argument("--full-epoch", action="store_true", help="train a whole epoch per case (slow)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--encoding", default="pitch")
    ap.add_argument("--transpose", default="0,6")
    ap.add_argument("--methods", default="offsets,materialised")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # method:transpose, run in this process
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    batches = 0 if a.full_epoch else a.batches
    if a.case:
        method, transpose = a.case.split(":")
        print(json.dumps(run_case(a.data, method, int(transpose), batches, a.threads, a.encoding)))
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    data = build_corpus(work, a.pieces)
    print(f"corpus {data}: {a.pieces} pieces, {a.encoding} encoding; GRU 1x32, window 30, stride 5, batch 256, "
          f"{a.threads} thread(s); {'a whole epoch' if not batches else f'{batches} batches of 3 epochs'} per case, "
          f"{a.repeat} rounds")
    rows, cases = [], [(m, int(t)) for m in a.methods.split(",") for t in a.transpose.split(",")]
    for method, t in cases * a.repeat:
        cmd = [sys.executable, __file__, "--case", f"{method}:{t}", "--data", str(data),
               "--batches", str(batches), "--threads", str(a.threads), "--encoding", a.encoding]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            print(out.stderr[-3000:])
            rows.append({"method": method, "transpose": t, "error": out.stderr.strip().splitlines()[-1]})
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    best = {}
    for r in rows:  # per case: the peak memory seen, the best throughput
        key = (r["method"], r["transpose"])
        if "error" in r or key not in best:
            best.setdefault(key, r)
        elif "error" not in best[key]:
            best[key] = {**r, "peak_rss_mib": max(r["peak_rss_mib"], best[key]["peak_rss_mib"]),
                         "windows_per_s": max(r["windows_per_s"], best[key]["windows_per_s"])}
    rows = list(best.values())
    ok = [r for r in rows if "error" not in r]
    base = next((r for r in ok if r["method"] == "offsets" and r["transpose"] == 0), None)
    print("\n| windows | --transpose | tokens an epoch | ids held | windows | peak RSS MiB | over the bare process "
          "| peak vs offsets, --transpose 0 | windows/s | vs offsets, --transpose 0 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['transpose']} | failed: {r['error']} |")
            continue
        mem = f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x" if base else ""
        speed = f"{r['windows_per_s'] / base['windows_per_s']:.2f}x" if base else ""
        print(f"| {r['method']} | {r['transpose']} | {r['train_tokens']:,} | {r['stored_ids']:,} | {r['windows']:,} "
              f"| {r['peak_rss_mib']:,.0f} | {r['peak_rss_mib'] - r['rss_before_data_mib']:,.0f} | {mem} "
              f"| {r['windows_per_s']:,.0f} | {speed} |")

if __name__ == "__main__":
    main()
