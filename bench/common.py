"""Shared set-up of the benches: stand-ins in their own processes, a bridge config, percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SUPPORT = "support@example.com"


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return (f"p50 {pick(0.50) * 1000:7.1f} ms   p95 {pick(0.95) * 1000:7.1f} ms   "
            f"p99 {pick(0.99) * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})")


def start_odoo_process(latency: float) -> tuple[subprocess.Popen, str]:
    """The Odoo stand-in as its own process, so its work does not share the bridge's GIL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.sandbox.odoo", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"Odoo stand-in did not start: {line!r}")
    return proc, line.split()[1]


def bridge_settings(dovecot, odoo_url: str, sink, state_dir: Path, **pipeline) -> dict:
    return {
        "bridge": {"secret": "bench-secret", "log_level": "WARNING"},
        "imap": {"host": dovecot.host, "port": dovecot.port, "security": "plain", "username": "support",
                 "password": dovecot.users["support"], "folder": "INBOX"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "plain", "from_address": SUPPORT},
        "odoo": {"url": odoo_url, "db": "bridge", "username": "bot@example.com", "password": "secret",
                 "transport": "jsonrpc", "profile": "helpdesk"},
        "tickets": {"templates_dir": ""},
        "guard": {"reply_cap": {"count": 1000, "per_seconds": 3600}},
        "pipeline": dict(pipeline),
        "state": {"dir": str(state_dir)},
    }


def write_config(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_cpu() -> list[int]:
    """The machine's aggregate CPU counters (jiffies) from /proc/stat."""
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def machine_cpu_since(before: list[int]) -> tuple[float, int]:
    """Share of all cores busy since ``before`` (idle and iowait count as not busy), and the core count."""
    delta = [now - then for now, then in zip(machine_cpu(), before)]
    idle = delta[3] + delta[4]
    return 1 - idle / max(1, sum(delta)), os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return sum(cpu_times(pid))


def customer_email(n: int, body: str = "The printer prints blank pages.") -> tuple[bytes, str]:
    mid = f"<bench-{n}-{time.time_ns()}@customer.example>"
    raw = (
        f"From: User {n} <user{n}@customer.example>\r\nTo: {SUPPORT}\r\nSubject: Bench issue {n}\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    return raw, mid


def env_for_bridge() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
