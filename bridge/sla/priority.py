"""The priority of a new ticket from ``sla.priority_rules`` (bridge/sla/policy.py), written to
its ``priority`` field once, as it is created; agents may change it later and the SLA clocks
follow (the monitor reads the priority at every sweep)."""

from __future__ import annotations

import logging
from typing import Any

from bridge.pipeline.context import Context
from bridge.pipeline.job import Job
from bridge.sla.policy import priority_for

log = logging.getLogger("bridge.sla")


class PriorityStage:
    """Set the priority of a new ticket when a rule matches."""

    name = "priority"
    journal = False  # set_priority writes only a different value: a re-run after a crash is safe

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        rules = ctx.cfg.sla.priority_rules
        if not rules or not job.result("ticket").get("new"):
            return {}
        email, ticket = job.email_and_ticket()
        # the ticket's category (bridge/pipeline/categorise.py), else the login classifier's login/other
        category = job.result("categorise").get("category") or (
            "login" if job.result("login").get("login") else "other")
        partner = job.result("ticket").get("partner")
        tags = await ctx.odoo(ctx.desk.partner_tags, partner) if partner and any(r.partner_tags for r in rules) else []
        priority = priority_for(rules, customer_email=email.from_addr, mailbox=ctx.mailbox(email.mailbox).name,
                                folder=ctx.mailbox(email.mailbox).cfg.imap.folder, category=category,
                                subject=email.subject, subject_urgency=ctx.cfg.sla.subject_urgency, partner_tags=tags)
        if priority is None:
            return {}
        await ctx.odoo(ctx.desk.set_priority, ticket, priority)
        log.info("%s: ticket %s priority %s by sla.priority_rules", job.key, ticket, priority)
        return {"priority": priority}
