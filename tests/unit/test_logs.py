"""Log hygiene: every configured secret is redacted from log lines; URLs are shown without credentials."""

from __future__ import annotations

import logging

import pytest

from bridge.config import parse_config
from bridge.logs import RedactSecrets, config_secrets, display_url

BASE = {
    "imap": {"username": "support", "password": "imap-pass"},
    "smtp": {"from_address": "support@example.com"},
    "odoo": {"url": "https://bot:odoo-url-pass@odoo.example.com", "db": "db", "username": "bot",
             "password": "odoo-pass"},
}
AUTOMATION = {
    "hr": {"url": "https://hr.example.com", "auth_value": "Bearer hr-secret-token"},
    "lms": {"url": "https://svc:lms-url-pass@lms.example.com/api", "auth_value": "lms-raw-api-key"},
}


def _logged(cfg_tree: dict, message: str, *args: object) -> str:
    """What one log line becomes after the redaction filter built from this config."""
    record = logging.LogRecord("bridge.test", logging.ERROR, __file__, 1, message, args, None)
    RedactSecrets(config_secrets(parse_config(cfg_tree, {}))).filter(record)
    return record.getMessage()


def test_hr_and_lms_auth_values_are_redacted() -> None:
    tree = {**BASE, "automation": AUTOMATION}
    line = _logged(tree, "hr said %s; lms said %s", "header was 'Bearer hr-secret-token'", "key lms-raw-api-key")
    assert "hr-secret-token" not in line and "lms-raw-api-key" not in line
    assert line == "hr said header was '***'; lms said key ***"
    # the credential alone (a library may log the token without its scheme word) is a secret too
    assert _logged(tree, "token=%s", "hr-secret-token") == "token=***"


def test_passwords_written_into_urls_are_redacted() -> None:
    line = _logged({**BASE, "automation": AUTOMATION}, "odoo-url-pass and lms-url-pass")
    assert line == "*** and ***"


def test_without_hr_or_lms_the_other_secrets_still_count() -> None:
    assert _logged(BASE, "imap-pass odoo-pass") == "*** ***"
    assert _logged({**BASE, "automation": {"lms": AUTOMATION["lms"]}}, "lms-raw-api-key") == "***"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hr.example.com/api/v2", "https://hr.example.com/api/v2"),
        ("https://user:s3cret@hr.example.com:8443/api", "https://hr.example.com:8443/api"),
        ("http://user@odoo.internal:8069", "http://odoo.internal:8069"),
        ("http://a:p@ss@odoo.internal/", "http://odoo.internal/"),  # an unescaped @ in the password
        ("https://lms.example.com/v1?api_key=s3cret#frag", "https://lms.example.com/v1"),
        ("http://u:s3cret@[::1]:8080/x", "http://[::1]:8080/x"),
        ("user:s3cret@odoo.internal:8069/web", "odoo.internal:8069/web"),  # no scheme: still no password
        ("http://[::1", "<invalid url>"),
    ],
)
def test_display_url_drops_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown
