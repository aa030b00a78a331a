"""`bridge auth login --mailbox NAME`: the one-time consent of a mailbox whose tokens come from a
person (flow ``refresh_token``), stored in state so the running bridge picks it up.

The device flow where the provider has one (Microsoft): the operator opens a URL anywhere and
types a short code. Otherwise (Google) the consent URL is printed, and the operator pastes back
the address the browser was sent to (or just its ``code``), with PKCE so a leaked code is useless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from bridge.auth.flows import AuthorizationPending, Flows, Grant
from bridge.auth.vault import StoredTokens, TokenVault, seed_digest
from bridge.config import Config, MailboxConfig, OAuth2Config
from bridge.errors import ConfigurationError


def credential(cfg: Config, mailbox: str) -> tuple[MailboxConfig, str, OAuth2Config]:
    """The mailbox, the name its tokens are stored under and their settings."""
    boxes = {box.name: box for box in cfg.mailbox_list}
    box = boxes.get(mailbox)
    if box is None:
        raise ConfigurationError(f"no mailbox named {mailbox!r} (configured: {', '.join(boxes)})")
    if box.imap.oauth2 is not None:
        return box, box.name, box.imap.oauth2
    if box.smtp is not None and box.smtp.oauth2 is not None:
        return box, f"{box.name}-smtp", box.smtp.oauth2
    raise ConfigurationError(f"mailbox {mailbox}: no oauth2 settings (imap.auth / smtp.auth: oauth2)")


def login(cfg: Config, mailbox: str, *, out: Callable[[str], None] = print, read: Callable[[str], str] = input,
          sleep: Callable[[float], None] = time.sleep) -> StoredTokens:
    """Walk the operator through the consent and store the tokens; returns what was stored."""
    box, name, oauth = credential(cfg, mailbox)
    flows = Flows(oauth, f"oauth {name}")
    vault = TokenVault(cfg.state.dir)
    if oauth.flow != "refresh_token":
        grant = flows.client_credentials() if oauth.flow == "client_credentials" else \
            flows.service_account(oauth.user or box.imap.username)
        out(f"mailbox {mailbox}: flow {oauth.flow} needs no consent; a token was obtained "
            f"(valid {grant.expires_at - time.time():.0f} s)")
        return StoredTokens(access_token=grant.access_token, expires_at=grant.expires_at)
    grant = _device(flows, out, sleep) if oauth.endpoint("device") else _pasted_code(flows, oauth, box, out, read)
    if not grant.refresh_token:
        raise ConfigurationError("the provider returned no refresh token (Google: consent again with "
                                 "prompt=consent; Microsoft: the scope needs offline_access)")
    stored = StoredTokens(grant.refresh_token, grant.access_token, grant.expires_at,
                          seed_digest(oauth.refresh_token.get_secret_value()), time.time())
    with vault.locked(name):
        vault.save(name, stored)
    out(f"mailbox {mailbox}: consent stored in {vault.path(name)}; a running bridge uses it at its next try")
    return stored


def _device(flows: Flows, out: Callable[[str], None], sleep: Callable[[float], None]) -> Grant:
    device = flows.start_device()
    out(device.message or f"Open {device.verification_uri} and enter the code {device.user_code}")
    out(f"code: {device.user_code}")
    interval = device.interval
    while time.time() < device.expires_at:
        sleep(interval)
        try:
            return flows.poll_device(device)
        except AuthorizationPending as pending:
            if pending.slow_down:
                interval += 5
    raise ConfigurationError("the device code expired before the consent was given: run the login again")


def _pasted_code(flows: Flows, oauth: OAuth2Config, box: MailboxConfig, out: Callable[[str], None],
                 read: Callable[[str], str]) -> Grant:
    url, state, verifier = flows.authorization_url(oauth.user or box.imap.username)
    out("Open this address in a browser, sign in as the mailbox and allow access:")
    out(url)
    out(f"Your browser is then sent to {oauth.redirect_uri}…: the page may not load. Paste its whole address here.")
    answer = read("address (or code): ").strip()
    query = parse_qs(urlsplit(answer).query) if "?" in answer else {}
    if query.get("error"):
        raise ConfigurationError(f"the consent was refused: {query['error'][0]}")
    if query and query.get("state", [""])[0] != state:
        raise ConfigurationError("the pasted address belongs to another login attempt (state differs)")
    code = query["code"][0] if query.get("code") else answer
    if not code:
        raise ConfigurationError("no code was pasted")
    return flows.exchange_code(code, verifier)
