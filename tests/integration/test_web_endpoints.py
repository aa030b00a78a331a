"""GET /readyz and /metrics on a running bridge: readiness follows outages, metrics follow emails,
neither needs the webhook token nor shows email content."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import email_bytes, wait_until
from tests.integration.test_flow import done
from tests.integration.harness import free_port
from tests.integration.test_odoo_tickets import TOKEN

pytestmark = pytest.mark.integration

ALL_UP = {"imap": {"up": True}, "odoo": {"up": True}, "smtp": {"up": True}}


def start(bridge_factory):
    """A bridge with its HTTP endpoint on a free port; returns (runner, base URL)."""
    runner = bridge_factory(http={"port": free_port(), "webhook_token": TOKEN})
    return runner, f"http://127.0.0.1:{runner.app.web.port}"


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


def metric(base: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_ready_with_every_service_up_after_start(bridge_factory):
    runner, base = start(bridge_factory)
    response = get(f"{base}/readyz")
    assert response.status_code == 200
    report = response.json()
    assert (report["status"], report["services"]) == ("ready", ALL_UP)
    assert get(f"{base}/healthz").status_code == 200
    app = runner.app
    runner.stop()
    assert app.readiness()["status"] == "stopping"


def test_not_ready_while_odoo_is_down_and_ready_again_after(bridge_factory, mailbox, odoo, sink):
    _, base = start(bridge_factory)
    odoo.set_down(True)
    uid = mailbox.append(email_bytes()[0])
    wait_until(lambda: get(f"{base}/readyz").status_code == 503, what="/readyz 503")
    response = get(f"{base}/readyz")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded"
    assert report["services"]["odoo"]["up"] is False
    assert report["services"]["odoo"]["reason"]
    assert report["services"]["odoo"]["down_for_seconds"] >= 0
    assert report["services"]["imap"] == {"up": True} and report["services"]["smtp"] == {"up": True}
    assert odoo.password not in response.text
    assert get(f"{base}/healthz").status_code == 200  # liveness is not readiness
    assert metric(base, "bridge_service_up", service="odoo") == 0
    assert not done(mailbox, uid)

    odoo.set_down(False)
    wait_until(lambda: done(mailbox, uid), what="email done once Odoo is back")
    wait_until(lambda: get(f"{base}/readyz").status_code == 200, what="/readyz 200")
    report = get(f"{base}/readyz").json()
    assert (report["status"], report["services"]) == ("ready", ALL_UP)


def test_metrics_count_processed_emails(bridge_factory, mailbox, odoo, sink):
    _, base = start(bridge_factory)
    uids = [mailbox.append(email_bytes(sender=f"user{i}@customer.example", subject=f"Issue {i}")[0])
            for i in range(3)]
    wait_until(lambda: all(done(mailbox, uid) for uid in uids), what="three emails done")
    wait_until(lambda: metric(base, "bridge_outbox_effects_total", kind="odoo_note", status="sent") == 3,
               what="acknowledgements sent and noted")
    assert metric(base, "bridge_emails_total", outcome="done") == 3
    assert metric(base, "bridge_emails_total", outcome="quarantined") == 0
    assert metric(base, "bridge_tickets_created_total") == 3
    assert metric(base, "bridge_followups_total") == 0
    assert metric(base, "bridge_job_seconds_count") == 3
    assert metric(base, "bridge_outbox_effects_total", kind="smtp", status="sent") == 3
    assert metric(base, "bridge_outbox_pending", kind="smtp") == 0
    assert metric(base, "bridge_imap_backlog") == 0
    body = get(f"{base}/metrics").text
    assert 'bridge_service_up{service="odoo"} 1.0' in body.splitlines()
    assert len(sink.messages) == 3
    # the real calls were timed: Odoo (find, create, post, note), IMAP commands, the three sends
    assert metric(base, "bridge_service_call_seconds_count", service="smtp") == 3
    assert metric(base, "bridge_service_call_seconds_count", service="odoo") >= 9
    assert metric(base, "bridge_service_call_seconds_count", service="imap") >= 3
    assert metric(base, "bridge_service_call_errors_total", service="odoo") == 0
    assert metric(base, "bridge_pickup_to_ticket_seconds_count") == 3
    assert metric(base, "bridge_pickup_to_reply_seconds_count") == 3
    assert metric(base, "bridge_outbox_oldest_pending_seconds", kind="smtp") == 0
    assert metric(base, "bridge_mailbox_up", mailbox=mailbox.folder) == 1


def test_metrics_show_no_address_or_subject(bridge_factory, mailbox, odoo, sink):
    _, base = start(bridge_factory)
    raw, message_id = email_bytes(sender="Carol Quokka <carol.quokka@customer.example>",
                                  subject="Zebra invoice 8812 is wrong")
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), what="email done")
    wait_until(lambda: metric(base, "bridge_outbox_effects_total", kind="smtp", status="sent") == 1,
               what="acknowledgement sent")
    body = get(f"{base}/metrics").text
    assert metric(base, "bridge_tickets_created_total") == 1
    # sample values are numbers that may hold any digits (a sum of 0.0088127 once held "8812"):
    # only the names, labels and help texts could carry the email's words
    described = "\n".join(line if line.startswith("#") else line.rsplit(" ", 1)[0]
                          for line in body.splitlines())
    assert "bridge_tickets_created_total" in described
    for text in ("@", "carol", "Quokka", "customer.example", "Zebra", "8812", message_id.strip("<>")):
        assert text not in described


def test_get_endpoints_need_no_token_while_the_webhook_still_does(bridge_factory):
    _, base = start(bridge_factory)
    response = get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert get(f"{base}/readyz").status_code == 200
    assert requests.post(f"{base}/webhook/ticket", json={"_id": 1}, timeout=5).status_code == 401
    assert requests.post(f"{base}/webhook/ticket?token=wrong-token-0123456789", json={"_id": 1},
                         timeout=5).status_code == 401


def test_not_ready_when_odoo_refuses_our_login(bridge_factory, mailbox, odoo, sink):
    runner = bridge_factory(http={"port": free_port(), "webhook_token": TOKEN}, odoo__password="not-the-password")
    base = f"http://127.0.0.1:{runner.app.web.port}"
    uid = mailbox.append(email_bytes()[0])
    wait_until(lambda: get(f"{base}/readyz").status_code == 503, what="/readyz 503")
    report = get(f"{base}/readyz").json()
    assert report["services"]["odoo"]["up"] is False and "login refused" in report["services"]["odoo"]["reason"]
    assert "not-the-password" not in get(f"{base}/readyz").text
    assert not done(mailbox, uid)


def test_webhook_queues_a_valid_id_and_refuses_a_bad_one(bridge_factory):
    """Through the App's wiring: the ticket feed takes the id (202), a bad one is refused (400)."""
    _, base = start(bridge_factory)
    url = f"{base}/webhook/ticket?token={TOKEN}"
    assert requests.post(url, json={"_id": 424242}, timeout=5).json() == {"queued": 424242}
    refused = requests.post(url, json={"_id": True}, timeout=5)
    assert refused.status_code == 400 and "_id" in refused.json()["error"]
