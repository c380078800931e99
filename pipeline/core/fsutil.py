"""File-system helpers: atomic writes, the tool's ownership marker (one rule for every command that writes), locks, hashing, stable ids."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pipeline.core.errors import ConfigError, FolderInUseError, PipelineError


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
    prefix = f".{path.name}.part"
    remove_stale(path.parent, prefix)  # what a writer killed mid-write (kill -9) left
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}-{os.getpid()}-", dir=path.parent)
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


def remove_stale(parent: str | Path, prefix: str) -> int:
    """Remove ``<prefix>-<pid>-*`` files and folders in ``parent`` whose process ``pid`` is gone.

    Temporary files and folders of the tool carry their writer's pid in their name, so
    what a killed writer left is told apart from a live writer's and from the user's files.
    Returns how many were removed.
    """
    removed = 0
    for p in Path(parent).glob(glob.escape(prefix) + "-*"):
        pid = p.name[len(prefix) + 1:].partition("-")[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed += 1
    return removed


@contextlib.contextmanager
def scratch_dir(parent: str | Path, prefix: str = ".musicrnn-scratch") -> Iterator[Path]:
    """A temporary folder inside ``parent`` (an output folder of the tool's), removed on every exit.

    Never in the system's temporary directory, where a killed process would leave it for good:
    what a killed process left here is removed by the next call (:func:`remove_stale`).
    """
    parent = Path(parent)
    make_folder(parent)
    remove_stale(parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


# ------------------------------------------------------------------ ownership: one rule
#
# A folder is the tool's only when it holds the tool's marker file, a JSON object the tool
# wrote with the folder's kind and a random id ({"tool": "musicrnn", "kind": ..., "id": ...}).
# Everything else is the user's: never deleted, replaced or written into. Folders of earlier
# versions (no marker, or the plain-text marker without kind or id) are the user's too: the
# refusal says to move them away. Replacing a folder of ours keeps any file the user put into
# it: the marker lists the files the tool wrote (``files``); others are carried over.

KINDS = {"dataset": "a dataset", "run": "a run folder", "grid": "a grid folder", "compare": "a comparison page",
         "samples": "a samples folder", "heatmaps": "a heatmaps folder", "eval": "an eval folder",
         "renders": "a renders folder", "tally": "a tally folder"}


def read_marker(folder: str | Path) -> dict | None:
    """The marker of a folder the tool wrote (``kind``, ``id``, maybe ``files``), or None."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(d, dict) and d.get("tool") == "musicrnn" and d.get("kind") in KINDS and d.get("id"):
        return d
    return None


def owned(folder: str | Path, kind: str) -> bool:
    """True when ``folder`` holds the tool's marker of ``kind``."""
    marker = read_marker(folder)
    return marker is not None and marker["kind"] == kind


def is_ours(folder: str | Path) -> bool:
    """True when ``folder`` holds the tool's marker, of any kind."""
    return read_marker(folder) is not None


def write_marker(folder: str | Path, kind: str, files: list[str] | None = None, ident: str = "") -> str:
    """Mark ``folder`` as the tool's ``kind``; returns its id (a new random one unless given)."""
    import secrets

    ident = ident or secrets.token_hex(8)
    marker = {"tool": "musicrnn", "kind": kind, "id": ident,
              "note": "written by musicrnn; it may replace this folder's own files, never others"}
    atomic_write_json(Path(folder) / MARKER, {**marker, **({"files": files} if files is not None else {})})
    return ident


def refusal(folder: Path, kind: str) -> str:
    """The one line refusing to write into ``folder``, saying what to do."""
    marker = read_marker(folder)
    if marker is not None:
        return (f"{folder} is {KINDS[marker['kind']]} of this tool, not {KINDS[kind]}; refusing to write into it "
                "(choose another --name or --out)")
    legacy = (Path(folder) / MARKER).is_file()
    return (f"{folder} exists and was not written by this tool: not {KINDS[kind]} (it holds no {MARKER} marker"
            f"{' of this version' if legacy else ''}); refusing to write into it: choose another --name or --out, "
            "or move it away (folders of versions before the marker must be moved away and written again)")


def check_replaceable(final: str | Path, kind: str) -> None:
    """Refuse to replace anything but a missing path, an empty folder, or a folder of ours of ``kind``."""
    final = Path(final)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ConfigError(f"{final} is a file, not a folder this tool wrote; refusing to replace it")
    if final.is_dir() and any(final.iterdir()) and not owned(final, kind):
        raise ConfigError(refusal(final, kind))


def claim(folder: str | Path, kind: str) -> Path:
    """Make sure the tool may write into ``folder`` in place: create and mark it when missing or
    empty, accept it when marked ``kind``, refuse it (ConfigError, one line) otherwise."""
    folder = Path(folder)
    check_replaceable(folder, kind)
    make_folder(folder)
    if not owned(folder, kind):
        write_marker(folder, kind)
    return folder


def _files_under(folder: Path) -> list[str]:
    """Relative paths of the files (and links) under ``folder``, the marker and pid file left out."""
    skip = {MARKER, MARKER + ".pid"}
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and str(p.relative_to(folder)) not in skip)


def _carry_user_files(old: Path, new: Path) -> None:
    """Copy into ``new`` the files the user put into ``old`` (those its marker does not list)."""
    listed = (read_marker(old) or {}).get("files")
    if listed is None:
        return
    for rel in sorted(set(_files_under(old)) - set(listed)):
        src, dst = old / rel, new / rel
        if dst.exists() or dst.is_symlink():
            raise ConfigError(f"{src} is not the tool's (it was put there since) and the new folder writes a "
                              "file of that name; move it away and run again")
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.is_symlink():
                raise OSError
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise ConfigError(f"{blocker} is a file, not a folder; choose another output folder") from None


def _plain_target(final: Path) -> Path:
    """``final`` with its parent resolved, so ``a/b/../b`` and symlinked parents name the real place."""
    if final.name in ("", ".", ".."):
        raise ConfigError(f"{final} does not name a folder (it ends in {final.name or '/'!r}); give a plain name")
    return final.parent.resolve() / final.name


@contextlib.contextmanager
def atomic_dir(final: str | Path, kind: str) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of ``final``.

    If the body raises, the temporary folder is removed and ``final`` is left
    exactly as it was, so earlier results survive a failed re-run. ``final``
    must be missing, empty, or a folder this tool wrote as ``kind`` (:func:`check_replaceable`);
    the new folder is marked as ours (listing the files written) and gets umask permissions;
    files the user put into the old one are carried over. What a killed
    earlier run left (:func:`clean_stale_temporaries`) is tidied first. Yields the
    temporary folder.
    """
    final = _plain_target(Path(final))
    make_folder(final.parent)
    clean_stale_temporaries(final.parent, final.name)
    check_replaceable(final, kind)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    pid_file = MARKER + ".pid"
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / pid_file).write_text(str(os.getpid()))
        yield tmp
        # marked before the pid file goes: an unmarked, pid-less folder is never cleaned, a marked one
        # with a live pid never is either, so a concurrent run cannot take this one for stale
        files = _files_under(tmp)
        if final.exists():
            _carry_user_files(final, tmp)
        write_marker(tmp, kind, files)
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
