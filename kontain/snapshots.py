"""Snapshots of a program running under km (docs/snapshots.md).

take() asks km for a snapshot through km's system call 505 (KM_SNAPSHOT). It
returns 0 in the program that goes on (live=True), 1 in a program restored from
the snapshot (`km kmsnap`), and raises OSError when km refuses (EBUSY while
another snapshot is in progress, ENOTSUP for state km cannot restore). Outside
km the call fails with ENOSYS. With live=False a successful snapshot ends the
program (exit status 0).
"""

import ctypes
import os

__all__ = ["KM_SNAPSHOT", "take"]

KM_SNAPSHOT = 505

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _text(value):
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


def take(live=False, label=None, description=None):
    """Takes a snapshot; returns 0 here, 1 once restored from it."""
    result = _libc.syscall(
        ctypes.c_long(KM_SNAPSHOT),
        ctypes.c_char_p(_text(label)),
        ctypes.c_char_p(_text(description)),
        ctypes.c_long(1 if live else 0),
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result
