"""Config loading: env expansion, validation errors that name the key path."""

import re
from pathlib import Path

import pytest

from bridge.config import expand_env, insecure_transports, load_config, parse_config
from bridge.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = {
    "imap": {"username": "support", "password": "${IMAP_PASSWORD}"},
    "smtp": {"from_address": "support@example.com"},
    "odoo": {"url": "https://odoo.example.com", "db": "db", "username": "bot", "password": "${ODOO_PASSWORD:-fallback}"},
}


def test_example_config_is_valid_with_its_secrets_set():
    env = {"IMAP_PASSWORD": "i", "SMTP_PASSWORD": "s", "ODOO_PASSWORD": "o"}
    cfg = load_config(REPO / "config.yaml", env)
    assert cfg.imap.password.get_secret_value() == "i"
    assert cfg.odoo.profile == "helpdesk"
    assert cfg.own_domain == "example.com"


def test_env_expansion_and_default():
    cfg = parse_config(MINIMAL, {"IMAP_PASSWORD": "pw"})
    assert cfg.imap.password.get_secret_value() == "pw"
    assert cfg.odoo.password.get_secret_value() == "fallback"


def test_missing_env_variable_names_the_key_path():
    with pytest.raises(ConfigurationError, match=r"imap\.password: environment variable IMAP_PASSWORD"):
        parse_config(MINIMAL, {})


def test_unknown_key_is_named():
    data = {**MINIMAL, "imap": {**MINIMAL["imap"], "pasword": "x"}}
    with pytest.raises(ConfigurationError, match=r"imap\.pasword: unknown key"):
        parse_config(data, {"IMAP_PASSWORD": "pw"})


def test_bad_value_is_named():
    data = {**MINIMAL, "imap": {**MINIMAL["imap"], "security": "ssl"}}
    with pytest.raises(ConfigurationError, match=r"imap\.security"):
        parse_config(data, {"IMAP_PASSWORD": "pw"})


def test_missing_section_is_named():
    data = {k: v for k, v in MINIMAL.items() if k != "odoo"}
    with pytest.raises(ConfigurationError, match=r"odoo: Field required"):
        parse_config(data, {"IMAP_PASSWORD": "pw"})


def test_smtp_pool_settings_have_defaults_and_are_bounded():
    cfg = parse_config(MINIMAL, {"IMAP_PASSWORD": "pw"})
    assert (cfg.smtp.max_connections, cfg.smtp.idle_seconds, cfg.smtp.max_messages_per_connection) == (4, 30, 100)
    for key, value in [("max_connections", 0), ("idle_seconds", 0), ("max_messages_per_connection", 0)]:
        data = {**MINIMAL, "smtp": {**MINIMAL["smtp"], key: value}}
        with pytest.raises(ConfigurationError, match=rf"smtp\.{key}"):
            parse_config(data, {"IMAP_PASSWORD": "pw"})


def test_secrets_do_not_show_in_repr():
    cfg = parse_config(MINIMAL, {"IMAP_PASSWORD": "hunter22"})
    assert "hunter22" not in repr(cfg)


def test_expand_env_walks_lists():
    assert expand_env({"a": ["${X}", 3]}, {"X": "y"}) == {"a": ["y", 3]}


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("imap: [unclosed")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(bad)


def test_relative_folders_are_relative_to_the_config_file(tmp_path):
    import yaml

    path = tmp_path / "conf" / "bridge.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(MINIMAL))
    cfg = load_config(path, {"IMAP_PASSWORD": "pw"})
    assert cfg.state.dir == str(tmp_path / "conf" / "state")
    assert cfg.tickets.templates_dir == ""  # no overrides: the packaged templates
    path.write_text(yaml.safe_dump({**MINIMAL, "tickets": {"templates_dir": "templates"}}))
    assert load_config(path, {"IMAP_PASSWORD": "pw"}).tickets.templates_dir == str(tmp_path / "conf" / "templates")


@pytest.mark.parametrize(
    "section,key,value,named",
    [
        ("imap", "security", "plain", "imap.security: plain to mail.example.com"),
        ("smtp", "security", "plain", "smtp.security: plain to mail.example.com"),
        ("odoo", "url", "http://odoo.example.com", "odoo.url: http:// to odoo.example.com"),
    ],
)
def test_plain_text_to_a_remote_host_is_refused_unless_allowed(section, key, value, named):
    data = {**MINIMAL, "imap": {**MINIMAL["imap"], "host": "mail.example.com"},
            "smtp": {**MINIMAL["smtp"], "host": "mail.example.com"}}
    data[section] = {**data[section], key: value}
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        parse_config(data, {"IMAP_PASSWORD": "pw"})
    allowed = parse_config({**data, "bridge": {"allow_insecure": True}}, {"IMAP_PASSWORD": "pw"})
    assert insecure_transports(allowed) == [named]


def test_plain_hr_url_to_a_remote_host_is_refused():
    data = {**MINIMAL, "automation": {"enabled": True, "hr": {"url": "http://hr.example.com"},
                                      "lms": {"url": "https://lms.example.com"}}}
    with pytest.raises(ConfigurationError, match=r"automation\.hr\.url: http:// to hr\.example\.com"):
        parse_config(data, {"IMAP_PASSWORD": "pw"})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_plain_text_to_loopback_is_fine(host):
    data = {**MINIMAL, "imap": {**MINIMAL["imap"], "host": host, "security": "plain"},
            "odoo": {**MINIMAL["odoo"], "url": f"http://{host if ':' not in host or host.startswith('[') else '[' + host + ']'}:8069"}}
    assert insecure_transports(parse_config(data, {"IMAP_PASSWORD": "pw"})) == []
