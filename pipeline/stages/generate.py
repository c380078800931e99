"""Stage 4: sample token sequences from a trained run into ``runs/<run>/samples/<tag>/``.

Sampling feeds the primer once, then carries the recurrent state forward one
token at a time (:meth:`pipeline.models.network.SequenceModel.generate`): each new token
costs one step of the network, not a pass over a whole window. All samples are
drawn as one batch (``cli.py generate`` is :mod:`pipeline.commands.generate`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from pipeline.models.augment import KEYS, as_predicting
from pipeline.core.config import StageConfig
from pipeline.codecs import END, START, Vocabulary, get_codec
from pipeline.core.errors import ConfigError, RunError
from pipeline.core.fsutil import owned
from pipeline.core.procs import available_memory
from pipeline.models.network import PITCH_SCALE, SequenceModel, model_from_checkpoint, resolve_device
from pipeline.store.rundir import Checkpoint, best_row, load_checkpoint, read_primers
from pipeline.store.samples import Samples, read_config, write_samples

MAX_LENGTH = 100_000               # a sensible cap; --max-length lifts it


@dataclass
class GenerateConfig(StageConfig):
    """Options of the generate stage; saved in ``samples.json`` beside the samples."""

    count: int = 4
    length: int | None = None  # new tokens per sample, at most; None = 1,000 for chars, 300 for notes
    temperature: float = -1.0  # 0 = always the most likely token; -1 = the encoding's default
    seed: int = 0
    primer: str = "validation"  # "validation" (opening of a held-out piece), "start", or "tokens"
    primer_tokens: tuple[str, ...] = ()
    primer_length: int = 0     # 0 = the run's window
    primer_piece: str = ""     # which held-out piece; "" = the first
    checkpoint: str = "best"
    keys: str = "all"          # a note model trained in several keys draws from their average; "one": the written key

    def validate(self, max_length: int = MAX_LENGTH) -> None:
        super().validate()
        if self.count < 1 or (self.length is not None and self.length < 1):
            raise ConfigError("--count and --length must be at least 1")
        if self.primer_length < 0:
            raise ConfigError("--primer-length must be >= 0 (0 = the run's window)")
        if self.length is not None and self.length > max_length:
            raise ConfigError(f"--length {self.length:,} is over the cap of {max_length:,} tokens; "
                              "raise it with --max-length if you mean it")
        if not (self.temperature >= 0 or self.temperature == -1):
            raise ConfigError("--temperature must be a number >= 0")
        if self.primer not in ("validation", "start", "tokens"):
            raise ConfigError("--primer must be validation, start or tokens")
        if self.checkpoint not in ("best", "last"):
            raise ConfigError("--checkpoint must be best or last")
        if self.keys not in KEYS:
            raise ConfigError(f"--keys must be one of {', '.join(KEYS)}, not {self.keys!r}")


@torch.no_grad()
def sample_refeed(model: SequenceModel, primer_ids: torch.Tensor, length: int, temperature: float,
                  generator: torch.Generator, window: int) -> list[list[int]]:
    """Baseline for benchmarks: re-feed the last ``window`` tokens for every new token.

    This is how window-trained Keras models are usually sampled; it costs a
    full window pass per token. Classification only.
    """
    model.eval()
    seq = primer_ids
    for _ in range(length):
        out, _ = model(seq[:, -window:])
        probs = torch.softmax(out[:, -1] / max(temperature, 1e-6), -1)
        nxt = torch.multinomial(probs, 1, generator=generator)
        seq = torch.cat([seq, nxt], 1)
    return seq[:, primer_ids.shape[1]:].tolist()


def choose_primer(ckpt: Checkpoint, config: GenerateConfig, run_dir: Path) -> tuple[list[str], dict]:
    """The primer tokens and a description of where they came from."""
    vocab = Vocabulary(ckpt.vocab)
    n = config.primer_length or ckpt.train_config["window"]
    if config.primer == "tokens":
        unknown = [t for t in config.primer_tokens if t not in vocab.index]
        if unknown:
            raise ConfigError(f"primer tokens not in the model's vocabulary: {' '.join(unknown[:5])}")
        if not config.primer_tokens:
            raise ConfigError("--primer tokens needs at least one token")
        return list(config.primer_tokens), {"kind": "tokens"}
    if config.primer == "start":
        if START not in vocab.index:
            raise ConfigError("this model has no <start> token (it is not a chars model); use --primer validation")
        return [START], {"kind": "start"}
    openings = read_primers(run_dir)
    if not openings:
        raise RunError("the run has no held-out openings (primers.json); use --primer start or tokens")
    piece = config.primer_piece or next(iter(openings))
    if piece not in openings:
        raise ConfigError(f"no held-out piece {piece!r}; choose from {', '.join(openings)}")
    tokens = openings[piece][:n]
    return list(tokens), {"kind": "validation", "piece": piece, "length": len(tokens)}


def check_memory(count: int, tokens: int, vocab_size: int, model_args: dict, keys: int = 1) -> None:
    """Refuse (one line) a batch of samples whose estimated memory is over half of what is available.

    Per sample: ~80 bytes a token (the id tensor, the Python lists it becomes, its JSON), and the
    logits and recurrent state of every key drawn from, as float32 with their working copies.
    """
    per_sample = 80 * tokens + 16 * keys * (vocab_size + 2 * int(model_args.get("hidden", 0))
                                            * int(model_args.get("layers", 1))) + 500
    need, have = count * per_sample, available_memory()
    if have and need > have / 2:
        raise ConfigError(f"--count {count:,} samples of {tokens:,} tokens need about {need / 1e9:.1f} GB, over half "
                          f"the {have / 1e9:.1f} GB of memory available; lower --count (at most about "
                          f"{max(1, int(have / 2 // per_sample)):,} here) or --length")


def regression_noise(ckpt: Checkpoint) -> float:
    """Sampling noise of a pitch regressor: its validation RMSE, in semitones."""
    return math.sqrt(best_row(ckpt.metrics)["val_loss"]) * PITCH_SCALE if ckpt.metrics else 0.0


def generate(run_dir: str | Path, config: GenerateConfig, out_dir: str | Path | None = None, *,
             device: str = "auto", max_length: int = MAX_LENGTH, model: SequenceModel | None = None,
             ckpt: Checkpoint | None = None, progress: Callable[[int], None] | None = None) -> Samples:
    """Sample ``config.count`` sequences from a run into ``<run>/samples/<tag>/samples.json``.

    ``model``/``ckpt`` may be passed to reuse a loaded network across calls;
    ``progress`` is called with the number of new token steps as they are drawn.
    """
    run_dir = Path(run_dir)
    ckpt = ckpt or load_checkpoint(run_dir, config.checkpoint)
    codec = get_codec(ckpt.encoding)
    if config.length is None:
        config = replace(config, length=codec.default_length)
    if config.temperature < 0:
        config = replace(config, temperature=codec.default_temperature)
    config.validate(max_length)
    dev = resolve_device(device)
    model = (model or model_from_checkpoint(ckpt)).to(dev)
    vocab = Vocabulary(ckpt.vocab)
    primer, primer_info = choose_primer(ckpt, config, run_dir)
    g = torch.Generator(device=dev).manual_seed(config.seed)
    noise = regression_noise(ckpt) if ckpt.task == "regress" else 0.0
    predictor = as_predicting(model, ckpt, config.keys)  # averaged over the keys a transposed note run trained in
    check_memory(config.count, len(primer) + config.length, len(vocab), ckpt.model_args, getattr(predictor, "keys", 1))
    ids = torch.tensor(vocab.encode(primer), device=dev)[None, :].repeat(config.count, 1)
    new = predictor.generate(ids, config.length, config.temperature, g, stop_id=vocab.index.get(END), noise=noise,
                             progress=progress)
    out = Path(out_dir) if out_dir else sample_folder(run_dir, config)
    s = Samples(folder=out, run=run_dir, encoding=ckpt.encoding, task=ckpt.task, config=config.to_dict(),
                primer=primer, samples=[vocab.decode(x) for x in new], primer_info=primer_info)
    write_samples(s)
    return s


def sample_folder(run_dir: Path, config: GenerateConfig) -> Path:
    """``samples/t<T>-s<seed>``; if that holds samples drawn with other options, ``…-2``, ``-3``…

    The same options give the same samples, so they may replace themselves;
    samples drawn with other options are never overwritten.
    """
    tag = f"t{config.temperature:g}-s{config.seed}"
    want = config.to_dict()
    for k in range(1, 1000):
        folder = run_dir / "samples" / (tag if k == 1 else f"{tag}-{k}")
        found = read_config(folder)
        if found is not None and found != want:
            continue
        if folder.exists() and any(folder.iterdir()) and not owned(folder, "samples"):
            continue  # the user's, or an earlier version's: never written into
        return folder
    raise RunError(f"too many sample folders named {tag}-* in {run_dir / 'samples'}")
