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
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.models.augment import TrainingPieces, augment_transpositions, training_pieces  # noqa: F401  (re-exported)
from pipeline.store.dataset import Dataset, dataset_read_lock, latest_dataset, load_dataset
from pipeline.core.errors import ConfigError, DatasetError, Interrupted, RunError
from pipeline.core.fsutil import check_replaceable, claim, folder_lock
from pipeline.models.network import ModelConfig, SequenceModel, resolve_device
from pipeline.stages.report import curves_title, ensure_run_curves, plot_curves
from pipeline.store.rundir import (STUDY_WINDOW, Checkpoint, TrainConfig, best_row, load_checkpoint, read_metrics,
                     read_run_config, read_status, run_name, save_checkpoint, selection_metric, with_encoding_defaults,
                     write_run_header)

_DEFAULT_THREADS = torch.get_num_threads()  # what threads=0 restores, whatever ran before
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
# options that may differ when resuming: how the run executes, or how long it may go on
EXECUTION = ("threads", "device")
RESUMABLE_CHANGES = (*EXECUTION, "epochs", "max_minutes", "patience")


def model_config(config: TrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, cell=config.cell, layers=config.layers, hidden=config.hidden,
                       embed=config.embed, dropout=config.dropout, task=config.task, stack=config.stack)


# --------------------------------------------------------------------------- data

def training_data(config: TrainConfig) -> tuple[Dataset, TrainingPieces, dict[str, str]]:
    """The dataset a run trains on, its training sequences (augmented as its config says), and the
    fingerprint of the data as extracted.

    The dataset's pieces are as stored; its vocabulary is the run's (the transpositions' new tokens appended).
    """
    with dataset_read_lock(config.dataset):  # not while an extract swaps it: its files would not match
        ds = load_dataset(config.dataset, config.encoding)
    fingerprint = ds.fingerprint()
    pieces = training_pieces(ds, config.transpose)
    return replace(ds, vocab=pieces.vocab), pieces, fingerprint


@dataclass
class Windows:
    """Windows as offsets into one token array.

    tokens : int64 (n_tokens,), every piece one after another.
    starts : int64 (n_windows,), where each window begins; window ``i`` is
        ``tokens[starts[i]:starts[i] + window]`` and its targets are the same
        positions shifted by one. Windows never cross a piece boundary.
    """

    tokens: torch.Tensor
    starts: torch.Tensor
    window: int

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of windows ``idx``, each int64 (len(idx), window)."""
        pos = self.starts[idx][:, None] + self.offsets
        return self.tokens[pos], self.tokens[pos + 1]

    def to(self, device: torch.device) -> "Windows":
        return Windows(self.tokens.to(device), self.starts.to(device), self.window)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window materialised: inputs and targets, int64 (n_windows, window) each (small data only)."""
        x, y = self.batch(torch.arange(len(self)))
        return x.cpu().numpy(), y.cpu().numpy()

    @property
    def offsets(self) -> torch.Tensor:
        return torch.arange(self.window, device=self.tokens.device)


def make_windows(arrays: list[np.ndarray], window: int, stride: int) -> Windows:
    """Index the windows of ``window`` tokens (plus the next one) of each piece, every ``stride`` tokens.

    Pieces shorter than ``window + 1`` tokens give no window.
    """
    starts, offset = [], 0
    for arr in arrays:
        n = len(arr) - window
        if n >= 1:
            starts.append(offset + np.arange(0, n, stride))
        offset += len(arr)
    tokens = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    return Windows(torch.from_numpy(tokens), torch.from_numpy(np.concatenate(starts) if starts
                                                              else np.zeros(0, np.int64)), window)


@dataclass
class KeyedWindows:
    """Training windows of sequences read through an id map (``--transpose``); no window is stored.

    tokens : int64 (n_tokens,), every stored piece once, one after another.
    bases : int64 (n_sequences,), where each sequence's piece begins in ``tokens``.
    rows : int64 (n_sequences,), the ``key_map`` row each sequence reads its ids through.
    firsts, ends : int64 (n_sequences,), the index of each sequence's first window and
        one past its last. Window ``i`` of sequence ``v`` (``firsts[v] <= i < ends[v]``)
        is ``key_map[rows[v]][tokens[s:s + window]]``, ``s = bases[v] + (i - firsts[v]) * stride``:
        the windows a copy of every transposed piece would give, in the same order.
    key_map : int64 (n_keys, vocab) (see :class:`pipeline.models.augment.TrainingPieces`).
    """

    tokens: torch.Tensor
    bases: torch.Tensor
    rows: torch.Tensor
    firsts: torch.Tensor
    ends: torch.Tensor
    key_map: torch.Tensor
    window: int
    stride: int

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of windows ``idx``, each int64 (len(idx), window)."""
        v = torch.searchsorted(self.ends, idx, right=True)
        start = self.bases[v] + (idx - self.firsts[v]) * self.stride
        # inputs and targets are one gather of window + 1 tokens, in two views
        ids = self.key_map[self.rows[v][:, None],
                           self.tokens[start[:, None] + torch.arange(self.window + 1, device=idx.device)]]
        return ids[:, :-1], ids[:, 1:]

    def to(self, device: torch.device) -> "KeyedWindows":
        return KeyedWindows(*(t.to(device) for t in (self.tokens, self.bases, self.rows, self.firsts, self.ends,
                                                     self.key_map)), self.window, self.stride)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window materialised, as :meth:`Windows.arrays` (small data only)."""
        x, y = self.batch(torch.arange(len(self), device=self.tokens.device))
        return x.cpu().numpy(), y.cpu().numpy()


def training_windows(pieces: TrainingPieces, window: int, stride: int) -> Windows | KeyedWindows:
    """The windows of every training sequence, as :func:`make_windows` of each sequence written out would give."""
    if pieces.key_map is None:
        return make_windows(pieces.arrays, window, stride)
    sizes = np.array([len(a) for a in pieces.arrays], np.int64)
    piece, rows = pieces.views[:, 0], pieces.views[:, 1]
    counts = (np.maximum(sizes[piece] - window, 0) + stride - 1) // stride  # len(range(0, n - window, stride))
    ends = np.cumsum(counts)
    bases = (np.cumsum(sizes) - sizes)[piece]
    tokens = np.concatenate(pieces.arrays) if pieces.arrays else np.zeros(0, np.int64)
    return KeyedWindows(*(torch.from_numpy(np.ascontiguousarray(a, np.int64))
                          for a in (tokens, bases, rows, ends - counts, ends, pieces.key_map)), window, stride)


class Streams:
    """Truncated back-propagation through time: the training sequences as parallel streams.

    Each epoch shuffles the sequences, joins them (an ABC stream so holds whole
    tunes, ``<start> … <end><start> …``, and the model learns what follows
    ``<end>``), starts at a random offset below ``chunk`` (chunk boundaries move
    between epochs) and cuts the whole into ``batch`` rows of equal length, each a
    contiguous stretch of music. Training reads the rows ``chunk`` tokens at a
    time, carrying the recurrent state from one chunk to the next (detached:
    gradients stop at chunk boundaries) as generation carries it from token to
    token, and setting a row's state to zero where a new sequence begins, as
    generation and the full-context validation begin every piece.

    The joined epoch is never built: :meth:`plan` keeps the shuffled order and
    where each sequence begins in it, and a chunk's ids are gathered from the
    stored pieces (through the key map of a transposed one) when it is read, so
    memory holds each stored piece once whatever ``--transpose`` is.

    arrays : ids of each stored piece, int64 (n_tokens,) each.
    views : int64 (n_sequences, 2), the stored piece and ``key_map`` row of each
        sequence; None: each piece as stored, once.
    key_map : int64 (n_keys, vocab), or None (see :class:`pipeline.models.augment.TrainingPieces`).
    """

    def __init__(self, arrays: list[torch.Tensor], batch: int, chunk: int,
                 views: torch.Tensor | np.ndarray | None = None, key_map: torch.Tensor | np.ndarray | None = None):
        self.batch, self.chunk = batch, chunk
        sizes = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        self.ids = torch.cat([torch.as_tensor(a, dtype=torch.long) for a in arrays]) if arrays else \
            torch.zeros(0, dtype=torch.long)
        views = torch.as_tensor(views, dtype=torch.long) if views is not None else \
            torch.stack([torch.arange(len(arrays)), torch.zeros(len(arrays), dtype=torch.long)], 1)
        self.rows = views[:, 1].contiguous()
        self.bases = (sizes.cumsum(0) - sizes)[views[:, 0]]  # where each sequence's piece begins in ids
        self.sizes = sizes[views[:, 0]]
        self.key_map = None if key_map is None else torch.as_tensor(key_map, dtype=torch.long)

    @classmethod
    def of(cls, pieces: TrainingPieces, batch: int, chunk: int) -> "Streams":
        return cls([torch.from_numpy(a) for a in pieces.arrays], batch, chunk, pieces.views, pieces.key_map)

    @property
    def tokens(self) -> int:
        """Tokens an epoch reads (every sequence's, transposed ones included)."""
        return int(self.sizes.sum())

    def __len__(self) -> int:
        """Steps (chunks) per epoch."""
        return math.ceil(((self.tokens - 1) // self.batch) / self.chunk)

    def plan(self, generator: torch.Generator) -> "StreamEpoch":
        """One epoch's order and offset, drawn from ``generator`` (the same draws give the same epoch)."""
        order = torch.randperm(len(self.sizes), generator=generator).to(self.ids.device)
        ends = self.sizes[order].cumsum(0)
        total = int(ends[-1]) if len(ends) else 0
        offset = int(torch.randint(0, self.chunk, (1,), generator=generator))
        if (total - 1 - offset) // self.batch < 1:
            offset = 0
        return StreamEpoch(self, order, ends, offset, (total - 1 - offset) // self.batch)

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's inputs, targets (int64) and sequence starts (bool), each (batch, length), built whole
        (small data; training reads :meth:`plan` a chunk at a time)."""
        plan = self.plan(generator)
        return plan.columns(0, plan.length)

    def to(self, device: torch.device) -> "Streams":
        out = Streams.__new__(Streams)
        out.__dict__.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})
        return out


@dataclass
class StreamEpoch:
    """One epoch of :class:`Streams`: the shuffled sequences joined, started at ``offset`` and cut into
    ``batch`` rows of ``length`` tokens, never built whole.

    order : int64 (n_sequences,), the sequences in the order they are joined.
    ends : int64 (n_sequences,), where each of them ends in the joined epoch.
    """

    streams: Streams
    order: torch.Tensor
    ends: torch.Tensor
    offset: int
    length: int

    def columns(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs, targets (int64) and sequence starts (bool) of columns ``a:b``, each (batch, b - a).

        ``first[r, t]`` is true where input ``x[r, t]`` is the first token of a sequence.
        """
        s, b = self.streams, min(b, self.length)
        pos = (self.offset + a + self.length * torch.arange(s.batch, device=self.ends.device)[:, None]
               + torch.arange(b - a + 1, device=self.ends.device))  # + 1: the last column's targets
        k = torch.searchsorted(self.ends, pos, right=True)
        seq = self.order[k]
        within = pos - (self.ends[k] - s.sizes[seq])
        ids = s.ids[s.bases[seq] + within]
        if s.key_map is not None:
            ids = s.key_map[s.rows[seq], ids]
        return ids[:, :-1], ids[:, 1:], within[:, :-1] == 0


def forward_resetting(model: SequenceModel, x: torch.Tensor, first: torch.Tensor, state=None):
    """``model(x, state)``, with a row's state set to zero before each token marked in ``first``.

    x : int64 (batch, time); first : bool (batch, time). The fused recurrent
    layer cannot reset a row mid-call, so the chunk is read in pieces cut at
    the columns where some row begins a piece.
    """
    cols = first.any(0).nonzero().flatten().tolist()
    cuts = sorted({0, *cols, x.shape[1]})
    outs = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if state is not None and a in cols:
            keep = (~first[:, a]).to(torch.float32)[None, :, None]
            state = tuple(s * keep for s in state) if isinstance(state, tuple) else state * keep
        out, state = model(x[:, a:b], state)
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs, 1)), state


def detach_state(state):
    """The recurrent state cut from its history (a tensor, or an LSTM's ``(h, c)``)."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


# ----------------------------------------------------------------------- scoring

def _totals(device: torch.device) -> dict[str, torch.Tensor]:
    z = lambda: torch.zeros((), device=device, dtype=torch.float64)  # noqa: E731
    return {"loss": z(), "n": z(), "correct": z(), "abs_err": z()}


def _add(tot: dict, loss: torch.Tensor, st: dict) -> None:
    tot["loss"] += loss * st["n"]
    for k, v in st.items():
        tot[k] += v


def summarise(tot: dict, prefix: str, task: str) -> dict[str, float]:
    """Sums from scoring -> ``{prefix}_loss``, ``{prefix}_acc`` (and ``{prefix}_mae`` for regression)."""
    t = {k: float(v) for k, v in tot.items()}
    n = max(t["n"], 1)
    row = {f"{prefix}_loss": t["loss"] / n if t["n"] else math.nan, f"{prefix}_acc": t["correct"] / n}
    if task == "regress":
        row[f"{prefix}_mae"] = t["abs_err"] / n
    return row


@torch.no_grad()
def score_windows(model: SequenceModel, windows: Windows, batch: int = 512,
                  progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """The study's measure: the next token after every window, each read from a zero state.

    Returns sums over the targets (``loss``, ``n``, ``correct``, ``abs_err``) for :func:`summarise`.
    """
    model.eval()
    dev = windows.tokens.device
    tot = _totals(dev)
    for i in range(0, len(windows), batch):
        x, y = windows.batch(torch.arange(i, min(i + batch, len(windows)), device=dev))
        out, _ = model(x, last=True)
        _add(tot, *model.loss(out, y[:, -1:]))
        if progress:
            progress(len(x))
    return tot


@torch.no_grad()
def score_full_context(model: SequenceModel, arrays: list[np.ndarray], skip: int, device: torch.device,
                       rows: int = 64, chunk: int = 256,
                       progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Full-context measure: every piece read from its first token, the state carried throughout.

    Scores the same targets as :func:`score_windows` with windows of ``skip``
    tokens: the tokens at positions ``skip`` and later of each piece, so the
    two measures differ only in the context the model had. Pieces of similar
    length are read side by side (``rows`` at a time, ``chunk`` steps per call).

    Returns sums as :func:`score_windows` does.
    """
    model.eval()
    tot = _totals(device)
    order = sorted(range(len(arrays)), key=lambda i: -len(arrays[i]))
    for g in range(0, len(order), rows):
        group = [arrays[i] for i in order[g:g + rows]]
        lens = torch.tensor([len(a) for a in group], device=device)
        width = int(lens.max())
        if width <= skip:
            continue
        pad = torch.zeros((len(group), width), dtype=torch.long, device=device)
        for r, a in enumerate(group):
            pad[r, :len(a)] = torch.as_tensor(a, dtype=torch.long, device=device)
        state = None
        for t in range(0, width - 1, chunk):
            stop = min(t + chunk, width - 1)
            out, state = model(pad[:, t:stop], state)
            pos = torch.arange(t, stop, device=device)[None, :]
            # out[:, j] predicts the token at t + j + 1
            mask = (pos + 1 >= skip) & (pos + 1 < lens[:, None])
            if bool(mask.any()):
                _add(tot, *model.loss(out[mask], pad[:, t + 1:stop + 1][mask]))
        if progress:
            progress(int(sum(max(0, len(a) - skip) for a in group)))
    return tot


# ----------------------------------------------------------------------- training

class Trainer:
    """Runs epochs over windows or streams; the model owns the loss, the trainer the loop."""

    def __init__(self, config: TrainConfig, ds: Dataset, model: SequenceModel, device: torch.device,
                 pieces: TrainingPieces | None = None):
        """``pieces``: the training sequences (:func:`training_data`); by default ``ds``'s training pieces as stored."""
        self.c, self.model, self.device = config, model, device
        self.opt = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        pieces = pieces if pieces is not None else training_pieces(ds)
        self.val_arrays = ds.piece_arrays("validation")
        # the study's measure: windows of the training window; in tbptt mode the window is the chunk (often
        # longer), so 30 -- or the chunk if shorter, which is how a short held-out piece can still be scored
        self.val_window = config.window if config.mode == "windows" else min(config.window, STUDY_WINDOW)
        if config.mode == "windows":
            self.train = training_windows(pieces, config.window, config.stride).to(device)
            if len(self.train) == 0:
                raise ConfigError(f"no training window: every training piece is shorter than --window {config.window} + 1")
        else:
            self.train = Streams.of(pieces, config.batch, config.window).to(device)
            if self.train.tokens == 0:
                raise ConfigError(f"the training pieces hold no {config.encoding} tokens (see the dataset's manifest "
                                  "for notes dropped); extract other files or train on another --encoding")
            if (self.train.tokens - 1) // config.batch < 1:
                raise ConfigError(f"the training pieces hold {self.train.tokens} tokens, too few for "
                                  f"--batch {config.batch} streams; lower --batch")
        self.val = make_windows(self.val_arrays, self.val_window, 1).to(device)
        if len(self.val) == 0:
            fix = ("extract more pieces (a single piece validates on its last tokens)" if ds.tail_fraction
                   else "extract with another --split-seed")
            raise ConfigError(f"no validation window: validation pieces are shorter than --window {self.val_window} "
                              f"+ 1 tokens; lower --window or {fix}")
        self.val_windows = len(self.val)
        if config.val_sample and len(self.val) > config.val_sample:
            # a window costs val_window steps from a zero state: on a big corpus (ABC) every one would
            # cost more than the epoch; evenly spaced windows estimate the measure (evaluate scores all)
            keep = np.unique(np.linspace(0, len(self.val) - 1, config.val_sample).round().astype(np.int64))
            self.val = Windows(self.val.tokens, self.val.starts[torch.from_numpy(keep).to(device)], self.val.window)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.c.batch) if self.c.mode == "windows" else len(self.train)

    def train_epoch(self, epoch: int, deadline: float | None = None, max_steps: int | None = None) -> dict:
        """One epoch; with a ``deadline`` (``time.perf_counter()`` value) it stops early when that passes,
        with ``max_steps`` after that many steps (benchmarks).

        Returns the training loss and accuracy and ``steps`` (optimizer steps taken);
        :attr:`cut_short` says whether the deadline ended the epoch early.
        """
        self.model.train()
        g = torch.Generator().manual_seed(self.c.seed * 100_003 + epoch)  # same order after a resume
        tot = _totals(self.device)
        self._epoch, self._steps = epoch, 0
        self.cut_short = False

        def late() -> bool:
            self.cut_short = deadline is not None and time.perf_counter() > deadline
            return self.cut_short or (max_steps is not None and self._steps >= max_steps)
        if self.c.mode == "windows":
            order = torch.randperm(len(self.train), generator=g).to(self.device)
            for i in range(0, len(order), self.c.batch):
                x, y = self.train.batch(order[i:i + self.c.batch])
                out, _ = self.model(self._noisy(x, g))
                if self.c.targets == "last":
                    out, y = out[:, -1:], y[:, -1:]
                self._step(tot, *self.model.loss(out, y))
                if late():
                    break
        else:
            plan = self.train.plan(g)
            state = None
            for t in range(0, plan.length, self.c.window):
                x, y, first = plan.columns(t, t + self.c.window)  # gathered now: the epoch is never built whole
                out, state = forward_resetting(self.model, self._noisy(x, g), first, state)
                self._step(tot, *self.model.loss(out, y))
                state = detach_state(state)
                if late():
                    break
        return {**summarise(tot, "train", self.c.task), "steps": self._steps}

    def _noisy(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``x`` with a share ``token_noise`` of its inputs replaced by other tokens of the batch (the targets stay).

        A small corpus is learnt by heart within a few epochs; a model that cannot trust
        every token it reads must lean on the music around it. Drawn from the epoch's
        generator, so a resumed run draws the same.
        """
        if not self.c.token_noise:
            return x
        hit = (torch.rand(x.shape, generator=g) < self.c.token_noise).to(x.device)
        other = x.reshape(-1)[torch.randint(0, x.numel(), x.shape, generator=g).to(x.device)]
        return torch.where(hit, other, x)

    def _step(self, tot: dict, loss: torch.Tensor, st: dict) -> None:
        if self.c.lr_decay != 1.0:  # a function of the epoch and step alone: a resumed run gets the same rates
            progress = self._epoch - 1 + self._steps / self.steps_per_epoch
            for group in self.opt.param_groups:
                group["lr"] = self.c.lr * self.c.lr_decay ** progress
        self._steps += 1
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.c.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.c.clip)
        self.opt.step()
        _add(tot, loss.detach(), st)  # summed on the device: no per-batch synchronisation

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Both validation measures of the targets every token after the first ``val_window`` of a piece.

        ``val_*``: the study's, each target after a window of ``val_window`` tokens
        read from a zero state (on at most ``val_sample`` evenly spaced targets);
        ``val_full_*``: every target, the state carried from the piece's start.
        """
        return {**summarise(score_windows(self.model, self.val), "val", self.c.task),
                **summarise(score_full_context(self.model, self.val_arrays, self.val_window, self.device),
                            "val_full", self.c.task)}


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
    ds, pieces, fingerprint = training_data(config)
    if ckpt is not None and ckpt.data_fingerprint and ckpt.data_fingerprint != fingerprint:
        raise DatasetError(f"cannot resume {run_dir.name}: the dataset {config.dataset} changed since the run began "
                           f"({', '.join(_data_changes(ckpt.data_fingerprint, fingerprint))} differ); "
                           "train a new run with another --name")
    metric = selection_metric(config)
    _seed_everything(config.seed)
    model = SequenceModel(model_config(config, len(ds.vocab)))
    model.set_vocabulary(ds.vocab.tokens)
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
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

    ``given`` names the options the user typed; the others take their encoding's
    defaults (:func:`pipeline.store.rundir.with_encoding_defaults`: chars models have
    their own). On ``--resume`` any given option that would change the model or
    data is refused (the run's own config wins).
    """
    resolve_device(config.device)  # an absent accelerator is the one line, before anything is announced
    if name and (Path(name).is_absolute() or ".." in Path(name).parts):
        raise ConfigError(f"--name is a run folder under --runs ({runs}/), such as 'my-run' or 'study/gru-1x8', "
                          f"not {name!r}")
    run_dir = Path(runs) / name if name else None
    if run_dir is not None:
        check_replaceable(run_dir, "run")
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
        if "threads" not in given:  # the run's own thread count, not the option's default
            config = replace(config, threads=saved.threads)
        _check_budget(run_dir, saved, status, given)
        on_start(f"resuming {run_dir} at epoch {status.epoch + 1 if status else 1}")
        limits = {k: getattr(config, k) for k in ("epochs", "max_minutes", "patience") if k in given}
        return _train_locked(config, run_dir, runs, resume=True, on_epoch=on_epoch, limits=limits)
    dataset, picked = resolve_dataset(config.dataset if "dataset" in given else None)
    config = with_encoding_defaults(replace(config, dataset=dataset), given)
    config.validate()
    run_dir = run_dir or Path(runs) / run_name(config, dataset_prefix=True)
    ignored = " (--transpose does not apply to chars)" if "transpose" in given and config.encoding == "chars" else ""
    on_start(f"training {run_dir} on {'the latest dataset, ' if picked else ''}{dataset}{ignored}")
    return _train_locked(config, run_dir, runs, resume=False, on_epoch=on_epoch)


def _check_budget(run_dir: Path, saved: TrainConfig, status, given: set[str]) -> None:
    """Refuse a resume that could train but a step: the run's --max-minutes budget is spent."""
    if not saved.max_minutes or "max_minutes" in given or (status and status.finished and "epochs" not in given):
        return
    spent = float(read_metrics(run_dir).get("seconds", pd.Series(dtype=float)).sum()) / 60
    if spent >= saved.max_minutes:
        raise ConfigError(f"{run_dir} has used its --max-minutes {saved.max_minutes:g} budget ({spent:.1f} minutes "
                          "trained); resume with a larger --max-minutes (0 = no limit) to train on")


def _train_locked(config: TrainConfig, run_dir: Path, runs: str | Path, **kw) -> TrainResult:
    """:func:`train` holding the run folder's lock; Ctrl-C says how to go on."""
    with folder_lock(run_dir, what=" (training it)"):
        try:
            return train(config, run_dir, **kw)
        except KeyboardInterrupt:
            status = read_status(run_dir) if (run_dir / "config.json").exists() else None
            where = f" --runs {runs}" if Path(runs) != Path("runs") else ""
            raise Interrupted(f"interrupted; {status.epoch if status else 0} finished epochs are kept in {run_dir}: "
                              f"continue with `train --name {run_dir.relative_to(runs)}{where} --resume`") from None
