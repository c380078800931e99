"""Trainer overhead: ``Trainer.train_epoch`` against a bare torch loop over the same batches.

The bare loop is what any training script does and nothing more: the same model
(an identical copy), the same ``Windows`` batches in the same order, the same
optimizer, cross-entropy, ``backward``, gradient clipping (the run's ``--clip``)
and ``step`` — no accuracy, no running sums, no bookkeeping. The Trainer adds its
statistics (summed on the device, read once an epoch). Epochs alternate between
the two and the best of each is reported, in this process's CPU time
(``time.process_time``, one torch thread), which other work on a shared machine
disturbs far less than wall-clock time.

Two models on the five shared nocturnes (``names`` encoding, window 30, stride 5,
batch 64): the README's GRU 4x128, and a GRU 1x32 whose small steps make any
per-batch overhead show. Usage::

    PYTHONPATH=$PWD python bench/bench_trainer.py --threads 1

``--corpus nottingham``: the ``frames`` encoding on the Nottingham benchmark with the shipped frames
defaults in truncated-BPTT mode (the way ``train`` runs it): ``Trainer.train_epoch`` (chunks gathered
from the stored pieces as it goes, state reset where a tune begins, token statistics) against a bare
loop over the same epoch's tokens built beforehand as two tensors, carrying the state from chunk to
chunk with ``model(x, state)`` and nothing else. ``--steps`` optimizer steps each, tokens per CPU second.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

from shared import NOCTURNES, ROOT, require
from pipeline.store.dataset import is_dataset, load_dataset
from pipeline.models.network import SequenceModel, resolve_device
from pipeline.store.rundir import TrainConfig
from pipeline.models.trainer import OPTIMIZERS, Trainer, model_config



def bare_epoch(model: SequenceModel, opt: torch.optim.Optimizer, trainer: Trainer, epoch: int) -> None:
    """One epoch over the Trainer's windows, in the Trainer's order, with nothing but the optimisation."""
    c = trainer.c
    model.train()
    order = torch.randperm(len(trainer.train), generator=torch.Generator().manual_seed(c.seed * 100_003 + epoch))
    order = order.to(trainer.device)
    for i in range(0, len(order), c.batch):
        x, y = trainer.train.batch(order[i:i + c.batch])
        out, _ = model(x)
        loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip:
            nn.utils.clip_grad_norm_(model.parameters(), c.clip)
        opt.step()


def compare(data: Path, layers: int, hidden: int, epochs: int, threads: int, device: str = "cpu") -> dict:
    config = TrainConfig(dataset=str(data), cell="gru", layers=layers, hidden=hidden, threads=threads, seed=0,
                         mode="windows", transpose=0)  # the study's windows: the same batches for both loops
    ds = load_dataset(data, config.encoding)
    torch.manual_seed(0)
    dev = resolve_device(device)
    model = SequenceModel(model_config(config, len(ds.vocab))).to(dev)
    twin = copy.deepcopy(model)
    trainer = Trainer(config, ds, model, dev)
    # CPU seconds on the CPU (other jobs on a shared machine do not count); the wall clock on a GPU
    clock = time.process_time if dev.type == "cpu" else time.perf_counter

    def timed(fn, *args) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = clock()
        fn(*args)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return clock() - t0

    opt = OPTIMIZERS[config.optimizer](twin.parameters(), lr=config.lr)
    bare_epoch(twin, opt, trainer, 0)  # warm-up, both
    trainer.train_epoch(0)
    times = {"bare": [], "trainer": []}
    for e in range(1, epochs + 1):
        times["bare"].append(timed(bare_epoch, twin, opt, trainer, e))
        times["trainer"].append(timed(trainer.train_epoch, e))
    n = len(trainer.train)
    rate = {k: n / min(v) for k, v in times.items()}
    return {"model": f"GRU {layers}x{hidden}", "windows": n, **{f"{k}_windows_per_s": v for k, v in rate.items()},
            "ratio": rate["trainer"] / rate["bare"]}


def bare_tbptt(model: SequenceModel, opt: torch.optim.Optimizer, xs: torch.Tensor, ys: torch.Tensor, window: int,
               clip: float, steps: int) -> None:
    """``steps`` chunks of a pre-built epoch (xs, ys: int64 (batch, length)), the state carried and detached."""
    model.train()
    state = None
    for k in range(steps):
        t = k * window
        out, state = model(xs[:, t:t + window], state)
        loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), ys[:, t:t + window].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        state = state.detach() if isinstance(state, torch.Tensor) else tuple(h.detach() for h in state)


def compare_tbptt(data: Path, steps: int, repeats: int, threads: int) -> dict:
    from pipeline.store.rundir import with_encoding_defaults

    config = with_encoding_defaults(TrainConfig(dataset=str(data), encoding="frames", cell="gru", threads=threads,
                                                seed=0, transpose=0), {"dataset", "encoding", "cell", "threads",
                                                                       "seed", "transpose"})
    ds = load_dataset(data, "frames")
    torch.manual_seed(0)
    model = SequenceModel(model_config(config, len(ds.vocab)))
    twin = copy.deepcopy(model)
    trainer = Trainer(config, ds, model, torch.device("cpu"))
    plan = trainer.train.plan(torch.Generator().manual_seed(0))
    n = min(steps, plan.length // config.window)
    xs, ys, _ = plan.columns(0, n * config.window)  # the bare loop's epoch, built before the clock starts
    opt = OPTIMIZERS[config.optimizer](twin.parameters(), lr=config.lr)
    bare_tbptt(twin, opt, xs, ys, config.window, config.clip, 2)  # warm-up, both
    trainer.train_epoch(0, max_steps=2)
    times = {"bare": [], "trainer": []}
    for e in range(1, repeats + 1):
        t0 = time.process_time()
        bare_tbptt(twin, opt, xs, ys, config.window, config.clip, n)
        times["bare"].append(time.process_time() - t0)
        t0 = time.process_time()
        trainer.train_epoch(e, max_steps=n)
        times["trainer"].append(time.process_time() - t0)
    tokens = n * config.batch * config.window
    rate = {k: tokens / min(v) for k, v in times.items()}
    return {"model": f"GRU {config.layers}x{config.hidden}", "tokens": tokens, "bare": rate["bare"],
            "trainer": rate["trainer"], "ratio": rate["trainer"] / rate["bare"], "config": config}


def main_nottingham(a) -> None:
    from shared import POLYPHONIC
    from pipeline.stages.extract import ExtractConfig, extract

    work = Path(a.work)
    data = work / "nottingham"
    if not is_dataset(data):
        extract([require(POLYPHONIC) / "nottingham.mat"], ExtractConfig(name="nottingham", out=str(work), workers=1))
    r = compare_tbptt(data, a.steps, a.epochs, a.threads)
    c = r["config"]
    print(f"Nottingham, frames, truncated BPTT: batch {c.batch} x window {c.window}, {c.optimizer}, clip {c.clip}, "
          f"embed {c.embed}, dropout {c.dropout}; {a.threads} thread(s); {a.steps} steps, best of {a.epochs} "
          "alternating runs, per CPU second\n")
    print("| model | tokens timed | bare loop tokens/s | Trainer tokens/s | Trainer / bare |\n|---|---|---|---|---|")
    print(f"| {r['model']} | {r['tokens']:,} | {r['bare']:,.0f} | {r['trainer']:,.0f} | {r['ratio']:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "trainer"))
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs of each, alternating")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps (timed by the wall clock off the CPU)")
    ap.add_argument("--data", help="an extracted nocturnes dataset to use instead of extracting one under --work")
    ap.add_argument("--corpus", choices=["nocturnes", "nottingham"], default="nocturnes")
    ap.add_argument("--steps", type=int, default=60, help="nottingham: optimizer steps timed per run")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.corpus == "nottingham":
        return main_nottingham(a)
    work = Path(a.work)
    data = Path(a.data) if a.data else work / "nocturnes"
    if not is_dataset(data):
        from pipeline.stages.extract import ExtractConfig, extract
        extract([require(NOCTURNES)], ExtractConfig(name="nocturnes", out=str(work), workers=1))
    rows = [compare(data, layers, hidden, a.epochs, a.threads, a.device) for layers, hidden in ((4, 128), (1, 32))]
    print(f"nocturnes, names encoding, window 30, stride 5, batch 64, Adam, clip 1; {a.threads} thread(s), "
          f"device {resolve_device(a.device)}; best of {a.epochs} alternating epochs, per "
          f"{'CPU' if resolve_device(a.device).type == 'cpu' else 'wall-clock'} second\n")
    print("| model | windows/epoch | bare loop windows/s | Trainer windows/s | Trainer / bare |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['windows']:,} | {r['bare_windows_per_s']:,.0f} | {r['trainer_windows_per_s']:,.0f} "
              f"| {r['ratio']:.1%} |")


if __name__ == "__main__":
    main()
