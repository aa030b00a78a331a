"""Decides whether an email's sender is authenticated enough for the bridge to act on their own account."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from mailparser.utils import get_addresses
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from bridge.ascii import ascii_lower
from bridge.mail.arc import DnsFunc, arc_evidence, dns_txt_resolver, parse_server
from bridge.models import ArcEvidence, InboundEmail

# verify_sender runs on the event loop: hostile sizes are bounded. Our server's header is among
# the topmost few and short; a Received header's "by" clause comes within its first words.
MAX_RESULTS_HEADERS = 20
MAX_RESULTS_CHARS = 8 * 1024
_RECEIVED_SCAN = 2 * 1024
_TOKEN = re.compile(r'[^\s()<>@,;:\\"/\[\]?=\x00-\x1f\x7f]+')  # RFC 2045 token: a bare authserv-id
_ARC_INSTANCE = re.compile(r"\s*i\s*=\s*[0-9]+\s*;")
_EXCHANGE_SERVER = "our receiving server (no authserv-id)"


class SenderPolicy(BaseModel):
    """Which senders may trigger account actions, and whose Authentication-Results count.

    ``require="none"`` exists for test setups only (the app warns loudly at start).
    ``organisation_domains`` are exact; subdomains only through an explicit ``"*.example.com"``
    entry, which matches proper subdomains but not ``example.com`` itself.
    ``trusted_authserv_ids`` name OUR receiving servers: anyone can add an Authentication-Results
    header to a message, only the ones our server stamped are evidence. The MTA MUST therefore
    remove incoming Authentication-Results headers that carry its authserv-id (RFC 8601 §5; check
    that the milter or filter in use does, case-insensitively), or a header the sender wrote
    with our id is read as our server's whenever our server adds none.
    ``trusted_received_by`` names the hosts our receiving MTA writes in the ``by`` clause of its
    ``Received`` header. When set, only Authentication-Results headers ABOVE the topmost such
    ``Received`` header count (they were added after our MTA took the message in); if no such
    header exists, nothing is trusted. This catches a forged header when our milter failed open
    or a path (internal submission) skipped it. When empty, any position counts (the app warns).
    ``exchange_results="trust"`` takes an Authentication-Results header WITHOUT authserv-id
    (Exchange Online writes its results straight after the colon, ``spf=pass ...``) as our
    server's. Anyone can write such a header, so this needs ``trusted_received_by``: only one
    above our MTA's Received header counts. ``"ignore"`` (the default) never uses one.
    ``trusted_arc_signers`` are the sealing domains (ARC-Seal ``d=``, e.g. ``google.com``) whose
    ARC-Authentication-Results stand in when no Authentication-Results of ours is there: only
    the highest ARC instance, only with a chain that validates (RFC 8617), checked at intake.
    A valid seal proves the signer wrote those results, not when: like DKIM, a sealed message
    can be replayed, so list only forwarders the organisation's mail really passes through.
    ``arc_dns_server`` is the resolver (``ip``, ``ip:port`` or ``[ipv6]:port``) for the ARC key
    look-ups; empty uses the system resolver.
    Ids, hosts and domains compare ASCII case-insensitively, never by Unicode case folding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    require: Literal["dmarc", "dkim", "none"] = "dmarc"
    organisation_domains: tuple[str, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()
    trusted_received_by: tuple[str, ...] = ()
    exchange_results: Literal["ignore", "trust"] = "ignore"
    trusted_arc_signers: tuple[str, ...] = ()
    arc_dns_server: str = ""

    @field_validator("organisation_domains")
    @classmethod
    def _domains_are_plain(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = []
        for entry in value:
            bare = entry.removeprefix("*.")
            if not bare or any(c in bare for c in "@*/ ") or "." not in bare:
                raise ValueError(f"{entry!r} is not a domain (or '*.domain' for its subdomains)")
            domains.append(("*." if entry.startswith("*.") else "") + _domain(bare))
        return tuple(domains)

    @field_validator("trusted_authserv_ids")
    @classmethod
    def _ids_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        ids = tuple(ascii_lower(entry.strip()) for entry in value)
        if not all(ids):
            raise ValueError("an empty authserv-id would trust headers that name no server")
        return ids

    @field_validator("trusted_received_by")
    @classmethod
    def _hosts_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hosts = tuple(_domain(entry) for entry in value)
        if not all(hosts):
            raise ValueError("an empty host name would match no Received header")
        return hosts

    @field_validator("trusted_arc_signers")
    @classmethod
    def _signers_are_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        signers = tuple(_domain(entry) for entry in value)
        for entry, signer in zip(value, signers):
            if any(c in signer for c in "@*/ ") or "." not in signer:
                raise ValueError(f"{entry!r} is not a sealing domain (the d= of an ARC-Seal)")
        return signers

    @field_validator("arc_dns_server")
    @classmethod
    def _server_is_address(cls, value: str) -> str:
        if value.strip():
            try:
                parse_server(value)
            except ValueError as error:
                raise ValueError(f"{value!r} is not the ip, ip:port or [ipv6]:port of a DNS resolver "
                                 f"({error})") from None
        return value.strip()

    @model_validator(mode="after")
    def _exchange_needs_position(self) -> SenderPolicy:
        if self.exchange_results == "trust" and not self.trusted_received_by:
            raise ValueError(
                "exchange_results 'trust' needs trusted_received_by: anyone can write an "
                "Authentication-Results header without authserv-id, only one above our MTA's "
                "Received header is our server's"
            )
        return self


@dataclass(frozen=True)
class Verdict:
    """Whether the sender is trusted; ``reason`` is one sentence for the escalation note."""

    trusted: bool
    reason: str
    evidence: tuple[str, ...] = ()


# --- RFC 8601 parsing ----------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Replace (nested) comments by a space, leaving quoted strings intact; unclosed ones run to the end."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
            if not depth:
                out.append(char)
        elif char == "\\" and (depth or quoted):
            escaped = True
            if not depth:
                out.append(char)
        elif quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif not depth:
            quoted = char == '"'
            out.append(char)
    return "".join(out)


def _split_outside_quotes(text: str) -> list[str]:
    """Split on ';' that is not inside a quoted string."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """The unescaped content of the quoted string opening at ``pos``, and the position after it."""
    out, pos = [], pos + 1
    while pos < len(text) and text[pos] != '"':
        if text[pos] == "\\" and pos + 1 < len(text):
            pos += 1
        out.append(text[pos])
        pos += 1
    return "".join(out), pos + 1


def _pairs(segment: str) -> list[tuple[str, str | None]]:
    """``key=value`` pairs (value None for a bare word) of one comment-free resinfo.

    Unquoted values run to the next whitespace, so base64 fragments such as ``header.b=ab/c+=``
    survive even though RFC 8601 would have them quoted.
    """
    pairs: list[tuple[str, str | None]] = []
    pos, end = 0, len(segment)
    while pos < end:
        if segment[pos].isspace():
            pos += 1
            continue
        if segment[pos] == '"':
            word, pos = _read_quoted(segment, pos)
            pairs.append((word, None))
            continue
        start = pos
        while pos < end and not segment[pos].isspace() and segment[pos] not in '="':
            pos += 1
        key = segment[start:pos]
        while pos < end and segment[pos].isspace():
            pos += 1
        if pos >= end or segment[pos] != "=":
            pairs.append((key, None))
            continue
        pos += 1
        while pos < end and segment[pos].isspace():
            pos += 1
        if pos < end and segment[pos] == '"':
            value, pos = _read_quoted(segment, pos)
        else:
            start = pos
            while pos < end and not segment[pos].isspace():
                pos += 1
            value = segment[start:pos]
        pairs.append((key, value))
    return pairs


def _authserv_id(segment: str) -> str:
    """The authserv-id of the header's first segment (an optional version number follows), or ""."""
    words = _pairs(segment)
    if len(words) == 2 and words[1][0].isdigit():
        words = words[:1]
    if len(words) != 1 or words[0][1] is not None or not _TOKEN.fullmatch(words[0][0]):
        return ""
    return words[0][0]


def parse_authentication_results(value: str) -> tuple[str, list[dict]]:
    """Parse one Authentication-Results value (RFC 8601) into its authserv-id and results.

    Each result is ``{"method", "result", "props"}``; method and result are lower-case, ``props``
    maps lower-case keys (``header.d``, ``smtp.mailfrom``, also ``reason`` and vendor extras like
    ``action``) to their values. Comments, quoting, folding, a version number and ``none`` are
    accepted. Exchange Online omits the authserv-id: its results come back under ``""``, an id
    no policy can trust. Any other value without a recognisable authserv-id gives ``("", [])``.
    Never raises.
    """
    segments = _split_outside_quotes(_strip_comments(value))
    authserv_id = _authserv_id(segments[0])
    first = _pairs(segments[0])
    if not authserv_id and not (first and first[0][0] and first[0][1]):
        return "", []
    results = []
    for segment in segments[1:] if authserv_id else segments:
        pairs = _pairs(segment)
        method, result = pairs[0] if pairs else ("", None)
        if not method or not result:
            continue  # "none", an empty trailing ";" or a fragment we cannot read
        props = {ascii_lower(key): val for key, val in pairs[1:] if val is not None}
        results.append(
            {"method": ascii_lower(method.split("/")[0].strip()), "result": ascii_lower(result), "props": props}
        )
    return authserv_id, results


def parse_arc_authentication_results(value: str) -> tuple[str, list[dict]]:
    """Parse an ARC-Authentication-Results value (``i=N; authserv-id; results``, RFC 8617 §4.1.1)
    as ``parse_authentication_results`` does; ``("", [])`` when the leading ``i=`` tag is missing."""
    tag = _ARC_INSTANCE.match(value)
    return parse_authentication_results(value[tag.end() :]) if tag else ("", [])


# --- the verdict ---------------------------------------------------------------------------------


def _domain(text: str) -> str:
    """Comparable form of a domain: no trailing dot, ASCII lower-cased.

    Only ASCII: Unicode case folding and IDNA mapping turn look-alikes (KELVIN SIGN, fullwidth
    letters) into real domains, and a security check must not make two different names equal.
    """
    return ascii_lower(text.strip().strip("."))


def _addr_domain(addr: str) -> str:
    return _domain(addr.rpartition("@")[2]) if "@" in addr else ""


def _is_organisation(domain: str, policy: SenderPolicy) -> bool:
    for entry in policy.organisation_domains:
        if entry.startswith("*."):
            if domain.endswith(entry[1:]):
                return True
        elif domain == entry:
            return True
    return False


def _addresses(values: tuple[str, ...]) -> list[str]:
    return [addr for value in values for _, addr in get_addresses(value) if "@" in addr]


def _header_problem(email: InboundEmail, domain: str) -> str:
    """Why From/Sender/Subject make the identity ambiguous, or "" when they do not.

    A repeated Subject is as ambiguous as a repeated From: DKIM may have signed one while the
    reader (and the classifier) sees the other.
    """
    from_values = email.headers.get("from", ())
    if len(from_values) > 1 or len(_addresses(from_values)) > 1:
        return "the From header holds several addresses"
    if len(email.headers.get("subject", ())) > 1:
        return "the Subject header appears more than once"
    sender_values = email.headers.get("sender", ())
    if sender_values:
        senders = _addresses(sender_values)
        if len(senders) != 1:
            return "the Sender header is not exactly one address"
        if _addr_domain(senders[0]) != domain:
            return f"Sender domain {_addr_domain(senders[0])} differs from From domain {domain}"
    return ""


def _aligned(signer: str, domain: str) -> bool:
    """Relaxed alignment: the signing domain is the From domain or a parent of it (never a bare TLD)."""
    return "." in signer and (signer == domain or domain.endswith("." + signer))


def _dkim_signer(props: dict) -> str:
    if props.get("header.d"):
        return _domain(props["header.d"])
    return _addr_domain(props.get("header.i", "")) or _domain(props.get("header.i", ""))


def _summary(results: list[dict], methods: tuple[str, ...]) -> str:
    """What the server said about the relevant methods, e.g. "dkim=pass for a.example; dmarc=none"."""
    found = []
    for item in results:
        if item["method"] not in methods:
            continue
        props = item["props"]
        where = props.get("header.from") if item["method"] == "dmarc" else _dkim_signer(props)
        found.append(f"{item['method']}={item['result']}" + (f" for {where}" if where else ""))
    return "; ".join(found) or "no " + "/".join(m.upper() for m in methods) + " result"


def _judge(results: list[dict], domain: str, server: str, require: str) -> tuple[bool, str]:
    for item in results:
        props = item["props"]
        if item["method"] == "dmarc" and item["result"] == "pass":
            if _domain(props.get("header.from", "")) == domain:
                return True, f"DMARC pass for {domain} from {server}"
    if require == "dkim":
        for item in results:
            signer = _dkim_signer(item["props"])
            if item["method"] == "dkim" and item["result"] == "pass" and _aligned(signer, domain):
                return True, f"DKIM pass by {signer}, aligned with {domain}, from {server}"
        methods: tuple[str, ...] = ("dkim", "dmarc")
        wanted = "aligned DKIM or DMARC pass"
    else:
        methods, wanted = ("dmarc",), "DMARC pass"
    return False, f"no {wanted} for {domain} from {server} ({_summary(results, methods)})"


def received_by(value: str) -> str:
    """The host of a Received header's ``by`` clause (ASCII lower-case, no trailing dot), or "".

    The clause must come first, or right after the ``from`` clause (whose HELO name is one word
    chosen by the sender, "by" included); comments and the date after the last ";" are ignored.
    """
    text = _strip_comments(value[:_RECEIVED_SCAN])
    words = (text.rpartition(";")[0] if ";" in text else text).split()
    start = 2 if words and ascii_lower(words[0]) == "from" else 0
    if len(words) > start + 1 and ascii_lower(words[start]) == "by":
        return _domain(words[start + 1])
    return ""


def _results_headers(email: InboundEmail, policy: SenderPolicy) -> tuple[list[str], list[str], str]:
    """The Authentication-Results values that may count, those ignored for their position, and
    why nothing may count ("" when something may)."""
    if not policy.trusted_received_by:
        return list(email.headers.get("authentication-results", ())), [], ""
    hosts = ", ".join(policy.trusted_received_by)
    above: list[str] = []
    for index, (name, value) in enumerate(email.header_fields):
        if name == "authentication-results":
            above.append(value)
        elif name == "received" and received_by(value) in policy.trusted_received_by:
            below = [v for n, v in email.header_fields[index + 1 :] if n == "authentication-results"]
            return above, below, ""
    return [], [], f"no Received header by our receiving server ({hosts}): no Authentication-Results can be trusted"


def _results_server(authserv_id: str, results: list[dict], policy: SenderPolicy) -> str:
    """Who wrote a header we may use: a trusted authserv-id, our Exchange Online server, or ""."""
    if authserv_id:
        return authserv_id if ascii_lower(authserv_id) in policy.trusted_authserv_ids else ""
    # model_copy skips the validators: the position requirement is checked here again
    exchange = policy.exchange_results == "trust" and policy.trusted_received_by
    return _EXCHANGE_SERVER if exchange and results else ""


def _arc_problem(arc: ArcEvidence, policy: SenderPolicy) -> str:
    """Why the ARC evidence cannot stand in for our server's results, or "" when it can."""
    if arc.cv != "pass":
        return f"chain {arc.cv}: {arc.reason}"
    if arc.signer not in policy.trusted_arc_signers:
        return f"{arc.signer or 'an unnamed sealer'} is not a trusted ARC signer"
    if len(arc.auth_results) > MAX_RESULTS_CHARS:
        return f"its ARC-Authentication-Results is longer than {MAX_RESULTS_CHARS} characters"
    return ""


def _arc_verdict(arc: ArcEvidence, domain: str, policy: SenderPolicy, evidence: list[str]) -> Verdict | None:
    """The verdict on a trusted signer's ARC-Authentication-Results; None (noted in ``evidence``) if unusable."""
    where = f"ARC set i={arc.instance} sealed by {arc.signer or '?'}"
    problem = _arc_problem(arc, policy)
    if problem:
        evidence.append(f"ignored ({where}: {problem}): {arc.auth_results[:200]}")
        return None
    evidence.append(f"used ({where}, chain pass): {arc.auth_results}")
    authserv_id, results = parse_arc_authentication_results(arc.auth_results)
    trusted, reason = _judge(results, domain, f"{authserv_id or '?'} via the {where}", policy.require)
    return Verdict(trusted, reason, tuple(evidence))


def verify_sender(email: InboundEmail, policy: SenderPolicy) -> Verdict:
    """Trusted only if the From domain is ours to serve and OUR server vouches for it.

    Only the topmost Authentication-Results of a trusted authserv-id counts: our server prepends
    its own, anything below it (or from another authserv-id) may have been written by the sender.
    The first ``MAX_RESULTS_HEADERS`` are looked at; one longer than ``MAX_RESULTS_CHARS`` ends
    the search untrusted (a sender cannot put headers above our server's). With
    ``policy.trusted_received_by``, only headers above our MTA's topmost Received header are
    looked at (see ``SenderPolicy``); there, with ``exchange_results="trust"``, one without
    authserv-id counts too. When no header of ours is found, the ARC-Authentication-Results of
    ``email.arc`` is judged the same way if its chain passed and its sealer is a trusted ARC
    signer.
    """
    domain = _addr_domain(email.from_addr)
    if not domain:
        return Verdict(False, "the email has no usable From address")
    if not _is_organisation(domain, policy):
        return Verdict(False, f"sender domain {domain} is not an organisation domain")
    problem = _header_problem(email, domain)
    if problem:
        return Verdict(False, f"{problem}: the sender is ambiguous")
    if policy.require == "none":
        return Verdict(True, f"sender domain {domain} accepted; policy none: no authentication checked")

    candidates, below, untrusted = _results_headers(email, policy)
    if untrusted:
        return Verdict(False, untrusted)
    evidence: list[str] = []
    for value in candidates[:MAX_RESULTS_HEADERS]:
        if len(value) > MAX_RESULTS_CHARS:  # not read, and nothing below it may stand in for it
            evidence.append(f"not read (longer than {MAX_RESULTS_CHARS} characters): {value[:200]}…")
            return Verdict(False, f"an Authentication-Results header is longer than {MAX_RESULTS_CHARS} "
                                  "characters: not read", tuple(evidence))
        authserv_id, results = parse_authentication_results(value)
        server = _results_server(authserv_id, results, policy)
        if not server:
            evidence.append(f"ignored (authserv-id {authserv_id or '?'} is not trusted): {value}")
            continue
        evidence.append(f"used: {value}")
        trusted, reason = _judge(results, domain, server, policy.require)
        return Verdict(trusted, reason, tuple(evidence))
    if email.arc is not None:
        arc_verdict = _arc_verdict(email.arc, domain, policy, evidence)
        if arc_verdict is not None:
            return arc_verdict
    reason = "no Authentication-Results from a trusted server"
    if len(candidates) > MAX_RESULTS_HEADERS:
        reason += f" among the topmost {MAX_RESULTS_HEADERS}"
    if policy.trusted_received_by:
        hosts = ", ".join(policy.trusted_received_by)
        reason += f" above the Received header of {hosts}"
        evidence += [f"ignored (below the Received header of {hosts}): {value}"
                     for value in below[:MAX_RESULTS_HEADERS]]
    return Verdict(False, reason, tuple(evidence))


@functools.lru_cache(maxsize=8)
def _key_resolver(server: str) -> DnsFunc:
    return dns_txt_resolver(server)


def arc_for(raw: bytes, policy: SenderPolicy) -> ArcEvidence | None:
    """The ARC evidence for ``InboundEmail.arc``: None at once when no ARC signer is trusted.

    Blocking (the sealers' keys are DNS look-ups, ``arc_dns_server`` or the system resolver,
    bounded by ``bridge.mail.arc``): call it off the event loop.
    """
    if not policy.trusted_arc_signers:
        return None
    return arc_evidence(raw, _key_resolver(policy.arc_dns_server))
