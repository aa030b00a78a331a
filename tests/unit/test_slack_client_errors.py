"""slack-sdk's errors translated into the bridge's error tree (what the outbox does with them)."""

from urllib.error import URLError

from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bridge.errors import (
    AccessDenied,
    ConfigurationError,
    RateLimited,
    RejectedByService,
    ServiceDown,
    TransientError,
)
from bridge.slack.client import translate


def api_error(status: int, error: str, headers: dict | None = None) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.com/api/chat.postMessage",
                             req_args={}, data={"ok": False, "error": error}, headers=headers or {},
                             status_code=status)
    return SlackApiError("failed", response)


def test_rate_limit_carries_retry_after():
    error = translate("chat.postMessage", api_error(429, "ratelimited", {"Retry-After": "7"}))
    assert isinstance(error, RateLimited) and error.retry_after == 7.0


def test_server_errors_and_timeouts_are_transient():
    assert isinstance(translate("chat.update", api_error(503, "service_unavailable")), TransientError)
    assert isinstance(translate("chat.postMessage", TimeoutError("timed out")), TransientError)
    assert isinstance(translate("chat.postMessage", TimeoutError("timed out")), TransientError)
    assert isinstance(translate("auth.test", URLError(ConnectionRefusedError())), ServiceDown)


def test_setup_problems_are_configuration_errors():
    assert isinstance(translate("chat.postMessage", api_error(200, "invalid_auth")), AccessDenied)
    for error in ("channel_not_found", "not_in_channel", "missing_scope"):
        assert isinstance(translate("chat.postMessage", api_error(200, error)), ConfigurationError)


def test_other_refusals_are_about_the_message():
    error = translate("chat.postMessage", api_error(200, "msg_too_long"))
    assert isinstance(error, RejectedByService) and "msg_too_long" in str(error)
