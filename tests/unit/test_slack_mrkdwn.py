"""mrkdwn helpers: escaping order, character-based clipping, entity-safe truncation, mentions and links."""

from __future__ import annotations

import re
import time

import pytest

from bridge.slack.mrkdwn import (
    clip,
    escape,
    escaped,
    first_lines,
    is_web_url,
    link,
    mention,
    one_line,
    slack_user,
)

_ENTITY_TAIL = re.compile(r"&(a|am|amp|l|lt|g|gt)?$")


def test_escape_encodes_ampersand_first_and_nothing_else() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&lt;") == "&amp;lt;"
    assert escape("it's \"quoted\" *bold* _i_") == "it's \"quoted\" *bold* _i_"
    assert "&#39;" not in escape("'")


def test_escape_defuses_mentions_and_links() -> None:
    out = escape("<!channel> <@U123> <https://evil|click>")
    assert "<" not in out and ">" not in out


@pytest.mark.parametrize("text", ["Tiếng Việt 🎉 " * 50, "🎉" * 400, "e\u0301" * 300])
@pytest.mark.parametrize("limit", [1, 2, 10, 75, 150, 299])
def test_clip_counts_characters(text: str, limit: int) -> None:
    out = clip(text, limit)
    assert len(out) <= limit
    assert out.endswith("…")
    assert text.startswith(out[:-1].rstrip())
    out.encode("utf-8")  # whole characters only: never a broken code point


def test_clip_keeps_short_text_untouched() -> None:
    assert clip("Tiếng Việt 🎉", 12) == "Tiếng Việt 🎉"
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 0) == ""


@pytest.mark.parametrize("limit", range(1, 51))
@pytest.mark.parametrize("text", ["&<>" * 20, "<" * 60, "&" * 60, "a&b<c>d" * 10, "x" * 60])
def test_escaped_never_halves_an_entity(text: str, limit: int) -> None:
    out = escaped(text, limit)
    assert len(out) <= limit
    body = out.removesuffix("…")
    assert not _ENTITY_TAIL.search(body)
    assert escape(text).startswith(body)
    assert "<" not in out and ">" not in out


def test_escaped_returns_whole_escape_when_it_fits() -> None:
    assert escaped("a<b", 6) == "a&lt;b"
    assert escaped("a<b", 5) == "a…"


def test_escaped_is_linear_on_a_megabyte() -> None:
    text = "<&>x" * 262_144
    started = time.perf_counter()
    out = escaped(text, 3000)
    assert time.perf_counter() - started < 0.5
    assert len(out) <= 3000 and out.endswith("…")


def test_one_line_collapses_controls_and_newlines() -> None:
    assert one_line("  a\r\n\tb\x00\x1b[31m c\u202e d  ") == "a b [31m c d"


def test_first_lines_drops_quotes_and_blanks_and_escapes() -> None:
    text = "\n\nHello <team>,\n\n> old quoted <!channel>\nline two\nline three\nline four\nline five\n"
    assert first_lines(text) == "Hello &lt;team&gt;,\nline two\nline three\nline four"
    assert first_lines(text, lines=1) == "Hello &lt;team&gt;,"


def test_first_lines_respects_limit() -> None:
    out = first_lines("&" * 1000, limit=500)
    assert len(out) <= 500 and out.endswith("…")
    assert first_lines("") == ""


@pytest.mark.parametrize(("target", "rendered"), [
    ("", ""), ("here", "<!here>"), ("channel", "<!channel>"),
    ("user:U123ABC", "<@U123ABC>"), ("subteam:S123", "<!subteam^S123>"),
])
def test_mention_renders_configured_targets(target: str, rendered: str) -> None:
    assert mention(target) == rendered


@pytest.mark.parametrize("target", [
    "user:<!channel>", "user:u123abc", "subteam:s1", "user:U", "user:" + "U" * 21, "user:U1 ", "user:U1\n",
    "everyone", "Here", "@here", "<!here>", "user:", "team:T123", "subteam:S1^S2", "user:U１２",
])
def test_mention_rejects_anything_else(target: str) -> None:
    with pytest.raises(ValueError):
        mention(target)


def test_slack_user_mentions_only_wellformed_ids() -> None:
    assert slack_user("U123ABC") == "<@U123ABC>"
    assert slack_user("<!channel>") == "&lt;!channel&gt;"
    assert slack_user("u123") == "u123"


def test_link_formats_safe_urls() -> None:
    assert link("https://odoo.example/odoo/helpdesk/42", "HD-42 <x>") == "<https://odoo.example/odoo/helpdesk/42|HD-42 &lt;x&gt;>"
    assert link("https://odoo.example/web#id=42&model=helpdesk.ticket", "HD-42") == \
        "<https://odoo.example/web#id=42&amp;model=helpdesk.ticket|HD-42>"


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JAVASCRIPT://x", "https://evil|Reset password", "https://a b", "https://a\nb",
    "https://a<b", "https://a>b", "ftp://host/x", "", "https://", "http://[::1", "data:text/html,x",
])
def test_link_refuses_unsafe_urls(url: str) -> None:
    assert not is_web_url(url)
    assert link(url, "label <b>") == "label &lt;b&gt;"
