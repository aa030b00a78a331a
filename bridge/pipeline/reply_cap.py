"""Whether an email may get an automatic answer (the acknowledgement, the note that files were
left out): the guard's verdict, an address to answer, and the cap on automatic replies per
recipient (``guard.reply_cap``), which every automatic answer counts against."""

from __future__ import annotations

import time

from bridge.models import GuardAction, InboundEmail
from bridge.pipeline.context import Context
from bridge.pipeline.job import Job


def reply_refused(job: Job, email: InboundEmail) -> str:
    """Why this email may get no automatic answer, or "" when it may (the cap is asked last, by
    ``reply_cap_allows``, since asking counts the answer)."""
    guard = job.result("guard")
    if guard.get("action") != GuardAction.PROCESS.value:
        return guard.get("reason") or "the guard allows no reply"
    if "@" not in email.from_addr:
        return "no address to reply to"
    return ""


def reply_cap_allows(ctx: Context, address: str) -> bool:
    """Sliding window of automatic replies per recipient; records this one when allowed."""
    cap = ctx.cfg.guard.reply_cap
    now = time.time()
    key = f"cap:{address.lower()}"
    recent = [t for t in ctx.store.limits.get(key, []) if t > now - cap.per_seconds]
    if len(recent) >= cap.count:
        return False
    ctx.store.limits.put(key, [*recent, now], durable=False)
    return True
