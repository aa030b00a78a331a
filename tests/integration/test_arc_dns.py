"""ARC verification end to end over real DNS: the sealer's key served by the loopback DNS stand-in."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.automation.verify import SenderPolicy, arc_for, verify_sender
from bridge.mail.arc import arc_evidence, dns_txt_resolver
from bridge.mail.parse import parse_email
from bridge.sandbox.dns import DnsServer
from tests.unit.test_arc import DMARC_PASS, MESSAGE, POLICY, VIA_GOOGLE, delivered, rsa_key, seal

pytestmark = pytest.mark.integration


@pytest.fixture
def dns_server():
    with DnsServer({}) as server:
        yield server


def policy_for(server: DnsServer) -> SenderPolicy:
    return SenderPolicy(**{**POLICY.model_dump(), "arc_dns_server": f"127.0.0.1:{server.port}"})


def test_valid_chain_verified_with_key_from_dns(dns_server: DnsServer) -> None:
    google = rsa_key()
    dns_server.records["arc._domainkey.google.com"] = google.record
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    evidence = arc_for(raw, policy_for(dns_server))
    assert evidence is not None
    assert (evidence.cv, evidence.instance, evidence.signer) == ("pass", 1, "google.com")
    assert dns_server.queries >= 1
    verdict = verify_sender(dataclasses.replace(parse_email(raw), arc=evidence), policy_for(dns_server))
    assert verdict.trusted
    assert verdict.reason == f"DMARC pass for customer.example {VIA_GOOGLE}"


def test_rotated_or_missing_key_in_dns_fails_the_chain(dns_server: DnsServer) -> None:
    """The records change at run time: another key published, then none (NXDOMAIN)."""
    google = rsa_key()
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    dns_server.records["arc._domainkey.google.com"] = rsa_key().record
    evidence = arc_for(raw, policy_for(dns_server))
    assert evidence is not None and evidence.cv == "fail"
    del dns_server.records["arc._domainkey.google.com"]
    evidence = arc_for(raw, policy_for(dns_server))
    assert evidence is not None and evidence.cv == "fail"
    dns_server.records["ARC._domainkey.Google.com."] = google.record
    assert arc_for(raw, policy_for(dns_server)).cv == "pass"


def test_unreachable_resolver_fails_without_exception() -> None:
    """One look-up times out (memoised for the seal and the signature); the chain fails, nothing raises."""
    with DnsServer({}) as server:
        closed = f"127.0.0.1:{server.port}"
    google = rsa_key()
    raw = delivered(seal(MESSAGE, "google.com", google, DMARC_PASS))
    evidence = arc_evidence(raw, dns_txt_resolver(closed, timeout=1))
    assert evidence is not None and evidence.cv == "fail"
