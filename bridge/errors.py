"""The one exception tree of the bridge; adapters translate foreign errors into it at the edge.

    BridgeError
    ├── TransientError          retry later with backoff (network, timeouts, 5xx, 429, Odoo lock)
    │   ├── ServiceDown         the service cannot be reached at all (connection refused, DNS)
    │   ├── RecipientDeferred   the mail server deferred one recipient (4xx on RCPT): not an outage
    │   └── RateLimited         the service asked us to wait (HTTP 429 + Retry-After): not an outage
    ├── PermanentError          this input can never succeed as it is: quarantine it
    │   ├── UnparseableEmail    the raw bytes are not a usable email
    │   ├── EmailTooLarge       the email exceeds the configured size limit
    │   └── RejectedByService   the service understood and refused it (Odoo validation, SMTP 5xx)
    │       └── Undeliverable   this reply cannot be sent to this address (refused, no SMTPUTF8)
    └── ConfigurationError      wrong config or credentials: alert loudly, keep the email, keep running
        └── AccessDenied        credentials refused or no access to a model

Every adapter raises these with ``raise XError(...) from exc`` so the original stays on the chain.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    def __init__(self, message: str, *, service: str = "") -> None:
        super().__init__(message)
        self.service = service

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.service}: {text}" if self.service else text


class TransientError(BridgeError):
    """Worth retrying later: the same call may succeed once the outside world recovers."""


class ServiceDown(TransientError):
    """The service could not be reached at all."""


class RecipientDeferred(TransientError):
    """The mail server deferred one recipient (4xx on RCPT): retry later, but the server is up,
    so it is not an outage (``/readyz`` stays ready and never shows the address)."""


class RateLimited(TransientError):
    """The service is up but asked us to slow down; ``retry_after`` is when, in seconds."""

    def __init__(self, message: str, *, service: str = "", retry_after: float = 1.0) -> None:
        super().__init__(message, service=service)
        self.retry_after = retry_after


class PermanentError(BridgeError):
    """Retrying the same input will fail the same way; the email goes to quarantine."""


class UnparseableEmail(PermanentError):
    """The raw bytes could not be turned into an email."""


class EmailTooLarge(PermanentError):
    """The email is larger than the configured limit."""


class RejectedByService(PermanentError):
    """The service refused this input (validation error, SMTP 5xx)."""


class Undeliverable(RejectedByService):
    """A reply that can never be sent to this recipient as it is (address refused with 5xx, an
    internationalised address and a server without SMTPUTF8): skipped, with the reason on the ticket."""


class ConfigurationError(BridgeError):
    """The configuration or the credentials are wrong; an operator must act."""


class AccessDenied(ConfigurationError):
    """Login refused, or the account lacks a right the bridge needs."""
