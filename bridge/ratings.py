"""One-click satisfaction ratings from the closing email (``satisfaction:``, off by default).

Each closing email carries two links, ``<base_url>/rate/<token>``, one per answer (good, bad).
The token names the ticket, the closure it rates and the answer, signed with the bridge's
secret (HMAC-SHA256), so a link cannot be forged or moved to another ticket. The first answer
for a closure is kept: answering again, or the other way, changes nothing. A rating is kept in
the ticket record, noted on the ticket and told in its Slack thread, all through the outbox.

Opening a link (GET) records nothing: mail security scanners (Microsoft Safe Links, Proofpoint,
Mimecast) open every link of a message, and would rate on the customer's behalf. The page asks
the customer to confirm with one button, a POST, which scanners do not send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from html import escape
from typing import Any

from bridge.pipeline.context import Context
from bridge.pipeline.outbox import Effect

log = logging.getLogger("bridge.ratings")

ANSWERS = {"g": "good", "b": "bad"}
_TOKEN = re.compile(r"(\d{1,12})-(\d{1,6})-([gb])-([A-Za-z0-9_-]{22})")
SUBMIT_SECONDS = 5.0


def _signature(secret: bytes, ticket_id: int, closure: int, answer: str) -> str:
    digest = hmac.new(secret, f"rate:{ticket_id}:{closure}:{answer}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def token(secret: bytes, ticket_id: int, closure: int, answer: str) -> str:
    """The signed token of one answer (``g`` or ``b``) for one closure of a ticket."""
    return f"{ticket_id}-{closure}-{answer}-{_signature(secret, ticket_id, closure, answer)}"


def verify(secret: bytes, value: str) -> tuple[int, int, str] | None:
    """(ticket, closure, answer) of a genuine token, else None."""
    match = _TOKEN.fullmatch(value)
    if not match:
        return None
    ticket_id, closure, answer = int(match[1]), int(match[2]), match[3]
    if not hmac.compare_digest(match[4], _signature(secret, ticket_id, closure, answer)):
        return None
    return ticket_id, closure, answer


def links(base_url: str, secret: bytes, ticket_id: int, closure: int) -> dict[str, str]:
    """The template values ``rating_good_url`` and ``rating_bad_url``."""
    base = base_url.rstrip("/")
    return {f"rating_{name}_url": f"{base}/rate/{token(secret, ticket_id, closure, code)}"
            for code, name in ANSWERS.items()}


def page(title: str, text: str, button: str = "") -> bytes:
    """A small page; with ``button``, a form that POSTs back to the same URL (the confirmation)."""
    form = (f"<form method=\"post\"><button type=\"submit\" style=\"font-size: 1.2em; padding: .5em 1.5em;\">"
            f"{escape(button)}</button></form>") if button else ""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
            f"<title>{escape(title)}</title></head>"
            f"<body style=\"font-family: sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em;\">"
            f"<h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>").encode()


class Ratings:
    """Records ratings on the event loop; the HTTP thread calls ``submit_threadsafe``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit_threadsafe(self, value: str, record: bool) -> tuple[int, bytes]:
        """GET /rate/<token> (``record`` False: asks to confirm) or its POST (records): the HTTP
        status and page."""
        found = verify(self.ctx.composer.secret, value)
        if found is None or self._loop is None:
            return 404, page("Link not valid", "This rating link is not valid. Nothing was recorded.")
        future = asyncio.run_coroutine_threadsafe(self._record(*found, confirmed=record), self._loop)
        try:
            outcome = future.result(timeout=SUBMIT_SECONDS)
        except TimeoutError:
            future.cancel()
            return 503, page("Please try again", "We could not record your rating just now; please try again.")
        answer = ANSWERS[found[2]]
        if outcome == "recorded":
            return 200, page("Thank you", f"Your rating ({answer}) has been recorded.")
        if outcome == "unknown":
            return 404, page("Link not valid", "This ticket is not known here. Nothing was recorded.")
        if outcome == "to confirm":
            wording = "good" if answer == "good" else "not good"
            return 200, page("Rate our answer", f"Was our answer to your request {wording}? Press the button "
                             "to send your rating.", button=f"Send: {wording}")
        return 200, page("Thank you", f"Your rating for this request was already recorded ({outcome}).")

    async def _record(self, ticket_id: int, closure: int, code: str, *, confirmed: bool) -> str:
        """``recorded``, ``to confirm`` (not confirmed yet), the answer already kept for this
        closure, or ``unknown``."""
        ctx = self.ctx
        record = ctx.tickets.get(ticket_id)
        if record is None:
            return "unknown"
        ratings: dict[str, Any] = dict(record.odoo.get("ratings") or {})
        kept = ratings.get(str(closure))
        if kept:
            return str(kept)
        if not confirmed:
            return "to confirm"
        answer = ANSWERS[code]
        ratings[str(closure)] = answer
        ctx.tickets.update_odoo(ticket_id, ratings=ratings)
        ctx.store.tickets.commit(durable=True)
        key = f"rating:{ticket_id}:{closure}"
        ctx.outbox.enqueue(Effect(f"{key}:note", "odoo_note", {
            "ticket": ticket_id, "marker": key, "email_key": key,
            "body": f"<p><b>Customer rating: {escape(answer)}</b> (closing email {closure})<br/>{escape(key)}</p>"}))
        ctx.notify("rated", ticket_id, key, answer=answer)
        log.info("ticket %s: the customer rated closure %s %s", ticket_id, closure, answer)
        return "recorded"
