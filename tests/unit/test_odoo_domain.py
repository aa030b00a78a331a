"""Domain evaluation rules of the Odoo sandbox, checked on a small fake source without any server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bridge.sandbox.odoo_domain import (OTHER_KEY, UNSET_KEY, candidates, compile_domain, eq_key, filter_records,
                                         mentions_field, normalize, text_key)


@dataclass(frozen=True)
class F:
    """A field as the evaluator sees it."""

    type: str
    comodel: str | None = None


SCHEMA: dict[str, dict[str, F]] = {
    "partner": {"id": F("integer"), "name": F("char"), "email": F("char"), "active": F("boolean"),
                "parent_id": F("many2one", "partner"), "display_name": F("char")},
    "stage": {"id": F("integer"), "name": F("char"), "fold": F("boolean"), "display_name": F("char")},
    "tag": {"id": F("integer"), "name": F("char"), "display_name": F("char")},
    "ticket": {"id": F("integer"), "name": F("char"), "priority": F("selection"), "hours": F("float"),
               "date": F("datetime"), "urgent": F("boolean"), "partner_id": F("many2one", "partner"),
               "stage_id": F("many2one", "stage"), "tag_ids": F("many2many", "tag"), "display_name": F("char")},
}


class FakeSource:
    """Records in plain dicts; display_name is the name."""

    def __init__(self, data: dict[str, dict[int, dict[str, Any]]]) -> None:
        self.data = data

    def field(self, model: str, name: str) -> F:
        try:
            return SCHEMA[model][name]
        except KeyError:
            raise ValueError(f"Invalid field {name!r} on model {model!r}") from None

    def value(self, model: str, record: dict[str, Any], name: str) -> Any:
        return record.get("name") if name == "display_name" else record.get(name, False)

    def browse(self, model: str, rid: int) -> dict[str, Any] | None:
        return self.data[model].get(rid)

    def records(self, model: str) -> list[dict[str, Any]]:
        return list(self.data[model].values())

    def parent_name(self, model: str) -> str | None:
        return "parent_id" if model == "partner" else None


def _table(*rows: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}


@pytest.fixture()
def src() -> FakeSource:
    return FakeSource({
        "partner": _table(
            {"id": 1, "name": "Acme", "email": "info@acme.test", "active": True, "parent_id": False},
            {"id": 2, "name": "Ann Smith", "email": "Ann@Example.com", "active": True, "parent_id": 1},
            {"id": 3, "name": "Bob", "email": False, "active": False, "parent_id": 2},
            {"id": 4, "name": "a_b", "email": "a_b@x.test", "active": True, "parent_id": False},
        ),
        "stage": _table({"id": 1, "name": "New", "fold": False}, {"id": 2, "name": "Solved", "fold": True}),
        "tag": _table({"id": 1, "name": "billing"}, {"id": 2, "name": "bug"}),
        "ticket": _table(
            {"id": 1, "name": "Printer on fire", "priority": "3", "hours": 1.5, "date": "2024-05-01 10:00:00",
             "urgent": True, "partner_id": 2, "stage_id": 1, "tag_ids": [1, 2]},
            {"id": 2, "name": "Invoice question", "priority": "0", "hours": 0.0, "date": "2024-04-30 23:59:59",
             "urgent": False, "partner_id": 1, "stage_id": 2, "tag_ids": [1]},
            {"id": 3, "name": False, "priority": False, "hours": False, "date": False,
             "urgent": None, "partner_id": False, "stage_id": False, "tag_ids": []},
        ),
    })


def ids(src: FakeSource, domain: list[Any], model: str = "ticket") -> list[int]:
    return [rec["id"] for rec in filter_records(src, model, domain)]


def test_empty_domain_matches_everything(src: FakeSource) -> None:
    assert ids(src, []) == [1, 2, 3]


def test_normalize_adds_implicit_and() -> None:
    assert normalize([("a", "=", 1), ("b", "=", 2)]) == ["&", ("a", "=", 1), ("b", "=", 2)]
    assert normalize(["|", ("a", "=", 1), ("b", "=", 2), ("c", "=", 3)]) == [
        "&", "|", ("a", "=", 1), ("b", "=", 2), ("c", "=", 3)]


def test_prefix_operators(src: FakeSource) -> None:
    assert ids(src, ["|", ("priority", "=", "3"), ("priority", "=", "0")]) == [1, 2]
    assert ids(src, ["!", ("priority", "=", "3")]) == [2, 3]
    assert ids(src, ["&", ("urgent", "=", True), ("hours", ">", 1)]) == [1]
    assert ids(src, [("hours", ">=", 0), ("priority", "in", ["0", "3"])]) == [1, 2]


def test_malformed_domains_are_refused(src: FakeSource) -> None:
    with pytest.raises(ValueError, match="syntactically"):
        normalize(["|", ("a", "=", 1)])
    with pytest.raises(ValueError, match="Invalid leaf"):
        compile_domain(src, "ticket", [("name", "~", "x")])
    with pytest.raises(ValueError, match="Invalid leaf"):
        normalize(["&&", ("a", "=", 1)])


def test_invalid_field_is_a_value_error_even_without_records(src: FakeSource) -> None:
    with pytest.raises(ValueError, match="Invalid field 'nope' on model 'ticket'"):
        compile_domain(src, "ticket", [("nope", "=", 1)])
    with pytest.raises(ValueError, match="Invalid field 'nope' on model 'partner'"):
        compile_domain(src, "ticket", [("partner_id.nope", "=", 1)])
    with pytest.raises(ValueError, match="Invalid field ticket.name"):
        compile_domain(src, "ticket", [("name.foo", "=", 1)])


def test_false_means_unset(src: FakeSource) -> None:
    assert ids(src, [("name", "=", False)]) == [3]
    assert ids(src, [("name", "!=", False)]) == [1, 2]
    assert ids(src, [("partner_id", "=", False)]) == [3]
    # A boolean False and an unset boolean both match "= False".
    assert ids(src, [("urgent", "=", False)]) == [2, 3]
    assert ids(src, [("urgent", "!=", True)]) == [2, 3]


def test_not_equal_also_matches_unset_values(src: FakeSource) -> None:
    assert ids(src, [("priority", "!=", "3")]) == [2, 3]
    assert ids(src, [("partner_id", "!=", 2)]) == [2, 3]


def test_equal_if_set(src: FakeSource) -> None:
    assert ids(src, [("priority", "=?", False)]) == [1, 2, 3]
    assert ids(src, [("priority", "=?", "0")]) == [2]


def test_comparisons_skip_unset_and_pad_dates(src: FakeSource) -> None:
    assert ids(src, [("hours", ">", 0)]) == [1]
    assert ids(src, [("hours", "<=", 1.5)]) == [1, 2]
    assert ids(src, [("date", ">=", "2024-05-01")]) == [1]
    assert ids(src, [("date", "<", "2024-05-01")]) == [2]
    assert ids(src, [("date", "<", False)]) == []


def test_like_operators(src: FakeSource) -> None:
    assert ids(src, [("name", "like", "fire")]) == [1]
    assert ids(src, [("name", "like", "FIRE")]) == []
    assert ids(src, [("name", "ilike", "FIRE")]) == [1]
    assert ids(src, [("name", "not ilike", "fire")]) == [2, 3]  # unset included, like SQL's OR IS NULL
    assert ids(src, [("name", "=like", "Printer%")]) == [1]
    assert ids(src, [("name", "=ilike", "printer on fire")]) == [1]
    assert ids(src, [("name", "=ilike", "printer")]) == []
    assert ids(src, [("name", "ilike", "")]) == [1, 2, 3]
    assert ids(src, [("name", "not like", "question")]) == [1, 3]


def test_like_wildcards_are_sql_ones(src: FakeSource) -> None:
    # "_" is a one-character wildcard, as in Odoo (which does not escape it).
    assert ids(src, [("email", "=ilike", "a_b@x.test")], "partner") == [4]
    assert ids(src, [("email", "=ilike", "a%@x.test")], "partner") == [4]
    assert ids(src, [("email", "=ilike", "ann@example.com")], "partner") == [2]


def test_in_and_not_in(src: FakeSource) -> None:
    assert ids(src, [("priority", "in", ["0", "1"])]) == [2]
    assert ids(src, [("priority", "in", ["3", False])]) == [1, 3]
    assert ids(src, [("priority", "not in", ["3"])]) == [2, 3]
    assert ids(src, [("priority", "not in", ["3", False])]) == [2]
    assert ids(src, [("id", "in", [1, 3])]) == [1, 3]
    assert ids(src, [("id", "in", 2)]) == [2]


def test_dotted_paths_through_many2one(src: FakeSource) -> None:
    assert ids(src, [("partner_id.email", "=ilike", "ann@example.com")]) == [1]
    assert ids(src, [("stage_id.fold", "=", False)]) == [1]  # no stage: nothing to match
    assert ids(src, [("stage_id.fold", "=", True)]) == [2]
    assert ids(src, [("partner_id.parent_id.name", "=", "Acme")]) == [1]


def test_many2one_against_a_name(src: FakeSource) -> None:
    assert ids(src, [("partner_id", "ilike", "ann")]) == [1]
    assert ids(src, [("partner_id", "=", "Acme")]) == [2]
    assert ids(src, [("partner_id", "not ilike", "ann")]) == [2, 3]


def test_x2many_matches_when_any_linked_record_does(src: FakeSource) -> None:
    assert ids(src, [("tag_ids", "in", [2])]) == [1]
    assert ids(src, [("tag_ids", "=", 1)]) == [1, 2]
    assert ids(src, [("tag_ids", "=", False)]) == [3]
    assert ids(src, [("tag_ids", "!=", False)]) == [1, 2]
    assert ids(src, [("tag_ids", "not in", [2])]) == [2, 3]
    assert ids(src, [("tag_ids.name", "=", "bug")]) == [1]
    assert ids(src, [("tag_ids", "ilike", "bill")]) == [1, 2]


def test_any_and_not_any(src: FakeSource) -> None:
    assert ids(src, [("tag_ids", "any", [("name", "=", "bug")])]) == [1]
    assert ids(src, [("tag_ids", "not any", [("name", "=", "bug")])]) == [2, 3]
    assert ids(src, [("partner_id", "any", [("email", "ilike", "acme")])]) == [2]


def test_child_of_and_parent_of(src: FakeSource) -> None:
    assert ids(src, [("id", "child_of", 1)], "partner") == [1, 2, 3]
    assert ids(src, [("id", "child_of", [2])], "partner") == [2, 3]
    assert ids(src, [("id", "parent_of", 3)], "partner") == [1, 2, 3]
    assert ids(src, [("partner_id", "child_of", 1)]) == [1, 2]
    # Without a parent field, child_of is plain membership.
    assert ids(src, [("stage_id", "child_of", [2])]) == [2]


def test_true_and_false_leaves(src: FakeSource) -> None:
    assert ids(src, [(1, "=", 1)]) == [1, 2, 3]
    assert ids(src, [(0, "=", 1)]) == []


def test_mentions_field() -> None:
    assert mentions_field(["|", ("active", "=", False), ("name", "=", "x")], "active")
    assert not mentions_field([("partner_id.active", "=", False)], "active")


# --- index candidates: which keys a search may restrict itself to ---

def plan(src: FakeSource, domain: list[Any], model: str = "partner") -> tuple[Any, list[tuple[str, str, list[Any]]]]:
    """candidates() with a lookup that records what it is asked and answers with fake ids."""
    asked: list[tuple[str, str, list[Any]]] = []

    def lookup(name: str, kind: str, keys: list[Any]) -> set[int]:
        asked.append((name, kind, keys))
        return {len(asked) * 10 + i for i in range(len(keys))}
    return candidates(src, model, domain, lookup), asked


def test_candidates_for_equality_and_in(src: FakeSource) -> None:
    assert plan(src, [("email", "=", "a@x")]) == ({10}, [("email", "eq", ["a@x"])])
    assert plan(src, [("parent_id", "=", False)])[1] == [("parent_id", "eq", [UNSET_KEY])]
    assert plan(src, [("parent_id", "in", [2, False])])[1] == [("parent_id", "eq", [2, UNSET_KEY])]
    assert plan(src, [("id", "in", [1, 3])])[1] == [("id", "eq", [1.0, 3.0])]  # integers compare as floats
    assert plan(src, [("name", "=?", "x")])[1] == [("name", "eq", ["x"])]
    assert plan(src, [(0, "=", 1)]) == (frozenset(), [])


def test_candidates_for_literal_ilike_only(src: FakeSource) -> None:
    assert plan(src, [("email", "=ilike", "Ann@Example.com")])[1] == [("email", "text", ["ann@example.com"])]
    assert plan(src, [("email", "=ilike", "a\\_b@x.test")])[1] == [("email", "text", ["a_b@x.test"])]
    for pattern in ("a_b@x.test", "a%@x.test", "ſ@x.test"):  # wildcards; non-ASCII folds unlike lower()
        assert plan(src, [("email", "=ilike", pattern)]) == (None, [])
    assert plan(src, [("email", "ilike", "ann")]) == (None, [])


def test_candidates_are_none_where_no_index_can_answer(src: FakeSource) -> None:
    for domain in ([], [("active", "=", True)], [("name", "=?", False)], [("name", "!=", "x")],
                   ["!", ("name", "=", "x")], [("parent_id.name", "=", "Acme")], [("parent_id", "=", "Acme")]):
        assert plan(src, domain) == (None, []), domain
    assert plan(src, ["|", ("name", "=", "x"), ("name", "ilike", "y")])[0] is None  # one side unindexed
    assert plan(src, [("tag_ids", "in", [1])], "ticket") == (None, [])


def test_candidates_intersect_and_unite(src: FakeSource) -> None:
    both, asked = plan(src, [("active", "=", True), ("name", "=", "a"), ("email", "in", ["x", "y"])])
    assert asked == [("name", "eq", ["a"]), ("email", "eq", ["x", "y"])] and both == set()  # {10} & {20, 21}
    either, _ = plan(src, ["|", ("name", "=", "a"), ("email", "=", "b")])
    assert either == {10, 20}
    assert plan(src, ["!", ("name", "=", "a"), ("email", "=", "b")]) == ({10}, [("email", "eq", ["b"])])


def test_index_keys_agree_with_the_predicate() -> None:
    assert eq_key(False, "char") is UNSET_KEY and eq_key("", "char") is UNSET_KEY and eq_key(0, "integer") == 0.0
    assert eq_key([1], "char") is OTHER_KEY
    assert text_key("Ann@Example.COM\n", "char") == "ann@example.com"
    assert text_key("ſ@x.test", "char") is OTHER_KEY and text_key(5, "integer") is OTHER_KEY
