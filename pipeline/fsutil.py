"""Small file-system helpers: atomic writes, hashing, stable ids."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def stable_id(obj: Any, length: int = 10) -> str:
    """A process-independent id: sha256 over sorted JSON (never ``hash()``)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, then rename over ``path``.

    A reader (or a killed writer) never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_text(obj: Any, indent: str = "") -> str:
    """``json.dumps(obj, indent=2)``, except that a list holding no list or dict stays on one line.

    A token sequence is such a list: written by the C encoder in one line, not
    by the pure-Python indenting encoder one token a line (ten times slower for
    a corpus of millions of notes, and a file of millions of lines).
    """
    inner = indent + "  "
    if isinstance(obj, dict) and obj:
        items = (f"{inner}{_JSON.encode(k if isinstance(k, str) else _JSON.encode(k))}: "
                 f"{_json_text(v, inner)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, (list, tuple)) and any(issubclass(t, (dict, list, tuple)) for t in set(map(type, obj))):
        return "[\n" + ",\n".join(inner + _json_text(v, inner) for v in obj) + "\n" + indent + "]"
    return _JSON.encode(obj)


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)  # one encoder: json.dumps makes one a call


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (lists of plain values on one line), atomically."""
    return atomic_write_text(path, _json_text(obj) + "\n")


def atomic_write_figure(path: str | Path, fig, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically (a killed run never leaves half a picture)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of ``final``.

    If the body raises, the temporary folder is removed and ``final`` is left
    exactly as it was, so earlier results survive a failed re-run.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
