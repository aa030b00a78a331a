"""The OAuth2 stand-ins through real protocols: the token server over HTTP, Dovecot's XOAUTH2/OAUTHBEARER
logins checked by introspection, and the SMTP sink's bearer-token AUTH."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiosmtplib
import imapclient
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bridge.sandbox.dovecot import Dovecot, _free_port
from bridge.sandbox.oauth import DEVICE_CODE, JWT_BEARER, OAuthServer
from bridge.sandbox.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

SERVICE_ACCOUNT = "mailer@bridge-project.iam.example"
USERS = {"support": "support-pw", "other": "other-pw"}


@pytest.fixture(scope="module")
def service_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def oauth(service_key: rsa.RSAPrivateKey) -> Iterator[OAuthServer]:
    """Clients: "bridge" (confidential, app-only for support), "desktop" (public) and a service account."""
    with OAuthServer() as server:
        server.add_client("bridge", "s3cret", mailbox="support")
        server.add_client("desktop")
        public_pem = service_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        server.add_client("sa-1", public_key_pem=public_pem, client_email=SERVICE_ACCOUNT)
        yield server


@pytest.fixture(scope="module")
def imap(oauth: OAuthServer) -> Iterator[Dovecot]:
    """One Dovecot for the module whose token logins ask `oauth`."""
    with Dovecot(users=USERS, oauth2_introspection_url=oauth.introspection_url) as server:
        yield server


def post(url: str, **form: str) -> requests.Response:
    return requests.post(url, data=form, timeout=5)


def token_for(oauth: OAuthServer, user: str) -> str:
    """A fresh access token for `user`, through the refresh grant as the bridge would get one."""
    answer = post(oauth.token_url, grant_type="refresh_token", client_id="desktop",
                  refresh_token=oauth.issue_refresh_token("desktop", user))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def error_of(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]


def assertion(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    """An RS256 JWT as Google's client libraries sign one for a service account."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = ".".join(b64(json.dumps(part).encode()) for part in ({"alg": "RS256", "typ": "JWT"}, claims))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def imap_client(server: Dovecot) -> imapclient.IMAPClient:
    return imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)


def refused_login(server: Dovecot, user: str, token: str, mechanism: str = "XOAUTH2") -> str:
    """The server's answer to a token login that must fail."""
    with pytest.raises(imapclient.exceptions.LoginError) as refused:
        client = imap_client(server)
        try:
            if mechanism == "OAUTHBEARER":
                client.oauthbearer_login(user, token)
            else:
                client.oauth2_login(user, token)
        finally:
            client.shutdown()
    return str(refused.value)


def reply() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "support@example.test"
    message["To"] = "customer@example.test"
    message["Subject"] = "Re: Printer on fire"
    message.set_content("We are on it.")
    return message


# --- the token server ---------------------------------------------------------------------------------


def test_client_credentials_token_is_for_the_clients_mailbox(oauth: OAuthServer) -> None:
    basic = requests.post(oauth.token_url, data={"grant_type": "client_credentials", "scope": "mail"},
                          auth=("bridge", "s3cret"), timeout=5)
    in_form = post(oauth.token_url, grant_type="client_credentials", client_id="bridge", client_secret="s3cret")
    for answer in (basic, in_form):
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and "refresh_token" not in body
        info = post(oauth.introspection_url, token=body["access_token"]).json()
        assert info["active"] is True and info["username"] == "support" and info["client_id"] == "bridge"
        assert info["exp"] == pytest.approx(time.time() + 3600, abs=5)
    assert basic.json()["scope"] == "mail"

    wrong = post(oauth.token_url, grant_type="client_credentials", client_id="bridge", client_secret="nope")
    assert error_of(wrong) == (401, "invalid_client") and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert error_of(post(oauth.token_url, grant_type="client_credentials", client_id="desktop")) == (
        400, "unauthorized_client")
    assert error_of(post(oauth.token_url, grant_type="password", client_id="desktop")) == (
        400, "unsupported_grant_type")
    assert post(oauth.introspection_url, token="at-made-up").json() == {"active": False}


def test_refresh_rotates_and_the_old_refresh_token_dies_at_once(oauth: OAuthServer) -> None:
    first = oauth.issue_refresh_token("desktop", "rotating")
    answer = post(oauth.token_url, grant_type="refresh_token", client_id="desktop", refresh_token=first)
    assert answer.status_code == 200
    second = answer.json()["refresh_token"]
    assert second != first and oauth.refresh_tokens_valid("rotating") == [second]
    assert oauth.active_user(answer.json()["access_token"]) == "rotating"

    again = post(oauth.token_url, grant_type="refresh_token", client_id="desktop", refresh_token=first)
    assert error_of(again) == (400, "invalid_grant")
    stolen = post(oauth.token_url, grant_type="refresh_token", client_id="bridge", client_secret="s3cret",
                  refresh_token=second)
    assert error_of(stolen) == (400, "invalid_grant")  # another client's refresh token
    assert post(oauth.token_url, grant_type="refresh_token", client_id="desktop", refresh_token=second).ok


def test_without_rotation_the_refresh_token_stays_and_is_not_sent_again() -> None:
    with OAuthServer(rotate=False, access_ttl=120) as google_like:
        google_like.add_client("desktop")
        refresh = google_like.issue_refresh_token("desktop", "support")
        for _ in range(2):
            answer = post(google_like.token_url, grant_type="refresh_token", client_id="desktop",
                          refresh_token=refresh)
            assert answer.status_code == 200 and "refresh_token" not in answer.json()
            assert answer.json()["expires_in"] == 120
        assert google_like.refresh_tokens_valid("support") == [refresh]


def test_revoke_turns_refresh_tokens_into_invalid_grant_and_kills_access_tokens(oauth: OAuthServer) -> None:
    refresh = oauth.issue_refresh_token("desktop", "leaver")
    access = token_for(oauth, "leaver")
    oauth.revoke("leaver")
    assert oauth.refresh_tokens_valid("leaver") == []
    answer = post(oauth.token_url, grant_type="refresh_token", client_id="desktop", refresh_token=refresh)
    assert error_of(answer) == (400, "invalid_grant")
    assert post(oauth.introspection_url, token=access).json() == {"active": False}


def test_authorization_code_with_pkce(oauth: OAuthServer) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:8765/callback"
    browser = requests.get(oauth.authorize_url, allow_redirects=False, timeout=5, params={
        "response_type": "code", "client_id": "desktop", "redirect_uri": redirect, "state": "st-1",
        "code_challenge": challenge, "code_challenge_method": "S256", "login_hint": "support", "scope": "mail"})
    assert browser.status_code == 302
    location = urlsplit(browser.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    tokens = post(oauth.token_url, grant_type="authorization_code", client_id="desktop", code=query["code"][0],
                  redirect_uri=redirect, code_verifier=verifier)
    assert tokens.status_code == 200
    assert tokens.json()["scope"] == "mail" and tokens.json()["refresh_token"] in oauth.refresh_tokens_valid("support")
    replay = post(oauth.token_url, grant_type="authorization_code", client_id="desktop", code=query["code"][0],
                  redirect_uri=redirect, code_verifier=verifier)
    assert error_of(replay) == (400, "invalid_grant")  # a code is good once

    code = oauth.issue_code("desktop", "support", redirect_uri=redirect, code_challenge=challenge)
    wrong = post(oauth.token_url, grant_type="authorization_code", client_id="desktop", code=code,
                 redirect_uri=redirect, code_verifier="not-the-verifier")
    assert error_of(wrong) == (400, "invalid_grant")
    code = oauth.issue_code("desktop", "support", redirect_uri=redirect)
    elsewhere = post(oauth.token_url, grant_type="authorization_code", client_id="desktop", code=code,
                     redirect_uri="http://127.0.0.1:9999/other")
    assert error_of(elsewhere) == (400, "invalid_grant")


def test_device_code_is_pending_until_approved() -> None:
    with OAuthServer(device_interval=0) as server:
        server.add_client("tv")
        grant = post(server.device_authorization_url, client_id="tv", scope="mail").json()
        assert set(grant) == {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
        assert grant["verification_uri"] == server.url + "/device" and grant["interval"] == 0

        def poll() -> requests.Response:
            return post(server.token_url, grant_type=DEVICE_CODE, client_id="tv", device_code=grant["device_code"])

        assert error_of(poll()) == (400, "authorization_pending")
        server.approve_device(grant["user_code"], "support")
        tokens = poll()
        assert tokens.status_code == 200 and server.active_user(tokens.json()["access_token"]) == "support"
        assert tokens.json()["refresh_token"] in server.refresh_tokens_valid("support")
        assert error_of(poll()) == (400, "invalid_grant")  # used up
        with pytest.raises(KeyError):
            server.approve_device("NOPE-NOPE", "support")


def test_device_code_polled_too_fast_slows_down(oauth: OAuthServer) -> None:
    grant = post(oauth.device_authorization_url, client_id="desktop").json()
    assert grant["interval"] == 5
    form = {"grant_type": DEVICE_CODE, "client_id": "desktop", "device_code": grant["device_code"]}
    assert error_of(post(oauth.token_url, **form)) == (400, "authorization_pending")
    slow = post(oauth.token_url, **form)
    assert error_of(slow) == (400, "slow_down") and "10 s" in slow.json()["error_description"]  # RFC 8628: +5 s


def test_device_code_expires_unapproved() -> None:
    with OAuthServer(device_ttl=0) as server:
        server.add_client("tv")
        grant = post(server.device_authorization_url, client_id="tv").json()
        with pytest.raises(KeyError):
            server.approve_device(grant["user_code"], "support")
        answer = post(server.token_url, grant_type=DEVICE_CODE, client_id="tv", device_code=grant["device_code"])
        assert error_of(answer) == (400, "expired_token")


def test_jwt_bearer_accepted_with_the_right_key_refused_with_another(
    oauth: OAuthServer, service_key: rsa.RSAPrivateKey
) -> None:
    now = int(time.time())
    claims = {"iss": SERVICE_ACCOUNT, "sub": "support", "aud": oauth.token_url,
              "scope": "https://mail.google.com/", "iat": now, "exp": now + 3600}
    answer = post(oauth.token_url, grant_type=JWT_BEARER, assertion=assertion(service_key, **claims))
    assert answer.status_code == 200
    assert "refresh_token" not in answer.json() and answer.json()["scope"] == "https://mail.google.com/"
    assert oauth.active_user(answer.json()["access_token"]) == "support"  # domain-wide delegation: acts as sub

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "another key": assertion(stranger, **claims),
        "wrong aud": assertion(service_key, **{**claims, "aud": "https://oauth2.googleapis.com/token"}),
        "expired": assertion(service_key, **{**claims, "iat": now - 7200, "exp": now - 3600}),
        "over an hour": assertion(service_key, **{**claims, "exp": now + 3601}),
        "unknown issuer": assertion(service_key, **{**claims, "iss": "someone@else.example"}),
        "not a JWT": "not.a.jwt",
    }
    for case, jwt in refused.items():
        assert error_of(post(oauth.token_url, grant_type=JWT_BEARER, assertion=jwt)) == (400, "invalid_grant"), case


def test_fail_next_answers_503_then_the_server_recovers(oauth: OAuthServer) -> None:
    before = len(oauth.requests)
    oauth.fail_next(503)
    failed = post(oauth.token_url, grant_type="client_credentials", client_id="bridge", client_secret="s3cret")
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    assert post(oauth.token_url, grant_type="client_credentials", client_id="bridge", client_secret="s3cret").ok
    assert oauth.requests[before:] == [("client_credentials", "bridge")] * 2


def test_expired_access_tokens_are_inactive_and_refresh_still_works() -> None:
    with OAuthServer(access_ttl=0) as server:
        server.add_client("desktop")
        refresh = server.issue_refresh_token("desktop", "support")
        answer = post(server.token_url, grant_type="refresh_token", client_id="desktop", refresh_token=refresh)
        assert answer.json()["expires_in"] == 0
        assert server.active_user(answer.json()["access_token"]) is None
        server.access_ttl = 3600
        answer = post(server.token_url, grant_type="refresh_token", client_id="desktop",
                      refresh_token=answer.json()["refresh_token"])
        assert server.active_user(answer.json()["access_token"]) == "support"
        server.expire_access_tokens()
        assert post(server.introspection_url, token=answer.json()["access_token"]).json() == {"active": False}


# --- Dovecot --------------------------------------------------------------------------------------------


def test_dovecot_offers_the_token_mechanisms(imap: Dovecot) -> None:
    with imap_client(imap) as client:
        assert {b"AUTH=PLAIN", b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER"} <= set(client.capabilities())


def test_dovecot_xoauth2_login_asks_the_token_server_every_time(imap: Dovecot, oauth: OAuthServer) -> None:
    token = token_for(oauth, "support")
    before = oauth.introspections
    for _ in range(2):
        with imap_client(imap) as client:
            client.oauth2_login("support", token)
            assert b"EXISTS" in client.select_folder("INBOX")
    assert oauth.introspections == before + 2  # no auth cache: a revoked token fails at the next login


def test_dovecot_oauthbearer_login(imap: Dovecot, oauth: OAuthServer) -> None:
    with imap_client(imap) as client:
        client.oauthbearer_login("support", token_for(oauth, "support"))
        assert client.list_folders()


def test_dovecot_refuses_expired_revoked_and_other_users_tokens(imap: Dovecot, oauth: OAuthServer) -> None:
    other = token_for(oauth, "other")
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "support", other)
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "support", other, "OAUTHBEARER")
    revoked = token_for(oauth, "support")
    oauth.revoke("support")
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "support", revoked)
    expired = token_for(oauth, "support")
    oauth.expire_access_tokens()
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "support", expired, "OAUTHBEARER")


def test_dovecot_keeps_passwords_and_tokens_apart(imap: Dovecot, oauth: OAuthServer) -> None:
    imap.client("support").logout()  # the password login works as before
    token = token_for(oauth, "support")
    with imap_client(imap) as client, pytest.raises(imapclient.exceptions.LoginError):
        client.login("support", token)
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "support", USERS["support"])


def test_dovecot_refuses_a_valid_token_of_a_user_without_a_mailbox(imap: Dovecot, oauth: OAuthServer) -> None:
    assert "AUTHENTICATIONFAILED" in refused_login(imap, "nobody", token_for(oauth, "nobody"))


def test_dovecot_without_its_token_server_fails_temporarily() -> None:
    with Dovecot(oauth2_introspection_url=f"http://127.0.0.1:{_free_port('127.0.0.1')}/introspect") as server:
        assert "UNAVAILABLE" in refused_login(server, "support", "at-whatever")
        server.client("support").logout()


# --- the SMTP sink -----------------------------------------------------------------------------------


def test_sink_accepts_xoauth2_from_aiosmtplib(oauth: OAuthServer) -> None:
    with SmtpSink(oauth_introspect=oauth.active_user) as sink:
        async def token() -> str:
            return token_for(oauth, "support")

        asyncio.run(aiosmtplib.send(reply(), hostname=sink.host, port=sink.port, username="support",
                                    oauth_token_generator=token, timeout=5))
        assert len(sink.wait_for(1)) == 1

        async def refused(user: str, access_token: str) -> int:
            async with aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=5) as smtp:
                with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
                    await smtp.auth_xoauth2(user, access_token)
                with pytest.raises(aiosmtplib.SMTPSenderRefused):
                    await smtp.send_message(reply())
            return failed.value.code

        assert asyncio.run(refused("support", token_for(oauth, "other"))) == 535
        assert asyncio.run(refused("support", "at-made-up")) == 535


def test_sink_oauthbearer_with_smtplib_and_the_error_challenge(oauth: OAuthServer) -> None:
    with SmtpSink(oauth_introspect=oauth.active_user) as sink:
        challenges: list[bytes] = []

        def login(user: str, token: str) -> tuple[int, bytes | str]:
            def respond(challenge: bytes | None = None) -> str:
                if challenge is None:
                    return f"n,a={user},\x01auth=Bearer {token}\x01\x01"
                challenges.append(challenge)
                return "\x01"  # RFC 7628 3.2.3: the client answers the error with a single ^A

            with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
                smtp.ehlo()
                try:
                    return smtp.auth("OAUTHBEARER", respond)
                except smtplib.SMTPAuthenticationError as exc:
                    return exc.smtp_code, exc.smtp_error

        assert login("support", token_for(oauth, "support"))[0] == 235
        code, message = login("other", token_for(oauth, "support"))
        assert (code, message) == (535, b"5.7.8 Username and Password not accepted")
        assert [json.loads(c) for c in challenges] == [{"status": "invalid_token", "schemes": "bearer",
                                                        "scope": "mail"}]


def test_sink_keeps_password_auth_next_to_tokens(oauth: OAuthServer) -> None:
    with SmtpSink() as plain:
        with smtplib.SMTP(plain.host, plain.port, timeout=5) as smtp:
            smtp.ehlo()
            assert "XOAUTH2" not in smtp.esmtp_features.get("auth", "")
    with SmtpSink(auth=("bridge", "s3cret"), oauth_introspect=oauth.active_user) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.ehlo()
            assert {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"} <= set(smtp.esmtp_features["auth"].split())
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.send_message(reply())  # no login yet
            smtp.login("bridge", "s3cret")
            smtp.send_message(reply())
        assert len(sink.wait_for(1)) == 1
