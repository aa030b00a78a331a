"""The sandbox ORM's read side: record storage, transaction journal, search indexes, and read/search/sort.

``RecordStore`` holds the tables and answers the domain Source protocol; ``odoo_orm.Database``
builds on it with the write side and the models' behaviour.
"""

from __future__ import annotations

import copy
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from typing import Any

from bridge.sandbox.odoo_domain import (OTHER_KEY, X2MANY, candidates, compile_domain, eq_key, is_unset,
                                        mentions_field, text_key)
from bridge.sandbox.odoo_models import Field, MissingError, ModelSpec, UserError, build_specs

_ORDER_RE = re.compile(r"^\s*(\w+)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*$", re.IGNORECASE)
_ATOMIC = (str, int, float, bool, type(None))


def _copy_record(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    """copy.deepcopy for a stored record, fast for what records hold: scalars and lists of ids."""
    if rec is None:
        return None
    out = {}
    for name, value in rec.items():
        if type(value) in _ATOMIC:
            out[name] = value
        elif type(value) is list and all(type(v) in _ATOMIC for v in value):
            out[name] = value.copy()
        else:
            out[name] = copy.deepcopy(value)
    return out


_EMPTY: frozenset[int] = frozenset()


class _Index:
    """One (model, field, kind) index: key → ids, and id → key to move a record when it changes."""

    __slots__ = ("buckets", "keys", "ftype", "_key", "_get")

    def __init__(self, name: str, kind: str, ftype: str) -> None:
        self.buckets: dict[Any, set[int]] = {}
        self.keys: dict[int, Any] = {}
        self._key = eq_key if kind == "eq" else text_key
        self.ftype = ftype
        self._get: Callable[[dict[str, Any]], Any] = (
            (lambda rec: rec["id"]) if name == "id" else (lambda rec: rec.get(name, False)))

    def add(self, rid: int, rec: dict[str, Any]) -> None:
        key = self._key(self._get(rec), self.ftype)
        self.keys[rid] = key
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = {rid}
        else:
            bucket.add(rid)

    def discard(self, rid: int) -> None:
        key = self.keys.pop(rid, _EMPTY)
        if key is _EMPTY:
            return
        bucket = self.buckets[key]
        bucket.discard(rid)
        if not bucket:
            del self.buckets[key]

    def lookup(self, keys: list[Any]) -> Set[int]:
        """The ids whose key is one of ``keys``, plus those the index could not place; read-only."""
        other = self.buckets.get(OTHER_KEY)
        if len(keys) == 1 and other is None:
            return self.buckets.get(keys[0], _EMPTY)
        found: set[int] = set(other or ())
        for key in keys:
            found.update(self.buckets.get(key, ()))
        return found




class RecordStore:
    """Every record of one sandbox database, with Odoo's read/search semantics and a rollback journal.

    Not thread-safe by itself: the server holds one lock around each call. ``transaction()`` undoes
    a failed call's changes, as the request's rolled-back cursor would (ids are not reused, like
    PostgreSQL sequences).

    Searches use equality indexes, as the database's would: built per (model, field) on first use,
    then kept current lazily. Every change to a record goes through ``_touch`` first (the journal
    needs it too); a touched record is always a search candidate while the create/write/unlink that
    touched it runs (it may still change), and is re-indexed once that has ended. The indexes only
    narrow the candidates: the full domain still decides, so results are exactly a scan's. Code that
    changes ``data`` by hand must call ``drop_indexes()``; ``indexing = False`` turns them off.
    """

    indexing = True

    def __init__(self, *, version: int = 17, flavour: str = "enterprise",
                 login: str = "bot@example.com", uid: int = 2) -> None:
        self.version, self.flavour, self.login, self.uid = version, flavour, login, uid
        self.specs = build_specs(version, flavour)
        self.reset()

    def reset(self) -> None:
        """Empty tables, no journal, no indexes; ``Database.reset`` then adds the seed records."""
        self.data: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in self.specs}
        self._next_id = {m: 1 for m in self.specs}
        self._sequences: dict[str, int] = {}
        self._journal: list[tuple[str, int, dict[str, Any] | None]] | None = None
        self.drop_indexes()

    def drop_indexes(self) -> None:
        """Forgets every index (rebuilt on next use)."""
        self._indexes: dict[str, dict[tuple[str, str], _Index]] = {}
        self._dirty: dict[str, set[int]] = {}  # touched by finished operations: re-index before use
        self._inflight: list[dict[str, set[int]]] = []  # per running create/write/unlink: what it touched
        self._unordered: set[str] = set()  # tables whose dict order is no longer ascending ids

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Runs a call; on any exception every record it touched is put back."""
        outer = self._journal is None
        if outer:
            self._journal = []
        try:
            yield
        except BaseException:
            if outer and self._journal is not None:
                for model, rid, old in reversed(self._journal):
                    table = self.data[model]
                    if old is None:
                        table.pop(rid, None)
                    else:
                        if rid not in table and table and rid < next(reversed(table)):
                            self._unordered.add(model)  # re-inserted at the end, as before: scans see it last
                        table[rid] = old
                    self._dirty.setdefault(model, set()).add(rid)
            raise
        finally:
            if outer:
                self._journal = None

    def _touch(self, model: str, rid: int) -> None:
        """Called before a record is created, changed or deleted: journal and indexes."""
        if self._journal is not None:
            self._journal.append((model, rid, _copy_record(self.data[model].get(rid))))
        if self._inflight:
            self._inflight[-1].setdefault(model, set()).add(rid)
        else:
            self._dirty.setdefault(model, set()).add(rid)

    def _begin(self) -> None:
        self._inflight.append({})

    def _end(self) -> None:
        for model, rids in self._inflight.pop().items():
            self._dirty.setdefault(model, set()).update(rids)

    # --- indexes ---

    def _index(self, model: str, name: str, kind: str) -> _Index | None:
        """The current index, built on first use; None for fields not stored as a scalar or id."""
        fld = self.specs[model].fields[name]
        if name != "id" and (fld.computed or fld.type in X2MANY):
            return None
        indexes = self._indexes.setdefault(model, {})
        table = self.data[model]
        dirty = self._dirty.pop(model, None)
        if dirty:
            for index in indexes.values():
                for rid in dirty:
                    index.discard(rid)
                    rec = table.get(rid)
                    if rec is not None:
                        index.add(rid, rec)
        index = indexes.get((name, kind))
        if index is None:
            index = indexes[(name, kind)] = _Index(name, kind, fld.type)
            for rid, rec in table.items():
                index.add(rid, rec)
        return index

    def _pool(self, model: str, found: Set[int] | None) -> list[int] | None:
        """Index candidates plus records being changed, existing ones only, in the table's order."""
        if found is None:
            return None
        busy = [frame[model] for frame in self._inflight if model in frame]
        if busy:
            found = found.union(*busy)
        table = self.data[model]
        if len(found) * 8 >= len(table) or model in self._unordered:
            return [rid for rid in table if rid in found]
        return sorted(rid for rid in found if rid in table)

    def _candidates(self, model: str, domain: list[Any]) -> list[int] | None:
        if not self.indexing:
            return None

        def lookup(name: str, kind: str, keys: list[Any]) -> Set[int] | None:
            index = self._index(model, name, kind)
            return None if index is None else index.lookup(keys)
        return self._pool(model, candidates(self, model, domain, lookup))

    def _ids_where(self, model: str, name: str, value: int) -> list[int]:
        """Ids (table order) of the records whose stored ``name`` may equal the id ``value``: a superset
        of ``rec.get(name) == value``, for callers that then test that themselves."""
        table = self.data[model]
        if self.indexing and isinstance(value, int) and not isinstance(value, bool) and value:
            index = self._index(model, name, "eq")
            if index is not None:
                pool = self._pool(model, index.lookup([eq_key(value, index.ftype)]))
                if pool is not None:
                    return pool
        return list(table)

    def next_sequence(self, code: str) -> int:
        """Like ir.sequence: never rolled back, never reused."""
        self._sequences[code] = self._sequences.get(code, 0) + 1
        return self._sequences[code]

    # --- the domain Source protocol ---

    def spec(self, model: str) -> ModelSpec:
        if model not in self.specs:
            raise UserError(f"Object {model} doesn't exist")
        return self.specs[model]

    def field(self, model: str, name: str) -> Field:
        found = self.spec(model).fields.get(name)
        if found is None:
            raise ValueError(f"Invalid field {name!r} on model {model!r}")
        return found

    def browse(self, model: str, rid: Any) -> dict[str, Any] | None:
        if not isinstance(rid, int) or isinstance(rid, bool):
            return None
        return self.data.get(model, {}).get(rid)

    def records(self, model: str) -> list[dict[str, Any]]:
        return list(self.data[model].values())

    def parent_name(self, model: str) -> str | None:
        return self.specs[model].parent_name

    def value_getter(self, model: str, name: str) -> Callable[[dict[str, Any]], Any]:
        """``lambda rec: self.value(model, rec, name)``, without the per-call field lookup for stored scalars."""
        if name == "id":
            return lambda rec: rec["id"]
        fld = self.field(model, name)
        if not fld.computed and fld.type not in X2MANY:
            return lambda rec: rec.get(name, False)
        return lambda rec: self.value(model, rec, name)

    def value(self, model: str, rec: dict[str, Any], name: str) -> Any:
        """The raw value: stored, computed, or (x2many) the linked active ids in the comodel's order."""
        if name == "id":
            return rec["id"]
        fld = self.field(model, name)
        if fld.computed:
            return self._compute(model, rec, name)
        if fld.type == "one2many":
            co_table, inverse = self.data[fld.comodel or ""], fld.inverse or ""
            ids = [i for i in self._ids_where(fld.comodel or "", inverse, rec["id"])
                   if co_table[i].get(inverse) == rec["id"]]
        elif fld.type == "many2many":
            ids = list(rec.get(name) or [])
        else:
            return rec.get(name, False)
        comodel = fld.comodel or ""
        active = "active" in self.specs[comodel].fields
        ids = [i for i in ids if i in self.data[comodel] and not (active and self.data[comodel][i].get("active") is False)]
        return self.sort(comodel, ids, self.specs[comodel].order)

    def _compute(self, model: str, rec: dict[str, Any], name: str) -> Any:
        if name == "display_name":
            return self.display_name(model, rec)
        if name == "message_ids":
            messages = self.data["mail.message"]
            return sorted((i for i in self._ids_where("mail.message", "res_id", rec["id"])
                           if messages[i].get("model") == model and messages[i].get("res_id") == rec["id"]),
                          reverse=True)
        if name in ("fold", "closed", "unattended"):
            stage = self.browse(self.field(model, "stage_id").comodel or "", rec.get("stage_id"))
            return bool(stage and stage.get(name))
        if name == "is_closed":
            return rec.get("state") in ("1_done", "1_canceled")
        if name == "email":
            partner = self.browse("res.partner", rec.get("partner_id"))
            return (partner or {}).get("email") or False
        if name == "record_name":
            target = self.browse(rec.get("model") or "", rec.get("res_id"))
            return self.display_name(rec["model"], target) if target else False
        raise ValueError(f"Field {model}.{name} has no computation")

    def display_name(self, model: str, rec: dict[str, Any]) -> str:
        """Odoo's display_name for the models whose name is not just their _rec_name."""
        if model == "helpdesk.ticket" and self.flavour == "enterprise":
            return f"{rec.get('name') or ''} (#{rec.get('ticket_ref') or ''})"
        if model == "helpdesk.ticket":
            return f"{rec.get('number') or '/'} - {rec.get('name') or ''}"
        if model == "res.partner" and rec.get("parent_id") and not rec.get("is_company"):
            parent = self.browse(model, rec["parent_id"])
            if parent:
                return f"{self.display_name(model, parent)}, {rec.get('name') or ''}"
        if model == "ir.model.data":
            return f"{rec.get('module')}.{rec.get('name')}"
        if model == "mail.message":
            return rec.get("subject") or self._compute(model, rec, "record_name") or f"{model},{rec['id']}"
        value = rec.get(self.specs[model].rec_name)
        return value if isinstance(value, str) and value else f"{model},{rec['id']}"

    # --- reading and searching ---

    def existing(self, model: str, ids: Any) -> list[dict[str, Any]]:
        """The records for these ids, or MissingError naming the missing ones like Odoo does."""
        wanted = self.as_ids(ids)
        self.spec(model)
        table = self.data[model]
        missing = tuple(i for i in dict.fromkeys(wanted) if i not in table)
        if missing:
            raise MissingError("Record does not exist or has been deleted.\n"
                               f"(Record: {model}{missing!r}, User: {self.uid})")
        return [table[i] for i in dict.fromkeys(wanted)]

    @staticmethod
    def as_ids(ids: Any) -> list[int]:
        """browse() accepts one id or a list of them."""
        if isinstance(ids, int) and not isinstance(ids, bool):
            return [ids]
        if isinstance(ids, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return list(ids)
        raise ValueError(f"Invalid ids {ids!r}: expected an id or a list of ids")

    def search(self, model: str, domain: Any = None, offset: int = 0, limit: int | None = None,
               order: str | None = None, active_test: bool = True) -> list[int]:
        """Ids matching the domain, archived records hidden unless the domain names ``active``."""
        spec = self.spec(model)
        domain = list(domain or [])
        if active_test and "active" in spec.fields and not mentions_field(domain, "active"):
            domain = [("active", "=", True), *domain]
        predicate = compile_domain(self, model, domain)
        table = self.data[model]
        pool = self._candidates(model, domain)
        if pool is None and limit and not offset and (order or spec.order).strip().lower() in ("id", "id asc") \
                and model not in self._unordered:
            return self._first_by_id(table, domain, predicate, int(limit))
        if pool is None:
            matched = [rid for rid, rec in table.items() if predicate(rec)]
        else:
            matched = [rid for rid in pool if predicate(table[rid])]
        ids = self.sort(model, matched, order or spec.order)
        offset = int(offset or 0)
        return ids[offset:offset + int(limit)] if limit else ids[offset:]

    @staticmethod
    def _first_by_id(table: dict[int, dict[str, Any]], domain: list[Any], predicate: Callable[[dict[str, Any]], bool],
                     limit: int) -> list[int]:
        """The first ``limit`` matches in id order, starting after a top-level ``("id", ">", n)``:
        the primary-key index scan PostgreSQL does for a keyset page, so paging through a large
        table costs each page its own size, not the table's."""
        floor = 0
        if not any(isinstance(term, str) for term in domain):  # a plain AND of leaves
            floor = max([int(t[2]) for t in domain if isinstance(t, (list, tuple)) and len(t) == 3
                         and t[0] == "id" and t[1] == ">" and isinstance(t[2], int)] or [0])
        keys = list(table)
        found: list[int] = []
        for rid in keys[bisect_right(keys, floor):]:
            if predicate(table[rid]):
                found.append(rid)
                if len(found) == limit:
                    break
        return found

    def sort(self, model: str, ids: list[int], order: str, depth: int = 0) -> list[int]:
        """Ids in ``order`` ("name desc, id"); many2one sorts by the comodel's own order, like SQL joins."""
        terms = []
        for part in (order or "id").split(","):
            match = _ORDER_RE.match(part)
            fld = self.specs[model].fields.get(match.group(1)) if match else None
            if not match or fld is None or not (fld.stored or match.group(1) == "id") or fld.type in X2MANY:
                raise ValueError(f'Invalid "order" specified ({order}). A valid "order" specification is a '
                                 "comma-separated list of valid field names (optionally followed by asc/desc "
                                 "for the direction)")
            terms.append((match.group(1), fld, (match.group(2) or "asc").lower() == "desc", match.group(3)))
        recs = [self.data[model][i] for i in ids]
        for name, fld, desc, nulls in reversed(terms):
            rank: dict[int, int] = {}
            if fld.type == "many2one":
                co = fld.comodel or ""
                co_order = self.specs[co].order if depth < 2 else "id"
                rank = {rid: n for n, rid in enumerate(self.sort(co, list(self.data[co]), co_order, depth + 1))}
            nulls_first = desc if nulls is None else nulls.lower() == "first"
            null_flag = 0 if nulls_first != desc else 1

            def key(rec: dict[str, Any], name: str = name, fld: Field = fld, rank: dict[int, int] = rank,
                    null_flag: int = null_flag) -> tuple[int, Any]:
                v = rec["id"] if name == "id" else rec.get(name)
                if fld.type != "boolean" and is_unset(v, fld.type):
                    return (null_flag, 0)
                if fld.type == "many2one":
                    v = rank.get(v, 0)
                elif isinstance(v, str):
                    v = (v.casefold(), v)
                return (1 - null_flag, v)
            recs.sort(key=key, reverse=desc)
        return [r["id"] for r in recs]

    def read(self, model: str, ids: Any, fields: list[str] | None = None,
             load: str | None = "_classic_read") -> list[dict[str, Any]]:
        """Odoo's read(): many2one as [id, name] (bare id without load), empty values as False."""
        recs = self.existing(model, ids)
        names = list(fields) if fields else list(self.spec(model).fields)
        for name in names:
            self.field(model, name)
        return [{"id": rec["id"], **{n: self.read_value(model, rec, n, load) for n in names if n != "id"}}
                for rec in recs]

    def read_value(self, model: str, rec: dict[str, Any], name: str, load: str | None = "_classic_read") -> Any:
        """One field as read() returns it."""
        fld = self.field(model, name)
        v = self.value(model, rec, name)
        if fld.type == "many2one":
            target = self.browse(fld.comodel or "", v) if v else None
            if target is None:
                return False
            return [v, self.display_name(fld.comodel or "", target)] if load else v
        if fld.type in X2MANY:
            return list(v or [])
        if fld.type == "integer":
            return int(v or 0)
        if fld.type == "float":
            return float(v or 0.0)
        if fld.type == "boolean":
            return bool(v)
        if fld.type == "datetime" and isinstance(v, str):
            return v[:19]  # stored with microseconds (create_date, write_date), read in whole seconds
        return False if v is None or v is False else v

    def fields_get(self, model: str, allfields: list[str] | None = None,
                   attributes: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Field descriptions: type, string, required, readonly, relation, selection."""
        out = {}
        for name, fld in self.spec(model).fields.items():
            if allfields and name not in allfields:
                continue
            desc: dict[str, Any] = {"type": fld.type, "string": fld.string, "required": fld.required,
                                    "readonly": fld.readonly or fld.computed, "store": fld.stored,
                                    "searchable": True, "sortable": fld.stored and fld.type not in X2MANY}
            if fld.comodel:
                desc["relation"] = fld.comodel
            if fld.inverse:
                desc["relation_field"] = fld.inverse
            if fld.selection:
                desc["selection"] = [list(pair) for pair in fld.selection]
            out[name] = {k: v for k, v in desc.items() if not attributes or k in attributes}
        return out
