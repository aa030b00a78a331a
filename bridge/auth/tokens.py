"""One mailbox credential's access token: obtained, cached, refreshed before it expires and
after a server refused it, with the rotated refresh token saved before it is used.

Blocking and thread-safe: the IMAP threads and the SMTP sender's loop (through a thread) ask for
a token at once and share one refresh. After a failure the source waits (backoff) before asking
the token endpoint again and answers with the same error meanwhile; the first failure of an
outage is reported once through ``on_problem``, the recovery through ``on_recovered``.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.auth.flows import CredentialsRejected, Flows, Grant
from bridge.auth.vault import StoredTokens, TokenVault, seed_digest
from bridge.config import OAuth2Config
from bridge.errors import BridgeError, RateLimited, TransientError

log = logging.getLogger("bridge.auth")

BACKOFF_MAX_SECONDS = 300.0
REJECTED_BACKOFF_MAX_SECONDS = 600.0  # dead credentials: only a new consent helps; look now and then


def sasl_string(mechanism: str, user: str, token: str) -> bytes:
    """The initial client response of SASL XOAUTH2 (Google's and Microsoft's) or OAUTHBEARER (RFC 7628)."""
    if mechanism == "oauthbearer":
        return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def sasl_base64(mechanism: str, user: str, token: str) -> str:
    return base64.b64encode(sasl_string(mechanism, user, token)).decode("ascii")


class TokenSource:
    """Access tokens for one credential (``name``, e.g. a mailbox) acting for ``user``."""

    def __init__(self, name: str, cfg: OAuth2Config, vault: TokenVault, *, user: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.cfg = cfg
        self.vault = vault
        self.user = cfg.user or user
        self.mechanism = cfg.mechanism
        self.clock = clock
        self.flows = Flows(cfg, f"oauth {name}")
        self.on_problem: list[Callable[[TokenSource, BridgeError], None]] = []
        self.on_recovered: list[Callable[[TokenSource], None]] = []
        self._lock = threading.Lock()
        self._seed = seed_digest(cfg.refresh_token.get_secret_value())
        self._tokens = self._initial()
        self._vault_mtime = vault.mtime(name)
        self._error: BridgeError | None = None
        self._failures = 0
        self._retry_at = 0.0

    def _initial(self) -> StoredTokens:
        """The stored tokens, unless the config names a refresh token they do not descend from."""
        stored = self.vault.load(self.name)
        configured = self.cfg.refresh_token.get_secret_value()
        if stored is not None and (not configured or stored.seed == self._seed):
            return stored
        return StoredTokens(refresh_token=configured, seed=self._seed)

    # --- asking for a token ---------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token (refreshed when within the margin of expiry); raises the typed
        error of the token endpoint, or the last one while the backoff runs."""
        with self._lock:
            now = self.clock()
            if self._fresh(now):
                return self._tokens.access_token
            if self._error is not None and now < self._retry_at and not self._vault_changed():
                raise self._error
            return self._obtain(now)

    def _margin(self) -> float:
        """How long before expiry a token is renewed: the configured margin, at most a quarter of
        the token's lifetime (a 10-minute token is not renewed on every use)."""
        lifetime = self._tokens.expires_at - self._tokens.updated_at
        return min(self.cfg.refresh_margin_seconds, lifetime / 4) if lifetime > 0 else self.cfg.refresh_margin_seconds

    def _fresh(self, now: float) -> bool:
        return bool(self._tokens.access_token) and self._tokens.expires_at - self._margin() > now

    def invalidate(self, access_token: str) -> None:
        """A server refused this token (revoked early, clock skew): the next ``token()`` gets a new one."""
        with self._lock:
            if access_token and self._tokens.access_token == access_token:
                log.warning("oauth %s: the server refused the access token; getting a new one", self.name)
                self._tokens = StoredTokens(self._tokens.refresh_token, "", 0.0, self._tokens.seed,
                                            self._tokens.updated_at)

    def refresh_due(self) -> float:
        """When the background refresher should look again (epoch seconds)."""
        with self._lock:
            if self._error is not None:
                return self._retry_at
            return max(self.clock(), self._tokens.expires_at - self._margin())

    def _vault_changed(self) -> bool:
        """Another process wrote the tokens (`bridge auth login`, `bridge check`): read them first."""
        return self.vault.mtime(self.name) != self._vault_mtime

    def _obtain(self, now: float) -> str:
        with self.vault.locked(self.name):
            if self._vault_changed():  # another process (`bridge check`, `auth login`) got tokens meanwhile
                self._reload()
                if self._fresh(now):
                    self._error, self._failures, self._retry_at = None, 0, 0.0
                    return self._tokens.access_token
            try:
                grant = self._grant()
            except BridgeError as exc:
                self._failed(exc, now)
                raise
            return self._keep(grant, now)

    def _reload(self) -> None:
        stored = self.vault.load(self.name)
        if stored is not None and (stored.refresh_token or self.cfg.flow != "refresh_token"):
            self._tokens = stored
            self._seed = stored.seed
        self._vault_mtime = self.vault.mtime(self.name)

    def _keep(self, grant: Grant, now: float) -> str:
        saved = StoredTokens(grant.refresh_token if self.cfg.flow == "refresh_token" else "",
                             grant.access_token, grant.expires_at, self._seed, now)
        self.vault.save(self.name, saved)  # before the new refresh token (or access token) is used
        self._tokens = saved
        self._vault_mtime = self.vault.mtime(self.name)
        if self._error is not None:
            log.info("oauth %s: tokens obtained again after %d failed attempt(s)", self.name, self._failures)
            for callback in self.on_recovered:
                callback(self)
        self._error, self._failures, self._retry_at = None, 0, 0.0
        log.info("oauth %s: access token obtained (%s), valid for %.0f s", self.name, self.cfg.flow,
                 grant.expires_at - now)
        return grant.access_token

    def _grant(self) -> Grant:
        if self.cfg.flow == "client_credentials":
            return self.flows.client_credentials()
        if self.cfg.flow == "service_account":
            return self.flows.service_account(self.user)
        if not self._tokens.refresh_token:
            raise CredentialsRejected(f"no refresh token yet: run `bridge auth login --mailbox {self.name}`",
                                      service=f"oauth {self.name}", error="no_refresh_token")
        return self.flows.refresh(self._tokens.refresh_token)

    def _failed(self, exc: BridgeError, now: float) -> None:
        first = self._error is None
        self._error = exc
        self._failures += 1
        if isinstance(exc, RateLimited):
            delay = exc.retry_after
        else:
            cap = REJECTED_BACKOFF_MAX_SECONDS if isinstance(exc, CredentialsRejected) else BACKOFF_MAX_SECONDS
            delay = min(cap, 2.0 * 2 ** min(self._failures - 1, 10)) * random.uniform(0.75, 1.0)
        self._retry_at = now + delay
        if first:
            level = logging.ERROR if isinstance(exc, CredentialsRejected) else logging.WARNING
            log.log(level, "oauth %s: cannot get an access token (%s); retrying with backoff%s", self.name, exc,
                    "" if isinstance(exc, TransientError) else " — the credentials need an operator")
            for callback in self.on_problem:
                callback(self, exc)

    # --- reporting ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For `bridge check` and /readyz: state, expiry and where the refresh token comes from."""
        with self._lock:
            now = self.clock()
            tokens = self._tokens
            report: dict[str, Any] = {"flow": self.cfg.flow, "user": self.user}
            if self._error is not None:
                report.update(state="failing", error=str(self._error)[:300],
                              retry_in_seconds=round(max(0.0, self._retry_at - now), 1))
            elif tokens.access_token and tokens.expires_at > now:
                report.update(state="ok", expires_in_seconds=round(tokens.expires_at - now))
            else:
                report.update(state="not obtained yet")
            if self.cfg.flow == "refresh_token":
                report["refresh_token"] = "stored" if tokens.updated_at else (
                    "configured" if tokens.refresh_token else "missing")
            return report
