"""Sampling speed: carried recurrent state against re-feeding the window, batched against one at a time.

One GRU 4x128 (random weights: speed does not depend on them), one process, one torch
thread by default; ``--count`` samples of ``--length`` new tokens at temperature 1 after
a 30-token primer. Cases, each timed ``--repeat`` times in turn (round robin) and
reported by the best of this process's CPU times (``time.process_time``, one torch
thread), which other work on a shared machine disturbs far less than wall-clock time:

* ``refeed``: :func:`pipeline.stages.generate.sample_refeed`, the whole model over the last
  30 tokens for every new token (how window-trained models are usually sampled): the baseline;
* ``before``: the stateful loop as it was (a full ``forward`` and ``torch.multinomial``
  per step, outputs written into a preallocated tensor);
* ``one at a time``: :meth:`SequenceModel.generate` called once per sample;
* ``batched``: :meth:`SequenceModel.generate` with every sample in one batch.

Figures only, as ratios against the baseline measured in the same run::

    PYTHONPATH=$PWD python bench/bench_sampling.py --threads 1
"""
from __future__ import annotations

import argparse
import time

import torch

import shared  # noqa: F401  (puts the repository root on sys.path)
from pipeline.stages.generate import sample_refeed
from pipeline.models.network import ModelConfig, SequenceModel, resolve_device


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.inference_mode()
def generate_before(model: SequenceModel, primer: torch.Tensor, length: int, temperature: float,
                    generator: torch.Generator) -> list[list[int]]:
    """The stateful loop before this change, kept here as a reference point."""
    model.eval()
    out_ids = torch.empty((primer.shape[0], length), dtype=torch.long, device=primer.device)
    out, state = model(primer)
    last = out[:, -1]
    for i in range(length):
        probs = torch.softmax(last.float() / temperature, -1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        out_ids[:, i] = nxt
        out, state = model(nxt[:, None], state)
        last = out[:, -1]
    return out_ids.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--length", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=926, help="vocabulary size (926: the nocturnes' names encoding)")
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps (timed by the wall clock off the CPU)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = resolve_device(a.device)
    model = SequenceModel(ModelConfig(vocab_size=a.vocab, cell=a.cell, layers=a.layers, hidden=a.hidden)).eval().to(dev)
    primer = torch.randint(0, a.vocab, (a.count, a.window)).to(dev)
    g = lambda: torch.Generator(dev).manual_seed(0)  # noqa: E731
    clock = time.process_time if dev.type == "cpu" else time.perf_counter
    cases = {
        "refeed": lambda: sample_refeed(model, primer, a.length, 1.0, g(), a.window),
        "before": lambda: generate_before(model, primer, a.length, 1.0, g()),
        "one at a time": lambda: [model.generate(primer[i:i + 1], a.length, 1.0, g()) for i in range(a.count)],
        "batched": lambda: model.generate(primer, a.length, 1.0, g()),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(a.repeat):
        for name, fn in cases.items():
            synchronize(dev)
            t0 = clock()
            fn()
            synchronize(dev)
            times[name].append(clock() - t0)
    same = model.generate(primer, 50, 1.0, g()) == model.generate(primer, 50, 1.0, g())
    tokens = a.count * a.length
    rate = {k: tokens / min(v) for k, v in times.items()}
    print(f"{a.cell.upper()} {a.layers}x{a.hidden}, vocabulary {a.vocab}, {a.count} samples x {a.length:,} tokens, "
          f"{a.threads} thread(s), device {dev}, best {'CPU' if dev.type == 'cpu' else 'wall'} time of {a.repeat}; "
          f"same seed, same samples: {same}\n")
    print("| method | seconds | tokens/s | vs re-feed |")
    print("|---|---|---|---|")
    labels = {"refeed": f"re-feed the last {a.window} tokens per new token (`sample_refeed`)",
              "before": "carried state, before (full forward + `torch.multinomial` a step)",
              "one at a time": "carried state, one sample at a time (`generate`)",
              "batched": f"carried state, all {a.count} samples in one batch (`generate`)"}
    for k, label in labels.items():
        print(f"| {label} | {min(times[k]):.2f} | {rate[k]:,.0f} | {rate[k] / rate['refeed']:.1f}x |")
    print(f"\nbatched vs one at a time: {rate['batched'] / rate['one at a time']:.1f}x; "
          f"batched vs before: {rate['batched'] / rate['before']:.2f}x")


if __name__ == "__main__":
    main()
