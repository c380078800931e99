"""Stage 3: sample token sequences from a trained run.

Sampling feeds the primer once, then carries the recurrent state forward one
token at a time: each new token costs one step of the network, not a pass over
a whole window. All samples are drawn as one batch.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .encodings import END, START, Vocabulary
from .errors import ConfigError, RunError
from .extract import load_dataset
from .fsutil import atomic_write_json
from .model import PITCH_CENTER, PITCH_SCALE, SequenceModel
from .train import load_checkpoint, model_from_checkpoint



@dataclass
class GenerateConfig:
    """Options of the generate stage; saved as ``samples.json`` beside the samples."""

    count: int = 4
    length: int | None = None  # new tokens per sample, at most; None = 1,000 for chars, 300 for notes
    temperature: float = 1.0   # 0 = always the most likely token
    seed: int = 0
    primer: str = "validation"  # "validation" (opening of a held-out piece), "start", or "tokens"
    primer_tokens: tuple[str, ...] = ()
    primer_length: int = 0     # 0 = the run's window
    primer_piece: str = ""     # which held-out piece; "" = the first
    checkpoint: str = "best"


@torch.no_grad()
def sample(model: SequenceModel, primer_ids: torch.Tensor, length: int, temperature: float,
           generator: torch.Generator, stop_id: int | None = None,
           values: torch.Tensor | None = None, noise: float = 0.0) -> list[list[int]]:
    """Draw a batch of continuations, carrying the recurrent state.

    Parameters
    ----------
    model : a classifier or regressor from :mod:`pipeline.model`.
    primer_ids : int64 (batch, primer_len), the same primer repeated or different primers.
    length : maximum number of new tokens.
    temperature : softmax temperature; 0 = greedy. For regression, the scale of
        Gaussian noise (in units of ``noise`` semitones) added before rounding.
    generator : torch RNG, so samples repeat for the same seed.
    stop_id : token id that ends a sample (kept in the output), e.g. ``<end>``.
    values : regression only: scaled pitch of each vocabulary id, shape (vocab,).

    Returns
    -------
    ids : one list of new token ids per batch row (primer excluded).
    """
    model.eval()
    out, state = model(primer_ids)
    last = out[:, -1]
    batch = primer_ids.shape[0]
    done = torch.zeros(batch, dtype=torch.bool)
    result: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(length):
        if values is None:
            if temperature <= 0:
                nxt = last.argmax(-1)
            else:
                probs = torch.softmax(last / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            semis = last * PITCH_SCALE + PITCH_CENTER
            if temperature > 0 and noise > 0:
                semis = semis + torch.randn(batch, generator=generator) * noise * temperature
            # nearest vocabulary entry (the pitch vocabulary is 0..127)
            nxt = (semis[:, None] - (values[None, :] * PITCH_SCALE + PITCH_CENTER)).abs().argmin(-1)
        ids, live = nxt.tolist(), done.tolist()
        for b in range(batch):
            if not live[b]:
                result[b].append(ids[b])
        if stop_id is not None:
            done |= nxt == stop_id
            if bool(done.all()):
                break
        out, state = model(nxt[:, None], state)
        last = out[:, -1]
    return result


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


def read_primers(ckpt: dict, run_dir: Path) -> dict[str, list[str]]:
    """Openings of the held-out pieces saved in the run folder at training time.

    Older run folders without ``primers.json`` fall back to the dataset.
    """
    path = Path(run_dir) / "primers.json"
    if path.exists():
        return json.loads(path.read_text())
    from .train import validation_openings
    tc = ckpt["train_config"]
    return validation_openings(load_dataset(tc["dataset"], tc["encoding"]), 200)


def choose_primer(ckpt: dict, config: GenerateConfig, run_dir: Path) -> tuple[list[str], dict]:
    """The primer tokens and a description of where they came from."""
    vocab = Vocabulary(ckpt["vocab"])
    tc = ckpt["train_config"]
    n = config.primer_length or tc["window"]
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
    if config.primer != "validation":
        raise ConfigError("--primer must be validation, start or tokens")
    openings = read_primers(ckpt, run_dir)
    if not openings:
        raise RunError("the run has no held-out openings (primers.json); use --primer start or tokens")
    piece = config.primer_piece or next(iter(openings))
    if piece not in openings:
        raise ConfigError(f"no held-out piece {piece!r}; choose from {', '.join(openings)}")
    tokens = openings[piece][:n]
    return list(tokens), {"kind": "validation", "piece": piece, "length": len(tokens)}


def generate(run_dir: str | Path, config: GenerateConfig, out_dir: str | Path | None = None) -> dict:
    """Sample ``config.count`` sequences from a run into ``<run>/samples/<tag>/samples.json``.

    Returns a dict with the output folder and the samples (lists of tokens).
    """
    if config.count < 1 or (config.length is not None and config.length < 1):
        raise ConfigError("--count and --length must be at least 1")
    if config.temperature < 0 or math.isnan(config.temperature):
        raise ConfigError("--temperature must be >= 0")
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir, config.checkpoint)
    model = model_from_checkpoint(ckpt)
    vocab = Vocabulary(ckpt["vocab"])
    if config.length is None:
        config = replace(config, length=1000 if ckpt["encoding"] == "chars" else 300)
    primer, primer_info = choose_primer(ckpt, config, run_dir)
    g = torch.Generator().manual_seed(config.seed)
    ids = torch.tensor(vocab.encode(primer))[None, :].repeat(config.count, 1)
    values = noise = None
    if ckpt["task"] == "regress":
        values = torch.tensor([(float(t) - PITCH_CENTER) / PITCH_SCALE for t in vocab.tokens])
        best = min(ckpt["metrics"], key=lambda r: r["val_loss"])
        noise = math.sqrt(best["val_loss"]) * PITCH_SCALE  # validation RMSE in semitones
    stop = vocab.index.get(END)
    new = sample(model, ids, config.length, config.temperature, g, stop_id=stop, values=values, noise=noise or 0.0)
    samples = [vocab.decode(s) for s in new]
    out = Path(out_dir) if out_dir else sample_folder(run_dir, config)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "samples.json", {
        "run": str(run_dir), "encoding": ckpt["encoding"], "task": ckpt["task"],
        "config": asdict(config), "primer": primer, "primer_info": primer_info,
        "samples": samples})
    return {"folder": str(out), "samples": samples, "primer": primer}


def sample_folder(run_dir: Path, config: GenerateConfig) -> Path:
    """``samples/t<T>-s<seed>``; if that holds samples drawn with other options, ``…-2``, ``-3``…

    The same options give the same samples, so they may replace themselves;
    samples drawn with other options are never overwritten.
    """
    tag = f"t{config.temperature:g}-s{config.seed}"
    want = json.loads(json.dumps(asdict(config)))
    for k in range(1, 1000):
        folder = run_dir / "samples" / (tag if k == 1 else f"{tag}-{k}")
        try:
            if json.loads((folder / "samples.json").read_text())["config"] != want:
                continue
        except (OSError, ValueError, KeyError):
            if folder.exists() and any(folder.iterdir()):
                continue
        return folder
    raise RunError(f"too many sample folders named {tag}-* in {run_dir / 'samples'}")


def read_samples(folder: str | Path) -> dict:
    path = Path(folder) / "samples.json" if Path(folder).is_dir() else Path(folder)
    if not path.exists():
        raise RunError(f"{folder} holds no samples.json; run `generate` first")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise RunError(f"{path} is damaged ({exc})") from None
