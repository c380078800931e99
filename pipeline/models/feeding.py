"""Data feeding: the training pieces as batches of windows (the study's set-up) or as parallel streams (TBPTT).

Neither copies the corpus per key for ``--transpose``: a transposed piece is the
stored one read through an id map (:mod:`pipeline.models.augment`), gathered a chunk
(or a batch of windows) at a time, so memory stays near the corpus's own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from pipeline.models.augment import TrainingPieces, training_pieces
from pipeline.models.network import SequenceModel
from pipeline.store.dataset import Dataset, dataset_read_lock, load_dataset
from pipeline.store.rundir import TrainConfig


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


