"""The Prometheus alert rules and the Grafana dashboard in deploy/monitoring/ name only metrics
the bridge exports (scraped from a real BridgeMetrics), and are well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import BridgeMetrics
from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Outbox
from bridge.store import Store

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
METRIC = re.compile(r"\bbridge_[a-z0-9_]+")


def exported(tmp_path) -> set[str]:
    store = Store(tmp_path)
    try:
        async def ok(payload, attempt):
            return None

        calls = CallBook()
        calls.of("odoo").record(0.01, ok=True)
        box = SimpleNamespace(name="support", report=lambda: {"up": True, "backlog": 0, "reconnects": 0})
        metrics = BridgeMetrics({"imap": ServiceHealth("imap")}, Outbox(store.outbox, {"smtp": ok}, {}), [box], calls)
        job = Job(key="<a@x>")
        for event, detail in (("received", {}), ("ticket", {"ticket": 1, "new": True}), ("login", {"login": False}),
                              ("done", {})):
            metrics.observe(event, job, detail)
        text = metrics.render()[0].decode()
        return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    finally:
        store.close()


def test_alert_rules_use_exported_metrics(tmp_path) -> None:
    names = exported(tmp_path)
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"BridgeServiceDown", "BridgeOutboxStuck", "BridgeDeadLetters",
                                             "BridgeQuarantineGrowing", "BridgeMailboxNotRead"}
    for alert in alerts:
        assert alert["annotations"]["summary"] and alert["labels"]["severity"] in ("page", "warn")
        used = set(METRIC.findall(alert["expr"]))
        assert used and used <= names, f"{alert['alert']}: {used - names} not exported"


def test_dashboard_queries_use_exported_metrics(tmp_path) -> None:
    names = exported(tmp_path)
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used and used <= names, f"{expr}: {used - names} not exported"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
