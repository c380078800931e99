"""Training at scale: set-up, throughput and peak memory with ``--transpose 0`` and ``--transpose 6``.

Run:  .venv/bin/python bench/bench_train_scale.py [--files 1000] [--steps 100] [--work DIR] [--ref main]

The corpus is bench_scale.py's (``--files`` synthetic MIDI files, the shared
nocturnes transposed, re-timed and played twice: 1,000 files, about 3.3 million
notes), written once under ``--work`` and extracted there with ``cli.py extract``
(both kept for the next run). Each case then runs in a fresh process, so its peak
resident memory (``ru_maxrss``, read in that process) is its own: the set-up
``train`` does (load the dataset, the training sequences with their
transpositions, the model, the trainer's streams and validation windows), then
``--steps`` TBPTT steps of the first epoch (``--full-epoch``: all of it; the
validation pass is left out), on the ``pitch`` encoding, GRU 4x128, batch 64,
chunk 30, ``--threads`` torch threads. ``--transpose 6`` reads 13 keys of every
training piece an epoch; the goal is a peak within 20% of ``--transpose 0``'s.

``--ref main`` also runs both cases on that git revision's ``pipeline/`` (exported
with ``git archive`` under ``--work``; the working tree is untouched), which
copied every transposed piece as tokens and joined each epoch into one array.
Prints Markdown; ratios are measured in the same run, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

# Not ``import shared``: that would put this checkout first on sys.path, and a --ref child must import
# the exported revision's pipeline (its PYTHONPATH). The shared nocturnes come through bench_scale.
ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def corpus(work: Path, files: int) -> tuple[Path, int]:
    """The extracted dataset of ``files`` synthetic files under ``work`` (made once) and its note count."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_scale import write_corpus

    folder, counted = work / f"corpus-{files}", work / f"corpus-{files}.notes"
    if not counted.exists():
        counted.write_text(str(write_corpus(folder, files)))
    data = work / "out" / f"scale-{files}"
    if not (data / "split.json").exists():
        subprocess.run([sys.executable, "cli.py", "extract", str(folder), "--name", data.name, "--out",
                        str(data.parent), "--workers", "1"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return data, int(counted.read_text())


def run_case(data: str, transpose: int, steps: int, threads: int) -> dict:
    """One case in this process: what ``train`` sets up, then ``steps`` steps (0: the whole epoch)."""
    import torch

    torch.set_num_threads(threads)
    import types

    from pipeline.models import feeding, scoring, trainer
    T = types.SimpleNamespace(training_data=feeding.training_data, model_config=trainer.model_config,
                              Trainer=trainer.Trainer, _totals=scoring._totals,
                              forward_resetting=feeding.forward_resetting, detach_state=feeding.detach_state)
    from pipeline.models.network import SequenceModel
    from pipeline.store.rundir import TrainConfig

    before = rss_mib()
    config = TrainConfig(dataset=data, encoding="pitch", cell="gru", layers=4, hidden=128, embed=64, batch=64,
                         window=30, transpose=transpose, seed=0, threads=threads, device="cpu")
    t0 = time.perf_counter()
    data_ = T.training_data(config)
    ds, pieces = (data_[0], data_[1]) if len(data_) == 3 else (data_[0], None)  # a revision before augment.py
    torch.manual_seed(0)
    model = SequenceModel(T.model_config(config, len(ds.vocab)))
    trainer = T.Trainer(config, ds, model, torch.device("cpu"), *([pieces] if pieces is not None else []))
    del data_, pieces
    setup = time.perf_counter() - t0
    tokens, ids_held = trainer.train.tokens, len(getattr(trainer.train, "ids", []))
    if not ids_held:  # the old Streams: a list of (transposed) arrays
        ids_held = sum(len(a) for a in trainer.train.arrays)
    t0 = time.perf_counter()
    if "max_steps" in T.Trainer.train_epoch.__code__.co_varnames:
        row = trainer.train_epoch(1, max_steps=steps or None)
        done = row["steps"]
    else:  # the old trainer: its own loop, stopped after ``steps``
        trainer.model.train()
        trainer._epoch, trainer._steps = 1, 0
        x, y, first = trainer.train.epoch(torch.Generator().manual_seed(config.seed * 100_003 + 1))
        state, tot = None, T._totals(trainer.device)
        for t in range(0, x.shape[1], config.window):
            cut = slice(t, t + config.window)
            out, state = T.forward_resetting(trainer.model, x[:, cut], first[:, cut], state)
            trainer._step(tot, *trainer.model.loss(out, y[:, cut]))
            state = T.detach_state(state)
            if steps and trainer._steps >= steps:
                break
        done = trainer._steps
    seconds = time.perf_counter() - t0
    return {"transpose": transpose, "epoch_tokens": tokens, "ids_held": ids_held, "steps": done,
            "trained_tokens": done * config.batch * config.window, "setup_s": round(setup, 2),
            "train_s": round(seconds, 2), "tokens_per_s": round(done * config.batch * config.window / seconds, 1),
            "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def exported(work: Path, ref: str) -> tuple[Path, str]:
    """``ref``'s tree (what the child imports) under ``work``, exported once per commit."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = work / f"ref-{sha}"
    if not (tree / "pipeline").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "pipeline"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree, sha


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "train_scale",
                    help="the corpus, its extract and exported revisions are kept here")
    ap.add_argument("--steps", type=int, default=100, help="TBPTT steps (64 x 30 tokens) a case trains")
    ap.add_argument("--full-epoch", action="store_true", help="train the whole first epoch (13x longer with 6)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ref", help="also run the cases on this git revision's pipeline/ (e.g. main)")
    ap.add_argument("--case", type=int, help=argparse.SUPPRESS)  # a child: this transpose, in this process
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    steps = 0 if a.full_epoch else a.steps
    if a.case is not None:
        print(json.dumps(run_case(a.data, a.case, steps, a.threads)))
        return
    print(f"## Training at scale ({platform.node()}, {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
          f"{os.getloadavg()[0]:.1f})\n")
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data, notes = corpus(a.work, a.files)
    print(f"- corpus: {a.files:,} files, {notes:,} notes (bench_scale.py's), extracted to {data} "
          f"({time.perf_counter() - t0:.0f} s this run, 0 when kept from before)")
    what = f"{steps} steps" if steps else "the whole first epoch"
    print(f"- each case a fresh process: set-up as `train`, then {what} (no validation pass); "
          f"pitch, GRU 4x128, batch 64, chunk 30, {a.threads} thread(s)\n")
    trees = [("this tree", ROOT)]
    if a.ref:
        tree, sha = exported(a.work, a.ref)
        trees.append((f"{a.ref} ({sha})", tree))
    rows = []
    for label, tree in trees:
        for t in (0, 6):
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, str(HERE), "--case", str(t), "--data", str(data), "--threads", str(a.threads),
                   "--steps", str(steps)] + (["--full-epoch"] if not steps else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=env)
            if out.returncode:
                print(out.stderr[-3000:])
                rows.append({"code": label, "transpose": t, "error": (out.stderr.strip().splitlines() or ["?"])[-1]})
                continue
            rows.append({"code": label, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(f"<!-- {json.dumps(rows[-1])} -->", flush=True)
    print("\n| code | --transpose | tokens an epoch | token ids held | set-up s | tokens/s | peak RSS MiB "
          "| of which before data | peak vs --transpose 0 | tokens/s vs --transpose 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['code']} | {r['transpose']} | failed: {r['error']} |||||||")
            continue
        base = next((b for b in rows if b["code"] == r["code"] and b["transpose"] == 0 and "error" not in b), None)
        mem = f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x" if base else ""
        speed = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else ""
        print(f"| {r['code']} | {r['transpose']} | {r['epoch_tokens']:,} | {r['ids_held']:,} | {r['setup_s']:.1f} "
              f"| {r['tokens_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} | {r['rss_before_mib']:,.0f} | {mem} | {speed} |")
    print("\nGoal: peak RSS with --transpose 6 within 20% of --transpose 0's (1.20x).")


if __name__ == "__main__":
    main()
