"""Which GPUs the runs of a grid share: devices dealt round robin, Ray's share of a GPU per task.

Torch is imported only where a GPU may be present: a grid of CPU runs never loads it in its own process.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from pipeline.store.rundir import TrainConfig

RUNS_PER_GPU = 4


def _wants_gpu(device: str) -> bool:
    return device == "auto" or device.startswith("cuda")


def local_gpus(configs: Sequence[TrainConfig]) -> int:
    """CUDA devices this machine gives the runs that may use one (``--device auto`` or ``cuda``).

    Raises the one-line ConfigError of :func:`pipeline.models.network.resolve_device` when a run
    asks for a device that is absent. Torch is imported only where a GPU may be present.
    """
    asked = {c.device for c in configs if c.device != "cpu"}
    maybe_gpu = any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()  # NVIDIA, or ROCm
    if not (asked - {"auto"}) and not (asked and maybe_gpu):
        return 0  # CPU runs, or "auto" with no GPU driver: no need to load torch in this process
    # lazy, as above: torch (and the model module, which imports it) only when a GPU may be asked for
    import torch

    from pipeline.models.network import resolve_device
    for device in sorted(asked):
        resolve_device(device)
    return torch.cuda.device_count() if any(_wants_gpu(d) for d in asked) else 0


def spread_over_gpus(devices: Sequence[str], gpus: int) -> list[str]:
    """Each run's device, with runs that may use a GPU dealt round robin over ``cuda:0..gpus-1``.

    ``devices`` in the order runs start (biggest first), so each GPU gets a similar
    load; an explicit ``cuda:N`` or ``cpu`` is kept.
    """
    out, k = [], 0
    for d in devices:
        if gpus and d in ("auto", "cuda"):
            out.append(f"cuda:{k % gpus}")
            k += 1
        else:
            out.append(d)
    return out


def gpu_share(workers: int, gpus: float) -> float:
    """The share of one GPU a Ray task asks for (``num_gpus``): ``workers`` runs spread over
    ``gpus`` GPUs, or :data:`RUNS_PER_GPU` to a GPU with no ``--workers`` limit; at most 1."""
    per_gpu = math.ceil(workers / gpus) if workers else RUNS_PER_GPU
    return 1.0 / max(1, per_gpu)
