"""Sender verification: RFC 8601 parsing of real-world headers and every rule of verify_sender."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.automation.verify import SenderPolicy, parse_authentication_results, verify_sender
from bridge.models import InboundEmail

GMAIL = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@customer.example header.s=20230601 header.b=Xk9/+aB=;\r\n"
    "       spf=pass (google.com: domain of alice@customer.example designates 209.85.220.41 as permitted"
    " sender) smtp.mailfrom=alice@customer.example;\r\n"
    "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=customer.example"
)
MICROSOFT = (
    "spf=pass (sender IP is 40.107.22.54) smtp.mailfrom=customer.example; dkim=pass (signature was"
    " verified) header.d=customer.example;dmarc=pass action=none header.from=customer.example;"
    "compauth=pass reason=100"
)
POLICY = SenderPolicy(organisation_domains=("customer.example",), trusted_authserv_ids=("mx.example.com",))
DKIM_POLICY = POLICY.model_copy(update={"require": "dkim"})


def email(from_addr: str = "alice@customer.example", **headers: str | tuple[str, ...]) -> InboundEmail:
    """An InboundEmail; keyword headers use '_' for '-' (authentication_results=...), tuples for repeats."""
    collected = {"from": (f"Alice <{from_addr}>",)}
    for name, value in headers.items():
        collected[name.replace("_", "-")] = value if isinstance(value, tuple) else (value,)
    return InboundEmail(
        key="<m1@customer.example>",
        message_id="<m1@customer.example>",
        from_name="Alice",
        from_addr=from_addr,
        reply_to=None,
        to=("support@example.com",),
        cc=(),
        subject="I can't log in",
        text="Hello, I can't log in.",
        html="",
        attachments=(),
        in_reply_to=None,
        references=(),
        date=None,
        headers=collected,
        size=100,
    )


def ours(results: str, authserv_id: str = "mx.example.com") -> str:
    return f"{authserv_id}; {results}"


# --- parsing -------------------------------------------------------------------------------------


def test_parse_gmail_header() -> None:
    authserv_id, results = parse_authentication_results(GMAIL)
    assert authserv_id == "mx.google.com"
    assert [(r["method"], r["result"]) for r in results] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert results[0]["props"] == {
        "header.i": "@customer.example",
        "header.s": "20230601",
        "header.b": "Xk9/+aB=",
    }
    assert results[1]["props"] == {"smtp.mailfrom": "alice@customer.example"}  # the comment is gone
    assert results[2]["props"] == {"header.from": "customer.example"}


def test_parse_microsoft_header_without_authserv_id() -> None:
    """Exchange Online writes no authserv-id: results parse, under an id no policy can trust."""
    authserv_id, results = parse_authentication_results(MICROSOFT)
    assert authserv_id == ""
    assert [(r["method"], r["result"]) for r in results] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("compauth", "pass"),
    ]
    assert results[1]["props"] == {"header.d": "customer.example"}
    assert results[2]["props"] == {"action": "none", "header.from": "customer.example"}
    assert results[3]["props"] == {"reason": "100"}


def test_parse_version_number_and_microsoft_shape() -> None:
    authserv_id, results = parse_authentication_results("mx.example.com 1; " + MICROSOFT)
    assert authserv_id == "mx.example.com"
    assert [r["method"] for r in results] == ["spf", "dkim", "dmarc", "compauth"]


def test_parse_none() -> None:
    assert parse_authentication_results("mx.example.com 1; none") == ("mx.example.com", [])
    assert parse_authentication_results("mx.example.com; none") == ("mx.example.com", [])


def test_parse_comments_quoting_and_folding() -> None:
    value = (
        '"mx.example.com" (our (nested) edge; really) 1;\n\t'
        'dkim/1 = pass reason="signature ok; (really)" header.d=(c;omment)customer.example\r\n '
        'header.i="@customer.example";  spf=fail smtp.mailfrom="a\\"b@customer.example"  ;'
    )
    authserv_id, results = parse_authentication_results(value)
    assert authserv_id == "mx.example.com"
    assert results == [
        {
            "method": "dkim",
            "result": "pass",
            "props": {
                "reason": "signature ok; (really)",
                "header.d": "customer.example",
                "header.i": "@customer.example",
            },
        },
        {"method": "spf", "result": "fail", "props": {"smtp.mailfrom": 'a"b@customer.example'}},
    ]


def test_parse_lower_cases_methods_results_and_keys() -> None:
    _, results = parse_authentication_results("mx.example.com; DMARC=Pass Header.From=Customer.Example")
    assert results == [{"method": "dmarc", "result": "pass", "props": {"header.from": "Customer.Example"}}]


@pytest.mark.parametrize(
    "value",
    ["", "   ", ";", ";;;=", "(((", ")", '"', "\\", "a b c; dkim=pass", "mx 1 2; dkim=pass",
     "mx@evil; dkim=pass", "=x; dkim=pass", "\x00\x01; dkim=pass", "mx.example.com,evil; dkim=pass"],
)
def test_parse_garbage_gives_nothing(value: str) -> None:
    assert parse_authentication_results(value) == ("", [])


def test_parse_skips_unreadable_results() -> None:
    _, results = parse_authentication_results("mx.example.com; garbage; =x; dkim=pass header.d=a.example;")
    assert results == [{"method": "dkim", "result": "pass", "props": {"header.d": "a.example"}}]


def test_parse_unclosed_comment_and_quote_do_not_raise() -> None:
    unclosed_comment = parse_authentication_results("mx.example.com; dkim=pass (unclosed header.d=x")
    assert unclosed_comment == ("mx.example.com", [{"method": "dkim", "result": "pass", "props": {}}])
    _, results = parse_authentication_results('mx.example.com; dkim=pass header.d="unclosed')
    assert results[0]["props"] == {"header.d": "unclosed"}


# --- policy --------------------------------------------------------------------------------------


def test_policy_normalises_and_validates() -> None:
    policy = SenderPolicy(
        organisation_domains=("Customer.Example.", "*.Sub.Example"), trusted_authserv_ids=(" MX.A ",)
    )
    assert policy.organisation_domains == ("customer.example", "*.sub.example")
    assert policy.trusted_authserv_ids == ("mx.a",)
    for bad in (
        {"organisation_domains": ("@customer.example",)},
        {"organisation_domains": ("a.*.example",)},
        {"organisation_domains": ("example",)},
        {"trusted_authserv_ids": ("",)},
        {"require": "spf"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            SenderPolicy(**bad)
    with pytest.raises(ValidationError):
        POLICY.require = "none"  # frozen


# --- verify_sender -------------------------------------------------------------------------------


def test_dmarc_pass_from_trusted_server() -> None:
    header = ours("dmarc=pass header.from=customer.example")
    verdict = verify_sender(email(authentication_results=header), POLICY)
    assert verdict.trusted
    assert verdict.reason == "DMARC pass for customer.example from mx.example.com"
    assert verdict.evidence == ("used: mx.example.com; dmarc=pass header.from=customer.example",)


def test_authserv_id_matches_case_insensitively_with_version() -> None:
    header = "MX.Example.COM 1; dmarc=pass header.from=Customer.Example"
    assert verify_sender(email(authentication_results=header), POLICY).trusted


def test_gmail_header_from_trusted_google() -> None:
    policy = POLICY.model_copy(update={"trusted_authserv_ids": ("mx.google.com",)})
    assert verify_sender(email(authentication_results=GMAIL), policy).trusted


def test_dmarc_fail_is_refused() -> None:
    header = ours("dmarc=fail header.from=customer.example")
    verdict = verify_sender(email(authentication_results=header), POLICY)
    assert not verdict.trusted
    assert verdict.reason == (
        "no DMARC pass for customer.example from mx.example.com (dmarc=fail for customer.example)"
    )


def test_dmarc_pass_for_another_domain_is_refused() -> None:
    verdict = verify_sender(email(authentication_results=ours("dmarc=pass header.from=evil.example")), POLICY)
    assert not verdict.trusted
    assert "dmarc=pass for evil.example" in verdict.reason


def test_dmarc_pass_without_header_from_is_refused() -> None:
    assert not verify_sender(email(authentication_results=ours("dmarc=pass")), POLICY).trusted


def test_dmarc_policy_ignores_dkim_pass() -> None:
    verdict = verify_sender(email(authentication_results=ours("dkim=pass header.d=customer.example")), POLICY)
    assert not verdict.trusted
    assert verdict.reason.endswith("(no DMARC result)")


def test_spoofed_header_from_untrusted_authserv_id_is_ignored() -> None:
    spoof = "evil.example; dmarc=pass header.from=customer.example"
    verdict = verify_sender(email(authentication_results=spoof), POLICY)
    assert not verdict.trusted
    assert verdict.reason == "no Authentication-Results from a trusted server"
    assert verdict.evidence == (f"ignored (authserv-id evil.example is not trusted): {spoof}",)


def test_microsoft_header_without_authserv_id_is_never_trusted() -> None:
    verdict = verify_sender(email(authentication_results=MICROSOFT), POLICY)
    assert not verdict.trusted
    assert verdict.evidence[0].startswith("ignored (authserv-id ? is not trusted)")


def test_topmost_trusted_header_wins_over_forged_lower_copy() -> None:
    """Our server prepends: a forged header below it with our authserv-id must not count."""
    headers = (
        "evil.example; dmarc=pass header.from=customer.example",
        ours("dmarc=fail header.from=customer.example"),
        ours("dmarc=pass header.from=customer.example"),
    )
    verdict = verify_sender(email(authentication_results=headers), POLICY)
    assert not verdict.trusted
    assert verdict.evidence[0].startswith("ignored (authserv-id evil.example")
    assert verdict.evidence[1] == "used: " + headers[1]
    assert len(verdict.evidence) == 2


def test_missing_authentication_results() -> None:
    verdict = verify_sender(email(), POLICY)
    assert verdict == type(verdict)(False, "no Authentication-Results from a trusted server", ())


def test_no_trusted_servers_configured_trusts_nobody() -> None:
    policy = SenderPolicy(organisation_domains=("customer.example",))
    header = ours("dmarc=pass header.from=customer.example")
    assert not verify_sender(email(authentication_results=header), policy).trusted


def test_sender_domain_not_an_organisation_domain() -> None:
    header = ours("dmarc=pass header.from=gmail.com")
    verdict = verify_sender(email("alice@gmail.com", authentication_results=header), POLICY)
    assert verdict == type(verdict)(False, "sender domain gmail.com is not an organisation domain")


def test_missing_from_address() -> None:
    verdict = verify_sender(email(""), POLICY)
    assert not verdict.trusted
    assert verdict.reason == "the email has no usable From address"


def test_subdomain_not_implied() -> None:
    header = ours("dmarc=pass header.from=mail.customer.example")
    verdict = verify_sender(email("bob@mail.customer.example", authentication_results=header), POLICY)
    assert verdict.reason == "sender domain mail.customer.example is not an organisation domain"


def test_wildcard_entry_covers_subdomains_only() -> None:
    policy = POLICY.model_copy(update={"organisation_domains": ("*.customer.example",)})
    sub = ours("dmarc=pass header.from=mail.customer.example")
    assert verify_sender(email("bob@mail.customer.example", authentication_results=sub), policy).trusted
    deeper = ours("dmarc=pass header.from=a.b.customer.example")
    assert verify_sender(email("bob@a.b.customer.example", authentication_results=deeper), policy).trusted
    apex = ours("dmarc=pass header.from=customer.example")
    assert not verify_sender(email(authentication_results=apex), policy).trusted
    evil = ours("dmarc=pass header.from=evilcustomer.example")
    assert not verify_sender(email("x@evilcustomer.example", authentication_results=evil), policy).trusted


def test_dmarc_must_match_the_exact_from_domain() -> None:
    """DMARC's header.from is the From domain itself; a parent's pass is not this sender's."""
    policy = POLICY.model_copy(update={"organisation_domains": ("*.customer.example",)})
    header = ours("dmarc=pass header.from=customer.example")
    verdict = verify_sender(email("bob@mail.customer.example", authentication_results=header), policy)
    assert not verdict.trusted
    assert "dmarc=pass for customer.example" in verdict.reason


def test_dkim_policy_aligned_pass() -> None:
    header = ours("dkim=pass header.d=customer.example")
    verdict = verify_sender(email(authentication_results=header), DKIM_POLICY)
    assert verdict.trusted
    assert verdict.reason == (
        "DKIM pass by customer.example, aligned with customer.example, from mx.example.com"
    )


def test_dkim_policy_parent_domain_is_relaxed_aligned() -> None:
    policy = DKIM_POLICY.model_copy(update={"organisation_domains": ("*.customer.example",)})
    header = ours("dkim=pass header.d=customer.example")
    assert verify_sender(email("bob@mail.customer.example", authentication_results=header), policy).trusted


def test_dkim_policy_header_i_domain() -> None:
    header = ours("dkim=pass header.i=alice@customer.example")
    assert verify_sender(email(authentication_results=header), DKIM_POLICY).trusted
    header = ours("dkim=pass header.i=@customer.example")
    assert verify_sender(email(authentication_results=header), DKIM_POLICY).trusted


def test_dkim_pass_for_another_domain_is_refused() -> None:
    """A valid signature by the sender's mail provider proves nothing about the From domain."""
    header = ours("dkim=pass header.d=mailprovider.example; dkim=fail header.d=customer.example; dmarc=none")
    verdict = verify_sender(email(authentication_results=header), DKIM_POLICY)
    assert not verdict.trusted
    assert verdict.reason == (
        "no aligned DKIM or DMARC pass for customer.example from mx.example.com "
        "(dkim=pass for mailprovider.example; dkim=fail for customer.example; dmarc=none)"
    )


@pytest.mark.parametrize(
    "signer", ["mail.customer.example", "example", "evilcustomer.example", "ustomer.example"]
)
def test_dkim_pass_for_child_sibling_or_tld_is_refused(signer: str) -> None:
    header = ours(f"dkim=pass header.d={signer}")
    assert not verify_sender(email(authentication_results=header), DKIM_POLICY).trusted


def test_dkim_policy_also_accepts_dmarc_pass() -> None:
    header = ours("dkim=fail header.d=customer.example; dmarc=pass header.from=customer.example")
    verdict = verify_sender(email(authentication_results=header), DKIM_POLICY)
    assert verdict.trusted
    assert verdict.reason.startswith("DMARC pass")


def test_policy_none_trusts_organisation_domain_without_authentication() -> None:
    policy = POLICY.model_copy(update={"require": "none"})
    verdict = verify_sender(email(), policy)
    assert verdict.trusted
    assert verdict.reason == "sender domain customer.example accepted; policy none: no authentication checked"
    assert not verify_sender(email("x@evil.example"), policy).trusted


def test_several_from_addresses_are_refused() -> None:
    header = ours("dmarc=pass header.from=customer.example")
    several = email(authentication_results=header, **{"from": "alice@customer.example, mallory@evil.example"})
    verdict = verify_sender(several, POLICY)
    assert not verdict.trusted
    assert "several addresses" in verdict.reason
    two_froms = ("alice@customer.example", "alice@customer.example")
    repeated = email(authentication_results=header, **{"from": two_froms})
    assert not verify_sender(repeated, POLICY).trusted
    quoted_comma = email(authentication_results=header, **{"from": '"Doe, Alice" <alice@customer.example>'})
    assert verify_sender(quoted_comma, POLICY).trusted


def test_sender_in_another_domain_is_refused() -> None:
    header = ours("dmarc=pass header.from=customer.example")
    verdict = verify_sender(email(authentication_results=header, sender="list@lists.example"), POLICY)
    assert not verdict.trusted
    assert verdict.reason == (
        "Sender domain lists.example differs from From domain customer.example: the sender is ambiguous"
    )
    same = email(authentication_results=header, sender="Assistant <bob@Customer.Example>")
    assert verify_sender(same, POLICY).trusted
    garbage = email(authentication_results=header, sender="not an address")
    assert not verify_sender(garbage, POLICY).trusted


def test_header_checks_apply_under_policy_none() -> None:
    policy = POLICY.model_copy(update={"require": "none"})
    assert not verify_sender(email(sender="x@evil.example"), policy).trusted


def test_look_alike_domains_are_not_folded_into_organisation_domains() -> None:
    """KELVIN SIGN lower-cases to "k" and fullwidth letters IDNA-map to ASCII: neither may match."""
    policy = SenderPolicy(organisation_domains=("kunde.example",), trusted_authserv_ids=("mx.example.com",))
    kelvin = ours("dmarc=pass header.from=\u212aunde.example")
    assert not verify_sender(email("a@kunde.example", authentication_results=kelvin), policy).trusted
    fullwidth = "\uff4b\uff55\uff4e\uff44\uff45.example"
    header = ours(f"dmarc=pass header.from={fullwidth}")
    assert not verify_sender(email(f"a@{fullwidth}", authentication_results=header), policy).trusted


# --- ASCII-only case folding, duplicate Subject ----------------------------------------------------


def test_authserv_ids_are_lower_cased_in_ascii_only() -> None:
    """KELVIN SIGN lower-cases to "k": a header naming "mx.\u212aunde.example" is not our server's,
    and an MTA that strips its own id would not have stripped it."""
    policy = SenderPolicy(organisation_domains=("customer.example",), trusted_authserv_ids=("MX.Kunde.Example",))
    assert policy.trusted_authserv_ids == ("mx.kunde.example",)
    assert SenderPolicy(trusted_authserv_ids=("MX.\u212aUNDE",)).trusted_authserv_ids == ("mx.\u212aunde",)
    kelvin = ours("dmarc=pass header.from=customer.example", "mx.\u212aunde.example")
    verdict = verify_sender(email(authentication_results=kelvin), policy)
    assert not verdict.trusted
    assert verdict.evidence[0].startswith("ignored (authserv-id mx.\u212aunde.example is not trusted)")
    plain = ours("dmarc=pass header.from=customer.example", "MX.KUNDE.EXAMPLE")
    assert verify_sender(email(authentication_results=plain), policy).trusted


def test_results_methods_are_lower_cased_in_ascii_only() -> None:
    _, results = parse_authentication_results("mx.example.com; D\u212aIM=pass header.d=customer.example")
    assert results[0]["method"] == "d\u212aim"
    assert not verify_sender(email(authentication_results=ours("d\u212aim=pass header.d=customer.example")),
                             DKIM_POLICY).trusted


def test_duplicate_subject_is_ambiguous() -> None:
    """DKIM may sign one Subject while the reader (and the classifier) sees the other."""
    header = ours("dmarc=pass header.from=customer.example")
    verdict = verify_sender(email(authentication_results=header, subject=("I can't log in", "Invoice")), POLICY)
    assert not verdict.trusted
    assert verdict.reason == "the Subject header appears more than once: the sender is ambiguous"
    assert verify_sender(email(authentication_results=header, subject="I can't log in"), POLICY).trusted


# --- Authentication-Results only above our own Received header --------------------------------------

RECEIVED_POLICY = POLICY.model_copy(update={"trusted_received_by": ("mx.example.com",)})
OUR_RECEIVED = ("from mail-sor-f41.google.com (mail-sor-f41.google.com [209.85.220.41])\r\n"
                " by mx.example.com (Postfix) with ESMTPS id 4Xyz for <support@example.com>;"
                " Mon, 23 Nov 2026 10:00:00 +0000")
PASS = ours("dmarc=pass header.from=customer.example")


def ordered(*fields: tuple[str, str], from_addr: str = "alice@customer.example") -> InboundEmail:
    """An InboundEmail whose headers come in the given order (header_fields) and by name (headers)."""
    fields = (("from", f"Alice <{from_addr}>"), *fields)
    collected: dict[str, tuple[str, ...]] = {}
    for name, value in fields:
        collected[name] = collected.get(name, ()) + (value,)
    base = email(from_addr)
    return type(base)(**{**base.__dict__, "headers": collected, "header_fields": tuple(fields)})


def test_received_by_policy_is_normalised_and_validated() -> None:
    policy = SenderPolicy(trusted_received_by=(" MX.Example.COM. ", "mx2.\u212a.example"))
    assert policy.trusted_received_by == ("mx.example.com", "mx2.\u212a.example")
    with pytest.raises(ValidationError):
        SenderPolicy(trusted_received_by=(" ",))
    assert SenderPolicy().trusted_received_by == ()


def test_results_above_our_received_header_count() -> None:
    mail = ordered(("authentication-results", PASS), ("received", OUR_RECEIVED),
                   ("received", "from laptop by smtp.customer.example"))
    verdict = verify_sender(mail, RECEIVED_POLICY)
    assert verdict.trusted
    assert verdict.evidence == (f"used: {PASS}",)


def test_forged_results_below_our_received_header_are_ignored() -> None:
    """Our milter failed open: the only header with our authserv-id was written by the sender."""
    mail = ordered(("received", OUR_RECEIVED), ("authentication-results", PASS),
                   ("received", "from laptop by smtp.evil.example"))
    assert verify_sender(mail, POLICY).trusted  # what trusting any position allowed
    verdict = verify_sender(mail, RECEIVED_POLICY)
    assert not verdict.trusted
    assert verdict.reason == ("no Authentication-Results from a trusted server above the Received header of "
                              "mx.example.com")
    assert verdict.evidence == (f"ignored (below the Received header of mx.example.com): {PASS}",)


def test_without_our_received_header_nothing_is_trusted() -> None:
    mail = ordered(("authentication-results", PASS), ("received", "from a by relay.customer.example"))
    verdict = verify_sender(mail, RECEIVED_POLICY)
    assert not verdict.trusted
    assert verdict.reason == ("no Received header by our receiving server (mx.example.com): "
                              "no Authentication-Results can be trusted")
    assert not verify_sender(ordered(("authentication-results", PASS)), RECEIVED_POLICY).trusted


def test_only_the_topmost_of_our_received_headers_counts() -> None:
    """A sender can add a Received "by mx.example.com" too, but only below the real one."""
    forged_below = ordered(("received", OUR_RECEIVED), ("authentication-results", PASS), ("received", OUR_RECEIVED))
    assert not verify_sender(forged_below, RECEIVED_POLICY).trusted
    internal_hops = ordered(("received", "from mx.example.com by imap.example.com with LMTP"),
                            ("authentication-results", PASS), ("received", OUR_RECEIVED),
                            ("authentication-results", ours("dmarc=fail header.from=customer.example")))
    verdict = verify_sender(internal_hops, RECEIVED_POLICY)
    assert verdict.trusted and verdict.evidence == (f"used: {PASS}",)


@pytest.mark.parametrize(
    ("received", "ours_"),
    [
        ("from a (a [1.2.3.4]) BY MX.Example.Com. (Postfix) with ESMTP id 1; Mon, 1 Jan 2026", True),
        ("from [203.0.113.5] (helo=x) by mx.example.com with esmtps (TLS1.3); date", True),
        ("from a\r\n\tby mx.example.com\r\n\twith ESMTP", True),
        ("from by (by mx.example.com) by relay.evil.example; date", False),  # a HELO named "by"
        ("from mx.example.com by relay.evil.example; by mx.example.com", False),
        ("from a (comment: by mx.example.com) by relay.evil.example", False),
        ("from a by mx.example.com.evil.example", False),
        ("from a by m\u0445.example.com", False),  # Cyrillic x
        ("(qmail 1234 invoked by uid 89); Mon, 1 Jan 2026", False),
        ("", False),
    ],
)
def test_by_host_of_received_headers(received: str, ours_: bool) -> None:
    mail = ordered(("authentication-results", PASS), ("received", received))
    assert verify_sender(mail, RECEIVED_POLICY).trusted is ours_


def test_received_by_is_compared_in_ascii_only() -> None:
    policy = RECEIVED_POLICY.model_copy(update={"trusted_received_by": ("mx.kunde.example",)})
    kelvin = ordered(("authentication-results", PASS), ("received", "from a by mx.\u212aunde.example"))
    assert not verify_sender(kelvin, policy).trusted
    plain = ordered(("authentication-results", PASS), ("received", "from a by MX.KUNDE.EXAMPLE"))
    assert verify_sender(plain, policy).trusted


def _parsed(*headers: str) -> InboundEmail:
    from bridge.mail.parse import parse_email

    head = "\r\n".join((*headers, "From: Alice <alice@customer.example>", "To: support@example.com",
                        "Subject: I can't log in", "Message-ID: <m1@customer.example>"))
    return parse_email(f"{head}\r\n\r\nHello, I can't log in.\r\n".encode())


def test_parsed_email_keeps_the_order_and_the_look_alikes() -> None:
    """End to end: parse keeps header order for trusted_received_by, and does not fold a KELVIN
    SIGN in a forged authserv-id into our id (NFC maps it to "K")."""
    ours_above = _parsed(f"Authentication-Results: {PASS}", f"Received: {OUR_RECEIVED}")
    assert verify_sender(ours_above, RECEIVED_POLICY).trusted
    forged_below = _parsed(f"Received: {OUR_RECEIVED}", f"Authentication-Results: {PASS}")
    assert not verify_sender(forged_below, RECEIVED_POLICY).trusted
    policy = POLICY.model_copy(update={"trusted_authserv_ids": ("mx.kunde.example",)})
    kelvin = _parsed("Authentication-Results: mx.\u212aunde.example; dmarc=pass header.from=customer.example")
    assert not verify_sender(kelvin, policy).trusted
    plain = _parsed("Authentication-Results: MX.KUNDE.EXAMPLE; dmarc=pass header.from=customer.example")
    assert verify_sender(plain, policy).trusted


def test_hostile_sizes_are_bounded() -> None:
    """verify_sender runs on the event loop: a 1 MB header or thousands of them are not read."""
    from bridge.automation.verify import MAX_RESULTS_CHARS, MAX_RESULTS_HEADERS

    huge = ours("dkim=fail header.d=x.example; " * 30_000 + "dmarc=pass header.from=customer.example")
    verdict = verify_sender(email(authentication_results=(huge, PASS)), POLICY)
    assert not verdict.trusted  # a header below an unread one may not stand in for it
    assert verdict.reason == (f"an Authentication-Results header is longer than {MAX_RESULTS_CHARS} characters: "
                              "not read")
    assert verify_sender(email(authentication_results=(PASS, huge)), POLICY).trusted
    spoofs = ("evil.example; dmarc=pass header.from=customer.example",) * 10_000
    verdict = verify_sender(email(authentication_results=(*spoofs, PASS)), POLICY)
    assert not verdict.trusted and len(verdict.evidence) == MAX_RESULTS_HEADERS
    assert verdict.reason == ("no Authentication-Results from a trusted server among the topmost "
                              f"{MAX_RESULTS_HEADERS}")
    late_by = "from a " + "(x) " * 250_000 + "by mx.example.com"
    long_received = ordered(("authentication-results", PASS), ("received", late_by))
    assert not verify_sender(long_received, RECEIVED_POLICY).trusted  # the by clause must come early
