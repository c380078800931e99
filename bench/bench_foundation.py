"""Figures for the foundation: extraction, training throughput, generation speed, model vs n-gram.

Run:  .venv/bin/python bench/bench_foundation.py [--data DIR (default: the shared nocturnes)] [--max-epochs 60]

Prints Markdown tables; never asserts on time. Every speed is also given as a
ratio against a baseline measured in the same run, which survives a noisy
shared machine better than an absolute figure.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

from shared import NOCTURNES, ROOT, require

import torch

from pipeline.measures.baseline import NGramModel
from dataclasses import asdict

from pipeline.store.dataset import load_dataset
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.generate import sample_refeed
from pipeline.models.network import resolve_device
from pipeline.store.rundir import TrainConfig, load_checkpoint
from pipeline.models.network import model_from_checkpoint
from pipeline.models.feeding import make_windows
from pipeline.stages.train import train


def bench_extract(data: Path, work: Path) -> dict:
    files = sorted(data.glob("*.mid"))
    t = time.perf_counter()
    extract([data], ExtractConfig(name="x-parallel", out=str(work)))
    ours = time.perf_counter() - t
    t = time.perf_counter()
    extract([data], ExtractConfig(name="x-serial", out=str(work), workers=1))
    serial = time.perf_counter() - t
    t = time.perf_counter()
    extract([data], ExtractConfig(name="x-parallel", out=str(work)))
    cached = time.perf_counter() - t
    from music21 import converter
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            converter.parse(str(f), forceSource=True, storePickle=False)  # cold: no pickle cache
    m21 = time.perf_counter() - t
    return {"files": len(files), "ours_parallel_s": ours, "ours_serial_s": serial, "rerun_unchanged_s": cached,
            "music21_s": m21, "speedup_vs_music21": m21 / ours}


def train_run(cfg: TrainConfig, run: Path) -> dict:
    s = asdict(train(cfg, run))
    meta = json.loads((run / "config.json").read_text())
    s["windows_per_epoch"] = meta["train_windows"]
    return s


def bench_train(ds_dir: Path, work: Path, max_epochs: int, threads: int) -> dict:
    base = dict(dataset=str(ds_dir), cell="gru", layers=4, hidden=128, threads=threads, seed=0,
                epochs=max_epochs, patience=5)
    default = TrainConfig(**base)
    t = time.perf_counter()
    d = train_run(default, work / "default")
    d["wall_s"] = time.perf_counter() - t
    # Equal wall-clock budget for the study's set-up: every window, loss on its last token only.
    study = TrainConfig(**{**base, "stride": 1, "targets": "last", "max_minutes": d["wall_s"] / 60})
    t = time.perf_counter()
    s = train_run(study, work / "stride1")
    s["wall_s"] = time.perf_counter() - t
    for r in (d, s):
        metrics = __import__("pandas").read_csv(Path(r["run"]) / "metrics.csv")
        # validation is the same stride-1 pass in both; time it once to isolate training throughput
        r["val_pass_s"] = _time_validation(Path(r["run"]))
        train_s = metrics["seconds"].mean() - r["val_pass_s"]
        r["train_windows_per_s"] = r["windows_per_epoch"] / train_s
    return {"default": d, "stride1": s}


def _time_validation(run: Path) -> float:
    from pipeline.models.trainer import Trainer
    ckpt = load_checkpoint(run, "best")
    cfg = TrainConfig.from_dict(ckpt.train_config)
    ds = load_dataset(cfg.dataset, cfg.encoding)
    tr = Trainer(cfg, ds, model_from_checkpoint(ckpt), resolve_device("cpu"))
    t = time.perf_counter()
    tr.evaluate()
    return time.perf_counter() - t


def bench_generate(run: Path, count: int = 10, length: int = 1000) -> dict:
    ckpt = load_checkpoint(run, "best")
    model = model_from_checkpoint(ckpt)
    window = ckpt.train_config["window"]
    primer = torch.zeros(count, window, dtype=torch.long)
    out = {}
    for name, fn in (("stateful", lambda g: model.generate(primer, length, 1.0, g)),
                     ("refeed_window", lambda g: sample_refeed(model, primer, length, 1.0, g, window))):
        t = time.perf_counter()
        fn(torch.Generator().manual_seed(0))
        dt = time.perf_counter() - t
        out[name] = {"seconds": dt, "tokens_per_s": count * length / dt}
    out["speedup"] = out["stateful"]["tokens_per_s"] / out["refeed_window"]["tokens_per_s"]
    return out


def bench_pitch(ds_dir: Path, work: Path, max_epochs: int, threads: int) -> dict:
    """GRU 4x128 over the 128 pitch classes, plain and with transposition augmentation."""
    base = dict(dataset=str(ds_dir), encoding="pitch", cell="gru", layers=4, hidden=128, threads=threads,
                seed=0, epochs=max_epochs, patience=5)
    return {"default": train_run(TrainConfig(**base), work / "pitch"),
            "transpose6": train_run(TrainConfig(**base, transpose=6), work / "pitch-t6")}


def bench_baselines(ds_dir: Path, window: int, encoding: str = "names") -> dict:
    ds = load_dataset(ds_dir, encoding)
    train_seqs = ds.piece_arrays("train")
    vx, vy = make_windows(ds.piece_arrays("validation"), window, 1).arrays()
    res = {}
    for order in (1, 2, 3, 4):
        m = NGramModel(order, len(ds.vocab)).fit(train_seqs)
        res[f"{order}-gram"] = m.evaluate(vx, vy[:, -1])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=NOCTURNES)
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default (all cores)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "foundation.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# foundation benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ex = bench_extract(require(args.data), work / "processed")
        print("## extraction of", ex["files"], "nocturnes\n")
        print("| method | seconds | ratio |\n|---|---|---|")
        print(f"| `music21.converter.parse` (the study) | {ex['music21_s']:.2f} | 1.0 |")
        print(f"| `extract`, 1 worker | {ex['ours_serial_s']:.2f} | {ex['music21_s'] / ex['ours_serial_s']:.1f}x faster |")
        print(f"| `extract`, parallel | {ex['ours_parallel_s']:.2f} | {ex['speedup_vs_music21']:.1f}x faster |")
        print(f"| `extract` re-run, files unchanged | {ex['rerun_unchanged_s']:.2f} | "
              f"{ex['music21_s'] / ex['rerun_unchanged_s']:.1f}x faster |\n")

        ds_dir = work / "processed" / "x-parallel"
        tr = bench_train(ds_dir, work / "runs", args.max_epochs, args.threads)
        print("## training GRU 4x128, names encoding, window 30\n")
        print("| set-up | windows/epoch | train windows/s | s/epoch | epochs | wall s | best val loss | best val acc |")
        print("|---|---|---|---|---|---|---|---|")
        for key, label in (("stride1", "stride 1, loss on last token (the study)"),
                           ("default", f"stride {TrainConfig().stride}, loss at every position (default)")):
            r = tr[key]
            print(f"| {label} | {r['windows_per_epoch']:,} | {r['train_windows_per_s']:,.0f} | "
                  f"{r['seconds_per_epoch']:.1f} | {r['epochs']} | {r['wall_s']:.0f} | {r['val_loss']:.3f} | "
                  f"{r['val_acc']:.3f} |")
        print("\n(the study's set-up gets the same wall-clock budget the default needed to early-stop)\n")

        gen = bench_generate(Path(tr["default"]["run"]))
        print("## generation, 10 samples x 1,000 tokens, GRU 4x128\n")
        print("| method | seconds | tokens/s |\n|---|---|---|")
        print(f"| re-feed a 30-token window per token | {gen['refeed_window']['seconds']:.2f} | "
              f"{gen['refeed_window']['tokens_per_s']:,.0f} |")
        print(f"| carry the recurrent state (ours) | {gen['stateful']['seconds']:.2f} | "
              f"{gen['stateful']['tokens_per_s']:,.0f} ({gen['speedup']:.1f}x) |\n")

        base = bench_baselines(ds_dir, 30)
        pbase = bench_baselines(ds_dir, 30, "pitch")
        pitch = bench_pitch(ds_dir, work / "runs", args.max_epochs, args.threads)
        split = json.loads((ds_dir / "split.json").read_text())
        print(f"## held-out nocturne ({', '.join(split['validation'])}): next token after each 30-token window\n")
        print("| encoding | model | val loss (nats) | val acc |\n|---|---|---|---|")
        for k, v in base.items():
            print(f"| names | {k} (Witten-Bell) | {v['loss']:.3f} | {v['acc']:.3f} |")
        for key, label in (("default", "GRU 4x128, default"), ("stride1", "GRU 4x128, stride 1 / last token")):
            print(f"| names | {label} | {tr[key]['val_loss']:.3f} | {tr[key]['val_acc']:.3f} |")
        for k, v in pbase.items():
            print(f"| pitch | {k} (Witten-Bell) | {v['loss']:.3f} | {v['acc']:.3f} |")
        for key, label in (("default", "GRU 4x128, default"), ("transpose6", "GRU 4x128, --transpose 6")):
            print(f"| pitch | {label} | {pitch[key]['val_loss']:.3f} | {pitch[key]['val_acc']:.3f} |")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"extract": ex, "train": tr, "generate": gen, "baselines": base,
                                        "pitch_baselines": pbase, "pitch": pitch},
                                        indent=2, default=float))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
