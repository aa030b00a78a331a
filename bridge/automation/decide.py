"""The decision table: (HR employment, LMS account) state → reactivate, send a reset, or escalate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

Action = Literal["reactivate", "send_reset", "escalate"]


class Rule(BaseModel):
    """One row of the table; ``"*"`` matches any state, ``reason`` goes on the ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    employment: Literal["active", "terminated", "unknown", "not_found", "*"]
    account: Literal["active", "deactivated", "unknown", "not_found", "*"]
    action: Action
    reason: str

    def matches(self, employment: str, account: str) -> bool:
        return self.employment in ("*", employment) and self.account in ("*", account)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        employment="active",
        account="deactivated",
        action="reactivate",
        reason="active employee, LMS account deactivated",
    ),
    Rule(
        employment="active",
        account="active",
        action="send_reset",
        reason="active employee, LMS account active: password reset",
    ),
    Rule(employment="terminated", account="*", action="escalate", reason="employee is not active in HR"),
    Rule(employment="not_found", account="*", action="escalate", reason="sender unknown to HR"),
    Rule(employment="*", account="*", action="escalate", reason="no rule applies"),
)


class DecisionTable(BaseModel):
    """Rules in order, first match wins; kept as data so config.yaml can override it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = DEFAULT_RULES

    @field_validator("rules")
    @classmethod
    def _ends_with_catch_all(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """A final (*, *) rule makes every case decide, so no state combination falls through."""
        if not rules or (rules[-1].employment, rules[-1].account) != ("*", "*"):
            raise ValueError("the last rule must be the catch-all (employment '*', account '*')")
        return rules


@dataclass(frozen=True)
class Decision:
    """The chosen action, its reason, and which rule (0-based) chose it, for the audit note."""

    action: Action
    reason: str
    rule_index: int


def decide(table: DecisionTable, employment: str, account: str) -> Decision:
    """First matching rule of the table; the catch-all guarantees one matches."""
    for index, rule in enumerate(table.rules):
        if rule.matches(employment, account):
            return Decision(rule.action, rule.reason, index)
    raise AssertionError("unreachable: DecisionTable guarantees a catch-all rule")
