"""Logging setup: one readable line per event, and configured secrets redacted from every line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # bridge.config imports the HR/LMS adapters, which import display_url from here
    from bridge.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(config_secrets(cfg) if cfg else []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("mailparser", "imapclient", "urllib3", "aiosmtplib", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("mailparser").setLevel(logging.ERROR)
