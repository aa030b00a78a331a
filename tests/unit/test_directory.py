"""The HR and LMS adapters against their stand-ins on loopback: lookups, status mapping, errors, idempotency."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pydantic
import pytest
import requests

from bridge.automation.directory import (
    Employee,
    HrConfig,
    HrDirectory,
    LmsAccount,
    LmsActionResult,
    LmsClient,
    LmsConfig,
)
from bridge.errors import AccessDenied, ConfigurationError, RejectedByService, ServiceDown, TransientError
from bridge.sandbox.hr import HrSandbox
from bridge.sandbox.lms import LmsSandbox


@pytest.fixture()
def hr() -> Iterator[HrSandbox]:
    with HrSandbox() as sandbox:
        yield sandbox


@pytest.fixture()
def lms() -> Iterator[LmsSandbox]:
    with LmsSandbox() as sandbox:
        yield sandbox


def hr_config(sandbox: HrSandbox, **overrides: object) -> HrConfig:
    return HrConfig.model_validate({"url": sandbox.url, "auth_value": "Bearer hr-token", **overrides})


def lms_config(sandbox: LmsSandbox, **overrides: object) -> LmsConfig:
    return LmsConfig.model_validate({"url": sandbox.url, "auth_value": "Bearer lms-token", **overrides})


@pytest.fixture()
def directory(hr: HrSandbox) -> Iterator[HrDirectory]:
    client = HrDirectory(hr_config(hr))
    yield client
    client.close()


@pytest.fixture()
def client(lms: LmsSandbox) -> Iterator[LmsClient]:
    lms_client = LmsClient(lms_config(lms))
    yield lms_client
    lms_client.close()


# --------------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("alice@customer.example", Employee("alice@customer.example", "Alice Martin", "active", "active")),
        ("ha.tran@customer.example", Employee("ha.tran@customer.example", "Trần Thị Hà", "active", "Active")),
        ("minh.nguyen@customer.example",
         Employee("minh.nguyen@customer.example", "Nguyễn Văn Minh", "active", "active")),
        ("bob@customer.example", Employee("bob@customer.example", "Bob Keller", "terminated", "terminated")),
        ("dave@customer.example", Employee("dave@customer.example", "Dave Okafor", "terminated", "left")),
        ("erik@customer.example", Employee("erik@customer.example", "Erik Olsen", "unknown", "on_leave")),
        ("carol@customer.example", None),  # in the LMS, unknown to HR
        ("nobody@customer.example", None),
    ],
)
def test_hr_lookup_maps_each_seeded_kind(directory: HrDirectory, asked: str, expected: Employee | None) -> None:
    assert directory.lookup(asked) == expected


def test_hr_lookup_by_alias_answers_the_address_on_record(directory: HrDirectory) -> None:
    employee = directory.lookup("LAN@Customer.Example")
    assert employee == Employee("lan.le@customer.example", "Lê Thị Lan", "active", "active")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("alice@customer.example", LmsAccount("alice@customer.example", "deactivated", "deactivated")),
        ("ha.tran@customer.example", LmsAccount("ha.tran@customer.example", "active", "active")),
        ("bob@customer.example", LmsAccount("bob@customer.example", "active", "active")),
        ("dave@customer.example", LmsAccount("dave@customer.example", "deactivated", "suspended")),
        ("erik@customer.example", LmsAccount("erik@customer.example", "unknown", "pending")),
        ("lan@customer.example", LmsAccount("lan.le@customer.example", "active", "active")),
        ("minh.nguyen@customer.example", None),  # active employee without an account
    ],
)
def test_lms_account_maps_each_seeded_kind(client: LmsClient, asked: str, expected: LmsAccount | None) -> None:
    assert client.account(asked) == expected


def test_value_lists_come_from_config(hr: HrSandbox) -> None:
    strict = HrDirectory(hr_config(hr, active_values=["on_leave"], terminated_values=["active"]))
    assert strict.lookup("erik@customer.example").status == "active"  # type: ignore[union-attr]
    assert strict.lookup("alice@customer.example").status == "terminated"  # type: ignore[union-attr]
    assert strict.lookup("bob@customer.example").status == "unknown"  # type: ignore[union-attr]


def test_dotted_paths_read_a_nested_answer(hr: HrSandbox) -> None:
    hr.set_employee(
        "quynh.vo@customer.example",
        data={"person": {"display": "Võ Ngọc Quỳnh", "emails": ["q.vo@customer.example", "quynh@home.example"]},
              "employment": {"state": "EMPLOYED"}},
    )
    nested = HrDirectory(hr_config(
        hr, employment_field="data.employment.state", email_field="data.person.emails.0",
        name_field="data.person.display", active_values=["employed"], terminated_values=["ended"],
    ))
    assert nested.lookup("quynh.vo@customer.example") == Employee(
        "q.vo@customer.example", "Võ Ngọc Quỳnh", "active", "EMPLOYED"
    )
    with pytest.raises(RejectedByService, match="HR answered without employment_status"):
        HrDirectory(hr_config(hr)).lookup("quynh.vo@customer.example")


@pytest.fixture()
def listing_hr() -> Iterator[HrSandbox]:
    """An HR stand-in that never answers 404: {"data": [employee]} or {"data": []}."""
    with HrSandbox(list_envelope="data") as sandbox:
        yield sandbox


def test_an_empty_list_means_not_found_when_configured(listing_hr: HrSandbox) -> None:
    """Many HR APIs answer 200 {"data": []} for nobody: that is "unknown to HR", not a broken answer."""
    directory = HrDirectory(hr_config(listing_hr, not_found_when_empty="data"))
    assert directory.lookup("nobody@customer.example") is None
    assert directory.lookup("carol@customer.example") is None
    # the one element is the record: the field paths (here the defaults) are read from it
    assert directory.lookup("bob@customer.example") == Employee(
        "bob@customer.example", "Bob Keller", "terminated", "terminated"
    )
    assert directory.lookup("LAN@Customer.Example") == Employee(
        "lan.le@customer.example", "Lê Thị Lan", "active", "active"
    )
    assert [call["status"] for call in listing_hr.calls] == [200, 200, 200, 200]


def test_without_the_setting_an_empty_list_is_a_broken_answer(listing_hr: HrSandbox) -> None:
    with pytest.raises(RejectedByService, match="HR answered without employment_status"):
        HrDirectory(hr_config(listing_hr)).lookup("nobody@customer.example")


@pytest.mark.parametrize("body", ['{"data": null}', '{"data": {}}', '{"data": []}'])
def test_null_and_empty_objects_mean_not_found_too(hr: HrSandbox, body: str) -> None:
    hr.fail_next(200, body=body)
    assert HrDirectory(hr_config(hr, not_found_when_empty="data")).lookup("alice@customer.example") is None


def test_a_record_object_at_the_path_is_read_like_a_one_element_list(hr: HrSandbox) -> None:
    hr.fail_next(200, body='{"data": {"email": "x@customer.example", "name": "X", "state": "Left"}}')
    directory = HrDirectory(hr_config(hr, not_found_when_empty="data", employment_field="state"))
    assert directory.lookup("x@customer.example") == Employee("x@customer.example", "X", "terminated", "Left")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"result": []}', "HR answered without data$"),
        ('{"data": "none"}', "without a record at data"),
        ('{"data": [{"email": "a@x"}, {"email": "b@x"}]}', "HR answered 2 records at data for one address"),
        ('{"data": [{"email": "a@x", "name": "A"}]}', "HR answered without data.0.employment_status"),
    ],
)
def test_other_shapes_at_the_path_are_refused(hr: HrSandbox, body: str, message: str) -> None:
    hr.fail_next(200, body=body)
    with pytest.raises(RejectedByService, match=message):
        HrDirectory(hr_config(hr, not_found_when_empty="data")).lookup("alice@customer.example")


def test_a_nested_path_to_the_record(hr: HrSandbox) -> None:
    hr.fail_next(200, body='{"result": {"items": []}}')
    directory = HrDirectory(hr_config(hr, not_found_when_empty="result.items", employment_field="status.code"))
    assert directory.lookup("a@customer.example") is None
    hr.fail_next(200, body='{"result": {"items": [{"email": "a@x", "name": "A", "status": {"code": "ACTIVE"}}]}}')
    assert directory.lookup("a@customer.example") == Employee("a@x", "A", "active", "ACTIVE")


def test_email_is_quoted_into_the_path(hr: HrSandbox, directory: HrDirectory) -> None:
    assert directory.lookup("../employees/alice@customer.example") is None
    assert hr.calls[-1]["path"] == "/employees/../employees/alice@customer.example"  # one segment, decoded


# --------------------------------------------------------------------------- errors


def test_wrong_or_missing_token_is_access_denied(hr: HrSandbox, lms: LmsSandbox) -> None:
    with pytest.raises(AccessDenied):
        HrDirectory(hr_config(hr, auth_value="Bearer wrong")).lookup("alice@customer.example")
    with pytest.raises(AccessDenied):
        HrDirectory(HrConfig(url=hr.url)).lookup("alice@customer.example")
    with pytest.raises(AccessDenied):
        LmsClient(lms_config(lms, auth_value="Bearer hr-token")).reactivate("alice@customer.example", "k")
    assert [call["status"] for call in hr.calls] == [401, 401]
    assert lms.actions == []


def test_custom_auth_header(hr: HrSandbox) -> None:
    hr.token = "abc"
    directory = HrDirectory(hr_config(hr, auth_header="authorization", auth_value="Bearer abc"))
    assert directory.lookup("bob@customer.example") is not None


def test_outage_is_service_down_and_recovers(hr: HrSandbox, directory: HrDirectory) -> None:
    hr.set_down(True)
    with pytest.raises(ServiceDown):
        directory.lookup("alice@customer.example")
    hr.set_down(False)
    assert directory.lookup("alice@customer.example") is not None


def test_nothing_listening_is_service_down(lms: LmsSandbox, client: LmsClient) -> None:
    lms.stop()
    with pytest.raises(ServiceDown, match="cannot reach"):
        client.account("alice@customer.example")


def test_an_unreachable_url_is_named_without_its_credentials(lms: LmsSandbox) -> None:
    url = lms.url.replace("http://", "http://svc:url-s3cret@") + "/api?token=q-s3cret"
    lms.stop()
    with pytest.raises(ServiceDown, match="cannot reach") as info:
        LmsClient(lms_config(lms, url=url)).account("alice@customer.example")
    assert "s3cret" not in str(info.value) and lms.url.split("//")[1] in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientError), (429, TransientError), (502, ServiceDown), (400, RejectedByService),
     (403, AccessDenied), (405, ConfigurationError)],
)
def test_http_status_translation(hr: HrSandbox, directory: HrDirectory, status: int,
                                 error: type[Exception]) -> None:
    hr.fail_next(status)
    with pytest.raises(error):
        directory.lookup("alice@customer.example")
    assert directory.lookup("alice@customer.example") is not None  # only the next call failed


def test_garbage_or_incomplete_answer_is_rejected(hr: HrSandbox, directory: HrDirectory) -> None:
    hr.fail_next(200, body="not json")
    with pytest.raises(RejectedByService, match="HR answered without a JSON object"):
        directory.lookup("alice@customer.example")
    hr.fail_next(200, body="[1, 2]")
    with pytest.raises(RejectedByService):
        directory.lookup("alice@customer.example")
    hr.set_employee("half@customer.example", name="Half Record")
    with pytest.raises(RejectedByService, match="HR answered without employment_status"):
        directory.lookup("half@customer.example")


def test_latency_is_honoured_and_bounded_by_the_timeout(hr: HrSandbox) -> None:
    hr.latency = 0.3
    started = time.monotonic()
    assert HrDirectory(hr_config(hr)).lookup("alice@customer.example") is not None
    assert time.monotonic() - started >= 0.3
    hr.latency = 1.0
    with pytest.raises(TransientError, match="no answer within 0.2s") as info:
        HrDirectory(hr_config(hr, timeout_seconds=0.2)).lookup("alice@customer.example")
    assert not isinstance(info.value, ServiceDown)


def test_concurrent_lookups_share_one_client(hr: HrSandbox, directory: HrDirectory) -> None:
    hr.latency = 0.2
    emails = ["alice@customer.example", "bob@customer.example", "ha.tran@customer.example"] * 3
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=9) as pool:
        found = list(pool.map(directory.lookup, emails))
    assert [e.email for e in found if e is not None] == emails
    assert time.monotonic() - started < 1.2  # overlapped, not 9 × 0.2s


def test_secrets_stay_out_of_logs_and_reprs(hr: HrSandbox, caplog: pytest.LogCaptureFixture) -> None:
    cfg = hr_config(hr)
    assert "hr-token" not in repr(cfg)
    with caplog.at_level(logging.DEBUG):
        HrDirectory(cfg).lookup("alice@customer.example")
        hr.set_down(True)
        with pytest.raises(ServiceDown) as info:
            HrDirectory(cfg).lookup("alice@customer.example")
    assert "hr-token" not in caplog.text and "hr-token" not in str(info.value)


def test_config_is_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        HrConfig.model_validate({"url": "http://hr", "surprise": 1})
    with pytest.raises(pydantic.ValidationError, match="must contain"):
        LmsConfig(url="http://lms", reset_path="/users/reset")
    with pytest.raises(pydantic.ValidationError):
        HrConfig(url="http://hr", timeout_seconds=0)


# --------------------------------------------------------------------------- actions


def test_reactivate_is_idempotent(lms: LmsSandbox, client: LmsClient) -> None:
    first = client.reactivate("alice@customer.example", "ticket-7-reactivate")
    again = client.reactivate("alice@customer.example", "ticket-7-reactivate")
    assert first == LmsActionResult("reactivate", first.reference, replayed=False) and first.reference
    assert again == LmsActionResult("reactivate", first.reference, replayed=True)
    assert [(a["action"], a["key"]) for a in lms.actions] == [("reactivate", "ticket-7-reactivate")]
    assert client.account("alice@customer.example").status == "active"  # type: ignore[union-attr]
    assert all(call["path"].endswith("/reactivate") for call in lms.calls if call["method"] == "POST")


def test_reset_is_idempotent_and_goes_to_the_address_on_record(lms: LmsSandbox, client: LmsClient) -> None:
    first = client.send_reset("lan@customer.example", "ticket-9-reset")
    again = client.send_reset("lan@customer.example", "ticket-9-reset")
    assert (first.replayed, again.replayed, again.reference) == (False, True, first.reference)
    assert first.action == "password-reset"
    (sent,) = lms.actions  # never two reset links
    assert sent["to"] == "lan.le@customer.example" and sent["email"] == "lan@customer.example"


def test_reset_goes_to_a_changed_address_on_record(lms: LmsSandbox, client: LmsClient) -> None:
    lms.set_account("ha.tran@customer.example", email="tran.thi.ha@customer.example")
    account = client.account("ha.tran@customer.example")
    assert account is not None and account.email == "tran.thi.ha@customer.example"
    client.send_reset("ha.tran@customer.example", "k-moved")
    assert [a["to"] for a in lms.actions] == ["tran.thi.ha@customer.example"]


def test_lost_answer_is_transient_and_the_retry_replays(lms: LmsSandbox, client: LmsClient) -> None:
    lms.lose_next_answer()
    with pytest.raises(TransientError):
        client.send_reset("ha.tran@customer.example", "k-lost")
    retried = client.send_reset("ha.tran@customer.example", "k-lost")
    assert retried.replayed and len(lms.actions) == 1


def test_refusals_are_rejections(lms: LmsSandbox, client: LmsClient) -> None:
    with pytest.raises(RejectedByService, match="no such account"):
        client.reactivate("minh.nguyen@customer.example", "k1")
    with pytest.raises(RejectedByService, match="409"):
        client.reactivate("ha.tran@customer.example", "k2")  # already active
    with pytest.raises(RejectedByService, match="409"):
        client.send_reset("alice@customer.example", "k3")  # deactivated: reactivate first
    client.reactivate("alice@customer.example", "k4")
    with pytest.raises(RejectedByService, match="422"):
        client.send_reset("alice@customer.example", "k4")  # key reused for another action
    assert [a["key"] for a in lms.actions] == ["k4"]
    with pytest.raises(ValueError, match="idempotency key"):
        client.send_reset("alice@customer.example", "")


def test_stand_in_requires_the_idempotency_key(lms: LmsSandbox) -> None:
    answer = requests.post(f"{lms.url}/users/alice@customer.example/reactivate",
                           headers={"Authorization": "Bearer lms-token"}, timeout=5)
    assert answer.status_code == 400 and lms.actions == []


def test_custom_answer_fields(lms: LmsSandbox) -> None:
    lms.set_account("pending@customer.example", profile={"state": "Disabled"})
    nested = LmsClient(lms_config(lms, status_field="profile.state", deactivated_values=["disabled"],
                                  reference_field="ref"))
    assert nested.account("pending@customer.example").status == "deactivated"  # type: ignore[union-attr]
    assert nested.send_reset("ha.tran@customer.example", "k") == LmsActionResult("password-reset", "", False)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("module", ["bridge.sandbox.hr", "bridge.sandbox.lms"])
def test_runs_as_a_module(module: str) -> None:
    process = subprocess.Popen([sys.executable, "-m", module, "--port", "0", "--token", "t"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("ready http://127.0.0.1:")
        path = "/employees/alice@customer.example" if module.endswith("hr") else "/users/alice@customer.example"
        answer = requests.get(line.split()[1] + path, headers={"Authorization": "Bearer t"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["email"] == "alice@customer.example"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
