"""parse_email on hand-written edge cases and on every file of the shared real-world corpus."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import mailparser
import pytest

from bridge.errors import UnparseableEmail
from bridge.mail.parse import parse_email
from bridge.models import InboundEmail

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
_HEADER_LINE = re.compile(rb"^(?:[!-9;-~]+:|From )")  # RFC 5322 field name, or an mbox From_ line


def mail(*headers: str, body: bytes = b"Hello\r\n", ctype: str = "text/plain; charset=utf-8") -> bytes:
    """A small raw email; headers given as "Name: value" override the defaults of the same name."""
    fields = {
        "From": "Alice <alice@customer.example>",
        "To": "support@example.com",
        "Subject": "Hello",
        "Date": "Mon, 23 Nov 2026 09:00:00 +0000",
        "Message-ID": "<m1@customer.example>",
        "MIME-Version": "1.0",
        "Content-Type": ctype,
    }
    extra = []
    for header in headers:
        name, _, value = header.partition(":")
        if name in fields:
            fields[name] = value.strip()
        else:
            extra.append(header)
    lines = [f"{k}: {v}" for k, v in fields.items() if v != "-"] + extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


# --- headers -------------------------------------------------------------------------------------


def test_basic_fields() -> None:
    raw = mail(
        "From: =?utf-8?q?Tr=E1=BA=A7n_H=C3=A0?= <Ha.Tran@Customer.EXAMPLE>",
        "To: Support <support@example.com>, \"Doe, John\" <JD@x.example>",
        "Cc: c1@x.example",
        "Reply-To: <replies@customer.example>",
        "In-Reply-To: <parent@x.example> (Bob's message)",
        "References: <root@x.example>\r\n <mid@x.example>  <parent@x.example>",
    )
    email = parse_email(raw)
    assert isinstance(email, InboundEmail)
    assert (email.from_name, email.from_addr) == ("Trần Hà", "ha.tran@customer.example")
    assert email.to == ("support@example.com", "jd@x.example")
    assert email.cc == ("c1@x.example",)
    assert email.reply_to == "replies@customer.example"
    assert email.key == email.message_id == "<m1@customer.example>"
    assert email.in_reply_to == "<parent@x.example>"
    assert email.references == ("<root@x.example>", "<mid@x.example>", "<parent@x.example>")
    assert email.date == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert email.size == len(raw)
    assert email.text == "Hello\n"


def test_subject_rfc2047_split_multibyte_across_encoded_words() -> None:
    data = "Tiếng Việt ✓ — Привет".encode()
    cut = data.index("ế".encode()) + 1  # in the middle of a multibyte character
    words = [base64.b64encode(data[:cut]).decode(), base64.b64encode(data[cut:]).decode()]
    email = parse_email(mail(f"Subject: =?UTF-8?B?{words[0]}?=\r\n =?utf-8?b?{words[1]}?="))
    assert email.subject == "Tiếng Việt ✓ — Привет"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("=?iso-8859-1?q?caf=E9_au_lait?= is =?utf-8?q?tr=C3=A8s?= bon", "café au lait is très bon"),
        ("=?x-unknown-charset?q?caf=E9?=", "café"),
        ("=?utf-8*en?q?language_suffix?=", "language suffix"),
        ("=?gb2312?b?ztKw0b61zbfArb380Kk=?=", "我把镜头拉近些"),  # GBK bytes in a gb2312 label
        ("=?utf-8?b?SGVsbG8?= (no padding)", "Hello (no padding)"),
        ("=?utf-8?q?a?= =?utf-8?q?b?= c =?utf-8?q?d?=", "ab c d"),
        ("Re:  plain\r\n\tfolded   subject", "Re: plain folded subject"),
        ("caf\udce9 raw 8-bit", "café raw 8-bit"),
    ],
)
def test_subject_decoding(header: str, expected: str) -> None:
    raw = mail("Subject: X").replace(b"Subject: X", b"Subject: " + header.encode("utf-8", "surrogateescape"))
    assert parse_email(raw).subject == expected


def test_missing_from_and_invalid_from() -> None:
    assert (parse_email(mail("From: -")).from_addr, parse_email(mail("From: -")).from_name) == ("", "")
    assert "missing From" in parse_email(mail("From: -")).defects
    daemon = parse_email(mail("From: MAILER-DAEMON (Mail Delivery System)"))
    assert daemon.from_addr == "" and "MAILER-DAEMON" in daemon.from_name


def test_missing_message_id_uses_a_stable_sha256_key() -> None:
    raw = mail("Message-ID: -")
    first, second = parse_email(raw), parse_email(raw)
    assert first.message_id is None
    assert first.key == second.key == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parse_email(raw + b"!").key != first.key


@pytest.mark.parametrize(
    "value",
    ["", "<>", "not-an-id", "<no-at-sign>", "<a@b@c>", "<SMTPIN_ADDED_BROKEN@mx.google.com>", "<" + "x" * 600 + "@y>"],
)
def test_invalid_message_id_falls_back_to_sha256(value: str) -> None:
    email = parse_email(mail(f"Message-ID: {value}"))
    assert email.message_id is None and email.key.startswith("sha256:")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  (comment) <abc.123@Example.COM> (more)", "<abc.123@Example.COM>"),
        ("abc@example.com", "<abc@example.com>"),
        ("<abc@\r\n example.com>", "<abc@example.com>"),
        ("<first@x> <second@x>", "<first@x>"),
    ],
)
def test_message_id_normalisation(value: str, expected: str) -> None:
    assert parse_email(mail(f"Message-ID: {value}")).key == expected


def test_headers_keep_every_value_lower_case_and_unfolded() -> None:
    raw = mail(
        "Received: from a by b",
        "Received: from c\r\n\tby d",
        "Authentication-Results: mx; dkim=pass",
        "authentication-results: mx2; spf=fail",
        "DKIM-Signature: v=1; a=rsa-sha256; b=abc",
        "X-Loop: helpdesk",
        "Auto-Submitted: auto-replied",
    )
    headers = parse_email(raw).headers
    assert headers["received"] == ("from a by b", "from c\tby d")
    assert headers["authentication-results"] == ("mx; dkim=pass", "mx2; spf=fail")
    assert "dkim-signature" in headers
    assert headers["x-loop"] == ("helpdesk",)
    assert parse_email(raw).header("Auto-Submitted") == "auto-replied"


def test_header_fields_keep_the_order_across_names() -> None:
    """Which Authentication-Results sits above which Received: the dict loses it, header_fields keeps it."""
    raw = mail(
        "Authentication-Results: mx.example.com; dmarc=pass",
        "Received: from a\r\n by mx.example.com",
        "Authentication-Results: forged; dmarc=pass",
        "Received: from b by c",
    )
    email = parse_email(raw)
    order = [(name, value) for name, value in email.header_fields if name in ("received", "authentication-results")]
    assert order == [
        ("authentication-results", "mx.example.com; dmarc=pass"),
        ("received", "from a by mx.example.com"),
        ("authentication-results", "forged; dmarc=pass"),
        ("received", "from b by c"),
    ]
    assert [name for name, _ in email.header_fields][:7] == [
        "from", "to", "subject", "date", "message-id", "mime-version", "content-type"
    ]
    assert len(email.header_fields) == sum(len(values) for values in email.headers.values())
    assert email.header_fields[7][1] is email.headers["authentication-results"][0]  # shared, not copied


def test_addresses_and_header_values_keep_their_code_points() -> None:
    """KELVIN SIGN lower-cases (and NFC-composes) to "k": the parsed address must not become
    someone else's, nor a header value another server's name."""
    email = parse_email(mail("From: Mallory <Mallory@\u212aunde.Example>",
                             "Authentication-Results: mx.\u212aunde.example\u037e dmarc=pass"))
    assert email.from_addr == "mallory@\u212aunde.example"
    assert email.header("authentication-results") == "mx.\u212aunde.example\u037e dmarc=pass"
    assert email.headers["from"] == ("Mallory <Mallory@\u212aunde.Example>",)
    assert parse_email(mail("To: A <A@X.Example>, b@\u212a.example")).to == ("a@x.example", "b@\u212a.example")


def test_unparseable_date_is_none() -> None:
    assert parse_email(mail("Date: yesterday-ish")).date is None
    assert parse_email(mail("Date: -")).date is None


# --- bodies and charsets ------------------------------------------------------------------------


def test_windows_1258_body_is_composed_vietnamese() -> None:
    # windows-1258 has no precomposed ế/ệ/ậ/ợ: they travel as base letter + combining tone mark
    body = "Tiê\u0301ng Viê\u0323t: không đăng nhâ\u0323p đươ\u0323c".encode("cp1258")
    email = parse_email(mail("Content-Transfer-Encoding: 8bit", body=body, ctype="text/plain; charset=windows-1258"))
    assert email.text == "Tiếng Việt: không đăng nhập được"


def test_koi8_r_body() -> None:
    body = "Привет, мир! Ёлка.".encode("koi8-r")
    email = parse_email(mail("Content-Transfer-Encoding: 8bit", body=body, ctype="text/plain; charset=koi8-r"))
    assert email.text == "Привет, мир! Ёлка."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Chào bạn — €".encode(), "Chào bạn — €"),
        ("café — €".encode("cp1252"), "café — €"),
        (b"\x81\x8d", "\x81\x8d"),  # undefined in cp1252: latin-1 is the last resort
    ],
)
def test_8bit_body_without_charset(body: bytes, expected: str) -> None:
    assert parse_email(mail(body=body, ctype="text/plain")).text == expected


def test_wrong_declared_charset_falls_back_and_is_noted() -> None:
    email = parse_email(mail(body="naïve ☃".encode(), ctype="text/plain; charset=x-nonsense"))
    assert email.text == "naïve ☃"
    email = parse_email(mail(body="naïve ☃".encode(), ctype="text/plain; charset=us-ascii"))
    assert email.text == "naïve ☃"


def test_utf8_with_one_corrupt_byte_is_repaired_not_mojibake() -> None:
    body = ("Привет " * 30).encode() + b"\xd1" + " мир".encode()
    assert parse_email(mail(body=body)).text.startswith("Привет Привет")


def test_html_only_mail_gets_text_without_script() -> None:
    html = b"<html><head><script>steal()</script></head><body><p>Hi <b>there</b></p><script>x()</script></body>"
    email = parse_email(mail(body=html, ctype="text/html; charset=utf-8"))
    assert email.text == "Hi there"
    assert "<script>steal()</script>" in email.html  # kept as received: untrusted, never rendered


def test_alternative_prefers_plain_text_and_keeps_html() -> None:
    raw = mail(
        ctype='multipart/alternative; boundary="b"',
        body=b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--b--\r\n",
    )
    email = parse_email(raw)
    assert (email.text.strip(), email.html.strip()) == ("plain", "<p>html</p>")


# --- attachments --------------------------------------------------------------------------------


def _multipart(*parts: bytes) -> bytes:
    body = b"".join(b"--XYZ\r\n" + part + b"\r\n" for part in parts) + b"--XYZ--\r\n"
    return mail(ctype='multipart/mixed; boundary="XYZ"', body=body)


def test_attachments_names_types_and_payloads() -> None:
    inner = b"From: bob@x.example\r\nSubject: inner\r\nMessage-ID: <inner@x.example>\r\n\r\ninner body\r\n"
    raw = _multipart(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee attached.",
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates%20Vi%E1%BB%87t.pdf\r\n\r\n"
        + base64.encodebytes(b"%PDF-1.4 fake"),
        b"Content-Type: text/csv\r\nContent-Disposition: attachment;\r\n filename*0*=utf-8''long%20;\r\n"
        b" filename*1=\"name.csv\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db,c",
        b'Content-Type: image/png; name="=?utf-8?q?b=C3=A1o_c=C3=A1o.png?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x89PNG..."),
        'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="отчёт.txt"\r\n\r\nraw'.encode(),
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="..\\\\..\\\\evil.exe"\r\n\r\nMZ',
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01",
        b"Content-Type: message/rfc822\r\n\r\n" + inner,
    )
    email = parse_email(raw)
    assert email.text == "See attached."
    names = [(a.filename, a.content_type) for a in email.attachments]
    assert names == [
        ("€ rates Việt.pdf", "application/pdf"),
        ("long name.csv", "text/csv"),
        ("báo cáo.png", "image/png"),
        ("отчёт.txt", "text/plain"),
        ("evil.exe", "application/octet-stream"),
        ("attachment-6.bin", "application/octet-stream"),
        ("inner.eml", "message/rfc822"),  # a forwarded message is named from its subject
    ]
    payloads = [a.payload for a in email.attachments]
    assert payloads[0] == b"%PDF-1.4 fake" and payloads[1] == b"a=b,c" and payloads[2] == b"\x89PNG..."
    assert b"Message-ID: <inner@x.example>" in payloads[6] and b"inner body" in payloads[6]
    assert "inner body" not in email.text  # an attached message is an attachment, not body text


def test_report_parts_are_attachments() -> None:
    raw = _multipart(
        b"Content-Type: text/plain\r\n\r\nYour message could not be delivered.",
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; gone@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        b"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig@example.com>\r\nSubject: hi\r\n",
    )
    email = parse_email(raw)
    kinds = {a.content_type: a for a in email.attachments}
    assert b"Status: 5.1.1" in kinds["message/delivery-status"].payload
    assert b"<orig@example.com>" in kinds["text/rfc822-headers"].payload
    assert kinds["message/delivery-status"].filename == "attachment-1.txt"


def test_twenty_megabyte_attachment_in_reasonable_time() -> None:
    blob = os.urandom(20 * 1024 * 1024)
    raw = _multipart(
        b"Content-Type: text/plain\r\n\r\nbig one",
        b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="big.zip"\r\n\r\n' + base64.encodebytes(blob),
    )
    started = time.perf_counter()
    email = parse_email(raw)
    elapsed = time.perf_counter() - started
    assert email.attachments[0].payload == blob
    assert elapsed < 10, f"{elapsed:.1f}s"


def _encoded_words(size: int) -> str:
    """A run of the shortest encoded words ("é" each): the worst case for header decoding."""
    return " ".join(["=?utf-8?b?w6k=?="] * (size // 17))


def test_megabyte_encoded_word_subject_is_cut_before_decoding() -> None:
    """A 0.97 MB email whose Subject is encoded words took 7.5 s (the email package's decode_header,
    called by mail-parser for every header, is quadratic in the number of words)."""
    from bridge.mail.parse import MAX_ENCODED_HEADER_CHARS

    raw = mail(f"Subject: {_encoded_words(960_000)}")
    assert 950_000 < len(raw) < 1_000_000
    started = time.perf_counter()
    email = parse_email(raw)
    elapsed = time.perf_counter() - started
    assert email.subject == "\u00e9" * 1000
    assert MAX_ENCODED_HEADER_CHARS // 2 < len(email.headers["subject"][0]) <= MAX_ENCODED_HEADER_CHARS
    assert email.headers["subject"][0].endswith("?=")  # cut between words, not inside one
    assert "Subject header longer than 32768 characters with encoded words: cut" in email.defects
    assert elapsed < 2, f"{elapsed:.1f}s"


def test_any_long_encoded_word_header_is_cut_and_short_ones_are_not() -> None:
    from bridge.mail.parse import MAX_ENCODED_HEADER_CHARS

    words = _encoded_words(1_000_000)
    plain = "word " * 100_000
    started = time.perf_counter()
    email = parse_email(mail(f"X-Spam-Report: {words}", f"X-Plain: {plain}", "Subject: =?utf-8?q?caf=C3=A9?="))
    assert time.perf_counter() - started < 2
    assert len(email.header("x-spam-report")) <= MAX_ENCODED_HEADER_CHARS
    assert email.header("x-plain") == plain.strip()  # no encoded word: nothing quadratic, kept whole
    assert email.subject == "caf\u00e9"


def _nested(depth: int) -> bytes:
    body = b"".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode() for i in range(depth)
    )
    return mail(ctype="multipart/mixed; boundary=b0", body=body + f"--b{depth}\r\n\r\ndeep\r\n".encode())


def test_too_many_parts_are_bounded() -> None:
    email = parse_email(_multipart(*[b"Content-Type: application/octet-stream\r\n\r\nx"] * 1500))
    assert "more than 1000 MIME parts; the rest was ignored" in email.defects
    assert len(email.attachments) == 999  # the multipart container is the first of the 1000 parts


def test_deep_nesting_is_bounded() -> None:
    email = parse_email(_nested(200))
    assert "MIME nesting deeper than 40; the rest was ignored" in email.defects and email.text == ""
    with pytest.raises(UnparseableEmail, match="RecursionError"):  # the email package itself gives up
        parse_email(_nested(5000))


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"  \r\n\r\n ",
        b"just some text\nwithout any header\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"X-Custom: only a non-message header\r\n\r\nbody",
        random.Random(1).randbytes(4096),
        bytes(range(256)) * 10,
    ],
)
def test_garbage_is_unparseable_with_a_reason(raw: bytes) -> None:
    with pytest.raises(UnparseableEmail) as caught:
        parse_email(raw)
    assert str(caught.value)


def test_non_bytes_is_unparseable() -> None:
    with pytest.raises(UnparseableEmail):
        parse_email("From: a@b.example\r\n\r\nx")  # type: ignore[arg-type]


def test_mangled_emails_never_raise_anything_else() -> None:
    rng = random.Random(3)
    base = bytearray(
        _multipart(b"Content-Type: text/plain\r\n\r\nhello", b"Content-Type: message/rfc822\r\n\r\n" + mail())
    )
    for _ in range(300):
        raw = bytearray(base)
        for _ in range(rng.randrange(1, 20)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        raw = raw[: rng.randrange(len(raw) + 1)]
        try:
            assert isinstance(parse_email(bytes(raw)), InboundEmail)
        except UnparseableEmail as exc:
            assert str(exc)


def test_falls_back_to_the_stdlib_parser_when_mail_parser_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def choke(message: object) -> None:
        raise RuntimeError("mail-parser choked")

    monkeypatch.setattr(mailparser, "MailParser", choke)
    email = parse_email(mail("Subject: still parsed"))
    assert email.subject == "still parsed" and email.from_addr == "alice@customer.example"
    assert any("stdlib" in defect for defect in email.defects)


def test_unexpected_errors_become_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    import bridge.mail.parse as parse_module

    def explode(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(parse_module, "_walk", explode)
    with pytest.raises(UnparseableEmail, match="KeyError"):
        parse_email(mail())


# --- the shared corpus --------------------------------------------------------------------------


def _looks_like_email(raw: bytes) -> bool:
    return bool(_HEADER_LINE.match(raw.lstrip()))


def test_every_corpus_file_is_parsed_or_unparseable_with_a_reason() -> None:
    if not CORPUS.is_dir():
        pytest.fail(f"email corpus missing at {CORPUS}", pytrace=False)
    parsed, unparseable, not_email = [], [], []
    started = time.perf_counter()
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md"):
        raw = path.read_bytes()
        name = str(path.relative_to(CORPUS))
        try:
            email = parse_email(raw)
        except UnparseableEmail as exc:
            assert str(exc).strip(), name
            (unparseable if _looks_like_email(raw) else not_email).append(f"{name}: {exc}")
            continue
        assert _looks_like_email(raw), f"{name} is not an email but was parsed"
        assert isinstance(email, InboundEmail) and email.key and email.size == len(raw), name
        parsed.append(name)
    elapsed = time.perf_counter() - started
    print(f"\ncorpus: {len(parsed)} parsed, {len(unparseable)} unparseable, "
          f"{len(not_email)} non-email files rejected, {elapsed:.2f}s")
    for line in unparseable:
        print("  unparseable:", line)
    assert len(parsed) >= 70
    assert elapsed < 20
