"""A mailbox at its provider's connection limit: the server refuses the bridge's logins with
NO [LIMIT] (Dovecot's per user+IP limit, as Gmail and Exchange Online answer "too many
connections"). The bridge waits as told, says so in /readyz as a throttled mailbox (not a
credentials problem), and reads the waiting mail once connections are free."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.sandbox.dovecot import Dovecot
from tests.integration.harness import BridgeThread, bridge_settings, email_bytes, wait_until

pytestmark = pytest.mark.integration

LIMIT = 3


@pytest.fixture(scope="module")
def limited() -> Dovecot:
    with Dovecot(max_connections_per_user=LIMIT) as server:
        yield server


class Folder:
    def __init__(self, server: Dovecot, folder: str) -> None:
        self.host, self.port, self.user = server.host, server.port, "support"
        self.password, self.folder, self.quarantine = server.users["support"], folder, f"{folder}_q"


def test_connection_limit_waits_without_dropping_mail(limited: Dovecot, odoo, sink, tmp_path) -> None:
    folder = Folder(limited, "limits")
    raw, _ = email_bytes(subject="Waits for a free connection")
    limited.append(raw, folder="limits")
    limited._drop_client("support")  # append's cached connection would count against the limit
    held = [limited.client() for _ in range(LIMIT)]  # someone else uses every connection
    cfg = parse_config(bridge_settings(folder, odoo, sink, tmp_path / "state", imap__throttle_seconds=0.5))
    try:
        with BridgeThread(cfg) as runner:
            def throttled():
                service = runner.app.readiness()["services"]["imap"]
                return not service["up"] and "slow down" in service.get("reason", "")
            wait_until(throttled, what="the mailbox shown as throttled")
            assert not [t for t in odoo.records("helpdesk.ticket") if t["name"] == "Waits for a free connection"]
            for client in held:
                client.logout()
            held = []
            wait_until(lambda: [t for t in odoo.records("helpdesk.ticket")
                                if t["name"] == "Waits for a free connection"], timeout=20, what="the mail read")
            wait_until(lambda: runner.app.readiness()["services"]["imap"]["up"], what="imap up again")
    finally:
        for client in held:
            client.logout()
