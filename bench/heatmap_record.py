"""Cost of recording every unit of a layer (``record_activations``) against the model's own pass.

Prints seconds per sequence (top layer) for the hidden state (layer by layer with the model's
weights), the LSTM cell state (gates from the recorded h, then a scan over c_t),
and the naive alternative: stepping the whole stack one token at a time.
Figures only; never pass/fail.

    .venv/bin/python bench/heatmap_record.py [--tokens 2000] [--hidden 128] [--layers 2]
"""
from __future__ import annotations

import argparse
import time

import torch

import shared  # noqa: F401  (puts the repository root on sys.path)
from pipeline.stages.heatmap import record_activations
from pipeline.models.network import ModelConfig, SequenceModel


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.no_grad()
def stepped(model: SequenceModel, ids: torch.Tensor) -> None:
    x, state = model.inputs(ids[None]), None
    for t in range(x.shape[1]):
        _, state = model.rnn(x[:, t:t + 1], state)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{a.tokens} tokens, {a.layers}x{a.hidden}, {a.threads} thread(s); seconds per sequence (best of 3)")
    print(f"{'cell':5} {'forward':>9} {'hidden':>9} {'cell st.':>9} {'stepped':>9}")
    for cell in ("rnn", "lstm", "gru"):
        torch.manual_seed(0)
        model = SequenceModel(ModelConfig(vocab_size=100, cell=cell, layers=a.layers, hidden=a.hidden)).eval()
        ids = torch.randint(0, 100, (a.tokens,))
        with torch.no_grad():
            fwd = best_of(lambda: model.rnn(model.inputs(ids[None])))
        hid = best_of(lambda: record_activations(model, ids, -1))
        cst = best_of(lambda: record_activations(model, ids, -1, "cell")) if cell == "lstm" else float("nan")
        stp = best_of(lambda: stepped(model, ids), repeat=1)
        print(f"{cell:5} {fwd:9.4f} {hid:9.4f} {cst:9.4f} {stp:9.4f}")


if __name__ == "__main__":
    main()
