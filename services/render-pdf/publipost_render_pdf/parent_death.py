"""Child processes that die with their parent: Linux's parent-death signal, armed between fork and exec.

Standard library only: the service and uno_bridge.py (run by another Python, which imports this file from
beside it) both start their child this way.
"""

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # looked up before the fork


def killed_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the process starting it dies, however it dies (a SIGKILL
    gives the parent no chance to clean up). The signal comes when the thread that started the child ends:
    start it from a thread that lasts (the event loop's, a main thread)."""
    parent = os.getpid()

    def arm() -> None:
        if _prctl is None:  # not Linux
            return
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
