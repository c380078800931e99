"""One model class for RNN, LSTM and GRU stacks, which owns its task.

token ids -> embedding (or one-hot) -> ``torch.nn.RNN|LSTM|GRU`` stack -> linear head
(logits over the vocabulary, or one value for pitch regression).

As in nanoGPT, the model knows its loss (:meth:`SequenceModel.loss`) and how to
draw the next token (:meth:`SequenceModel.generate`), for both tasks, so the
trainer, the sampler, the comparison page and the heatmaps never re-derive the
classify/regress difference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; a named device must be present.

    Raises ConfigError (one line) when the requested accelerator is absent.
    """
    from .errors import ConfigError

    name = (name or "auto").lower()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name.startswith("cuda") and not cuda:
        raise ConfigError(f"--device {name}: no CUDA GPU is available to torch {torch.__version__} here "
                          f"({'a CPU-only build' if torch.version.cuda is None else 'no device found'}); use --device cpu")
    if name == "mps" and not mps:
        raise ConfigError("--device mps: Apple's Metal backend is not available here; use --device cpu")
    return torch.device(name)

# Regression targets are pitches scaled as (pitch - CENTER) / SCALE: octaves around middle C.
PITCH_CENTER, PITCH_SCALE = 60.0, 12.0


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (saved inside every checkpoint)."""

    vocab_size: int
    cell: str = "gru"
    layers: int = 2
    hidden: int = 128
    embed: int = 64          # 0 = one-hot input of size vocab_size
    dropout: float = 0.2     # between recurrent layers (and before the head)
    task: str = "classify"   # or "regress": one output, the next pitch as a number

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.task not in ("classify", "regress"):
            raise ValueError(f"task must be classify or regress, not {self.task!r}")
        if self.layers < 1 or self.hidden < 1 or self.vocab_size < 1:
            raise ValueError("layers, hidden and vocab_size must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


class SequenceModel(nn.Module):
    """Recurrent next-token model.

    ``forward(ids, state)`` takes ids of shape (batch, time) and returns
    ``(out, state)``: out is (batch, time, vocab) logits, or (batch, time)
    scaled pitches for regression; state is the recurrent state to carry on
    (a tensor, or an ``(h, c)`` pair for LSTM), each (layers, batch, hidden).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        if c.embed > 0:
            self.embed = nn.Embedding(c.vocab_size, c.embed)
            in_size = c.embed
        else:
            self.embed = None
            in_size = c.vocab_size
        self.rnn = CELLS[c.cell](in_size, c.hidden, num_layers=c.layers, batch_first=True,
                                 dropout=c.dropout if c.layers > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, 1 if c.task == "regress" else c.vocab_size)
        # regression: the scaled pitch of every vocabulary id (targets, and the nearest id when sampling)
        self.register_buffer("values", torch.zeros(c.vocab_size) if c.task == "regress" else None)

    def set_vocabulary(self, tokens: list[str]) -> None:
        """Regression only: read each token as a pitch number (the ``pitch`` encoding)."""
        if self.config.task == "regress":
            self.values = torch.tensor([(float(t) - PITCH_CENTER) / PITCH_SCALE for t in tokens],
                                       device=self.head.weight.device)

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(ids)
        return nn.functional.one_hot(ids, self.config.vocab_size).float()

    def forward(self, ids: torch.Tensor, state=None):
        h, state = self.rnn(self.inputs(ids), state)
        out = self.head(self.drop(h))
        if self.config.task == "regress":
            out = out.squeeze(-1)
        return out, state

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss over the targets and sums for the metrics, without a host synchronisation.

        Parameters
        ----------
        out : the model's output for the positions scored: (batch, time, vocab) logits
            or (batch, time) scaled pitches.
        y : int64 (batch, time) target ids.

        Returns
        -------
        loss : cross-entropy (classify) or MSE on scaled pitches (regress).
        stats : tensors ``n`` (targets), ``correct`` (argmax, or rounded pitch, equals the
            target) and, for regression, ``abs_err`` (sum of absolute errors in semitones).
        """
        n = torch.tensor(y.numel(), device=y.device)
        if self.config.task == "classify":
            loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            return loss, {"n": n, "correct": (out.detach().argmax(-1) == y).sum()}
        target = self.values[y]
        loss = nn.functional.mse_loss(out, target)
        pred = out.detach() * PITCH_SCALE + PITCH_CENTER
        true = target * PITCH_SCALE + PITCH_CENTER
        return loss, {"n": n, "correct": (pred.round() == true.round()).sum(), "abs_err": (pred - true).abs().sum()}

    def next_ids(self, last: torch.Tensor, temperature: float, generator: torch.Generator | None,
                 noise: float = 0.0) -> torch.Tensor:
        """Draw the next id of every row from the last output, shape (batch,) -> (batch,).

        Classification samples the softmax at ``temperature`` (0 = argmax). Regression
        adds Gaussian noise of ``noise * temperature`` semitones to the predicted pitch
        and takes the nearest vocabulary entry.
        """
        if self.config.task == "classify":
            if temperature <= 0:
                return last.argmax(-1)
            probs = torch.softmax(last.float() / temperature, -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)
        semis = last * PITCH_SCALE + PITCH_CENTER
        if temperature > 0 and noise > 0:
            semis = semis + torch.randn(semis.shape, generator=generator, device=semis.device) * noise * temperature
        return (semis[:, None] - (self.values[None, :] * PITCH_SCALE + PITCH_CENTER)).abs().argmin(-1)

    @torch.inference_mode()
    def generate(self, primer_ids: torch.Tensor, length: int, temperature: float,
                 generator: torch.Generator | None = None, stop_id: int | None = None,
                 noise: float = 0.0, progress: Callable[[int], None] | None = None) -> list[list[int]]:
        """Draw a batch of continuations, carrying the recurrent state one token at a time.

        Parameters
        ----------
        primer_ids : int64 (batch, primer_len), on the model's device.
        length : new tokens per row, at most.
        stop_id : an id that ends a row (kept in its output), e.g. ``<end>``; rows that
            stopped are cut there, and sampling ends when every row has stopped.
        progress : called with the number of new steps, every 32 steps and at the end.

        Returns
        -------
        ids : one list of new token ids per row (primer excluded).
        """
        self.eval()
        batch = primer_ids.shape[0]
        out_ids = torch.empty((batch, length), dtype=torch.long, device=primer_ids.device)
        out, state = self(primer_ids)
        last, steps = out[:, -1], 0
        check_every = 32  # how often to ask the device whether every row has stopped
        for i in range(length):
            nxt = self.next_ids(last, temperature, generator, noise)
            out_ids[:, i] = nxt
            steps = i + 1
            if steps % check_every == 0:
                if progress:
                    progress(check_every)
                if stop_id is not None and bool((out_ids[:, :steps] == stop_id).any(1).all()):
                    break
            out, state = self(nxt[:, None], state)
            last = out[:, -1]
        if progress and steps % check_every:
            progress(steps % check_every)
        rows = out_ids[:, :steps].tolist()
        if stop_id is not None:
            rows = [r[:r.index(stop_id) + 1] if stop_id in r else r for r in rows]
        return rows

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, d: dict) -> "SequenceModel":
        return cls(ModelConfig(**d))
