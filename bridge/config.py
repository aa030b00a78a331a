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
from croniter import croniter
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
from bridge.textclass.categories import DEFAULT_CATEGORIES, Category

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Security = Literal["tls", "starttls", "plain"]


class DoneMarking(_Section):
    """How a finished email is marked in IMAP: a private keyword, or a MOVE to a folder."""

    mode: Literal["keyword", "move"] = "keyword"
    keyword: str = "$BridgeDone"
    folder: str = "Processed"


OAUTH_PROVIDERS = {
    # provider: (token URL, device-code URL, authorize URL); {tenant} is the Microsoft directory
    "microsoft": ("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
                  "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
                  "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"),
    # Google has no device flow for mail scopes: `bridge auth login` prints a URL and takes the code.
    "google": ("https://oauth2.googleapis.com/token", "", "https://accounts.google.com/o/oauth2/v2/auth"),
    "generic": ("", "", ""),
}
OAUTH_SCOPES = {
    ("microsoft", "client_credentials"): "https://outlook.office365.com/.default",
    ("microsoft", "refresh_token"): "https://outlook.office.com/IMAP.AccessAsUser.All "
                                    "https://outlook.office.com/SMTP.Send offline_access",
    ("google", "refresh_token"): "https://mail.google.com/",
    ("google", "service_account"): "https://mail.google.com/",
}


class OAuth2Config(_Section):
    """Where the mailbox's access tokens come from (bridge/auth/): an app's own credentials
    (Microsoft 365 client credentials), a user's consent kept as a refresh token (Microsoft or
    Google, stored by `bridge auth login`), or a Google service account acting for the mailbox."""

    provider: Literal["microsoft", "google", "generic"] = "generic"
    flow: Literal["client_credentials", "refresh_token", "service_account"]
    tenant: str = ""  # microsoft: the directory (tenant) id or domain
    token_url: str = ""  # empty: the provider's
    device_code_url: str = ""  # for `bridge auth login`; empty: the provider's (none at Google)
    authorize_url: str = ""  # for `bridge auth login` without a device flow; empty: the provider's
    redirect_uri: str = "http://localhost"  # registered with the app; the operator pastes where it lands
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    scope: str = ""  # empty: the provider's scope for IMAP and SMTP
    refresh_token: SecretStr = SecretStr("")  # a first refresh token; rotated ones are kept in state
    service_account_file: str = ""  # google: the JSON key of the service account
    user: str = ""  # the mailbox address the token acts for (JWT subject); empty: imap.username
    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    refresh_margin_seconds: float = Field(default=300.0, ge=0)  # refresh this long before expiry
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> OAuth2Config:
        if not self.endpoint("token"):
            need = "oauth2.tenant" if self.provider == "microsoft" else "oauth2.token_url"
            raise ValueError(f"oauth2: {need} is needed to know the token endpoint")
        if not self.client_id and self.flow != "service_account":
            raise ValueError("oauth2.client_id is needed")
        if self.flow == "client_credentials" and not self.client_secret.get_secret_value():
            raise ValueError("oauth2.flow client_credentials needs oauth2.client_secret")
        if self.flow == "service_account" and not self.service_account_file:
            raise ValueError("oauth2.flow service_account needs oauth2.service_account_file")
        if not self.effective_scope:
            raise ValueError("oauth2.scope is needed for this provider and flow")
        return self

    def endpoint(self, which: Literal["token", "device", "authorize"]) -> str:
        """The configured URL of one endpoint, else the provider's (with the tenant filled in)."""
        own = {"token": self.token_url, "device": self.device_code_url, "authorize": self.authorize_url}[which]
        if own:
            return own
        template = OAUTH_PROVIDERS[self.provider][("token", "device", "authorize").index(which)]
        if "{tenant}" in template and not self.tenant:
            return ""
        return template.format(tenant=self.tenant)

    @property
    def effective_scope(self) -> str:
        return self.scope or OAUTH_SCOPES.get((self.provider, self.flow), "")


class ImapConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 993
    security: Security = "tls"
    username: str
    password: SecretStr = SecretStr("")
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Config | None = None  # with auth: oauth2
    # auto: Gmail (X-GM-EXT-1) and Exchange Online are recognised by their capabilities; their
    # IDLE is renewed before they drop it (9 / 20 min) and Gmail's All Mail is refused as folder.
    provider: Literal["auto", "generic", "gmail", "microsoft"] = "auto"
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
    throttle_seconds: float = Field(default=60.0, gt=0)  # wait after "throttled"/"too many connections" naming no time

    @model_validator(mode="after")
    def _oauth_when_asked(self) -> ImapConfig:
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError("imap.auth: oauth2 needs an imap.oauth2 section")
        return self


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
    auth: Literal["password", "oauth2"] = "password"  # password: AUTH with username/password when set
    oauth2: OAuth2Config | None = None  # with auth: oauth2; empty: the mailbox's imap.oauth2 (one token for both)


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


class SpamConfig(_Section):
    """Mail the receiving server marked as spam (X-Spam-Flag/-Status, rspamd, Exchange SCL and
    SFV): never acknowledged. ``ticket``: ticketed with ``tag`` (and ``stage``); ``folder``: no
    ticket, moved to ``folder``. Failing SPF/DMARC at a trusted server: recorded, not answered."""

    enabled: bool = True
    action: Literal["ticket", "folder"] = "ticket"
    tag: str = "spam"
    stage: str = ""  # stage by name for spam tickets (empty: Odoo's default)
    folder: str = "Junk"  # IMAP folder for action: folder (created if missing)
    scl_threshold: int = Field(default=5, ge=1, le=9)  # Exchange's spam confidence level counted as spam
    no_reply_on_auth_failure: bool = True  # SPF or DMARC fail → recorded without acknowledgement
    trusted_authserv_ids: tuple[str, ...] = ()  # whose Authentication-Results count; empty: automation.sender's


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
    spam: SpamConfig = SpamConfig()


def check_tag_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{0,16}", value):
        raise ValueError("tag_prefix may only hold letters, digits, '-' and '_' (≤16)")
    return value


class TicketsConfig(_Section):
    tag_prefix: str = "HD-"
    acknowledge: bool = True
    templates_dir: str = ""  # a folder of overrides; empty: the templates packaged in bridge/templates
    max_references: int = Field(default=32, ge=1)
    # Files of one email put on its ticket: larger ones are left out, listed in a note, and the
    # sender told. 25 MiB is what Gmail and Outlook let a sender attach; imap.max_message_bytes
    # (40 MiB raw ≈ 29 MB of files) bounds the total first unless it is raised.
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    max_total_attachment_bytes: int = Field(default=40 * 1024 * 1024, ge=1)

    @field_validator("tag_prefix")
    @classmethod
    def _prefix_is_simple(cls, value: str) -> str:
        return check_tag_prefix(value)


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
    # SIGTERM: running jobs finish or park, the outbox sends what it can, then exit 0 within this.
    shutdown_budget_seconds: float = Field(default=10.0, gt=0, le=600)
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
                    "sla_breach", "mailbox_auth")
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
    mailboxes: tuple[str, ...] = ()  # mailbox names (one mailbox at the top level: its IMAP folder)
    # "login"/"other" as the login classifier found; with categories.enabled, any category key
    categories: tuple[str, ...] = ()
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
    mailbox: str = ""  # a mailbox name (one mailbox at the top level: its IMAP folder)
    # "login"/"other" as the login classifier found; with categories.enabled, a category key
    category: str = ""


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


_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class MailboxConfig(_Section):
    """One support address the bridge serves (``mailboxes:``): where its mail is read and sent
    from, and what its tickets get. Empty settings fall back to the top-level ones."""

    name: str  # in logs, /readyz, /metrics, state and `bridge auth login --mailbox`
    imap: ImapConfig
    smtp: SmtpConfig | None = None  # empty: the top-level smtp section
    team: str = ""  # helpdesk team (or, with project_task, the project) of its tickets; empty: odoo.team/project
    tag_prefix: str = ""  # empty: tickets.tag_prefix
    templates_dir: str = ""  # empty: tickets.templates_dir
    slack_channel: str = ""  # for its tickets when no slack.routes entry matches; empty: slack.channel

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _MAILBOX_NAME.fullmatch(value):
            raise ValueError("a mailbox name is 1-100 letters, digits, '.', '-' or '_'")
        return value

    @field_validator("tag_prefix")
    @classmethod
    def _prefix_is_simple(cls, value: str) -> str:
        return check_tag_prefix(value)


class CategoriesConfig(_Section):
    """The ticket categories, kept in Odoo as tags (``tag_prefix`` + the category's name).

    With ``enabled``, every new ticket gets one (bridge/pipeline/categorise.py) from the phrase
    rules (bridge/textclass/categories.py): ``rules`` lists the categories in order (a tie goes to
    the one listed first), each with its key, label and phrases; ``ticket_type`` also sets an
    Enterprise ticket's type (helpdesk.ticket.type, found or created by the label) where Odoo has it.
    """

    enabled: bool = False
    tag_prefix: str = "Category: "  # a ticket's tag with this prefix names its category
    ticket_type: bool = False
    fallback: str = "other"  # the key given when no phrase matches
    rules: tuple[Category, ...] = DEFAULT_CATEGORIES

    @model_validator(mode="after")
    def _keys(self) -> CategoriesConfig:
        keys = [c.key for c in self.rules]
        if len(set(keys)) != len(keys):
            raise ValueError("categories.rules: each category needs its own key")
        if self.fallback not in keys:
            raise ValueError(f"categories.fallback {self.fallback!r} is not a key of categories.rules")
        return self


class DigestConfig(_Section):
    """The weekly digest in Slack and/or by email (bridge/reports/digest.py): at each slot of
    ``schedule`` (cron: minute hour day month weekday, in ``calendar.timezone``), the report of
    the ``period_days`` whole days before it. With ``base_url`` (the bridge's public URL; needs ``http.port``) the
    full HTML report is kept and linked, served at GET /reports/latest?token=<link_token>."""

    enabled: bool = False
    schedule: str = "0 9 * * mon"  # Mondays at 09:00: the week before
    period_days: int = Field(default=7, ge=1, le=92)
    slack: bool = True  # posted in the Slack channel (needs slack.enabled)
    channel: str = ""  # default: slack.channel
    email_to: tuple[str, ...] = ()  # the support leads it is also emailed to
    base_url: str = ""
    link_token: SecretStr = SecretStr("")
    catch_up_hours: float = Field(default=24.0, ge=0)  # a slot missed while down is posted this late at most
    check_seconds: float = Field(default=60.0, gt=0)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron schedule (minute hour day month weekday)")
        return value

    @model_validator(mode="after")
    def _link(self) -> DigestConfig:
        if self.base_url and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("reports.digest.base_url must be an http(s) URL")
        if self.base_url and len(self.link_token.get_secret_value()) < 16:
            raise ValueError("reports.digest.link_token must be set (16+ characters) with base_url")
        return self


class ReportsConfig(_Section):
    """`bridge report`: the figures support leads are asked for every week."""

    digest: DigestConfig = DigestConfig()

    minutes_per_manual_ticket: float = Field(default=7.5, gt=0)  # an agent's time per ticket automation solves
    page_size: int = Field(default=2000, ge=1, le=5000)  # tickets per Odoo read (their messages in one more)
    recurring_similarity: float = Field(default=0.5, gt=0, le=1)  # subject word overlap (Jaccard) to group
    recurring_top: int = Field(default=5, ge=1, le=50)  # recurring issues listed


class Config(_Section):
    bridge: BridgeSection = BridgeSection()
    # One mailbox: imap (and smtp) at the top, its name is its IMAP folder. Several: `mailboxes`,
    # and imap may be left out (it then reads as the first mailbox's, as smtp does when absent).
    imap: ImapConfig
    smtp: SmtpConfig
    mailboxes: tuple[MailboxConfig, ...] = ()
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
    categories: CategoriesConfig = CategoriesConfig()
    reports: ReportsConfig = ReportsConfig()

    @model_validator(mode="before")
    @classmethod
    def _first_mailbox_as_default(cls, data: Any) -> Any:
        """With ``mailboxes`` listed, top-level imap/smtp may be left out: the first mailbox's stand in."""
        if isinstance(data, dict) and isinstance(data.get("mailboxes"), list) and data["mailboxes"]:
            first = data["mailboxes"][0]
            if isinstance(first, dict):
                data = dict(data)
                data.setdefault("imap", first.get("imap"))
                if "smtp" not in data and first.get("smtp") is not None:
                    data["smtp"] = first["smtp"]
        return data

    @model_validator(mode="after")
    def _mailboxes_distinct(self) -> Config:
        names = [box.name for box in self.mailboxes]
        if len(set(names)) != len(names):
            raise ValueError("mailboxes: each mailbox needs its own name")
        places = [(box.imap.host, box.imap.port, box.imap.username, box.imap.folder) for box in self.mailboxes]
        if len(set(places)) != len(places):
            raise ValueError("mailboxes: two mailboxes read the same IMAP folder of the same account")
        for box in self.mailboxes:
            smtp = box.smtp or self.smtp
            if smtp.auth == "oauth2" and smtp.oauth2 is None and box.imap.oauth2 is None:
                raise ValueError(f"mailboxes {box.name}: smtp.auth oauth2 needs smtp.oauth2 or imap.oauth2")
        return self

    @model_validator(mode="after")
    def _priority_categories_known(self) -> Config:
        """A priority rule's or a Slack route's categories are the login classifier's, or the
        configured categories' keys."""
        known = {c.key for c in self.categories.rules} if self.categories.enabled else {"login", "other"}
        named = [("sla.priority_rules", set(rule.categories)) for rule in self.sla.priority_rules]
        named += [("slack.routes", {route.category}) for route in self.slack.routes if route.category]
        for where, categories in named:
            unknown = sorted(categories - known)
            if unknown:
                raise ValueError(f"{where}: unknown categories {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known))})")
        return self

    @model_validator(mode="after")
    def _digest_needs(self) -> Config:
        digest = self.reports.digest
        if digest.enabled and digest.slack and not self.slack.enabled:
            raise ValueError("reports.digest.slack needs slack.enabled (or set it false and use email_to)")
        if digest.enabled and not digest.slack and not digest.email_to:
            raise ValueError("reports.digest goes nowhere: set slack or email_to")
        if digest.enabled and digest.base_url and not self.http.port:
            raise ValueError("reports.digest.base_url: the report is served by the HTTP endpoint, set http.port")
        return self

    @property
    def own_domain(self) -> str:
        return self.bridge.message_id_domain or self.smtp.from_address.rpartition("@")[2]

    @property
    def mailbox_list(self) -> tuple[MailboxConfig, ...]:
        """Every mailbox with its settings filled in; one built from imap/smtp when none is listed."""
        if not self.mailboxes:
            return (MailboxConfig(name=self.imap.folder if _MAILBOX_NAME.fullmatch(self.imap.folder) else "default",
                                  imap=self.imap, smtp=self.smtp, team=self.odoo.project or self.odoo.team,
                                  tag_prefix=self.tickets.tag_prefix, templates_dir=self.tickets.templates_dir,
                                  slack_channel=self.slack.channel),)
        return tuple(box.model_copy(update={
            "smtp": box.smtp or self.smtp, "team": box.team or self.odoo.project or self.odoo.team,
            "tag_prefix": box.tag_prefix or self.tickets.tag_prefix,
            "templates_dir": box.templates_dir or self.tickets.templates_dir,
            "slack_channel": box.slack_channel or self.slack.channel}) for box in self.mailboxes)

    @model_validator(mode="after")
    def _slack_actions_reachable(self) -> Config:
        if self.slack.enabled and self.slack.actions == "http" and not self.http.port:
            raise ValueError("slack.actions: http needs http.port (the endpoint Slack posts to)")
        if self.satisfaction.enabled and not self.http.port:
            raise ValueError("satisfaction.enabled needs http.port (the rating links are answered there)")
        return self

    @model_validator(mode="after")
    def _smtp_token_known(self) -> Config:
        if self.smtp.auth == "oauth2" and self.smtp.oauth2 is None and self.imap.oauth2 is None:
            raise ValueError("smtp.auth: oauth2 needs smtp.oauth2 (or imap.oauth2 to share its token)")
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
    sections: list[tuple[str, ImapConfig | SmtpConfig]] = [("imap", cfg.imap), ("smtp", cfg.smtp)]
    for box in cfg.mailboxes:
        sections.append((f"mailboxes {box.name} imap", box.imap))
        if box.smtp is not None:
            sections.append((f"mailboxes {box.name} smtp", box.smtp))
    found = sorted({f"{name}.security: plain to {section.host}" for name, section in sections
                    if section.security == "plain" and not is_loopback(section.host)})
    for name, section in sections:
        oauth = section.oauth2
        if oauth is not None:
            for which in ("token", "device", "authorize"):
                url = oauth.endpoint(which)  # type: ignore[arg-type]
                if url:
                    urls_oauth = urlsplit(url)
                    if urls_oauth.scheme.lower() == "http" and not is_loopback(urls_oauth.hostname):
                        found.append(f"{name}.oauth2 {which} URL: http:// to {urls_oauth.hostname}")
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
    mailboxes = tuple(box.model_copy(update={"templates_dir": str(base / box.templates_dir) if box.templates_dir else "",
                                             "imap": _anchor_oauth(box.imap, base),
                                             "smtp": _anchor_oauth(box.smtp, base) if box.smtp else None})
                      for box in cfg.mailboxes)
    return cfg.model_copy(
        update={
            "tickets": cfg.tickets.model_copy(update={"templates_dir": templates}),
            "state": cfg.state.model_copy(update={"dir": str(state)}),
            "imap": _anchor_oauth(cfg.imap, base),
            "smtp": _anchor_oauth(cfg.smtp, base),
            "mailboxes": mailboxes,
        }
    )


def _anchor_oauth(section: Any, base: Path) -> Any:
    """A service account key file named relative to the config file."""
    oauth = section.oauth2
    if oauth is None or not oauth.service_account_file:
        return section
    return section.model_copy(update={"oauth2": oauth.model_copy(
        update={"service_account_file": str(base / oauth.service_account_file)})})
