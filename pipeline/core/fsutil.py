"""Small file-system helpers: atomic writes, hashing, stable ids."""
from __future__ import annotations

import contextlib
import glob
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
    """The process umask. Read from /proc where it can be: setting it to read it back
    (the portable way) would open a window in which another thread creates files 0666."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_space(exc: OSError, path: Path) -> None:
    import errno

    from pipeline.core.errors import PipelineError
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
    from pipeline.core.errors import ConfigError

    final = Path(final)
    if final.is_symlink() or final.is_file():
        raise ConfigError(f"{final} is a file, not a folder this tool wrote; refusing to replace it")
    if final.is_dir() and any(final.iterdir()) and not is_ours(final) and not (also_ours and also_ours(final)):
        raise ConfigError(f"{final} exists and was not written by this tool; refusing to replace it "
                          "(choose another --name or --out)")


def _temporaries(parent: Path, name: str) -> Iterator[tuple[Path, str]]:
    """``(path, kind)`` of the ``.<name>.tmp-*`` and ``.<name>.old-<pid>`` folders beside ``<name>``."""
    for kind in ("tmp", "old"):
        prefix = f".{name}.{kind}-"
        for p in parent.glob(glob.escape(prefix) + "*"):
            # the suffix (mkdtemp's letters or a pid) has no dot: ".a.tmp-x" is not ".a.b.tmp-x"'s
            if p.is_dir() and not p.is_symlink() and "." not in p.name[len(prefix):]:
                yield p, kind


def clean_stale_temporaries(parent: str | Path, name: str) -> int:
    """Tidy what a killed writer of ``<parent>/<name>`` left; returns how many folders it removed.

    A ``.tmp-*`` folder whose writer process is gone is removed. A ``.old-<pid>``
    folder is the previous ``<name>`` caught mid-swap: it is put back when
    ``<name>`` is missing (the swap never finished), removed otherwise.
    Only folders this tool marked are touched.
    """
    parent, removed = Path(parent), 0
    final = parent / name
    for p, kind in _temporaries(parent, name):
        owner = p / (MARKER + ".pid")
        try:
            pid = p.name.rpartition("-")[2] if kind == "old" else owner.read_text() if owner.exists() else ""
            alive = bool(pid) and _pid_alive(int(pid))
        except (OSError, ValueError):
            alive = False
        if alive or not (is_ours(p) or owner.exists()):
            continue
        if kind == "old" and not final.exists() and not final.is_symlink():
            os.replace(p, final)  # the earlier result survives a kill between the two renames
            continue
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


def make_folder(folder: Path) -> None:
    """``mkdir -p``, with a one-line error where a file stands in the way."""
    from pipeline.core.errors import ConfigError
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise ConfigError(f"{blocker} is a file, not a folder; choose another output folder") from None


def _plain_target(final: Path) -> Path:
    """``final`` with its parent resolved, so ``a/b/../b`` and symlinked parents name the real place."""
    if final.name in ("", ".", ".."):
        from pipeline.core.errors import ConfigError
        raise ConfigError(f"{final} does not name a folder (it ends in {final.name or '/'!r}); give a plain name")
    return final.parent.resolve() / final.name


@contextlib.contextmanager
def atomic_dir(final: str | Path, also_ours: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of ``final``.

    If the body raises, the temporary folder is removed and ``final`` is left
    exactly as it was, so earlier results survive a failed re-run. ``final``
    must be missing, empty, or a folder this tool wrote (:func:`check_replaceable`);
    the new folder is marked as ours and gets umask permissions. What a killed
    earlier run left (:func:`clean_stale_temporaries`) is tidied first. Yields the
    temporary folder.
    """
    final = _plain_target(Path(final))
    make_folder(final.parent)
    clean_stale_temporaries(final.parent, final.name)
    check_replaceable(final, also_ours)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    pid_file = MARKER + ".pid"
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / pid_file).write_text(str(os.getpid()))
        yield tmp
        # marked before the pid file goes: an unmarked, pid-less folder is never cleaned, a marked one
        # with a live pid never is either, so a concurrent run cannot take this one for stale
        atomic_write_text(tmp / MARKER, "written by musicrnn; this folder may be replaced by a re-run\n")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            os.replace(old, final)
        if isinstance(exc, OSError):
            _no_space(exc, final)
        raise
    with contextlib.suppress(FileNotFoundError):
        (final / pid_file).unlink()
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ locks

def lock_path(folder: str | Path) -> Path:
    """The lock file of a folder: ``.<name>.lock`` beside it (the folder itself may be swapped away)."""
    folder = _plain_target(Path(folder))
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def folder_lock(folder: str | Path, timeout: float = 0.0, what: str = "") -> Iterator[None]:
    """Hold the lock of ``folder`` (a dataset or a run folder) across processes.

    Waits up to ``timeout`` seconds, then raises :class:`~pipeline.core.errors.FolderInUseError`
    naming the holder: "<folder> is in use by process N". The holder's pid is kept in
    the lock file; the operating system releases the lock when the holder dies,
    however it dies.
    """
    from filelock import FileLock, Timeout

    from pipeline.core.errors import FolderInUseError

    path = lock_path(folder)
    make_folder(path.parent)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = int(path.read_text().split()[0])
            by = f"process {holder}"
        except (OSError, ValueError, IndexError):
            by = "another process"
        raise FolderInUseError(f"{folder} is in use by {by}{what}; wait for it to finish "
                               "(or stop it) and try again") from None
    try:
        with open(path, "w") as f:  # we hold it: say who, for the message of the next comer
            f.write(f"{os.getpid()}\n")
        yield
    finally:
        lock.release()
