"""Auto-assignment of new tickets (``assignment:``): to the operator with the fewest open tickets
in Odoo, or to the next one in turn; a ticket that already has an assignee (Odoo's own team
rules, an agent quicker than the bridge) keeps it.

Assignments run one at a time (``Context.assign_lock``), so two tickets arriving together do not
both see the same loads and land on the same person.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.errors import ConfigurationError
from bridge.pipeline.context import Context
from bridge.pipeline.job import Job

log = logging.getLogger("bridge.assign")

TURN = "assignment_turn"  # meta: how many assignments were made in turn (round robin, and ties)


def pick(loads: list[tuple[int, int]], turn: int, mode: str) -> int:
    """The index of the operator to assign: in turn, or the least loaded (ties: the first in
    turn order from ``turn``, so equal loads are spread)."""
    count = len(loads)
    if mode == "round_robin":
        return turn % count
    order = [(turn + offset) % count for offset in range(count)]
    return min(order, key=lambda index: loads[index][1])


class AssignStage:
    """Assign a new ticket the automation did not close."""

    name = "assign"
    journal = False  # a re-run after a crash finds the assignee it wrote and keeps it

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        cfg = ctx.cfg.assignment
        if cfg.mode == "off" or not job.result("ticket").get("new"):
            return {}
        _, ticket = job.email_and_ticket()
        record = ctx.tickets.get(ticket)
        if record is not None and record.odoo.get("closed"):
            return {"skipped": "closed by the automation"}
        async with ctx.assign_lock:
            current = await ctx.odoo(ctx.desk.assignee_id, ticket)
            if current:
                ctx.tickets.update_odoo(ticket, assignee_id=current)
                return {"kept": current}
            operators = []
            for login in cfg.operators:
                try:
                    operators.append(await ctx.odoo(ctx.desk.operator, login))
                except ConfigurationError as exc:
                    log.warning("%s: %s; assigning among the others", job.key, exc)
            if not operators:
                log.error("%s: no configured operator is an Odoo user: ticket %s left unassigned", job.key, ticket)
                return {"skipped": "no operator found in Odoo"}
            loads = [(user["id"], await ctx.odoo(ctx.desk.open_ticket_count, user["id"]) if cfg.mode == "least_loaded"
                      else 0) for user in operators]
            turn = int(ctx.store.meta.get(TURN) or 0)
            chosen = operators[pick(loads, turn, cfg.mode)]
            await ctx.odoo(ctx.desk.assign, ticket, chosen["id"])
            ctx.store.meta.put(TURN, turn + 1, durable=False)
        ctx.tickets.update_odoo(ticket, assignee_id=chosen["id"], by_bridge=True)
        log.info("%s: ticket %s assigned to %s (%s)", job.key, ticket, chosen["name"], cfg.mode)
        return {"assigned": chosen["id"], "name": chosen["name"], "mode": cfg.mode,
                "loads": {str(uid): load for uid, load in loads} if cfg.mode == "least_loaded" else {}}
