"""pooled_session: environment settings taken once, for the service's URL, then never re-read."""

from bridge.http_session import pooled_session


def test_proxy_and_ca_bundle_from_the_environment_are_kept(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = pooled_session("https://odoo.example.com", 4)
    assert session.proxies.get("https") == "http://proxy.internal:3128"
    assert session.verify == str(bundle)
    assert session.trust_env is False
    assert session.get_adapter("https://odoo.example.com")._pool_maxsize == 4


def test_no_proxy_for_the_service_url_means_direct(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = pooled_session("http://127.0.0.1:8069", 2)
    assert not session.proxies
    assert session.verify is True


def test_later_environment_changes_do_not_reach_the_session(monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    session = pooled_session("http://odoo.local", 2)
    monkeypatch.setenv("HTTP_PROXY", "http://late.proxy:1")
    prepared = session.merge_environment_settings("http://odoo.local", session.proxies, None, session.verify, None)
    assert not prepared["proxies"].get("http")
