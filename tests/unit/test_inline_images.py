"""cid: images are shown inline in the chatter where the sender put them, through tags of the
bridge's own making: no markup from the email ever reaches Odoo live."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.mail.inline_images import chatter_html, cid_of
from bridge.mail.parse import parse_email
from bridge.models import Attachment
from bridge.odoo.attachments import image_url, link_inline_images
from bridge.pipeline.ingest import message_body

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"


def _inline() -> tuple:
    return parse_email((MAIL / "html-cid-inline.eml").read_bytes())


def test_only_images_the_html_shows_are_inline() -> None:
    email = _inline()
    assert [(a.filename, a.content_id) for a in email.attachments] == [
        ("attachment-1.png", "screen-1@mail.example.org"),  # src="cid:screen-1@…"
        ("logo.gif", "logo@mail.example.org"),  # src='CID:logo%40…': scheme in capitals, %-encoded
        ("facture.pdf", ""),  # a Content-ID nothing points to: an ordinary attachment
        ("photo.jpg", ""),  # inline disposition but not in the HTML
    ]


def test_the_chatter_shows_each_image_where_the_html_put_it() -> None:
    email = _inline()
    body = message_body(email, attachments=email.attachments)
    assert body == ('<p>Bonjour, voici la capture :</p><p><img src="cid:screen-1@mail.example.org" alt="capture"></p>'
                    '<p>Logo : <img src="cid:logo@mail.example.org" alt="logo.gif"></p>')
    urls = {"screen-1@mail.example.org": image_url(7, "t1"), "logo@mail.example.org": image_url(8, "t2")}
    assert re.findall(r'src="([^"]*)"', link_inline_images(body, urls)) == [
        "/web/image/7?access_token=t1", "/web/image/8?access_token=t2"]


def test_an_image_left_out_is_not_shown_and_the_text_stays() -> None:
    email = _inline()
    body = message_body(email, attachments=[a for a in email.attachments if a.filename != "logo.gif"])
    assert body.count("<img") == 1 and "Logo :" in body
    assert message_body(email) == "<p>Bonjour, voici la capture :</p><p>Logo :</p>"  # no files, no images


def test_hostile_html_around_an_image_stays_text() -> None:
    image = Attachment("a.png", "image/png", b"\x89PNG", "a@x")
    html = ('<p onclick="steal()">Hi &lt;b&gt;</p><script>steal()</script>'
            '<img src="cid:a@x" alt="&quot; onerror=&quot;steal()"><img src="https://tracker.example/p.gif">'
            '<p>src="cid:a@x" in text</p><img src="data:image/png;base64,AAAA">')
    body = chatter_html(html, [image])
    assert "<script" not in body and "onclick" not in body and "tracker.example" not in body
    assert "data:" not in body
    tags = ["<p>", "</p>", "<p>", '<img src="cid:a@x" alt="&quot; onerror=&quot;steal()">', "</p>", "<p>", "</p>"]
    assert re.findall(r"<[^>]+>", body) == tags
    assert "Hi &lt;b&gt;" in body and "src=&quot;cid:a@x&quot; in text" in body
    linked = link_inline_images(body, {"a@x": image_url(3, "tok")})
    assert linked.count("/web/image/3?access_token=tok") == 1  # the words in the text were not touched


def test_images_the_text_does_not_place_follow_it() -> None:
    image = Attachment("bg.png", "image/png", b"\x89PNG", "bg@x")
    assert chatter_html('<div style="background:url(cid:bg@x)">Text</div>', [image]) == (
        '<p>Text</p><p><img src="cid:bg@x" alt="bg.png"></p>')


def test_a_placeholder_cannot_be_forged_by_the_email() -> None:
    image = Attachment("a.png", "image/png", b"\x89PNG", "a@x")
    body = chatter_html('<p>[0123456789abcdef:0]</p><img src="cid:a@x">', [image])
    assert body.count("<img") == 1 and "[0123456789abcdef:0]" in body


def test_cid_urls() -> None:
    assert cid_of("cid:Part1.ABC@host") == "part1.abc@host"
    assert cid_of(" CID:%3Cx%40y%3E") == "x@y"
    assert cid_of("https://example.com/cid:x") == ""


def test_a_follow_up_cut_to_its_new_words_shows_its_images_after_them() -> None:
    html = ('<div dir="ltr">Here is the screenshot:<br><img src="cid:shot@x" alt="shot"></div>'
            '<div class="gmail_quote"><div class="gmail_attr">On Mon, Nov 9, 2026 at 5:00 PM Support wrote:</div>'
            '<blockquote class="gmail_quote">Could you send a screenshot?</blockquote></div>')
    raw = ("From: customer@example.org\r\nTo: support@example.com\r\nSubject: Re: Capture [#HD-1]\r\n"
           "Message-ID: <f1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=R\r\n\r\n"
           f"--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
           "--R\r\nContent-Type: image/png\r\nContent-ID: <shot@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           "iVBORw0KGgo=\r\n--R--\r\n").encode()
    email = parse_email(raw)
    body = message_body(email, follow_up=True, attachments=email.attachments)
    new_words, _, folded = body.partition("<blockquote")
    assert new_words == '<p>Here is the screenshot:</p><p><img src="cid:shot@x" alt="attachment-1.png"></p>'
    assert "Could you send a screenshot?" in folded and "<img" not in folded
