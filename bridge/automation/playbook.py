"""The login playbook: a new ticket about a login problem is checked (sender, HR, LMS), decided
by the table, acted on idempotently, documented on the ticket and answered with one reply.

Crash safety: the decision is journaled (durably) before any LMS call, so a restart never
decides again on a changed account; the LMS call carries an idempotency key derived from the
email, so a retried call is replayed by the LMS, never performed twice; the per-account action
history is written before the call, so a crash cannot hide an action from the limit.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from html import escape
from typing import Any

from bridge.automation.classify import MAX_TEXT_CHARS
from bridge.automation.intent import IntentClassifier
from bridge.automation.decide import decide
from bridge.automation.directory import HrDirectory, LmsClient
from bridge.automation.limits import allows, record
from bridge.automation.verify import verify_sender
from bridge.ascii import ascii_lower
from bridge.config import AutomationConfig
from bridge.errors import BridgeError, TransientError
from bridge.models import GuardAction, InboundEmail
from bridge.pipeline.context import Context
from bridge.pipeline.conversation import bridge_set_stage
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Effect

log = logging.getLogger("bridge.automation")

# Bounded parts, and a match may only start where a word starts: linear in the text (the
# unbounded form retried every position of a long word to its end: 30 s for 100k characters).
_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,10}(?!\.?[\w-])")
OUTCOME = {"reactivate": "reactivated", "send_reset": "reset", "escalate": "escalated"}


@dataclass
class Automation:
    """The playbook's configuration and adapters."""

    cfg: AutomationConfig
    classifier: IntentClassifier
    hr: HrDirectory
    lms: LmsClient

    @classmethod
    def from_config(cls, cfg: AutomationConfig) -> "Automation | None":
        if not cfg.enabled or cfg.hr is None or cfg.lms is None:
            return None
        if cfg.sender.require == "none":
            log.warning("automation.sender.require is 'none': senders are NOT authenticated; "
                        "use this only in test setups")
        elif not cfg.sender.trusted_authserv_ids:
            log.warning("automation.sender.trusted_authserv_ids is empty: no sender can be verified, "
                        "every login request will be escalated")
        elif not cfg.sender.trusted_received_by:
            log.warning("automation.sender.trusted_received_by is empty: an Authentication-Results header "
                        "is trusted wherever it stands, so a forged one (written by the sender with our "
                        "authserv-id) counts whenever the MTA does not add its own")
        if cfg.dry_run:
            log.warning("automation.dry_run is on: no LMS change is made (replies: %s)", cfg.dry_run_reply)
        return cls(cfg, IntentClassifier(cfg.classifier, cfg.intent), HrDirectory(cfg.hr), LmsClient(cfg.lms))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def other_accounts(email: InboundEmail, domains: tuple[str, ...]) -> list[str]:
    """Organisation addresses in the body other than the sender's: someone else's account.

    Scans the first ``MAX_TEXT_CHARS`` of the text, the part the classifier read.
    """
    found = {ascii_lower(a) for a in _ADDRESS.findall(email.text, 0, MAX_TEXT_CHARS)}
    ours = {d.lstrip("*.") for d in domains}
    return sorted(a for a in found if a != email.from_addr and a.rpartition("@")[2] in ours)


class LoginStage:
    """Run the login playbook on a new ticket (a no-op for anything else)."""

    name = "login"
    journal = True

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        auto = ctx.automation
        email = job.email
        assert email is not None
        if auto is None:
            return {"login": False}
        guard = job.result("guard")
        if not job.result("ticket").get("new") or not (
                guard.get("action") == GuardAction.PROCESS.value or guard.get("unverified")):
            return {"login": False, "skipped": "not a new ticket from a person"}
        run = dict(job.results.get("login_run") or {})
        if "decision" not in run:
            run = await self._decide(email, ctx, auto, job.results.get("requester"),
                                     guard.get("reason", "") if guard.get("unverified") else "")
            if not run["login"]:
                return {"login": False, "classified": "not a login problem"}
            job.results["login_run"] = run
            ctx.checkpoint(job, durable=True)
        if run["decision"]["action"] != "escalate" and "action" not in run:
            run["action"] = await self._act(job, ctx, auto, run)
            if run["action"].get("failed"):
                run["decision"] = {"action": "escalate", "reason": run["action"]["failed"]}
            job.results["login_run"] = run
            ctx.checkpoint(job, durable=True)
        ticket = job.ticket_id
        assert ticket is not None
        await self._record(job, ctx, auto, ticket, run)
        action = run["decision"]["action"]
        return {
            "login": True,
            "outcome": OUTCOME[action],
            "template": f"login_{OUTCOME[action]}",
            "lang": run["facts"]["language"],
            "reason": run["decision"]["reason"],
            "dry_run": auto.cfg.dry_run,
        }

    async def _decide(
        self, email: InboundEmail, ctx: Context, auto: Automation, requester: dict[str, Any] | None,
        guard_failure: str = "",
    ) -> dict[str, Any]:
        """Gather the facts and decide. ``requester`` is the verdict for a ticket created in Odoo
        (no email headers to check); emails are verified by their Authentication-Results.
        ``guard_failure``: the guard already found the sender's authentication failed (the email is
        recorded without reply), which no later check may overrule."""
        timings: dict[str, int] = {}
        started = time.monotonic()
        found = await ctx.blocking(auto.classifier.classify, email.subject, email.text)  # CPU: off the loop
        timings["classify"] = _ms(started)
        if not found.is_login:
            return {"login": False}
        facts: dict[str, Any] = {"sender": email.from_addr, "language": found.language,
                                 "matched": list(found.matched),
                                 "classifier": {"outcome": found.outcome, "score": round(found.score, 3),
                                                "cues": list(found.cues)}}
        run: dict[str, Any] = {"login": True, "facts": facts, "timings": timings}

        def escalate(reason: str, kind: str = "login_escalated") -> dict[str, Any]:
            run["decision"] = {"action": "escalate", "reason": reason, "kind": kind}
            return run

        if found.other_system:
            return escalate(f"an access problem with {found.other_system}, not the LMS: nothing is done on the LMS",
                            "other_access")

        started = time.monotonic()
        if guard_failure:
            trusted, reason = False, guard_failure
        elif requester is None:
            verdict = await ctx.blocking(verify_sender, email, auto.cfg.sender)
            trusted, reason = verdict.trusted, verdict.reason
        else:
            trusted, reason = requester["trusted"], requester["reason"]
        timings["verify"] = _ms(started)
        facts["sender_check"] = reason
        if not trusted:
            return escalate(f"sender not verified: {reason}")
        others = other_accounts(email, auto.cfg.sender.organisation_domains)
        if others:
            return escalate(f"the email mentions another account ({', '.join(others)}); "
                            "only the sender's own account is handled automatically")

        started = time.monotonic()
        try:
            employee = await ctx.service("hr", auto.hr.lookup, email.from_addr)
        except BridgeError as exc:
            timings["hr"] = _ms(started)
            return escalate(f"HR check failed: {exc}")
        timings["hr"] = _ms(started)
        employment = employee.status if employee else "not_found"
        facts["hr"] = {"status": employment, "raw": employee.raw_status if employee else "",
                       "email_on_record": employee.email if employee else ""}
        account_email = employee.email if employee else email.from_addr

        started = time.monotonic()
        try:
            account = await ctx.service("lms", auto.lms.account, account_email)
        except BridgeError as exc:
            timings["lms_lookup"] = _ms(started)
            return escalate(f"LMS check failed: {exc}")
        timings["lms_lookup"] = _ms(started)
        facts["lms"] = {"status": account.status if account else "not_found",
                        "raw": account.raw_status if account else "",
                        "email_on_record": account.email if account else ""}
        facts["account"] = account.email if account else account_email

        decision = decide(auto.cfg.decision, employment, facts["lms"]["status"])
        run["decision"] = {"action": decision.action, "reason": decision.reason, "rule": decision.rule_index}
        if decision.action != "escalate" and found.outcome == "ask":
            return escalate(f"not sure this is a login request ({found.describe()}); the facts point to "
                            f"{decision.action}: a person decides", "login_unsure")
        if decision.action != "escalate":
            limit = auto.cfg.action_limit
            if not action_allowed(ctx, auto, facts["account"]):
                return escalate(f"automation limit reached: {limit.count} automated actions in "
                                f"{limit.per_seconds / 3600:g} h for {facts['account']}")
        return run

    async def _act(self, job: Job, ctx: Context, auto: Automation, run: dict[str, Any]) -> dict[str, Any]:
        if auto.cfg.dry_run:
            return {"dry_run": True}
        action = run["decision"]["action"]
        return await lms_action(ctx, auto, action, run["facts"]["account"], key=f"{job.key}:{action}")

    async def _record(self, job: Job, ctx: Context, auto: Automation, ticket: int, run: dict[str, Any]) -> None:
        action = run["decision"]["action"]
        escalated = action == "escalate"
        if not auto.cfg.dry_run:
            stage = auto.cfg.escalated_stage if escalated else auto.cfg.resolved_stage
            if stage:
                await bridge_set_stage(ctx, ticket, stage, automatic=True)
            await ctx.odoo(ctx.desk.add_tags, ticket, [auto.cfg.escalated_tag if escalated else auto.cfg.resolved_tag])
        ctx.outbox.enqueue(Effect(f"login-note:{job.key}", "odoo_note",
                                  {"ticket": ticket, "body": note_html(job.key, run, auto.cfg.dry_run),
                                   "marker": job.key, "email_key": job.key}))
        if escalated:  # once per email: a stage retried after an outage must not notify twice
            kind = "automation_failed" if (run.get("action") or {}).get("failed") else \
                run["decision"].get("kind", "login_escalated")
            ctx.escalate(job.key, ticket, run["decision"]["reason"], run["facts"], kind)


async def lms_action(ctx: Context, auto: Automation, action: str, account: str, *, key: str) -> dict[str, Any]:
    """Reactivate or send a reset link, idempotently (``key`` goes to the LMS), with one immediate
    retry; the account's action history is written first so a crash cannot hide it from the limit.
    Returns ``reference``/``replayed``/``ms`` or ``failed`` with the reason (and ``transient``
    when trying again later may succeed)."""
    history_key = f"lms-actions:{account.lower()}"
    ctx.store.limits.put(history_key, record(ctx.store.limits.get(history_key, []), time.time(),
                                           auto.cfg.action_limit))
    call = auto.lms.reactivate if action == "reactivate" else auto.lms.send_reset
    started = time.monotonic()
    for attempt in (1, 2):  # one immediate retry: the idempotency key makes it safe
        try:
            result = await ctx.service("lms", call, account, key)
        except TransientError as exc:
            if attempt == 2:
                return {"failed": f"LMS {action} failed: {exc}", "transient": True, "ms": _ms(started)}
        except BridgeError as exc:
            return {"failed": f"LMS {action} refused: {exc}", "ms": _ms(started)}
        else:
            log.info("%s: LMS %s for %s done (reference %s%s)", key, action, account,
                     result.reference or "-", ", replayed" if result.replayed else "")
            return {"reference": result.reference, "replayed": result.replayed, "ms": _ms(started)}
    raise AssertionError("unreachable")


def action_allowed(ctx: Context, auto: Automation, account: str) -> bool:
    """Whether the per-account limit of automated LMS actions leaves room for one more."""
    return allows(ctx.store.limits.get(f"lms-actions:{account.lower()}", []), time.time(), auto.cfg.action_limit)


def note_html(key: str, run: dict[str, Any], dry_run: bool) -> str:
    """The internal note documenting one run: inputs, checks and answers, decision, action, timings."""
    facts, decision = run["facts"], run["decision"]
    action = run.get("action") or {}
    rows = [
        ("Email", key),
        ("Sender", facts.get("sender", "")),
        ("Language", facts.get("language", "")),
        ("Matched phrases", ", ".join(facts.get("matched", []))),
        ("Classifier", _intent(facts.get("classifier"))),
        ("Sender check", facts.get("sender_check", "")),
        ("HR", _status(facts.get("hr"))),
        ("LMS account", _status(facts.get("lms"))),
        ("Decision", f"{decision['action']}: {decision['reason']}"),
    ]
    if action.get("dry_run"):
        rows.append(("Action", "none: dry run"))
    elif action:
        rows.append(("Action", f"{decision['action']} reference {action.get('reference') or '-'}"
                     + (" (replayed by the LMS)" if action.get("replayed") else "")))
    timings = dict(run.get("timings", {}), **({"lms_action": action["ms"]} if "ms" in action else {}))
    rows.append(("Timings", ", ".join(f"{k} {v} ms" for k, v in timings.items())))
    title = "Login automation" + (" (dry run: nothing was changed)" if dry_run else "")
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v)
    return f"<p><b>{escape(title)}</b></p><table>{cells}</table>"


def _intent(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    cues = f"; cues: {', '.join(found['cues'])}" if found.get("cues") else ""
    return f"{found['outcome']}, score {found['score']:.2f}{cues}"


def _status(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    raw = f" ({found['raw']})" if found.get("raw") else ""
    where = f", on record: {found['email_on_record']}" if found.get("email_on_record") else ""
    return f"{found['status']}{raw}{where}"
