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
import threading
import time
from typing import Iterator


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process ``parent_pid`` ends.

    Termination is also reset to the default action: a forked worker inherits
    its parent's SIGTERM handler, which would turn the signal into an exception
    the pool catches and sends back, leaving the worker alive.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
    temporary folders are removed. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
