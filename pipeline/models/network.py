"""One model class for RNN, LSTM and GRU stacks, which owns its task.

token ids -> embedding (or one-hot) -> a stack of ``torch.nn.RNN|LSTM|GRU`` layers -> linear head
(logits over the vocabulary, or one value for pitch regression). The stack is
``residual`` by default: every layer above the first adds its input to its
output, as in deep translation LSTMs (Wu et al. 2016, GNMT), so that 3- and
4-layer stacks train as readily as shallow ones; ``plain`` stacks them as
``nn.GRU(num_layers=L)`` does (older runs).

As in nanoGPT, the model knows its loss (:meth:`SequenceModel.loss`) and how to
draw the next token (:meth:`SequenceModel.generate`), for both tasks, so the
trainer, the sampler, the comparison page and the heatmaps never re-derive the
classify/regress difference.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from pipeline.core.choices import DEVICES, STACKS
from pipeline.core.errors import ConfigError
from pipeline.store.rundir import Checkpoint

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; a named device must be present.

    Raises ConfigError (one line) when the requested accelerator is absent.
    """
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


STOP_CHECK = 32  # sampling steps between checks that every row has stopped (one host sync each)
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
    stack: str = "residual"  # or "plain" (no connection around layers; checkpoints without the field)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.stack not in STACKS:
            raise ValueError(f"stack must be one of {', '.join(STACKS)}, not {self.stack!r}")
        if self.task not in ("classify", "regress"):
            raise ValueError(f"task must be classify or regress, not {self.task!r}")
        if self.layers < 1 or self.hidden < 1 or self.vocab_size < 1:
            raise ValueError("layers, hidden and vocab_size must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


_LAYER_PARAM = re.compile(r"((?:weight|bias)_(?:ih|hh))_l(\d+)")


class Stack(nn.Module):
    """Recurrent layers one above the other, called as ``nn.GRU(..., num_layers=L, batch_first=True)``.

    Each layer is its own one-layer module (``layers[k]``); dropout falls between
    layers as in ``nn.GRU``. With ``residual``, a layer above the first adds its
    input to its output: ``x_k = x_{k-1} + layer_k(dropout(x_{k-1}))``. The state
    in and out is shaped as the fused module's: (layers, batch, hidden), or an
    ``(h, c)`` pair of them for LSTM. ``weight_ih_l{k}`` and the like name layer
    ``k``'s parameters as they do on ``nn.GRU``, and checkpoints of a fused
    stack load into it.
    """

    def __init__(self, cell: str, in_size: int, hidden: int, layers: int, dropout: float, residual: bool):
        super().__init__()
        self.layers = nn.ModuleList(CELLS[cell](in_size if k == 0 else hidden, hidden, batch_first=True)
                                    for k in range(layers))
        self.num_layers, self.hidden_size, self.bias = layers, hidden, True
        self.dropout, self.residual = dropout, residual
        self.lstm = cell == "lstm"

    def __getattr__(self, name: str):
        m = _LAYER_PARAM.fullmatch(name)
        if m and int(m[2]) < self.num_layers:
            return getattr(self.layers[int(m[2])], f"{m[1]}_l0")
        return super().__getattr__(name)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a fused stack's keys (rnn.weight_ih_l1) are layer modules' (rnn.layers.1.weight_ih_l0) here
        for key in [k for k in state_dict if k.startswith(prefix)]:
            m = _LAYER_PARAM.fullmatch(key[len(prefix):])
            if m:
                state_dict[f"{prefix}layers.{m[2]}.{m[1]}_l0"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def layer_input(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """What layer ``k`` reads, from what the stack below it passed up (dropout above the first)."""
        return nn.functional.dropout(x, self.dropout, self.training) if k > 0 and self.dropout > 0 else x

    def passed_up(self, x: torch.Tensor, h: torch.Tensor, k: int) -> torch.Tensor:
        """What layer ``k`` passes up, from its input ``x`` (before dropout) and its output ``h``."""
        return x + h if self.residual and k > 0 else h

    def forward(self, x: torch.Tensor, state=None):
        new = []
        for k, layer in enumerate(self.layers):
            s = None if state is None else (tuple(t[k:k + 1] for t in state) if self.lstm else state[k:k + 1])
            h, s = layer(self.layer_input(x, k), s)
            x = self.passed_up(x, h, k)
            new.append(s)
        return x, (tuple(torch.cat(t) for t in zip(*new)) if self.lstm else torch.cat(new))


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
        self.rnn = Stack(c.cell, in_size, c.hidden, c.layers, c.dropout if c.layers > 1 else 0.0,
                         residual=c.stack == "residual")
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

    def forward(self, ids: torch.Tensor, state=None, last: bool = False):
        """``last``: the output for the last position only, (batch, 1, ...): the study's window measure."""
        h, state = self.rnn(self.inputs(ids), state)
        out = self.head(self.drop(h[:, -1:] if last else h))
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
        stats : tensors ``n`` (targets), ``correct`` (the target has the largest logit, or the
            rounded pitch equals it) and, for regression, ``abs_err`` (sum of absolute errors in
            semitones).
        """
        n = torch.full((), y.numel(), device=y.device)  # filled on the device: torch.tensor would copy, and sync
        if self.config.task == "classify":
            loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            out = out.detach()
            # the target's logit is the largest: as argmax == target but for exact ties, and 6x cheaper on a CPU
            correct = (out.gather(-1, y[..., None]) >= out.amax(-1, keepdim=True)).sum()
            return loss, {"n": n, "correct": correct}
        target = self.values[y]
        loss = nn.functional.mse_loss(out, target)
        pred = out.detach() * PITCH_SCALE + PITCH_CENTER
        true = target * PITCH_SCALE + PITCH_CENTER
        return loss, {"n": n, "correct": (pred.round() == true.round()).sum(), "abs_err": (pred - true).abs().sum()}

    # ------------------------------------------------------------------ sampling

    def _pitch_values(self) -> torch.Tensor | None:
        """Regression: the pitch in semitones of every vocabulary id, (vocab,); None for classification."""
        return self.values * PITCH_SCALE + PITCH_CENTER if self.config.task == "regress" else None

    def _draws(self, steps: int, batch: int, temperature: float, generator: torch.Generator | None,
               device: torch.device, noise: float) -> torch.Tensor | None:
        """The randomness of ``steps`` draws at once: uniforms (steps, batch, 1) for classification,
        standard normals (steps, batch) for regression; None where a draw needs none."""
        if temperature <= 0 or (self.config.task == "regress" and noise <= 0):
            return None
        if self.config.task == "classify":  # in (0, 1]: see _pick
            return 1.0 - torch.rand((steps, batch, 1), generator=generator, device=device)
        return torch.randn((steps, batch), generator=generator, device=device)

    def _pick(self, last: torch.Tensor, draw: torch.Tensor | None, spread: float,
              values: torch.Tensor | None) -> torch.Tensor:
        """One id per row. Classification: ``last`` are logits already divided by the temperature,
        sampled by inverting the softmax's cumulative sum at a uniform ``draw`` in (0, 1] (argmax
        without one); regression: the vocabulary pitch nearest to the prediction plus ``draw * spread``."""
        if values is None:
            if draw is None:
                return last.argmax(-1)
            cdf = torch.softmax(last.float(), -1).cumsum_(-1)
            # the first id whose cumulative probability reaches draw * total: as 0 < draw * total <= total,
            # always an id, and never one of probability 0 (its cumulative sum equals the one before)
            return torch.searchsorted(cdf, draw * cdf[:, -1:]).squeeze(1)
        semis = last * PITCH_SCALE + PITCH_CENTER
        if draw is not None:
            semis = semis + draw * spread
        return (semis[:, None] - values).abs().argmin(-1)

    def next_ids(self, last: torch.Tensor, temperature: float, generator: torch.Generator | None,
                 noise: float = 0.0) -> torch.Tensor:
        """Draw the next id of every row from the last output, shape (batch,) -> (batch,).

        Classification samples the softmax at ``temperature`` (0 = argmax). Regression
        adds Gaussian noise of ``noise * temperature`` semitones to the predicted pitch
        and takes the nearest vocabulary entry. :meth:`generate` draws the same way.
        """
        scaled = last / temperature if self.config.task == "classify" and temperature > 0 else last
        draws = self._draws(1, last.shape[0], temperature, generator, last.device, noise)
        return self._pick(scaled, None if draws is None else draws[0], noise * temperature, self._pitch_values())

    def _cells(self) -> tuple[Callable, list[tuple[torch.Tensor, ...]]]:
        """The stack as one cell function and each layer's weights, for stepping layer by layer.

        The functions are the kernels ``nn.GRUCell``/``LSTMCell``/``RNNCell`` call, on the
        stack's own parameters: one step gives exactly what ``self.rnn`` gives, without the
        sequence machinery around a one-token sequence (a third of the time of a step).
        """
        r = self.rnn
        cell = {"gru": torch.gru_cell, "lstm": torch.lstm_cell, "rnn": torch.rnn_tanh_cell}[self.config.cell]
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if r.bias else ())
        return cell, [tuple(getattr(r, f"{n}_l{k}") for n in names) for k in range(r.num_layers)]

    def _step(self, ids: torch.Tensor, state: list, weight: torch.Tensor, bias: torch.Tensor,
              cells: tuple[Callable, list]) -> torch.Tensor:
        """One token per row through the stack, (batch,) -> the head's output (batch, vocab) or (batch,).

        ``state`` holds each layer's state (h, or an LSTM's (h, c)), each (batch, hidden),
        and is updated in place. What :meth:`forward` does for one step in evaluation.
        """
        x = (nn.functional.embedding(ids, self.embed.weight) if self.embed is not None
             else nn.functional.one_hot(ids, self.config.vocab_size).float())
        cell, layers = cells
        for k, weights in enumerate(layers):
            state[k] = cell(x, state[k], *weights)
            x = self.rnn.passed_up(x, state[k][0] if isinstance(state[k], tuple) else state[k], k)
        out = nn.functional.linear(x, weight, bias)
        return out.squeeze(-1) if self.config.task == "regress" else out

    @torch.inference_mode()
    def generate(self, primer_ids: torch.Tensor, length: int, temperature: float,
                 generator: torch.Generator | None = None, stop_id: int | None = None,
                 noise: float = 0.0, progress: Callable[[int], None] | None = None) -> list[list[int]]:
        """Draw a batch of continuations, carrying the recurrent state one token at a time.

        Parameters
        ----------
        primer_ids : int64 (batch, primer_len), on the model's device.
        length : new tokens per row, at most.
        temperature : softmax temperature (0 = always the most likely token).
        generator : the source of randomness, on the model's device: the same seed
            gives the same samples for the same batch size and device.
        stop_id : an id that ends a row (kept in its output), e.g. ``<end>``; rows that
            stopped are cut there, and sampling ends when every row has stopped.
        progress : called with the number of new steps, every 32 steps and at the end.

        Returns
        -------
        ids : one list of new token ids per row (primer excluded).

        Nothing is copied to the host inside the loop but one check every
        ``STOP_CHECK`` steps (with a ``stop_id``); randomness is drawn for that many
        steps at once, and the temperature is folded into the head's weights.
        """
        self.eval()
        scale = 1.0 / temperature if self.config.task == "classify" and temperature > 0 else 1.0
        weight, bias = self.head.weight * scale, self.head.bias * scale
        out, state = self(primer_ids, last=True)
        cells = self._cells()
        state = self.layer_states(state)
        return self.sample(out[:, -1] * scale, lambda nxt: self._step(nxt, state, weight, bias, cells),
                           length, temperature, generator, stop_id, noise, progress)

    @staticmethod
    def layer_states(state) -> list:
        """The stack's state as a list of each layer's: (layers, batch, hidden) -> [(batch, hidden), ...]."""
        return list(zip(*(s.unbind(0) for s in state))) if isinstance(state, tuple) else list(state.unbind(0))

    def sample(self, last: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor], length: int,
               temperature: float, generator: torch.Generator | None, stop_id: int | None, noise: float,
               progress: Callable[[int], None] | None) -> list[list[int]]:
        """The drawing loop of :meth:`generate`: ``last`` is the output for the next token (logits already
        divided by the temperature), ``step(ids)`` reads the drawn ids and returns the next such output."""
        batch, device = last.shape[0], last.device
        values, spread = self._pitch_values(), noise * temperature
        chunks: list[torch.Tensor] = []
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for at in range(0, length, STOP_CHECK):
            n = min(STOP_CHECK, length - at)
            draws = self._draws(n, batch, temperature, generator, device, noise)
            draws = [None] * n if draws is None else draws.unbind(0)  # views, taken once a chunk
            picked = []
            for j in range(n):
                nxt = self._pick(last, draws[j], spread, values)
                picked.append(nxt)
                if at + j + 1 < length:
                    last = step(nxt)
            chunks.append(torch.stack(picked))
            if progress:
                progress(n)
            if stop_id is not None:
                done |= (chunks[-1] == stop_id).any(0)
                if bool(done.all()):
                    break
        rows = torch.cat(chunks).T.tolist() if chunks else [[] for _ in range(batch)]
        if stop_id is not None:
            rows = [r[:r.index(stop_id) + 1] if stop_id in r else r for r in rows]
        return rows

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, d: dict) -> "SequenceModel":
        return cls(ModelConfig(**{"stack": "plain", **d}))  # checkpoints from before residual stacks


class KeyAveraged(nn.Module):
    """A classifier trained in several keys, predicting as the average over those keys.

    A run trained with ``--transpose N`` has read every piece in 2N + 1 keys, yet
    reads a new piece in one: its prediction depends on the key the piece is
    written in, which the music does not. This reads the sequence in every one of
    those keys at once (the same network, one row per key), takes each key's
    distribution over the next token back to the written key (renormalised over
    the tokens the written key can write), and averages them (a mixture with
    equal weights). A key drops out of a row's average from the
    first token it cannot write (a pitch the vocabulary lacks there); the written
    key never does. The n-gram baselines of ``evaluate`` are counted over the same
    keys, so they are key-free already.

    ``forward(ids, state)`` returns ``(log_probs, state)``: log-probabilities
    (batch, time, vocab), usable wherever logits are (``loss`` and the window
    and full-context scorers take them as they are); ``generate`` samples from the
    same mixture. ``key_map`` is int64 (keys, vocab): the id of each token in each
    key, -1 where it has none (:func:`pipeline.models.augment.vocab_key_map`).
    """

    def __init__(self, model: SequenceModel, key_map):
        super().__init__()
        if model.config.task != "classify":
            raise ValueError("key averaging needs a classifier (a distribution over tokens)")
        self.model, self.config = model, model.config
        self.register_buffer("key_map", torch.as_tensor(key_map, dtype=torch.long))

    @property
    def keys(self) -> int:
        return self.key_map.shape[0]

    def loss(self, out: torch.Tensor, y: torch.Tensor):
        return self.model.loss(out, y)  # cross-entropy of log-probabilities is -log p(y)

    def _spread(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, *rest) ids -> (batch * keys, *rest) ids in every key (0 where none), and whether each has one."""
        m = self.key_map[:, ids].movedim(0, 1)  # (batch, keys, *rest)
        return m.clamp_min(0).flatten(0, 1), m >= 0

    def _average(self, out: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """Logits (batch * keys, *rest, vocab) -> log of the mixture over the live keys, (batch, *rest, vocab)."""
        k, v = self.keys, out.shape[-1]
        lp = torch.log_softmax(out.float(), -1).unflatten(0, (-1, k))  # (batch, keys, *rest, vocab)
        shape = (1, k) + (1,) * (lp.dim() - 3) + (v,)
        index = self.key_map.clamp_min(0).view(shape).expand_as(lp)
        back = lp.gather(-1, index).masked_fill((self.key_map < 0).view(shape), float("-inf"))
        back = back - torch.logsumexp(back, -1, keepdim=True)  # each key given what the written key can write
        weight = alive.float() / alive.sum(1, keepdim=True)  # (batch, keys, *rest)
        return torch.logsumexp(back + weight.log()[..., None], dim=1)

    def forward(self, ids: torch.Tensor, state=None, last: bool = False):
        inner, alive = (None, torch.ones(ids.shape[0], self.keys, dtype=torch.bool, device=ids.device)) \
            if state is None else state
        x, has = self._spread(ids)
        alive = alive[:, :, None] & (has.cumsum(-1) == torch.arange(1, ids.shape[1] + 1, device=ids.device))
        out, inner = self.model(x, inner, last=last)
        return self._average(out, alive[:, :, -1:] if last else alive), (inner, alive[:, :, -1])

    @torch.inference_mode()
    def generate(self, primer_ids: torch.Tensor, length: int, temperature: float,
                 generator: torch.Generator | None = None, stop_id: int | None = None,
                 noise: float = 0.0, progress: Callable[[int], None] | None = None) -> list[list[int]]:
        """As :meth:`SequenceModel.generate`, each token drawn from the mixture over the keys."""
        self.eval()
        m = self.model
        scale = 1.0 / temperature if temperature > 0 else 1.0
        out, (state, alive) = self(primer_ids, last=True)
        cells, state = m._cells(), m.layer_states(state)

        def step(nxt: torch.Tensor) -> torch.Tensor:
            nonlocal alive
            x, has = self._spread(nxt)
            alive = alive & has
            return self._average(m._step(x, state, m.head.weight, m.head.bias, cells), alive) * scale

        return m.sample(out[:, -1] * scale, step, length, temperature, generator, stop_id, noise, progress)


def model_from_checkpoint(ckpt: Checkpoint) -> "SequenceModel":
    """The trained network of a checkpoint, in eval mode, on the CPU."""
    model = SequenceModel.from_dict(ckpt.model_args)
    model.load_state_dict(ckpt.model)
    model.eval()
    return model
