"""The category of a new ticket (bridge/textclass/categories.py), written to Odoo once: a tag
``categories.tag_prefix`` + the category's label and, with ``categories.ticket_type`` on an Odoo
that has ticket types (Enterprise), the ticket type of that name."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from bridge.config import CategoriesConfig
from bridge.models import GuardAction
from bridge.pipeline.context import Context
from bridge.pipeline.job import Job
from bridge.textclass.categories import CategoryClassifier

log = logging.getLogger("bridge.pipeline")


@lru_cache(maxsize=4)
def classifier_for(cfg: CategoriesConfig) -> CategoryClassifier:
    """One compiled classifier per categories configuration."""
    return CategoryClassifier(cfg.rules, cfg.fallback)


class CategoriseStage:
    """Give a new ticket its category; follow-ups, bounces and mail the guard only records are left alone."""

    name = "categorise"
    # Not journaled on its own (no state write per email, also when categories are off): both
    # writes are idempotent (a tag linked again, the same type written again) and the category is
    # the same when a re-run after a crash reads the same email.
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        cfg = ctx.cfg.categories
        if not cfg.enabled or not job.result("ticket").get("new"):
            return {}
        if job.result("guard").get("action", GuardAction.PROCESS.value) != GuardAction.PROCESS.value:
            return {"skipped": "recorded only"}
        email, ticket = job.email_and_ticket()
        found = await ctx.blocking(classifier_for(cfg).classify, email.subject, email.text)
        await ctx.odoo(ctx.desk.add_tags, ticket, [f"{cfg.tag_prefix}{found.label}"])
        typed = cfg.ticket_type and await ctx.odoo(ctx.desk.set_ticket_type, ticket, found.label)
        log.info("%s: ticket %s category %s (score %d: %s)%s", job.key, ticket, found.key, found.score,
                 ", ".join(found.matched[:5]) or "no phrase", " and ticket type" if typed else "")
        return {"category": found.key, "label": found.label, "score": found.score,
                "matched": list(found.matched[:10]), "ticket_type": typed}
