"""One convention for every stage's options.

Each stage has a small dataclass that inherits :class:`StageConfig`: it checks
itself in ``validate()`` (raising :class:`~pipeline.core.errors.ConfigError` with the
option's name), and goes to and from JSON with ``to_dict``/``from_dict`` and
``save``/``load``, so the options a stage ran with are saved beside its outputs
and read back unchanged (a test round-trips every stage config).
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.errors import ConfigError
from pipeline.core.fsutil import atomic_write_json

C = TypeVar("C", bound="StageConfig")


class StageConfig:
    """Mixin for stage-option dataclasses: validation and a JSON round trip."""

    def validate(self) -> None:
        """Raise ConfigError on a bad value; the base class checks that numbers are finite."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be a finite number, not {value}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build from a dict; unknown keys (from newer or older versions) are ignored,
        missing ones take their defaults, lists become tuples where the field is a tuple."""
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if isinstance(value, list) and typing.get_origin(hints.get(f.name)) is tuple:
                value = tuple(value)
            kw[f.name] = value
        return cls(**kw)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not a readable {cls.__name__} ({type(exc).__name__}: {exc})") from None
