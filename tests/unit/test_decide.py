"""The decision table: every branch of the shipped default, custom tables, and the catch-all rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.automation.decide import DEFAULT_RULES, Decision, DecisionTable, Rule, decide

DEFAULT = DecisionTable()
EMPLOYMENT = ("active", "terminated", "unknown", "not_found")
ACCOUNT = ("active", "deactivated", "unknown", "not_found")


@pytest.mark.parametrize(
    ("employment", "account", "expected"),
    [
        ("active", "deactivated", Decision("reactivate", "active employee, LMS account deactivated", 0)),
        (
            "active",
            "active",
            Decision("send_reset", "active employee, LMS account active: password reset", 1),
        ),
        ("terminated", "active", Decision("escalate", "employee is not active in HR", 2)),
        ("terminated", "deactivated", Decision("escalate", "employee is not active in HR", 2)),
        ("terminated", "not_found", Decision("escalate", "employee is not active in HR", 2)),
        ("not_found", "active", Decision("escalate", "sender unknown to HR", 3)),
        ("not_found", "unknown", Decision("escalate", "sender unknown to HR", 3)),
        ("active", "unknown", Decision("escalate", "no rule applies", 4)),
        ("active", "not_found", Decision("escalate", "no rule applies", 4)),
        ("unknown", "active", Decision("escalate", "no rule applies", 4)),
        ("unknown", "deactivated", Decision("escalate", "no rule applies", 4)),
    ],
)
def test_default_table(employment: str, account: str, expected: Decision) -> None:
    assert decide(DEFAULT, employment, account) == expected


def test_default_table_acts_only_for_active_employees() -> None:
    """Only the two rows for an active employee act; every other combination goes to a human."""
    for employment in EMPLOYMENT:
        for account in ACCOUNT:
            action = decide(DEFAULT, employment, account).action
            acts = employment == "active" and account in ("active", "deactivated")
            assert (action != "escalate") == acts, (employment, account)


def test_default_rules_are_the_default() -> None:
    assert DEFAULT.rules == DEFAULT_RULES


def test_custom_table_first_match_wins() -> None:
    table = DecisionTable(
        rules=(
            Rule(employment="*", account="deactivated", action="escalate", reason="manual reactivation"),
            Rule(employment="active", account="*", action="send_reset", reason="reset for any active"),
            Rule(employment="*", account="*", action="escalate", reason="fallback"),
        )
    )
    assert decide(table, "active", "deactivated") == Decision("escalate", "manual reactivation", 0)
    assert decide(table, "active", "unknown") == Decision("send_reset", "reset for any active", 1)
    assert decide(table, "terminated", "active") == Decision("escalate", "fallback", 2)


def test_table_from_config_data() -> None:
    table = DecisionTable.model_validate(
        {"rules": [{"employment": "*", "account": "*", "action": "escalate", "reason": "always a human"}]}
    )
    assert decide(table, "active", "deactivated") == Decision("escalate", "always a human", 0)


@pytest.mark.parametrize(
    "rules",
    [
        (),
        (Rule(employment="active", account="active", action="send_reset", reason="reset"),),
        (
            Rule(employment="*", account="*", action="escalate", reason="catch-all first"),
            Rule(employment="active", account="active", action="send_reset", reason="never reached"),
        ),
        (Rule(employment="*", account="active", action="escalate", reason="half a catch-all"),),
    ],
)
def test_table_without_final_catch_all_is_rejected(rules: tuple[Rule, ...]) -> None:
    with pytest.raises(ValidationError, match="catch-all"):
        DecisionTable(rules=rules)


@pytest.mark.parametrize(
    "data",
    [
        {"employment": "retired", "account": "*", "action": "escalate", "reason": "x"},
        {"employment": "*", "account": "locked", "action": "escalate", "reason": "x"},
        {"employment": "*", "account": "*", "action": "delete", "reason": "x"},
        {"employment": "*", "account": "*", "action": "escalate", "reason": "x", "extra": 1},
        {"employment": "*", "account": "*", "action": "escalate"},
    ],
)
def test_rule_rejects_unknown_values_and_keys(data: dict) -> None:
    with pytest.raises(ValidationError):
        Rule.model_validate(data)


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT.rules = ()
    with pytest.raises(ValidationError):
        DEFAULT_RULES[0].action = "escalate"
