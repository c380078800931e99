"""Stage 3: score a trained run on every piece of any processed dataset, beside n-gram baselines.

``cli.py evaluate --run RUN --data DATASET`` answers: on music the model never
saw, does it predict better than simple statistics of its own training data?
Every row of the answer scores the same targets:

- the network, the study's measure (``loss``/``acc``): the next token after every
  ``window``-token window (stride 1), each window read from a zero state;
- the network, full context (``full_context_loss``/``full_context_acc``): the same
  targets, the recurrent state carried from the piece's first token, as in generation;
- a classifier of a note encoding trained in several keys (``--transpose N``) is
  scored as it generates: its prediction averaged over those keys
  (:class:`pipeline.models.network.KeyAveraged`; ``--keys one`` scores the written key only).
  Its rows in the written key alone are reported too (``one_key``);
- Witten-Bell n-grams (:class:`pipeline.measures.baseline.NGramModel`) of orders 1, 2, 3
  and 5 fitted on the run's own training pieces, augmented as the run was
  (``--transpose``), and given the same windows (they read the last n-1 tokens).

Tokens outside the run's vocabulary (a chord or character its training data
never had) cannot be fed to the network. They are counted (``unknown_tokens``)
and cut the piece: each stretch of known tokens between them is scored as a
piece of its own, for every row alike, so no target is predicted across an
unknown token. The result goes to ``<run>/eval/<dataset name>-<hash>.json``
(:func:`pipeline.store.rundir.write_eval`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from pipeline.codecs import Vocabulary, get_codec
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError, DatasetError
from pipeline.measures.baseline import NGramModel
from pipeline.models.augment import KEYS, as_predicting
from pipeline.models.feeding import make_windows, training_data
from pipeline.models.network import model_from_checkpoint, resolve_device
from pipeline.models.scoring import score_full_context, score_windows, summarise
from pipeline.store.dataset import load_dataset
from pipeline.store.rundir import (
    TrainConfig,
    best_row,
    eval_name,
    load_checkpoint,
    selection_metric,
    write_eval,
)

ORDERS = (1, 2, 3, 5)


@dataclass
class EvalConfig(StageConfig):
    """Options of the evaluate stage; saved inside the result (``config``)."""

    dataset: str = ""
    side: str = "all"                 # every piece, or one side of the dataset's split: train, validation, test
    checkpoint: str = "best"
    window: int = -1                  # the study's measure after windows of this many tokens; 0 = full context
                                      # only; -1 = the encoding's own (30; frames: 0)
    orders: tuple[int, ...] = ORDERS  # n-gram baselines
    keys: str = "all"                 # "all": as the run generates, averaged over the keys it trained in; "one"

    def validate(self) -> None:
        super().validate()
        if not self.dataset:
            raise ConfigError("--data is required: the processed dataset to score the run on")
        if self.side not in SIDES:
            raise ConfigError(f"--side must be one of {', '.join(SIDES)}")
        if self.checkpoint not in ("best", "last"):
            raise ConfigError("--checkpoint must be best or last")
        if self.window < -1:
            raise ConfigError("--window must be >= 0 (0 = full context only), or -1 for the encoding's default")
        if self.keys not in KEYS:
            raise ConfigError(f"--keys must be one of {', '.join(KEYS)}, not {self.keys!r}")
        if not self.orders or min(self.orders) < 1:
            raise ConfigError("n-gram orders must be positive")


def known_segments(pieces: Sequence[Sequence[str]], vocab: Vocabulary) -> tuple[list[np.ndarray], int, list[str]]:
    """Cut each piece at the tokens ``vocab`` lacks.

    Returns
    -------
    segments : int64 arrays (n_tokens,) of ids, the stretches of known tokens, in order.
    unknown : how many tokens (occurrences) were not in ``vocab``.
    examples : the distinct unknown tokens, most frequent first (at most 10).
    """
    segments, missing = [], {}
    for tokens in pieces:
        current: list[int] = []
        for tok in tokens:
            i = vocab.index.get(tok)
            if i is None:
                missing[tok] = missing.get(tok, 0) + 1
                if current:
                    segments.append(np.array(current, dtype=np.int64))
                current = []
            else:
                current.append(i)
        if current:
            segments.append(np.array(current, dtype=np.int64))
    examples = sorted(missing, key=lambda t: (-missing[t], t))[:10]
    return segments, sum(missing.values()), examples


def fit_baselines(train_arrays: Iterable[np.ndarray], vocab_size: int, orders: Sequence[int]) -> dict:
    """Witten-Bell n-grams of each order, counted once at the highest order (lower orders share the counts)."""
    full = NGramModel(max(orders), vocab_size).fit(train_arrays)
    models = {}
    for order in sorted(set(orders)):
        m = NGramModel(order, vocab_size)
        m.counts = full.counts[:order]
        models[f"{order}-gram"] = m
    return models


SIDES = ("all", "train", "validation", "test")


def evaluate(run_dir: str | Path, config: EvalConfig, *, device: str = "auto",
                 on_total: Callable[[int, str], None] = lambda n, desc: None,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Score a run on every piece of ``config.dataset`` and write ``<run>/eval/<dataset name>-<hash>.json``.

    With ``side`` ``train`` or ``validation``, only that side of the dataset's split
    is scored (e.g. the run's own held-out pieces, every target), into
    ``<dataset name>-<hash>-<side>.json`` (:func:`pipeline.store.rundir.eval_name`).

    Returns
    -------
    The result as written: ``run``, ``dataset``, ``encoding``, ``task``, ``checkpoint``,
    ``epoch`` (of the checkpoint), ``window``, ``pieces``, ``tokens``, ``unknown_tokens``,
    ``unknown_examples``, ``targets``, ``loss``, ``acc``, ``full_context_loss``,
    ``full_context_acc`` (regression adds ``mae`` and ``full_context_mae``; its losses are
    mean squared errors of pitches scaled by an octave, not nats), ``baselines`` (order ->
    loss in nats), ``baseline_acc``, ``best_baseline``, ``gain`` (1 - loss / best
    baseline loss; full-context in ``full_context_gain``), ``seconds``, ``config``
    and ``file``.

    Raises
    ------
    RunError
        The run folder or its checkpoint is missing.
    DatasetError
        The dataset lacks the run's encoding, no stretch of known tokens is longer
        than the window, or the run's training data is gone or changed (the baselines
        are fitted on it).
    """
    config.validate()
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir, config.checkpoint)
    run_config = TrainConfig.from_dict(ckpt.train_config)
    vocab = Vocabulary(ckpt.vocab)
    if config.window < 0:
        config = replace(config, window=get_codec(ckpt.encoding).eval_window)
    target = load_dataset(config.dataset, ckpt.encoding)
    chosen = target.sequences if config.side == "all" else target.side_sequences(config.side)
    pieces = [s for s in chosen.values() if s]
    segments, unknown, examples = known_segments(pieces, vocab)
    windows = make_windows(segments, config.window, 1) if config.window else None
    n = len(windows) if windows is not None else int(sum(max(len(a) - 1, 0) for a in segments))
    if n == 0:
        raise DatasetError(f"nothing to score in {config.dataset}: no piece has {config.window + 1} tokens in a row "
                           f"that {run_dir.name} knows ({unknown:,} unknown tokens); lower --window")
    train_ds, train_pieces, fingerprint = training_data(run_config)
    if ckpt.data_fingerprint and ckpt.data_fingerprint != fingerprint:
        raise DatasetError(f"the baselines need {run_dir.name}'s training data, but {run_config.dataset} changed "
                           "since the run was trained; extract it again as it was, or evaluate without it")
    if train_ds.vocab.tokens != vocab.tokens:
        raise DatasetError(f"{run_config.dataset} no longer gives {run_dir.name}'s vocabulary; extract it again as it was")

    dev = resolve_device(device)
    model = model_from_checkpoint(ckpt).to(dev)
    predictor = as_predicting(model, ckpt, config.keys)
    keys = getattr(predictor, "keys", 1)
    scored = [predictor, model] if keys > 1 else [predictor]  # averaged over keys, then the written key's own rows
    on_total(n * (2 * len(scored) + len(config.orders)), f"evaluate {run_dir.name} on {Path(config.dataset).name}")
    task = ckpt.task
    on_dev = windows.to(dev) if windows is not None else None
    with torch.no_grad():
        (net, full), *rest = [_score(m, on_dev, segments, config.window, len(vocab), dev, progress) for m in scored]
    one_key = rest[0] if rest else None
    if windows is not None:
        contexts, targets = windows.arrays()
        targets = targets[:, -1]
    else:  # every token after a piece's first, as the full-context measure scores them
        contexts, targets = padded_contexts(segments, max(config.orders) - 1)
    baselines, baseline_acc = {}, {}
    fitted = fit_baselines(train_pieces, len(vocab), config.orders)
    for name, m in fitted.items():  # one sequence at a time
        res = m.evaluate(contexts, targets)
        baselines[name], baseline_acc[name] = res["loss"], res["acc"]
        if progress:
            progress(n)
    best = min(baselines, key=baselines.get)
    codec = get_codec(ckpt.encoding)
    if windows is None and not unknown and codec.scored_frames(pieces[0]) is not None:
        # the full-context targets are every token after each piece's first: exactly the per-frame ones
        per_frame = per_frame_result(int(sum(codec.scored_frames(p) for p in pieces)), full["full_loss"] * n,
                                     {k: v * n for k, v in baselines.items()}, keys)
    else:
        per_frame = frame_scores(codec, predictor, pieces, vocab, fitted, dev)
    rows = ckpt.metrics
    result = {
        "run": str(run_dir.resolve()), "dataset": str(Path(config.dataset).resolve()), "encoding": ckpt.encoding,
        "side": config.side, "task": task, "checkpoint": config.checkpoint,
        "epoch": int(best_row(rows, selection_metric(run_config))["epoch"]) if rows and config.checkpoint == "best"
        else ckpt.epoch,
        "window": config.window, "pieces": len(pieces), "tokens": int(sum(len(p) for p in pieces)),
        "unknown_tokens": int(unknown), "unknown_examples": examples, "targets": int(n),
        "loss": _opt(net["net_loss"]), "acc": _opt(net["net_acc"]),
        "full_context_loss": full["full_loss"], "full_context_acc": full["full_acc"],
        **({"mae": net["net_mae"], "full_context_mae": full["full_mae"]} if task == "regress" else {}),
        "loss_unit": "mse" if task == "regress" else "nats",
        "baselines": baselines, "baseline_acc": baseline_acc, "best_baseline": best,
        "gain": _gain(net["net_loss"] if windows is not None else full["full_loss"], baselines[best], task),
        "full_context_gain": _gain(full["full_loss"], baselines[best], task),
        "keys": keys, **per_frame,
        **({"one_key": {"loss": _opt(one_key[0]["net_loss"]), "acc": _opt(one_key[0]["net_acc"]),
                        "full_context_loss": one_key[1]["full_loss"], "full_context_acc": one_key[1]["full_acc"],
                        "gain": _gain(one_key[0]["net_loss"], baselines[best], task),
                        "full_context_gain": _gain(one_key[1]["full_loss"], baselines[best], task)}}
           if one_key else {}),
        "seconds": round(time.perf_counter() - t0, 3), "config": config.to_dict(),
    }
    result["file"] = str(write_eval(run_dir, eval_name(config.dataset, config.side), result))
    return result


def padded_contexts(arrays: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every token after each piece's first as a target, its ``width`` tokens before as context, padded at
    the piece's start with its first token: contexts int64 (n, width), targets int64 (n,)."""
    contexts, targets = [], []
    for a in arrays:
        padded = np.concatenate([np.full(width, a[0]), a]) if len(a) else a
        for t in range(1, len(a)):
            contexts.append(padded[t:t + width])
            targets.append(a[t])
    return np.array(contexts, dtype=np.int64).reshape(-1, width), np.array(targets, dtype=np.int64)


def frame_scores(codec, model, pieces: list[list[str]], vocab: Vocabulary, baselines: dict, dev) -> dict:
    """Nats per frame, the polyphonic benchmarks' measure, for an encoding with frames (else ``{}``).

    Every token of every whole piece after its opening marker is scored with the state carried from
    the piece's start (end-of-frame tokens included), summed, and divided by the number of frames
    (:meth:`pipeline.codecs.base.Codec.scored_frames`); ``model`` is what evaluate scores (averaged
    over keys where the run trained in several: a proper distribution). The fitted n-gram
    ``baselines`` are scored on the same tokens, each context padded at the piece's start with its
    opening token.

    Returns
    -------
    dict: ``frames``, ``nats_per_frame``, ``baseline_nats_per_frame`` (order -> nats/frame) and
    ``nats_per_frame_scored`` (which predictor was scored).
    """
    frames = [codec.scored_frames(p) for p in pieces]
    if not pieces or frames[0] is None:
        return {}
    arrays = [vocab.encode(p) for p in pieces]
    keys = getattr(model, "keys", 1)
    rows, chunk = _full_context_batch(keys, len(vocab))
    tot = score_full_context(model, arrays, 1, dev, rows=rows, chunk=chunk)
    width = max(m.order for m in baselines.values()) - 1
    ctx, tgt = padded_contexts(arrays, max(width, 1))
    return per_frame_result(int(sum(frames)), float(tot["loss"]),
                            {name: m.evaluate(ctx, tgt)["loss"] * len(tgt) for name, m in baselines.items()}, keys)


def per_frame_result(frames: int, total: float, baseline_totals: dict, keys: int) -> dict:
    """The per-frame fields of a result from summed losses (nats): the network's and each n-gram's."""
    n = max(frames, 1)
    return {"frames": frames, "nats_per_frame": total / n,
            "baseline_nats_per_frame": {k: v / n for k, v in baseline_totals.items()},
            "nats_per_frame_scored": "averaged over keys" if keys > 1 else "written key"}


def _full_context_batch(keys: int, vocab_size: int) -> tuple[int, int]:
    """Pieces read side by side and steps per call for the full-context measure. Pieces of similar length
    are read together (sorted), 64 rows of a batch in all (a key-averaged model reads each piece once per
    key): more rows would pad short pieces to the longest of their group, and on a CPU a padded step costs
    as much as a real one. The chunk keeps the logits near 2**23 floats."""
    rows = max(1, 64 // keys)
    return rows, int(min(256, max(8, 2 ** 23 // (rows * keys * vocab_size))))


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def _score(model, windows, segments: list[np.ndarray], window: int, vocab_size: int, dev,
           progress: Callable[[int], None] | None) -> tuple[dict, dict]:
    """Both measures of ``model`` (a network, or one averaged over keys) as :func:`summarise` rows ``net``/``full``.

    Batches shrink with the number of keys read at once, and full-context chunks
    with the vocabulary, so a key-averaged ``names`` model fits where one key did.
    """
    keys = getattr(model, "keys", 1)
    rows, chunk = _full_context_batch(keys, vocab_size)
    net = summarise(score_windows(model, windows, batch=max(1, 512 // keys), progress=progress), "net",
                    model.config.task) if windows is not None else {"net_loss": math.nan, "net_acc": math.nan}
    full = summarise(score_full_context(model, segments, max(window, 1), dev, rows=rows, chunk=chunk,
                                        progress=progress),
                     "full", model.config.task)
    return net, full


def _gain(loss: float, baseline: float, task: str) -> float | None:
    """Relative improvement over the best n-gram (nats only: a regressor's MSE is not comparable)."""
    if task == "regress" or not (math.isfinite(loss) and baseline > 0):
        return None
    return 1.0 - loss / baseline


def eval_markdown(result: dict) -> str:
    """The result as a Markdown table: one row per model, every row on the same targets (and, for an
    encoding with frames, its nats per frame)."""
    unit = "MSE" if result["loss_unit"] == "mse" else "loss (nats)"
    per_frame = "nats_per_frame" in result
    bpf = result.get("baseline_nats_per_frame", {})
    head = f"| model | {unit} | acc |" + (" nats/frame |" if per_frame else "")
    lines = [head, "|---|---|---|" + ("---|" if per_frame else "")]
    fmt = lambda x, f: "" if x is None else format(x, f)  # noqa: E731  (no window measure: window 0)

    def row(label: str, loss, acc, frame=None) -> None:
        lines.append(f"| {label} | {fmt(loss, '.4f')} | {fmt(acc, '.3f')} |" + (f" {fmt(frame, '.3f')} |" if per_frame
                                                                                 else ""))

    keys = f" (averaged over {result['keys']} keys)" if result.get("keys", 1) > 1 else ""
    if result["loss"] is not None:
        row(f"network{keys}, {result['window']}-token windows", result["loss"], result["acc"])
    row(f"network{keys}, full context", result["full_context_loss"], result["full_context_acc"],
        result.get("nats_per_frame"))
    if keys:
        one = result["one_key"]
        if one["loss"] is not None:
            row(f"network in the written key only, {result['window']}-token windows", one["loss"], one["acc"])
        row("network in the written key only, full context", one["full_context_loss"], one["full_context_acc"])
    for name, loss in result["baselines"].items():
        row(f"{name} (Witten-Bell, the run's training pieces)", loss, result["baseline_acc"][name], bpf.get(name))
    return "\n".join(lines) + "\n"
