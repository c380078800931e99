"""``cli.py train``: pick the dataset (the latest by default) and the run name, check a resume, train."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable


import pandas as pd

from pipeline.codecs import get_codec
from pipeline.core.errors import ConfigError, Interrupted, RunError
from pipeline.core.fsutil import check_replaceable, folder_lock
from pipeline.models.network import resolve_device
from pipeline.store.dataset import resolve_dataset
from pipeline.store.rundir import (MODEL_SHAPE, TrainConfig, read_metrics, read_run_config,
                                   read_status, run_name, with_encoding_defaults)

from pipeline.stages.train import RESUMABLE_CHANGES, TrainResult, train


def run(config: TrainConfig, *, runs: str | Path = "runs", name: str | None = None,
                  resume: bool = False, given: set[str] = frozenset(),
                  on_start: Callable[[str], None] = lambda s: None,
                  on_epoch: Callable[[dict], None] | None = None, limits: dict | None = None) -> TrainResult:
    """What ``cli.py train`` does: pick the dataset and run name, check a resume, train.

    ``given`` names the options the user typed; the others take their encoding's
    defaults (:func:`pipeline.store.rundir.with_encoding_defaults`: chars models have
    their own). On ``--resume`` any given option that would change the model or
    data is refused (the run's own config wins).
    """
    resolve_device(config.device)  # an absent accelerator is the one line, before anything is announced
    if name and (Path(name).is_absolute() or ".." in Path(name).parts):
        raise ConfigError(f"--name is a run folder under --runs ({runs}/), such as 'my-run' or 'study/gru-1x8', "
                          f"not {name!r}")
    run_dir = Path(runs) / name if name else None
    if run_dir is not None:
        check_replaceable(run_dir, "run")
    if resume and run_dir is None:
        raise ConfigError("--resume needs --name: the run folder to continue")
    if resume and not (run_dir / "config.json").exists() and "dataset" not in given:
        raise RunError(f"cannot resume: {run_dir} is not a run folder (start it without --resume, or give --data)")
    if resume and (run_dir / "config.json").exists():
        saved = TrainConfig.from_dict(read_run_config(run_dir))
        changed = sorted(k for k in given - {"dataset", *RESUMABLE_CHANGES}
                         if getattr(config, k) != getattr(saved, k))
        if changed:
            raise ConfigError(f"--resume continues {run_dir} with its own options; these differ from it: "
                              f"{', '.join('--' + k.replace('_', '-') for k in changed)} (start a new run instead)")
        if "epochs" in given and config.epochs < saved.epochs:
            raise ConfigError(f"--epochs {config.epochs} is fewer than the run's {saved.epochs}; --resume may only extend a run")
        status = read_status(run_dir)
        if "threads" not in given:  # the run's own thread count, not the option's default
            config = replace(config, threads=saved.threads)
        _check_budget(run_dir, saved, status, given)
        on_start(f"resuming {run_dir} at epoch {status.epoch + 1 if status else 1}")
        limits = {k: getattr(config, k) for k in ("epochs", "max_minutes", "patience") if k in given}
        return _train_locked(config, run_dir, runs, resume=True, on_epoch=on_epoch, limits=limits)
    if config.init_from:  # the base's network shape, unless given: its weights only fit that shape
        base = TrainConfig.from_dict(read_run_config(config.init_from))
        config = replace(config, **{k: getattr(base, k) for k in MODEL_SHAPE if k not in given})
        given = set(given) | set(MODEL_SHAPE)
    dataset, picked = resolve_dataset(config.dataset if "dataset" in given else None)
    config = with_encoding_defaults(replace(config, dataset=dataset), given)
    config.validate()
    run_dir = run_dir or Path(runs) / run_name(config, dataset_prefix=True)
    ignored = (f" (--transpose does not apply to {config.encoding})"
               if "transpose" in given and not get_codec(config.encoding).transposable else "")
    chosen = ("" if "encoding" in given else
              f" with the {config.encoding} encoding (the default: the notes sounding on a sixteenth grid, so samples "
              "keep chords, rhythm and a key; --encoding names is the nocturne study's set-up)")
    on_start(f"training {run_dir} on {'the latest dataset, ' if picked else ''}{dataset}{chosen}{ignored}")
    return _train_locked(config, run_dir, runs, resume=False, on_epoch=on_epoch)


def _check_budget(run_dir: Path, saved: TrainConfig, status, given: set[str]) -> None:
    """Refuse a resume that could train but a step: the run's --max-minutes budget is spent."""
    if not saved.max_minutes or "max_minutes" in given or (status and status.finished and "epochs" not in given):
        return
    spent = float(read_metrics(run_dir).get("seconds", pd.Series(dtype=float)).sum()) / 60
    if spent >= saved.max_minutes:
        raise ConfigError(f"{run_dir} has used its --max-minutes {saved.max_minutes:g} budget ({spent:.1f} minutes "
                          "trained); resume with a larger --max-minutes (0 = no limit) to train on")


def _train_locked(config: TrainConfig, run_dir: Path, runs: str | Path, **kw) -> TrainResult:
    """:func:`train` holding the run folder's lock; Ctrl-C says how to go on."""
    with folder_lock(run_dir, what=" (training it)"):
        try:
            return train(config, run_dir, **kw)
        except KeyboardInterrupt:
            status = read_status(run_dir) if (run_dir / "config.json").exists() else None
            where = f" --runs {runs}" if Path(runs) != Path("runs") else ""
            raise Interrupted(f"interrupted; {status.epoch if status else 0} finished epochs are kept in {run_dir}: "
                              f"continue with `train --name {run_dir.relative_to(runs)}{where} --resume`") from None
