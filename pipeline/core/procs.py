"""Process hygiene: worker processes that end with their parent, SIGTERM handled like Ctrl-C.

A pool worker blocks on its task queue, and a forked worker holds the queue's
write end itself, so when its parent is killed (``kill -9``, out of memory) it
never sees end-of-file and would wait forever. :func:`die_with_parent`, a pool
initializer, asks the kernel to end it instead (Linux), or watches the parent
from a thread elsewhere.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process ``parent_pid`` ends.

    Termination is also reset to the default action: a forked worker inherits
    its parent's SIGTERM handler, which would turn the signal into an exception
    the pool catches and sends back, leaving the worker alive. Ctrl-C raises
    KeyboardInterrupt again even where SIGINT was ignored by inheritance (a
    command started in the background of a script): the parent stops its
    workers with SIGINT.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so the same clean-up runs."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread.

    ``kill <pid>``, a scheduler's time limit or a closing terminal then end a
    command the way Ctrl-C does: workers are stopped, finished work is saved,
    temporary folders are removed. SIGINT ignored by inheritance (a script's
    background job) raises KeyboardInterrupt again too. Outside the main thread
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def child_dies_with_parent() -> None:
    """``preexec_fn`` of an external tool: the kernel kills it when this process dies (Linux), however
    it dies (``kill -9`` included), so no FluidSynth or engraver is left running as an orphan."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_with_timeout(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, str]:
    """Run an external tool in its own process group, its output to ``log``; kill the group after ``timeout`` s.

    Returns ``(exit status, output)``; the status is None when the tool was stopped for taking too
    long. Output goes to a file, not a pipe: a pipe held open by a child of the tool would make
    the wait outlast the kill. Ctrl-C (or any exception) kills the group too.
    """
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=child_dies_with_parent)
        except OSError as exc:
            return 127, f"error: cannot run {cmd[0]}: {exc}"
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return code, Path(log).read_text(errors="replace")


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; 0 where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 0


class ParseTimeout(BaseException):
    """Raised by SIGALRM inside a :func:`time_limit` block (music21's parser). A BaseException, so that music21's own
    ``except Exception`` blocks cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Interrupt the block after ``seconds``.

    Needed because music21 is super-linear in the bar length of odd meters:
    a generated ``M:451/8`` or an overlong bar can keep it busy for minutes.
    Only the main thread receives signals, and an ITIMER_REAL someone else
    set is left alone; in both cases the block simply runs without a limit.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    if not usable:
        yield
        return

    def _alarm(signum, frame):
        raise ParseTimeout(f"gave up after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
