"""Logging setup: one readable line per event, and configured secrets redacted from every line."""

from __future__ import annotations

import logging

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
    return [
        cfg.imap.password.get_secret_value(),
        cfg.smtp.password.get_secret_value(),
        cfg.odoo.password.get_secret_value(),
        cfg.bridge.secret.get_secret_value(),
        cfg.http.webhook_token.get_secret_value(),
    ]


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
