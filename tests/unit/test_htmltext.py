"""html_to_text: readable, safe, never raising, linear; text_to_html: the only text → Odoo HTML path."""

from __future__ import annotations

import random
import time

import pytest

from bridge.mail.htmltext import MAX_HTML_CHARS, MAX_LINKS, TRUNCATED, html_to_text, text_to_html


def test_drops_script_style_head_template_and_comments() -> None:
    html = (
        "<html><head><title>Title</title><style>p{color:red}</style></head><body>"
        "<script>var a = '<p>not text</p>'; document.cookie</script>"
        "<!-- a comment --><!--[if mso]><p>outlook only</p><![endif]-->"
        "<template><p>inert</p></template><p>Visible</p></body></html>"
    )
    assert html_to_text(html) == "Visible"


def test_head_without_end_tag_ends_at_body() -> None:
    assert html_to_text("<head><title>x</title><body><p>Hello</p>") == "Hello"


def test_unterminated_script_drops_the_rest() -> None:
    assert html_to_text("<p>before</p><script>alert(1) <p>never closed") == "before"


def test_blocks_breaks_and_lists() -> None:
    html = "<div>one</div><div>two<br>three</div><p>para</p><ul><li>a</li><li>b</li></ul><h1>Head</h1>"
    assert html_to_text(html) == "one\ntwo\nthree\n\npara\n\n- a\n- b\n\nHead"


def test_table_cells_are_separated() -> None:
    assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>") == "a b\nc d"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<a href="https://x.example/a">the docs</a>', "the docs (https://x.example/a)"),
        ('<a href="https://x.example/">https://x.example/</a>', "https://x.example/"),
        ('<a href="https://x.example">x.example</a>', "x.example"),
        ('<a href="mailto:a@b.example">a@b.example</a>', "a@b.example"),
        ('<a href="mailto:a@b.example">write us</a>', "write us (mailto:a@b.example)"),
        ('see <a href="https://x.example/i"><img src="i.png"></a>', "see https://x.example/i"),
        ('<a href="#top">top</a>', "top"),
        ("<a href=\"javascript:alert(1)\">click</a>", "click"),
        ("<a href='https://x.example/?a=1&amp;b=2'>q</a>", "q (https://x.example/?a=1&b=2)"),
        ("<a name=anchor>plain</a>", "plain"),
    ],
)
def test_links(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_entities_and_whitespace() -> None:
    html = "<p>  Fish&nbsp;&amp;&nbsp;chips \n\t cost &euro;5 &#8212; &#x2713; &lt;b&gt; &bogus; </p>"
    assert html_to_text(html) == "Fish & chips cost €5 — ✓ <b> &bogus;"


def test_invisible_preheader_padding_is_removed() -> None:
    assert html_to_text("Hi\u200b&zwnj;&#847;&shy; there") == "Hi there"


def test_at_most_two_blank_lines() -> None:
    assert html_to_text("a" + "<br>" * 10 + "b") == "a\n\n\nb"
    assert html_to_text("<p>a</p><p></p><p></p><div></div><p>b</p>") == "a\n\nb"


def test_pre_keeps_whitespace() -> None:
    assert html_to_text("<p>x</p><pre>  indented\n    more</pre>") == "x\n\n  indented\n    more"


def test_uppercase_and_attributes_with_quotes() -> None:
    assert html_to_text('<P CLASS="a">One<BR/>1</P><A HREF=\'https://e.example\'>Two</A>') == (
        "One\n1\n\nTwo (https://e.example)"
    )


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "<",
        "<<<<>>>>",
        "<!--",
        "<![CDATA[",
        "<![if !supportLists]>",
        "</",
        "<a href=",
        '<a href="unterminated',
        "<script",
        "<style>",
        "&#99999999999999;",
        "&#xD800;",
        "\x00\x01\x02<p>\x00</p>",
        "<p" + "=" * 1000,
        "<" + "a" * 5000,
    ],
)
def test_garbage_never_raises(garbage: str) -> None:
    assert isinstance(html_to_text(garbage), str)


def test_random_input_never_raises() -> None:
    rng = random.Random(7)
    alphabet = "<>/!-=\"' &#;abcpdivscriptstyle\n\t"
    for _ in range(300):
        assert isinstance(html_to_text("".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))), str)


def test_non_string_input_is_empty_text() -> None:
    assert html_to_text(None) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "unit",
    ["<a ", "<!--", "<![", "</", '<a href="', "<a href=x>", "<br><p>", "<li>", "<", "&#", "<template>", "</a>"],
)
def test_linear_time_on_adversarial_input(unit: str) -> None:
    """CPython 3.11's HTMLParser needs ~80 s for 96 KB of "<a "; we must stay well under a second."""
    text = unit * (300_000 // len(unit))
    started = time.perf_counter()
    html_to_text(text)
    assert time.perf_counter() - started < 1.5


def test_link_bombs_stop_showing_urls() -> None:
    lines = html_to_text("".join(f'<p><a href="https://x.example/{i}">link {i}</a></p>' for i in range(600)))
    assert lines.count("https://x.example/") == MAX_LINKS and lines.endswith("link 599")


def test_huge_input_is_truncated() -> None:
    text = html_to_text("<p>" + "word " * (MAX_HTML_CHARS // 4) + "</p>")
    assert text.endswith(TRUNCATED)
    assert len(text) <= MAX_HTML_CHARS + len(TRUNCATED)


def test_text_to_html_escapes_everything() -> None:
    html = text_to_html("<script>alert(1)</script> & \"quotes\" 'single'")
    assert html == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &#x27;single&#x27;</p>"


def test_text_to_html_paragraphs_and_breaks() -> None:
    assert text_to_html("line 1\r\nline 2\n\n\n  \nnext para\n") == "<p>line 1<br>line 2</p><p>next para</p>"


def test_text_to_html_drops_control_characters_and_handles_empty() -> None:
    assert text_to_html("a\x00b\x1bc\x7f\td") == "<p>abc\td</p>"
    assert text_to_html("") == ""
    assert text_to_html("\n\n") == ""


def test_round_trip_of_hostile_html_stays_inert() -> None:
    html = '<img src=x onerror="alert(1)"><p>&lt;script&gt;alert(2)&lt;/script&gt;</p>'
    assert "<script>" not in text_to_html(html_to_text(html))
