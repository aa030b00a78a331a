"""config.yaml → frozen, validated settings; ``${VAR}`` expansion; unknown keys are errors."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.automation.classify import ClassifierConfig
from bridge.automation.decide import DecisionTable
from bridge.automation.intent import IntentConfig
from bridge.automation.directory import HrConfig, LmsConfig
from bridge.automation.limits import ActionLimit
from bridge.automation.verify import SenderPolicy
from bridge.errors import ConfigurationError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Security = Literal["tls", "starttls", "plain"]


class DoneMarking(_Section):
    """How a finished email is marked in IMAP: a private keyword, or a MOVE to a folder."""

    mode: Literal["keyword", "move"] = "keyword"
    keyword: str = "$BridgeDone"
    folder: str = "Processed"


class ImapConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 993
    security: Security = "tls"
    username: str
    password: SecretStr = SecretStr("")
    auth: Literal["password"] = "password"  # seam: "oauth2" arrives with the OAuth2 issue
    folder: str = "INBOX"
    quarantine_folder: str = "Quarantine"
    done: DoneMarking = DoneMarking()
    idle: bool = True
    idle_renew_seconds: float = Field(default=25 * 60, gt=0)
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    rescan_interval_seconds: float = Field(default=300.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000)
    max_message_bytes: int = Field(default=40 * 1024 * 1024, ge=1024)  # raw size: base64 adds a third
    timeout_seconds: float = Field(default=30.0, gt=0)
    reconnect_max_seconds: float = Field(default=60.0, gt=0)


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    from_address: str
    from_name: str = "Support"
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=4, ge=1)  # open at once; connections are reused
    idle_seconds: float = Field(default=30.0, gt=0)  # an unused connection is closed after this
    max_messages_per_connection: int = Field(default=100, ge=1)  # then QUIT and reconnect


class OdooConfig(_Section):
    url: str
    db: str
    username: str
    password: SecretStr
    transport: Literal["jsonrpc", "xmlrpc"] = "jsonrpc"
    profile: Literal["helpdesk", "helpdesk_mgmt", "project_task"] = "helpdesk"
    team: str = ""  # helpdesk team by name; empty = Odoo's default
    project: str = ""  # project.task profile: the project by name (required there)
    new_stage: str = ""  # stage by name for new tickets; empty = the model's default
    tags: tuple[str, ...] = ()  # tags by name put on every new ticket (created if missing)
    timeout_seconds: float = Field(default=30.0, gt=0)
    pool_size: int = Field(default=32, ge=1, le=256)


class ReplyCap(_Section):
    count: int = Field(default=5, ge=0)
    per_seconds: float = Field(default=3600.0, gt=0)


class GuardConfig(_Section):
    """Loop/auto-reply guard. Patterns are email addresses with ``*`` wildcards, case-insensitive."""

    exclude_senders: tuple[str, ...] = ()
    no_reply_senders: tuple[str, ...] = (
        "mailer-daemon@*",
        "postmaster@*",
        "noreply@*",
        "no-reply@*",
        "no_reply@*",
        "donotreply@*",
        "do-not-reply@*",
        "*-noreply@*",
        "bounce*@*",
    )
    reply_cap: ReplyCap = ReplyCap()
    bounce_suppress_days: float = Field(default=7.0, ge=0)  # after a hard bounce, the address is not mailed (0: off)


class TicketsConfig(_Section):
    tag_prefix: str = "HD-"
    acknowledge: bool = True
    templates_dir: str = ""  # a folder of overrides; empty: the templates packaged in bridge/templates
    max_references: int = Field(default=32, ge=1)

    @field_validator("tag_prefix")
    @classmethod
    def _prefix_is_simple(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{0,16}", value):
            raise ValueError("tag_prefix may only hold letters, digits, '-' and '_' (≤16)")
        return value


class PipelineConfig(_Section):
    concurrency: int = Field(default=16, ge=1, le=256)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    max_rejections: int = Field(default=3, ge=1)  # validation refusals before quarantine
    outbox_max_attempts: int = Field(default=10, ge=1)


class StateConfig(_Section):
    dir: str = "state"
    retention_days: float = Field(default=30.0, gt=0)


class BridgeSection(_Section):
    """Identity of this bridge instance."""

    secret: SecretStr = SecretStr("")  # signs outgoing Message-IDs; set it in production
    message_id_domain: str = ""  # defaults to the domain of smtp.from_address
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line on stderr, for log collectors
    log_addresses: Literal["mask", "keep"] = "mask"  # mask: a***@customer.example in every line
    # Plain-text IMAP/SMTP and http:// URLs are refused for hosts other than loopback unless
    # this is set (then the bridge warns at every start): passwords and mail would cross the
    # network in clear.
    allow_insecure: bool = False


class AutomationConfig(_Section):
    """Login-problem automation on new tickets (see bridge/automation/playbook.py)."""

    enabled: bool = False
    dry_run: bool = False  # run and document everything, change nothing on the LMS
    dry_run_reply: Literal["suppress", "test"] = "suppress"  # test: send it, subject "[TEST] …"
    classifier: ClassifierConfig = ClassifierConfig()  # the phrase rules (an operator's phrases and vetoes)
    intent: IntentConfig = IntentConfig()  # the trained model's thresholds and the names of systems
    sender: SenderPolicy = SenderPolicy()
    hr: HrConfig | None = None
    lms: LmsConfig | None = None
    decision: DecisionTable = DecisionTable()
    action_limit: ActionLimit = ActionLimit()
    resolved_stage: str = ""  # stage by name for tickets solved automatically (empty: unchanged)
    escalated_stage: str = ""  # stage by name for escalated tickets (empty: unchanged)
    resolved_tag: str = "auto-resolved"
    escalated_tag: str = "escalated"
    # Tickets created directly in Odoo (portal, web form, agents): polled every this many
    # seconds (0: off; the webhook of `http:` works either way), once older than min_age so an
    # emailed ticket has its email on the chatter by then.
    odoo_poll_seconds: float = Field(default=0.0, ge=0)
    odoo_min_age_seconds: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _services_when_enabled(self) -> AutomationConfig:
        if self.enabled and (self.hr is None or self.lms is None):
            raise ValueError("automation.enabled needs automation.hr and automation.lms")
        return self


class HttpConfig(_Section):
    """The bridge's HTTP endpoint (port 0: off): GET /healthz (liveness), /readyz (readiness),
    /metrics (Prometheus) without a token, and POST /webhook/ticket with the token."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    webhook_token: SecretStr = SecretStr("")  # ?token=… or X-Bridge-Token: …

    @model_validator(mode="after")
    def _token_when_listening(self) -> HttpConfig:
        if self.port and len(self.webhook_token.get_secret_value()) < 16:
            raise ValueError("http.webhook_token must be set (16+ characters) when http.port is set")
        return self


SlackEvent = Literal[
    "new_ticket", "customer_replied", "automation", "escalation", "assigned", "resolved", "reopened",
    "reply_failed", "agent_reply", "agent_replied", "rated", "sla_warning", "sla_breach", "sla_summary",
]
# Why a human is asked: each may have its own mention target (``slack.mentions``).
ESCALATION_KINDS = ("login_escalated", "login_unsure", "other_access", "automation_failed", "reply_failed",
                    "sla_breach")
_SLACK_ID = re.compile(r"[A-Z0-9]{2,20}")


class ConversationConfig(_Section):
    """Odoo → customer: agents' public comments and stage changes, found by watching Odoo."""

    enabled: bool = False
    poll_seconds: float = Field(default=15.0, gt=0)
    lookback_seconds: float = Field(default=120.0, ge=0)  # re-read window (commit delays, clock steps)
    page_size: int = Field(default=200, ge=1, le=2000)
    # bridge: the bridge emails agents' comments; odoo: Odoo's own outgoing mail does (the customer
    # follows the ticket), so the bridge sends no second copy and only keeps Slack informed.
    send: Literal["bridge", "odoo"] = "bridge"
    cc: bool = False  # also to the Cc's of the customer's first email
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=0)  # per agent reply, files beyond are listed
    closing_email: bool = True  # the "closed" template once when a ticket reaches a closed stage
    reopen_stage: str = ""  # a customer reply to a closed ticket moves it to this stage; empty: left closed
    reopen_within_days: float = Field(default=0.0, ge=0)  # 0: always reopen; later replies open a new ticket


class AssignmentConfig(_Section):
    """Who gets a new ticket: nobody (Odoo's own rules), the operator with the fewest open
    tickets, or the next one in turn. A ticket someone already assigned is never reassigned."""

    mode: Literal["off", "least_loaded", "round_robin"] = "off"
    operators: tuple[str, ...] = ()  # Odoo users by login or email, in turn order

    @model_validator(mode="after")
    def _operators_when_on(self) -> AssignmentConfig:
        if self.mode != "off" and not self.operators:
            raise ValueError(f"assignment.operators must list Odoo users for mode {self.mode}")
        return self


class CalendarConfig(_Section):
    """The support team's working days (bridge/sla/calendar.py)."""

    timezone: str = "UTC"  # IANA name, e.g. Asia/Ho_Chi_Minh
    workdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = ("mon", "tue", "wed", "thu", "fri")
    hours: tuple[str, ...] = ("09:00-17:00",)  # working hours of each working day, e.g. [08:00-12:00, 13:00-17:00]
    holidays: tuple[date, ...] = ()

    @field_validator("hours")
    @classmethod
    def _periods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from bridge.sla.calendar import parse_hours

        parse_hours(value)  # raises ValueError naming the bad period
        return value

    @model_validator(mode="after")
    def _known_zone(self) -> CalendarConfig:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"calendar.timezone: unknown time zone {self.timezone!r}") from exc
        if not self.workdays:
            raise ValueError("calendar.workdays must name at least one day")
        return self


class FollowUpConfig(_Section):
    """Chasing tickets that wait on the customer: a reminder after ``remind_after_days`` working
    days in a waiting stage, then closed after ``close_after_days`` more (0: off)."""

    waiting_stages: tuple[str, ...] = ()  # stages by name meaning "waiting on the customer"
    remind_after_days: int = Field(default=0, ge=0)
    close_after_days: int = Field(default=0, ge=0)
    close_stage: str = ""  # a closed stage by name, for "closed for no response"
    check_seconds: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> FollowUpConfig:
        if (self.remind_after_days or self.close_after_days) and not self.waiting_stages:
            raise ValueError("follow_ups.waiting_stages must name the stages that wait on the customer")
        if self.close_after_days and not self.close_stage:
            raise ValueError("follow_ups.close_stage must name the stage for closed tickets")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.remind_after_days or self.close_after_days)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

class SatisfactionConfig(_Section):
    """One-click ratings in the closing email (bridge/ratings.py), answered by the HTTP server."""

    enabled: bool = False
    base_url: str = ""  # the bridge's public URL as customers reach it, e.g. https://support.example.com

    @model_validator(mode="after")
    def _url_when_on(self) -> SatisfactionConfig:
        if self.enabled and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("satisfaction.base_url must be the bridge's public http(s) URL")
        return self


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(m|min|h)\s*", re.I)


def duration_seconds(text: str) -> float:
    """ "30m", "4h", "1.5h" → seconds of working time; "" → 0 (no target)."""
    if not text.strip():
        return 0.0
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m or 4h")
    return float(match[1]) * (60 if match[2].lower() in ("m", "min") else 3600)


class SlaPolicy(_Section):
    """Targets for the tickets it matches (empty criteria match everything); first match wins."""

    name: str
    priorities: tuple[str, ...] = ()  # Odoo priority keys ("0" low … "3" urgent)
    tags: tuple[str, ...] = ()  # any of these ticket tags
    teams: tuple[str, ...] = ()  # helpdesk team / project names
    customer_domains: tuple[str, ...] = ()
    first_response: str = ""  # e.g. 4h: the first public answer by a person
    next_response: str = ""  # after each customer message that follows an answer
    resolution: str = ""  # until a closed stage; paused in sla.pause_stages
    around_the_clock: bool = False  # 24/7 instead of the calendar (urgent tickets)

    @field_validator("first_response", "next_response", "resolution")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_seconds(value)
        return value


class PriorityRule(_Section):
    """Sets the priority of new tickets it matches (all given criteria must hold); first match wins."""

    priority: Literal["0", "1", "2", "3"]
    customer_domains: tuple[str, ...] = ()
    partner_tags: tuple[str, ...] = ()  # any of these tags on the customer's partner in Odoo (e.g. VIP)
    mailboxes: tuple[str, ...] = ()  # IMAP folders
    categories: tuple[Literal["login", "other"], ...] = ()  # what the classifier found
    subject_words: tuple[str, ...] = ()  # only with sla.subject_urgency: true


class SlaConfig(_Section):
    """SLA clocks per policy in working time (``calendar``), warnings and breaches (bridge/sla/)."""

    enabled: bool = False
    policies: tuple[SlaPolicy, ...] = ()
    pause_stages: tuple[str, ...] = ()  # "waiting on the customer": the resolution clock stops
    resume_stage: str = ""  # a customer's email on a ticket in a pause (or follow-up waiting) stage moves it here
    warn_at: tuple[float, ...] = (0.75, 0.9)  # fractions of a target
    warn_before: tuple[str, ...] = ()  # lead times before a deadline, e.g. [1h]
    quiet_hours: tuple[str, ...] = ()  # local times when warnings wait (breaches never do), e.g. [20:00-24:00, 00:00-08:00]
    check_seconds: float = Field(default=60.0, gt=0)
    page_size: int = Field(default=500, ge=1, le=5000)
    # Events due this long before the SLA was first switched on are recorded, not told: the first
    # sweep over an old backlog must not flood Slack and Odoo with breaches nobody can act on.
    backfill_hours: float = Field(default=24.0, ge=0)
    breach_tags: dict[Literal["first_response", "next_response", "resolution"], str] = Field(default_factory=lambda: {
        "first_response": "SLA first response breached", "next_response": "SLA next response breached",
        "resolution": "SLA resolution breached"})
    priority_rules: tuple[PriorityRule, ...] = ()
    subject_urgency: bool = False  # let PriorityRule.subject_words look at the customer's subject

    @field_validator("warn_at")
    @classmethod
    def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < f < 1 for f in value):
            raise ValueError("sla.warn_at: fractions between 0 and 1, e.g. [0.75, 0.9]")
        return tuple(sorted(value))

    @field_validator("warn_before")
    @classmethod
    def _leads(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            duration_seconds(text)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from bridge.sla.calendar import parse_hours

        parse_hours(value)
        return value

    @model_validator(mode="after")
    def _policies_when_on(self) -> SlaConfig:
        if self.enabled and not self.policies:
            raise ValueError("sla.policies must list at least one policy when sla.enabled")
        return self


class SlackRoute(_Section):
    """Tickets matching every given criterion go to ``channel``; the first matching route wins."""

    channel: str
    team: str = ""  # odoo.team / odoo.project name
    mailbox: str = ""  # the IMAP folder
    category: Literal["", "login", "other"] = ""  # what the classifier found


class SlackConfig(_Section):
    """Slack: one thread per ticket in a channel, escalations with mentions, actions from Slack."""

    enabled: bool = False
    base_url: str = "https://slack.com/api/"
    bot_token: SecretStr = SecretStr("")  # xoxb-…: chat:write, reactions:write, users:read(.email), channels:history
    channel: str = ""  # the default channel id (C…)
    routes: tuple[SlackRoute, ...] = ()
    # all: a card for every new ticket; needs_human: only for tickets that need a person
    # (escalations, automation failures, replies that could not be delivered).
    post: Literal["all", "needs_human"] = "all"
    # Mention per escalation kind (login_escalated, automation_failed, reply_failed, or default):
    # "here", "channel", "user:U…", "subteam:S…" or "" (none). Only in the ticket's thread.
    mentions: dict[str, str] = Field(default_factory=dict)
    broadcast: tuple[SlackEvent, ...] = ()  # thread replies also shown in the channel
    # Actions from Slack arrive over the HTTP endpoint (http.port, signed with signing_secret),
    # over Socket Mode (app_token, no public URL needed), or not at all.
    actions: Literal["http", "socket", "off"] = "off"
    signing_secret: SecretStr = SecretStr("")
    app_token: SecretStr = SecretStr("")  # xapp-… with connections:write
    approvers: tuple[str, ...] = ()  # Slack user ids allowed to approve/deny and to reply
    approver_groups: tuple[str, ...] = ()  # user group ids (S…) whose members may too
    reply_prefix: str = Field(default="reply:", min_length=1, max_length=32)
    copy_thread_messages: bool = False  # other thread messages → internal notes on the ticket
    resolved_stage: str = "Solved"  # stage by name for "Resolve"
    odoo_web_url: str = ""  # Odoo's web client for ticket links; empty: odoo.url
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)  # per call, inside the client (429/5xx/connection)
    pace_seconds: float = Field(default=1.0, ge=0)  # between posts to one channel (Slack: ~1/s)

    @field_validator("mentions")
    @classmethod
    def _mentions_are_targets(cls, value: dict[str, str]) -> dict[str, str]:
        from bridge.slack.mrkdwn import mention

        for kind, target in value.items():
            if kind not in (*ESCALATION_KINDS, "default"):
                raise ValueError(f"unknown escalation kind {kind!r} (known: {', '.join(ESCALATION_KINDS)}, default)")
            mention(target)  # raises ValueError for anything but a configured, well-formed target
        return value

    @field_validator("approvers", "approver_groups")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not _SLACK_ID.fullmatch(item):
                raise ValueError(f"{item!r} is not a Slack id (U…/S…)")
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SlackConfig:
        if not self.enabled:
            return self
        if not self.bot_token.get_secret_value() or not self.channel:
            raise ValueError("slack.enabled needs slack.bot_token and slack.channel")
        if self.actions == "http" and not self.signing_secret.get_secret_value():
            raise ValueError("slack.actions: http needs slack.signing_secret")
        if self.actions == "socket" and not self.app_token.get_secret_value().startswith("xapp-"):
            raise ValueError("slack.actions: socket needs slack.app_token (xapp-…)")
        return self

    def mention_for(self, kind: str) -> str:
        """The configured mention target for an escalation kind ("" for none)."""
        return self.mentions.get(kind, self.mentions.get("default", ""))


class Config(_Section):
    bridge: BridgeSection = BridgeSection()
    imap: ImapConfig
    smtp: SmtpConfig
    odoo: OdooConfig
    tickets: TicketsConfig = TicketsConfig()
    guard: GuardConfig = GuardConfig()
    pipeline: PipelineConfig = PipelineConfig()
    state: StateConfig = StateConfig()
    automation: AutomationConfig = AutomationConfig()
    http: HttpConfig = HttpConfig()
    slack: SlackConfig = SlackConfig()
    conversation: ConversationConfig = ConversationConfig()
    assignment: AssignmentConfig = AssignmentConfig()
    calendar: CalendarConfig = CalendarConfig()
    follow_ups: FollowUpConfig = FollowUpConfig()
    satisfaction: SatisfactionConfig = SatisfactionConfig()
    sla: SlaConfig = SlaConfig()

    @property
    def own_domain(self) -> str:
        return self.bridge.message_id_domain or self.smtp.from_address.rpartition("@")[2]

    @model_validator(mode="after")
    def _slack_actions_reachable(self) -> Config:
        if self.slack.enabled and self.slack.actions == "http" and not self.http.port:
            raise ValueError("slack.actions: http needs http.port (the endpoint Slack posts to)")
        if self.satisfaction.enabled and not self.http.port:
            raise ValueError("satisfaction.enabled needs http.port (the rating links are answered there)")
        return self

    @model_validator(mode="after")
    def _secure_transports(self) -> Config:
        found = insecure_transports(self)
        if found and not self.bridge.allow_insecure:
            raise ValueError(
                f"plain-text transport to a host that is not loopback: {'; '.join(found)} "
                "(use tls/starttls and https://, or set bridge.allow_insecure: true)"
            )
        return self


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves the machine."""
    if not host:
        return False
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_transports(cfg: Config) -> list[str]:
    """The configured connections that would carry credentials in clear over a network."""
    found = [f"{name}.security: plain to {section.host}"
             for name, section in (("imap", cfg.imap), ("smtp", cfg.smtp))
             if section.security == "plain" and not is_loopback(section.host)]
    urls = [("odoo.url", cfg.odoo.url)]
    if cfg.automation.hr is not None:
        urls.append(("automation.hr.url", cfg.automation.hr.url))
    if cfg.automation.lms is not None:
        urls.append(("automation.lms.url", cfg.automation.lms.url))
    if cfg.slack.enabled:
        urls.append(("slack.base_url", cfg.slack.base_url))
    for key, url in urls:
        parts = urlsplit(url)
        if parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
            found.append(f"{key}: http:// to {parts.hostname}")
    return found


def expand_env(value: Any, environ: dict[str, str] | None = None, path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a loaded YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def _sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigurationError(f"{path}: environment variable {name} is not set")

    return _ENV_REF.sub(_sub, value)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_config(data: Any, environ: dict[str, str] | None = None) -> Config:
    """Validate an already-loaded YAML tree."""
    if not isinstance(data, dict):
        raise ConfigurationError("config: the top level must be a mapping")
    try:
        return Config.model_validate(expand_env(data, environ))
    except ValidationError as exc:
        raise ConfigurationError(f"config: {_describe(exc)}") from None


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; every problem names its key path."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"config: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"config: {path} is not valid YAML: {exc}") from None
    return anchor_paths(parse_config(data, environ), Path(path).resolve().parent)


def anchor_paths(cfg: Config, base: Path) -> Config:
    """Relative folders (templates, state) are relative to the config file, not to the CWD; an
    empty templates_dir (no overrides) stays empty."""
    templates = str(base / cfg.tickets.templates_dir) if cfg.tickets.templates_dir else ""
    state = base / cfg.state.dir
    return cfg.model_copy(
        update={
            "tickets": cfg.tickets.model_copy(update={"templates_dir": templates}),
            "state": cfg.state.model_copy(update={"dir": str(state)}),
        }
    )
