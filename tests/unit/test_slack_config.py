"""The slack: config section: mentions only from well-formed targets, complete settings when on."""

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigurationError

BASE = {
    "imap": {"username": "support", "password": "x"},
    "smtp": {"from_address": "support@example.com"},
    "odoo": {"url": "https://odoo.example.com", "db": "db", "username": "bot", "password": "x"},
}


def config(**slack):
    return parse_config({**BASE, "slack": {"enabled": True, "bot_token": "xoxb-1", "channel": "C1", **slack}})


def test_mentions_take_configured_targets_only():
    cfg = config(mentions={"login_escalated": "subteam:S0OPS", "default": "here"})
    assert cfg.slack.mention_for("login_escalated") == "subteam:S0OPS"
    assert cfg.slack.mention_for("reply_failed") == "here"
    for bad in ("<!channel>", "user:<!channel>", "subteam:s0ops", "everyone"):
        with pytest.raises(ConfigurationError, match="slack.mentions"):
            config(mentions={"login_escalated": bad})
    with pytest.raises(ConfigurationError, match="unknown escalation kind"):
        config(mentions={"typo": "here"})


@pytest.mark.parametrize("slack,message", [
    ({"bot_token": ""}, "needs slack.bot_token"),
    ({"actions": "http"}, "signing_secret"),
    ({"actions": "socket"}, "app_token"),
    ({"approvers": ["not an id"]}, "not a Slack id"),
    ({"actions": "http", "signing_secret": "s"}, "needs http.port"),
    ({"base_url": "http://slack.internal/api/"}, "slack.base_url: http://"),
])
def test_incomplete_or_unsafe_settings_are_refused(slack, message):
    with pytest.raises(ConfigurationError, match=message):
        config(**slack)


def test_off_by_default():
    assert not parse_config(BASE).slack.enabled
