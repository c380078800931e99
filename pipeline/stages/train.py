"""Stage 2: train one model on a processed dataset into ``runs/<name>/``.

The run folder (its files are owned by :mod:`pipeline.store.rundir`) describes itself:
``config.json``, ``metrics.csv``, ``status.json``, ``last.pt``/``best.pt`` (each
carrying model arguments and vocabulary, as nanoGPT's do), ``curves.png``.

Two ways to train (``--mode``):

``tbptt`` (default)  truncated back-propagation through time, as generation runs
    the model: the training pieces as ``batch`` parallel streams read ``window``
    tokens (a chunk) at a time, the recurrent state carried from chunk to chunk
    and set to zero where a piece (an ABC tune) begins, as generation begins one
    (:class:`Streams`, :func:`forward_resetting`). Every token is a target once an epoch.
``windows``  the nocturne study's set-up: independent windows of ``window`` tokens,
    each from a zero state, every ``stride`` tokens (:class:`Windows`). Windows are
    never materialised: a window is a start offset into one token array, so memory
    grows with the corpus, not with ``window / stride``.

Neither copies the corpus per key for ``--transpose``: a transposed piece is the
stored one read through an id map (:mod:`pipeline.models.augment`), gathered a chunk
(or a batch of windows) at a time, so memory stays near the corpus's own
(``bench/bench_train_scale.py``).

Validation reports two measures on the same targets (every token after the first
30 of a held-out piece): the study's (``val_loss``: each target after a 30-token
window read from a zero state) and the full-context one (``val_full_loss``: the
state carried from the piece's start, as in generation).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.core.choices import EXECUTION_ONLY
from pipeline.core.errors import ConfigError, DatasetError, RunError
from pipeline.core.fsutil import check_replaceable, claim
from pipeline.models.feeding import (training_data)
from pipeline.models.network import SequenceModel, resolve_device
from pipeline.models.trainer import Trainer, model_config, seed_everything
from pipeline.stages.report import curves_title, ensure_run_curves, plot_curves
from pipeline.store.rundir import (MODEL_SHAPE, Checkpoint, TrainConfig, best_row, load_checkpoint, read_run_config,
                                   save_checkpoint, selection_metric, write_run_header)

_DEFAULT_THREADS = torch.get_num_threads()  # what threads=0 restores, whatever ran before
# options that may differ when resuming: how the run executes, or how long it may go on
RESUMABLE_CHANGES = (*EXECUTION_ONLY, "epochs", "max_minutes", "patience")


@dataclass
class TrainResult:
    """What a finished (or stopped) training hands back."""

    run: str
    epochs: int
    best_epoch: int
    val_loss: float
    val_acc: float
    parameters: int
    seconds: float
    seconds_per_epoch: float
    val_mae: float | None = None
    stopped: str = ""   # "", "patience", "budget" or "diverged"
    val_full_loss: float | None = None   # the same targets, the state carried over whole pieces
    val_full_acc: float | None = None
    val_full_mae: float | None = None

    @classmethod
    def from_rows(cls, run_dir: Path, rows: list[dict], parameters: int, stopped: str = "",
                  metric: str = "val_loss") -> "TrainResult":
        """The summary at the best epoch by ``metric`` (:func:`pipeline.store.rundir.selection_metric`)."""
        best = best_row(rows, metric)
        opt = lambda k: float(best[k]) if k in best else None  # noqa: E731  absent from older runs
        return cls(run=str(run_dir), epochs=int(rows[-1]["epoch"]), best_epoch=int(best["epoch"]),
                   val_loss=float(best["val_loss"]), val_acc=float(best["val_acc"]), parameters=parameters,
                   seconds=float(sum(r["seconds"] for r in rows)),
                   seconds_per_epoch=float(np.mean([r["seconds"] for r in rows])),
                   val_mae=opt("val_mae"), stopped=stopped, val_full_loss=opt("val_full_loss"),
                   val_full_acc=opt("val_full_acc"), val_full_mae=opt("val_full_mae"))


def initial_weights(config: TrainConfig, vocab: list[str]) -> dict:
    """The best weights of the run ``config.init_from``, checked against this run's vocabulary and shape."""
    base = load_checkpoint(config.init_from, "best")
    if list(base.vocab) != list(vocab):
        raise ConfigError(f"--init-from {config.init_from}: its vocabulary ({len(base.vocab)} {base.encoding} tokens) "
                          f"is not this run's ({len(vocab)} {config.encoding} tokens); the frames encoding always "
                          "agrees, other encodings only on the same data")
    theirs = TrainConfig.from_dict(base.train_config)
    differ = [k for k in MODEL_SHAPE if getattr(theirs, k) != getattr(config, k)]
    if differ:
        raise ConfigError(f"--init-from {config.init_from} is a different network: "
                          + ", ".join(f"--{k} {getattr(theirs, k)} there, {getattr(config, k)} here" for k in differ))
    return base.model


def _data_changes(saved: dict, now: dict) -> list[str]:
    names = {"sequences": "the pieces' tokens", "vocab": "the vocabulary", "split": "the train/validation split"}
    return [names.get(k, k) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          on_epoch: Callable[[dict], None] | None = None, limits: dict | None = None) -> TrainResult:
    """Train (or resume) one run.

    Parameters
    ----------
    config : options; on resume the run's own config is used, except the
        execution settings (threads, device).
    run_dir : the run folder.
    resume : continue from ``last.pt``. Without it, an existing run folder is
        an error, so earlier results are never overwritten. Resuming refuses a
        dataset whose tokens, vocabulary or split changed since the run began.
    on_epoch : called after each epoch (after its checkpoint is on disk) with the metrics row.
    limits : on resume, new values for ``epochs`` (more only), ``max_minutes`` or ``patience``.
    """
    run_dir = Path(run_dir)
    check_replaceable(run_dir, "run")  # missing, empty or a run of the tool's: never a folder of the user's
    ckpt: Checkpoint | None = None
    has_epochs = (run_dir / "last.pt").exists()
    if resume and has_epochs:
        ckpt = load_checkpoint(run_dir, "last")
        saved = TrainConfig.from_dict(ckpt.train_config)
        limits = {k: v for k, v in (limits or {}).items() if k != "epochs" or v > saved.epochs}
        if ckpt.finished and "epochs" not in limits:
            ensure_run_curves(run_dir)
            return TrainResult.from_rows(run_dir, ckpt.metrics, sum(t.numel() for t in ckpt.model.values()),
                                         metric=selection_metric(saved))
        config = replace(saved, **{k: getattr(config, k) for k in EXECUTION_ONLY}, **limits)
    elif resume and not (run_dir / "config.json").exists():
        raise RunError(f"cannot resume: {run_dir} is not a run folder (start it without --resume)")
    elif resume:
        # killed before its first checkpoint: nothing to lose, start again from its own config
        config = TrainConfig.from_dict({**read_run_config(run_dir), "threads": config.threads,
                                        "device": config.device})
    elif has_epochs or (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} already holds a run; use --resume to continue it or choose another --name")
    config.validate()
    config.dataset = str(Path(config.dataset).resolve())  # the run works from any working directory
    if config.init_from:
        config.init_from = str(Path(config.init_from).resolve())
    torch.set_num_threads(config.threads or _DEFAULT_THREADS)
    dev = resolve_device(config.device)
    ds, pieces, fingerprint = training_data(config)
    if ckpt is not None and ckpt.data_fingerprint and ckpt.data_fingerprint != fingerprint:
        raise DatasetError(f"cannot resume {run_dir.name}: the dataset {config.dataset} changed since the run began "
                           f"({', '.join(_data_changes(ckpt.data_fingerprint, fingerprint))} differ); "
                           "train a new run with another --name")
    metric = selection_metric(config)
    seed_everything(config.seed)
    model = SequenceModel(model_config(config, len(ds.vocab)))
    model.set_vocabulary(ds.vocab.tokens)
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
    elif config.init_from:
        model.load_state_dict(initial_weights(config, ds.vocab.tokens))
    model.to(dev)
    trainer = Trainer(config, ds, model, dev, pieces)
    del pieces  # the trainer holds what it reads
    rows: list[dict] = []
    best, bad, start_epoch = math.inf, 0, 1
    if ckpt is not None:
        trainer.opt.load_state_dict(ckpt.optimizer)
        torch.set_rng_state(ckpt.torch_rng)
        rows, best, bad, start_epoch = ckpt.metrics, ckpt.best_val, ckpt.bad_epochs, ckpt.epoch + 1
    else:
        # rendering needs the corpus rhythms and generation the held-out openings: keep both
        claim(run_dir, "run")
        write_run_header(run_dir, config, extra={
            "model": model.to_dict(), "parameters": model.n_parameters(),
            **({"train_windows": len(trainer.train)} if config.mode == "windows" else
               {"train_tokens": trainer.train.tokens}),
            "train_steps": trainer.steps_per_epoch, "val_windows": trainer.val_windows,
            "val_windows_scored": len(trainer.val), "val_window": trainer.val_window,
            "vocab_size": len(ds.vocab), "selection_metric": metric, "data_fingerprint": fingerprint},
            timing=ds.timing, primers=ds.validation_openings(200))

    stopped = ""
    try:
        budget = 60 * config.max_minutes
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            # a budget is an upper bound: the epoch under way when it runs out stops early, leaving
            # time for its validation (as long as the last one took), and ends the run
            val_s = rows[-1].get("val_seconds", 0.0) if rows else 0.0
            deadline = t0 + budget - sum(r["seconds"] for r in rows) - val_s if budget else None
            row = {"epoch": epoch, **trainer.train_epoch(epoch, deadline)}
            t1 = time.perf_counter()
            row.update(trainer.evaluate())
            row["val_seconds"] = round(time.perf_counter() - t1, 3)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            if not all(math.isfinite(row[k]) for k in ("train_loss", "val_loss", "val_full_loss")):
                stopped, diverged_at = "diverged", epoch
                break  # keep the checkpoints of the last finite epoch
            rows.append(row)
            improved = row[metric] < best
            best, bad = (row[metric], 0) if improved else (best, bad + 1)
            out_of_time = bool(budget) and (trainer.cut_short
                                            or sum(r["seconds"] for r in rows) + row["val_seconds"] >= budget)
            stopped = "patience" if bad >= config.patience else "budget" if out_of_time else ""
            finished = bool(stopped) or epoch == config.epochs
            save_checkpoint(run_dir, Checkpoint(
                model={k: v.cpu() for k, v in model.state_dict().items()}, model_args=model.to_dict(),
                train_config=config.to_dict(), vocab=ds.vocab.to_json(), encoding=config.encoding,
                task=config.task, epoch=epoch, best_val=best, bad_epochs=bad, metrics=rows, finished=finished,
                optimizer=trainer.opt.state_dict(), torch_rng=torch.get_rng_state(),
                data_fingerprint=fingerprint), best=improved)
            if on_epoch:
                on_epoch(row)
            if finished:
                break
    finally:
        if rows:
            plot_curves(rows, run_dir / "curves.png", curves_title(config))
    if stopped == "diverged":
        where = f"; best.pt keeps epoch {best_row(rows, metric)['epoch']}" if rows else ""
        raise RunError(f"training diverged at epoch {diverged_at} (the loss is not a finite number){where}; "
                       "lower --lr")
    return TrainResult.from_rows(run_dir, rows, model.n_parameters(), stopped, metric)


