"""The trainer: epochs over windows or streams; it knows the model and the batches, never a file.

The model owns its loss (:meth:`pipeline.models.network.SequenceModel.loss`); the
trainer owns the loop, the optimiser, gradient clipping and the time budget.
"""
from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
from torch import nn

from pipeline.core.choices import STUDY_WINDOW
from pipeline.core.errors import ConfigError
from pipeline.models.augment import TrainingPieces, training_pieces
from pipeline.models.feeding import (Streams, Windows, detach_state, forward_resetting,
                                     make_windows, training_windows)
from pipeline.models.network import ModelConfig, SequenceModel
from pipeline.models.scoring import _add, _totals, score_full_context, score_windows, summarise
from pipeline.store.dataset import Dataset
from pipeline.store.rundir import TrainConfig

OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


def model_config(config: TrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, cell=config.cell, layers=config.layers, hidden=config.hidden,
                       embed=config.embed, dropout=config.dropout, task=config.task, stack=config.stack)


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
