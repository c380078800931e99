"""One model class for RNN, LSTM and GRU stacks.

token ids -> embedding (or one-hot) -> ``torch.nn.RNN|LSTM|GRU`` stack -> linear head
(logits over the vocabulary, or one value for pitch regression).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

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

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, d: dict) -> "SequenceModel":
        return cls(ModelConfig(**d))
