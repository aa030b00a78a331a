"""The tokens of one credential, kept in ``state/oauth/<name>.json``: readable by the bridge's
user only and replaced atomically, so a crash at any moment leaves the old file or the new one.

A provider that rotates refresh tokens (Microsoft, the stand-in) invalidates the old one when it
hands out the new one: the new one must be on disk before it is used, or a crash right after a
refresh loses the mailbox until someone consents again (Zammad's channels died that way).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("bridge.auth")


@dataclass(frozen=True)
class StoredTokens:
    """What survives a restart; ``seed`` is the digest of the configured refresh token this one
    descends from, so an operator who puts a new one in the config replaces the stored one."""

    refresh_token: str = ""
    access_token: str = ""
    expires_at: float = 0.0  # epoch seconds
    seed: str = ""
    updated_at: float = 0.0


def seed_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


class TokenVault:
    """One JSON file per credential name under ``<state>/oauth`` (0700 folder, 0600 files)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.folder = Path(state_dir) / "oauth"

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def load(self, name: str) -> StoredTokens | None:
        try:
            data = json.loads(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("oauth %s: cannot read %s (%s); treating it as missing", name, self.path(name), exc)
            return None
        known = StoredTokens.__dataclass_fields__
        return StoredTokens(**{key: value for key, value in data.items() if key in known})

    def mtime(self, name: str) -> float:
        try:
            return self.path(name).stat().st_mtime
        except OSError:
            return 0.0

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Held around a refresh: `bridge check` or `bridge auth login` in another process must
        not trade the same refresh token at the same moment (the loser's would be dead)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self, name: str, tokens: StoredTokens) -> None:
        """Write, fsync, rename over the old file, fsync the folder: durable before it returns."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(asdict(tokens), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
