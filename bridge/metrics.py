"""Prometheus metrics of one bridge: counters fed by pipeline and outbox events, gauges read at scrape time.

Labels come only from fixed sets (outcomes, service names, effect kinds): no address, subject
or email key ever reaches a label, so ``/metrics`` needs no token. Each App has its own
registry, so several bridges in one process (the tests) never share a counter.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Outbox

if TYPE_CHECKING:
    from bridge.mailboxes import Mailbox

OUTCOMES = ("done", "quarantined", "deferred")
EFFECT_STATUSES = ("sent", "dead")
# From a few ms (all services local) to minutes (a job retried while a service was down).
PICKED_LIMIT = 100_000  # pick-up times kept for the pick-up → reply histogram (emails that get no reply age out)
JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _LiveState:
    """Gauges computed when Prometheus scrapes: service health, outbox queue, IMAP backlog."""

    def __init__(self, health: dict[str, ServiceHealth], outbox: Outbox, mailboxes: list[Mailbox],
                 calls: CallBook) -> None:
        self.health = health
        self.outbox = outbox
        self.mailboxes = mailboxes
        self.calls = calls

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bridge_service_up", "1 while the service answers, 0 during an outage",
                               labels=["service"])
        for name, health in self.health.items():
            up.add_metric([name], 0.0 if health.is_down else 1.0)
        yield up
        pending = GaugeMetricFamily("bridge_outbox_pending", "Effects waiting to be performed or retried",
                                    labels=["kind"])
        for kind, count in self.outbox.pending_by_kind().items():
            pending.add_metric([kind], float(count))
        yield pending
        reports = [(box.name, box.report()) for box in self.mailboxes]
        yield GaugeMetricFamily("bridge_imap_backlog", "Unprocessed emails found in IMAP, running ones included",
                                value=float(sum(report["backlog"] for _, report in reports)))
        backlog = GaugeMetricFamily("bridge_mailbox_backlog", "Unprocessed emails of one mailbox, running ones included",
                                    labels=["mailbox"])
        mailbox_up = GaugeMetricFamily("bridge_mailbox_up", "1 while the mailbox is read and answered (IMAP, SMTP "
                                       "and its tokens working), else 0", labels=["mailbox"])
        for name, report in reports:
            backlog.add_metric([name], float(report["backlog"]))
            mailbox_up.add_metric([name], 1.0 if report["up"] else 0.0)
        yield backlog
        yield mailbox_up
        reconnects = CounterMetricFamily("bridge_imap_reconnects", "IMAP work sessions opened again after a failure "
                                         "or a drop", labels=["mailbox"])
        for name, report in reports:
            reconnects.add_metric([name], float(report.get("reconnects", 0)))
        yield reconnects
        age = GaugeMetricFamily("bridge_outbox_oldest_pending_seconds", "Age of the oldest effect not yet done "
                                "(0: none waiting)", labels=["kind"])
        now = time.time()
        oldest = self.outbox.oldest_pending_by_kind()
        for kind in self.outbox.handlers:
            age.add_metric([kind], max(0.0, now - oldest[kind]) if kind in oldest else 0.0)
        yield age
        durations = HistogramMetricFamily("bridge_service_call_seconds", "Calls to an outside service (Odoo, IMAP, "
                                          "SMTP, Slack, HR, LMS) by how long they took", labels=["service"])
        errors = CounterMetricFamily("bridge_service_call_errors", "Calls to an outside service that failed",
                                     labels=["service"])
        for service, stats in sorted(self.calls.services.items()):
            count, failed, total, buckets = stats.snapshot()
            durations.add_metric([service], buckets, total)
            errors.add_metric([service], float(failed))
        yield durations
        yield errors


class BridgeMetrics:
    """The registry and its metrics; ``observe`` is a pipeline observer, ``observe_outbox`` an
    outbox observer. Both run on the event loop for every event: they do no I/O and never raise."""

    def __init__(self, health: dict[str, ServiceHealth], outbox: Outbox, mailboxes: list[Mailbox],
                 calls: CallBook | None = None) -> None:
        self.registry = CollectorRegistry()
        emails = Counter("bridge_emails", "Email jobs by how a run ended", ["outcome"], registry=self.registry)
        self._outcomes = {outcome: emails.labels(outcome) for outcome in OUTCOMES}
        self._tickets = Counter("bridge_tickets_created", "Tickets created from emails", registry=self.registry)
        self._followups = Counter("bridge_followups", "Emails added to an existing ticket", registry=self.registry)
        self._job_seconds = Histogram("bridge_job_seconds", "From an email's job starting to its being done",
                                      buckets=JOB_BUCKETS, registry=self.registry)
        effects = Counter("bridge_outbox_effects", "Outbox effects sent or dead-lettered", ["kind", "status"],
                          registry=self.registry)
        self._effects = {(kind, status): effects.labels(kind, status)
                         for kind in outbox.handlers for status in EFFECT_STATUSES}
        self.registry.register(_LiveState(health, outbox, mailboxes, calls or CallBook()))
        self._started: dict[str, float] = {}  # job key → start of its current run; cleared when it ends
        self._to_ticket = Histogram("bridge_pickup_to_ticket_seconds", "From an email's pick-up to its ticket "
                                    "(created or found)", buckets=JOB_BUCKETS, registry=self.registry)
        self._to_reply = Histogram("bridge_pickup_to_reply_seconds", "From an email's pick-up to its reply "
                                   "handed to the SMTP server", buckets=JOB_BUCKETS, registry=self.registry)
        self._picked: dict[str, float] = {}  # email key → pick-up, until its reply is sent (bounded)
        automation = Counter("bridge_automation_outcomes", "Login automation runs by outcome (resolved, reset_sent, "
                             "escalated, ..., not_login)", ["outcome"], registry=self.registry)
        self._automation = automation

    def observe(self, event: str, job: Job, detail: dict[str, Any]) -> None:
        """Pipeline observer. Tickets created in Odoo run the same stages but are not emails: skipped."""
        if job.results.get("origin") == "odoo":
            return
        if event == "received":
            now = self._started[job.key] = time.monotonic()
            if len(self._picked) < PICKED_LIMIT:
                self._picked.setdefault(job.key, now)
        elif event == "ticket" and detail.get("ticket"):
            (self._tickets if detail.get("new") else self._followups).inc()
            picked = self._picked.get(job.key)
            if picked is not None:
                self._to_ticket.observe(time.monotonic() - picked)
        elif event == "login":
            self._automation.labels(str(detail.get("outcome") or "not_login") if detail.get("login")
                                    else "not_login").inc()
        elif event in self._outcomes:
            self._outcomes[event].inc()
            started = self._started.pop(job.key, None)
            if event == "done" and started is not None:
                self._job_seconds.observe(time.monotonic() - started)
            if event == "quarantined" or (event == "done" and not job.result("acknowledge").get("message_id")):
                self._picked.pop(job.key, None)  # no reply will follow

    def observe_outbox(self, event: str, key: str, record: dict[str, Any]) -> None:
        """Outbox observer: counts sent and dead-lettered effects by kind."""
        counter = self._effects.get((record.get("kind", ""), event))
        if counter is not None:
            counter.inc()
        if record.get("kind") == "smtp" and key.startswith("ack:"):
            picked = self._picked.pop(key.removeprefix("ack:"), None)
            if picked is not None and event == "sent":
                self._to_reply.observe(time.monotonic() - picked)

    def render(self) -> tuple[bytes, str]:
        """The scrape: Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
