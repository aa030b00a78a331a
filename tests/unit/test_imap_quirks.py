"""What the IMAP adapter makes of providers' quirks: throttling answers, which provider a
server is, how soon IDLE is renewed, and whether the done-marking can work on a folder."""

from __future__ import annotations

import pytest

from bridge.config import ImapConfig

THROTTLE_SECONDS = 60.0  # imap.throttle_seconds' default
from bridge.mail.inbox import idle_renew_seconds, keyword_problem, provider_of, throttle_delay

GMAIL_CAPS = (b"IMAP4rev1", b"UNSELECT", b"IDLE", b"NAMESPACE", b"QUOTA", b"ID", b"XLIST", b"CHILDREN",
              b"X-GM-EXT-1", b"UIDPLUS", b"COMPRESS=DEFLATE", b"ENABLE", b"MOVE", b"CONDSTORE", b"ESEARCH")
EXCHANGE_CAPS = (b"IMAP4", b"IMAP4rev1", b"AUTH=PLAIN", b"AUTH=XOAUTH2", b"SASL-IR", b"UIDPLUS", b"MOVE", b"ID",
                 b"UNSELECT", b"CLIENTACCESSRULES", b"CLIENTNETWORKPRESENCELOCATION", b"BACKENDAUTHENTICATE",
                 b"CHILDREN", b"IDLE", b"NAMESPACE", b"LITERAL+")
DOVECOT_CAPS = (b"IMAP4rev1", b"SASL-IR", b"LOGIN-REFERRALS", b"ID", b"ENABLE", b"IDLE", b"SORT", b"MOVE",
                b"UIDPLUS", b"CONDSTORE", b"QRESYNC")


def imap(**values) -> ImapConfig:
    return ImapConfig(username="support@example.com", **values)


@pytest.mark.parametrize("answer, seconds", [
    ("APPEND NO Request is throttled. Suggested Backoff Time: 299961 milliseconds", 299.961),
    ("SEARCH NO Server Unavailable. 15", THROTTLE_SECONDS),
    ("NAMESPACE BAD User is authenticated but not connected.", THROTTLE_SECONDS),
    ("NO [ALERT] Too many simultaneous connections. (Failure)", THROTTLE_SECONDS),
    ("NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=3)",
     THROTTLE_SECONDS),
    ("NO [THROTTLED] slow down", THROTTLE_SECONDS),
    ("NO Request is throttled. Suggested Backoff Time: 99999999999 milliseconds", THROTTLE_SECONDS),  # not read
])
def test_throttling_answers_ask_to_wait(answer: str, seconds: float) -> None:
    assert throttle_delay(answer) == pytest.approx(seconds)


@pytest.mark.parametrize("answer", [
    "NO [AUTHENTICATIONFAILED] Authentication failed.",
    "LOGIN failed.",
    "NO [TRYCREATE] Mailbox doesn't exist: Processed",
    "BAD Error in IMAP command UID SEARCH: Unknown argument",
])
def test_other_refusals_are_not_throttling(answer: str) -> None:
    assert throttle_delay(answer) is None


def test_backoff_longer_than_an_hour_is_capped() -> None:
    assert throttle_delay("NO Request is throttled. Suggested Backoff Time: 86400000 milliseconds") == 3600.0


def test_providers_are_known_by_their_capabilities_or_host() -> None:
    assert provider_of(imap(), GMAIL_CAPS) == "gmail"
    assert provider_of(imap(), EXCHANGE_CAPS) == "microsoft"
    assert provider_of(imap(host="outlook.office365.com"), DOVECOT_CAPS) == "microsoft"
    assert provider_of(imap(), DOVECOT_CAPS) == "generic"
    assert provider_of(imap(provider="generic"), GMAIL_CAPS) == "generic"  # configured wins


def test_idle_is_renewed_before_the_provider_drops_it() -> None:
    cfg = imap()  # 25 min configured by default
    assert idle_renew_seconds(cfg, "gmail") == 9 * 60
    assert idle_renew_seconds(cfg, "microsoft") == 20 * 60
    assert idle_renew_seconds(cfg, "generic") == 25 * 60
    assert idle_renew_seconds(imap(idle_renew_seconds=120), "gmail") == 120  # a shorter setting stays


def test_a_keyword_the_folder_cannot_keep_is_a_configuration_error() -> None:
    cfg = imap()
    assert keyword_problem(cfg, "generic", (b"\\Seen", b"\\Deleted", b"\\*")) == ""
    assert keyword_problem(cfg, "generic", (b"\\Seen", b"$BridgeDone")) == ""
    assert keyword_problem(cfg, "generic", None) == ""  # no PERMANENTFLAGS announced
    problem = keyword_problem(cfg, "gmail", (b"\\Seen", b"\\Deleted"))
    assert "does not keep the keyword $BridgeDone" in problem and "move to a label" in problem


def test_gmail_all_mail_is_no_folder_to_move_out_of() -> None:
    cfg = imap(folder="[Gmail]/All Mail", done={"mode": "move", "folder": "Processed"})
    assert "All Mail" in keyword_problem(cfg, "gmail", None)
    assert keyword_problem(imap(folder="INBOX", done={"mode": "move"}), "gmail", None) == ""
