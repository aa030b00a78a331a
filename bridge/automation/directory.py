"""Blocking HTTP adapters to the HR directory and the LMS: answer shapes come from config, errors from the tree."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bridge.errors import (
    AccessDenied,
    BridgeError,
    ConfigurationError,
    RejectedByService,
    ServiceDown,
    TransientError,
)
from bridge.http_session import pooled_session
from bridge.logs import display_url

log = logging.getLogger(__name__)

_MISSING: Any = object()

EmployeeStatus = Literal["active", "terminated", "unknown"]
AccountStatus = Literal["active", "deactivated", "unknown"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _needs_email(value: str) -> str:
    """Every per-person path must name the person, or all calls would hit the same resource."""
    if "{email}" not in value:
        raise ValueError("must contain {email}")
    return value


class HrConfig(_Section):
    """Where the HR directory lives and how to read its answer about one employee.

    Field paths are dotted (``data.status``; digits index lists) and read from the answer's
    root, unless ``not_found_when_empty`` names where the employee record sits (for APIs that
    answer 200 with ``{"data": []}`` rather than 404): then that value decides "not found"
    (null, an empty list or an empty object), and the field paths are read from the record it
    holds: its one element for a list, the object itself otherwise. See ``HrDirectory.lookup``.
    """

    url: str = Field(min_length=1)
    lookup_path: str = "/employees/{email}"
    auth_header: str = "Authorization"
    auth_value: SecretStr = SecretStr("")  # e.g. "Bearer ${HR_TOKEN}"
    employment_field: str = "employment_status"  # dotted path, e.g. "data.status"
    active_values: tuple[str, ...] = ("active",)
    terminated_values: tuple[str, ...] = ("terminated", "inactive", "left")
    email_field: str = "email"  # the address on record: where a reset link may go
    name_field: str = "name"
    not_found_when_empty: str = ""  # dotted path of the record, e.g. "data"; "" = only 404 is "not found"
    timeout_seconds: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=16, ge=1, le=256)

    _check_path = field_validator("lookup_path")(_needs_email)


class LmsConfig(_Section):
    """Where the LMS lives, how to read an account, and the two actions the bridge may take on it."""

    url: str = Field(min_length=1)
    auth_header: str = "Authorization"
    auth_value: SecretStr = SecretStr("")
    lookup_path: str = "/users/{email}"
    status_field: str = "status"
    active_values: tuple[str, ...] = ("active",)
    deactivated_values: tuple[str, ...] = ("deactivated", "suspended", "inactive")
    email_field: str = "email"
    reactivate_path: str = "/users/{email}/reactivate"
    reset_path: str = "/users/{email}/password-reset"
    idempotency_header: str = "Idempotency-Key"
    reference_field: str = "reference"  # in an action's answer: the LMS's id for what it did
    replayed_field: str = "replayed"  # in an action's answer: true when the key had been seen before
    timeout_seconds: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=16, ge=1, le=256)

    _check_paths = field_validator("lookup_path", "reactivate_path", "reset_path")(_needs_email)


@dataclass(frozen=True)
class Employee:
    """One employee as the HR directory knows them; `email` is the address on record."""

    email: str
    name: str
    status: EmployeeStatus
    raw_status: str


@dataclass(frozen=True)
class LmsAccount:
    """One LMS account; `email` is the address on record, where the LMS sends reset links."""

    email: str
    status: AccountStatus
    raw_status: str


@dataclass(frozen=True)
class LmsActionResult:
    """What the LMS answered to an action; `replayed` means it had already done it under this key."""

    action: str
    reference: str
    replayed: bool


# --------------------------------------------------------------------------- helpers


def field_at(data: Any, path: str) -> Any:
    """The value at a dotted path (``data.items.0.status``; digits index lists), or _MISSING."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def classify(raw: str, active: tuple[str, ...], other: tuple[str, ...], other_label: str) -> str:
    """Label `raw` "active", `other_label` or "unknown", comparing case-insensitively with the configured lists."""
    folded = raw.strip().casefold()
    if folded in {v.strip().casefold() for v in active}:
        return "active"
    if folded in {v.strip().casefold() for v in other}:
        return other_label
    return "unknown"


def status_error(status: int, where: str, service: str) -> BridgeError:
    """Translate an HTTP status that is neither success nor a lookup's "not found"."""
    if status in (502, 503, 504):
        return ServiceDown(f"{where}: unavailable (HTTP {status})", service=service)
    if status >= 500 or status in (408, 425, 429):
        return TransientError(f"{where}: HTTP {status}", service=service)
    if status in (401, 403):
        return AccessDenied(f"{where}: credentials refused (HTTP {status})", service=service)
    if status in (405, 407):
        return ConfigurationError(f"{where}: HTTP {status}: check the configured url and paths", service=service)
    return RejectedByService(f"{where}: refused (HTTP {status})", service=service)


class _JsonHttp:
    """One pooled Session to one service: auth header, timeout, network errors translated."""

    def __init__(self, service: str, url: str, auth_header: str, auth_value: SecretStr, timeout: float,
                 pool_size: int) -> None:
        self.service = service
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._session = pooled_session(self._url, pool_size)
        self._session.headers["Accept"] = "application/json"
        if auth_value.get_secret_value():
            self._session.headers[auth_header] = auth_value.get_secret_value()

    def url_for(self, path: str, email: str) -> str:
        """`path` with {email} URL-quoted into it; "/" is quoted too, so an address cannot change the route."""
        return self._url + path.replace("{email}", quote(email, safe="@"))

    def request(self, method: str, url: str, where: str, headers: dict[str, str] | None = None) -> requests.Response:
        """Any HTTP answer comes back as it is; only "no answer at all" raises here."""
        started = time.monotonic()
        try:
            response = self._session.request(method, url, headers=headers, timeout=self._timeout)
        except requests.ConnectionError as exc:  # includes ConnectTimeout
            raise ServiceDown(f"{where}: cannot reach {display_url(url)}", service=self.service) from exc
        except requests.Timeout as exc:
            raise TransientError(f"{where}: no answer within {self._timeout:g}s", service=self.service) from exc
        except requests.RequestException as exc:
            raise TransientError(f"{where}: {type(exc).__name__}", service=self.service) from exc
        log.debug("%s %s: HTTP %s in %.3fs", self.service, where, response.status_code, time.monotonic() - started)
        return response

    def json_object(self, response: requests.Response, where: str) -> dict[str, Any]:
        """The body as a JSON object; a proxy page or garbage cannot be read as this person's record."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RejectedByService(f"{where}: {self.service.upper()} answered without a JSON object",
                                    service=self.service)
        return body

    def text_field(self, body: dict[str, Any], path: str, where: str, within: str = "") -> str:
        """A required scalar at `path`: a missing one means the configured shape does not match the answer.

        ``within`` is where ``body`` sits in the answer (a dotted path), only for the error text.
        """
        value = field_at(body, path)
        if value is _MISSING or value is None or isinstance(value, (bool, dict, list)) or value == "":
            shown = f"{within}.{path}" if within else path
            raise RejectedByService(f"{where}: {self.service.upper()} answered without {shown}", service=self.service)
        return str(value)

    def close(self) -> None:
        self._session.close()


# --------------------------------------------------------------------------- clients


class HrDirectory:
    """Looks employees up by email; thread-safe (one pooled Session shared by all callers)."""

    def __init__(self, cfg: HrConfig) -> None:
        self._cfg = cfg
        self._http = _JsonHttp("hr", cfg.url, cfg.auth_header, cfg.auth_value, cfg.timeout_seconds, cfg.pool_size)

    def lookup(self, email: str) -> Employee | None:
        """The employee, or None when HR has nobody under this address.

        Nobody means HTTP 404, or, with ``not_found_when_empty`` set, a 2xx answer whose value
        at that path is null, ``[]`` or ``{}``. Otherwise that value is the employee record,
        from which ``employment_field``, ``email_field`` and ``name_field`` are read: a list's
        single element, or the object itself (with ``data``: ``{"data": [{"status": …}]}`` is
        read with ``employment_field: status``). A missing value, a scalar, or a list of more
        than one record (which one would it be?) is refused like any answer of the wrong shape.
        """
        cfg, where = self._cfg, "employee lookup"
        response = self._http.request("GET", self._http.url_for(cfg.lookup_path, email), where)
        if response.status_code == 404:
            return None
        if not 200 <= response.status_code < 300:
            raise status_error(response.status_code, where, "hr")
        body = self._http.json_object(response, where)
        shown = ""  # where the fields were read, for error texts: "" is the answer's root
        if cfg.not_found_when_empty:
            record, shown = self._record(body, cfg.not_found_when_empty, where)
            if record is None:
                return None
            body = record
        raw_status = self._http.text_field(body, cfg.employment_field, where, shown)
        status = cast(EmployeeStatus, classify(raw_status, cfg.active_values, cfg.terminated_values, "terminated"))
        return Employee(
            email=self._http.text_field(body, cfg.email_field, where, shown),
            name=self._http.text_field(body, cfg.name_field, where, shown),
            status=status,
            raw_status=raw_status,
        )

    @staticmethod
    def _record(body: dict[str, Any], path: str, where: str) -> tuple[dict[str, Any] | None, str]:
        """The employee record at ``path`` and its dotted location, or (None, "") for "not found"."""
        value = field_at(body, path)
        if value is _MISSING:
            raise RejectedByService(f"{where}: HR answered without {path}", service="hr")
        if value is None or (isinstance(value, (list, dict)) and not value):
            return None, ""
        if isinstance(value, list) and len(value) == 1:
            value, path = value[0], f"{path}.0"
        elif isinstance(value, list):
            raise RejectedByService(f"{where}: HR answered {len(value)} records at {path} for one address",
                                    service="hr")
        if not isinstance(value, dict):
            raise RejectedByService(f"{where}: HR answered without a record at {path}", service="hr")
        return value, path

    def close(self) -> None:
        self._http.close()


class LmsClient:
    """Reads LMS accounts and reactivates them or sends reset links, idempotently; thread-safe."""

    def __init__(self, cfg: LmsConfig) -> None:
        self._cfg = cfg
        self._http = _JsonHttp("lms", cfg.url, cfg.auth_header, cfg.auth_value, cfg.timeout_seconds, cfg.pool_size)

    def account(self, email: str) -> LmsAccount | None:
        """The account, or None when the LMS has none under this address (404)."""
        cfg, where = self._cfg, "account lookup"
        response = self._http.request("GET", self._http.url_for(cfg.lookup_path, email), where)
        if response.status_code == 404:
            return None
        if not 200 <= response.status_code < 300:
            raise status_error(response.status_code, where, "lms")
        body = self._http.json_object(response, where)
        raw_status = self._http.text_field(body, cfg.status_field, where)
        status = cast(AccountStatus, classify(raw_status, cfg.active_values, cfg.deactivated_values, "deactivated"))
        return LmsAccount(
            email=self._http.text_field(body, cfg.email_field, where),
            status=status,
            raw_status=raw_status,
        )

    def reactivate(self, email: str, idempotency_key: str) -> LmsActionResult:
        """Reactivate a deactivated account; retrying with the same key never reactivates twice."""
        return self._act("reactivate", self._cfg.reactivate_path, email, idempotency_key)

    def send_reset(self, email: str, idempotency_key: str) -> LmsActionResult:
        """Have the LMS mail a reset link to the address on record; the same key never sends a second one."""
        return self._act("password-reset", self._cfg.reset_path, email, idempotency_key)

    def _act(self, action: str, path: str, email: str, key: str) -> LmsActionResult:
        """POST with the key; any 2xx means done, so a missing reference is tolerated rather than retried."""
        if not key:
            raise ValueError("an idempotency key is required: without one a retry could act twice")
        response = self._http.request("POST", self._http.url_for(path, email), action,
                                      headers={self._cfg.idempotency_header: key})
        if response.status_code == 404:
            raise RejectedByService(f"{action}: the LMS has no such account", service="lms")
        if not 200 <= response.status_code < 300:
            raise status_error(response.status_code, action, "lms")
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        reference = field_at(body, self._cfg.reference_field)
        if reference is _MISSING or reference is None:
            log.warning("lms %s: done (HTTP %s) but the answer has no %s", action, response.status_code,
                        self._cfg.reference_field)
            reference = ""
        return LmsActionResult(action, str(reference), field_at(body, self._cfg.replayed_field) is True)

    def close(self) -> None:
        self._http.close()
