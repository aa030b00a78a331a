"""A stand-in LMS over HTTP/JSON whose reactivations and reset links honour Idempotency-Key, for tests and the demo.

    with LmsSandbox() as lms:
        requests.post(lms.url + "/users/alice@customer.example/reactivate",
                      headers={"Authorization": "Bearer lms-token", "Idempotency-Key": "k1"})

Same controls as the HR stand-in (latency, set_down, fail_next, calls), plus ``actions``: what it
really did, so a test can assert "never two reset links". A reset sends no email; it records the
address on record the link would have gone to.

Run alone: ``python -m bridge.sandbox.lms --port 8072`` prints ``ready http://…``.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

from bridge.sandbox.hr import JsonStandIn, serve

DEACTIVATED = frozenset({"deactivated", "suspended", "inactive"})
ACTIONS = ("reactivate", "password-reset")


class LmsSandbox(JsonStandIn):
    """GET /users/{email} → {email, status, last_login}; POST /users/{email}/reactivate and /password-reset.

    A POST needs an Idempotency-Key (400 without). A key seen before replays its first success
    (200, same reference, ``"replayed": true``) and does nothing; reused for another action or
    account it is refused with 422. Refusals (404, 409) are not remembered, so a later retry is judged
    afresh. Reactivating needs a deactivated account and a reset an active one (409 otherwise).
    """

    seed_key = "accounts"

    def __init__(self, accounts: list[dict[str, Any]] | None = None, *, token: str = "lms-token",
                 latency: float = 0.0) -> None:
        super().__init__(accounts, token=token, latency=latency)
        self._done: dict[str, tuple[tuple[str, str], dict[str, Any]]] = {}  # key → (what, first answer)
        self._actions: list[dict[str, Any]] = []
        self._references = itertools.count(1)
        self._lose = 0

    def set_account(self, email: str, /, **fields: Any) -> None:
        """Add or change an account (status, last_login, aliases, or any other JSON value)."""
        self._put(email, fields)

    @property
    def actions(self) -> list[dict[str, Any]]:
        """Actions really performed, as {action, email (as asked), key, reference, at} plus "to" for resets."""
        with self._lock:
            return [dict(action) for action in self._actions]

    def lose_next_answer(self, count: int = 1) -> None:
        """The next `count` actions are performed, then answered 502: the answer was lost on the way back."""
        with self._lock:
            self._lose += count

    def route(self, method: str, parts: list[str], headers: dict[str, str]) -> tuple[int, Any]:
        if len(parts) not in (2, 3) or parts[0] != "users" or (len(parts) == 3 and parts[2] not in ACTIONS):
            return 404, {"error": "not found"}
        if method != ("GET" if len(parts) == 2 else "POST"):
            return 405, {"error": "method not allowed"}
        if len(parts) == 2:
            account = self._public(parts[1])
            return (200, account) if account is not None else (404, {"error": "no such user"})
        return self._act(parts[2], parts[1], headers.get("idempotency-key", ""))

    def _act(self, action: str, email: str, key: str) -> tuple[int, Any]:
        """Perform `action` once per key, all under the lock so concurrent retries cannot both act."""
        if not key:
            return 400, {"error": "Idempotency-Key header required"}
        with self._lock:
            account = self._find(email)
            what = (action, account["email"].casefold() if account is not None else email.casefold())
            if key in self._done:
                first_what, first_answer = self._done[key]
                if first_what != what:
                    return 422, {"error": "Idempotency-Key already used for a different request"}
                return 200, {**first_answer, "replayed": True}
            if account is None:
                return 404, {"error": "no such user"}
            status = str(account.get("status", ""))
            if action == "reactivate" and status.casefold() not in DEACTIVATED:
                return 409, {"error": f"account is {status}, not deactivated"}
            if action == "password-reset" and status.casefold() != "active":
                return 409, {"error": f"account is {status}: reactivate it first"}
            reference = f"lms-{next(self._references):06d}"
            performed: dict[str, Any] = {"action": action, "email": email, "key": key, "reference": reference,
                                         "at": time.time()}
            if action == "reactivate":
                account["status"] = "active"
            else:
                performed["to"] = account["email"]
            self._actions.append(performed)
            answer = {"reference": reference, "replayed": False}
            self._done[key] = (what, answer)
            lost = self._lose > 0
            if lost:
                self._lose -= 1
        return (502, {"error": "bad gateway"}) if lost else (200, answer)


def main(argv: list[str] | None = None) -> int:
    return serve(LmsSandbox, argv, "python -m bridge.sandbox.lms")


if __name__ == "__main__":
    sys.exit(main())
