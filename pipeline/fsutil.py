"""Small file-system helpers: atomic writes, hashing, stable ids."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


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


MARKER = ".musicrnn"  # in every folder the tool writes whole: only those may be replaced


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _no_space(exc: OSError, path: Path) -> None:
    import errno

    from .errors import PipelineError
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise PipelineError(f"no space left writing {path}; free some disk space (earlier results are intact)") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, then rename over ``path``.

    A reader (or a killed writer) never sees a half-written file. The file gets
    the permissions a plain ``open()`` would give it (0666 less the umask), not
    mkstemp's private 0600, so colleagues and web servers can read results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _no_space(exc, path)
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


def is_ours(folder: str | Path) -> bool:
    """True when ``folder`` was written whole by this tool (it holds the marker file)."""
    return (Path(folder) / MARKER).is_file()


def check_replaceable(final: str | Path, also_ours: Callable[[Path], bool] | None = None) -> None:
    """Refuse to replace anything but a missing path, an empty folder, or a folder of our own.

    ``also_ours`` recognises folders an earlier version wrote before the marker existed.
    """
    from .errors import ConfigError

    final = Path(final)
    if final.is_symlink() or final.is_file():
        raise ConfigError(f"{final} is a file, not a folder this tool wrote; refusing to replace it")
    if final.is_dir() and any(final.iterdir()) and not is_ours(final) and not (also_ours and also_ours(final)):
        raise ConfigError(f"{final} exists and was not written by this tool; refusing to replace it "
                          "(choose another --name or --out)")


def clean_stale_temporaries(parent: str | Path, name: str) -> int:
    """Remove ``.<name>.tmp-*`` / ``.<name>.old-*`` folders of ours whose writer process is gone."""
    removed = 0
    for p in Path(parent).glob(f".{name}.*-*"):
        kind, _, pid = p.name.rpartition("-")
        if not (kind.endswith(".tmp") or kind.endswith(".old")) or not p.is_dir():
            continue
        owner = (p / (MARKER + ".pid"))
        try:
            alive = owner.exists() and _pid_alive(int(owner.read_text()))
        except (OSError, ValueError):
            alive = False
        if not alive and (is_ours(p) or owner.exists()):
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_dir(final: str | Path, also_ours: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of ``final``.

    If the body raises, the temporary folder is removed and ``final`` is left
    exactly as it was, so earlier results survive a failed re-run. ``final``
    must be missing, empty, or a folder this tool wrote (:func:`check_replaceable`);
    the new folder is marked as ours and gets umask permissions. Temporary
    folders that a killed earlier run left behind are removed first.
    """
    final = Path(final)
    check_replaceable(final, also_ours)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(final.parent, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / (MARKER + ".pid")).write_text(str(os.getpid()))
        yield tmp
        (tmp / (MARKER + ".pid")).unlink()
        atomic_write_text(tmp / MARKER, "written by musicrnn; this folder may be replaced by a re-run\n")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            _no_space(exc, final)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
