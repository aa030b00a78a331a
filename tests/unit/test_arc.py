"""ARC evidence (RFC 8617) and Exchange-style results; chains sealed here with dkimpy, keys from a dict."""

from __future__ import annotations

import base64
import dataclasses
import time

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from bridge.automation.verify import (
    SenderPolicy,
    Verdict,
    arc_for,
    parse_arc_authentication_results,
    verify_sender,
)
from bridge.mail import arc
from bridge.mail.arc import DnsFunc, arc_evidence, parse_server
from bridge.mail.parse import parse_email
from bridge.models import ArcEvidence, InboundEmail

OUR_RECEIVED = (b"Received: from mail-sor-f41.google.com (mail-sor-f41.google.com [209.85.220.41])\r\n"
                b" by mx.example.com (Postfix) with ESMTPS id 4Xyz for <support@example.com>;\r\n"
                b" Mon, 23 Nov 2026 10:00:00 +0000\r\n")
MESSAGE = (b"From: Alice <alice@customer.example>\r\n"
           b"To: support@example.com\r\n"
           b"Subject: I can't log in\r\n"
           b"Date: Mon, 23 Nov 2026 09:59:00 +0000\r\n"
           b"Message-ID: <m1@customer.example>\r\n"
           b"\r\n"
           b"Hello, I can't log in.\r\n")
DMARC_PASS = "dkim=pass header.d=customer.example; dmarc=pass header.from=customer.example"
MICROSOFT = ("spf=pass (sender IP is 40.107.22.54) smtp.mailfrom=customer.example; dkim=pass"
             " header.d=customer.example;dmarc=pass action=none header.from=customer.example")
VIA_GOOGLE = "from mx.google.com via the ARC set i=1 sealed by google.com"
POLICY = SenderPolicy(
    organisation_domains=("customer.example",),
    trusted_authserv_ids=("mx.example.com",),
    trusted_received_by=("mx.example.com",),
    trusted_arc_signers=("Google.COM.",),
)


@dataclasses.dataclass(frozen=True)
class Key:
    """An RSA key pair: the PEM dkimpy signs with and the DKIM TXT record publishing it."""

    pem: bytes
    record: str


def rsa_key() -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())


def seal(raw: bytes, domain: str, key: Key, results: str, selector: str = "arc") -> bytes:
    """``raw`` as the sealer ``domain`` forwards it: its Authentication-Results, then its ARC set on top."""
    authserv_id = f"mx.{domain}"
    received = f"Authentication-Results: {authserv_id}; {results}\r\n".encode() + raw
    arc_set = dkim.arc_sign(received, selector.encode(), domain.encode(), key.pem, authserv_id.encode())
    assert arc_set, "dkimpy made no ARC set"
    return b"".join(arc_set) + received


def delivered(raw: bytes) -> bytes:
    """``raw`` as our MTA delivers it: its Received on top, no Authentication-Results of ours."""
    return OUR_RECEIVED + raw


@pytest.fixture(scope="module")
def google() -> Key:
    return rsa_key()


@pytest.fixture(scope="module")
def relay() -> Key:
    return rsa_key()


@pytest.fixture(scope="module")
def dnsfunc(google: Key, relay: Key) -> DnsFunc:
    records = {b"arc._domainkey.google.com.": google.record, b"arc._domainkey.relay.example.": relay.record}

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        record = records.get(name.lower())
        return record.encode() if record else None

    return lookup


def judged(raw: bytes, dnsfunc: DnsFunc, policy: SenderPolicy = POLICY) -> tuple[InboundEmail, Verdict]:
    """The parsed email with the ARC evidence intake would attach, and the verdict on it."""
    mail = dataclasses.replace(parse_email(raw), arc=arc_evidence(raw, dnsfunc))
    return mail, verify_sender(mail, policy)


# --- ARC from the trusted signer -----------------------------------------------------------------


def test_valid_chain_from_trusted_signer_is_trusted(google: Key, dnsfunc) -> None:
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    mail, verdict = judged(raw, dnsfunc)
    aar = f"i=1; mx.google.com; {DMARC_PASS}"  # dkimpy's relaxed form: unfolded, one space
    assert mail.arc == ArcEvidence("pass", 1, "google.com", aar, "chain valid")
    assert verdict.trusted
    assert verdict.reason == f"DMARC pass for customer.example {VIA_GOOGLE}"
    assert verdict.evidence == (f"used (ARC set i=1 sealed by google.com, chain pass): {aar}",)


def test_trusted_chain_judged_like_our_own_results(google: Key, dnsfunc) -> None:
    """The sealer's results go through the same rules: its DMARC fail or a pass for another domain is no."""
    failed = delivered(seal(MESSAGE, "google.com", google, "dmarc=fail header.from=customer.example"))
    verdict = judged(failed, dnsfunc)[1]
    assert not verdict.trusted
    assert verdict.reason == f"no DMARC pass for customer.example {VIA_GOOGLE} (dmarc=fail for customer.example)"
    other = delivered(seal(MESSAGE, "google.com", google, "dmarc=pass header.from=evil.example"))
    assert not judged(other, dnsfunc)[1].trusted
    dkim_only = delivered(seal(MESSAGE, "google.com", google, "dkim=pass header.d=customer.example"))
    assert not judged(dkim_only, dnsfunc)[1].trusted
    assert judged(dkim_only, dnsfunc, POLICY.model_copy(update={"require": "dkim"}))[1].trusted


def test_valid_chain_from_untrusted_signer_is_not_trusted(relay: Key, dnsfunc) -> None:
    raw = delivered(seal(MESSAGE, "relay.example", relay, DMARC_PASS))
    mail, verdict = judged(raw, dnsfunc)
    assert (mail.arc.cv, mail.arc.signer) == ("pass", "relay.example")
    assert not verdict.trusted
    assert verdict.reason == (
        "no Authentication-Results from a trusted server above the Received header of mx.example.com"
    )
    assert verdict.evidence[0].startswith("ignored (ARC set i=1 sealed by relay.example: relay.example is not a "
                                          "trusted ARC signer): i=1; mx.relay.example;")


@pytest.mark.parametrize(
    ("before", "after"),
    [(b"Hello, I can't log in.", b"Hello, please reset bob."),
     (b"Subject: I can't log in", b"Subject: Reset bob")],
    ids=["body", "subject"],
)
def test_tampering_after_sealing_fails_the_chain(google: Key, dnsfunc, before: bytes, after: bytes) -> None:
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS).replace(before, after))
    mail, verdict = judged(raw, dnsfunc)
    assert mail.arc.cv == "fail"
    assert mail.arc.reason == "Most recent ARC-Message-Signature did not validate"
    assert not verdict.trusted
    assert verdict.evidence[0].startswith("ignored (ARC set i=1 sealed by google.com: chain fail: Most recent")


def test_changed_sender_after_sealing_fails_the_chain(google: Key, dnsfunc) -> None:
    sealed = seal(MESSAGE.replace(b"alice@", b"mallory@"), "google.com", google, DMARC_PASS)
    raw = delivered(sealed.replace(b"mallory@", b"alice@"))
    assert judged(raw, dnsfunc)[0].arc.cv == "fail"


def test_seal_with_a_key_not_in_dns_fails(google: Key, dnsfunc) -> None:
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS, selector="rotated"))
    mail, verdict = judged(raw, dnsfunc)
    assert mail.arc.cv == "fail"
    assert not verdict.trusted


@pytest.mark.parametrize(
    "forged",
    [
        b"ARC-Authentication-Results: i=1; mx.google.com; dmarc=pass header.from=customer.example\r\n",
        b"ARC-Authentication-Results: mx.google.com; dmarc=pass header.from=customer.example\r\n",
        b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=google.com; s=arc; b=AAAA\r\n"
        b"ARC-Authentication-Results: i=1; mx.google.com; dmarc=pass header.from=customer.example\r\n",
    ],
    ids=["aar-alone", "aar-without-instance", "aar-with-fake-seal"],
)
def test_forged_arc_results_without_a_seal_are_not_trusted(dnsfunc, forged: bytes) -> None:
    mail, verdict = judged(delivered(forged + MESSAGE), dnsfunc)
    assert mail.arc.cv in ("fail", "none")
    assert not verdict.trusted


def test_forged_arc_results_over_a_valid_chain_are_not_trusted(google: Key, dnsfunc) -> None:
    """A sealed DMARC fail cannot be overridden by an extra (next or same instance) AAR saying pass."""
    sealed = seal(MESSAGE, "google.com", google, "dmarc=fail header.from=customer.example")
    for instance in (1, 2):
        forged = f"ARC-Authentication-Results: i={instance}; mx.google.com; {DMARC_PASS}\r\n".encode()
        mail, verdict = judged(delivered(forged + sealed), dnsfunc)
        assert mail.arc.cv == "fail"
        assert not verdict.trusted


def test_two_hops_use_the_highest_instance(google: Key, relay: Key, dnsfunc) -> None:
    """i=1 by an untrusted relay, i=2 by the trusted signer: the verdict comes from i=2's results."""
    relayed = seal(MESSAGE, "relay.example", relay, "dmarc=fail header.from=customer.example")
    raw = delivered(seal(relayed, "google.com", google, "arc=pass; " + DMARC_PASS))
    mail, verdict = judged(raw, dnsfunc)
    assert (mail.arc.cv, mail.arc.instance, mail.arc.signer) == ("pass", 2, "google.com")
    assert mail.arc.auth_results.startswith("i=2; mx.google.com;")
    assert verdict.trusted
    assert verdict.reason == f"DMARC pass for customer.example {VIA_GOOGLE.replace('i=1', 'i=2')}"


def test_trusted_signer_below_an_untrusted_one_does_not_count(google: Key, relay: Key, dnsfunc) -> None:
    sealed = seal(MESSAGE, "google.com", google, DMARC_PASS)
    raw = delivered(seal(sealed, "relay.example", relay, "arc=pass; " + DMARC_PASS))
    mail, verdict = judged(raw, dnsfunc)
    assert (mail.arc.cv, mail.arc.instance, mail.arc.signer) == ("pass", 2, "relay.example")
    assert not verdict.trusted


def test_trusted_signer_reporting_a_broken_chain_fails(google: Key, relay: Key, dnsfunc) -> None:
    """dkimpy reports a chain whose newest seal says cv=fail as None ("terminated"): evidence says fail."""
    relayed = seal(MESSAGE, "relay.example", relay, DMARC_PASS)
    raw = delivered(seal(relayed, "google.com", google, "arc=fail; " + DMARC_PASS))
    mail, verdict = judged(raw, dnsfunc)
    assert mail.arc.cv == "fail"
    assert "the chain is terminated" in mail.arc.reason
    assert not verdict.trusted


def test_plain_trusted_results_make_arc_unnecessary(google: Key, dnsfunc) -> None:
    """Our own header decides, even against a valid trusted ARC chain, and ARC is not mentioned."""
    sealed = seal(MESSAGE, "google.com", google, DMARC_PASS)
    ours = b"Authentication-Results: mx.example.com; dmarc=fail header.from=customer.example\r\n"
    mail, verdict = judged(ours + delivered(sealed), dnsfunc)
    assert mail.arc.cv == "pass"
    assert not verdict.trusted
    assert verdict.reason.endswith("from mx.example.com (dmarc=fail for customer.example)")
    assert not any("ARC" in line for line in verdict.evidence)
    ours_pass = b"Authentication-Results: mx.example.com; dmarc=pass header.from=customer.example\r\n"
    verdict = judged(ours_pass + delivered(sealed), dnsfunc)[1]
    assert verdict.reason == "DMARC pass for customer.example from mx.example.com"


def test_arc_is_not_consulted_without_our_received_header(google: Key, dnsfunc) -> None:
    verdict = judged(seal(MESSAGE, "google.com", google, DMARC_PASS), dnsfunc)[1]
    assert not verdict.trusted
    assert verdict.reason.startswith("no Received header by our receiving server (mx.example.com)")


def test_arc_for_checks_only_with_trusted_signers(google: Key) -> None:
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    assert arc_for(raw, POLICY.model_copy(update={"trusted_arc_signers": ()})) is None


# --- hostile input -------------------------------------------------------------------------------

HOSTILE = {
    "garbage-seal": b"ARC-Seal: i=1; garbage\r\n",
    "no-space-after-colon": b"ARC-Seal:i=1; cv=none; a=rsa-sha256; d=google.com; s=arc; b=AAAA\r\n"
                            b"ARC-Message-Signature:i=1; a=rsa-sha256; d=google.com; s=arc; h=from; bh=AAAA;"
                            b" b=AAAA\r\n"
                            b"ARC-Authentication-Results:i=1; mx.google.com; dmarc=pass\r\n",
    "bad-tags": b"ARC-Seal: i=1; ;;==; cv=maybe; a=md5; d=(@); s=; b=!!\r\n"
                b"ARC-Message-Signature: i=1; h=arc-seal; b=AAAA\r\n"
                b"ARC-Authentication-Results: i=1; (((\r\n",
    "huge-instance": b"ARC-Seal: i=99999999999999999999999; cv=none; d=google.com\r\n",
    "zero-instance": b"ARC-Seal: i=0; cv=none; d=google.com\r\n",
    "duplicates": b"ARC-Seal: i=1; cv=none; d=google.com; s=arc; a=rsa-sha256; b=AAAA\r\n" * 2,
    "non-ascii": "ARC-Seal: i=1; cv=none; d=gööglé.com; s=\u212aarc; b=AAAA\r\n".encode()
                 + b"ARC-Seal: i=2; d=\xff\xfe\r\n",
    "1000-seals": b"".join(b"ARC-Seal: i=%d; cv=pass; a=rsa-sha256; d=google.com; s=arc; b=AAAA\r\n"
                           % (n % arc.MAX_ARC_SETS + 1) for n in range(1000)),
    "folded-forever": b"ARC-Seal: i=1;" + b"\r\n d=google.com;" * 5000 + b"\r\n",
    "huge-header-block": b"ARC-Seal: i=1; cv=none; d=google.com\r\n" + b"X-Filler: " + b"a" * 300_000 + b"\r\n",
}


@pytest.mark.parametrize("headers", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_arc_headers_fail_quickly_without_exception(dnsfunc, headers: bytes) -> None:
    raw = delivered(headers + MESSAGE)
    started = time.monotonic()
    evidence = arc_evidence(raw, dnsfunc)
    assert time.monotonic() - started < 2
    assert evidence is not None and evidence.cv in ("fail", "none")
    assert "\n" not in evidence.reason and len(evidence.reason) <= 300
    assert not verify_sender(dataclasses.replace(parse_email(raw), arc=evidence), POLICY).trusted


def test_header_block_limit_and_no_arc_at_all(dnsfunc) -> None:
    assert arc_evidence(delivered(MESSAGE), dnsfunc) is None
    assert arc_evidence(b"", dnsfunc) is None
    assert arc_evidence(b"\xff\x00garbage without any header", dnsfunc) is None
    huge = arc_evidence(b"X-Filler: " + b"a" * 300_000, dnsfunc)
    assert huge is not None and huge.reason == "header block longer than 256 KiB: not checked"


def test_forged_chain_naming_many_keys_is_bounded() -> None:
    """A full forged chain, each header naming its own key: at most MAX_KEY_LOOKUPS names are looked up."""
    asked: list[bytes] = []

    def slow(name: bytes, timeout: float = 5) -> bytes | None:
        asked.append(name)
        return None

    top = arc.MAX_ARC_SETS
    sets = b"".join(
        b"ARC-Seal: i=%d; cv=pass; a=rsa-sha256; d=k%d.example; s=s; b=AAAA\r\n"
        b"ARC-Message-Signature: i=%d; a=rsa-sha256; d=m%d.example; s=s; h=from; bh=AAAA; b=AAAA\r\n"
        b"ARC-Authentication-Results: i=%d; mx.example; none\r\n" % (n, n, n, n, n)
        for n in range(top, 0, -1)
    )
    evidence = arc_evidence(delivered(sets + MESSAGE), slow)
    assert evidence is not None
    assert (evidence.cv, evidence.instance, evidence.signer) == ("fail", top, f"k{top}.example")
    assert 0 < len(asked) <= arc.MAX_KEY_LOOKUPS
    assert len(set(asked)) == len(asked)  # memoised


def test_oversized_key_record_is_not_used(google: Key) -> None:
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    padded = google.record + "; n=" + "x" * arc.MAX_KEY_RECORD
    assert arc_evidence(raw, lambda name, timeout=5: padded).cv == "fail"
    assert arc_evidence(raw, lambda name, timeout=5: google.record).cv == "pass"  # str records are accepted


def test_parse_arc_authentication_results() -> None:
    assert parse_arc_authentication_results(" i = 2 ; mx.google.com; " + DMARC_PASS) == (
        "mx.google.com",
        [{"method": "dkim", "result": "pass", "props": {"header.d": "customer.example"}},
         {"method": "dmarc", "result": "pass", "props": {"header.from": "customer.example"}}],
    )
    assert parse_arc_authentication_results("mx.google.com; " + DMARC_PASS) == ("", [])
    assert parse_arc_authentication_results("") == ("", [])


# --- policy --------------------------------------------------------------------------------------


def test_arc_policy_fields_normalise_and_validate() -> None:
    policy = SenderPolicy(trusted_arc_signers=(" Google.COM. ",), arc_dns_server=" 127.0.0.1:5353 ")
    assert policy.trusted_arc_signers == ("google.com",)
    assert policy.arc_dns_server == "127.0.0.1:5353"
    assert SenderPolicy().exchange_results == "ignore"
    for bad in ({"trusted_arc_signers": ("",)}, {"trusted_arc_signers": ("com",)},
                {"trusted_arc_signers": ("*.google.com",)}, {"arc_dns_server": "dns.google"},
                {"arc_dns_server": "127.0.0.1:99999"}, {"arc_dns_server": "[::1"}, {"exchange_results": "yes"}):
        with pytest.raises(ValidationError):
            SenderPolicy(**bad)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1", ("127.0.0.1", None)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
     ("::1", ("::1", None)), ("[::1]:53", ("::1", 53)), ("[::1]", ("::1", None))],
)
def test_parse_server(text: str, parsed: tuple[str, int | None]) -> None:
    assert parse_server(text) == parsed


# --- Exchange Online: Authentication-Results without authserv-id ---------------------------------

EXCHANGE_POLICY = SenderPolicy(
    organisation_domains=("customer.example",),
    trusted_received_by=("mx.example.com",),
    exchange_results="trust",
)


def exchange_mail(*, above_our_received: bool) -> InboundEmail:
    results = f"Authentication-Results: {MICROSOFT}\r\n".encode()
    raw = results + OUR_RECEIVED + MESSAGE if above_our_received else OUR_RECEIVED + results + MESSAGE
    return parse_email(raw)


def test_exchange_results_trusted_above_our_received_header() -> None:
    verdict = verify_sender(exchange_mail(above_our_received=True), EXCHANGE_POLICY)
    assert verdict.trusted
    assert verdict.reason == "DMARC pass for customer.example from our receiving server (no authserv-id)"
    assert verdict.evidence == (f"used: {MICROSOFT}",)


def test_exchange_results_below_our_received_header_are_ignored() -> None:
    verdict = verify_sender(exchange_mail(above_our_received=False), EXCHANGE_POLICY)
    assert not verdict.trusted
    assert verdict.evidence == (f"ignored (below the Received header of mx.example.com): {MICROSOFT}",)


def test_exchange_results_ignored_by_default() -> None:
    policy = EXCHANGE_POLICY.model_copy(update={"exchange_results": "ignore"})
    verdict = verify_sender(exchange_mail(above_our_received=True), policy)
    assert not verdict.trusted
    assert verdict.evidence == (f"ignored (authserv-id ? is not trusted): {MICROSOFT}",)


def test_exchange_trust_needs_trusted_received_by() -> None:
    with pytest.raises(ValidationError, match="exchange_results 'trust' needs trusted_received_by"):
        SenderPolicy(organisation_domains=("customer.example",), exchange_results="trust")
    unchecked = EXCHANGE_POLICY.model_copy(update={"trusted_received_by": ()})  # model_copy skips validators
    assert not verify_sender(exchange_mail(above_our_received=True), unchecked).trusted


def test_exchange_trust_still_prefers_nothing_over_unreadable_headers() -> None:
    """Only a header that parses as Exchange's results stands in; garbage without an id does not."""
    raw = b"Authentication-Results: ;;; garbage\r\n" + OUR_RECEIVED + MESSAGE
    verdict = verify_sender(parse_email(raw), EXCHANGE_POLICY)
    assert not verdict.trusted
    assert verdict.evidence[0] == "ignored (authserv-id ? is not trusted): ;;; garbage"
