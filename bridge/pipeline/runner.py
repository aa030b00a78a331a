"""Runs one email's job through the stages; the one place where signals and errors are caught."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.errors import ConfigurationError, PermanentError, TransientError
from bridge.logs import add_context, current_context, log_context
from bridge.models import InboundEmail
from bridge.pipeline.context import Context
from bridge.pipeline.ingest import STAGES
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import backoff
from bridge.pipeline.stage import Defer, Quarantine, Skip, Stage

log = logging.getLogger("bridge.pipeline")


@dataclass(frozen=True)
class Outcome:
    """How a run of a job ended: done, quarantined (with reason) or deferred (retry after delay)."""

    status: str
    reason: str = ""
    delay: float = 0.0
    folder: str = ""  # quarantined: the folder to move the email to instead of the quarantine (spam)


class Runner:
    """Loads or creates the job, runs the unfinished stages in order and journals each result."""

    def __init__(self, ctx: Context, stages: Sequence[Stage] = STAGES) -> None:
        self.ctx = ctx
        self.stages = tuple(stages)

    def load_key(self, key: str) -> Job:
        """The journaled job for an email key, or a fresh one."""
        record = self.ctx.store.jobs.get(key)
        if record is None:
            return Job(key=key)
        job = Job.from_dict(record)
        job.resumed = bool(job.results)
        return job

    def load(self, email: InboundEmail) -> Job:
        job = self.load_key(email.key)
        if not job.subject:
            job.subject, job.sender = email.subject[:200], email.from_addr
        job.email = email
        return job

    async def process(self, email: InboundEmail) -> Outcome:
        """Run the email's unfinished stages; every log line of its work carries its key, its
        mailbox (for mail read from IMAP) and its ticket, once known, as fields."""
        with log_context(email=email.key, mailbox=email.mailbox):
            return await self._process(email)

    async def _process(self, email: InboundEmail) -> Outcome:
        job = self.load(email)
        if job.status == "done":
            return Outcome("done", "finished earlier")
        if job.status == "quarantined":
            return Outcome("quarantined", job.last_error)
        self.ctx.emit("received", job, sender=email.from_addr, subject=email.subject)
        try:
            for stage in self.stages:
                if job.done(stage.name):
                    continue
                result = await stage.run(job, self.ctx)
                job.results[stage.name] = result
                if "ticket" not in current_context() and job.ticket_id:
                    add_context(ticket=job.ticket_id)
                if stage.journal:
                    self.ctx.checkpoint(job)
                self.ctx.emit(stage.name, job, **result)
        except Skip as signal:
            log.info("%s: nothing more to do: %s", job.key, signal.reason)
        except Quarantine as signal:
            return self.quarantine(job, signal.reason, folder=signal.folder)
        except Defer as signal:
            return self._defer(job, signal.reason, signal.after)
        except TransientError as exc:
            return self._defer(job, str(exc))
        except ConfigurationError as exc:
            log.error("%s: blocked by configuration, will retry: %s", job.key, exc)
            return self._defer(job, str(exc), self.ctx.cfg.pipeline.retry_max_seconds)
        except PermanentError as exc:
            return self._rejected(job, str(exc))
        except Exception as exc:  # a bug on one email must not stop the others
            log.exception("%s: unexpected error", job.key)
            return self._rejected(job, f"internal error: {type(exc).__name__}: {exc}")
        job.status = "done"
        job.email = None
        # Not waited for here: the intake commits the journal once, durably, before it marks a
        # batch of finished emails in IMAP (group commit); until then a crash only re-runs
        # the last stage's check, never a side effect.
        self.ctx.checkpoint(job)
        self.ctx.emit("done", job)
        return Outcome("done")

    def quarantine(self, job: Job, reason: str, mailbox: str = "", *, folder: str = "") -> Outcome:
        """Journal the decision first; the caller then moves the email to the quarantine folder
        of its mailbox (``mailbox``, else the email's)."""
        side = self.ctx.mailbox(mailbox or (job.email.mailbox if job.email is not None else ""))
        log.warning("%s: quarantined: %s", job.key, reason)
        job.status = "quarantined"
        job.last_error = reason
        self.ctx.store.quarantine.put(
            job.key,
            {
                "reason": reason,
                "at": time.time(),
                "subject": job.subject,
                "from": job.sender,
                "folder": folder or side.cfg.imap.quarantine_folder,
                "mailbox": side.name,
            },
        )
        self.ctx.checkpoint(job, durable=True)
        self.ctx.emit("quarantined", job, reason=reason)
        return Outcome("quarantined", reason, folder=folder)

    def _defer(self, job: Job, reason: str, after: float | None = None) -> Outcome:
        job.attempts += 1
        job.last_error = reason[:500]
        self.ctx.checkpoint(job)
        pipeline = self.ctx.cfg.pipeline
        delay = after if after is not None else backoff(
            job.attempts, pipeline.retry_base_seconds, pipeline.retry_max_seconds
        )
        log.debug("%s: deferred %.1fs: %s", job.key, delay, reason)
        self.ctx.emit("deferred", job, reason=reason, delay=delay)
        return Outcome("deferred", reason, delay)

    def _rejected(self, job: Job, reason: str) -> Outcome:
        job.rejections += 1
        if job.rejections >= self.ctx.cfg.pipeline.max_rejections:
            return self.quarantine(job, f"rejected {job.rejections} times: {reason}")
        log.warning("%s: rejected (%d/%d), will retry: %s", job.key, job.rejections,
                    self.ctx.cfg.pipeline.max_rejections, reason)
        return self._defer(job, reason)
