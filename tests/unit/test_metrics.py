"""Metrics fed by pipeline and outbox events, read through the Prometheus text a scrape returns;
and the outage reason ServiceHealth keeps for /readyz."""

import asyncio
import time
import logging
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.errors import RejectedByService
from bridge.metrics import BridgeMetrics
from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Effect, Outbox
from bridge.store import Store

KINDS = ("smtp", "odoo_note", "escalation")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def make(store, handlers=None, backlog=(), inflight=(), calls=None):
    async def ok(payload, attempt):
        return None

    health = {name: ServiceHealth(name) for name in ("imap", "odoo", "smtp")}
    outbox = Outbox(store.outbox, handlers or {kind: ok for kind in KINDS}, {})
    mailbox = SimpleNamespace(name="INBOX", report=lambda: {"up": True, "backlog": len(backlog) + len(inflight),
                                                             "reconnects": 2})
    return BridgeMetrics(health, outbox, [mailbox], calls), health, outbox


def scrape(metrics: BridgeMetrics) -> str:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return body.decode()


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` in a scrape, or None when there is none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def feed(metrics: BridgeMetrics, key: str, *events: tuple[str, dict], origin: str | None = None) -> None:
    job = Job(key=key, results={"origin": origin} if origin else {})
    for event, detail in events:
        metrics.observe(event, job, detail)


def test_outcomes_tickets_and_followups_are_counted(store):
    metrics, _, _ = make(store)
    feed(metrics, "<a@x>", ("received", {}), ("ticket", {"ticket": 7, "new": True, "partner": 3}), ("done", {}))
    feed(metrics, "<b@x>", ("received", {}), ("ticket", {"ticket": 8, "new": True, "partner": 4}), ("done", {}))
    feed(metrics, "<e@x>", ("received", {}), ("ticket", {"ticket": 7, "new": False}), ("done", {}))
    feed(metrics, "<c@x>", ("received", {}), ("deferred", {"reason": "odoo down", "delay": 1.0}))
    feed(metrics, "<d@x>", ("quarantined", {"reason": "too large"}))  # quarantined by the intake, never received
    text = scrape(metrics)
    assert value(text, "bridge_emails_total", outcome="done") == 3
    assert value(text, "bridge_emails_total", outcome="deferred") == 1
    assert value(text, "bridge_emails_total", outcome="quarantined") == 1
    assert value(text, "bridge_tickets_created_total") == 2
    assert value(text, "bridge_followups_total") == 1
    assert value(text, "bridge_job_seconds_count") == 3


def test_every_outcome_is_exported_at_zero_before_any_email(store):
    text = scrape(make(store)[0])
    for outcome in ("done", "quarantined", "deferred"):
        assert value(text, "bridge_emails_total", outcome=outcome) == 0
    for kind in KINDS:
        assert value(text, "bridge_outbox_effects_total", kind=kind, status="sent") == 0
        assert value(text, "bridge_outbox_effects_total", kind=kind, status="dead") == 0


def test_job_seconds_measure_received_to_done(store, monkeypatch):
    clock = iter([100.0, 100.3])
    monkeypatch.setattr("bridge.metrics.time.monotonic", lambda: next(clock))
    metrics, _, _ = make(store)
    feed(metrics, "<a@x>", ("received", {}), ("guard", {}), ("done", {}))
    text = scrape(metrics)
    assert value(text, "bridge_job_seconds_sum") == pytest.approx(0.3)
    assert value(text, "bridge_job_seconds_bucket", le="0.25") == 0
    assert value(text, "bridge_job_seconds_bucket", le="0.5") == 1


def test_a_deferred_run_is_not_timed_by_a_later_done(store):
    metrics, _, _ = make(store)
    feed(metrics, "<a@x>", ("received", {}), ("deferred", {"reason": "x", "delay": 1.0}))
    # The retry's own "received" is missed: its start was dropped with the deferral, not kept.
    feed(metrics, "<a@x>", ("done", {}))
    assert value(scrape(metrics), "bridge_job_seconds_count") == 0


def test_tickets_created_in_odoo_are_not_emails(store):
    metrics, _, _ = make(store)
    feed(metrics, "odoo-ticket:5", ("received", {}), ("login", {"login": True}), ("done", {}), origin="odoo")
    text = scrape(metrics)
    assert value(text, "bridge_emails_total", outcome="done") == 0
    assert value(text, "bridge_job_seconds_count") == 0


def test_outbox_effects_counted_by_kind_and_status_from_a_running_outbox(store):
    async def sent(payload, attempt):
        return None

    async def refused(payload, attempt):
        raise RejectedByService("note refused")

    metrics, _, outbox = make(store, {"smtp": sent, "odoo_note": refused})
    outbox.observers.append(metrics.observe_outbox)
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    outbox.enqueue(Effect("ack:2", "smtp", {}))
    outbox.enqueue(Effect("note:1", "odoo_note", {}))

    async def run() -> None:
        task = asyncio.create_task(outbox.run())
        for _ in range(500):
            if not outbox.pending():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    text = scrape(metrics)
    assert value(text, "bridge_outbox_effects_total", kind="smtp", status="sent") == 2
    assert value(text, "bridge_outbox_effects_total", kind="odoo_note", status="dead") == 1
    assert value(text, "bridge_outbox_effects_total", kind="odoo_note", status="sent") == 0


def test_scrape_time_gauges_follow_health_outbox_and_backlog(store):
    metrics, health, outbox = make(store, backlog=[11, 12, 13], inflight=[9])
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    outbox.enqueue(Effect("ack:2", "smtp", {}))
    outbox.enqueue(Effect("note:1", "odoo_note", {}))
    health["odoo"].failed("odoo: unavailable (HTTP 503)")
    text = scrape(metrics)
    assert value(text, "bridge_service_up", service="odoo") == 0
    assert value(text, "bridge_service_up", service="imap") == 1
    assert value(text, "bridge_outbox_pending", kind="smtp") == 2
    assert value(text, "bridge_outbox_pending", kind="odoo_note") == 1
    assert value(text, "bridge_outbox_pending", kind="escalation") == 0
    assert value(text, "bridge_imap_backlog") == 4
    health["odoo"].ok()
    assert value(scrape(metrics), "bridge_service_up", service="odoo") == 1


def test_each_bridge_has_its_own_registry(store, tmp_path):
    first, _, _ = make(store)
    other_store = Store(tmp_path / "other")
    try:
        second, _, _ = make(other_store)
        feed(first, "<a@x>", ("received", {}), ("done", {}))
        assert value(scrape(first), "bridge_emails_total", outcome="done") == 1
        assert value(scrape(second), "bridge_emails_total", outcome="done") == 0
    finally:
        other_store.close()


def test_no_email_content_reaches_the_scrape(store):
    metrics, _, _ = make(store)
    key = "<secret-key-4711@customer.example>"
    feed(metrics, key, ("received", {"sender": "alice@customer.example", "subject": "Invoice Zebra"}),
         ("ticket", {"ticket": 1, "new": True}), ("quarantined", {"reason": "loop from alice@customer.example"}))
    text = scrape(metrics)
    assert "@" not in text and "Zebra" not in text and "secret-key" not in text


def test_service_health_keeps_the_last_reason_while_down(caplog):
    caplog.set_level(logging.INFO, logger="bridge.health")
    health = ServiceHealth("odoo")
    assert health.report() == {"up": True}
    health.failed("odoo: unavailable (HTTP 503)")
    health.failed("odoo: unavailable (connection refused)")
    report = health.report()
    assert report["up"] is False
    assert report["reason"] == "odoo: unavailable (connection refused)"
    assert report["down_for_seconds"] >= 0
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # still one line per outage
    health.ok()
    assert health.report() == {"up": True}
    assert health.reason == ""
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


def test_service_calls_are_timed_and_failures_counted(store):
    calls = CallBook()
    calls.of("odoo").record(0.02, ok=True)
    calls.of("odoo").record(0.4, ok=False)
    calls.of("lms").record(3.0, ok=True)
    text = scrape(make(store, calls=calls)[0])
    assert value(text, "bridge_service_call_seconds_bucket", service="odoo", le="0.025") == 1
    assert value(text, "bridge_service_call_seconds_bucket", service="odoo", le="0.5") == 2
    assert value(text, "bridge_service_call_seconds_count", service="odoo") == 2
    assert value(text, "bridge_service_call_seconds_sum", service="odoo") == pytest.approx(0.42)
    assert value(text, "bridge_service_call_errors_total", service="odoo") == 1
    assert value(text, "bridge_service_call_errors_total", service="lms") == 0
    assert value(text, "bridge_service_call_seconds_bucket", service="lms", le="2.5") == 0


def test_pickup_to_ticket_and_to_reply(store, monkeypatch):
    clock = iter([10.0, 10.4, 11.0, 12.5])
    monkeypatch.setattr("bridge.metrics.time.monotonic", lambda: next(clock))
    metrics, _, _ = make(store)
    job = Job(key="<a@x>", results={"acknowledge": {"message_id": "<hd.ack.1@x>"}})
    metrics.observe("received", job, {})
    metrics.observe("ticket", job, {"ticket": 1, "new": True})
    metrics.observe("done", job, {})
    metrics.observe_outbox("sent", "ack:<a@x>", {"kind": "smtp"})
    text = scrape(metrics)
    assert value(text, "bridge_pickup_to_ticket_seconds_sum") == pytest.approx(0.4)
    assert value(text, "bridge_pickup_to_reply_seconds_sum") == pytest.approx(2.5)
    assert value(text, "bridge_pickup_to_reply_seconds_count") == 1


def test_an_email_without_a_reply_is_forgotten_when_done(store):
    """A follow-up gets no acknowledgement: its pick-up is dropped at done, so a later send that
    happens to carry its key (a reply from elsewhere) is not timed against it."""
    metrics, _, _ = make(store)
    feed(metrics, "<a@x>", ("received", {}), ("ticket", {"ticket": 1, "new": False}), ("done", {}))
    metrics.observe_outbox("sent", "ack:<a@x>", {"kind": "smtp"})
    assert value(scrape(metrics), "bridge_pickup_to_reply_seconds_count") == 0


def test_automation_outcomes_oldest_pending_and_reconnects(store):
    metrics, _, outbox = make(store)
    feed(metrics, "<a@x>", ("received", {}), ("login", {"login": True, "outcome": "reset_sent"}))
    feed(metrics, "<b@x>", ("received", {}), ("login", {"login": False}))
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    outbox.table["ack:1"] = {**outbox.table["ack:1"], "created_at": 1.0}
    outbox._pending["ack:1"]["created_at"] = time.time() - 30
    text = scrape(metrics)
    assert value(text, "bridge_automation_outcomes_total", outcome="reset_sent") == 1
    assert value(text, "bridge_automation_outcomes_total", outcome="not_login") == 1
    assert 29 <= value(text, "bridge_outbox_oldest_pending_seconds", kind="smtp") <= 60
    assert value(text, "bridge_outbox_oldest_pending_seconds", kind="odoo_note") == 0
    assert value(text, "bridge_imap_reconnects_total", mailbox="INBOX") == 2
