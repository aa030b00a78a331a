"""A follow-up reaches the ticket as the customer's new words; the quoted history and signature
are folded away (Odoo's data-o-mail-quote), not lost; a first email is posted whole."""

from __future__ import annotations

import pytest

from tests.integration.harness import email_bytes, wait_until

pytestmark = pytest.mark.integration

HISTORY = ("On Mon, Dec 1, 2026 at 9:00 AM Example Support <support@example.com> wrote:\n"
           "> Hello Alice,\n> we have opened ticket HD-1 for you.\n> Reply to this email to add details.\n")


def _posts(odoo, ticket_id: int) -> list[str]:
    return [m.get("body") or "" for m in odoo.records("mail.message")
            if m.get("res_id") == ticket_id and m.get("message_type") == "email"]


def test_follow_up_posts_the_new_words_and_folds_the_rest(bridge_factory, mailbox, odoo, sink) -> None:
    bridge_factory()
    first, first_id = email_bytes(subject="Printer broken", body=f"It prints blank pages.\n\n{HISTORY}")
    mailbox.append(first)
    ticket = wait_until(lambda: odoo.records("helpdesk.ticket"), what="the ticket")[0]
    wait_until(lambda: _posts(odoo, ticket["id"]), what="the first post")
    assert "Reply to this email" in _posts(odoo, ticket["id"])[0]  # a first email is kept whole
    reply, _ = email_bytes(subject="Re: Printer broken", body=f"Thanks, it works now.\n\nSent from my iPhone\n\n{HISTORY}",
                           headers={"In-Reply-To": first_id, "References": first_id})
    mailbox.append(reply)
    posts = wait_until(lambda: [p for p in _posts(odoo, ticket["id"]) if "works now" in p], what="the follow-up")
    body = posts[0]
    new_part, _, folded = body.partition('<blockquote data-o-mail-quote="1"')
    assert "Thanks, it works now." in new_part
    assert "Hello Alice" not in new_part and "iPhone" not in new_part
    assert "Hello Alice" in folded and "Sent from my iPhone" in folded  # the whole email, folded
    assert len(odoo.records("helpdesk.ticket")) == 1
