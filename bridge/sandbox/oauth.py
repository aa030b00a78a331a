"""A stand-in OAuth2 authorization server on loopback, so the mail logins' tokens meet a real token endpoint.

    with OAuthServer() as oauth:
        oauth.add_client("bridge", "s3cret", mailbox="support")
        requests.post(oauth.token_url, data={"grant_type": "client_credentials"}, auth=("bridge", "s3cret"))

Grants: client credentials (app-only, bound to the client's mailbox), refresh token (rotated unless
``rotate=False``), JWT bearer (RFC 7523, Google's service accounts with domain-wide delegation),
authorization code with PKCE S256 and device code (RFC 8628). ``introspection_url`` answers RFC 7662
for Dovecot's oauth2 passdb; ``active_user`` answers the SMTP sink in-process. Tokens are opaque,
random and held in memory only. Errors are RFC 6749 JSON: 400, or 401 for bad client authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeGuard
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bridge.sandbox.httpserve import BackgroundHTTPServer, KeepAliveHandler

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
CODE_TTL = 600.0  # authorization codes, as most providers: ten minutes
ASSERTION_MAX_LIFETIME = 3600  # RFC 7523 leaves it to the server; Google refuses more than an hour
CLOCK_SKEW = 60  # an assertion's iat may be this far in the future (the client's clock runs ahead)
SLOW_DOWN_STEP = 5  # RFC 8628 3.5: each slow_down adds five seconds to the polling interval
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, so no words; as RFC 8628 6.1 suggests


class OAuthError(Exception):
    """An RFC 6749 5.2 error answer: `status` (400, 401 for bad client authentication) and the JSON body."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass
class _Client:
    client_id: str
    secret: str | None  # None: a public client (PKCE, device code), which authenticates by client_id alone
    mailbox: str | None
    public_key: RSAPublicKey | None
    client_email: str | None


@dataclass
class _Access:
    username: str
    client_id: str
    scope: str
    expires_at: float


@dataclass
class _Refresh:
    username: str
    client_id: str
    scope: str


@dataclass
class _Code:
    client_id: str
    username: str
    redirect_uri: str
    challenge: str
    scope: str
    expires_at: float


@dataclass
class _Device:
    client_id: str
    scope: str
    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    username: str | None = None  # set once the user approved


class _Handler(KeepAliveHandler):
    """Hands every request to the server."""

    def _serve(self) -> None:
        self.server.oauth._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class OAuthServer(BackgroundHTTPServer):
    """Token, device-code, authorize and introspection endpoints, with test controls; one lock guards all state.

    ``access_ttl`` (seconds, 0 issues tokens already expired), ``device_interval`` and ``device_ttl``
    are plain attributes a test may change at any time.
    """

    handler_class = _Handler
    server_attribute = "oauth"

    def __init__(self, *, rotate: bool = True, access_ttl: float = 3600, device_interval: int = 5,
                 device_ttl: float = 600) -> None:
        """`rotate` False answers refreshes without a new refresh token, as Google does, so the old one stays."""
        self.rotate = rotate
        self.access_ttl = access_ttl
        self.device_interval = device_interval
        self.device_ttl = device_ttl
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._service_accounts: dict[str, _Client] = {}  # client_email → client
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}
        self._devices: dict[str, _Device] = {}  # device_code → grant
        self._failures: deque[tuple[int, str]] = deque()
        self._requests: list[tuple[str, str]] = []
        self._introspections = 0

    @property
    def token_url(self) -> str:
        """Also the audience a JWT bearer assertion must name."""
        return self.url + "/token"

    @property
    def device_authorization_url(self) -> str:
        return self.url + "/devicecode"

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def introspection_url(self) -> str:
        return self.url + "/introspect"

    # --- registration and helpers for tests ---

    def add_client(self, client_id: str, client_secret: str | None = None, *, mailbox: str | None = None,
                   public_key_pem: str | bytes | None = None, client_email: str | None = None) -> None:
        """Register a client; `mailbox` is the user its app-only tokens act for, and `public_key_pem`
        with `client_email` make it a service account whose RS256 assertions are accepted."""
        if (public_key_pem is None) != (client_email is None):
            raise ValueError("a service account needs both public_key_pem and client_email")
        key = None
        if public_key_pem is not None:
            loaded = load_pem_public_key(public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem)
            if not isinstance(loaded, RSAPublicKey):
                raise ValueError("RS256 needs an RSA public key")
            key = loaded
        client = _Client(client_id, client_secret, mailbox, key, client_email)
        with self._lock:
            self._clients[client_id] = client
            if client_email is not None:
                self._service_accounts[client_email] = client

    def issue_code(self, client_id: str, username: str, *, redirect_uri: str = "", code_challenge: str = "",
                   scope: str = "") -> str:
        """An authorization code, as if `username` had consented in a browser; `code_challenge` is S256."""
        code = _token("code")
        with self._lock:
            self._codes[code] = _Code(client_id, username, redirect_uri, code_challenge, scope,
                                      time.time() + CODE_TTL)
        return code

    def issue_refresh_token(self, client_id: str, username: str, scope: str = "") -> str:
        """A refresh token, as an earlier consent would have left in the bridge's vault."""
        with self._lock:
            return self._new_refresh(client_id, username, scope)

    def approve_device(self, user_code: str, username: str) -> None:
        """The user typed `user_code` at the verification page and consented; KeyError if no such code is pending."""
        with self._lock:
            for device in self._devices.values():
                if device.user_code == user_code and device.expires_at > time.time():
                    device.username = username
                    return
        raise KeyError(user_code)

    def active_user(self, token: str) -> str | None:
        """The user an access token acts for while it is active, else None (the SMTP sink's check)."""
        with self._lock:
            access = self._active(token)
            return None if access is None else access.username

    # --- faults and counters ---

    def fail_next(self, status: int = 503, count: int = 1, error: str = "temporarily_unavailable") -> None:
        """Answer the next `count` token requests with `status` and a JSON `error`, doing nothing else."""
        with self._lock:
            self._failures.extend([(int(status), error)] * count)

    def revoke(self, username: str, *, access_tokens: bool = True) -> None:
        """The user withdrew consent: their refresh tokens (and, unless told otherwise, access tokens) die."""
        with self._lock:
            self._refresh = {token: grant for token, grant in self._refresh.items() if grant.username != username}
            if access_tokens:
                self._access = {token: grant for token, grant in self._access.items() if grant.username != username}

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on; refresh tokens still work."""
        now = time.time()
        with self._lock:
            for access in self._access.values():
                access.expires_at = min(access.expires_at, now)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(grant_type, client_id as the request named it, "" for none) per token request, failed ones too."""
        with self._lock:
            return list(self._requests)

    @property
    def introspections(self) -> int:
        """Introspection requests answered so far (a mail server asking about a token)."""
        with self._lock:
            return self._introspections

    def refresh_tokens_valid(self, username: str) -> list[str]:
        """The user's refresh tokens that would be accepted now."""
        with self._lock:
            return [token for token, grant in self._refresh.items() if grant.username == username]

    # --- the token endpoint ---

    def token(self, form: dict[str, str], authorization: str = "") -> dict[str, Any]:
        """Answer one token request (RFC 6749 section 4/6); raises OAuthError for an error answer."""
        grant_type = form.get("grant_type", "")
        with self._lock:
            self._requests.append((grant_type, _named_client(form, authorization)))
            if self._failures:
                status, error = self._failures.popleft()
                raise OAuthError(error, f"injected {status}", status)
            if grant_type == JWT_BEARER:  # the assertion is the credential: no client authentication
                return self._jwt_bearer(form)
            client = self._authenticate(form, authorization)
            if grant_type == "client_credentials":
                return self._client_credentials(client, form)
            if grant_type == "refresh_token":
                return self._refresh_grant(client, form)
            if grant_type == "authorization_code":
                return self._authorization_code(client, form)
            if grant_type == DEVICE_CODE:
                return self._device_grant(client, form)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _authenticate(self, form: dict[str, str], authorization: str) -> _Client:
        """RFC 6749 2.3.1: HTTP Basic (form-urlencoded id and secret) or client_id/client_secret in the form."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if authorization[:6].lower() == "basic ":
            if secret is not None:
                raise OAuthError("invalid_request", "more than one client authentication method")
            try:
                basic_id, _, basic_secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
            if client_id and client_id != unquote(basic_id):
                raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401)
        if client.secret is not None and not hmac.compare_digest((secret or "").encode(), client.secret.encode()):
            raise OAuthError("invalid_client", "wrong client secret", 401)
        return client

    def _client_credentials(self, client: _Client, form: dict[str, str]) -> dict[str, Any]:
        if client.secret is None or client.mailbox is None:
            raise OAuthError("unauthorized_client", "this client may not use client_credentials")
        return self._issue(client.client_id, client.mailbox, form.get("scope", ""), refresh=False)

    def _refresh_grant(self, client: _Client, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "refresh token unknown, revoked or already used")
        scope = form.get("scope", grant.scope)
        if not set(scope.split()) <= set(grant.scope.split()):
            raise OAuthError("invalid_scope", "more scope than the refresh token was granted")
        answer = self._issue(client.client_id, grant.username, scope, refresh=False)
        if self.rotate:
            del self._refresh[token]
            answer["refresh_token"] = self._new_refresh(client.client_id, grant.username, grant.scope)
        return answer

    def _authorization_code(self, client: _Client, form: dict[str, str]) -> dict[str, Any]:
        code = self._codes.pop(form.get("code", ""), None)  # single use, even when the request fails below
        if code is None or code.expires_at <= time.time() or code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "authorization code unknown, expired, used or another client's")
        if code.redirect_uri != form.get("redirect_uri", ""):
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
        if code.challenge and not hmac.compare_digest(_s256(form.get("code_verifier", "")), code.challenge):
            raise OAuthError("invalid_grant", "PKCE code_verifier does not match the code_challenge")
        return self._issue(client.client_id, code.username, code.scope, refresh=True)

    def _device_grant(self, client: _Client, form: dict[str, str]) -> dict[str, Any]:
        device_code = form.get("device_code", "")
        device = self._devices.get(device_code)
        if device is None or device.client_id != client.client_id:
            raise OAuthError("invalid_grant", "unknown device_code")
        now = time.time()
        if now >= device.expires_at:
            del self._devices[device_code]
            raise OAuthError("expired_token", "the device code expired before the user approved it")
        previous, device.last_poll = device.last_poll, now
        if previous is not None and now - previous < device.interval:
            device.interval += SLOW_DOWN_STEP
            raise OAuthError("slow_down", f"poll at most every {device.interval} s")
        if device.username is None:
            raise OAuthError("authorization_pending", "the user has not approved yet")
        del self._devices[device_code]
        return self._issue(client.client_id, device.username, device.scope, refresh=True)

    def _jwt_bearer(self, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7523 2.1 as Google's service accounts use it: `sub` is the user to act for."""
        client, claims = self._verify_assertion(form.get("assertion", ""))
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope:
            raise OAuthError("invalid_scope", "the assertion names no scope")
        subject = str(claims.get("sub") or client.client_email)  # no sub: the service account itself
        return self._issue(client.client_id, subject, scope, refresh=False)

    def _verify_assertion(self, assertion: str) -> tuple[_Client, dict[str, Any]]:
        try:
            header_part, claims_part, signature_part = assertion.split(".")
            header, claims = json.loads(_unb64(header_part)), json.loads(_unb64(claims_part))
            signature = _unb64(signature_part)
        except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise OAuthError("invalid_grant", "malformed JWT assertion") from None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "the assertion must be a JWT signed with RS256")
        issuer = claims.get("iss")
        client = self._service_accounts.get(issuer) if isinstance(issuer, str) else None
        if client is None or client.public_key is None:
            raise OAuthError("invalid_grant", f"no service account {issuer!r}")
        try:
            client.public_key.verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(),
                                     hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("aud") != self.token_url:
            raise OAuthError("invalid_grant", f"aud must be {self.token_url}")
        issued, expires, now = claims.get("iat"), claims.get("exp"), time.time()
        if not _is_number(issued) or not _is_number(expires):
            raise OAuthError("invalid_grant", "the assertion needs numeric iat and exp")
        if expires <= now or issued > now + CLOCK_SKEW or expires - issued > ASSERTION_MAX_LIFETIME:
            raise OAuthError("invalid_grant", "Invalid JWT: token must be a short-lived token (60 minutes) "
                                              "and in a reasonable timeframe")
        return client, claims

    def _issue(self, client_id: str, username: str, scope: str, *, refresh: bool) -> dict[str, Any]:
        token = _token("at")
        self._access[token] = _Access(username, client_id, scope, time.time() + self.access_ttl)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                                  "expires_in": max(0, int(self.access_ttl)), "scope": scope}
        if refresh:
            answer["refresh_token"] = self._new_refresh(client_id, username, scope)
        return answer

    def _new_refresh(self, client_id: str, username: str, scope: str) -> str:
        token = _token("rt")
        self._refresh[token] = _Refresh(username, client_id, scope)
        return token

    def _active(self, token: str) -> _Access | None:
        access = self._access.get(token)
        return access if access is not None and access.expires_at > time.time() else None

    # --- the other endpoints ---

    def device_authorization(self, form: dict[str, str], authorization: str = "") -> dict[str, Any]:
        """RFC 8628 3.1-3.2: a device code to poll with and a user code for the user to approve
        (``approve_device`` plays the user: the verification page itself is not served)."""
        with self._lock:
            client = self._authenticate(form, authorization)
            device_code = _token("dc")
            user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
            user_code = f"{user_code[:4]}-{user_code[4:]}"
            self._devices[device_code] = _Device(client.client_id, form.get("scope", ""), user_code,
                                                 time.time() + self.device_ttl, self.device_interval)
        return {"device_code": device_code, "user_code": user_code, "verification_uri": self.url + "/device",
                "expires_in": max(0, int(self.device_ttl)), "interval": self.device_interval}

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 2.2 for access tokens; a refresh token, like any unknown string, is inactive."""
        with self._lock:
            self._introspections += 1
            access = self._active(token)
            if access is None:
                return {"active": False}
            return {"active": True, "username": access.username, "sub": access.username,
                    "client_id": access.client_id, "scope": access.scope, "token_type": "Bearer",
                    "exp": int(access.expires_at)}

    def authorize(self, query: dict[str, str]) -> str:
        """GET /authorize with consent given at once for `login_hint`: the redirect's Location (RFC 6749 4.1.2)."""
        redirect_uri = query.get("redirect_uri", "")
        with self._lock:
            known = query.get("client_id", "") in self._clients
        if not known or not redirect_uri:  # 4.1.2.1: never redirect for an unknown client or without a target
            raise OAuthError("invalid_request", "unknown client_id or no redirect_uri")
        answer = {"state": query["state"]} if "state" in query else {}
        challenge, method = query.get("code_challenge", ""), query.get("code_challenge_method", "")
        if query.get("response_type") != "code":
            answer["error"] = "unsupported_response_type"
        elif challenge and method != "S256":
            answer["error"] = "invalid_request"
            answer["error_description"] = "only code_challenge_method=S256 is supported"
        elif not query.get("login_hint"):
            answer["error"] = "login_required"
        else:
            answer["code"] = self.issue_code(query["client_id"], query["login_hint"], redirect_uri=redirect_uri,
                                             code_challenge=challenge, scope=query.get("scope", ""))
        parts = urlsplit(redirect_uri)
        return urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, urlencode(answer)]))))

    # --- HTTP ---

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        answer: dict[str, Any]
        extra: dict[str, str]
        url = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        status, answer, extra = 200, {}, {}
        try:
            if url.path == "/authorize" and handler.command == "GET":
                status, extra = 302, {"Location": self.authorize(_single_values(url.query))}
            elif url.path in ("/token", "/devicecode", "/introspect") and handler.command == "POST":
                form = self._form(handler.headers.get("Content-Type", ""), body)
                authorization = handler.headers.get("Authorization", "")
                if url.path == "/token":
                    answer = self.token(form, authorization)
                elif url.path == "/devicecode":
                    answer = self.device_authorization(form, authorization)
                elif "token" not in form:
                    raise OAuthError("invalid_request", "token is missing")
                else:
                    answer = self.introspect(form["token"])
            else:
                status, answer = 404, {"error": "not_found", "error_description": f"{handler.command} {url.path}"}
        except OAuthError as refused:
            status, answer = refused.status, {"error": refused.error, "error_description": refused.description}
            if refused.status == 401:
                extra = {"WWW-Authenticate": 'Basic realm="oauth sandbox"'}
        payload = json.dumps(answer).encode() if status != 302 else b""
        handler.send_response(status)
        if payload:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Cache-Control", "no-store")  # RFC 6749 5.1: token answers must not be cached
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _form(content_type: str, body: bytes) -> dict[str, str]:
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
        try:
            return _single_values(body.decode())
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "the body is not UTF-8") from None


def _single_values(query: str) -> dict[str, str]:
    """RFC 6749 3.1/3.2: a parameter sent twice is an invalid request."""
    values = parse_qs(query, keep_blank_values=True)
    repeated = sorted(name for name, found in values.items() if len(found) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"repeated parameter(s): {', '.join(repeated)}")
    return {name: found[0] for name, found in values.items()}


def _named_client(form: dict[str, str], authorization: str) -> str:
    """The client id a request claims, before it is checked (for the request log)."""
    if authorization[:6].lower() == "basic ":
        try:
            return unquote(base64.b64decode(authorization[6:]).decode().partition(":")[0])
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return form.get("client_id", "")


def _token(kind: str) -> str:
    """Opaque and unguessable; the prefix only tells a human reading a log which kind it is."""
    return f"{kind}-{secrets.token_urlsafe(32)}"


def _s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
