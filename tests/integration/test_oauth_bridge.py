"""OAuth2 mailboxes end to end: the bridge reads with XOAUTH2/OAUTHBEARER from a Dovecot that
checks tokens with the token stand-in, answers over an SMTP sink that does the same, keeps a
rotated refresh token across a SIGKILL, and a mailbox with dead credentials alerts once while
another mailbox keeps flowing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.auth.flows import CredentialsRejected
from bridge.auth.login import login
from bridge.auth.tokens import TokenSource
from bridge.auth.vault import TokenVault
from bridge.checks import run_checks
from bridge.config import OAuth2Config, parse_config
from bridge.errors import ServiceDown
from bridge.mail.inbox import ImapSession
from bridge.sandbox.dovecot import Dovecot
from bridge.sandbox.oauth import OAuthServer
from bridge.sandbox.slack import SlackSandbox
from bridge.sandbox.smtp_sink import SmtpSink
from tests.integration.harness import (
    BridgeThread,
    bridge_settings,
    email_bytes,
    start_process,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

USERS = {"support": "support-pw", "it": "it-pw"}
SERVICE_ACCOUNT = "mailer@bridge-project.iam.example"
CHANNEL = "C0SUPPORT"


class Folder:
    """A folder of one user on the module's OAuth Dovecot, shaped like the `mailbox` fixture."""

    def __init__(self, server: Dovecot, user: str, folder: str) -> None:
        self.server, self.host, self.port = server, server.host, server.port
        self.user, self.password, self.folder = user, server.users[user], folder
        self.quarantine = f"{folder}_q"
        with server.client(user) as imap:
            for name in (folder, self.quarantine):
                if not imap.folder_exists(name):
                    imap.create_folder(name)

    def append(self, raw: bytes) -> int:
        return self.server.append(raw, folder=self.folder, user=self.user)


@pytest.fixture(scope="module")
def service_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def oauth(service_key) -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        server.add_client("app", "app-secret", mailbox="support")  # Microsoft 365 app-only access
        server.add_client("desktop", "desktop-secret")  # delegated: a person consents once
        pem = service_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        server.add_client("sa", public_key_pem=pem, client_email=SERVICE_ACCOUNT)
        yield server


@pytest.fixture
def token_server(oauth: OAuthServer) -> Iterator[OAuthServer]:
    """The module's token server with this test's settings undone afterwards."""
    yield oauth
    oauth.access_ttl, oauth.rotate = 3600, True


@pytest.fixture(scope="module")
def oauth_imap(oauth: OAuthServer) -> Iterator[Dovecot]:
    with Dovecot(users=USERS, oauth2_introspection_url=oauth.introspection_url) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_sink(oauth: OAuthServer) -> Iterator[SmtpSink]:
    with SmtpSink(oauth_introspect=oauth.active_user) as server:
        yield server


@pytest.fixture
def sink(oauth_sink: SmtpSink) -> SmtpSink:
    oauth_sink.reset()
    return oauth_sink


_numbers = iter(range(1, 10_000))


@pytest.fixture
def folder(oauth_imap: Dovecot) -> Folder:
    return Folder(oauth_imap, "support", f"o_{next(_numbers)}")


def oauth_settings(oauth: OAuthServer, flow: str, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"provider": "generic", "flow": flow, "token_url": oauth.token_url,
                                "scope": "mail", "client_id": "app" if flow == "client_credentials" else "desktop",
                                "client_secret": "app-secret" if flow == "client_credentials" else "desktop-secret"}
    settings.update(extra)
    return settings


def oauth_config(folder: Folder, odoo, sink: SmtpSink, state: Path, oauth: OAuthServer, flow: str,
                 **oauth_extra: Any) -> dict[str, Any]:
    """A bridge whose IMAP and SMTP logins both use one OAuth2 credential."""
    settings = bridge_settings(folder, odoo, sink, state)
    settings["imap"].update(auth="oauth2", password="", oauth2=oauth_settings(oauth, flow, **oauth_extra))
    settings["smtp"].update(auth="oauth2")
    return settings


def ticket_for(odoo, subject: str) -> list[dict]:
    return [t for t in odoo.records("helpdesk.ticket") if t["name"] == subject]


def acks_to(sink: SmtpSink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


def grants(oauth: OAuthServer, grant: str) -> int:
    return sum(1 for kind, _ in oauth.requests if kind == grant)


def test_client_credentials_mailbox_reads_answers_and_check_shows_the_token(folder, odoo, sink, token_server,
                                                                              tmp_path) -> None:
    """Microsoft 365 app access: XOAUTH2 to IMAP and to SMTP with one app token, no password anywhere."""
    cfg = parse_config(oauth_config(folder, odoo, sink, tmp_path / "state", token_server, "client_credentials"))
    before = grants(token_server, "client_credentials")
    raw, _ = email_bytes(subject="Token mailbox")
    folder.append(raw)
    with BridgeThread(cfg) as runner:
        wait_until(lambda: ticket_for(odoo, "Token mailbox"), what="ticket from the OAuth2 mailbox")
        wait_until(lambda: acks_to(sink, "alice@customer.example"), what="acknowledgement over SMTP XOAUTH2")
        report = runner.app.readiness()
        name = cfg.mailbox_list[0].name  # one top-level mailbox: named by its folder
        assert name == folder.folder and report["mailboxes"][name]["up"]
        assert report["mailboxes"][name]["oauth"][name]["state"] == "ok"
        assert report["services"][f"oauth:{name}"] == {"up": True}
    # one token served the work session, the watcher and the SMTP pool (cached, not asked per login)
    assert grants(token_server, "client_credentials") - before == 1
    stored = json.loads((tmp_path / "state" / "oauth" / f"{cfg.mailbox_list[0].name}.json").read_text())
    assert stored["access_token"] and not stored["refresh_token"]
    assert oct(os.stat(tmp_path / "state" / "oauth" / f"{cfg.mailbox_list[0].name}.json").st_mode & 0o777) == "0o600"

    lines = {service: (passed, line) for service, passed, line in asyncio.run(run_checks(cfg))}
    assert lines["imap"][0] and "oauth2 login ok" in lines["imap"][1]
    assert lines["smtp"][0] and "oauth2 auth ok" in lines["smtp"][1]
    passed, line = lines[f"oauth:{cfg.mailbox_list[0].name}"]
    assert passed and "token ok, expires in" in line


def test_refresh_token_rotates_before_expiry_and_each_new_one_is_on_disk_first(folder, odoo, sink, token_server,
                                                                              tmp_path) -> None:
    """Tokens live 8 s here: the bridge renews them ahead of expiry, the provider rotates the
    refresh token each time, and the state file always holds the one that is still valid."""
    token_server.access_ttl = 8
    token_server.revoke("support")  # no refresh token of an earlier test stays valid
    seed = token_server.issue_refresh_token("desktop", "support", scope="mail")
    cfg = parse_config(oauth_config(folder, odoo, sink, tmp_path / "state", token_server, "refresh_token",
                                    refresh_token=seed))
    before = grants(token_server, "refresh_token")
    with BridgeThread(cfg):
        wait_until(lambda: grants(token_server, "refresh_token") - before >= 3, timeout=30,
                   what="two renewals after the first token")
        raw, _ = email_bytes(subject="After renewals")
        folder.append(raw)
        wait_until(lambda: ticket_for(odoo, "After renewals"), what="mail still read after renewals")
        wait_until(lambda: acks_to(sink, "alice@customer.example"), what="and answered")
    stored = json.loads((tmp_path / "state" / "oauth" / f"{cfg.mailbox_list[0].name}.json").read_text())
    assert token_server.refresh_tokens_valid("support") == [stored["refresh_token"]]
    assert seed not in token_server.refresh_tokens_valid("support")


def test_rotated_refresh_token_survives_a_sigkill_right_after_the_refresh(folder, odoo, sink, token_server,
                                                                           tmp_path) -> None:
    """Killed the moment a rotated refresh token reaches the disk: after the restart the bridge
    goes on with that one (the configured first one is long dead) and reads mail."""
    token_server.access_ttl = 6
    seed = token_server.issue_refresh_token("desktop", "support", scope="mail")
    settings = oauth_config(folder, odoo, sink, tmp_path / "state", token_server, "refresh_token", refresh_token=seed)
    config = write_config(tmp_path / "config.yaml", settings)
    vault_file = tmp_path / "state" / "oauth" / f"{folder.folder}.json"
    log_path = tmp_path / "bridge.log"
    process = start_process(config, log_path)
    try:
        wait_until(vault_file.exists, timeout=20, what="the first tokens on disk")
        first = vault_file.stat().st_mtime_ns
        previous = json.loads(vault_file.read_text())["refresh_token"]
        wait_until(lambda: vault_file.stat().st_mtime_ns != first, timeout=20, interval=0.005,
                   what="a renewal written")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        kept = json.loads(vault_file.read_text())["refresh_token"]
        valid = token_server.refresh_tokens_valid("support")
        assert kept in valid and previous not in valid and seed not in valid  # the old ones are dead already
        process = start_process(config, log_path)
        raw, _ = email_bytes(subject="After the kill")
        folder.append(raw)
        wait_until(lambda: ticket_for(odoo, "After the kill"), timeout=30, what="mail read after the restart")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    log = log_path.read_text()
    assert "cannot get an access token" not in log and "invalid_grant" not in log
    assert seed not in log and kept not in log  # tokens never reach the log


def test_dead_credentials_alert_once_and_the_other_mailbox_keeps_flowing(oauth_imap, odoo, token_server, tmp_path,
                                                                          smtp_sink, slack_server: SlackSandbox) -> None:
    """Two mailboxes: `it` uses a consent that was revoked (invalid_grant), `support` a password.
    Support's mail becomes tickets and is answered; `it` is reported once in Slack, shown down
    in /readyz and /metrics, and retried with backoff, without a crash loop."""
    slack_server.reset()
    sink = smtp_sink  # password-less, as the support mailbox's SMTP is here
    sink.reset()
    support = Folder(oauth_imap, "support", f"o_{next(_numbers)}")
    it = Folder(oauth_imap, "it", f"o_{next(_numbers)}")
    seed = token_server.issue_refresh_token("desktop", "it", scope="mail")
    token_server.revoke("it")
    settings = bridge_settings(support, odoo, sink, tmp_path / "state")
    settings.pop("imap")
    settings["mailboxes"] = [
        {"name": "support", "imap": {"host": support.host, "port": support.port, "security": "plain",
                                     "username": "support", "password": support.password, "folder": support.folder,
                                     "quarantine_folder": support.quarantine, "poll_interval_seconds": 1,
                                     "reconnect_max_seconds": 1}},
        {"name": "it", "tag_prefix": "IT-",
         "imap": {"host": it.host, "port": it.port, "security": "plain", "username": "it", "folder": it.folder,
                  "quarantine_folder": it.quarantine, "auth": "oauth2", "reconnect_max_seconds": 1,
                  "oauth2": oauth_settings(token_server, "refresh_token", refresh_token=seed)},
         "smtp": {"host": sink.host, "port": sink.port, "security": "plain", "from_address": "it@example.com"}},
    ]
    settings["slack"] = {"enabled": True, "base_url": slack_server.url, "bot_token": slack_server.bot_token,
                         "channel": CHANNEL, "timeout_seconds": 2, "max_retries": 1, "pace_seconds": 0,
                         "mentions": {"mailbox_auth": "here"}}
    cfg = parse_config(settings)
    it_raw, _ = email_bytes(subject="Waits for IT")
    it.append(it_raw)
    before = grants(token_server, "refresh_token")
    with BridgeThread(cfg) as runner:
        for n in range(3):
            raw, _ = email_bytes(subject=f"Support flows {n}")
            support.append(raw)
        wait_until(lambda: all(ticket_for(odoo, f"Support flows {n}") for n in range(3)), what="support's tickets")
        wait_until(lambda: len(acks_to(sink, "alice@customer.example")) >= 3, what="support's answers")
        alerts = lambda: [m for m in slack_server.channel_messages(CHANNEL) if "is not being read" in m["text"]]
        wait_until(alerts, what="the alert")
        wait_until(lambda: grants(token_server, "refresh_token") - before >= 3, timeout=30,
                   what="two retries of the dead consent (backoff)")
        assert len(alerts()) == 1
        assert "<!here>" in alerts()[0]["text"] and "bridge auth login --mailbox it" in json.dumps(alerts()[0])
        report = runner.app.readiness()
        assert report["status"] == "degraded"
        assert report["mailboxes"]["support"]["up"] and not report["mailboxes"]["it"]["up"]
        assert report["mailboxes"]["it"]["oauth"]["it"]["state"] == "failing"
        assert report["tasks"]["intake:it"]["up"] and report["tasks"]["intake:support"]["up"]  # no crash loop
        metrics = runner.app.metrics.render()[0].decode()
        assert 'bridge_mailbox_up{mailbox="it"} 0.0' in metrics
        assert 'bridge_mailbox_up{mailbox="support"} 1.0' in metrics
        assert not ticket_for(odoo, "Waits for IT")  # kept in IMAP, not lost

        # The operator consents again (device flow); the running bridge picks it up and reads it@.
        device_cfg = parse_config({**settings, "mailboxes": [settings["mailboxes"][0], {
            **settings["mailboxes"][1], "imap": {**settings["mailboxes"][1]["imap"], "oauth2": {
                **settings["mailboxes"][1]["imap"]["oauth2"], "device_code_url": token_server.device_authorization_url}}}]})

        def operator(line: str) -> None:
            if line.startswith("code: "):
                token_server.approve_device(line.removeprefix("code: "), "it")

        login(device_cfg, "it", out=operator, sleep=lambda seconds: time.sleep(0.05))
        wait_until(lambda: ticket_for(odoo, "Waits for IT"), timeout=30, what="it@ read after the new consent")
        wait_until(lambda: runner.app.readiness()["mailboxes"]["it"]["up"], what="it@ up again")
    assert len(alerts()) == 1


def test_pasted_code_login_with_pkce_and_a_service_account(oauth_imap, token_server, service_key, tmp_path) -> None:
    """Google's ways in: the printed consent URL with the code pasted back, and a service account
    acting for the mailbox (JWT bearer); both end in an IMAP login with the token."""
    folder = Folder(oauth_imap, "support", f"o_{next(_numbers)}")
    base = {"imap": {"host": folder.host, "port": folder.port, "security": "plain", "username": "support",
                     "folder": folder.folder, "auth": "oauth2",
                     "oauth2": oauth_settings(token_server, "refresh_token", authorize_url=token_server.authorize_url,
                                              redirect_uri="http://localhost/callback")},
            "smtp": {"from_address": "support@example.com"},
            "odoo": {"url": "http://127.0.0.1:1", "db": "d", "username": "u", "password": "p"},
            "state": {"dir": str(tmp_path / "state")}}
    cfg = parse_config(base)
    printed: list[str] = []

    def browser(prompt: str) -> str:
        url = next(line for line in printed if line.startswith("http"))
        answer = requests.get(url, allow_redirects=False, timeout=5)
        return answer.headers["Location"]  # where the browser lands: http://localhost/callback?code=…&state=…

    stored = login(cfg, folder.folder, out=printed.append, read=browser)
    assert stored.refresh_token in token_server.refresh_tokens_valid("support")
    source = TokenSource(folder.folder, cfg.imap.oauth2, TokenVault(tmp_path / "state"), user="support")
    session = ImapSession(cfg.imap, source)
    session.open()
    session.close()

    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps({"client_email": SERVICE_ACCOUNT, "private_key": service_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()}))
    account = OAuth2Config(provider="generic", flow="service_account", token_url=token_server.token_url,
                           scope="mail", service_account_file=str(key_file), mechanism="oauthbearer")
    source = TokenSource("sa", account, TokenVault(tmp_path / "state"), user="support")
    session = ImapSession(cfg.imap.model_copy(update={"oauth2": account}), source)
    session.open()  # OAUTHBEARER with a token for the impersonated mailbox
    session.close()


def test_token_endpoint_errors_are_typed_and_backed_off(token_server, tmp_path) -> None:
    """503 → ServiceDown (retried later, the same error meanwhile); invalid_grant → CredentialsRejected."""
    cfg = OAuth2Config(provider="generic", flow="refresh_token", token_url=token_server.token_url, scope="mail",
                       client_id="desktop", client_secret="desktop-secret",
                       refresh_token=token_server.issue_refresh_token("desktop", "support", scope="mail"))
    now = [time.time()]
    source = TokenSource("typed", cfg, TokenVault(tmp_path), user="support", clock=lambda: now[0])
    token_server.fail_next(503)
    before = len(token_server.requests)
    with pytest.raises(ServiceDown):
        source.token()
    with pytest.raises(ServiceDown):
        source.token()  # within the backoff: not asked again
    assert len(token_server.requests) - before == 1
    assert source.status()["state"] == "failing"
    now[0] += 60  # the backoff is over
    assert source.token()
    token_server.revoke("support")
    source.invalidate(source.token())
    with pytest.raises(CredentialsRejected) as caught:
        source.token()
    assert caught.value.error == "invalid_grant"
