"""ARC chains (RFC 8617) checked with dkimpy: what the last forwarder's seal says about an email.

A forwarder (Google) that seals a message vouches for the ARC-Authentication-Results it wrote;
dkimpy checks the seals and the newest message signature against keys published in DNS. The
work is blocking (DNS) and bounded: hostile headers get ``cv="fail"``, never an exception.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from typing import Literal

import dkim
import dns.exception
import dns.resolver

from bridge.models import ArcEvidence

# dkimpy's dnsfunc: (name: bytes, timeout=5) -> the TXT record as bytes or str, None if absent.
DnsFunc = Callable[..., bytes | str | None]

# RFC 8617 allows 50, real chains carry a few, and dkimpy hashes the whole body once per set
MAX_ARC_SETS = 10
MAX_HEADER_BYTES = 256 * 1024
MAX_KEY_LOOKUPS = 8  # distinct key names per message; an honest chain of three hops needs six at most
MAX_KEY_RECORD = 2048  # bytes: a 4096-bit RSA key record is about 750; bigger ones cost RSA time
DNS_BUDGET = 15.0  # seconds of key look-ups per message, whatever the chain names

_Field = tuple[bytes, bytes, int | None]  # lower-case name, unfolded value, instance (i=) if any
_ARC_NAMES = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_SEAL_DOMAIN = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]*)")
_SERVER_PORT = re.compile(r"[0-9]{1,5}")
_EDNS_PAYLOAD = 1232  # a 4096-bit key record fits in one UDP answer (DNS flag day 2020 size)

# dkimpy logs every bad signature at ERROR with the hostile header in it; the reason it returns
# goes into the evidence instead. Not in the logging tree, so nothing propagates to the app's log.
_DKIM_LOG = logging.Logger("dkimpy-arc", logging.CRITICAL)
_DKIM_LOG.addHandler(logging.NullHandler())


class _KeyLookups:
    """dkimpy's dnsfunc, memoised and bounded: a forged chain can name two new keys in every set."""

    def __init__(self, dnsfunc: DnsFunc) -> None:
        self._dnsfunc = dnsfunc
        self._memo: dict[bytes, bytes | None | dkim.DnsTimeoutError] = {}
        self._deadline = time.monotonic() + DNS_BUDGET

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        key = name.lower()
        if key not in self._memo:
            remaining = self._deadline - time.monotonic()
            if len(self._memo) >= MAX_KEY_LOOKUPS or remaining <= 0:
                raise dkim.DnsTimeoutError(f"key look-ups spent ({MAX_KEY_LOOKUPS} names, {DNS_BUDGET:g} s)")
            try:
                record = self._dnsfunc(name, timeout=min(timeout, remaining))
            except dkim.DnsTimeoutError as error:
                self._memo[key] = error
            else:
                record = record.encode() if isinstance(record, str) else record
                self._memo[key] = record if record is None or len(record) <= MAX_KEY_RECORD else None
        found = self._memo[key]
        if isinstance(found, dkim.DnsTimeoutError):
            raise found
        return found


def _header_block(raw: bytes) -> bytes | None:
    """The header block of ``raw``, or None when it is longer than ``MAX_HEADER_BYTES``."""
    head = raw[: MAX_HEADER_BYTES + 4]
    end = _HEADER_END.search(head)
    if end is None:
        return head if len(raw) <= MAX_HEADER_BYTES else None
    return head[: end.start()] if end.start() <= MAX_HEADER_BYTES else None


def _arc_fields(block: bytes) -> list[_Field]:
    """Each ARC header field of ``block``, in message order.

    The instance is found as dkimpy finds it (its own pattern), so both agree on the sets.
    """
    fields = []
    for line in _FOLD.sub(b"", block).splitlines():
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and name in _ARC_NAMES:
            match = dkim.ARC.INSTANCE_RE.search(value)
            fields.append((name, value.strip(), int(match.group(1)) if match else None))
    return fields


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _signer(domain: bytes) -> str:
    return _text(domain.lower().rstrip(b"."))


def _unverified(cv: Literal["fail", "none"], fields: list[_Field], reason: str) -> ArcEvidence:
    """Evidence for a chain dkimpy did not pass, from our own reading of its highest instance."""
    top = max((i for _, _, i in fields if i is not None), default=0)
    seals = [value for name, value, i in fields if name == b"arc-seal" and i == top]
    aars = [value for name, value, i in fields if name == b"arc-authentication-results" and i == top]
    domain = _SEAL_DOMAIN.search(seals[0]) if len(seals) == 1 else None
    aar = _text(aars[0]) if len(aars) == 1 else ""
    return ArcEvidence(cv, top, _signer(domain.group(1)) if domain else "", aar, _one_line(reason))


def arc_evidence(raw: bytes, dnsfunc: DnsFunc) -> ArcEvidence | None:
    """Validate the ARC chain of ``raw`` with dkimpy; None when the email has no ARC header.

    dkimpy verifies every ARC-Seal and the newest ARC-Message-Signature; ``cv`` is ``"pass"``
    only for an intact chain whose seals all report the right status. A chain terminated by a
    seal reporting ``cv=fail`` (dkimpy: None), an incomplete or duplicated set and anything
    unreadable are ``"fail"``; ARC headers without any instance number are ``"none"``.
    """
    block = _header_block(raw)
    if block is None:
        too_long = f"header block longer than {MAX_HEADER_BYTES // 1024} KiB: not checked"
        return ArcEvidence("fail", 0, "", "", too_long)
    fields = _arc_fields(block)
    if not fields:
        return None
    if len(fields) > 3 * MAX_ARC_SETS:
        return _unverified("fail", fields, f"{len(fields)} ARC header fields: more than {MAX_ARC_SETS} sets")
    beyond = [i for _, _, i in fields if i is not None and not 1 <= i <= MAX_ARC_SETS]
    if beyond:
        return _unverified("fail", fields, f"ARC instance i={beyond[0]} outside 1..{MAX_ARC_SETS}")
    try:
        cv, results, reason = dkim.arc_verify(raw, logger=_DKIM_LOG, dnsfunc=_KeyLookups(dnsfunc))
    except Exception as error:  # dkimpy lets MessageFormatError, IndexError… escape on hostile headers
        return _unverified("fail", fields, f"ARC headers unreadable ({type(error).__name__}: {error})")
    if cv != dkim.CV_Pass:
        return _unverified("none" if cv == dkim.CV_None else "fail", fields, str(reason))
    top = results[0]  # dkimpy lists the instances from the highest down
    aar = _text(top["aar-value"]).strip()
    return ArcEvidence("pass", top["instance"], _signer(top["as-domain"]), aar, "chain valid")


def parse_server(text: str) -> tuple[str, int | None]:
    """``ip``, ``ip:port`` or ``[ipv6]:port`` as (ip, port or None); ValueError for anything else.

    An IP address only: the resolver's own name would need a resolver to find it.
    """
    host, port = text.strip(), ""
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6]:port")
        port = rest[1:]
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    ipaddress.ip_address(host)
    if port and not (_SERVER_PORT.fullmatch(port) and 0 < int(port) < 65536):
        raise ValueError(f"{text!r}: {port!r} is not a port number")
    return host, int(port) if port else None


def dns_txt_resolver(nameserver: str = "", port: int = 53, timeout: float = 5.0) -> DnsFunc:
    """A dnsfunc for ``arc_evidence`` using dnspython: the system resolver, or only ``nameserver``.

    ``nameserver`` may carry its port (``parse_server``). Queries use EDNS, so a key record
    too big for 512 bytes still comes over UDP. The resolver is made at the first
    look-up, so a host without /etc/resolv.conf fails its ARC checks instead of its intake.
    Missing names give None; every other DNS failure is dkimpy's DnsTimeoutError (a key that
    cannot be had, so the seal does not verify).
    """
    host, given_port = parse_server(nameserver) if nameserver else ("", None)
    lifetime = timeout

    @functools.cache
    def resolver() -> dns.resolver.Resolver:
        chosen = dns.resolver.Resolver(configure=not host)
        if host:
            chosen.nameservers = [host]
            chosen.port = given_port or port
        chosen.use_edns(0, 0, _EDNS_PAYLOAD)
        return chosen

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver().resolve(name.decode("ascii"), "TXT", lifetime=min(timeout, lifetime),
                                        search=False, raise_on_no_answer=False)
        except UnicodeDecodeError:
            return None
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as error:
            raise dkim.DnsTimeoutError(f"{type(error).__name__}: {error}") from error
        for rdata in answer.rrset or ():
            return b"".join(rdata.strings)
        return None

    return lookup
