"""Block Kit builders: hostile text never becomes a mention or link, limits hold, buttons follow the state."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.slack import cards
from bridge.slack.cards import ACTION_IDS, CardState, card
from bridge.slack.mrkdwn import mention

HOSTILE = "<!channel> urgent <@U123> <https://evil|click>"
URL = "https://odoo.example/odoo/helpdesk/42"
TICKET_LINK = f"<{URL}|HD-42>"
_SPAN = re.compile(r"<[^<>]*>")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a (text, blocks) message that Slack parses: keys included, plain_text skipped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if value.get("type") == "plain_text":
            return  # Slack shows plain_text literally: "<!channel>" there is just text
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def assert_only_expected_markup(message: Any, allowed: set[str] = frozenset()) -> None:
    """Each ``<…>`` span is one the test expects; the only other ">" is our quote marker at a line start."""
    for text in _strings(message):
        for span in _SPAN.findall(text):
            assert span in allowed, f"unexpected {span!r} in {text!r}"
        rest = _SPAN.sub("", text)
        rest = re.sub(r"(?m)^>", "", rest)
        assert "<" not in rest and ">" not in rest, f"stray bracket in {text!r}"


def test_the_markup_check_catches_raw_mentions() -> None:
    with pytest.raises(AssertionError):
        assert_only_expected_markup(("ok", [{"type": "section", "text": {"type": "mrkdwn", "text": "hi <!here>"}}]))
    with pytest.raises(AssertionError):
        assert_only_expected_markup(("a > b", []))


def _state(**changes: Any) -> CardState:
    base = CardState(ticket_id=42, ref="HD-42", url=URL, subject="Cannot log in",
                     customer_name="Lan Nguyễn", customer_email="lan@example.com",
                     priority="High", stage="New")
    return dataclasses.replace(base, **changes)


def _actions(blocks: list[dict[str, Any]], block_id: str) -> list[str]:
    return [element["action_id"] for block in blocks if block.get("block_id") == block_id
            for element in block["elements"]]


def _all_buttons(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        if block["type"] == "actions":
            yield from block["elements"]


def _check_limits(message: tuple[str, list[dict[str, Any]]]) -> None:
    text, blocks = message
    assert 0 < len(text) <= 300
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(field["text"]) <= 2000 for field in block.get("fields", []))
    for button in _all_buttons(blocks):
        assert len(button["text"]["text"]) <= 75
        assert len(button.get("value", "")) <= 2000


def test_hostile_text_everywhere_in_the_card_stays_inert() -> None:
    state = _state(subject=HOSTILE, customer_name=HOSTILE, customer_email=HOSTILE, priority=HOSTILE,
                   assignee=HOSTILE, stage=HOSTILE, automation=HOSTILE, sla_due=HOSTILE, ref="HD-42")
    message = card(state)
    assert_only_expected_markup(message, {TICKET_LINK})
    _check_limits(message)
    text, blocks = message
    assert blocks[0]["text"] == {"type": "plain_text", "text": HOSTILE, "emoji": True}
    assert "&lt;!channel&gt;" in text


def test_hostile_ref_cannot_break_out_of_the_ticket_link() -> None:
    message = card(_state(ref=HOSTILE))
    fields = message[1][1]["fields"]
    assert fields[0]["text"].startswith(f"*Ticket*\n<{URL}|&lt;!channel&gt;")
    allowed = {f"<{URL}|&lt;!channel&gt; urgent &lt;@U123&gt; &lt;https://evil|click&gt;>"}
    assert_only_expected_markup(message, allowed)


def test_card_layout_and_fields() -> None:
    text, blocks = card(_state(sla_due="14:30 first reply", automation="escalated: sender not verified"))
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions"]
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        f"*Ticket*\n{TICKET_LINK}", "*Customer*\nLan Nguyễn &lt;lan@example.com&gt;", "*Priority*\nHigh",
        "*Assignee*\nunassigned", "*Stage*\nNew", "*Automation*\nescalated: sender not verified",
        "*Next SLA*\n14:30 first reply",
    ]
    assert text == "HD-42: Cannot log in"
    assert blocks[3]["block_id"] == "ticket_actions"


def test_optional_fields_are_left_out_and_empty_ones_marked() -> None:
    _, blocks = card(_state(priority="", stage="   "))
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Priority*\n—" in fields and "*Stage*\n—" in fields
    assert not any(f.startswith(("*Automation*", "*Next SLA*")) for f in fields)


def test_take_only_while_unassigned() -> None:
    _, blocks = card(_state())
    assert _actions(blocks, "ticket_actions") == ["ticket.take", "ticket.resolve", "ticket.open"]
    _, blocks = card(_state(assignee="Minh"))
    assert _actions(blocks, "ticket_actions") == ["ticket.resolve", "ticket.open"]
    take = next(_all_buttons(card(_state())[1]))
    assert take["value"] == "42"


def test_resolve_is_primary_and_confirmed() -> None:
    _, blocks = card(_state())
    resolve = next(b for b in _all_buttons(blocks) if b["action_id"] == "ticket.resolve")
    assert resolve["style"] == "primary" and resolve["value"] == "42"
    assert set(resolve["confirm"]) == {"title", "text", "confirm", "deny"}


def test_closed_card_has_no_take_or_resolve() -> None:
    text, blocks = card(_state(closed=True))
    assert _actions(blocks, "ticket_actions") == ["ticket.open"]
    assert "(closed)" in text
    _, blocks = card(_state(closed=True, url=""))
    assert not any(b["type"] == "actions" for b in blocks)


def test_unsafe_url_gives_no_link_and_no_open_button() -> None:
    message = card(_state(url="javascript:alert(1)"))
    assert message[1][1]["fields"][0]["text"] == "*Ticket*\nHD-42"
    assert _actions(message[1], "ticket_actions") == ["ticket.take", "ticket.resolve"]
    assert_only_expected_markup(message)


def test_rendering_is_deterministic() -> None:
    state = _state(assignee="Minh", sla_due="tomorrow 09:00")
    assert json.dumps(card(state)) == json.dumps(card(dataclasses.replace(state)))


def test_header_is_clipped_and_empty_subject_named() -> None:
    subject = "Tiếng Việt 🎉 " * 40
    text, blocks = card(_state(subject=subject))
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("…")
    assert subject.startswith(header[:-1])
    assert len(text) <= 300
    assert card(_state(subject=" \n "))[1][0]["text"]["text"] == "(no subject)"


def test_long_everything_stays_within_limits() -> None:
    long = "&<>" * 2000
    _check_limits(card(_state(subject=long, customer_name=long, customer_email=long, stage=long,
                              automation=long, sla_due=long, priority=long, ref="HD-" + "9" * 500)))
    _check_limits(cards.customer_replied(long, long, (long + "\n") * 10))
    _check_limits(cards.escalation(long, {long: long, "n": {str(i): long for i in range(30)}}, "<!here>",
                                   approvable=True, ticket_id=10**30))
    _check_limits(cards.note(long * 2))
    _check_limits(cards.reply_failed(long, long))


def test_customer_replied_quotes_first_lines() -> None:
    excerpt = f"{HOSTILE}\n\n> earlier mail {HOSTILE}\nsecond line\nthird\nfourth\nfifth"
    message = cards.customer_replied(HOSTILE, HOSTILE, excerpt)
    assert_only_expected_markup(message)
    text, blocks = message
    body = blocks[0]["text"]["text"]
    lines = body.split("\n")
    assert lines[0].startswith("*Customer replied* (&lt;!channel&gt;")
    assert lines[1:] == [">&lt;!channel&gt; urgent &lt;@U123&gt; &lt;https://evil|click&gt;",
                         ">second line", ">third", ">fourth"]
    assert text.startswith("Customer replied (&lt;!channel&gt;")


def test_automation_result_escapes_everything() -> None:
    message = cards.automation_result(HOSTILE, HOSTILE, {HOSTILE: HOSTILE, "lms": "reset"})
    assert_only_expected_markup(message)
    _, blocks = message
    assert blocks[0]["fields"][1]["text"] == "*lms*\nreset"


def test_escalation_places_configured_mention_and_escapes_the_rest() -> None:
    ping = mention("subteam:S1ABC")
    facts = {HOSTILE: HOSTILE, "hr": {"status": "active", "name": HOSTILE}, "lms": {"user": {"id": 7}}}
    message = cards.escalation(HOSTILE, facts, ping, approvable=True, ticket_id=42)
    assert_only_expected_markup(message, {ping})
    text, blocks = message
    assert text.startswith(f"{ping} Escalated to a human: &lt;!channel&gt;")
    assert blocks[0]["text"]["text"].startswith(f"{ping} *Escalated to a human*")
    fields = [f["text"] for f in blocks[0]["fields"]]
    assert "*hr.status*\nactive" in fields and "*lms.user.id*\n7" in fields
    decision = blocks[-1]
    assert decision["block_id"] == "login_decision"
    approve, deny = decision["elements"]
    assert (approve["action_id"], approve["style"], approve["value"]) == ("login.approve", "primary", "42")
    assert (deny["action_id"], deny["style"], deny["value"]) == ("login.deny", "danger", "42")
    assert "confirm" in deny


def test_escalation_without_mention_or_approval() -> None:
    message = cards.escalation("sender not verified", {}, "", approvable=False, ticket_id=42)
    assert_only_expected_markup(message)
    text, blocks = message
    assert text == "Escalated to a human: sender not verified"
    assert [b["type"] for b in blocks] == ["section"] and "fields" not in blocks[0]


def test_escalation_caps_facts_at_ten_and_clips_values() -> None:
    facts = {f"k{i}": "v" * 5000 for i in range(25)}
    _, blocks = cards.escalation("x", facts, "", approvable=False, ticket_id=1)
    fields = blocks[0]["fields"]
    assert len(fields) == 10
    assert all(len(f["text"]) <= 2000 and f["text"].endswith("…") for f in fields)


@pytest.mark.parametrize("bad", ["<!channel>x", "@here", "<@u1>", "<!everyone>", "<!subteam^S1> extra", HOSTILE])
def test_escalation_refuses_a_mention_that_is_not_ours(bad: str) -> None:
    with pytest.raises(ValueError):
        cards.escalation("x", {}, bad, approvable=False, ticket_id=1)


def test_decided_replaces_only_the_decision_buttons() -> None:
    _, blocks = cards.escalation("not verified", {"hr.status": "active"}, "<!here>", approvable=True, ticket_id=42)
    after = cards.decided(blocks, "approved", "U123ABC", f"access restored {HOSTILE}")
    assert after[:-1] == blocks[:-1]
    assert not any(b["type"] == "actions" for b in after)
    assert after[-1]["type"] == "context"
    assert after[-1]["elements"][0]["text"] == (
        "Approved by <@U123ABC> · access restored &lt;!channel&gt; urgent &lt;@U123&gt; &lt;https://evil|click&gt;")
    assert_only_expected_markup(after, {"<!here>", "<@U123ABC>"})
    assert blocks[-1]["block_id"] == "login_decision"  # the input is not changed


def test_decided_escapes_a_bad_user_id_and_is_idempotent() -> None:
    _, blocks = cards.escalation("x", {}, "", approvable=True, ticket_id=42)
    first = cards.decided(blocks, "denied", "<!channel>", "")
    assert first[-1]["elements"][0]["text"] == "Denied by &lt;!channel&gt;"
    again = cards.decided(first, "approved", "U999", "")
    assert len(again) == len(first)
    assert again[-1]["elements"][0]["text"] == "Approved by <@U999>"
    with pytest.raises(ValueError):
        cards.decided(blocks, "maybe", "U1", "")


def test_thread_events_escape_and_mention_only_slack_users() -> None:
    events = [
        (cards.assigned(HOSTILE, "U1ABC"), {"<@U1ABC>"}),
        (cards.assigned(""), set()),
        (cards.resolved(HOSTILE), set()),
        (cards.resolved(by_user_id="U1ABC"), {"<@U1ABC>"}),
        (cards.resolved(by_user_id=HOSTILE), set()),
        (cards.reopened(HOSTILE), set()),
        (cards.reply_failed(HOSTILE, HOSTILE), set()),
        (cards.agent_reply_sent("U1ABC", HOSTILE), {"<@U1ABC>"}),
        (cards.note(f"{HOSTILE}\nsecond line"), set()),
    ]
    for message, allowed in events:
        assert_only_expected_markup(message, allowed)
        _check_limits(message)
        assert "<@" not in message[0], "fallback text (push notifications) carries no user mention"
    assert cards.resolved(by_user_id="U1ABC")[1][0]["text"]["text"] == "*Resolved* by <@U1ABC>"
    assert cards.resolved("Minh")[0] == "Resolved by Minh"
    assert cards.assigned("Minh", "U1ABC")[1][0]["text"]["text"] == "Assigned to *Minh* by <@U1ABC>"


def test_action_ids_cover_every_interactive_button() -> None:
    _, ticket = card(_state())
    _, escalated = cards.escalation("x", {}, "", approvable=True, ticket_id=1)
    seen = {b["action_id"] for b in [*_all_buttons(ticket), *_all_buttons(escalated)] if "url" not in b}
    assert seen == set(ACTION_IDS)
