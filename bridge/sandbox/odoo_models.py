"""The sandbox's Odoo data model: Odoo's exception classes, the model schemas and a fresh database's seed records.

The schemas follow the reference (shared/reference/odoo-api.md §6): the Enterprise and the OCA
``helpdesk.ticket`` share a model name but not their fields or companion models, so the flavour
picks which family is registered; asking the other flavour's models gives "Object X doesn't exist",
as it would on a real database without that module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.sandbox.odoo_orm import Database

# --- exceptions, named as Odoo's so faults and JSON-RPC ``data.name`` read like the real thing ---

class UserError(Exception):
    """odoo.exceptions.UserError: a business refusal (XML-RPC fault code 2)."""

    __module__ = "odoo.exceptions"


class ValidationError(UserError):
    """odoo.exceptions.ValidationError: a constraint or required field failed (code 2)."""

    __module__ = "odoo.exceptions"


class MissingError(UserError):
    """odoo.exceptions.MissingError: the record does not exist or was deleted (code 2)."""

    __module__ = "odoo.exceptions"


class AccessError(UserError):
    """odoo.exceptions.AccessError: authenticated but not allowed (code 4)."""

    __module__ = "odoo.exceptions"


class AccessDenied(UserError):
    """odoo.exceptions.AccessDenied: bad credentials (code 3)."""

    __module__ = "odoo.exceptions"

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class SerializationFailure(Exception):
    """psycopg2.errors.SerializationFailure: what a concurrent-update conflict surfaces as (code 1)."""

    __module__ = "psycopg2.errors"


class OperationalError(Exception):
    """psycopg2.OperationalError: what an unknown database name surfaces as (code 1)."""

    __module__ = "psycopg2"


# --- schemas ---

@dataclass(frozen=True)
class Field:
    """One field of a model; ``computed`` fields are derived on read and never stored."""

    type: str
    string: str = ""
    comodel: str | None = None
    required: bool = False
    default: Any = None  # a value, or a callable taking the Database
    selection: tuple[tuple[str, str], ...] = ()
    inverse: str | None = None  # one2many: the comodel's many2one pointing back
    computed: bool = False
    readonly: bool = False

    @property
    def stored(self) -> bool:
        """Whether the value lives in the record dict (one2many and computed ones do not)."""
        return not self.computed and self.type != "one2many"


@dataclass
class ModelSpec:
    """A model's schema and the class attributes Odoo would give it."""

    name: str
    description: str
    fields: dict[str, Field]
    order: str = "id"
    rec_name: str = "name"
    parent_name: str | None = None
    mail_thread: bool = False


MAGIC = ("id", "display_name", "create_date", "write_date", "create_uid", "write_uid")


def _f(type_: str, string: str, **kw: Any) -> Field:
    return Field(type_, string, **kw)


def char(string: str, **kw: Any) -> Field:
    return _f("char", string, **kw)


def html(string: str, **kw: Any) -> Field:
    return _f("html", string, **kw)


def text(string: str, **kw: Any) -> Field:
    return _f("text", string, **kw)


def integer(string: str, **kw: Any) -> Field:
    return _f("integer", string, **kw)


def boolean(string: str, **kw: Any) -> Field:
    return _f("boolean", string, **kw)


def dt(string: str, **kw: Any) -> Field:
    return _f("datetime", string, **kw)


def sel(string: str, options: tuple[tuple[str, str], ...], **kw: Any) -> Field:
    return _f("selection", string, selection=options, **kw)


def m2o(comodel: str, string: str, **kw: Any) -> Field:
    return _f("many2one", string, comodel=comodel, **kw)


def m2m(comodel: str, string: str, **kw: Any) -> Field:
    return _f("many2many", string, comodel=comodel, **kw)


def o2m(comodel: str, inverse: str, string: str) -> Field:
    return _f("one2many", string, comodel=comodel, inverse=inverse)


def computed(type_: str, string: str, comodel: str | None = None) -> Field:
    return Field(type_, string, comodel=comodel, computed=True, readonly=True)


ACTIVE = boolean("Active", default=True)
PRIORITY_ENTERPRISE = (("0", "Low priority"), ("1", "Medium priority"), ("2", "High priority"), ("3", "Urgent"))
PRIORITY_OCA = (("0", "Low"), ("1", "Medium"), ("2", "High"), ("3", "Very High"))
SLA_STATUSES = (("failed", "Failed"), ("reached", "Reached"), ("ongoing", "Ongoing"))
KANBAN = (("normal", "Grey"), ("done", "Green"), ("blocked", "Red"))
TASK_STATES = (("01_in_progress", "In Progress"), ("02_changes_requested", "Changes Requested"),
               ("03_approved", "Approved"), ("04_waiting_normal", "Waiting"),
               ("1_done", "Done"), ("1_canceled", "Canceled"))
MESSAGE_TYPES = (("email", "Incoming Email"), ("comment", "Comment"), ("email_outgoing", "Outgoing Email"),
                 ("notification", "System notification"), ("auto_comment", "Automated Targeted Notification"),
                 ("user_notification", "User Specific Notification"))


def _mail_thread(fields: dict[str, Field]) -> dict[str, Field]:
    return {**fields, "message_ids": computed("one2many", "Messages", "mail.message")}


def _enterprise_helpdesk() -> list[ModelSpec]:
    return [
        ModelSpec("helpdesk.team", "Helpdesk Team", {
            "name": char("Helpdesk Team", required=True), "sequence": integer("Sequence", default=10),
            "active": ACTIVE, "stage_ids": m2m("helpdesk.stage", "Stages"),
            "member_ids": m2m("res.users", "Team Members"),
        }, order="sequence,name", mail_thread=True),
        ModelSpec("helpdesk.stage", "Helpdesk Stage", {
            "name": char("Stage Name", required=True), "sequence": integer("Sequence", default=1),
            "fold": boolean("Folded in Kanban"), "active": ACTIVE, "description": text("Requirements"),
            "team_ids": m2m("helpdesk.team", "Helpdesk Teams"),
        }, order="sequence, id"),
        ModelSpec("helpdesk.tag", "Helpdesk Tags", {
            "name": char("Tag Name", required=True), "color": integer("Color"),
        }, order="name"),
        ModelSpec("helpdesk.ticket.type", "Helpdesk Ticket Type", {
            "name": char("Type", required=True), "sequence": integer("Sequence", default=10),
        }, order="sequence, id"),
        ModelSpec("helpdesk.sla", "Helpdesk SLA Policies", {
            "name": char("SLA Policy Name", required=True), "active": ACTIVE,
            "priority": sel("Priority", PRIORITY_ENTERPRISE, default="0"),
        }, order="name"),
        ModelSpec("helpdesk.sla.status", "Ticket SLA Status", {
            "ticket_id": m2o("helpdesk.ticket", "Ticket", required=True), "sla_id": m2o("helpdesk.sla", "SLA"),
            "deadline": dt("Deadline"), "reached_datetime": dt("Reached Date"),
            "status": sel("Status", SLA_STATUSES, default="ongoing"),
        }, order="deadline ASC"),
        ModelSpec("helpdesk.ticket", "Helpdesk Ticket", _mail_thread({
            "name": char("Subject", required=True), "description": html("Description"),
            "active": ACTIVE, "ticket_ref": char("Ticket IDs Sequence", readonly=True),
            "team_id": m2o("helpdesk.team", "Helpdesk Team"), "user_id": m2o("res.users", "Assigned to"),
            "partner_id": m2o("res.partner", "Customer"), "partner_name": char("Customer Name"),
            "partner_email": char("Customer Email"), "partner_phone": char("Customer Phone"),
            "email_cc": char("Email cc"), "stage_id": m2o("helpdesk.stage", "Stage"),
            "tag_ids": m2m("helpdesk.tag", "Tags"), "ticket_type_id": m2o("helpdesk.ticket.type", "Type"),
            "priority": sel("Priority", PRIORITY_ENTERPRISE, default="0"),
            "kanban_state": sel("Status", KANBAN, default="normal"),
            "fold": computed("boolean", "Folded in Kanban"),
            "close_date": dt("Close date", readonly=True), "sla_deadline": dt("SLA Deadline", readonly=True),
            "sla_status_ids": o2m("helpdesk.sla.status", "ticket_id", "SLA Status"),
            "date_last_stage_update": dt("Last Stage Update", readonly=True),
        }), order="priority desc, id desc", mail_thread=True),
    ]


def _oca_helpdesk() -> list[ModelSpec]:
    return [
        ModelSpec("helpdesk.ticket.team", "Helpdesk Ticket Team", {
            "name": char("Name", required=True), "active": ACTIVE, "user_ids": m2m("res.users", "Members"),
        }, mail_thread=True),
        ModelSpec("helpdesk.ticket.stage", "Helpdesk Ticket Stage", {
            "name": char("Stage Name", required=True), "description": html("Description"),
            "sequence": integer("Sequence", default=1), "active": ACTIVE,
            "unattended": boolean("Unattended"), "closed": boolean("Closed"), "fold": boolean("Folded in Kanban"),
            "team_ids": m2m("helpdesk.ticket.team", "Helpdesk Teams"),
        }, order="sequence, id"),
        ModelSpec("helpdesk.ticket.tag", "Helpdesk Ticket Tag", {
            "name": char("Name", required=True), "color": integer("Color Index"), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket.category", "Helpdesk Ticket Category", {
            "name": char("Name", required=True), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket.channel", "Helpdesk Ticket Channel", {
            "name": char("Name", required=True), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket", "Helpdesk Ticket", _mail_thread({
            "number": char("Ticket number", default="/", readonly=True),
            "name": char("Title", required=True), "description": html("Description", required=True),
            "user_id": m2o("res.users", "Assigned user"), "partner_id": m2o("res.partner", "Contact"),
            "partner_name": char("Partner Name"), "partner_email": char("Email"),
            "stage_id": m2o("helpdesk.ticket.stage", "Stage"), "tag_ids": m2m("helpdesk.ticket.tag", "Tags"),
            "category_id": m2o("helpdesk.ticket.category", "Category"),
            "team_id": m2o("helpdesk.ticket.team", "Team"), "channel_id": m2o("helpdesk.ticket.channel", "Channel"),
            "priority": sel("Priority", PRIORITY_OCA, default="1"),
            "kanban_state": sel("Kanban State", KANBAN, default="normal"),
            "sequence": integer("Sequence", default=10), "active": ACTIVE,
            "closed": computed("boolean", "Closed"), "unattended": computed("boolean", "Unattended"),
            "closed_date": dt("Closed Date"), "assigned_date": dt("Assigned Date"),
            "last_stage_update": dt("Last Stage Update"),
        }), order="priority desc, sequence, number desc, id desc", rec_name="number", mail_thread=True),
    ]


def _project(version: int) -> list[ModelSpec]:
    task_priority = (("0", "Low"), ("1", "High")) if version < 19 else (
        ("0", "Low"), ("1", "Medium"), ("2", "High"), ("3", "Urgent"))
    task_state: dict[str, Field] = (
        {"kanban_state": sel("Status", KANBAN, default="normal")} if version < 17 else
        {"state": sel("State", TASK_STATES, default="01_in_progress"), "is_closed": computed("boolean", "Closed")})
    return [
        ModelSpec("project.project", "Project", _mail_thread({
            "name": char("Name", required=True), "sequence": integer("Sequence", default=10), "active": ACTIVE,
            "partner_id": m2o("res.partner", "Customer"), "type_ids": m2m("project.task.type", "Tasks Stages"),
        }), order="sequence, name, id", mail_thread=True),
        ModelSpec("project.task.type", "Task Stage", {
            "name": char("Name", required=True), "sequence": integer("Sequence", default=1), "active": ACTIVE,
            "fold": boolean("Folded in Kanban"), "project_ids": m2m("project.project", "Projects"),
        }, order="sequence, id"),
        ModelSpec("project.tags", "Project Tags", {
            "name": char("Name", required=True), "color": integer("Color"),
        }, order="name"),
        ModelSpec("project.task", "Task", _mail_thread({
            "name": char("Title", required=True), "description": html("Description"), "active": ACTIVE,
            "project_id": m2o("project.project", "Project"), "stage_id": m2o("project.task.type", "Stage"),
            "user_ids": m2m("res.users", "Assignees"), "partner_id": m2o("res.partner", "Customer"),
            "email_from": char("Email From"), "tag_ids": m2m("project.tags", "Tags"),
            "priority": sel("Priority", task_priority, default="0"), "sequence": integer("Sequence", default=10),
            "date_deadline": dt("Deadline"), "date_last_stage_update": dt("Last Stage Update", readonly=True),
            **task_state,
        }), order="priority desc, sequence, id desc", mail_thread=True),
    ]


def _base(version: int) -> list[ModelSpec]:
    message_types = MESSAGE_TYPES if version >= 17 else tuple(t for t in MESSAGE_TYPES if t[0] != "email_outgoing")
    return [
        ModelSpec("res.partner", "Contact", _mail_thread({
            "name": char("Name", required=True), "email": char("Email"), "phone": char("Phone"),
            "mobile": char("Mobile"), "active": ACTIVE, "is_company": boolean("Is a Company"),
            "parent_id": m2o("res.partner", "Related Company"), "child_ids": o2m("res.partner", "parent_id", "Contact"),
            "comment": html("Notes"), "lang": char("Language", default="en_US"),
            "user_ids": o2m("res.users", "partner_id", "Users"),
            "category_id": m2m("res.partner.category", "Tags"),
        }), order="name, id desc", parent_name="parent_id", mail_thread=True),
        ModelSpec("res.partner.category", "Partner Tags", {
            "name": char("Tag Name", required=True), "color": integer("Color"), "active": ACTIVE,
            "parent_id": m2o("res.partner.category", "Parent Category"),
        }, order="name"),
        ModelSpec("res.users", "User", {
            "login": char("Login", required=True), "name": char("Name", required=True),
            "partner_id": m2o("res.partner", "Related Partner", required=True),
            "email": computed("char", "Email"), "share": boolean("Share User"), "active": ACTIVE,
        }, order="name, login"),
        ModelSpec("mail.message.subtype", "Message subtypes", {
            "name": char("Message Type", required=True), "description": text("Description"),
            "internal": boolean("Internal Only"), "default": boolean("Default", default=True),
            "hidden": boolean("Hidden"), "sequence": integer("Sequence", default=1), "res_model": char("Model"),
        }, order="sequence, id"),
        ModelSpec("mail.message", "Message", {
            "model": char("Related Document Model"), "res_id": integer("Related Document ID"),
            "record_name": computed("char", "Message Record Name"),
            "body": html("Contents", default=""), "subject": char("Subject"), "date": dt("Date"),
            "message_type": sel("Type", message_types, required=True, default="comment"),
            "subtype_id": m2o("mail.message.subtype", "Subtype"), "author_id": m2o("res.partner", "Author"),
            "email_from": char("From"), "is_internal": boolean("Employee Only"),
            "message_id": char("Message-Id", readonly=True), "reply_to": char("Reply-To"),
            "parent_id": m2o("mail.message", "Parent Message"),
            "partner_ids": m2m("res.partner", "Recipients"), "attachment_ids": m2m("ir.attachment", "Attachments"),
            "tracking_value_ids": o2m("mail.tracking.value", "mail_message_id", "Tracking values"),
        }, order="id desc", rec_name="record_name"),
        ModelSpec("ir.model.fields", "Fields", {
            "name": char("Field Name", required=True), "model": char("Model Name", required=True),
            "ttype": char("Field Type"), "field_description": char("Field Label"),
        }, order="name"),
        # Odoo 16 names the changed field "field", 17+ "field_id" (both many2one ir.model.fields).
        ModelSpec("mail.tracking.value", "Mail Tracking Value", {
            "field" if version < 17 else "field_id": m2o("ir.model.fields", "Changed Field"),
            "old_value_integer": integer("Old Value Integer"), "new_value_integer": integer("New Value Integer"),
            "old_value_char": char("Old Value Char"), "new_value_char": char("New Value Char"),
            "mail_message_id": m2o("mail.message", "Message ID"),
        }, order="id desc"),
        ModelSpec("ir.attachment", "Attachment", {
            "name": char("Name", required=True), "description": text("Description"),
            "res_model": char("Resource Model"), "res_id": integer("Resource ID"),
            "type": sel("Type", (("url", "URL"), ("binary", "File")), required=True, default="binary"),
            "url": char("Url"), "public": boolean("Is public document"),
            "datas": _f("binary", "File Content (base64)"), "mimetype": char("Mime Type"),
            "file_size": integer("File Size", readonly=True), "access_token": char("Access Token"),
        }, order="id desc"),
        ModelSpec("ir.model.data", "Model Data", {
            "name": char("External Identifier", required=True), "module": char("Module", required=True),
            "model": char("Model Name", required=True), "res_id": integer("Record ID"), "noupdate": boolean("Non Updatable"),
        }, order="module, model, name"),
    ]


def build_specs(version: int, flavour: str) -> dict[str, ModelSpec]:
    """Every model the sandbox serves for this version and ticket flavour, with magic fields added."""
    if flavour not in ("enterprise", "oca"):
        raise ValueError(f"ticket_flavour must be 'enterprise' or 'oca', not {flavour!r}")
    helpdesk = _enterprise_helpdesk() if flavour == "enterprise" else _oca_helpdesk()
    specs = {spec.name: spec for spec in _base(version) + helpdesk + _project(version)}
    for spec in specs.values():
        spec.fields = {
            "id": Field("integer", "ID", readonly=True),
            **spec.fields,
            "display_name": computed("char", "Display Name"),
            "create_date": dt("Created on", readonly=True), "write_date": dt("Last Updated on", readonly=True),
            "create_uid": m2o("res.users", "Created by", readonly=True),
            "write_uid": m2o("res.users", "Last Updated by", readonly=True),
        }
    return specs


def seed(db: Database) -> None:
    """The records a fresh database has: the API user, mail subtypes, stages, a team and a project."""
    create = db.create

    def xmlid(module: str, name: str, model: str, res_id: int) -> None:
        create("ir.model.data", {"module": module, "name": name, "model": model, "res_id": res_id, "noupdate": True})

    # Ids mirror a fresh Odoo: partner 1 company, 2 OdooBot, 3 the admin; user 1 __system__, 2 the admin.
    create("res.partner", {"name": "My Company", "is_company": True, "email": "info@example.com"})
    create("res.partner", {"name": "OdooBot", "email": "odoobot@example.com", "active": False})
    create("res.partner", {"name": "Support Bot", "email": db.login})
    create("res.users", {"login": "__system__", "name": "OdooBot", "partner_id": 2, "active": False})
    create("res.users", {"login": db.login, "name": "Support Bot", "partner_id": 3, "share": False})
    for module, name, res_id in (("base", "main_partner", 1), ("base", "partner_root", 2), ("base", "partner_admin", 3)):
        xmlid(module, name, "res.partner", res_id)
    xmlid("base", "user_root", "res.users", 1)
    xmlid("base", "user_admin", "res.users", 2)
    comment = create("mail.message.subtype", {"name": "Discussions", "sequence": 0, "internal": False})
    note = create("mail.message.subtype", {"name": "Note", "sequence": 100, "internal": True, "default": False})
    xmlid("mail", "mt_comment", "mail.message.subtype", comment)
    xmlid("mail", "mt_note", "mail.message.subtype", note)
    for model in ("helpdesk.ticket", "project.task"):  # the tracked stage fields
        create("ir.model.fields", {"name": "stage_id", "model": model, "ttype": "many2one",
                                   "field_description": "Stage"})
    if db.flavour == "enterprise":
        stages = [create("helpdesk.stage", {"name": name, "sequence": seq, "fold": fold})
                  for name, seq, fold in (("New", 1, False), ("In Progress", 2, False),
                                          ("Solved", 3, True), ("Cancelled", 4, True))]
        for key, sid in zip(("stage_new", "stage_in_progress", "stage_solved", "stage_cancelled"), stages):
            xmlid("helpdesk", key, "helpdesk.stage", sid)
        team = create("helpdesk.team", {"name": "Customer Care", "stage_ids": [(6, 0, stages)],
                                        "member_ids": [(6, 0, [2])]})
        xmlid("helpdesk", "helpdesk_team1", "helpdesk.team", team)
    else:
        rows = (("New", 1, False, True), ("In Progress", 2, False, False), ("Awaiting", 3, False, False),
                ("Done", 4, True, False), ("Cancelled", 5, True, False), ("Rejected", 6, True, False))
        for name, seq, closed, unattended in rows:
            sid = create("helpdesk.ticket.stage", {"name": name, "sequence": seq, "closed": closed, "fold": closed,
                                                   "unattended": unattended})
            xmlid("helpdesk_mgmt", "helpdesk_ticket_stage_" + name.lower().replace(" ", "_"),
                  "helpdesk.ticket.stage", sid)
        create("helpdesk.ticket.team", {"name": "Customer Care", "user_ids": [(6, 0, [2])]})
        for name in ("Web", "Email", "Phone", "Other"):
            create("helpdesk.ticket.channel", {"name": name})
    types = [create("project.task.type", {"name": name, "sequence": seq, "fold": fold})
             for name, seq, fold in (("New", 1, False), ("In Progress", 2, False), ("Done", 3, True))]
    create("project.project", {"name": "Support", "type_ids": [(6, 0, types)]})
