"""Two mailboxes in one bridge, on two IMAP servers: each ticket gets its mailbox's team and tag
prefix and is answered from its address; a tag of either prefix threads a reply wherever it
arrives; one email sent to both is one ticket; and the second server going down does not slow
the first mailbox."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.odoo.rpc import OdooRPC
from bridge.sandbox.dovecot import Dovecot
from tests.integration.harness import BridgeThread, bridge_settings, email_bytes, wait_until

pytestmark = pytest.mark.integration

IT = "it@example.com"


def imap_of(server: Dovecot, folder: str) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "security": "plain", "username": "support",
            "password": server.users["support"], "folder": folder, "quarantine_folder": f"{folder}_q",
            "poll_interval_seconds": 1, "reconnect_max_seconds": 1}


def tickets(odoo, subject: str) -> list[dict]:
    return [t for t in odoo.records("helpdesk.ticket") if t["name"] == subject]


def sent(sink, subject_part: str) -> list:
    return [m for m in sink.messages if subject_part in str(m.message["Subject"])]


def test_two_mailboxes_each_with_its_team_prefix_and_address(mailbox, odoo, sink, tmp_path) -> None:
    with Dovecot() as it_server:
        with it_server.client() as imap:
            imap.create_folder("Helpdesk")
        settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
        settings.pop("imap")
        settings["mailboxes"] = [
            {"name": "support", "imap": imap_of(mailbox.server, mailbox.folder)},
            {"name": "it", "imap": imap_of(it_server, "Helpdesk"), "team": "IT Helpdesk", "tag_prefix": "IT-",
             "smtp": {**settings["smtp"], "from_address": IT, "from_name": "IT Helpdesk"}},
        ]
        cfg = parse_config(settings)
        OdooRPC(cfg.odoo).execute_kw("helpdesk.team", "create", [{"name": "IT Helpdesk"}])
        teams = {t["name"]: t["id"] for t in odoo.records("helpdesk.team")}
        with BridgeThread(cfg) as runner:
            # one email sent to both addresses: one ticket, marked done in both mailboxes
            both, both_id = email_bytes(subject="VPN drops every hour")
            it_server.append(both, folder="Helpdesk")
            mailbox.append(both)
            wait_until(lambda: tickets(odoo, "VPN drops every hour"), what="the ticket")
            wait_until(lambda: all("$BridgeDone" in flags for flags in (
                mailbox.flags(mailbox.uids()[0]),
                {f.decode() for f in _flags(it_server, "Helpdesk")})), what="done in both mailboxes")
            assert len(tickets(odoo, "VPN drops every hour")) == 1

            raw, _ = email_bytes(subject="Laptop will not boot")
            it_server.append(raw, folder="Helpdesk")
            ticket = wait_until(lambda: tickets(odoo, "Laptop will not boot"), what="the IT ticket")[0]
            assert ticket["team_id"] == teams["IT Helpdesk"] or ticket["team_id"][0] == teams["IT Helpdesk"]
            ack = wait_until(lambda: sent(sink, f"[#IT-{ticket['id']}]"), what="the IT acknowledgement")[0]
            assert ack.mail_from == IT and IT in str(ack.message["From"])

            # the customer answers the IT ticket by writing to support@: the tag still threads it
            reply, _ = email_bytes(subject=f"Re: Laptop will not boot [#IT-{ticket['id']}]", body="Still broken")
            mailbox.append(reply)
            wait_until(lambda: any("Still broken" in (m.get("body") or "") for m in odoo.records("mail.message")
                                   if m.get("res_id") == ticket["id"]), what="the reply on the IT ticket")
            assert len(odoo.records("helpdesk.ticket")) == 2

            # the IT server goes away: support's mail is still read at once
            it_server.stop()
            wait_until(lambda: not runner.app.readiness()["mailboxes"]["it"]["up"], what="it shown down")
            started = time.monotonic()
            raw, _ = email_bytes(subject="Printer jam")
            mailbox.append(raw)
            support_ticket = wait_until(lambda: tickets(odoo, "Printer jam"), what="support's ticket")[0]
            assert time.monotonic() - started < 5
            assert support_ticket["team_id"] in (teams["Customer Care"], [teams["Customer Care"], "Customer Care"]) \
                or support_ticket["team_id"][0] == teams["Customer Care"]
            ack = wait_until(lambda: sent(sink, f"[#HD-{support_ticket['id']}]"), what="support's acknowledgement")[0]
            assert ack.mail_from == "support@example.com"
            report = runner.app.readiness()
            assert report["mailboxes"]["support"]["up"] and report["status"] == "degraded"
            assert report["tasks"]["intake:it"]["up"]  # retrying, not crashing


def _flags(server: Dovecot, folder: str) -> set[bytes]:
    with server.client() as imap:
        imap.select_folder(folder, readonly=True)
        found = imap.get_flags(imap.search("ALL"))
    return set().union(*found.values()) if found else set()
