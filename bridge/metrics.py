"""Prometheus metrics of one bridge: counters fed by pipeline and outbox events, gauges read at scrape time.

Labels come only from fixed sets (outcomes, service names, effect kinds): no address, subject
or email key ever reaches a label, so ``/metrics`` needs no token. Each App has its own
registry, so several bridges in one process (the tests) never share a counter.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.intake import Intake
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Outbox

OUTCOMES = ("done", "quarantined", "deferred")
EFFECT_STATUSES = ("sent", "dead")
# From a few ms (all services local) to minutes (a job retried while a service was down).
JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _LiveState:
    """Gauges computed when Prometheus scrapes: service health, outbox queue, IMAP backlog."""

    def __init__(self, health: dict[str, ServiceHealth], outbox: Outbox, intake: Intake) -> None:
        self.health = health
        self.outbox = outbox
        self.intake = intake

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
        yield GaugeMetricFamily("bridge_imap_backlog", "Unprocessed emails found in IMAP, running ones included",
                                value=float(len(self.intake.backlog) + len(self.intake.inflight)))


class BridgeMetrics:
    """The registry and its metrics; ``observe`` is a pipeline observer, ``observe_outbox`` an
    outbox observer. Both run on the event loop for every event: they do no I/O and never raise."""

    def __init__(self, health: dict[str, ServiceHealth], outbox: Outbox, intake: Intake) -> None:
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
        self.registry.register(_LiveState(health, outbox, intake))
        self._started: dict[str, float] = {}  # job key → start of its current run; cleared when it ends

    def observe(self, event: str, job: Job, detail: dict[str, Any]) -> None:
        """Pipeline observer. Tickets created in Odoo run the same stages but are not emails: skipped."""
        if job.results.get("origin") == "odoo":
            return
        if event == "received":
            self._started[job.key] = time.monotonic()
        elif event == "ticket" and detail.get("ticket"):
            (self._tickets if detail.get("new") else self._followups).inc()
        elif event in self._outcomes:
            self._outcomes[event].inc()
            started = self._started.pop(job.key, None)
            if event == "done" and started is not None:
                self._job_seconds.observe(time.monotonic() - started)

    def observe_outbox(self, event: str, key: str, record: dict[str, Any]) -> None:
        """Outbox observer: counts sent and dead-lettered effects by kind."""
        counter = self._effects.get((record.get("kind", ""), event))
        if counter is not None:
            counter.inc()

    def render(self) -> tuple[bytes, str]:
        """The scrape: Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
