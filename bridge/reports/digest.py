"""The weekly digest (``reports.digest``): at each slot of a cron schedule, in the calendar's time
zone, the five numbers that matter and the top three recurring issues, posted in the Slack
channel and/or emailed to the support leads, with a link to the full HTML report where the
HTTP endpoint serves it.

The report is made by ``bridge report`` in a child process (read only, as beside any running
bridge): its Odoo reads and its ~100 MB stay out of the bridge, and a slow report never holds
up email. A slot is posted once across restarts: its outbox key names the slot, the Slack post
is looked for before it is sent again, and the last slot done is kept in state; a slot missed
while the bridge was down is posted when it comes back, within ``catch_up_hours``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from bridge.config import Config
from bridge.mail.compose import MessageKind
from bridge.pipeline.context import Context
from bridge.pipeline.effects import notice_effect
from bridge.pipeline.outbox import Effect
from bridge.reports.tables import cell_text
from bridge.slack.mrkdwn import escaped, one_line

log = logging.getLogger("bridge.reports")

LAST_SLOT = "digest_last_slot"  # meta: the ISO time of the last slot posted
LATEST_HTML = "latest.html"  # under <state>/reports/: what GET /reports/latest serves
REPORT_SECONDS = 600.0  # a report still running after this is stopped; the slot is tried again
RETRY_SECONDS = 300.0
TITLE_LIMIT = 90


def last_slot(schedule: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The latest slot of ``schedule`` at or before ``now`` (aware, UTC)."""
    local = now.astimezone(zone)
    if croniter.match(schedule, local.replace(second=0, microsecond=0)):
        return local.replace(second=0, microsecond=0).astimezone(UTC)
    return croniter(schedule, local).get_prev(datetime).astimezone(UTC)


def next_slot(schedule: str, zone: ZoneInfo, now: datetime) -> datetime:
    return croniter(schedule, now.astimezone(zone)).get_next(datetime).astimezone(UTC)


def reports_dir(cfg: Config) -> Path:
    return Path(cfg.state.dir) / "reports"


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """The overview's figures by column name (see bridge/reports/figures.py overview)."""
    table = next((t for t in report["tables"] if t["key"] == "overview"), None)
    if not table or not table["rows"]:
        return {}
    return dict(zip((c["name"] for c in table["columns"]), table["rows"][0]))


def digest_facts(report: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[dict[str, Any]]]:
    """The period, the five numbers that matter (name, shown value) and the top three recurring
    issues of a report as ``bridge report --format json`` prints it."""
    figures = _figures(report)
    share = figures.get("auto-resolved share")
    numbers = [
        ("Opened", str(figures.get("opened", 0))),
        ("Closed", str(figures.get("closed", 0))),
        ("Backlog now", str(figures.get("backlog at end", 0))),
        ("Median first response", cell_text(figures.get("median first response"), "hours")),
        ("Solved by automation", "—" if share is None else
         f"{cell_text(share, 'percent')} ({cell_text(figures.get('estimated time saved'), 'hours')} saved)"),
    ]
    table = next((t for t in report["tables"] if t["key"] == "recurring"), None)
    names = [c["name"] for c in table["columns"]] if table else []
    recurring = [dict(zip(names, row)) for row in (table or {}).get("rows", [])[:3]]
    return str(report.get("period", "")), numbers, recurring


def digest_message(report: dict[str, Any], link: str) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and Block Kit blocks of one digest. Subjects come from email: escaped."""
    period, numbers, recurring = digest_facts(report)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Support digest", "emoji": False}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escaped(one_line(period), 120)}]},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in numbers]},
    ]
    if recurring:
        lines = [f"{cell['rank']}. *{escaped(one_line(str(cell['issue'])), TITLE_LIMIT)}* "
                 f"({escaped(one_line(str(cell['category'])), 40)}): {cell['tickets']} tickets, "
                 f"{cell['customers']} customers" for cell in recurring]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Recurring issues*\n" + "\n".join(lines)}})
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|The full report>"}]})
    text = "Support digest: " + ", ".join(f"{name.lower()} {value}" for name, value in numbers)
    return escaped(text, 300), blocks


class Digest:
    """Posts the digest at each slot; ``clock`` is injected (tests move time)."""

    def __init__(self, ctx: Context, config_path: str, clock: Callable[[], float]) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg.reports.digest
        self.config_path = config_path
        self.clock = clock
        self.zone = ZoneInfo(ctx.cfg.calendar.timezone)
        self.checks = 0  # times the schedule was looked at (a positive signal for tests)

    def latest_report(self) -> tuple[str, bytes | None]:
        """For GET /reports/latest (in the HTTP thread): its token and the page, if one was made."""
        try:
            page = (reports_dir(self.ctx.cfg) / LATEST_HTML).read_bytes()
        except FileNotFoundError:
            page = None
        return self.cfg.link_token.get_secret_value(), page

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def run(self) -> None:
        while True:
            now = self._now()
            slot = last_slot(self.cfg.schedule, self.zone, now)
            done = self.ctx.store.meta.get(LAST_SLOT)
            if done is None:  # switched on: the first digest is the next slot's, not an old one's
                self.ctx.store.meta.put(LAST_SLOT, slot.isoformat())
                log.info("digest: the first is due %s", next_slot(self.cfg.schedule, self.zone, now).isoformat())
                done = slot.isoformat()
            due = datetime.fromisoformat(done) < slot
            if due and now - slot <= timedelta(hours=self.cfg.catch_up_hours):
                try:
                    await self.post(slot)
                except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
                    log.warning("digest of %s: not made (%s); trying again in %.0f s", slot.isoformat(), exc,
                                RETRY_SECONDS)
                    await asyncio.sleep(min(RETRY_SECONDS, self.cfg.check_seconds * 10))
                    continue
            elif due:
                log.info("digest of %s: missed by more than %g h, not posted late", slot.isoformat(),
                         self.cfg.catch_up_hours)
                self.ctx.store.meta.put(LAST_SLOT, slot.isoformat())
            self.checks += 1
            await asyncio.sleep(self.cfg.check_seconds)

    async def post(self, slot: datetime) -> None:
        """Make the report of the period ending at ``slot`` and queue its Slack post, once."""
        link = ""
        if self.cfg.base_url:
            await self._report("html", slot, reports_dir(self.ctx.cfg) / LATEST_HTML)
            link = (f"{self.cfg.base_url.rstrip('/')}/reports/latest?token="
                    f"{self.cfg.link_token.get_secret_value()}")
        report = json.loads(await self._report("json", slot))
        key = f"digest:{slot.strftime('%Y%m%dT%H%M')}"
        told = []
        if self.cfg.slack:
            text, blocks = digest_message(report, link)
            channel = self.cfg.channel or self.ctx.cfg.slack.channel
            self.ctx.outbox.enqueue(Effect(f"slack:alert:{key}", "slack", {
                "op": "alert", "channel": channel, "text": text, "blocks": blocks, "effect": key}))
            told.append(f"Slack channel {channel}")
        if self.cfg.email_to:
            period, numbers, recurring = digest_facts(report)
            mail = self.ctx.composer.notice(self.cfg.email_to, template="digest", kind=MessageKind.DIGEST, seed=key,
                                            values={"period": period, "numbers": numbers, "recurring": recurring,
                                                    "link": link})
            self.ctx.outbox.enqueue(notice_effect(f"{key}:mail", mail))
            told.append(f"{len(mail.recipients)} lead(s) by email")
        self.ctx.store.meta.put(LAST_SLOT, slot.isoformat())
        log.info("digest of %s queued for %s", slot.isoformat(), " and ".join(told))

    async def _report(self, fmt: str, slot: datetime, output: Path | None = None) -> str:
        """``bridge report`` for the period up to the slot, in a child process."""
        end = slot.astimezone(self.zone).date() - timedelta(days=1)  # the whole days before the slot's
        start = end - timedelta(days=self.cfg.period_days - 1)
        args = [sys.executable, "-m", "bridge", "report", "--from", start.isoformat(), "--to", end.isoformat(),
                "--format", fmt, "--config", self.config_path]
        partial = None
        if output is not None:
            output.parent.mkdir(mode=0o700, exist_ok=True)
            partial = output.with_name(output.name + ".part")
            args += ["--output", str(partial)]
        process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), REPORT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode:
            raise RuntimeError(f"bridge report --format {fmt} exited {process.returncode}: "
                               f"{err.decode(errors='replace').strip()[-300:]}")
        if partial is not None and output is not None:
            os.replace(partial, output)  # the page served is always a whole one
        return out.decode()
