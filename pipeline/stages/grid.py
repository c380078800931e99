"""Stage 2b: train every combination of options (a grid) into ``runs/<grid>/``.

Each combination is an ordinary run folder written by :func:`pipeline.stages.train.train`,
``runs/<grid>/<cell>-<layers>x<hidden>-<hash>``, where the hash is a sha256 over
the sorted configuration (:func:`run_id`), so one configuration lands in the same
folder in every process, on every machine, on every re-run (an existing folder is
also found by its ``config.json``, so runs survive new training options).
``grid.json`` lists the configurations, their ids and how each one last ended.

Re-running a grid is cheap and safe: finished runs are read back and not trained
again, interrupted ones resume from ``last.pt``, and a folder killed before its
first checkpoint is cleared and trained from the start. One run failing does not
stop the others; its error is kept in ``grid.json`` and the summary.

Small recurrent models use a CPU core poorly, so the local executor trains one
run per core, each with one torch thread (see ``bench/bench_grid.py``). Where
CUDA GPUs are present, runs that may use one (``--device auto`` or ``cuda``)
share them: the local executor deals them round robin over the GPUs
(:func:`spread_over_gpus`, :data:`RUNS_PER_GPU` at a time per GPU by default),
and a Ray task asks for a fraction of a GPU (:func:`gpu_share`).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from pipeline.core.errors import ConfigError, PipelineError, RunError
from pipeline.core.config import StageConfig
from pipeline.store.dataset import load_dataset
from pipeline.core.fsutil import atomic_write_json, claim, folder_lock, owned, refusal
from pipeline.core.procs import die_with_parent, terminate_as_interrupt
from pipeline.models.gpus import RUNS_PER_GPU, _wants_gpu, gpu_share, local_gpus, spread_over_gpus  # noqa: F401
from pipeline.stages.report import ensure_run_curves, read_run, write_report
from pipeline.store.rundir import (TrainConfig, canonical_config, read_status, run_name,
                                  with_encoding_defaults)

EXECUTORS = ("local", "ray")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
# Runs sharing one GPU by default: a small recurrent model keeps a GPU busy only a fraction of
# the time (each step is a handful of small kernels), so several runs fill the gaps.


@dataclass
class GridConfig(StageConfig):
    """How a grid is run (not what it trains); saved in ``grid.json``."""

    name: str = "grid"
    runs: str = "runs"
    workers: int = 0          # runs trained at once; 0 = one per core (local) / no limit (ray)
    executor: str = "local"   # local: a process pool; ray: Ray tasks of one CPU each
    address: str = ""         # Ray cluster address; "" = start a local Ray

    def validate(self) -> None:
        super().validate()
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        if self.workers < 0:
            raise ConfigError("--workers must be >= 0 (0 = one per core)")
        if self.address and self.executor != "ray":
            raise ConfigError("--address is for --executor ray")
        if self.address and not _valid_address(self.address):
            raise ConfigError(f"--address must be HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto, "
                              f"not {self.address!r}")
        if not self.name or Path(self.name).name != self.name:
            raise ConfigError(f"--name must be a plain folder name, not {self.name!r}")

    @property
    def folder(self) -> Path:
        return Path(self.runs) / self.name


def _valid_address(address: str) -> bool:
    """Whether a Ray address names a host and a port (1-65535), or is ``auto``."""
    if address == "auto":
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    return bool(sep and host and host.strip(":") and port.isdigit() and 0 < int(port) < 65536)


def cpu_count() -> int:
    """Cores this process may use (honours CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------ configurations

def run_id(config: TrainConfig) -> str:
    """Readable, process-independent folder name of a run, e.g. ``gru-4x128-3f9a0c21be``.

    See :func:`pipeline.store.rundir.run_name`: the hash is sha256 over the sorted
    canonical config (every field but execution settings). A new training option
    changes the hash of new runs, but :func:`run_grid` finds existing runs by their
    ``config.json``, so runs written before keep being skipped or resumed.
    """
    return run_name(config, hashed=True)


def _config_key(config: TrainConfig) -> str:
    return json.dumps(canonical_config(config), sort_keys=True)


def existing_runs(folder: Path) -> dict[str, str]:
    """Run folders of a grid by configuration: ``{config key: folder name}``.

    ``config.json`` written before an option existed reads back with that
    option's default, so it still matches the same request.
    """
    found = {}
    for path in sorted(Path(folder).glob("*/config.json")):
        try:
            found.setdefault(_config_key(TrainConfig.from_dict(json.loads(path.read_text()))), path.parent.name)
        except (ValueError, TypeError):
            continue  # damaged: the folder named by run_id, if it is this one, reports it
    return found


def expand_grid(values: Mapping[str, Sequence], given: set[str] | None = None) -> tuple[list[TrainConfig], list[dict]]:
    """Every combination of option values, as validated TrainConfigs.

    Parameters
    ----------
    values : TrainConfig field -> the values to try, e.g. ``{"cell": ["rnn", "gru"],
        "hidden": [64, 128]}``; fields not given keep their defaults.
    given : the fields the user chose (default: those in ``values``); the others
        take their encoding's defaults (:func:`pipeline.store.rundir.with_encoding_defaults`).

    Returns
    -------
    configs : one per distinct valid combination (duplicates removed), in product order.
    skipped : ``{"config", "reason"}`` for each combination that is invalid, e.g.
        ``task=regress`` with ``encoding=names``.

    Raises ConfigError for an unknown field, an empty list, or when no combination is valid.
    """
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"not training options: {', '.join(unknown)}")
    keys = [k for k in names if k in values]
    for k in keys:
        if len(values[k]) == 0:
            raise ConfigError(f"--{k} needs at least one value")
    configs, skipped, seen = [], [], set()
    chosen = set(values) if given is None else set(given)
    for combo in itertools.product(*(values[k] for k in keys)):
        config = with_encoding_defaults(TrainConfig(**dict(zip(keys, combo))), chosen)
        try:
            config.validate()
        except ConfigError as exc:
            skipped.append({"config": dict(zip(keys, combo)), "reason": str(exc)})
            continue
        rid = run_id(config)
        if rid not in seen:
            seen.add(rid)
            configs.append(config)
    if not configs:
        raise ConfigError(f"no valid combination of options: {skipped[0]['reason']}")
    return configs, skipped


def _cost(config: TrainConfig) -> float:
    """Rough work per epoch, used to start the biggest runs first (shorter grids)."""
    width = config.hidden + (config.embed or config.hidden)
    return _GATES.get(config.cell, 1) * config.layers * config.hidden * width / config.stride


# ------------------------------------------------------------------ one run

def run_one(config: dict, run_dir: str, cwd: str = "") -> dict:
    """Train a run, or resume it when its folder holds ``last.pt``; the executors' task.

    Takes and returns plain data so it crosses process (and Ray) boundaries.
    Errors are returned, not raised, so one failure never stops the grid;
    KeyboardInterrupt still propagates.

    Returns
    -------
    ``{"status": "finished", **train's summary}`` or ``{"status": "failed", "error",
    "traceback"}`` (the traceback only for errors that are not the user's).
    """
    if cwd and os.getcwd() != cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # a Ray worker may start elsewhere; the grid passes absolute paths, this is for the rest
    from pipeline.stages.train import train  # torch is imported in the worker, not by the grid's own process

    t0 = time.perf_counter()
    try:
        with folder_lock(run_dir, what=" (training it)"):
            summary = train(TrainConfig.from_dict(config), run_dir, resume=(Path(run_dir) / "last.pt").exists())
        return {"status": "finished", **asdict(summary), "wall_seconds": time.perf_counter() - t0}
    except PipelineError as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # a bug, or e.g. out of memory: keep the traceback for the report
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def _prepare(config: TrainConfig, run_dir: Path) -> str:
    """What a run needs: ``skip`` (finished), ``resume``, ``restart`` (cleared) or ``train``.

    Raises RunError when the folder holds a different configuration.
    """
    if not run_dir.exists():
        return "train"
    if any(run_dir.iterdir()) and not owned(run_dir, "run"):
        raise RunError(refusal(run_dir, "run"))
    record = read_run(run_dir)
    if record["error"]:
        raise RunError(record["error"] + "; move the folder away to train it again")
    if record["config"] is not None:
        theirs = canonical_config(TrainConfig.from_dict(record["config"]))
        if theirs != canonical_config(config):
            diff = sorted(k for k in theirs if theirs[k] != canonical_config(config)[k])
            raise RunError(f"{run_dir} holds a different configuration ({', '.join(diff)} differ); move it away")
    if record["has_checkpoint"]:
        if record["status"] == "finished":
            ensure_run_curves(run_dir)  # its training was stopped while drawing them
            return "skip"
        return "resume"
    if record["config"] is None:
        raise RunError(f"{run_dir} is not a run folder (no config.json); move it away")
    # killed before its first checkpoint: nothing worth keeping, unless another process is training it now
    with folder_lock(run_dir, what=" (training it)"):
        shutil.rmtree(run_dir)
    return "restart"


# ------------------------------------------------------------------ executors

Job = tuple[str, dict, str]  # (run id, config dict, run folder)


def _run_local(jobs: list[Job], workers: int, cwd: str) -> Iterator[tuple[str, dict]]:
    """Yield ``(run id, result)`` as runs end, at most ``workers`` at a time."""
    if workers == 1:
        for rid, config, run_dir in jobs:
            yield rid, run_one(config, run_dir, cwd)
        return
    queue, running, pool = list(jobs), {}, None
    try:
        while queue or running:
            if pool is None:
                # spawn, not fork: forking a parent whose torch/OpenMP threads already ran can hang
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=die_with_parent, initargs=(os.getpid(),))
            # submit only what can start now: a queued run must not start after Ctrl-C
            while queue and len(running) < workers:
                rid, config, run_dir = queue.pop(0)
                running[pool.submit(run_one, config, run_dir, cwd)] = rid
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                rid = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool as exc:  # a worker was killed (e.g. out of memory): new pool
                    result = {"status": "failed", "error": f"worker process died ({exc}); re-run the grid to resume"}
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
                yield rid, result
    except BaseException:
        # Ctrl-C in a terminal reaches the workers too; a SIGINT sent to this process alone does not
        for pid in list(getattr(pool, "_processes", None) or {}):  # private, but stable since 3.3
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install .[ray]") from None
    return ray


def _answers(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_ray(jobs: list[Job], workers: int, address: str, cwd: str) -> Iterator[tuple[str, dict]]:
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        # workers import this package by name: make it importable wherever they start
        root = str(Path(__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        host, _, port = address.rpartition(":")
        if port.isdigit() and not _answers(host, int(port)):  # else ray.init retries for many minutes
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: nothing answers there "
                              "(is it running? `ray status` on its head node)")
        try:
            ray.init(address=address or None, num_cpus=None if address else (workers or cpu_count()),
                     include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
        except ConnectionError as exc:
            if not address:
                raise
            # Ray's own message is a chain of tracebacks; say what to do in one line
            auth = isinstance(exc.__cause__, getattr(ray.exceptions, "AuthenticationError", ()))
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: " + (
                "it uses token authentication (`ray start` turns it on where ~/.ray/auth_token exists); "
                "run the grid with RAY_AUTH_MODE=token and that token, or start the cluster with RAY_AUTH_MODE=disabled"
                if auth else "is it running? (`ray status` on its head node)")) from None
    task = ray.remote(num_cpus=1, max_retries=0)(run_one)
    queue, running = list(jobs), {}
    try:
        # a share of a GPU per run where the cluster has GPUs; Ray sets each task's CUDA_VISIBLE_DEVICES
        gpus = ray.cluster_resources().get("GPU", 0)
        asked = sorted({c["device"] for _, c, _ in jobs if c["device"].startswith("cuda")})
        if asked and not gpus:
            raise ConfigError(f"--device {asked[0]}: the Ray cluster{' at ' + address if address else ''} "
                              "has no GPU; use --device auto or cpu")
        share = gpu_share(workers, gpus) if gpus else 0.0
        while queue or running:
            while queue and (not workers or len(running) < workers):
                rid, config, run_dir = queue.pop(0)
                gpu = share if _wants_gpu(config["device"]) else 0.0
                running[task.options(num_gpus=gpu).remote(config, run_dir, cwd)] = rid
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                rid = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task's worker died
                    result = {"status": "failed", "error": f"Ray task failed ({type(exc).__name__}: {exc})"}
                yield rid, result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ------------------------------------------------------------------ the grid

def run_grid(configs: Sequence[TrainConfig], grid: GridConfig, *,
             skipped: Sequence[dict] = (), progress: Callable[[str, dict], None] | None = None) -> dict:
    """Train every configuration as a run folder under ``<grid.runs>/<grid.name>/``, then summarise.

    Parameters
    ----------
    configs : from :func:`expand_grid`. A config with ``threads=0`` gets
        ``cores // workers`` threads (1 with the default one-run-per-core).
    grid : where and how to run.
    skipped : invalid combinations from :func:`expand_grid`, recorded in ``grid.json``.
    progress : called once per run as it ends (or is found finished) with its id
        and its result (``status``, ``action``, ``error`` or train's summary).

    Returns
    -------
    ``{"folder", "runs": {id: result}, "counts": {trained, resumed, restarted, skipped,
    failed}, "table": summary DataFrame, "files": written report files}``.
    ``grid.json`` lists this call's configurations; runs that earlier calls with other
    options left in the folder still appear in the summary.
    KeyboardInterrupt propagates after ``grid.json`` is saved; finished epochs are kept.

    The local executor starts worker processes with ``spawn``: a script calling this
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    grid.validate()
    if not configs:
        raise ConfigError("the grid has no configuration")
    if grid.executor == "ray":
        _import_ray()
    for dataset, encoding in sorted({(c.dataset, c.encoding) for c in configs}):
        load_dataset(dataset, encoding)  # one clear error now rather than one per run
    # one grid process per folder: a second would take the first's live runs for killed ones
    with folder_lock(grid.folder, what=" (a grid is training in it)"), terminate_as_interrupt():
        claim(grid.folder, "grid")
        return _run_grid(configs, grid, skipped, progress)


def _run_grid(configs: Sequence[TrainConfig], grid: GridConfig, skipped: Sequence[dict],
              progress: Callable[[str, dict], None] | None) -> dict:
    folder = grid.folder
    gpus = local_gpus(configs) if grid.executor == "local" else 0
    n_workers = grid.workers or (min(cpu_count(), RUNS_PER_GPU * gpus) if gpus else
                                 cpu_count() if grid.executor == "local" else 0)

    # grid.json describes this invocation; runs of earlier ones stay in their folders (and the report)
    entries: dict[str, dict] = {}
    results: dict[str, dict] = {}
    actions: dict[str, str] = {}
    todo: list[tuple[str, TrainConfig, Path]] = []
    found = existing_runs(folder)
    for config in configs:
        rid = found.get(_config_key(config)) or run_id(config)
        run_dir = folder / rid
        entries[rid] = {"id": rid, "config": canonical_config(config), "status": "pending"}
        try:
            actions[rid] = _prepare(config, run_dir)
        except PipelineError as exc:
            actions[rid] = "none"
            results[rid] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            continue
        if actions[rid] == "skip":
            results[rid] = {"status": "finished"}
            continue
        todo.append((rid, config, run_dir))
    # one torch thread per run when runs fill the cores; more when fewer runs remain than cores
    threads = 1 if grid.executor == "ray" else max(1, cpu_count() // max(1, min(n_workers, len(todo))))
    # absolute paths: a Ray worker on another node (or in another folder) finds the same files
    jobs = sorted(((rid, replace(c, threads=c.threads or threads, dataset=os.path.abspath(c.dataset)).to_dict(),
                    os.path.abspath(d)) for rid, c, d in todo), key=lambda job: -_cost(TrainConfig.from_dict(job[1])))
    for job, device in zip(jobs, spread_over_gpus([c["device"] for _, c, _ in jobs], gpus)):
        job[1]["device"] = device  # an execution setting: the run's id and folder stay the same

    def record(rid: str, result: dict) -> None:
        result["action"] = actions[rid]
        entries[rid].update(status=result["status"], error=result.get("error", ""))
        if "traceback" in result:
            entries[rid]["traceback"] = result["traceback"]
        else:
            entries[rid].pop("traceback", None)
        results[rid] = result
        if progress:
            progress(rid, result)

    def save() -> None:
        atomic_write_json(folder / "grid.json", {
            "grid": asdict(grid), "runs": list(entries.values()),
            "skipped_combinations": list(skipped)})

    for rid, result in list(results.items()):
        record(rid, result)
    save()
    cwd = os.getcwd()
    stream = (_run_local(jobs, min(n_workers, len(jobs)) or 1, cwd) if grid.executor == "local"
              else _run_ray(jobs, n_workers, grid.address, cwd))
    try:
        for rid, result in stream:
            record(rid, result)
            save()
    finally:
        for rid, entry in entries.items():
            if entry["status"] == "pending":  # interrupted: the run's own status.json says how far it got
                try:
                    status = read_status(folder / rid)
                except PipelineError:
                    status = None
                entry["status"] = "finished" if status and status.finished else "interrupted"
        save()
    report = write_report(folder)
    counts = {"trained": 0, "resumed": 0, "restarted": 0, "skipped": 0, "failed": 0}
    names = {"train": "trained", "resume": "resumed", "restart": "restarted", "skip": "skipped"}
    for rid, result in results.items():
        counts["failed" if result["status"] == "failed" else names[result["action"]]] += 1
    return {"folder": str(folder), "runs": results, "counts": counts, **report}
