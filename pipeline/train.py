"""Stage 2: train one model on a processed dataset into ``runs/<name>/``.

The run folder describes itself: ``config.json`` (everything needed to rebuild
the data and the model), ``metrics.csv`` (one row per epoch), ``last.pt`` and
``best.pt`` (each carrying model arguments and vocabulary, as nanoGPT's do),
and ``curves.png``.
"""
from __future__ import annotations

import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, RunError
from .encodings import Vocabulary
from .extract import Dataset, load_dataset
from .figures import atomic_write_figure, new_figure
from .fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from .model import CELLS, PITCH_CENTER, PITCH_SCALE, ModelConfig, SequenceModel

_DEFAULT_THREADS = torch.get_num_threads()  # what threads=0 restores, whatever ran before
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


@dataclass
class TrainConfig:
    """Options of the train stage; saved as ``config.json`` in the run folder."""

    dataset: str = "processed/dataset"
    encoding: str = "names"
    task: str = "classify"
    cell: str = "gru"
    layers: int = 2
    hidden: int = 128
    embed: int = 64
    dropout: float = 0.2
    optimizer: str = "adam"
    lr: float = 0.002
    batch: int = 64
    window: int = 30
    stride: int = 5          # windows start every `stride` tokens; 1 = every window (see README: bench)
    targets: str = "all"     # "all": loss at every position of a window; "last": only its next token
    epochs: int = 30
    patience: int = 5        # early stopping: epochs without a better validation loss
    seed: int = 0
    threads: int = 0         # torch intra-op threads; 0 = torch's default
    clip: float = 1.0        # gradient-norm clipping; 0 = off
    max_minutes: float = 0.0  # stop after the epoch that passes this training time; 0 = no limit
    transpose: int = 0       # augment: also train on every piece shifted by -N..+N semitones

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.task not in ("classify", "regress"):
            raise ConfigError("--task must be classify or regress")
        if self.task == "regress" and self.encoding != "pitch":
            raise ConfigError("--task regress predicts a pitch number: use it with --encoding pitch")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.targets not in ("all", "last"):
            raise ConfigError("--targets must be all or last")
        for name in ("layers", "hidden", "batch", "window", "stride", "epochs", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")
        if self.embed < 0:
            raise ConfigError("--embed must be >= 0 (0 = one-hot input)")
        if not 0 <= self.dropout < 1:
            raise ConfigError("--dropout must be in [0, 1)")
        if self.lr <= 0:
            raise ConfigError("--lr must be positive")
        if not 0 <= self.transpose <= 11:
            raise ConfigError("--transpose must be between 0 and 11 semitones")
        if self.transpose and self.encoding == "chars":
            raise ConfigError("--transpose works on note encodings (names, pitch), not chars")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, cell=self.cell, layers=self.layers, hidden=self.hidden,
                           embed=self.embed, dropout=self.dropout, task=self.task)


# --------------------------------------------------------------------------- data

def piece_arrays(ds: Dataset, side: str) -> list[np.ndarray]:
    """Token ids of each piece on one side of the split, shape (n_tokens,) each.

    A single-piece dataset (``tail_fraction`` > 0) trains on the head of the
    piece and validates on its tail.
    """
    tail = ds.split.get("tail_fraction", 0.0)
    if tail:
        arr = ds.vocab.encode(ds.sequences[ds.split["train"][0]])
        cut = int(len(arr) * (1 - tail))
        return [arr[:cut]] if side == "train" else [arr[cut:]]
    return [ds.vocab.encode(ds.sequences[p]) for p in ds.pieces(side)]


def augment_transpositions(ds: Dataset, max_shift: int) -> Dataset:
    """Add every training piece transposed by -max_shift..+max_shift semitones.

    Small corpora rarely cover every key; a held-out piece in a new key is
    otherwise full of unseen tokens. Validation pieces are never transposed.
    New tokens are appended to the vocabulary, so existing ids keep their meaning.
    """
    from .encodings import transpose_tokens
    if ds.split.get("tail_fraction"):
        raise ConfigError("--transpose needs a dataset of at least two pieces")
    seqs, train, extra = dict(ds.sequences), list(ds.split["train"]), []
    for p in ds.pieces("train"):
        for k in range(-max_shift, max_shift + 1):
            moved = transpose_tokens(ds.sequences[p], ds.encoding, k) if k else None
            if moved is not None:
                seqs[f"{p}@{k:+d}"] = moved
                train.append(f"{p}@{k:+d}")
                extra.extend(t for t in moved if t not in ds.vocab.index)
    vocab = Vocabulary(ds.vocab.tokens + sorted(set(extra), key=extra.index))
    return replace(ds, sequences=seqs, vocab=vocab, split={**ds.split, "train": train})


def make_windows(arrays: list[np.ndarray], window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut sequences into windows and their next-token targets.

    Returns
    -------
    x : int64 (n_windows, window), the inputs.
    y : int64 (n_windows, window), the same windows shifted by one token;
        ``y[:, -1]`` is the token that follows each window.
    Pieces shorter than ``window + 1`` tokens give no window.
    """
    xs, ys = [], []
    for arr in arrays:
        n = len(arr) - window
        if n < 1:
            continue
        starts = np.arange(0, n, stride)
        idx = starts[:, None] + np.arange(window + 1)[None, :]
        w = arr[idx]
        xs.append(w[:, :-1])
        ys.append(w[:, 1:])
    if not xs:
        return np.zeros((0, window), np.int64), np.zeros((0, window), np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def validation_openings(ds: Dataset, n: int) -> dict[str, list[str]]:
    """The first ``n`` tokens of each held-out piece (its tail, for a one-piece dataset)."""
    if ds.split.get("tail_fraction"):
        return {ds.split["train"][0] + ":tail": ds.vocab.decode(piece_arrays(ds, "validation")[0][:n])}
    return {p: ds.sequences[p][:n] for p in ds.pieces("validation")}


def pitch_values(ds: Dataset) -> torch.Tensor:
    """Scaled pitch of each vocabulary entry (regression targets), shape (vocab,)."""
    return torch.tensor([(float(t) - PITCH_CENTER) / PITCH_SCALE for t in ds.vocab.tokens])


# ----------------------------------------------------------------------- training

class Trainer:
    """Runs epochs over windows; knows the task but not the cell type."""

    def __init__(self, config: TrainConfig, ds: Dataset, model: SequenceModel):
        self.c, self.ds, self.model = config, ds, model
        self.opt = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.lr)
        tx, ty = make_windows(piece_arrays(ds, "train"), config.window, config.stride)
        vx, vy = make_windows(piece_arrays(ds, "validation"), config.window, 1)
        if len(tx) == 0:
            raise ConfigError(f"no training window: every training piece is shorter than --window {config.window} + 1")
        if len(vx) == 0:
            raise ConfigError(f"no validation window: validation pieces are shorter than --window {config.window} + 1")
        self.train_x, self.train_y = torch.from_numpy(tx), torch.from_numpy(ty)
        self.val_x, self.val_y = torch.from_numpy(vx), torch.from_numpy(vy)
        self.values = pitch_values(ds) if config.task == "regress" else None

    def loss_and_stats(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Loss (mean over targets) and sums for accuracy / MAE over targets."""
        n = y.numel()
        if self.c.task == "classify":
            loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            correct = (out.argmax(-1) == y).sum().item()
            return loss, {"n": n, "correct": correct}
        target = self.values[y]
        loss = nn.functional.mse_loss(out, target)
        pred = out.detach() * PITCH_SCALE + PITCH_CENTER
        true = target * PITCH_SCALE + PITCH_CENTER
        return loss, {"n": n, "correct": (pred.round() == true.round()).sum().item(),
                      "abs_err": (pred - true).abs().sum().item()}

    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        g = torch.Generator().manual_seed(self.c.seed * 100_003 + epoch)  # same order after a resume
        order = torch.randperm(len(self.train_x), generator=g)
        tot_loss, tot = 0.0, {"n": 0, "correct": 0, "abs_err": 0.0}
        for i in range(0, len(order), self.c.batch):
            idx = order[i:i + self.c.batch]
            x, y = self.train_x[idx], self.train_y[idx]
            out, _ = self.model(x)
            if self.c.targets == "last":
                out, y = out[:, -1:], y[:, -1:]
            loss, st = self.loss_and_stats(out, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.c.clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.c.clip)
            self.opt.step()
            tot_loss += loss.item() * st["n"]
            for k in st:
                tot[k] += st[k]
        return self._summarise(tot_loss, tot, "train")

    @torch.no_grad()
    def evaluate(self, batch: int = 512) -> dict:
        """Validation: the next token after every window of ``window`` tokens (stride 1)."""
        self.model.eval()
        tot_loss, tot = 0.0, {"n": 0, "correct": 0, "abs_err": 0.0}
        for i in range(0, len(self.val_x), batch):
            out, _ = self.model(self.val_x[i:i + batch])
            loss, st = self.loss_and_stats(out[:, -1:], self.val_y[i:i + batch, -1:])
            tot_loss += loss.item() * st["n"]
            for k in st:
                tot[k] += st[k]
        return self._summarise(tot_loss, tot, "val")

    def _summarise(self, tot_loss: float, tot: dict, prefix: str) -> dict:
        n = max(tot["n"], 1)
        row = {f"{prefix}_loss": tot_loss / n, f"{prefix}_acc": tot["correct"] / n}
        if self.c.task == "regress":
            row[f"{prefix}_mae"] = tot["abs_err"] / n
        return row


def _checkpoint_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_checkpoint(run_dir: str | Path, which: str = "best") -> dict:
    """Read ``best.pt`` or ``last.pt`` of a run; RunError with the fix if absent or damaged."""
    path = Path(run_dir) / f"{which}.pt"
    if not path.exists():
        raise RunError(f"{run_dir} has no {which}.pt; is it a run folder written by `train`?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # never runs code from a shared run folder
    except Exception as exc:
        raise RunError(f"{path} is damaged ({type(exc).__name__}); retrain or use the other checkpoint") from None


def model_from_checkpoint(ckpt: dict) -> SequenceModel:
    model = SequenceModel.from_dict(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model


def plot_curves(metrics: pd.DataFrame, path: Path, title: str) -> None:
    fig = new_figure((10, 3.6))
    a, b = fig.subplots(1, 2)
    for col, style in (("train_loss", "-"), ("val_loss", "--")):
        a.plot(metrics["epoch"], metrics[col], style, label=col.replace("_", " "))
    for col, style in (("train_acc", "-"), ("val_acc", "--")):
        b.plot(metrics["epoch"], metrics[col], style, label=col.replace("_", " "))
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write_figure(path, fig)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) one run.

    Parameters
    ----------
    config : options; on resume the run's own ``config.json`` is used instead.
    run_dir : the run folder.
    resume : continue from ``last.pt``. Without it, an existing run folder is
        an error, so earlier results are never overwritten.
    on_epoch : called after each epoch (after its checkpoint is on disk) with
        the metrics row.

    Returns
    -------
    summary : run folder, epochs run, best epoch and its validation metrics,
        parameter count, seconds.
    """
    run_dir = Path(run_dir)
    state = None
    has_epochs = (run_dir / "last.pt").exists()
    if resume and has_epochs:
        state = load_checkpoint(run_dir, "last")
        saved = TrainConfig.from_dict(state["train_config"])
        if state.get("finished"):
            return _summary(run_dir, state["metrics"], sum(t.numel() for t in state["model"].values()))
        saved.threads = config.threads  # an execution setting, not part of the run
        config = saved
    elif resume and not (run_dir / "config.json").exists():
        raise RunError(f"cannot resume: {run_dir} is not a run folder (start it without --resume)")
    elif resume:
        # killed before its first checkpoint: nothing to lose, start again from its own config
        config = TrainConfig.from_dict({**read_run_config(run_dir), "threads": config.threads})
    elif has_epochs:
        raise RunError(f"{run_dir} already holds a run; use --resume to continue it or choose another --name")
    config.validate()
    # an absolute dataset path keeps the run usable from any working directory
    config.dataset = str(Path(config.dataset).resolve())
    torch.set_num_threads(config.threads or _DEFAULT_THREADS)
    ds = load_dataset(config.dataset, config.encoding)
    if config.transpose:
        ds = augment_transpositions(ds, config.transpose)
    _seed_everything(config.seed)
    model = SequenceModel(config.model_config(len(ds.vocab)))
    trainer = Trainer(config, ds, model)
    rows: list[dict] = []
    best, bad, start_epoch = math.inf, 0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        trainer.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        rows, best, bad, start_epoch = state["metrics"], state["best_val"], state["bad_epochs"], state["epoch"] + 1
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", {
            **asdict(config), "model": model.to_dict(), "parameters": model.n_parameters(),
            "train_windows": len(trainer.train_x), "val_windows": len(trainer.val_x),
            "vocab_size": len(ds.vocab)})
        # rendering needs the corpus rhythms and generation the held-out openings as primers;
        # keep both so the run folder stands alone
        atomic_write_json(run_dir / "timing.json", ds.timing)
        atomic_write_json(run_dir / "primers.json", validation_openings(ds, 200))

    finished = False
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            row = {"epoch": epoch, **trainer.train_epoch(epoch), **trainer.evaluate()}
            row["seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            improved = row["val_loss"] < best
            if improved:
                best, bad = row["val_loss"], 0
            else:
                bad += 1
            out_of_time = config.max_minutes > 0 and sum(r["seconds"] for r in rows) >= 60 * config.max_minutes
            finished = bad >= config.patience or epoch == config.epochs or out_of_time
            ckpt = {"model": model.state_dict(), "optimizer": trainer.opt.state_dict(),
                    "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_val": best,
                    "bad_epochs": bad, "metrics": rows, "finished": finished,
                    "train_config": asdict(config), "model_args": model.to_dict(),
                    "vocab": ds.vocab.to_json(), "encoding": config.encoding, "task": config.task}
            if improved:
                atomic_write_bytes(run_dir / "best.pt", _checkpoint_bytes(ckpt))
            atomic_write_bytes(run_dir / "last.pt", _checkpoint_bytes(ckpt))
            atomic_write_text(run_dir / "metrics.csv", pd.DataFrame(rows).to_csv(index=False))
            if on_epoch:
                on_epoch(row)
            if finished:
                break
    finally:
        if rows:
            plot_curves(pd.DataFrame(rows), run_dir / "curves.png",
                        f"{config.cell.upper()} {config.layers}x{config.hidden} · {config.encoding} · {config.task}")
    return _summary(run_dir, rows, model.n_parameters())


def _summary(run_dir: Path, rows: list[dict], parameters: int) -> dict:
    df = pd.DataFrame(rows)
    best = df.loc[df["val_loss"].idxmin()]
    out = {"run": str(run_dir), "epochs": int(df["epoch"].max()), "best_epoch": int(best["epoch"]),
           "val_loss": float(best["val_loss"]), "val_acc": float(best["val_acc"]),
           "parameters": parameters, "seconds": float(df["seconds"].sum()),
           "seconds_per_epoch": float(df["seconds"].mean())}
    if "val_mae" in df:
        out["val_mae"] = float(best["val_mae"])
    return out


def read_run_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise RunError(f"{run_dir} is not a run folder (no config.json)")
    return json.loads(path.read_text())
