"""SMTP adapter (aiosmtplib): sends one composed message, translating failures into the tree."""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib

from bridge.config import SmtpConfig
from bridge.errors import AccessDenied, RejectedByService, ServiceDown, TransientError


class SmtpSender:
    """Sends raw messages with TLS, STARTTLS or plain (loopback) and optional AUTH."""

    def __init__(self, cfg: SmtpConfig) -> None:
        self.cfg = cfg

    def _options(self) -> dict:
        cfg = self.cfg
        options: dict = {
            "hostname": cfg.host,
            "port": cfg.port,
            "timeout": cfg.timeout_seconds,
            "use_tls": cfg.security == "tls",
            "start_tls": cfg.security == "starttls",
        }
        if cfg.security != "plain":
            options["tls_context"] = ssl.create_default_context()
        if cfg.username:
            options["username"] = cfg.username
            options["password"] = cfg.password.get_secret_value()
        return options

    async def send(self, raw: str | bytes, sender: str, recipients: list[str]) -> None:
        """Deliver ``raw`` or raise TransientError / RejectedByService / AccessDenied."""
        try:
            await aiosmtplib.send(raw, sender=sender, recipients=recipients, **self._options())
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            if all(code >= 500 for code in codes):
                raise RejectedByService(f"recipient refused: {exc.recipients[0].message}", service="smtp") from exc
            raise TransientError(f"recipient deferred: {exc.recipients[0].message}", service="smtp") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise RejectedByService(f"{exc.code} {exc.message}", service="smtp") from exc
            raise TransientError(f"{exc.code} {exc.message}", service="smtp") from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise ServiceDown(f"cannot reach {self.cfg.host}:{self.cfg.port}", service="smtp") from exc
        except (aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError) as exc:
            raise TransientError("timed out", service="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", service="smtp") from exc

    async def check(self) -> str:
        """EHLO (and AUTH when configured) without sending anything; for `bridge check`."""
        options = self._options()
        client = aiosmtplib.SMTP(
            hostname=options["hostname"],
            port=options["port"],
            timeout=options["timeout"],
            use_tls=options["use_tls"],
            start_tls=options["start_tls"],
            tls_context=options.get("tls_context"),
        )
        try:
            await client.connect()
            if self.cfg.username:
                await client.login(self.cfg.username, self.cfg.password.get_secret_value())
            await client.quit()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ServiceDown(f"cannot reach {self.cfg.host}:{self.cfg.port}: {exc}", service="smtp") from exc
        auth = " auth ok" if self.cfg.username else ""
        return f"SMTP {self.cfg.host}:{self.cfg.port} ({self.cfg.security}) EHLO ok{auth}"
