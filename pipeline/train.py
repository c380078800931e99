"""Stage 2: train one model on a processed dataset into ``runs/<name>/``.

The run folder (its files are owned by :mod:`pipeline.rundir`) describes itself:
``config.json``, ``metrics.csv``, ``status.json``, ``last.pt``/``best.pt`` (each
carrying model arguments and vocabulary, as nanoGPT's do), ``curves.png``.

Windows are never materialised: the training pieces are one token array, and a
window is a start offset into it, so memory grows with the corpus, not with
``window / stride``; a transposed piece is the stored one read through an id map
(:class:`Transpositions`), so ``--transpose`` adds one small index per window,
not a copy of the corpus per key (see ``bench/bench_train_scale.py``).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .dataset import Dataset, latest_dataset, load_dataset
from .encodings import Vocabulary
from .errors import ConfigError, DatasetError, RunError
from .model import ModelConfig, SequenceModel, resolve_device
from .rundir import (Checkpoint, TrainConfig, best_row, load_checkpoint, read_run_config, read_status,
                     run_name, save_checkpoint, write_run_header)

_DEFAULT_THREADS = torch.get_num_threads()  # what threads=0 restores, whatever ran before
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
# options that may differ when resuming: how the run executes, or how long it may go on
EXECUTION = ("threads", "device")
RESUMABLE_CHANGES = (*EXECUTION, "epochs", "max_minutes", "patience")


def model_config(config: TrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, cell=config.cell, layers=config.layers, hidden=config.hidden,
                       embed=config.embed, dropout=config.dropout, task=config.task)


# --------------------------------------------------------------------------- data

@dataclass
class Transpositions:
    """Every training piece in other keys, as id maps over the stored tokens (never copied per key).

    vocab : the dataset's vocabulary plus every token the shifts create, appended in
        order of first appearance (pieces in split order, shifts -N..+N), so existing
        ids keep their meaning.
    key_map : int64 (2 * max_shift + 1, len(dataset vocabulary)); row ``max_shift + k``
        holds the id of each token moved by ``k`` semitones, -1 where a pitch would
        leave 0..127 (or the token does not occur in that key).
    views : ``(piece, row)`` per training sequence: index into the dataset's training
        pieces and the ``key_map`` row they are read through; every piece as stored
        first, then each piece in each key its pitches allow.
    names : ``piece`` or ``piece@+k`` per view.
    """

    vocab: Vocabulary
    key_map: np.ndarray
    views: list[tuple[int, int]]
    names: list[str]

    def arrays(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        """Each view as its own id array (copies; for code that needs whole transposed pieces)."""
        return [self.key_map[row][pieces[i]] for i, row in self.views]


def transpositions(ds: Dataset, max_shift: int) -> Transpositions:
    """Every training piece also shifted by -max_shift..+max_shift semitones (``--transpose``).

    Small corpora rarely cover every key; a held-out piece in a new key is otherwise
    full of unseen tokens. Validation pieces are never transposed. A shift is done
    once per vocabulary token (:func:`pipeline.encodings.transpose_tokens`), not per
    token of the corpus, and a piece in another key is a row of ``key_map`` to read
    its stored ids through, so memory does not grow with the number of keys.
    """
    from .encodings import transpose_tokens
    if ds.tail_fraction:
        raise ConfigError("--transpose needs a dataset of at least two pieces")
    base, n_keys = ds.vocab.tokens, 2 * max_shift + 1
    # the token each vocabulary entry becomes in each key (None: leaves the piano's range)
    moved = [[None if k == 0 else transpose_tokens([t], ds.encoding, k) for t in base]
             for k in range(-max_shift, max_shift + 1)]
    possible = np.array([[m is not None for m in row] for row in moved])
    possible[max_shift] = True
    tokens, index = list(base), dict(ds.vocab.index)
    key_map = np.full((n_keys, len(base)), -1, np.int64)
    key_map[max_shift] = np.arange(len(base))
    arrays, names = ds.piece_arrays("train"), ds.pieces("train")
    views, view_names, shifted = [(i, max_shift) for i in range(len(arrays))], list(names), []
    for i, (piece, arr) in enumerate(zip(names, arrays)):
        ids, first = np.unique(arr, return_index=True)
        ids = ids[np.argsort(first)]  # in order of first appearance: new tokens are numbered as met
        for row in range(n_keys):
            if row == max_shift or not possible[row, ids].all():
                continue
            for t in ids[key_map[row, ids] < 0]:
                (token,) = moved[row][t]
                if token not in index:
                    index[token] = len(tokens)
                    tokens.append(token)
                key_map[row, t] = index[token]
            shifted.append((i, row))
            view_names.append(f"{piece}@{row - max_shift:+d}")
    return Transpositions(Vocabulary(tokens), key_map, views + shifted, view_names)


@dataclass
class Windows:
    """Windows as offsets into one token array, optionally read in another key.

    tokens : int64 (n_tokens,), every piece one after another.
    starts : int64 (n_windows,), where each window begins; window ``i`` is
        ``tokens[starts[i]:starts[i] + window]`` and its targets are the same
        positions shifted by one. Windows never cross a piece boundary.
    keys, key_map : with ``--transpose``, int8 (n_windows,) and int64 (n_keys, vocab):
        window ``i`` reads its ids through ``key_map[keys[i]]`` (see :class:`Transpositions`).
    """

    tokens: torch.Tensor
    starts: torch.Tensor
    window: int
    keys: torch.Tensor | None = None
    key_map: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # inputs and targets are one gather of window + 1 tokens, split in two views
        self.span = torch.arange(self.window + 1, device=self.tokens.device)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of windows ``idx``, each int64 (len(idx), window)."""
        ids = self.tokens[self.starts[idx][:, None] + self.span]
        if self.key_map is not None:
            ids = self.key_map[self.keys[idx].long()[:, None], ids]
        return ids[:, :-1], ids[:, 1:]

    def to(self, device: torch.device) -> "Windows":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Windows(move(self.tokens), move(self.starts), self.window, move(self.keys), move(self.key_map))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window materialised: inputs and targets, int64 (n_windows, window) each (small data only)."""
        x, y = self.batch(torch.arange(len(self)))
        return x.cpu().numpy(), y.cpu().numpy()


def make_windows(arrays: list[np.ndarray], window: int, stride: int,
                 keys: Transpositions | None = None) -> Windows:
    """Index the windows of ``window`` tokens (plus the next one) of each piece, every ``stride`` tokens.

    Pieces shorter than ``window + 1`` tokens give no window. With ``keys``, the
    pieces are ``keys.views`` (each stored piece read in each of its keys), and the
    token array still holds each stored piece once.
    """
    views = keys.views if keys is not None else [(i, 0) for i in range(len(arrays))]
    offsets = np.cumsum([0] + [len(a) for a in arrays])
    counts = [len(range(0, max(len(arrays[i]) - window, 0), stride)) for i, _ in views]
    starts = np.empty(sum(counts), np.int64)  # filled in place: no second copy of a large index
    rows = np.empty(len(starts), np.int8) if keys is not None else None
    at = 0
    for (i, row), n in zip(views, counts):
        starts[at:at + n] = offsets[i] + np.arange(0, n * stride, stride)
        if rows is not None:
            rows[at:at + n] = row
        at += n
    tokens = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    if keys is None:
        return Windows(torch.from_numpy(tokens), torch.from_numpy(starts), window)
    return Windows(torch.from_numpy(tokens), torch.from_numpy(starts), window, torch.from_numpy(rows),
                   torch.from_numpy(keys.key_map))


# ----------------------------------------------------------------------- training

class Trainer:
    """Runs epochs over windows; the model owns the loss, the trainer the loop."""

    def __init__(self, config: TrainConfig, ds: Dataset, model: SequenceModel, device: torch.device,
                 keys: Transpositions | None = None):
        self.c, self.model, self.device = config, model, device
        self.opt = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.lr)
        self.train = make_windows(ds.piece_arrays("train"), config.window, config.stride, keys).to(device)
        self.val = make_windows(ds.piece_arrays("validation"), config.window, 1).to(device)
        if len(self.train) == 0:
            raise ConfigError(f"no training window: every training piece is shorter than --window {config.window} + 1")
        if len(self.val) == 0:
            raise ConfigError(f"no validation window: validation pieces are shorter than --window {config.window} + 1 "
                              "tokens; lower --window or extract with another --split-seed")

    def _totals(self) -> dict[str, torch.Tensor]:
        z = lambda: torch.zeros((), device=self.device, dtype=torch.float64)  # noqa: E731
        return {"loss": z(), "n": z(), "correct": z(), "abs_err": z()}

    def train_epoch(self, epoch: int, max_batches: int | None = None) -> dict:
        """One pass over the training windows in a seeded order (``max_batches``: stop early; benchmarks)."""
        self.model.train()
        g = torch.Generator().manual_seed(self.c.seed * 100_003 + epoch)  # same order after a resume
        order = torch.randperm(len(self.train), generator=g).to(self.device)
        tot = self._totals()
        end = len(order) if max_batches is None else min(len(order), max_batches * self.c.batch)
        for i in range(0, end, self.c.batch):
            x, y = self.train.batch(order[i:i + self.c.batch])
            out, _ = self.model(x)
            if self.c.targets == "last":
                out, y = out[:, -1:], y[:, -1:]
            loss, st = self.model.loss(out, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.c.clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.c.clip)
            self.opt.step()
            self._add(tot, loss.detach(), st)  # summed on the device: no per-batch synchronisation
        return self._summarise(tot, "train")

    @torch.no_grad()
    def evaluate(self, batch: int = 512) -> dict:
        """Validation: the next token after every window of ``window`` tokens (stride 1)."""
        self.model.eval()
        tot = self._totals()
        for i in range(0, len(self.val), batch):
            x, y = self.val.batch(torch.arange(i, min(i + batch, len(self.val)), device=self.device))
            out, _ = self.model(x)
            loss, st = self.model.loss(out[:, -1:], y[:, -1:])
            self._add(tot, loss, st)
        return self._summarise(tot, "val")

    @staticmethod
    def _add(tot: dict, loss: torch.Tensor, st: dict) -> None:
        tot["loss"] += loss * st["n"]
        for k, v in st.items():
            tot[k] += v

    def _summarise(self, tot: dict, prefix: str) -> dict:
        t = {k: float(v) for k, v in tot.items()}
        n = max(t["n"], 1)
        row = {f"{prefix}_loss": t["loss"] / n, f"{prefix}_acc": t["correct"] / n}
        if self.c.task == "regress":
            row[f"{prefix}_mae"] = t["abs_err"] / n
        return row


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    from .figures import atomic_write_figure, new_figure

    fig = new_figure((10, 3.6))
    a, b = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for ax, kind in ((a, "loss"), (b, "acc")):
        for side, style in (("train", "-"), ("val", "--")):
            ax.plot(epochs, [r[f"{side}_{kind}"] for r in rows], style, label=f"{side} {kind}")
        ax.set(xlabel="epoch", ylabel="loss" if kind == "loss" else "accuracy",
               title="loss" if kind == "loss" else "accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write_figure(path, fig)


def _device_rng(dev: torch.device, saved: dict | None = None) -> dict | None:
    """``{"device", "state"}`` of an accelerator's generator (dropout masks there come from it);
    with ``saved`` from a run on the same kind of device, restore it first. None on the CPU."""
    if dev.type == "cuda":
        if saved and saved.get("device") == "cuda":
            torch.cuda.set_rng_state(saved["state"], dev)
        return {"device": "cuda", "state": torch.cuda.get_rng_state(dev)}
    if dev.type == "mps":
        if saved and saved.get("device") == "mps":
            torch.mps.set_rng_state(saved["state"])
        return {"device": "mps", "state": torch.mps.get_rng_state()}
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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

    @classmethod
    def from_rows(cls, run_dir: Path, rows: list[dict], parameters: int, stopped: str = "") -> "TrainResult":
        best = best_row(rows)
        return cls(run=str(run_dir), epochs=int(rows[-1]["epoch"]), best_epoch=int(best["epoch"]),
                   val_loss=float(best["val_loss"]), val_acc=float(best["val_acc"]), parameters=parameters,
                   seconds=float(sum(r["seconds"] for r in rows)),
                   seconds_per_epoch=float(np.mean([r["seconds"] for r in rows])),
                   val_mae=float(best["val_mae"]) if "val_mae" in best else None, stopped=stopped)


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
    ckpt: Checkpoint | None = None
    has_epochs = (run_dir / "last.pt").exists()
    if resume and has_epochs:
        ckpt = load_checkpoint(run_dir, "last")
        saved = TrainConfig.from_dict(ckpt.train_config)
        limits = {k: v for k, v in (limits or {}).items() if k != "epochs" or v > saved.epochs}
        if ckpt.finished and "epochs" not in limits:
            return TrainResult.from_rows(run_dir, ckpt.metrics, sum(t.numel() for t in ckpt.model.values()))
        config = replace(saved, **{k: getattr(config, k) for k in EXECUTION}, **limits)
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
    torch.set_num_threads(config.threads or _DEFAULT_THREADS)
    dev = resolve_device(config.device)
    ds = load_dataset(config.dataset, config.encoding)
    fingerprint = ds.fingerprint()
    if ckpt is not None and ckpt.data_fingerprint and ckpt.data_fingerprint != fingerprint:
        raise DatasetError(f"cannot resume {run_dir.name}: the dataset {config.dataset} changed since the run began "
                           f"({', '.join(_data_changes(ckpt.data_fingerprint, fingerprint))} differ); "
                           "train a new run with another --name")
    keys = transpositions(ds, config.transpose) if config.transpose else None
    if keys is not None:
        ds = replace(ds, vocab=keys.vocab)  # the stored pieces keep their ids; new keys' tokens are appended
    _seed_everything(config.seed)
    model = SequenceModel(model_config(config, len(ds.vocab)))
    model.set_vocabulary(ds.vocab.tokens)
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
    model.to(dev)
    trainer = Trainer(config, ds, model, dev, keys)
    rows: list[dict] = []
    best, bad, start_epoch = math.inf, 0, 1
    if ckpt is not None:
        trainer.opt.load_state_dict(ckpt.optimizer)
        torch.set_rng_state(ckpt.torch_rng)
        _device_rng(dev, ckpt.device_rng)
        rows, best, bad, start_epoch = ckpt.metrics, ckpt.best_val, ckpt.bad_epochs, ckpt.epoch + 1
    else:
        # rendering needs the corpus rhythms and generation the held-out openings: keep both
        write_run_header(run_dir, config, extra={
            "model": model.to_dict(), "parameters": model.n_parameters(), "train_windows": len(trainer.train),
            "val_windows": len(trainer.val), "vocab_size": len(ds.vocab), "data_fingerprint": fingerprint},
            timing=ds.timing, primers=ds.validation_openings(200))

    stopped = ""
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            row = {"epoch": epoch, **trainer.train_epoch(epoch), **trainer.evaluate()}
            row["seconds"] = round(time.perf_counter() - t0, 3)
            if not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])):
                stopped, diverged_at = "diverged", epoch
                break  # keep the checkpoints of the last finite epoch
            rows.append(row)
            improved = row["val_loss"] < best
            best, bad = (row["val_loss"], 0) if improved else (best, bad + 1)
            out_of_time = config.max_minutes > 0 and sum(r["seconds"] for r in rows) >= 60 * config.max_minutes
            stopped = "patience" if bad >= config.patience else "budget" if out_of_time else ""
            finished = bool(stopped) or epoch == config.epochs
            save_checkpoint(run_dir, Checkpoint(
                model={k: v.cpu() for k, v in model.state_dict().items()}, model_args=model.to_dict(),
                train_config=config.to_dict(), vocab=ds.vocab.to_json(), encoding=config.encoding,
                task=config.task, epoch=epoch, best_val=best, bad_epochs=bad, metrics=rows, finished=finished,
                optimizer=trainer.opt.state_dict(), torch_rng=torch.get_rng_state(), device_rng=_device_rng(dev),
                data_fingerprint=fingerprint), best=improved)
            if on_epoch:
                on_epoch(row)
            if finished:
                break
    finally:
        if rows:
            plot_curves(rows, run_dir / "curves.png",
                        f"{config.cell.upper()} {config.layers}x{config.hidden} · {config.encoding} · {config.task}")
    if stopped == "diverged":
        where = f"; best.pt keeps epoch {best_row(rows)['epoch']}" if rows else ""
        raise RunError(f"training diverged at epoch {diverged_at} (the loss is not a finite number){where}; "
                       "lower --lr")
    return TrainResult.from_rows(run_dir, rows, model.n_parameters(), stopped)


# ----------------------------------------------------------------------- the command

def resolve_dataset(dataset: str | None, root: str | Path = "processed") -> tuple[str, bool]:
    """The dataset given, or the most recently extracted one under ``root`` (and whether it was picked)."""
    if dataset:
        return str(dataset), False
    latest = latest_dataset(root)
    if latest is None:
        raise DatasetError(f"no processed dataset under {root}/; run `extract` first (e.g. cli.py extract raw_midi/)")
    return str(latest), True


def train_command(config: TrainConfig, *, runs: str | Path = "runs", name: str | None = None,
                  resume: bool = False, given: set[str] = frozenset(),
                  on_start: Callable[[str], None] = lambda s: None,
                  on_epoch: Callable[[dict], None] | None = None, limits: dict | None = None) -> TrainResult:
    """What ``cli.py train`` does: pick the dataset and run name, check a resume, train.

    ``given`` names the options the user typed; on ``--resume`` any of them that
    would change the model or data is refused (the run's own config wins).
    """
    resolve_device(config.device)  # an absent --device is the one line, before anything is announced
    run_dir = Path(runs) / name if name else None
    if resume and run_dir is None:
        raise ConfigError("--resume needs --name: the run folder to continue")
    if resume and not (run_dir / "config.json").exists() and "dataset" not in given:
        raise RunError(f"cannot resume: {run_dir} is not a run folder (start it without --resume, or give --data)")
    if resume and (run_dir / "config.json").exists():
        saved = TrainConfig.from_dict(read_run_config(run_dir))
        changed = sorted(k for k in given - {"dataset", *RESUMABLE_CHANGES}
                         if getattr(config, k) != getattr(saved, k))
        if changed:
            raise ConfigError(f"--resume continues {run_dir} with its own options; these differ from it: "
                              f"{', '.join('--' + k.replace('_', '-') for k in changed)} (start a new run instead)")
        if "epochs" in given and config.epochs < saved.epochs:
            raise ConfigError(f"--epochs {config.epochs} is fewer than the run's {saved.epochs}; --resume may only extend a run")
        status = read_status(run_dir)
        on_start(f"resuming {run_dir} at epoch {status.epoch + 1 if status else 1}")
        limits = {k: getattr(config, k) for k in ("epochs", "max_minutes", "patience") if k in given}
        return train(config, run_dir, resume=True, on_epoch=on_epoch, limits=limits)
    dataset, picked = resolve_dataset(config.dataset if "dataset" in given else None)
    config = replace(config, dataset=dataset)
    config.validate()
    run_dir = run_dir or Path(runs) / run_name(config, dataset_prefix=True)
    on_start(f"training {run_dir} on {'the latest dataset, ' if picked else ''}{dataset}")
    return train(config, run_dir, resume=False, on_epoch=on_epoch)
