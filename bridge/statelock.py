"""The state folder's lock: one running bridge per folder, and CLI writes that never race it.

``lock_state`` is what a bridge takes at start and keeps until it stops (an ``flock`` on
``state/bridge.lock``, released by the kernel when the process dies, however it dies).

The CLI commands that write state (``bridge quarantine retry``, ``bridge outbox retry``) use
``lock_unless_running``: when no bridge runs they hold the same lock while they write, so no
bridge can start halfway through; when one runs they do not wait for it (it may run for months)
and instead write only what is safe beside it: a request that the running bridge applies
itself, or a write whose safety the command documents.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bridge.errors import ConfigurationError
from bridge.store import private_file, private_folder

LOCK_FILE = "bridge.lock"


def try_lock_state(directory: str | Path) -> IO[str] | None:
    """Take the state lock without waiting: the open lock file (close it to release), or None
    when another process (a running bridge, or a CLI command writing state) holds it."""
    private_folder(Path(directory))
    private_file(Path(directory) / LOCK_FILE)
    handle = open(Path(directory) / LOCK_FILE, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def lock_state(directory: str | Path) -> IO[str]:
    """One running bridge per state folder (per mailbox): a second one would double every email."""
    handle = try_lock_state(directory)
    if handle is None:
        raise ConfigurationError(f"state.dir {directory} is in use by another running bridge")
    return handle


@contextmanager
def lock_unless_running(directory: str | Path) -> Iterator[bool]:
    """True while this process holds the state lock (no bridge runs; none can start until the
    block ends); False when another process holds it (then write only what is safe beside a
    running bridge)."""
    handle = try_lock_state(directory)
    try:
        yield handle is not None
    finally:
        if handle is not None:
            handle.close()
