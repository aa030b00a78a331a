"""The sandbox's in-memory ORM: ``Database``, Odoo's create/write/unlink and model side effects over ``RecordStore``."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import random
import time
from datetime import datetime, timezone
from email.utils import formataddr, parseaddr
from typing import Any

from bridge.sandbox.odoo_domain import X2MANY, is_unset
from bridge.sandbox.odoo_models import MAGIC, Field, ValidationError, seed
from bridge.sandbox.odoo_store import RecordStore

_DT_FORMAT = "%Y-%m-%d %H:%M:%S"


def now_utc() -> str:
    """The current UTC time the way Odoo's ``fields.Datetime.now()`` gives it: whole seconds."""
    return datetime.now(timezone.utc).strftime(_DT_FORMAT)


def now_precise() -> str:
    """The stamp PostgreSQL puts in ``create_date``/``write_date``: microseconds. Odoo returns
    them cut to whole seconds, so a client's ``write_date = <what it read>`` matches nothing and
    ``write_date > <what it read>`` matches the same records again, as on a real server."""
    return datetime.now(timezone.utc).strftime(_DT_FORMAT + ".%f")


def _normalized_email(value: Any) -> str:
    return (parseaddr(value)[1] or str(value)).strip().lower() if value else ""


class Database(RecordStore):
    """One sandbox database: ``RecordStore``'s storage and searches plus writes, x2many commands and model hooks."""

    def reset(self) -> None:
        """Back to the seed records."""
        super().reset()
        seed(self)

    # --- writing ---

    def create(self, model: str, vals: dict[str, Any]) -> int:
        """Creates one record: defaults, conversions, x2many commands, required check, model hooks."""
        self._begin()
        try:
            return self._create(model, vals)
        finally:
            self._end()

    def write(self, model: str, ids: Any, vals: dict[str, Any]) -> None:
        """Writes the same values on every record; computed and magic fields are ignored."""
        self._begin()
        try:
            self._write(model, ids, vals)
        finally:
            self._end()

    def unlink(self, model: str, ids: Any) -> None:
        """Deletes records; many2one references become empty, a thread's messages and attachments go too."""
        self._begin()
        try:
            self._unlink(model, ids)
        finally:
            self._end()

    def _create(self, model: str, vals: dict[str, Any]) -> int:
        spec = self.spec(model)
        if not isinstance(vals, dict):
            raise ValueError(f"create() expects a dict of values, got {vals!r}")
        for name in vals:
            self.field(model, name)
        vals = dict(vals)
        self._before_create(model, vals)
        rid = self._next_id[model]
        self._next_id[model] += 1
        stamp = now_precise()
        rec: dict[str, Any] = {"id": rid}
        for name, fld in spec.fields.items():
            if name in MAGIC or not fld.stored:
                continue
            if fld.type == "many2many":
                rec[name] = []
            elif name in vals:
                rec[name] = self._convert(model, name, fld, vals[name])
            else:
                rec[name] = fld.default(self) if callable(fld.default) else (False if fld.default is None else fld.default)
        rec.update(create_date=stamp, write_date=stamp, create_uid=self.uid, write_uid=self.uid)
        self._touch(model, rid)
        self.data[model][rid] = rec
        for name, value in vals.items():
            if spec.fields[name].type in X2MANY and not spec.fields[name].computed:
                self._apply_commands(model, rec, name, value)
        self._check_required(model, rec)
        self._after_write(model, rec, vals, None)
        return rid

    def _write(self, model: str, ids: Any, vals: dict[str, Any]) -> None:
        recs = self.existing(model, ids)
        if not isinstance(vals, dict):
            raise ValueError(f"write() expects a dict of values, got {vals!r}")
        fields = {name: self.field(model, name) for name in vals}
        scalars = {n: self._convert(model, n, f, vals[n]) for n, f in fields.items()
                   if f.stored and f.type not in X2MANY and n not in MAGIC}
        stamp = now_precise()
        for rec in recs:
            old = dict(rec)
            self._touch(model, rec["id"])
            rec.update(scalars, write_date=stamp, write_uid=self.uid)
            for name, fld in fields.items():
                if fld.type in X2MANY and not fld.computed:
                    self._apply_commands(model, rec, name, vals[name])
            self._check_required(model, rec)
            self._after_write(model, rec, vals, old)

    def _unlink(self, model: str, ids: Any) -> None:
        doomed = [rec["id"] for rec in self.existing(model, ids)]
        for rid in doomed:
            self._touch(model, rid)
            del self.data[model][rid]
        gone = set(doomed)
        for other, spec in self.specs.items():
            for name, fld in spec.fields.items():
                if fld.comodel != model or not fld.stored or name in MAGIC:
                    continue
                for rec in self.data[other].values():
                    value = rec.get(name)
                    if fld.type == "many2one" and value in gone or fld.type == "many2many" and gone & set(value or []):
                        self._touch(other, rec["id"])
                        rec[name] = False if fld.type == "many2one" else [i for i in value if i not in gone]
        if self.specs[model].mail_thread:
            for child, key in (("mail.message", "model"), ("ir.attachment", "res_model")):
                linked = [r["id"] for r in self.data[child].values() if r.get(key) == model and r.get("res_id") in gone]
                if linked:
                    self.unlink(child, linked)

    def _convert(self, model: str, name: str, fld: Field, value: Any) -> Any:
        """A written value in stored form, refused the way Odoo's convert_to_cache/column would."""
        t = fld.type
        if value is None or value is False:
            return 0 if t == "integer" else 0.0 if t == "float" else False
        if t in ("char", "text", "html"):
            return value if isinstance(value, str) else str(value)
        if t == "integer":
            return int(value)
        if t == "float":
            return float(value)
        if t == "boolean":
            return bool(value)
        if t == "selection":
            if value not in {key for key, _ in fld.selection}:
                raise ValueError(f"Wrong value for {model}.{name}: {value!r}")
            return value
        if t == "date":
            return datetime.strptime(str(value)[:10], "%Y-%m-%d").strftime("%Y-%m-%d")
        if t == "datetime":
            text_value = str(value)[:19]
            if len(text_value) == 10:
                text_value += " 00:00:00"
            return datetime.strptime(text_value, _DT_FORMAT).strftime(_DT_FORMAT)
        if t == "many2one":
            rid = value[0] if isinstance(value, (list, tuple)) and value else value
            if self.browse(fld.comodel or "", rid) is None:
                raise ValidationError("The operation cannot be completed: another model requires the record "
                                      f"being referenced: {fld.comodel}({rid!r},) does not exist "
                                      f"(field {model}.{name}).")
            return rid
        if t == "binary":
            if isinstance(value, (bytes, bytearray)):
                return base64.b64encode(value).decode("ascii")
            return str(value)
        return value

    def _apply_commands(self, model: str, rec: dict[str, Any], name: str, commands: Any) -> None:
        """x2many commands (0,0,vals) (1,id,vals) (2,id) (3,id) (4,id) (5,) (6,0,ids); a bare id list means SET."""
        fld = self.field(model, name)
        comodel, inverse = fld.comodel or "", fld.inverse or ""
        if not commands:
            commands = [(5, 0, 0)]
        elif all(isinstance(c, int) and not isinstance(c, bool) for c in commands):
            commands = [(6, 0, list(commands))]

        def linked() -> list[int]:
            if fld.type == "one2many":
                return [r["id"] for r in self.data[comodel].values() if r.get(inverse) == rec["id"]]
            return list(rec.get(name) or [])

        def link(ids: list[int], on: bool) -> None:
            if fld.type == "one2many":
                for co_rec in self.existing(comodel, ids):
                    self._touch(comodel, co_rec["id"])
                    co_rec[inverse] = rec["id"] if on else False
                return
            self._touch(model, rec["id"])
            current = [i for i in rec.get(name) or [] if i not in ids]
            rec[name] = current + [i for i in dict.fromkeys(ids) if on]

        for command in commands:
            if not isinstance(command, (list, tuple)) or not command or command[0] not in range(7):
                raise ValueError(f"Invalid x2many command {command!r} for field {model}.{name}")
            code, arg = command[0], command[1] if len(command) > 1 else 0
            if code == 0:
                extra = {inverse: rec["id"]} if fld.type == "one2many" else {}
                new_id = self.create(comodel, {**dict(command[2]), **extra})
                if fld.type == "many2many":
                    link([new_id], True)
            elif code == 1:
                self.write(comodel, [arg], dict(command[2]))
            elif code in (2, 3):
                link([arg], False)
                if code == 2:
                    self.unlink(comodel, [arg])
            elif code == 4:
                self.existing(comodel, [arg])
                link([arg], True)
            elif code == 5:
                link(linked(), False)
            else:
                ids = self.as_ids(list(command[2] or []))
                self.existing(comodel, ids)
                link(linked(), False)
                link(ids, True)

    def _check_required(self, model: str, rec: dict[str, Any]) -> None:
        for name, fld in self.specs[model].fields.items():
            if fld.required and fld.stored and fld.type not in ("boolean", "integer", "float") and is_unset(rec.get(name)):
                raise ValidationError(f"The operation cannot be completed: Missing required field: {name}")

    # --- model behaviour ---

    def find_or_create_partner(self, email: str) -> int:
        """res.partner.find_or_create: the first active partner whose email =ilike the address, else a new one."""
        name, address = parseaddr(email or "")
        if address and "@" in address:
            found = self.search("res.partner", [("email", "=ilike", address)], limit=1)
            if found:
                return found[0]
            return self.create("res.partner", {"name": name or address, "email": address})
        return self.create("res.partner", {"name": email})

    def xmlid_to_res_id(self, xmlid: str) -> int | bool:
        """ir.model.data lookup of "module.name"; False when unknown, as _xmlid_to_res_id does."""
        module, _, name = xmlid.partition(".")
        for rec in self.data["ir.model.data"].values():
            if rec["module"] == module and rec["name"] == name:
                return rec["res_id"]
        return False

    def _first(self, model: str, domain: list[Any]) -> int | bool:
        ids = self.search(model, domain, limit=1)
        return ids[0] if ids else False

    def _before_create(self, model: str, vals: dict[str, Any]) -> None:
        if model == "helpdesk.ticket" and self.flavour == "enterprise":
            if vals.get("partner_name") and vals.get("partner_email") and not vals.get("partner_id"):
                vals["partner_id"] = self.find_or_create_partner(formataddr((vals["partner_name"], vals["partner_email"])))
            vals.setdefault("team_id", self._first("helpdesk.team", []))
            if not vals.get("stage_id"):
                vals["stage_id"] = self._first("helpdesk.stage", [("team_ids", "in", [vals["team_id"]])] if vals[
                    "team_id"] else []) or self._first("helpdesk.stage", [])
            vals["ticket_ref"] = str(self.next_sequence("helpdesk.ticket"))
        elif model == "helpdesk.ticket":
            if vals.get("number") in (None, False, "/"):
                vals["number"] = f"HT{self.next_sequence('helpdesk.ticket.sequence'):05d}"
            if not vals.get("stage_id"):
                vals["stage_id"] = self._first("helpdesk.ticket.stage", [])
        elif model == "project.task" and vals.get("project_id") and not vals.get("stage_id"):
            project = self.browse("project.project", vals["project_id"])
            if project and project.get("type_ids"):
                vals["stage_id"] = self.sort("project.task.type", list(project["type_ids"]), "sequence, id")[0]
        elif model == "mail.message":
            vals.setdefault("date", now_utc())
            if not vals.get("message_id"):
                res = f"{vals.get('res_id')}-{vals.get('model')}" if vals.get("model") else "message-notify"
                vals["message_id"] = f"<{random.random():.15f}.{time.time():.6f}-openerp-{res}@sandbox>"
        elif model == "ir.attachment" and not vals.get("mimetype"):
            vals["mimetype"] = mimetypes.guess_type(vals.get("name") or "")[0] or "application/octet-stream"

    def _track_stage(self, model: str, rec: dict[str, Any], old_stage: Any) -> None:
        """mail.thread tracking: a stage change is a notification on the chatter with its old and
        new value (mail.tracking.value), by the user who wrote it."""
        field_ids = self.search("ir.model.fields", [("model", "=", model), ("name", "=", "stage_id")], limit=1)
        user = self.data["res.users"].get(self.uid) or {}
        message = self.create("mail.message", {
            "model": model, "res_id": rec["id"], "message_type": "notification", "body": "",
            "author_id": user.get("partner_id") or False, "date": now_utc(),
            "subtype_id": self.xmlid_to_res_id("mail.mt_note") or False})
        self.create("mail.tracking.value", {
            "field" if self.version < 17 else "field_id": field_ids[0] if field_ids else False,
            "old_value_integer": int(old_stage or 0), "new_value_integer": int(rec.get("stage_id") or 0),
            "mail_message_id": message})

    def _after_write(self, model: str, rec: dict[str, Any], vals: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Side effects of create (old is None) and write: stage dates, partner sync, attachment size."""
        stamp = now_utc()
        stage_moved = "stage_id" in (self.specs[model].fields if old is None else vals) and (
            old is None or old.get("stage_id") != rec.get("stage_id"))
        if model == "helpdesk.ticket":
            stage = self.browse(self.field(model, "stage_id").comodel or "", rec.get("stage_id"))
            if stage_moved and self.flavour == "enterprise":
                rec["date_last_stage_update"] = stamp
                rec["close_date"] = stamp if stage and stage.get("fold") else False
            elif stage_moved:
                rec["last_stage_update"] = stamp
                if stage and stage.get("closed"):
                    rec["closed_date"] = stamp
            partner = self.browse("res.partner", rec.get("partner_id"))
            if partner and "partner_id" in vals:
                for key, source in (("partner_name", "name"), ("partner_email", "email"), ("partner_phone", "phone")):
                    if key not in vals and key in self.specs[model].fields:
                        rec[key] = partner.get(source) or False
            if (self.flavour == "enterprise" and partner and "partner_email" in vals and rec.get("partner_email")
                    and _normalized_email(rec["partner_email"]) != _normalized_email(partner.get("email"))):
                self.write("res.partner", [partner["id"]], {"email": rec["partner_email"]})
        elif model == "project.task" and stage_moved:
            rec["date_last_stage_update"] = stamp
        if stage_moved and old is not None and model in ("helpdesk.ticket", "project.task"):
            self._track_stage(model, rec, old.get("stage_id"))
        elif model == "ir.attachment" and vals.get("datas"):
            try:
                rec["file_size"] = len(base64.b64decode(rec["datas"], validate=False))
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"Invalid base64 in ir.attachment.datas: {exc}") from exc
