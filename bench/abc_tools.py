"""Measurements only the benchmarks take: ABC generation speed, and char n-gram baselines on the model's targets.

Used by ``bench/bench_abc.py`` (and tested in ``tests/bench/test_abc_tools.py``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipeline.codecs import END, START, Vocabulary
from pipeline.core.errors import ConfigError
from pipeline.models.feeding import make_windows
from pipeline.models.network import model_from_checkpoint
from pipeline.stages.evaluate import fit_baselines
from pipeline.store.dataset import load_dataset
from pipeline.store.rundir import load_checkpoint


def generation_speed(run_dir: str | Path, *, count: int = 100, length: int = 1000, temperature: float = 1.0,
                     seed: int = 0, checkpoint: str = "best") -> dict:
    """Characters a second when ``count`` tunes are drawn as one batch vs one tune at a time.

    Both ways use the same model, primer (``<start>``), length limit,
    temperature and stop at ``<end>``. A batch keeps stepping finished rows
    until its last tune ends, so its rate counts only the characters kept.

    Returns
    -------
    dict: ``batch`` and ``single``, each ``{"seconds", "chars", "chars_per_s",
    "ended"}`` (chars include each ``<end>``), ``speedup`` (batch rate /
    single rate), plus the settings and torch's thread count.
    """
    if count < 1 or length < 1:
        raise ConfigError("count and length must be at least 1")
    ckpt = load_checkpoint(run_dir, checkpoint)
    vocab = Vocabulary(ckpt.vocab)
    if START not in vocab.index or END not in vocab.index:
        raise ConfigError(f"{run_dir} is not a chars model (no <start>/<end> tokens)")
    model = model_from_checkpoint(ckpt)
    start, end = vocab.index[START], vocab.index[END]

    def timed(rows: int, calls: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        t = time.perf_counter()
        out = [s for _ in range(calls)
               for s in model.generate(torch.full((rows, 1), start, dtype=torch.long), length, temperature, g,
                                       stop_id=end)]
        seconds = time.perf_counter() - t
        chars = sum(len(s) for s in out)
        return {"seconds": seconds, "chars": chars, "chars_per_s": chars / seconds,
                "ended": sum(bool(s) and s[-1] == end for s in out)}

    batch, single = timed(count, 1), timed(1, count)
    return {"count": count, "length": length, "temperature": temperature, "threads": torch.get_num_threads(),
            "batch": batch, "single": single, "speedup": batch["chars_per_s"] / single["chars_per_s"]}


def char_ngram_baseline(dataset_folder: str | Path, window: int, orders: Sequence[int] = (3, 5, 7),
                        max_targets: int | None = None) -> dict:
    """Interpolated Witten-Bell char n-grams on the chars encoding's train tunes.

    Scored on exactly the model's validation targets: the next character after
    every ``window``-character window of the held-out tunes (stride 1), each
    tune framed by ``<start>``/``<end>``. ``max_targets`` keeps that many
    targets, evenly spaced, when scoring all of them would be too slow (pure
    Python, about 25 µs a target and order); ``targets`` < ``total_targets``
    in the result says so. The highest order is counted once and the lower
    orders reuse its counts (an order-k model's counts are the first k levels).

    Returns
    -------
    dict ``{"<k>-gram": {"loss": nats/char, "acc", "targets", "total_targets",
    "seconds"}}`` per order; loss and acc are NaN when there is no target.

    Raises
    ------
    DatasetError
        The folder is not a processed dataset with a ``chars`` encoding.
    """
    if not orders or min(orders) < 1:
        raise ConfigError("orders must be positive integers")
    if window < 1:
        raise ConfigError("window must be at least 1")
    ds = load_dataset(dataset_folder, "chars")
    vx, vy = make_windows(ds.piece_arrays("validation"), window, 1).arrays()
    targets, total = vy[:, -1], len(vy)
    if max_targets is not None and total > max_targets:
        keep = np.unique(np.linspace(0, total - 1, max_targets).round().astype(int))
        vx, targets = vx[keep], targets[keep]
    out = {}
    for name, model in fit_baselines(ds.piece_arrays("train"), len(ds.vocab), orders).items():
        t = time.perf_counter()
        res = model.evaluate(vx, targets)
        out[name] = {**res, "targets": int(len(targets)), "total_targets": int(total),
                     "seconds": time.perf_counter() - t}
    return out
