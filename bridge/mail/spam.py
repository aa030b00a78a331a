"""The receiving server's spam verdict, and a failed SPF/DMARC check by a server we trust.

Only what a server in front of us wrote counts, so only the topmost value of each header is
read: a sender can add a second ``X-Spam-Status`` below ours, never above. A sender who forges a
"spam" verdict only hurts their own mail; one who forges "not spam" is not believed, since only
positive verdicts are looked for. Exchange strips ``X-MS-Exchange-Organization-*`` headers from
mail entering the organisation, so the SCL there is Exchange's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.ascii import ascii_lower
from bridge.automation.verify import parse_authentication_results
from bridge.models import InboundEmail

_RSPAMD_SPAM_ACTIONS = frozenset({"reject", "add header", "add_header", "rewrite subject", "rewrite_subject",
                                  "soft reject", "soft_reject"})
_SCORE = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*\]")  # rspamd: "True [15.2 / 15.0]"
_SFV = re.compile(r"(?:^|;)\s*SFV\s*:\s*(\w+)", re.I)
_SCL_VALUE = re.compile(r"-?\d+")
MAX_HEADER_CHARS = 4096


def _topmost(email: InboundEmail, name: str) -> str:
    for field, value in email.header_fields:
        if field == name:
            return value[:MAX_HEADER_CHARS].strip()
    return ""


def spam_evidence(email: InboundEmail, scl_threshold: int = 5) -> str:
    """Why the receiving server thinks this is spam ("" when it does not say so)."""
    flag = _topmost(email, "x-spam-flag")
    if ascii_lower(flag).startswith("yes"):
        return "X-Spam-Flag: YES"
    status = _topmost(email, "x-spam-status")
    if ascii_lower(status).startswith("yes"):
        return f"X-Spam-Status: {status[:80]}"
    action = ascii_lower(_topmost(email, "x-rspamd-action"))
    if action in _RSPAMD_SPAM_ACTIONS:
        return f"X-Rspamd-Action: {action}"
    result = _topmost(email, "x-spamd-result")
    if ascii_lower(result).startswith("true"):
        return f"X-Spamd-Result: {result[:80]}"
    score = _SCORE.search(result)
    if score and float(score.group(1)) >= float(score.group(2)) > 0:
        return f"X-Spamd-Result score {score.group(1)} of {score.group(2)}"
    scl = _SCL_VALUE.match(_topmost(email, "x-ms-exchange-organization-scl"))
    if scl and int(scl.group(0)) >= scl_threshold:
        return f"X-MS-Exchange-Organization-SCL: {scl.group(0)} (≥ {scl_threshold})"
    verdict = _SFV.search(_topmost(email, "x-forefront-antispam-report"))
    if verdict and verdict.group(1).upper() in ("SPM", "BLK"):
        return f"X-Forefront-Antispam-Report: SFV:{verdict.group(1).upper()}"
    return ""


def authentication_failure(email: InboundEmail, trusted_authserv_ids: Iterable[str]) -> str:
    """SPF or DMARC failed in the topmost Authentication-Results of a server we trust ("" if not)."""
    trusted = {ascii_lower(entry) for entry in trusted_authserv_ids}
    if not trusted:
        return ""
    for name, value in email.header_fields[:200]:
        if name != "authentication-results" or len(value) > 8 * 1024:
            continue
        server, results = parse_authentication_results(value)
        if ascii_lower(server) not in trusted:
            continue
        failed = [f"{r['method']}={r['result']}" for r in results
                  if (r["method"], r["result"]) in (("dmarc", "fail"), ("spf", "fail"))]
        return f"{', '.join(failed)} at {server}" if failed else ""
    return ""
