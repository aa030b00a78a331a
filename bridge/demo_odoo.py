"""`bridge demo`, the Odoo side: an agent answers a ticket in Odoo's chatter (with a file) and
solves it, as people do in Odoo's web client, through the stand-in's external API; the bridge's
watcher emails the answer and the closing notice to the customer."""

from __future__ import annotations

import asyncio
import base64
import time
import xmlrpc.client
from collections.abc import Callable

from bridge.app import App
from bridge.sandbox.odoo import OdooSandbox
from bridge.sandbox.smtp_sink import SmtpSink

AGENT_LOGIN = "agent.smith@example.com"
AGENT_NAME = "Agent Smith"
ANSWER = ("<p>Hello,</p><p>the printer's toner cartridge was empty; we replaced it. The test page "
          "is attached.</p>")


def _agent_calls(odoo: OdooSandbox, ticket: int) -> None:
    """Blocking: log in as the agent, post the answer with its file, move the ticket to Solved."""
    uid = odoo.add_user(AGENT_LOGIN, AGENT_NAME)
    proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object", allow_none=True)

    def call(model: str, method: str, args: list, kwargs: dict | None = None) -> object:
        return proxy.execute_kw(odoo.db, uid, "secret", model, method, args, kwargs or {})

    page = call("ir.attachment", "create", [{"name": "test-page.pdf", "res_model": "helpdesk.ticket",
                                             "res_id": ticket, "datas": base64.b64encode(b"%PDF-1.4 test").decode()}])
    call("helpdesk.ticket", "message_post", [[ticket]], {
        "body": ANSWER, "body_is_html": True, "message_type": "comment", "subtype_xmlid": "mail.mt_comment",
        "attachment_ids": [page]})
    [solved] = call("helpdesk.stage", "search", [[("name", "=", "Solved")]])
    call("helpdesk.ticket", "write", [[ticket], {"stage_id": solved}])


async def play_agent_answer(app: App, odoo: OdooSandbox, sink: SmtpSink, ticket: int,
                            add: Callable[[str, str], None], wait_seconds: float) -> str:
    """Answer and solve ``ticket`` in Odoo; "" once the answer and the closing email reached the
    customer's mail server, else what is missing."""
    add("odoo", f"Odoo: {AGENT_NAME} answers ticket #{ticket} in the chatter (1 file) and sets it to Solved")
    await asyncio.to_thread(_agent_calls, odoo, ticket)
    deadline = time.monotonic() + wait_seconds
    kinds = {"agent_reply": "the agent's answer", "closing_notice": "the closing email"}
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < len(kinds):
        for mail in sink.messages:
            kind = mail.message.get("X-Bridge-Kind", "")
            if kind in kinds and kind not in seen:
                seen.add(kind)
                files = [part.get_filename() for part in mail.message.iter_attachments()]
                add("odoo", f"SMTP: {kinds[kind]} sent to {', '.join(mail.rcpt_tos)}: "
                            f"{mail.message['Subject']!r}" + (f" with {', '.join(files)}" if files else ""))
        await asyncio.sleep(0.05)
    missing = [name for kind, name in kinds.items() if kind not in seen]
    return f"not emailed in time: {', '.join(missing)}" if missing else ""
