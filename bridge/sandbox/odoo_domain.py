"""Evaluates Odoo search domains against in-memory records, following the ORM's expression rules.

Pure functions: the records and field types come from a ``Source`` (the sandbox's ORM, or a small
fake in tests), so the rules can be checked without a server. The SQL subtleties that matter to
clients are mirrored: ``('f', '=', False)`` means unset, ``!=`` / ``not in`` / ``not like`` also
match unset values, ``like`` wraps the pattern in ``%…%``, dotted paths and x2many fields match
when *any* related record matches.

``candidates`` lets a source with equality indexes narrow a search before the exact predicate
runs: it names, for the leaves an index can answer, the keys (``eq_key`` / ``text_key`` of the
stored values) whose records include every match; the predicate then decides on those only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from typing import Any, Protocol

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

TERM_OPERATORS = frozenset({
    "=", "!=", ">", ">=", "<", "<=", "=?", "like", "ilike", "not like", "not ilike", "=like", "=ilike",
    "in", "not in", "child_of", "parent_of", "any", "not any",
})
RELATIONAL = frozenset({"many2one", "one2many", "many2many"})
X2MANY = frozenset({"one2many", "many2many"})
_POSITIVE_OF = {"!=": "=", "not like": "like", "not ilike": "ilike", "not in": "in"}
TRUE_LEAF = (1, "=", 1)
FALSE_LEAF = (0, "=", 1)


class FieldLike(Protocol):
    """What the evaluator needs to know about a field."""

    type: str
    comodel: str | None


class Source(Protocol):
    """Read access to the models and records a domain is evaluated against."""

    def field(self, model: str, name: str) -> FieldLike:
        """The field, or ValueError("Invalid field ...") when the model has none by that name."""

    def value(self, model: str, record: Record, name: str) -> Any:
        """The raw value: scalar, id (many2one) or list of ids (x2many); False/None when unset."""

    def browse(self, model: str, rid: int) -> Record | None:
        """The record with that id, or None."""

    def records(self, model: str) -> Iterable[Record]:
        """Every record of the model, archived ones included."""

    def parent_name(self, model: str) -> str | None:
        """The many2one field that makes the model a hierarchy (for child_of/parent_of), if any."""

    # Optional: ``value_getter(model, name)`` returning a one-argument function equivalent to
    # ``lambda rec: value(model, rec, name)``, so compiled leaves skip the per-record field lookup.


def is_leaf(token: Any) -> bool:
    """A term ``(path, operator, value)``, as opposed to a prefix operator."""
    return isinstance(token, (list, tuple)) and len(token) == 3 and not isinstance(token, str)


def normalize(domain: Sequence[Any] | None) -> list[Any]:
    """The domain in explicit prefix form, with the implicit '&' between top-level terms added."""
    if not domain:
        return [TRUE_LEAF]
    if not isinstance(domain, (list, tuple)):
        raise ValueError(f"Invalid domain: {domain!r}")
    result: list[Any] = []
    expected = 1
    for token in domain:
        if expected == 0:
            result[0:0] = ["&"]
            expected = 1
        if isinstance(token, str) and token in ("&", "|"):
            expected += 1
        elif isinstance(token, str) and token == "!":
            pass
        elif is_leaf(token):
            expected -= 1
        else:
            raise ValueError(f"Invalid leaf {token!r}")
        result.append(token)
    if expected != 0:
        raise ValueError(f"Domain {list(domain)!r} is syntactically not correct.")
    return result


def compile_domain(source: Source, model: str, domain: Sequence[Any] | None) -> Predicate:
    """A predicate over records of ``model``; field names are checked now, even with no records."""
    tokens = normalize(domain)
    predicate, end = _compile_at(source, model, tokens, 0)
    assert end == len(tokens)
    return predicate


def filter_records(source: Source, model: str, domain: Sequence[Any] | None,
                   records: Iterable[Record] | None = None) -> list[Record]:
    """The records (default: all of the model's) that match the domain, in input order."""
    predicate = compile_domain(source, model, domain)
    pool = source.records(model) if records is None else records
    return [rec for rec in pool if predicate(rec)]


def mentions_field(domain: Sequence[Any] | None, name: str) -> bool:
    """Whether some leaf's path is exactly ``name`` (Odoo's test for skipping the active filter)."""
    return any(is_leaf(tok) and tok[0] == name for tok in (domain or []))


def _compile_at(source: Source, model: str, tokens: list[Any], pos: int) -> tuple[Predicate, int]:
    token = tokens[pos]
    if isinstance(token, str) and token in ("&", "|"):
        left, pos = _compile_at(source, model, tokens, pos + 1)
        right, pos = _compile_at(source, model, tokens, pos)
        if token == "&":
            return (lambda rec: left(rec) and right(rec)), pos
        return (lambda rec: left(rec) or right(rec)), pos
    if isinstance(token, str) and token == "!":
        inner, pos = _compile_at(source, model, tokens, pos + 1)
        return (lambda rec: not inner(rec)), pos
    return _compile_leaf(source, model, token), pos + 1


def _compile_leaf(source: Source, model: str, leaf: Sequence[Any]) -> Predicate:
    path, operator, value = leaf
    if tuple(leaf) == TRUE_LEAF:
        return lambda rec: True
    if tuple(leaf) == FALSE_LEAF:
        return lambda rec: False
    if not isinstance(path, str) or not isinstance(operator, str) or operator.lower() not in TERM_OPERATORS:
        raise ValueError(f"Invalid leaf {list(leaf)!r}")
    operator = operator.lower()
    head, _, rest = path.partition(".")
    field = source.field(model, head)
    if rest:
        if field.type not in RELATIONAL:
            raise ValueError(f"Invalid field {model}.{head} in leaf {list(leaf)!r}")
        return _any(source, model, head, field, compile_domain(source, field.comodel or "", [(rest, operator, value)]))
    if operator in ("any", "not any"):
        if field.type not in RELATIONAL:
            raise ValueError(f"Invalid field {model}.{head} in leaf {list(leaf)!r}: '{operator}' needs a relation")
        sub = _any(source, model, head, field, compile_domain(source, field.comodel or "", value))
        return sub if operator == "any" else (lambda rec: not sub(rec))
    if operator in ("child_of", "parent_of"):
        return _hierarchy(source, model, head, field, operator, value)
    if field.type in RELATIONAL and _is_name_value(value) and operator in _POSITIVE_OF.keys() | {
            "=", "like", "ilike", "=like", "=ilike", "in"}:
        # A string against a relation compares with the related records' display names.
        positive = _POSITIVE_OF.get(operator, operator)
        sub = _any(source, model, head, field,
                   compile_domain(source, field.comodel or "", [("display_name", positive, value)]))
        return sub if positive == operator else (lambda rec: not sub(rec))
    if field.type in X2MANY:
        return _x2many_leaf(source, model, head, operator, value)
    check = scalar_test(operator, value, field.type)
    get = _getter(source, model, head)
    return lambda rec: check(get(rec))


def _getter(source: Source, model: str, name: str) -> Callable[[Record], Any]:
    fast = getattr(source, "value_getter", None)
    if fast is not None:
        return fast(model, name)  # type: ignore[no-any-return]
    return lambda rec: source.value(model, rec, name)


def _is_name_value(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value)


def _related(source: Source, model: str, rec: Record, name: str, field: FieldLike) -> list[Record]:
    raw = source.value(model, rec, name)
    ids = raw if field.type in X2MANY else ([raw] if raw else [])
    found = (source.browse(field.comodel or "", rid) for rid in ids or [])
    return [r for r in found if r is not None]


def _any(source: Source, model: str, name: str, field: FieldLike, sub: Predicate) -> Predicate:
    return lambda rec: any(sub(r) for r in _related(source, model, rec, name, field))


def _hierarchy(source: Source, model: str, name: str, field: FieldLike, operator: str, value: Any) -> Predicate:
    target = model if name == "id" else field.comodel
    if target is None:
        raise ValueError(f"Invalid field {model}.{name}: '{operator}' needs a relation or 'id'")
    roots = set(_as_list(value))
    parent = source.parent_name(target)
    closure = set(roots)
    if parent:
        parents = {rec["id"]: source.value(target, rec, parent) for rec in source.records(target)}
        if operator == "child_of":
            changed = True
            while changed:
                before = len(closure)
                closure |= {rid for rid, pid in parents.items() if pid and pid in closure}
                changed = len(closure) != before
        else:
            frontier = list(roots)
            while frontier:
                pid = parents.get(frontier.pop())
                if pid and pid not in closure:
                    closure.add(pid)
                    frontier.append(pid)
    if name == "id":
        return lambda rec: rec["id"] in closure
    if field.type in X2MANY:
        return lambda rec: any(i in closure for i in source.value(model, rec, name) or [])
    return lambda rec: source.value(model, rec, name) in closure


def _x2many_leaf(source: Source, model: str, name: str, operator: str, value: Any) -> Predicate:
    """x2many against ids: positive operators match when any linked id matches, negative when none."""
    if operator in ("=", "!=") and value is False:
        want_empty = operator == "="
        return lambda rec: (not source.value(model, rec, name)) == want_empty
    if operator in ("in", "not in", "=", "!="):
        wanted = _as_list(value)
        ids = {v for v in wanted if v is not False}
        empty_matches = False in wanted
        positive = operator in ("in", "=")

        def member(rec: Record) -> bool:
            linked = source.value(model, rec, name) or []
            hit = any(i in ids for i in linked) or (empty_matches and not linked)
            return hit if positive else not hit
        return member
    check = scalar_test(operator, value, "integer")
    return lambda rec: any(check(i) for i in source.value(model, rec, name) or [])


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


def is_unset(value: Any, ftype: str = "char") -> bool:
    """SQL NULL in Odoo's eyes; a boolean False is a value but still matches ``= False``."""
    if value is None or value is False:
        return True
    return ftype in ("char", "text", "html", "selection") and value == ""


def like_regex(pattern: str, operator: str) -> re.Pattern[str]:
    """SQL LIKE as a regex: ``%`` is any run, ``_`` one character, ``\\`` escapes the next one
    (PostgreSQL's default LIKE escape); ``like``/``ilike`` add ``%…%``."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            parts.append(re.escape(next(chars, "\\")))
        else:
            parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    body = "".join(parts)
    if operator in ("like", "ilike", "not like", "not ilike"):
        body = f".*{body}.*"
    flags = re.DOTALL | (re.IGNORECASE if "ilike" in operator else 0)
    return re.compile(f"^{body}$", flags)


def scalar_test(operator: str, value: Any, ftype: str) -> Callable[[Any], bool]:
    """The test one stored scalar (or many2one id) must pass for ``(field, operator, value)``."""
    if operator == "=?":
        if value is None or value is False:
            return lambda v: True
        operator = "="
    if operator in ("=", "!="):
        if value is False or value is None:
            want_unset = operator == "="
            return lambda v: is_unset(v, ftype) == want_unset
        target = _coerce(value, ftype)
        if operator == "=":
            return lambda v: not is_unset(v, ftype) and _coerce(v, ftype) == target or (
                ftype == "boolean" and target is False and not v)
        return lambda v: is_unset(v, ftype) or _coerce(v, ftype) != target
    if operator in ("in", "not in"):
        wanted = _as_list(value)
        unset_in = False in wanted or None in wanted
        targets = {_coerce(v, ftype) for v in wanted if v is not False and v is not None}
        if operator == "in":
            return lambda v: is_unset(v, ftype) and (unset_in or (ftype == "boolean" and False in targets)) or (
                not is_unset(v, ftype) and _coerce(v, ftype) in targets)
        if unset_in:
            return lambda v: not is_unset(v, ftype) and _coerce(v, ftype) not in targets
        return lambda v: is_unset(v, ftype) or _coerce(v, ftype) not in targets
    if operator in (">", ">=", "<", "<="):
        if value is False or value is None:
            return lambda v: False
        target = _coerce(value, ftype)
        compare = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                   "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}[operator]

        def ordered(v: Any) -> bool:
            if is_unset(v, ftype) and ftype != "boolean":
                return False
            try:
                return bool(compare(_coerce(v, ftype), target))
            except TypeError:
                return False
        return ordered
    # like family
    pattern = "" if value is False or value is None else str(value)
    regex = like_regex(pattern, operator)
    negative = operator.startswith("not ")
    wildcard = operator in ("like", "ilike", "not like", "not ilike")

    def like(v: Any) -> bool:
        if is_unset(v, ftype):
            # Odoo adds "OR col IS NULL" for an empty wildcard pattern and for negative operators.
            return (wildcard and not pattern and not negative) or (negative and bool(pattern))
        hit = bool(regex.match(str(v)))
        return not hit if negative else hit
    return like


def _coerce(value: Any, ftype: str) -> Any:
    """Puts a value in the field's comparison domain (numbers as float, datetimes padded)."""
    if ftype in ("integer", "float", "monetary") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if ftype == "datetime" and isinstance(value, str) and len(value) == 10:
        return value + " 00:00:00"
    if ftype == "boolean":
        return bool(value)
    return value


# --- index support: which stored keys can hold a match ---

class _Key:
    """A sentinel index key no stored value can equal."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


UNSET_KEY: Any = _Key("UNSET_KEY")  # the key of unset values (is_unset)
OTHER_KEY: Any = _Key("OTHER_KEY")  # values the index cannot place: always candidates
IndexLookup = Callable[[str, str, list[Any]], "Set[int] | None"]
_NAME_OPERATORS = frozenset(_POSITIVE_OF) | {"=", "like", "ilike", "=like", "=ilike", "in"}


def eq_key(value: Any, ftype: str) -> Any:
    """The ``"eq"`` index key of a stored value: ``(f, '=', v)`` and ``(f, 'in', [...])`` on a stored
    scalar or many2one match exactly the records whose key equals a key ``candidates`` asks for."""
    if is_unset(value, ftype):
        return UNSET_KEY
    key = _coerce(value, ftype)
    try:
        hash(key)
    except TypeError:
        return OTHER_KEY
    return key


def text_key(value: Any, ftype: str) -> Any:
    """The ``"text"`` index key (for ``=like``/``=ilike`` without wildcards): ASCII text lower-cased,
    trailing newlines dropped (the regex's ``$`` also matches before a final newline). Other text
    goes to OTHER_KEY, since re.IGNORECASE folds some non-ASCII letters onto ASCII ones."""
    if is_unset(value, ftype):
        return UNSET_KEY
    if isinstance(value, str) and value.isascii():
        return value.rstrip("\n").lower()
    return OTHER_KEY


def candidates(source: Source, model: str, domain: Sequence[Any] | None, lookup: IndexLookup) -> Set[int] | None:
    """Ids that include every record matching the domain, from the source's indexes; None when no
    index narrows it (scan everything). ``lookup(field, kind, keys)`` gives the ids of records whose
    ``kind`` key ("eq" or "text") is one of ``keys`` or OTHER_KEY, or None when it has no such index.
    Call it after compile_domain, which validates the domain; the result must not be modified."""
    tokens = normalize(domain)
    found, _ = _candidates_at(source, model, tokens, 0, lookup)
    return found


def _candidates_at(source: Source, model: str, tokens: list[Any], pos: int,
                   lookup: IndexLookup) -> tuple[Set[int] | None, int]:
    token = tokens[pos]
    if isinstance(token, str) and token in ("&", "|"):
        left, pos = _candidates_at(source, model, tokens, pos + 1, lookup)
        right, pos = _candidates_at(source, model, tokens, pos, lookup)
        if token == "&":
            if left is None or right is None:
                return (right if left is None else left), pos
            return left & right, pos
        if left is None or right is None:
            return None, pos
        return left | right, pos
    if isinstance(token, str) and token == "!":
        return None, _skip(tokens, pos + 1)
    return _leaf_candidates(source, model, token, lookup), pos + 1


def _skip(tokens: list[Any], pos: int) -> int:
    """The position after the subtree starting at ``pos``."""
    needed = 1
    while needed:
        token = tokens[pos]
        pos += 1
        if isinstance(token, str) and token in ("&", "|"):
            needed += 1
        elif not (isinstance(token, str) and token == "!"):
            needed -= 1
    return pos


def _like_literal(pattern: str) -> str | None:
    """The text a LIKE pattern stands for when it has no wildcard (see like_regex), else None."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(next(chars, "\\"))
        elif ch in "%_":
            return None
        else:
            out.append(ch)
    return "".join(out)


def _leaf_candidates(source: Source, model: str, leaf: Sequence[Any], lookup: IndexLookup) -> Set[int] | None:
    """Mirrors _compile_leaf's dispatch: only plain scalar/many2one equality, ``in`` and literal ``=like``."""
    path, operator, value = leaf
    if tuple(leaf) == TRUE_LEAF:
        return None
    if tuple(leaf) == FALSE_LEAF:
        return frozenset()
    if not isinstance(path, str) or not isinstance(operator, str) or "." in path:
        return None
    operator = operator.lower()
    ftype = source.field(model, path).type
    if ftype in X2MANY or ftype == "boolean":
        return None
    if ftype in RELATIONAL and _is_name_value(value) and operator in _NAME_OPERATORS:
        return None  # compared with display names
    if operator == "=?":
        if value is None or value is False:
            return None
        operator = "="
    kind = "eq"
    if operator == "=":
        keys = [UNSET_KEY] if value is False or value is None else [_coerce(value, ftype)]
    elif operator == "in":
        wanted = _as_list(value)
        keys = [_coerce(v, ftype) for v in wanted if v is not False and v is not None]
        if False in wanted or None in wanted:
            keys.append(UNSET_KEY)
    elif operator in ("=like", "=ilike"):
        literal = _like_literal("" if value is False or value is None else str(value))
        if literal is None or not literal.isascii():
            return None
        kind, keys = "text", [literal.rstrip("\n").lower()]
    else:
        return None
    try:
        for key in keys:
            hash(key)
    except TypeError:
        return None
    return lookup(path, kind, keys)
