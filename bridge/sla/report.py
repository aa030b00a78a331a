"""`bridge sla show TICKET` and `bridge sla report --since 7d`: the clocks as the monitor computes
them, read from Odoo and the state folder (read only, so beside a running bridge too)."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge.config import Config
from bridge.odoo.changes import OdooChanges
from bridge.odoo.rpc import OdooRPC, as_id, many2one
from bridge.odoo.sla_reads import SlaReader
from bridge.odoo.tickets import TicketDesk
from bridge.sla.clocks import Clock
from bridge.sla.facts import METRIC_NAMES, SlaClocks, iso
from bridge.store import Store
from bridge.ticket_record import TicketBook

PAGE = 500
_SINCE = re.compile(r"(\d+)\s*([dh])")


def since_moment(text: str, now: datetime) -> datetime:
    """ "7d", "36h" → that long before ``now``."""
    match = _SINCE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"--since {text!r}: use e.g. 7d or 36h")
    amount = int(match[1])
    return now - (timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount))


class SlaView:
    """Everything the two commands need, opened once."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rpc = OdooRPC(cfg.odoo)
        self.desk = TicketDesk(self.rpc, cfg.odoo)
        self.changes = OdooChanges(self.rpc, self.desk)
        self.reader = SlaReader(self.rpc, self.desk)
        self.store = Store(cfg.state.dir)
        book = TicketBook(self.store.tickets)
        secret = (cfg.bridge.secret.get_secret_value() or self.store.meta.get("secret") or "").encode()
        self.engine = SlaClocks(cfg, self.desk, self.changes, cfg.own_domain, secret,
                                lambda ticket_id: (r.sla if (r := book.get(ticket_id)) else {}))
        self.zone = ZoneInfo(cfg.calendar.timezone)
        self.pause_ids = {self.desk.stage_id(name) for name in cfg.sla.pause_stages}

    def close(self) -> None:
        self.store.close()
        self.rpc.close()

    def _clocks(self, rows: list[dict[str, Any]], now: datetime) -> list[tuple[dict[str, Any], Any, list[Clock]]]:
        messages = self.reader.messages([as_id(r["id"]) for r in rows])
        authors = [a for ms in messages.values() for m in ms if (a := many2one(m.get("author_id"))[0])]
        internal = self.changes.internal_authors(authors) if authors else set()
        tags = self.reader.tag_names({as_id(t) for r in rows for t in r.get("tag_ids") or []})
        history = self.reader.stage_history([as_id(r["id"]) for r in rows])
        return [(row, *self.engine.clocks_of(row, messages.get(as_id(row["id"]), []), internal, tags, self.pause_ids,
                                             now, None if history is None else history.get(as_id(row["id"]), [])))
                for row in rows]

    def _local(self, moment: datetime | None) -> str:
        return moment.astimezone(self.zone).strftime("%a %d %b %H:%M %Z") if moment else "—"

    def show(self, ticket_id: int, now: datetime) -> list[str]:
        rows = self.reader.tickets([ticket_id])
        if not rows:
            return [f"ticket {ticket_id}: not found in Odoo"]
        [(row, targets, clocks)] = self._clocks(rows, now)
        if targets is None:
            return [f"ticket {ticket_id}: no SLA policy matches (priority {row.get('priority')})"]
        calendar = "24/7" if targets.around_the_clock else (
            f"{self.cfg.calendar.timezone} {','.join(self.cfg.calendar.workdays)} {' '.join(self.cfg.calendar.hours)}")
        lines = [f"ticket {ticket_id}: policy {targets.policy} (priority {row.get('priority')}), {calendar}"]
        for clock in clocks:
            lines.append(f"  {METRIC_NAMES[clock.metric]:<15} {clock.state:<9} target {clock.target / 3600:g} h  "
                         f"used {clock.used / 3600:.2f} h  deadline {self._local(clock.deadline)}"
                         + (f"  stopped {self._local(clock.stopped)}" if clock.stopped else ""))
        own = self.reader.odoo_sla_statuses([ticket_id]).get(ticket_id, [])
        if row.get("sla_deadline") or own:
            lines.append(f"  Odoo's own SLAs (shown, not enforced: the bridge enforces policy {targets.policy}):")
        if row.get("sla_deadline"):
            lines.append(f"    sla_deadline    {row['sla_deadline']} UTC")
        for status in own:
            lines.append(f"    {status['sla'][:40]:<40} {status['status']:<8} deadline {status['deadline'] or '—'} UTC"
                         + (f"  reached {status['reached']} UTC" if status["reached"] else ""))
        return lines

    def report(self, since: datetime, now: datetime) -> list[str]:
        """Compliance per policy, priority and metric over tickets created since ``since``."""
        counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        odoo_own: dict[str, Counter[str]] = defaultdict(Counter)  # Enterprise's SLA name → its statuses
        after, tickets = 0, 0
        while True:
            rows = self.reader.created_since(iso(since), after, PAGE)
            for row, targets, clocks in self._clocks(rows, now) if rows else []:
                tickets += 1
                for clock in clocks if targets else []:
                    counts[(targets.policy, str(row.get("priority") or "0"), clock.metric)][clock.state] += 1
            for statuses in self.reader.odoo_sla_statuses([as_id(r["id"]) for r in rows]).values():
                for status in statuses:
                    odoo_own[status["sla"]][status["status"]] += 1
            if len(rows) < PAGE:
                break
            after = as_id(rows[-1]["id"])
        lines = [f"SLA compliance for tickets created since {self._local(since)} ({tickets} tickets)",
                 f"{'policy':<16} {'prio':<4} {'metric':<15} {'met':>5} {'missed':>6} {'breached':>8} "
                 f"{'open':>5} {'compliance':>10}"]
        for (policy, priority, metric), seen in sorted(counts.items()):
            decided = seen["met"] + seen["missed"] + seen["breached"]
            share = f"{100 * seen['met'] / decided:.0f} %" if decided else "—"
            lines.append(f"{policy[:16]:<16} {priority:<4} {METRIC_NAMES[metric]:<15} {seen['met']:>5} "
                         f"{seen['missed']:>6} {seen['breached']:>8} {seen['running'] + seen['paused']:>5} "
                         f"{share:>10}")
        if odoo_own:
            lines.append("Odoo's own SLAs on the same tickets (shown for comparison; the bridge enforces the policies above)")
            lines.append(f"{'Odoo SLA':<36} {'reached':>7} {'failed':>6} {'ongoing':>7}")
            for name, seen in sorted(odoo_own.items()):
                lines.append(f"{name[:36]:<36} {seen['reached']:>7} {seen['failed']:>6} {seen['ongoing']:>7}")
        return lines


def now_utc() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)
