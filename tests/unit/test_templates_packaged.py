"""The reply templates ship inside the package; tickets.templates_dir overrides them file by file."""

from __future__ import annotations

import email
import fnmatch
import tomllib
from pathlib import Path

import jinja2
import pytest

import bridge
from bridge.automation.playbook import OUTCOME
from bridge.config import anchor_paths, parse_config
from bridge.errors import ConfigurationError, Undeliverable
from bridge.mail.compose import (
    NOTICE_TEMPLATES,
    PACKAGED_TEMPLATES,
    TEMPLATE_NAMES,
    TEMPLATE_PARTS,
    Composer,
    MessageKind,
    template_loader,
)
from bridge.mail.parse import parse_email

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {
    "imap": {"username": "support", "password": "pw"},
    "smtp": {"from_address": "support@example.com"},
    "odoo": {"url": "https://odoo.example.com", "db": "db", "username": "bot", "password": "pw"},
}
INBOUND = (
    b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\nSubject: Printer broken\r\n"
    b"Message-ID: <m1@customer.example>\r\n\r\nIt prints blank pages.\r\n"
)


def _composer(templates_dir: str | Path | None) -> Composer:
    return Composer(templates_dir, from_address="support@example.com", from_name="Support Team",
                    domain="example.com", secret=b"k" * 32, tag_prefix="HD-")


# Rendered by the ticket side (an agent's answer; a person declining a login request; the closing
# email, the follow-up reminder and closing; files too large for the ticket), not by the login
# playbook's OUTCOME table.
TICKET_SIDE = {"agent_reply", "login_denied", "closed", "reminder", "closed_no_response", "attachments_left_out"}
# What agent_reply and attachments_left_out need beyond the standard values; the other templates ignore it.
AGENT_VALUES = {"reply_text": "Hello Alice,\n\nIt works again.", "agent_name": "Agent Smith",
                "files": [{"name": "scan.pdf", "size": "31.0 MB", "reason": "over 25 MB"}],
                "max_file": "25 MB", "max_total": "40 MB"}


def test_the_code_names_every_template_it_renders() -> None:
    """"ack", the login playbook's outcomes (bridge/automation/playbook.py) and the ticket side's
    replies are all listed."""
    used = {"ack", *(f"login_{outcome}" for outcome in OUTCOME.values()), *TICKET_SIDE}
    assert used == set(TEMPLATE_NAMES)


def test_packaged_loader_finds_every_template_the_code_uses() -> None:
    assert PACKAGED_TEMPLATES.parent == Path(bridge.__file__).resolve().parent  # inside the package
    env = jinja2.Environment(loader=template_loader(None))
    for name in (*TEMPLATE_NAMES, *NOTICE_TEMPLATES):
        for part in TEMPLATE_PARTS:
            env.get_template(f"{name}.{part}.j2")  # raises TemplateNotFound
    assert not (REPO / "templates").exists(), "the templates live in bridge/templates only"


def test_package_data_ships_every_packaged_template() -> None:
    """pyproject.toml's package-data globs cover every file of bridge/templates (and the HR seed)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["bridge"]
    shipped = [path.relative_to(PACKAGED_TEMPLATES.parent).as_posix()
               for path in PACKAGED_TEMPLATES.parent.joinpath("templates").iterdir()]
    shipped.append("sandbox/directory.yaml")
    assert shipped
    for name in shipped:
        assert any(fnmatch.fnmatch(name, glob) for glob in globs), f"{name} is not package data"


@pytest.mark.parametrize("templates_dir", [None, ""])
def test_without_overrides_a_reply_is_rendered_from_the_package(templates_dir: str | None) -> None:
    for name in TEMPLATE_NAMES:
        mail = _composer(templates_dir).reply(parse_email(INBOUND), 5, template=name,
                                              kind=MessageKind.AUTOMATION_OUTCOME, values=AGENT_VALUES)
        assert "[#HD-5]" in mail.subject and "[#HD-5]" in mail.text


def test_the_digest_is_a_notice_to_the_leads_on_no_ticket_escaped_and_the_same_for_its_slot() -> None:
    values = {"period": "2026-11-30 – 2026-12-06 UTC", "numbers": [("Opened", "12"), ("Closed", "9")],
              "recurring": [{"rank": 1, "issue": "<b>VPN</b> drops", "category": "Network/VPN", "tickets": 4,
                             "customers": 3}], "link": "https://support.example.com/reports/latest?token=t"}
    compose = _composer(None)
    mail = compose.notice(["lead@example.com", "not an address", "boss@example.com"], template="digest",
                          kind=MessageKind.DIGEST, values=values, seed="digest:20261207T0900")
    assert mail.recipients == ["lead@example.com", "boss@example.com"]
    assert mail.subject == "Support digest: 2026-11-30 – 2026-12-06 UTC"
    assert "1. <b>VPN</b> drops (Network/VPN): 4 tickets, 3 customers" in mail.text and "Opened: 12" in mail.text
    parsed = email.message_from_string(mail.raw)
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["To"] == "lead@example.com, boss@example.com"
    assert "In-Reply-To" not in parsed and "[#HD-" not in mail.subject
    html = next(part for part in parsed.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
    assert b"&lt;b&gt;VPN&lt;/b&gt; drops" in html and b"<b>VPN" not in html
    again = compose.notice(["lead@example.com"], template="digest", kind=MessageKind.DIGEST, values=values,
                           seed="digest:20261207T0900")
    assert again.message_id == mail.message_id  # composed again after a crash: the same message
    with pytest.raises(Undeliverable):
        compose.notice(["nobody"], template="digest", kind=MessageKind.DIGEST, values=values, seed="s")


def test_an_override_wins_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "ack.txt.j2").write_text("Custom text for {{ ticket_tag }}\n", encoding="utf-8")
    mail = _composer(tmp_path).reply(parse_email(INBOUND), 5, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert mail.text == "Custom text for [#HD-5]\n"
    parsed = email.message_from_string(mail.raw)
    html = next(part for part in parsed.walk() if part.get_content_type() == "text/html")
    assert "opened ticket" in html.get_payload(decode=True).decode()  # the packaged HTML part
    assert mail.subject == "Re: Printer broken [#HD-5]"  # the packaged subject


def test_a_configured_templates_dir_that_is_not_a_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tickets.templates_dir"):
        _composer(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="tickets.templates_dir"):
        _composer(tmp_path / "file")


def test_templates_dir_defaults_to_none_and_stays_empty_when_anchored(tmp_path: Path) -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.tickets.templates_dir == ""
    assert anchor_paths(cfg, tmp_path).tickets.templates_dir == ""
    overridden = parse_config({**MINIMAL, "tickets": {"templates_dir": "my-templates"}})
    assert anchor_paths(overridden, tmp_path).tickets.templates_dir == str(tmp_path / "my-templates")
    absolute = parse_config({**MINIMAL, "tickets": {"templates_dir": str(tmp_path / "abs")}})
    assert anchor_paths(absolute, Path("/elsewhere")).tickets.templates_dir == str(tmp_path / "abs")
