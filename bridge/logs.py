"""Logging setup: one line per event, as text or JSON, with the email key, ticket and effect it
concerns as fields, configured secrets redacted and customer addresses masked on every line."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # bridge.config imports the HR/LMS adapters, which import display_url from here
    from bridge.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# What the running code works on (email key, ticket, effect): set by the pipeline and the outbox
# for the task at hand, copied into every task it starts, written on each line of that work.
_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("bridge_log_context", default={})
# An address outside angle brackets: "<…@…>" is how Message-IDs (email keys) are written, and
# those must stay readable; the bridge writes addresses bare.
_ADDRESS = re.compile(r"(?<![\w.+<-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Fields for every log line written inside the block (and by tasks started in it)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def add_context(**fields: Any) -> None:
    """More fields for the rest of the enclosing ``log_context`` block (a ticket once known)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


def current_context() -> dict[str, Any]:
    return dict(_CONTEXT.get())


def mask_addresses(text: str) -> str:
    """``alice@customer.example`` → ``a***@customer.example``: which domain is enough to debug,
    who is not the log's business. ``<…@…>`` (a Message-ID) is left as it is."""
    return _ADDRESS.sub(r"\1***@\2", text)


class TextFormatter(logging.Formatter):
    """The readable line, the work's fields appended as key=value, addresses masked."""

    def __init__(self, *, mask: bool) -> None:
        super().__init__(FORMAT)
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "context", None) or {}
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return mask_addresses(line) if self.mask else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the work's fields, the traceback."""

    def __init__(self, *, mask: bool) -> None:
        super().__init__()
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            **(getattr(record, "context", None) or {}),
        }
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return mask_addresses(line) if self.mask else line


class AddContext(logging.Filter):
    """Puts the work's fields on the record (``record.context``) as it is made, in its task."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = _CONTEXT.get()
        return True


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that reaches a log line with ***.

    Adapters never log credentials on purpose; this is the safety net for library messages
    and exception texts that might echo them.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, "***")
        return True


def config_secrets(cfg: Config) -> list[str]:
    """Every configured secret: passwords, tokens, the HR and LMS auth values (whole, and the
    credential after a scheme word such as ``Bearer``) and any password written into a URL."""
    secrets = [
        cfg.imap.password.get_secret_value(),
        cfg.smtp.password.get_secret_value(),
        cfg.odoo.password.get_secret_value(),
        cfg.bridge.secret.get_secret_value(),
        cfg.http.webhook_token.get_secret_value(),
    ]
    urls = [cfg.odoo.url]
    for service in (cfg.automation.hr, cfg.automation.lms):
        if service is None:
            continue
        urls.append(service.url)
        value = service.auth_value.get_secret_value()
        secrets.append(value)
        scheme, _, credential = value.strip().partition(" ")
        if credential.strip() and scheme.isalpha():  # "Bearer abc…", "Basic dXNlcjpw…"
            secrets.append(credential.strip())
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:  # not a URL the adapters could use either
            continue
        if password:
            secrets.append(password)
    return secrets


def display_url(url: str) -> str:
    """``url`` fit for a log line or an error text: without ``user:password@``, query or fragment
    (either may carry a token); scheme, host, port and path are kept as written."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" in the host: show nothing of it rather than guess
        return "<invalid url>"
    if not parts.netloc:  # no "//": e.g. "user:pw@host:8069" reads as scheme "user"
        return urlunsplit((parts.scheme, "", parts.path, "", "")).rpartition("@")[2]
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def setup_logging(level: str, cfg: Config | None) -> None:
    json_lines = bool(cfg and cfg.bridge.log_format == "json")
    handler = logging.StreamHandler(sys.stdout if json_lines else sys.stderr)  # JSON for collectors reading stdout
    mask = cfg.bridge.log_addresses == "mask" if cfg else True
    handler.setFormatter(JsonFormatter(mask=mask) if json_lines else TextFormatter(mask=mask))
    handler.addFilter(AddContext())
    handler.addFilter(RedactSecrets(config_secrets(cfg) if cfg else []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("mailparser", "imapclient", "urllib3", "aiosmtplib", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("mailparser").setLevel(logging.ERROR)
