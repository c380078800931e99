"""Owner of the run folder ``runs/<run>/``: its reader and writer.

Layout::

    config.json     the TrainConfig, plus the model's arguments, parameter count, window
                    counts, vocabulary size and the dataset's fingerprint
    metrics.csv     one row per epoch: train loss and accuracy, optimizer steps, the study's validation measure
                    (``val_loss``/``val_acc``: next token after every window, stride 1) and the
                    full-context one (``val_full_loss``/``val_full_acc``: the same targets, the
                    state carried from each held-out piece's start); MAE for regression; seconds
                    (and those of validation)
    status.json     epoch, best epoch, best validation loss, finished flag (written with each epoch)
    last.pt         everything to resume exactly (model, optimizer, RNG, early-stopping state)
    best.pt         the same at the best validation loss so far
    timing.json     the corpus's rhythms (rendering), copied from the dataset
    primers.json    openings of the held-out pieces (generation), copied from the dataset
    curves.png      loss and accuracy per epoch
    samples/        folders written by ``generate`` (:mod:`pipeline.store.samples`)
    eval/<dataset>-<hash>.json  scores on another dataset, written by ``evaluate`` (:func:`write_eval`, :func:`eval_name`)

The best epoch (``best.pt``, early stopping) is the one with the lowest
:func:`selection_metric`: the full-context loss for truncated-BPTT runs, the
study's window loss for window-trained ones.

Reading a run's config, metrics or status never imports torch; only the
checkpoint functions do. Paths stored in the folder (the dataset) are absolute.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipeline.codecs import CODECS, get_codec
from pipeline.core.choices import CELL_NAMES, EXECUTION_ONLY, MODES, OPTIMIZER_NAMES, STACKS, STUDY_WINDOW, TASKS  # noqa: F401
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError, RunError
from pipeline.core.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, claim, stable_id

CONFIG, METRICS, STATUS, TIMING, PRIMERS = "config.json", "metrics.csv", "status.json", "timing.json", "primers.json"
EVAL = "eval"
# What a config.json written before a field existed meant by its absence (where that differs
# from today's default): runs and grids written earlier keep their meaning.
LEGACY = {"encoding": "names", "mode": "windows", "transpose": 0, "weight_decay": 0.0, "val_sample": 0, "lr_decay": 1.0,
          "stack": "plain"}
PATHS = ("dataset", "init_from")  # options naming folders: stored absolute, so a run works from anywhere
MODEL_SHAPE = ("cell", "layers", "hidden", "embed", "stack", "task")  # what --init-from's weights fix


@dataclass
class TrainConfig(StageConfig):
    """Options of the train stage; saved as ``config.json`` in the run folder."""

    dataset: str = "processed/dataset"
    # frames by default: a model of the notes sounding on a sixteenth grid writes its own chords and rhythm, and
    # its samples of the user's nocturnes keep a key and a pulse where names (the study's) did not
    # (docs/bench/listen.md); --encoding names is the study's set-up
    encoding: str = "frames"
    task: str = "classify"
    mode: str = "tbptt"      # "tbptt": streams of whole pieces, state carried across chunks; "windows": the study's
    cell: str = "gru"
    stack: str = "residual"  # layers above the first add their input to their output; "plain": nn.GRU's stacking
    layers: int = 2
    hidden: int = 128
    embed: int = 64
    dropout: float = 0.2
    optimizer: str = "adam"
    lr: float = 0.002
    lr_decay: float = 1.0    # the learning rate is multiplied by this over each epoch (smoothly, every step)
    weight_decay: float = 0.0
    token_noise: float = 0.0  # training inputs replaced by other tokens of the batch, this share of them
    batch: int = 64          # windows (windows mode) or parallel streams (tbptt) per step
    window: int = 30         # tokens per window (windows mode) or per back-propagated chunk (tbptt)
    stride: int = 5          # windows mode: windows start every `stride` tokens; 1 = every window
    targets: str = "all"     # windows mode: "all" = loss at every position of a window; "last" = its next token
    epochs: int = 30
    patience: int = 5        # early stopping: epochs without a better validation loss
    seed: int = 0
    threads: int = 0         # torch intra-op threads; 0 = torch's default
    clip: float = 1.0        # gradient-norm clipping; 0 = off
    max_minutes: float = 0.0  # time budget (training + validation): the epoch it ends stops early; 0 = none
    transpose: int = 6       # augment: also train on every piece shifted by -N..+N semitones (note encodings)
    val_sample: int = 5000   # the window measure in training: at most this many evenly spaced targets; 0 = all
    device: str = "auto"     # execution setting: auto (CUDA, then MPS, then CPU), cpu, cuda, mps
    init_from: str = ""      # a run folder whose best weights this run starts from ("" = random initialisation)

    def validate(self) -> None:
        super().validate()
        if self.cell not in CELL_NAMES:
            raise ConfigError(f"--cell must be one of {', '.join(CELL_NAMES)}, not {self.cell!r}")
        if self.task not in TASKS:
            raise ConfigError("--task must be classify or regress")
        if self.encoding not in CODECS:
            raise ConfigError(f"--encoding must be one of {', '.join(CODECS)}, not {self.encoding!r}")
        if self.task == "regress" and not get_codec(self.encoding).can_regress:
            raise ConfigError("--task regress predicts a pitch number: use it with --encoding pitch")
        if self.stack not in STACKS:
            raise ConfigError(f"--stack must be one of {', '.join(STACKS)}, not {self.stack!r}")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "tbptt" and self.targets != "all":
            raise ConfigError("--targets last is the study's set-up: use it with --mode windows")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZER_NAMES)}")
        if self.targets not in ("all", "last"):
            raise ConfigError("--targets must be all or last")
        for name in ("layers", "hidden", "batch", "window", "stride", "epochs", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")
        if self.val_sample < 0:
            raise ConfigError("--val-sample must be >= 0 (0 = every validation target)")
        if self.embed < 0:
            raise ConfigError("--embed must be >= 0 (0 = one-hot input)")
        if not 0 <= self.dropout < 1:
            raise ConfigError("--dropout must be in [0, 1)")
        if self.lr <= 0:
            raise ConfigError("--lr must be positive")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError("--lr-decay must be in (0, 1] (1 = a constant learning rate)")
        if not 0 <= self.token_noise < 1:
            raise ConfigError("--token-noise must be in [0, 1) (0 = off)")
        if self.weight_decay < 0:
            raise ConfigError("--weight-decay must be >= 0")
        if not 0 <= self.transpose <= 11:
            raise ConfigError("--transpose must be between 0 and 11 semitones")

    def __post_init__(self) -> None:
        if self.encoding in CODECS and not get_codec(self.encoding).transposable:
            self.transpose = 0  # transposition is for notes; chars ignores it (one identity for the run)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """As :meth:`StageConfig.from_dict`, reading a field missing from an older run as it meant then (LEGACY)."""
        return super().from_dict({**LEGACY, **d})


def with_encoding_defaults(config: TrainConfig, given: set[str] | frozenset[str]) -> TrainConfig:
    """``config`` with every option not in ``given`` set to its encoding's default.

    ``given`` names the options the user chose (typed on the command line, or
    swept by a grid); the others were class defaults, which suit note encodings.
    An encoding's codec names its own (:attr:`pipeline.codecs.base.Codec.train_defaults`).
    """
    extra = {k: v for k, v in get_codec(config.encoding).train_defaults.items() if k not in given}
    return replace(config, **extra) if extra else config


def selection_metric(config: TrainConfig | dict) -> str:
    """The metrics column whose lowest value marks a run's best epoch (``best.pt``, early stopping).

    ``val_full_loss`` (the state carried over whole held-out pieces, as generation
    does) for truncated-BPTT runs; ``val_loss`` (the study's window measure) for
    window-trained runs and for rows written before the full-context loss existed.
    """
    mode = config.mode if isinstance(config, TrainConfig) else {**LEGACY, **config}.get("mode")
    return "val_full_loss" if mode == "tbptt" else "val_loss"


def normalise_options(config: dict) -> dict:
    """Every TrainConfig field of a run's config dict, coerced to its declared type.

    Fields missing from an older ``config.json`` take their defaults; ``0`` and
    ``0.0``, or ``processed/x/``, ``processed/x`` and its absolute path, read the same.
    """
    out = {}
    for f in fields(TrainConfig):
        value = type(f.default)(config.get(f.name, LEGACY.get(f.name, f.default)))
        out[f.name] = os.path.abspath(value) if f.name in PATHS and value else value
    return out


def canonical_config(config: TrainConfig | dict) -> dict:
    """The fields that define what a run learns (all but execution settings), normalised."""
    d = config.to_dict() if isinstance(config, TrainConfig) else config
    return {k: v for k, v in normalise_options(d).items() if k not in EXECUTION_ONLY}


def run_name(config: TrainConfig, *, dataset_prefix: bool = False, hashed: bool = False) -> str:
    """A run's readable name: ``[<dataset>-]<cell>-<L>x<H>[-<encoding>][-<task>][-<hash>]``.

    ``train`` uses the dataset prefix; a grid uses the hash (:func:`pipeline.core.fsutil.stable_id`
    of :func:`canonical_config`), so names are equal across processes.
    """
    parts = [Path(config.dataset).name] if dataset_prefix else []
    parts += [config.cell, f"{config.layers}x{config.hidden}"]
    parts += [config.encoding] if config.encoding != TrainConfig.encoding else []
    parts += [config.task] if config.task != "classify" else []
    parts += [stable_id(canonical_config(config))] if hashed else []
    return "-".join(parts)


# ------------------------------------------------------------------ plain files (no torch)

def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError:
        raise RunError(f"{path.parent} has no {path.name}; {what}") from None
    except ValueError as exc:
        raise RunError(f"{path} is damaged ({exc})") from None


def read_run_config(run_dir: str | Path) -> dict:
    """``config.json`` as written by :func:`write_run_header` (a dict: TrainConfig fields and more)."""
    if not is_run(run_dir):
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG})")
    return _read_json(Path(run_dir) / CONFIG, "is it a run folder written by `train`?")


def read_train_config(run_dir: str | Path) -> TrainConfig:
    return TrainConfig.from_dict(read_run_config(run_dir))


def write_run_header(run_dir: Path, config: TrainConfig, *, extra: dict, timing: dict,
                     primers: dict[str, list[str]]) -> None:
    """The files written once, when a run starts: config, timing and primers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CONFIG, {**config.to_dict(), **extra})
    atomic_write_json(run_dir / TIMING, timing)
    atomic_write_json(run_dir / PRIMERS, primers)


def read_timing(run_dir: str | Path) -> dict:
    return _read_json(Path(run_dir) / TIMING, "was it trained by this version of `train`?")


def read_primers(run_dir: str | Path) -> dict[str, list[str]]:
    """Openings of the held-out pieces saved at training time (``{}`` if the run kept none)."""
    path = Path(run_dir) / PRIMERS
    return _read_json(path, "") if path.exists() else {}


def read_metrics(run_dir: str | Path):
    """``metrics.csv`` as a DataFrame (empty before the first epoch)."""
    import pandas as pd

    path = Path(run_dir) / METRICS
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except Exception as exc:
        raise RunError(f"{path} is damaged ({type(exc).__name__})") from None


def eval_name(dataset: str | Path, side: str = "all") -> str:
    """The name of a run's scores on a dataset: ``<dataset name>-<hash>[-<side>]``.

    The hash (sha256 of the dataset's resolved path, 8 hex digits) keeps two datasets of one
    folder name (``a/nocturnes``, ``b/nocturnes``) from writing the same file.
    """
    resolved = Path(dataset).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return f"{resolved.name}-{digest}" + ("" if side == "all" else f"-{side}")


def eval_path(run_dir: str | Path, dataset_name: str) -> Path:
    """Where ``evaluate`` keeps a run's scores on one dataset: ``<run>/eval/<dataset name>.json``."""
    if not dataset_name or Path(dataset_name).name != dataset_name:
        raise RunError(f"not a dataset name: {dataset_name!r}")
    return Path(run_dir) / EVAL / f"{dataset_name}.json"


def write_eval(run_dir: str | Path, dataset_name: str, result: dict) -> Path:
    """Write (atomically, replacing an earlier one) a run's scores on one dataset; returns the path."""
    if not is_run(run_dir):
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG})")
    claim(Path(run_dir) / EVAL, "eval")
    return atomic_write_json(eval_path(run_dir, dataset_name), result)


def read_eval(run_dir: str | Path, dataset_name: str) -> dict:
    """A run's scores on one dataset, as :func:`write_eval` wrote them."""
    return _read_json(eval_path(run_dir, dataset_name), "score it first with `cli.py evaluate`")


def read_evals(run_dir: str | Path) -> dict[str, dict]:
    """Every dataset a run was scored on: ``{dataset name: result}`` (``{}`` if none)."""
    folder = Path(run_dir) / EVAL
    return {p.stem: read_eval(run_dir, p.stem) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


@dataclass
class RunStatus:
    """Where a run stands: the last finished epoch, the best one, and whether it is done."""

    epoch: int = 0
    best_epoch: int = 0
    best_val: float = float("inf")
    finished: bool = False
    checkpoint_bytes: int = 0  # size of last.pt when this was written: a damaged or stale last.pt shows


def read_status(run_dir: str | Path) -> RunStatus | None:
    """``status.json``; older runs without it are read from ``last.pt``; None before the first epoch."""
    run_dir = Path(run_dir)
    if (run_dir / STATUS).exists():
        d = _read_json(run_dir / STATUS, "")
        status = RunStatus(**{k: d[k] for k in d if k in RunStatus.__dataclass_fields__})
        last = run_dir / "last.pt"
        size = last.stat().st_size if last.exists() else 0
        if status.checkpoint_bytes and size != status.checkpoint_bytes:
            # killed between writing last.pt and status.json, or last.pt was damaged: the checkpoint decides
            ck = load_checkpoint(run_dir, "last")
            best = best_row(ck.metrics, selection_metric(ck.train_config))
            return RunStatus(ck.epoch, int(best["epoch"]), ck.best_val, ck.finished, size)
        return status
    if (run_dir / "last.pt").exists():  # written before status.json existed
        ck = load_checkpoint(run_dir, "last")
        best = best_row(ck.metrics, selection_metric(ck.train_config))
        return RunStatus(ck.epoch, int(best["epoch"]), ck.best_val, ck.finished)
    return None


def best_row(rows: list[dict], metric: str = "val_loss") -> dict:
    """The metrics row of the epoch with the lowest ``metric`` (see :func:`selection_metric`).

    Rows without that column (written before it existed) are judged by ``val_loss``.
    """
    if rows and metric not in rows[0]:
        metric = "val_loss"
    finite = [r for r in rows if r[metric] == r[metric]]
    if not finite:
        raise RunError("no epoch with a finite validation loss")
    return min(finite, key=lambda r: r[metric])


# ------------------------------------------------------------------ checkpoints (torch)

@dataclass
class Checkpoint:
    """What ``best.pt`` and ``last.pt`` hold (nanoGPT-style: the model carries its own arguments)."""

    model: dict                      # state dict
    model_args: dict                 # ModelConfig fields
    train_config: dict               # TrainConfig fields
    vocab: list[str]
    encoding: str
    task: str
    epoch: int = 0
    best_val: float = float("inf")
    bad_epochs: int = 0
    metrics: list[dict] = field(default_factory=list)
    finished: bool = False
    optimizer: dict | None = None
    torch_rng: Any = None
    device_rng: dict | None = None   # {device, state} of the CUDA/MPS generator (dropout there); None on the CPU
    data_fingerprint: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "Checkpoint":
        return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})


def save_checkpoint(run_dir: Path, ckpt: Checkpoint, *, best: bool) -> None:
    """Write ``last.pt`` (and ``best.pt`` when ``best``), ``metrics.csv`` and ``status.json``, atomically."""
    import pandas as pd
    import torch

    buf = io.BytesIO()
    torch.save(asdict(ckpt), buf)
    data = buf.getvalue()
    if best:
        atomic_write_bytes(run_dir / "best.pt", data)
    atomic_write_bytes(run_dir / "last.pt", data)
    atomic_write_text(run_dir / METRICS, pd.DataFrame(ckpt.metrics).to_csv(index=False))
    metric = selection_metric(ckpt.train_config)
    top = best_row(ckpt.metrics, metric) if ckpt.metrics else {"epoch": 0, metric: float("inf")}
    atomic_write_json(run_dir / STATUS, asdict(RunStatus(ckpt.epoch, int(top["epoch"]),
                                                         float(top.get(metric, top["val_loss"])),
                                                         ckpt.finished, len(data))))


def load_checkpoint(run_dir: str | Path, which: str = "best") -> Checkpoint:
    """Read ``best.pt`` or ``last.pt`` of a run; RunError with the fix if absent or damaged."""
    import torch

    path = Path(run_dir) / f"{which}.pt"
    if not path.exists():
        raise RunError(f"{run_dir} has no {which}.pt; is it a run folder written by `train`?")
    try:  # weights_only: never runs code from a shared run folder; any device loads any checkpoint
        return Checkpoint.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise RunError(f"{path} is damaged ({type(exc).__name__}); retrain or use the other checkpoint") from None


def latest_run(root: str | Path = "runs") -> Path | None:
    """The run folder (at any depth under ``root``) whose last epoch was written most recently."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = [p.parent for p in root.rglob("last.pt") if is_run(p.parent)]
    return max(found, key=lambda p: (p / "last.pt").stat().st_mtime_ns) if found else None


def resolve_run(run_dir: str | Path | None, root: str | Path = "runs") -> tuple[Path, bool]:
    """The run given, or the most recently trained one under ``root`` (and whether it was picked)."""
    if run_dir is not None:
        return Path(run_dir), False
    latest = latest_run(root)
    if latest is None:
        raise RunError(f"no trained run under {root}/; run `train` first (e.g. cli.py train --cell gru)")
    return latest, True
