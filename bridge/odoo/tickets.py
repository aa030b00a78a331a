"""The ticket operations the pipeline needs, mapped onto each Odoo ticket model by a profile."""

from __future__ import annotations

import base64
import html
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from bridge.config import OdooConfig
from bridge.errors import ConfigurationError
from bridge.models import Attachment
from bridge.odoo.attachments import access_token, image_url, link_inline_images, stored_mimetype
from bridge.odoo.rpc import SERVICE, OdooRPC, as_id

T = TypeVar("T")

NO_SUBJECT = "(no subject)"
NO_TEXT = "<p>(no text)</p>"
_PARTNER_CACHE_SIZE = 4096
ATTACHMENT_BATCH_BYTES = 2 * 1024 * 1024  # payload bytes per ir.attachment.create call
TICKET_TYPE_MODEL = "helpdesk.ticket.type"  # Enterprise Helpdesk's ticket types


@dataclass(frozen=True)
class TicketProfile:
    """Where a profile keeps tickets, stages, tags and the team (or project) a ticket belongs to."""

    key: str
    model: str
    stage_model: str
    tag_model: str
    team_model: str | None
    team_field: str | None
    has_partner_email: bool
    description_required: bool
    closed_field: str  # domain path that is true on closed tickets
    closed_date_field: str = "close_date"  # when the ticket was closed (project.task: its last stage change)
    stage_date_field: str = "date_last_stage_update"  # when the ticket entered its stage
    team_setting: Literal["team", "project"] = "team"  # the OdooConfig key naming the team record
    assignee_field: Literal["user_id", "user_ids"] = "user_id"  # project.task has several assignees

    @property
    def team_required(self) -> bool:
        """A project.task without a project is invisible to the support team, so there it is required."""
        return self.team_setting == "project"


PROFILES: dict[str, TicketProfile] = {
    "helpdesk": TicketProfile(
        key="helpdesk",
        model="helpdesk.ticket",
        stage_model="helpdesk.stage",
        tag_model="helpdesk.tag",
        team_model="helpdesk.team",
        team_field="team_id",
        has_partner_email=True,
        description_required=False,
        closed_field="stage_id.fold",
    ),
    "helpdesk_mgmt": TicketProfile(
        key="helpdesk_mgmt",
        model="helpdesk.ticket",
        stage_model="helpdesk.ticket.stage",
        tag_model="helpdesk.ticket.tag",
        team_model="helpdesk.ticket.team",
        team_field="team_id",
        has_partner_email=True,
        description_required=True,
        closed_field="closed",
        closed_date_field="closed_date",
        stage_date_field="last_stage_update",
    ),
    "project_task": TicketProfile(
        key="project_task",
        model="project.task",
        stage_model="project.task.type",
        tag_model="project.tags",
        team_model="project.project",
        team_field="project_id",
        has_partner_email=False,
        description_required=False,
        closed_field="stage_id.fold",
        closed_date_field="date_last_stage_update",
        team_setting="project",
        assignee_field="user_ids",
    ),
}


class _Memo:
    """A thread-safe cache that computes each missing key once even when threads ask together.

    Keys share a fixed set of locks (so the lock table never grows); failures are not cached, so
    a record created in Odoo after a miss is found on the next call. When full, the oldest entry
    is dropped.
    """

    _STRIPES = 64

    def __init__(self, max_size: int = 256) -> None:
        self._values: dict[Any, Any] = {}
        self._guard = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(self._STRIPES)]
        self._max_size = max_size

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._guard:
            if key in self._values:
                return self._values[key]
        with self._stripes[hash(key) % self._STRIPES]:
            with self._guard:
                if key in self._values:
                    return self._values[key]
            value = compute()
            with self._guard:
                if len(self._values) >= self._max_size:
                    self._values.pop(next(iter(self._values)))
                self._values[key] = value
            return value


def _like_literal(text: str) -> str:
    """Escape ``\\ % _`` so ``=ilike`` matches the text itself (``a_ice@x`` must not match ``alice@x``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def ticket_name(subject: str) -> str:
    """The ticket name for an email subject, on one line and bounded; create and the crash
    reconciliation must agree on it (XML-RPC would strip control characters anyway)."""
    return _CONTROL.sub(" ", subject).strip()[:500] or NO_SUBJECT


def _batches(attachments: Sequence[Attachment], limit: int) -> list[list[Attachment]]:
    """Consecutive groups of at most ``limit`` payload bytes (a larger attachment goes alone)."""
    groups: list[list[Attachment]] = []
    size = 0
    for attachment in attachments:
        if not groups or size + attachment.size > limit:
            groups.append([])
            size = 0
        groups[-1].append(attachment)
        size += attachment.size
    return groups


class TicketDesk:
    """Tickets, partners and chatter messages in Odoo, blocking and thread-safe.

    Bodies (``description_html``, ``body_html``) must already be escaped HTML: text from an
    email is untrusted and is escaped by the caller, once. Odoo 17+ escapes a str body passed to
    ``message_post`` unless ``body_is_html=True`` (honoured for internal users only), which would
    show our markup as text; Odoo 16 has no ``body_is_html`` and stores the body as HTML, and an
    unknown keyword there ends up as an invalid mail.message field. So ``body_is_html=True`` is
    sent exactly when the server's major version is 17 or more.
    """

    def __init__(self, rpc: OdooRPC, cfg: OdooConfig) -> None:
        self._rpc = rpc
        self._cfg = cfg
        self.profile = PROFILES[cfg.profile]
        self._team_name = cfg.project if self.profile.team_setting == "project" else cfg.team
        self._names = _Memo()  # (model, name) → id for teams, stages, tags
        self._partners = _Memo(_PARTNER_CACHE_SIZE)  # lower-cased email → res.partner id
        self._meta = _Memo()  # priority labels; (stage model, stage id, flag) → bool

    # ----------------------------------------------------------------------- checks

    def check(self) -> str:
        """Prove the configuration against the live Odoo: a summary line, or a ConfigurationError naming the fault."""
        profile = self.profile
        uid = self._rpc.authenticate()
        version = self._rpc.version().get("server_version", "?")
        fields = self._rpc.execute_kw(profile.model, "fields_get", [], {"attributes": ["type", "relation"]})
        missing = [name for name in self._written_fields() if name not in fields]
        wrong = [
            f"{name} points to {fields[name].get('relation')}, not {relation}"
            for name, relation in self._relations()
            if name in fields and fields[name].get("relation") != relation
        ]
        if missing or wrong:
            problems = ([f"no field {', '.join(missing)}"] if missing else []) + wrong
            raise ConfigurationError(
                f"{profile.model} does not fit odoo.profile {profile.key!r}: {'; '.join(problems)}", service=SERVICE
            )
        self._team_id()
        self._stage_id()
        absent_tags = [tag for tag in self._cfg.tags if self._find_by_name(profile.tag_model, tag) is None]
        count = self._rpc.execute_kw(profile.model, "search_count", [[]])
        summary = f"Odoo {version} db={self._cfg.db} uid={uid} model={profile.model} ({count} tickets)"
        if absent_tags:
            summary += f"; tags created with the first ticket: {', '.join(absent_tags)}"
        return summary

    def _written_fields(self) -> list[str]:
        fields = ["name", "description", "partner_id", "stage_id", "tag_ids"]
        if self.profile.has_partner_email:
            fields += ["partner_email", "partner_name"]
        if self.profile.team_field and (self._team_name or self.profile.team_required):
            fields.append(self.profile.team_field)
        return fields

    def _relations(self) -> list[tuple[str, str]]:
        """The many2one/many2many fields whose comodel tells one profile from another (same model name)."""
        profile = self.profile
        pairs = [("stage_id", profile.stage_model), ("tag_ids", profile.tag_model)]
        if profile.team_field and profile.team_model:
            pairs.append((profile.team_field, profile.team_model))
        return pairs

    # ----------------------------------------------------------------------- lookups

    def find_messages(self, message_ids: Sequence[str]) -> list[dict]:
        """Messages in Odoo carrying these Message-IDs, newest first: how Odoo routes replies, how we dedupe."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return []
        return self._rpc.execute_kw(
            "mail.message",
            "search_read",
            [[("message_id", "in", ids)]],
            {"fields": ["message_id", "model", "res_id"], "order": "id desc"},
        )

    def find_or_create_partner(self, email: str, name: str) -> int:
        """The oldest partner with this email (case-insensitive), created when there is none; cached per email."""
        email = email.strip()
        return self._partners.get(email.lower(), lambda: self._partner_for(email, name))

    def _partner_for(self, email: str, name: str) -> int:
        found = self._rpc.execute_kw(
            "res.partner",
            "search_read",
            [[("email", "=ilike", _like_literal(email))]],
            {"fields": ["email"], "limit": 1, "order": "id"},
        )
        # Checked here too, in case a server ignores the escapes: a look-alike must never match.
        if found and str(found[0].get("email") or "").strip().lower() == email.lower():
            return as_id(found[0]["id"])
        vals = {"name": name.strip() or email, "email": email}
        return as_id(self._rpc.execute_kw("res.partner", "create", [vals]))

    def find_recent_ticket(self, *, partner_id: int | None, subject: str, since: str) -> int | None:
        """After a crash between "Odoo created it" and "we recorded it": the newest match, archived ones too."""
        ids = self._rpc.execute_kw(
            self.profile.model,
            "search",
            [[
                ("partner_id", "=", partner_id or False),
                ("name", "=", ticket_name(subject)),
                ("create_date", ">=", since),
            ]],
            {"limit": 1, "order": "id desc", "context": {"active_test": False}},
        )
        return as_id(ids[0]) if ids else None

    def ticket_customer_email(self, ticket_id: int) -> str | None:
        """The address replies go to: the ticket's partner_email, else its partner's email; None if no such ticket.

        search_read (not read) so a deleted ticket is an empty answer rather than a MissingError fault.
        """
        fields = ["partner_id"] + (["partner_email"] if self.profile.has_partner_email else [])
        tickets = self._read_by_id(self.profile.model, ticket_id, fields)
        if not tickets:
            return None
        ticket = tickets[0]
        if ticket.get("partner_email"):
            return str(ticket["partner_email"])
        partner = ticket.get("partner_id")
        if not partner:
            return None
        partner_id = partner[0] if isinstance(partner, list) else partner  # [id, name] or a bare id
        partners = self._read_by_id("res.partner", as_id(partner_id), ["email"])
        return str(partners[0]["email"]) if partners and partners[0].get("email") else None

    def _read_by_id(self, model: str, record_id: int, fields: list[str]) -> list[dict]:
        return self._rpc.execute_kw(
            model,
            "search_read",
            [[("id", "=", record_id)]],
            {"fields": fields, "context": {"active_test": False}},
        )

    def newest_ticket_id(self) -> int:
        """The highest ticket id now (0 if none): where polling for new tickets starts."""
        ids = self._rpc.execute_kw(self.profile.model, "search", [[]],
                                   {"limit": 1, "order": "id desc", "context": {"active_test": False}})
        return as_id(ids[0]) if ids else 0

    def tickets_after(self, ticket_id: int, created_before: str, limit: int = 100) -> list[int]:
        """Tickets created in Odoo with a higher id, created before ``created_before`` (UTC), oldest
        first. Tickets our own user created (from emails) are left out: the email path runs them."""
        ids = self._rpc.execute_kw(
            self.profile.model, "search",
            [[("id", ">", ticket_id), ("create_date", "<=", created_before), ("create_uid", "!=", self._rpc.uid)]],
            {"limit": limit, "order": "id asc"},
        )
        return [as_id(i) for i in ids]

    def ticket_request(self, ticket_id: int) -> dict[str, Any] | None:
        """What the login playbook needs of a ticket created in Odoo; None if it does not exist.

        ``by_portal_customer`` says whether a portal (share) user created it for their own partner:
        the only case where Odoo itself has authenticated the requester, as ``login`` (set only
        then). The partner's ``email`` proves nothing there: a portal user can edit it. ``by_bridge``
        says whether our own user created it (from an email, whose post may not be on the chatter
        yet) and ``from_email`` whether an email is on its chatter: either way the email path
        handles it.
        """
        found = self._read_by_id(self.profile.model, ticket_id, ["name", "description", "partner_id", "create_uid"])
        if not found:
            return None
        ticket = found[0]
        partner_id = self._many2one_id(ticket.get("partner_id")) or 0
        partner = self._read_by_id("res.partner", partner_id, ["name", "email"]) if partner_id else []
        creator_id = self._many2one_id(ticket.get("create_uid")) or 0
        creator = self._read_by_id("res.users", creator_id, ["share", "partner_id", "login"]) if creator_id else []
        emails = self._rpc.execute_kw("mail.message", "search_count", [[
            ("model", "=", self.profile.model), ("res_id", "=", ticket_id), ("message_type", "=", "email"),
        ]])
        portal = bool(creator and creator[0].get("share") and partner_id
                      and self._many2one_id(creator[0].get("partner_id")) == partner_id)
        return {
            "subject": str(ticket.get("name") or ""),
            "description": str(ticket.get("description") or ""),
            "email": str(partner[0].get("email") or "") if partner else "",
            "name": str(partner[0].get("name") or "") if partner else "",
            "by_portal_customer": portal,
            "login": str(creator[0].get("login") or "") if portal else "",
            "by_bridge": creator_id == self._rpc.uid,
            "from_email": bool(emails),
        }

    def ticket_summary(self, ticket_id: int) -> dict[str, Any] | None:
        """What a card or a reply shows of a ticket; None if there is no such ticket (archived ones count).

        ``priority`` is the selection's label (``priority_value`` its key), ``assignee`` the user's
        name (project.task: the names of all ``user_ids``, ``assignee_id`` the first), ``closed`` the
        profile's notion (the stage's ``fold``, or OCA's ``closed``). One search_read of the ticket;
        the labels and each stage's flag are memoised per desk. The users of a task, and the partner
        when the ticket itself has no customer name or email, are read too.
        """
        profile = self.profile
        fields = ["name", "priority", "stage_id", "partner_id", profile.assignee_field]
        if profile.has_partner_email:
            fields += ["partner_name", "partner_email"]
        stage_flag = profile.closed_field.removeprefix("stage_id.")
        if stage_flag == profile.closed_field:  # a field of the ticket itself
            fields.append(profile.closed_field)
        found = self._read_by_id(profile.model, ticket_id, fields)
        if not found:
            return None
        ticket = found[0]
        stage_id = self._many2one_id(ticket.get("stage_id"))
        if stage_flag == profile.closed_field:
            closed = bool(ticket.get(profile.closed_field))
        else:
            closed = bool(stage_id) and self._stage_flag(stage_id, stage_flag)
        assignee_id, assignee = self._assignees(ticket.get(profile.assignee_field))
        partner_name, partner_email = self._summary_partner(ticket)
        value = "" if ticket.get("priority") in (None, False) else str(ticket["priority"])
        return {
            "name": str(ticket.get("name") or ""),
            "priority": self._priority_labels().get(value, value),
            "priority_value": value,
            "assignee": assignee,
            "assignee_id": assignee_id,
            "stage": self._many2one_name(ticket.get("stage_id")),
            "closed": closed,
            "partner_name": partner_name,
            "partner_email": partner_email,
        }

    def closure(self, ticket_id: int) -> dict[str, Any] | None:
        """Whether the ticket is closed and since when (Odoo's UTC stamp, "" if unknown), and its
        stage id; None if there is no such ticket. One read; the stage's flag is memoised."""
        profile = self.profile
        found = self._read_by_id(profile.model, ticket_id, ["stage_id", profile.closed_date_field])
        if not found:
            return None
        stage_id = self._many2one_id(found[0].get("stage_id"))
        closed = self.stage_closed(stage_id)
        return {"closed": closed, "stage_id": stage_id,
                "closed_at": str(found[0].get(profile.closed_date_field) or "") if closed else ""}

    def _priority_labels(self) -> dict[str, str]:
        """The ticket model's priority selection, key → label (in the API user's language), once per desk."""
        model = self.profile.model

        def lookup() -> dict[str, str]:
            described = self._rpc.execute_kw(model, "fields_get", [],
                                             {"allfields": ["priority"], "attributes": ["selection"]})
            pairs = (described.get("priority") or {}).get("selection") or []
            return {str(key): str(label) for key, label in pairs}

        return self._meta.get((model, "priority"), lookup)

    def stage_closed(self, stage_id: int | None) -> bool:
        """Whether tickets in this stage count as closed (the stage's ``fold``, or OCA's ``closed``)."""
        flag = self.profile.closed_field.removeprefix("stage_id.")
        return bool(stage_id) and self._stage_flag(stage_id, "closed" if flag == self.profile.closed_field else flag)

    def _stage_flag(self, stage_id: int, flag: str) -> bool:
        """A boolean of a stage (``fold``), memoised per stage id."""
        model = self.profile.stage_model

        def lookup() -> bool:
            found = self._read_by_id(model, stage_id, [flag])
            return bool(found and found[0].get(flag))

        return self._meta.get((model, stage_id, flag), lookup)

    def _assignees(self, value: Any) -> tuple[int | None, str]:
        """(first assignee id, name or names joined) from ``user_id`` as read, or from ``user_ids``."""
        if self.profile.assignee_field == "user_id":
            return self._many2one_id(value), self._many2one_name(value)
        ids = [as_id(i) for i in value or []]
        if not ids:
            return None, ""
        users = self._rpc.execute_kw("res.users", "search_read", [[("id", "in", ids)]],
                                     {"fields": ["name"], "context": {"active_test": False}})
        names = {as_id(user["id"]): str(user.get("name") or "") for user in users}
        return ids[0], ", ".join(names[i] for i in ids if names.get(i))

    def _summary_partner(self, ticket: dict[str, Any]) -> tuple[str, str]:
        """The customer's name and email: the ticket's own fields, else its partner's."""
        name, email = str(ticket.get("partner_name") or ""), str(ticket.get("partner_email") or "")
        partner_id = self._many2one_id(ticket.get("partner_id"))
        if partner_id and not (name and email):
            found = self._read_by_id("res.partner", partner_id, ["name", "email"])
            if found:
                name = name or str(found[0].get("name") or "")
                email = email or str(found[0].get("email") or "")
        return name, email

    def find_user_by_email(self, email: str) -> dict[str, Any] | None:
        """The active internal user whose login or email is this address (case-insensitive), the
        oldest if several: ``{"id", "name", "partner_id"}``; None if none. Portal and public users
        (``share``) never count: an address alone must not make anyone an agent.
        """
        address = email.strip()
        if not address:
            return None
        literal = _like_literal(address)
        users = self._rpc.execute_kw(
            "res.users",
            "search_read",
            [[("share", "=", False), ("active", "=", True),
              "|", ("login", "=ilike", literal), ("email", "=ilike", literal)]],
            {"fields": ["name", "partner_id", "login", "email"], "order": "id", "limit": 10},
        )
        wanted = address.lower()
        for user in users:  # checked here too, in case a server ignores the escapes
            if wanted in (str(user.get("login") or "").strip().lower(), str(user.get("email") or "").strip().lower()):
                return {"id": as_id(user["id"]), "name": str(user.get("name") or ""),
                        "partner_id": self._many2one_id(user.get("partner_id"))}
        return None

    def operator(self, login: str) -> dict[str, Any]:
        """A configured operator as an internal user (find_user_by_email), memoised; a
        ConfigurationError (not memoised) when no active internal user has that login or email."""

        def lookup() -> dict[str, Any]:
            user = self.find_user_by_email(login)
            if user is None:
                raise ConfigurationError(f"assignment.operators: no active internal Odoo user {login!r}",
                                         service=SERVICE)
            return user

        return self._names.get(("res.users", login.strip().lower()), lookup)

    # ----------------------------------------------------------------------- writes

    def assignee_id(self, ticket_id: int) -> int | None:
        """The ticket's (first) assignee now, None when unassigned or when there is no such ticket."""
        field = self.profile.assignee_field
        found = self._read_by_id(self.profile.model, ticket_id, [field])
        if not found:
            return None
        value = found[0].get(field)
        return (as_id(value[0]) if value else None) if field == "user_ids" else self._many2one_id(value)

    def open_ticket_count(self, user_id: int) -> int:
        """How many open tickets (not in a closed stage) this user is assigned to: their load."""
        profile = self.profile
        flag = profile.closed_field.removeprefix("stage_id.")
        flag = "closed" if flag == profile.closed_field else flag
        mine = (profile.assignee_field, "in", [user_id]) if profile.assignee_field == "user_ids" else (
            profile.assignee_field, "=", user_id)
        return int(self._rpc.execute_kw(profile.model, "search_count", [[mine, (f"stage_id.{flag}", "=", False)]]))

    def assign(self, ticket_id: int, user_id: int) -> None:
        """Make the user an assignee: helpdesk ``user_id`` is replaced; a task's ``user_ids`` gets
        the user added (``(4, id, 0)``), its other assignees kept.

        Idempotent: a user already assigned is not written again, since each write of a user field
        makes Odoo notify that user of the assignment again. A missing ticket fails on the write.
        """
        model, field = self.profile.model, self.profile.assignee_field
        current = self._read_by_id(model, ticket_id, [field])
        if current:
            value = current[0].get(field)
            if field == "user_ids" and user_id in [as_id(i) for i in value or []]:
                return
            if field == "user_id" and self._many2one_id(value) == user_id:
                return
        self._rpc.execute_kw(model, "write", [[ticket_id], {field: [(4, user_id, 0)] if field == "user_ids" else user_id}])


    def create_ticket(
        self, *, subject: str, description_html: str, partner_id: int | None, email: str, name: str, team: str = ""
    ) -> int:
        """Create the ticket with the profile's fields; returns its id. No partner: no customer.
        ``team``: the helpdesk team (project) by name for this ticket's mailbox; empty: the configured one."""
        profile = self.profile
        description = description_html
        if profile.description_required and not description.strip():
            description = NO_TEXT
        vals: dict[str, Any] = {"name": ticket_name(subject), "description": description}
        if partner_id:
            vals["partner_id"] = partner_id
        if partner_id and profile.has_partner_email:
            vals["partner_email"] = email
            vals["partner_name"] = name.strip() or email
        team_id = self._team_id(team)
        if team_id is not None and profile.team_field:
            vals[profile.team_field] = team_id
        stage_id = self._stage_id()
        if stage_id is not None:
            vals["stage_id"] = stage_id
        if self._cfg.tags:
            vals["tag_ids"] = [(6, 0, [self._tag_id(tag) for tag in self._cfg.tags])]
        return as_id(self._rpc.execute_kw(profile.model, "create", [vals]))

    def post_customer_message(
        self,
        ticket_id: int,
        *,
        body_html: str,
        partner_id: int | None,
        email_from: str,
        message_id: str,
        subject: str,
        attachments: Sequence[Attachment] = (),
    ) -> int:
        """Record the customer's email in the ticket's chatter, authored by the customer; returns the mail.message id.

        As author the customer is not notified of their own message. The Message-ID is kept so
        later replies thread here and a retried post can be detected with find_messages. Mail
        without a usable sender (no partner) is authored by the API user, as Odoo requires one.
        """
        kwargs: dict[str, Any] = {
            **self._body(body_html),
            "message_type": "email",
            "subtype_xmlid": "mail.mt_comment",
            "message_id": message_id,
        }
        if partner_id:
            kwargs.update(author_id=partner_id, email_from=email_from)
        if subject:
            kwargs["subject"] = subject
        if attachments:
            kwargs["attachment_ids"], urls = self._create_attachments(ticket_id, attachments)
            if urls:
                kwargs["body"] = link_inline_images(kwargs["body"], urls)
        return as_id(self._rpc.execute_kw(self.profile.model, "message_post", [[ticket_id]], kwargs))

    def post_note(self, ticket_id: int, body_html: str) -> int:
        """An internal note (mail.mt_note): visible to agents, never emailed to the customer."""
        kwargs = {**self._body(body_html), "message_type": "comment", "subtype_xmlid": "mail.mt_note"}
        return as_id(self._rpc.execute_kw(self.profile.model, "message_post", [[ticket_id]], kwargs))

    def post_agent_note(
        self, ticket_id: int, body_html: str, *, author_partner_id: int | None, message_id: str = ""
    ) -> int:
        """An internal note (mail.mt_note) authored by an agent's partner: what an agent sent from
        outside Odoo, on record; Odoo never emails a note. ``message_id`` (the Message-ID of the mail
        we sent) makes the customer's answer thread here, through find_messages as through Odoo's
        own gateway. Without an author the note is the API user's.
        """
        kwargs: dict[str, Any] = {**self._body(body_html), "message_type": "comment", "subtype_xmlid": "mail.mt_note"}
        if author_partner_id:
            kwargs["author_id"] = author_partner_id
        if message_id:
            kwargs["message_id"] = message_id
        return as_id(self._rpc.execute_kw(self.profile.model, "message_post", [[ticket_id]], kwargs))

    def set_message_id(self, odoo_message_id: int, message_id: str) -> None:
        """Write the Message-ID of the email the bridge sent for a comment onto that comment, so the
        customer's answer threads there through Odoo's own mail gateway too (and the comment is
        known as emailed for as long as it exists). Needs write access to mail.message."""
        self._rpc.execute_kw("mail.message", "write", [[odoo_message_id], {"message_id": message_id}])

    def message_id_of(self, odoo_message_id: int) -> str:
        """The Message-ID a chatter message carries now ("" if it is gone)."""
        found = self._read_by_id("mail.message", odoo_message_id, ["message_id"])
        return str(found[0].get("message_id") or "") if found else ""

    def has_note(self, ticket_id: int, marker: str) -> bool:
        """Whether a recent comment or note on the ticket shows ``marker``: makes a retried note idempotent.

        The marker is looked for as escaped text in the bodies, read back rather than searched
        with ``ilike`` so ``_`` and ``%`` in it are not wildcards.
        """
        notes = self._rpc.execute_kw(
            "mail.message",
            "search_read",
            [[
                ("model", "=", self.profile.model),
                ("res_id", "=", ticket_id),
                ("message_type", "=", "comment"),
            ]],
            {"fields": ["body"], "order": "id desc", "limit": 100},
        )
        needle = html.escape(marker, quote=True)
        return any(needle in str(note.get("body") or "") for note in notes)

    def stage_id(self, stage_name: str) -> int:
        """The id of the stage of this name (profile's stage model), cached; an unknown name is
        a ConfigurationError naming it."""
        model = self.profile.stage_model

        def lookup() -> int:
            found = self._find_by_name(model, stage_name)
            if found is None:
                raise ConfigurationError(f"unknown stage {stage_name!r}: no {model} of that name", service=SERVICE)
            return found

        return self._names.get((model, stage_name), lookup)

    def set_stage(self, ticket_id: int, stage_name: str) -> int:
        """Move the ticket to the stage of this name; returns the stage id.

        Idempotent: a ticket already in that stage is not written again, so a retry does not
        restamp the stage date (or re-run stage-change automations) in a real Odoo. An unknown
        stage name is a ConfigurationError naming it; a missing ticket fails on the write.
        """
        stage_id = self.stage_id(stage_name)
        current = self._read_by_id(self.profile.model, ticket_id, ["stage_id"])
        if current and self._many2one_id(current[0].get("stage_id")) == stage_id:
            return stage_id
        self._rpc.execute_kw(self.profile.model, "write", [[ticket_id], {"stage_id": stage_id}])
        return stage_id

    def partner_tags(self, partner_id: int) -> list[str]:
        """The names of a partner's tags (``res.partner.category_id``): VIP customers and the like."""
        found = self._read_by_id("res.partner", partner_id, ["category_id"])
        ids = [as_id(i) for i in (found[0].get("category_id") or [])] if found else []
        if not ids:
            return []
        rows = self._rpc.execute_kw("res.partner.category", "search_read", [[("id", "in", ids)]], {"fields": ["name"]})
        return [str(row.get("name") or "") for row in rows]

    def set_priority(self, ticket_id: int, priority: str) -> None:
        """Write the ticket's priority (a selection key, "0" … "3"); not written again when it already has it."""
        current = self._read_by_id(self.profile.model, ticket_id, ["priority"])
        if current and str(current[0].get("priority")) == priority:
            return
        self._rpc.execute_kw(self.profile.model, "write", [[ticket_id], {"priority": priority}])

    def add_tags(self, ticket_id: int, tag_names: Sequence[str]) -> None:
        """Link these tags to the ticket, each found or created once (profile's tag model); existing tags stay.

        ``(4, id, 0)`` links without unlinking anything and is a no-op for a tag already there.
        """
        names = list(dict.fromkeys(name.strip() for name in tag_names if name.strip()))
        if not names:
            return
        commands = [(4, self._tag_id(name), 0) for name in names]
        self._rpc.execute_kw(self.profile.model, "write", [[ticket_id], {"tag_ids": commands}])

    def set_ticket_type(self, ticket_id: int, name: str) -> bool:
        """Set the ticket's type (Enterprise's ``ticket_type_id`` → helpdesk.ticket.type), the type
        found or created by name; False, writing nothing, where the model has no such field (OCA
        helpdesk, project.task, Helpdesk without types). Whether it has one is asked once."""
        model = self.profile.model

        def described() -> bool:
            fields = self._rpc.execute_kw(model, "fields_get", [], {"attributes": ["relation"]})
            return (fields.get("ticket_type_id") or {}).get("relation") == TICKET_TYPE_MODEL

        if not self._meta.get((model, "ticket_type_id"), described):
            return False

        def find_or_create() -> int:
            found = self._find_by_name(TICKET_TYPE_MODEL, name)
            return found if found is not None else as_id(self._rpc.execute_kw(TICKET_TYPE_MODEL, "create",
                                                                              [{"name": name}]))

        type_id = self._names.get((TICKET_TYPE_MODEL, name), find_or_create)
        self._rpc.execute_kw(model, "write", [[ticket_id], {"ticket_type_id": type_id}])
        return True

    @staticmethod
    def _many2one_id(value: Any) -> int | None:
        """A many2one as read: ``[id, name]``, a bare id, or False."""
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return as_id(value) if value else None

    @staticmethod
    def _many2one_name(value: Any) -> str:
        """The display name of a many2one read as ``[id, name]``; "" when unset or a bare id."""
        return str(value[1]) if isinstance(value, (list, tuple)) and len(value) > 1 and value[1] else ""

    def _body(self, body_html: str) -> dict[str, Any]:
        """See the class docstring: ``body_is_html`` only where Odoo knows it (17+)."""
        if self._rpc.server_major >= 17:
            return {"body": body_html, "body_is_html": True}
        return {"body": body_html}

    def _create_attachments(self, ticket_id: int,
                            attachments: Sequence[Attachment]) -> tuple[list[int], dict[str, str]]:
        """Create the attachments in batches of up to ATTACHMENT_BATCH_BYTES (one call for the
        usual few small files): encoding a 20 MB request in one go held the GIL for ~0.1 s,
        stalling the bridge's event loop; batch by batch the holds stay short. Returns their ids
        and, for inline images, Content-ID → the URL the chatter shows them by (each such image
        gets an access token, as Odoo gives the ``cid:`` images of its own gateway)."""
        ids: list[int] = []
        urls: dict[str, str] = {}
        for batch in _batches(attachments, ATTACHMENT_BATCH_BYTES):
            tokens = [access_token() if attachment.content_id else "" for attachment in batch]
            vals_list = [
                {
                    "name": attachment.filename or "attachment",
                    "datas": base64.b64encode(attachment.payload).decode("ascii"),
                    "res_model": self.profile.model,
                    "res_id": ticket_id,
                    "mimetype": stored_mimetype(attachment.filename, attachment.content_type),
                    **({"access_token": token} if token else {}),
                }
                for attachment, token in zip(batch, tokens)
            ]
            created = self._rpc.execute_kw("ir.attachment", "create", [vals_list])
            batch_ids = [as_id(item) for item in (created if isinstance(created, list) else [created])]
            for attachment, token, attachment_id in zip(batch, tokens, batch_ids):
                if token:
                    urls.setdefault(attachment.content_id, image_url(attachment_id, token))
            ids += batch_ids
        return ids, urls

    # ----------------------------------------------------------------------- named records

    def _find_by_name(self, model: str, name: str) -> int | None:
        ids = self._rpc.execute_kw(model, "search", [[("name", "=", name)]], {"limit": 1})
        return as_id(ids[0]) if ids else None

    def _named_id(self, model: str, name: str, setting: str) -> int:
        """The id of a configured record, cached; a missing one is a configuration error naming it."""

        def lookup() -> int:
            found = self._find_by_name(model, name)
            if found is None:
                raise ConfigurationError(f"odoo.{setting}: no {model} named {name!r}", service=SERVICE)
            return found

        return self._names.get((model, name), lookup)

    def _team_id(self, name: str = "") -> int | None:
        profile = self.profile
        name = name or self._team_name
        if not name:
            if profile.team_required:
                raise ConfigurationError(
                    f"odoo.{profile.team_setting} is required for the {profile.key} profile", service=SERVICE
                )
            return None
        assert profile.team_model is not None
        return self._named_id(profile.team_model, name, profile.team_setting)

    def _stage_id(self) -> int | None:
        if not self._cfg.new_stage:
            return None
        return self._named_id(self.profile.stage_model, self._cfg.new_stage, "new_stage")

    def _tag_id(self, name: str) -> int:
        """A tag by name, created on first use (under the memo's per-name lock, so once per process)."""
        model = self.profile.tag_model

        def find_or_create() -> int:
            found = self._find_by_name(model, name)
            return found if found is not None else as_id(self._rpc.execute_kw(model, "create", [{"name": name}]))

        return self._names.get((model, name), find_or_create)
