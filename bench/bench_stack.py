"""The cost of a stack of one-layer modules (``pipeline.models.network.Stack``) against torch's fused stack.

Models are built with ``Stack`` since residual connections were added: each layer is
its own ``nn.GRU/LSTM/RNN`` so that a layer's input can be added to its output. The
baseline is what the model was before, ``nn.GRU(..., num_layers=L)``, carrying the
same weights (a plain stack gives the same outputs, ``tests``). Each case runs
training steps (forward, cross-entropy over the vocabulary, backward, Adam) on the
same random batches, in this process's CPU time (``time.process_time``), best of
``--repeats``; cases alternate so that machine noise falls on all alike. Usage::

    PYTHONPATH=$PWD python bench/bench_stack.py --threads 1
"""
from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import shared  # noqa: F401  (puts the repository root on sys.path)

from pipeline.models.network import CELLS, ModelConfig, SequenceModel


class Fused(nn.Module):
    """The model as it was: one fused recurrent module, the same embedding and head."""

    def __init__(self, model: SequenceModel):
        super().__init__()
        c = model.config
        self.embed, self.head, self.drop = copy.deepcopy(model.embed), copy.deepcopy(model.head), nn.Dropout(c.dropout)
        self.rnn = CELLS[c.cell](c.embed, c.hidden, num_layers=c.layers, batch_first=True, dropout=c.dropout)
        self.rnn.load_state_dict({f"{n}_l{k}": getattr(model.rnn, f"{n}_l{k}")
                                  for k in range(c.layers) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})

    def forward(self, ids):
        h, _ = self.rnn(self.embed(ids))
        return self.head(self.drop(h)), None


def steps_time(model: nn.Module, batches, vocab: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    t = time.process_time()
    for x, y in batches:
        out, _ = model(x)
        loss = nn.functional.cross_entropy(out.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=926, help="926: the nocturnes' names vocabulary")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, a.vocab, (64, 30), generator=g), torch.randint(0, a.vocab, (64, 30), generator=g))
               for _ in range(a.steps)]
    print(f"# Stack against torch's fused stack — {a.steps} training steps of 64 x 30 tokens, vocabulary {a.vocab}, "
          f"{a.threads} thread(s), CPU time, best of {a.repeats}, torch {torch.__version__}\n")
    print("| model | fused nn.GRU (s) | Stack plain (s) | Stack residual (s) | plain / fused | residual / fused |")
    print("|---|---|---|---|---|---|")
    for cell, layers, hidden in (("gru", 2, 128), ("gru", 4, 128), ("lstm", 4, 128), ("gru", 2, 256)):
        torch.manual_seed(0)
        plain = SequenceModel(ModelConfig(vocab_size=a.vocab, cell=cell, layers=layers, hidden=hidden, stack="plain"))
        res = SequenceModel(ModelConfig(vocab_size=a.vocab, cell=cell, layers=layers, hidden=hidden))
        res.load_state_dict(plain.state_dict())
        fused = Fused(plain)
        best = {"fused": float("inf"), "plain": float("inf"), "residual": float("inf")}
        for _ in range(a.repeats):
            for name, m in (("fused", fused), ("plain", plain), ("residual", res)):
                best[name] = min(best[name], steps_time(m, batches, a.vocab))
        print(f"| {cell.upper()} {layers}x{hidden} | {best['fused']:.3f} | {best['plain']:.3f} | {best['residual']:.3f} | "
              f"{best['plain'] / best['fused']:.2f}x | {best['residual'] / best['fused']:.2f}x |")


if __name__ == "__main__":
    main()
