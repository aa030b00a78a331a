"""new_text: a follow-up's new words, measured on talon's fixtures and on our own replies.

Talon (../shared/corpus/talon/, its README says how the pairs are laid out) gives 30 pairs with an
expected result, each judged as talon's own tests judge it:

* standard_replies/*.eml (12): the new text of the plain part is ``<name>_reply_text`` where that
  file exists, else "Hello" (talon's test_standard_replies);
* html_replies/*.html (9): "Hi. I am fine.\\n\\nThanks,\\nAlex" (talon's extract_reply_and_check);
* OLK_SRC_BODY_SECTION.html: "Reply"; reply-separated-by-hr.html: "Hi\\nthere" (talon's HTML tests);
* reply-quotations-share-block.eml: some text is left and it holds no "From" (talon's check);
* signature/emails/stripped/<name>_body (6): text is the body less ``<name>_signature``, and that is
  the signature (talon's signature extraction test).

Left out, with the reason: signature/emails/P/* (talon's training samples for its signature
classifier: no expected output) and signature/tmp/.gitignore (not an email).

Comparison: whitespace runs collapse to one space and ends are stripped (talon removes all
whitespace; we are stricter). Talon's quotation tests do not split signatures off, so a quotation
pair matches when the expected text equals our text, or our text followed by our signature.
The .eml files go through bridge.mail.parse (plain and HTML part, as the pipeline would hand
them over); an .html file is an HTML-only email, its text derived by html_to_text as parse does.

Figures at the time of writing: talon 29/30 (quotation pairs 23/24, signature pairs 6/6); the one
miss is reply-separated-by-hr.html, where talon also drops the sender's bare name "Bob" above the
quote, which we keep. mail-parser-reply 1.36 alone: 18/24 quotation pairs (see reply_text.py).

Our set (tests/data/replies/replies.yaml, 53 replies): r-01..r-40 were written before new_text
ran on them and gave 38/40 (the Spanish "Enviado el:" label and Yahoo's one-line mobile
attribution were missing); r-41..r-53 were then written the same way and gave 13/13. Both rounds
were written by the author of the rules, so "blind" means unseen by the code, not unbiased.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.mail.htmltext import html_to_text
from bridge.mail.parse import parse_email
from bridge.mail.reply_text import Reply, new_text

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
REPLIES = Path(__file__).resolve().parents[1] / "data" / "replies" / "replies.yaml"
TALON_TARGET = 0.95
HTML_EXPECTED = "Hi. I am fine.\n\nThanks,\nAlex"
_SPACES = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@pytest.fixture(scope="module")
def talon() -> Path:
    path = CORPUS / "talon"
    if not path.is_dir():
        pytest.fail(f"email corpus missing at {path}", pytrace=False)
    return path


def _email(path: Path) -> tuple[str, str]:
    email = parse_email(path.read_bytes())
    return email.text, email.html


def _html_only(path: Path) -> tuple[str, str]:
    html = path.read_text(encoding="utf-8")
    return html_to_text(html), html


def _quotation_pairs(talon: Path) -> list[tuple[str, tuple[str, str], str]]:
    """(name, (text, html), expected) for every quotation pair talon's tests check for equality."""
    pairs = []
    for eml in sorted((talon / "standard_replies").glob("*.eml")):
        expected = eml.with_name(eml.stem + "_reply_text")
        reply = expected.read_text(encoding="utf-8").strip() if expected.exists() else "Hello"
        pairs.append((f"standard_replies/{eml.name}", _email(eml), reply))
    for page in sorted((talon / "html_replies").glob("*.html")):
        pairs.append((f"html_replies/{page.name}", _html_only(page), HTML_EXPECTED))
    pairs.append(("OLK_SRC_BODY_SECTION.html", _html_only(talon / "OLK_SRC_BODY_SECTION.html"), "Reply"))
    separated = _html_only(talon / "reply-separated-by-hr.html")
    pairs.append(("reply-separated-by-hr.html", separated, "Hi\nthere"))
    return pairs


def _talon_results(talon: Path) -> list[tuple[str, bool, Reply]]:
    results = []
    for name, (text, html), expected in _quotation_pairs(talon):
        reply = new_text(text, html)
        with_signature = f"{reply.text}\n{reply.signature}"
        results.append((name, _norm(expected) in (_norm(reply.text), _norm(with_signature)), reply))
    share_block = new_text(*_email(talon / "reply-quotations-share-block.eml"))
    good = bool(share_block.text.strip()) and "From" not in share_block.text
    results.append(("reply-quotations-share-block.eml", good, share_block))
    stripped = talon / "signature" / "emails" / "stripped"
    for body_file in sorted(stripped.glob("*_body")):
        body = body_file.read_text(encoding="utf-8")
        signature_file = body_file.with_name(body_file.name[: -len("body")] + "signature")
        signature = signature_file.read_text(encoding="utf-8")
        text = body.strip()[: len(body.strip()) - len(signature)]
        reply = new_text(body)
        good = _norm(reply.text) == _norm(text) and _norm(reply.signature) == _norm(signature)
        results.append((f"signature/emails/stripped/{body_file.name}", good, reply))
    return results


def test_talon_fixtures_share(talon: Path) -> None:
    """The share of talon's 30 expected results that new_text reproduces (target 0.95)."""
    results = _talon_results(talon)
    assert len(results) == 30, "talon's fixtures changed: update the docstring's list"
    matched = sum(good for _, good, _ in results)
    share = matched / len(results)
    print(f"\ntalon fixtures: {matched}/{len(results)} = {share:.3f}")
    for name, good, reply in results:
        if not good:
            print(f"  miss {name}: {reply.method} {reply.text[:80]!r} / {reply.signature[:40]!r}")
    assert share >= TALON_TARGET


def test_talon_standard_replies_each_found_their_quote(talon: Path) -> None:
    for eml in sorted((talon / "standard_replies").glob("*.eml")):
        reply = new_text(*_email(eml))
        assert reply.quoted and reply.method not in ("none", "fallback", "signature"), eml.name


# --- our set ------------------------------------------------------------------------------------


def _cases() -> list[dict[str, Any]]:
    return yaml.safe_load(REPLIES.read_text(encoding="utf-8"))


def _run(case: dict[str, Any]) -> tuple[str, Reply]:
    html = case.get("html", "")
    text = case.get("text") or html_to_text(html)  # an HTML-only email's text, as parse derives it
    return text, new_text(text, html)


def test_set_is_large_and_covers_the_clients() -> None:
    cases = _cases()
    clients = " ".join(case["client"] for case in cases)
    assert len(cases) >= 30 and len({case["id"] for case in cases}) == len(cases)
    for client in ("outlook", "gmail", "apple", "iphone", "thunderbird", "yahoo", "android", "forward"):
        assert client in clients, client
    assert "html-only" in clients
    assert {"en", "vi", "de"} <= {case["lang"] for case in cases}


@pytest.mark.parametrize("case", _cases(), ids=lambda case: f"{case['id']}-{case['client']}")
def test_reply(case: dict[str, Any]) -> None:
    _, reply = _run(case)
    assert _norm(reply.text) == _norm(case["expect"])
    assert _norm(reply.signature) == _norm(case.get("signature", ""))
    assert reply.quoted is case["quoted"]


def test_set_figures() -> None:
    """Exact matches, and line precision/recall of what was taken out of the text.

    A line is "taken out" when it is in the email's text but not in ``Reply.text`` (history or
    signature); it should be when it is not in the expected text. Lines compare whitespace-collapsed.
    """
    exact = removed_right = removed_wrong = missed = 0
    cases = _cases()
    for case in cases:
        source, reply = _run(case)
        lines = [_norm(line) for line in source.splitlines() if line.strip()]
        kept = {_norm(line) for line in reply.text.splitlines()}
        expected = {_norm(line) for line in case["expect"].splitlines()}
        for line in lines:
            if line not in kept and line not in expected:
                removed_right += 1
            elif line not in kept:
                removed_wrong += 1
            elif line not in expected:
                missed += 1
        signature_right = _norm(reply.signature) == _norm(case.get("signature", ""))
        exact += _norm(reply.text) == _norm(case["expect"]) and signature_right
    precision = removed_right / max(1, removed_right + removed_wrong)
    recall = removed_right / max(1, removed_right + missed)
    print(f"\nreplies set: exact {exact}/{len(cases)}, removed lines: P {precision:.3f}, R {recall:.3f}")
    assert exact == len(cases) and precision == 1.0 and recall == 1.0


# --- contract -----------------------------------------------------------------------------------


def test_reply_is_frozen() -> None:
    reply = new_text("Hello")
    with pytest.raises(FrozenInstanceError):
        reply.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize("text,html", [("", ""), ("  \n\t", ""), ("", "   ")])
def test_empty_input(text: str, html: str) -> None:
    assert new_text(text, html) == Reply(text="", quoted=False, signature="", method="none")


def test_plain_text_without_quote_is_unchanged() -> None:
    text = "Hello,\n\nthe VPN drops every hour since Monday.\nCould you look at it?"
    assert new_text(text) == Reply(text=text, quoted=False, signature="", method="none")


def test_nothing_but_history_falls_back_to_the_whole_text() -> None:
    text = "\nSent from my iPhone\n\nOn Tue, Dec 3, 2026 at 9:14 AM Support <s@acme.example> wrote:\n> Done?"
    assert new_text(text) == Reply(text=text.strip(), quoted=False, signature="", method="fallback")


def test_marks_smuggled_into_html_fake_no_quote() -> None:
    html = "<p>Keep me</p><div>\ue0000</div><p>and me</p><div>\ue002</div>"
    reply = new_text("", html)
    assert not reply.quoted and "Keep me" in reply.text and "and me" in reply.text


def test_a_genuine_plain_part_with_a_quote_wins_over_the_html() -> None:
    text = "Plain words\n\nOn Tue, Dec 3, 2026 at 9:14 AM Support <s@acme.example> wrote:\n> old"
    html = '<div>Other words</div><div class="gmail_quote">old</div>'
    assert new_text(text, html).text == "Plain words"


def test_typical_5kb_reply_is_fast() -> None:
    case = next(case for case in _cases() if case["id"] == "r-01")
    history = "\n".join(f"> earlier history line {n} with a few words in it" for n in range(90))
    text = case["text"] + "\n" + history
    assert 4_500 < len(text) < 6_000
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        new_text(text)
        timings.append(time.perf_counter() - started)
    print(f"\n5 KB reply: median {statistics.median(timings) * 1000:.2f} ms")
    assert statistics.median(timings) < 0.05


MEGABYTE = 1_000_000
HOSTILE = {
    "one line of >": (">" * MEGABYTE, ""),
    "lines of >": (">\n" * (MEGABYTE // 2), ""),
    "deep > nesting": (("> " * 100 + "x\n") * (MEGABYTE // 203), ""),
    "100k header lines": ("From: a@b.example\nSent: 2026\n" * 40_000, ""),
    "100k attributions": ("On 1.1.2026 A <a@b.example> wrote:\nx\n" * 25_000, ""),
    "colon lines without spaces": (("a" * 399 + "@:\n") * 2_500, ""),
    "sign-offs": ("Thanks,\n" * 100_000, ""),
    "schrieb run": ("Am 1.1.2020 " + "schrieb " * 125_000 + ":", ""),
    "nested blockquotes": ("", "<blockquote type=cite>" * 45_000),
    "unclosed comments": ("", "<!--" * 250_000),
    "attribute soup": ("", '<div class="' + "gmail_quote " * 80_000 + '">x'),
    "many quote regions": ("", "<blockquote type=cite>q</blockquote>x" * 26_000),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_in_bounded_time(name: str) -> None:
    """A megabyte of hostile input takes well under a second (a quadratic rule would take minutes)."""
    text, html = HOSTILE[name]
    started = time.perf_counter()
    reply = new_text(text, html)
    elapsed = time.perf_counter() - started
    print(f"\n{name}: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0
    assert isinstance(reply.text, str) and (reply.text or not (text + html_to_text(html)).strip())
