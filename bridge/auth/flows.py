"""The token requests of each OAuth2 flow, made with authlib's OAuth2Session against the
configured endpoint, and the endpoint's answers turned into the bridge's error tree.

authlib speaks every grant the mailboxes need (client credentials, refresh token, JWT bearer for
Google service accounts, authorization code with PKCE, and the device-code poll as a plain
grant) against any token URL, so the same code reaches Microsoft, Google and the test stand-in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc.jwk import RSAKey

from bridge.config import OAuth2Config
from bridge.errors import AccessDenied, ConfigurationError, RateLimited, ServiceDown, TransientError

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Answers meaning the credentials themselves are dead: only an operator can help.
_CREDENTIAL_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client", "access_denied",
                      "invalid_scope", "consent_required", "interaction_required"}


class CredentialsRejected(AccessDenied):
    """The token endpoint refused the credentials (revoked, expired, wrong secret): a person must act."""

    def __init__(self, message: str, *, service: str = "", error: str = "") -> None:
        super().__init__(message, service=service)
        self.error = error


class AuthorizationPending(TransientError):
    """Device flow: the operator has not finished the consent yet (``slow_down``: poll slower)."""

    def __init__(self, message: str, *, service: str = "", slow_down: bool = False) -> None:
        super().__init__(message, service=service)
        self.slow_down = slow_down


@dataclass(frozen=True)
class Grant:
    """One successful token answer."""

    access_token: str
    expires_at: float
    refresh_token: str = ""
    scope: str = ""

    @classmethod
    def of(cls, token: dict[str, Any], now: float) -> Grant:
        expires_in = float(token.get("expires_in") or 3600)
        return cls(str(token["access_token"]), now + expires_in, str(token.get("refresh_token") or ""),
                   str(token.get("scope") or ""))


@dataclass(frozen=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float
    message: str = ""


class Flows:
    """Token requests for one configured credential; every call may raise CredentialsRejected,
    ServiceDown/TransientError/RateLimited (retry later) or ConfigurationError."""

    def __init__(self, cfg: OAuth2Config, service: str) -> None:
        self.cfg = cfg
        self.service = service
        self.token_url = cfg.endpoint("token")

    def _session(self, **kwargs: Any) -> OAuth2Session:
        session = OAuth2Session(self.cfg.client_id or None, self.cfg.client_secret.get_secret_value() or None,
                                scope=self.cfg.effective_scope,
                                token_endpoint_auth_method="client_secret_post", **kwargs)
        session.trust_env = False
        return session

    def _call(self, request: Any) -> dict[str, Any]:
        """Run one token request and translate what can go wrong."""
        try:
            return request()
        except OAuthError as exc:
            if exc.error in ("authorization_pending", "slow_down"):
                raise AuthorizationPending(exc.error, service=self.service, slow_down=exc.error == "slow_down") from exc
            if exc.error in _CREDENTIAL_ERRORS or exc.error == "expired_token":
                raise CredentialsRejected(f"token endpoint: {exc.error}: {exc.description or ''}".rstrip(": "),
                                          service=self.service, error=exc.error) from exc
            raise TransientError(f"token endpoint: {exc.error}", service=self.service) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 429:
                retry = exc.response.headers.get("Retry-After", "") if exc.response is not None else ""
                raise RateLimited("token endpoint: 429", service=self.service,
                                  retry_after=float(retry) if retry.isdigit() else 30.0) from exc
            raise ServiceDown(f"token endpoint: HTTP {status}", service=self.service) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ServiceDown(f"token endpoint unreachable: {type(exc).__name__}", service=self.service) from exc
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise TransientError(f"token endpoint: unusable answer ({type(exc).__name__})", service=self.service) from exc

    def _fetch(self, **params: Any) -> Grant:
        now = time.time()
        with self._session() as session:
            token = self._call(lambda: session.fetch_token(self.token_url, timeout=self.cfg.timeout_seconds, **params))
        return Grant.of(token, now)

    def client_credentials(self) -> Grant:
        return self._fetch(grant_type="client_credentials")

    def refresh(self, refresh_token: str) -> Grant:
        """Trade a refresh token; the answer's new refresh token (rotation) or the same one."""
        now = time.time()
        with self._session() as session:
            token = self._call(lambda: session.refresh_token(self.token_url, refresh_token=refresh_token,
                                                             timeout=self.cfg.timeout_seconds))
        grant = Grant.of(token, now)
        return grant if grant.refresh_token else Grant(grant.access_token, grant.expires_at, refresh_token, grant.scope)

    def service_account(self, user: str) -> Grant:
        """Google domain-wide delegation: a JWT signed with the service account's key, for ``user``."""
        key = _service_account_key(self.cfg.service_account_file, self.service)
        now = int(time.time())
        assertion = JWTBearerGrant.sign(RSAKey.import_key(key["private_key"]), issuer=key["client_email"], audience=self.token_url,
                                        subject=user, issued_at=now, expires_at=now + 3600,
                                        claims={"scope": self.cfg.effective_scope}, header={"alg": "RS256"})
        if isinstance(assertion, bytes):
            assertion = assertion.decode()
        with self._session() as session:
            session.client_id = None  # the assertion is the credential
            token = self._call(lambda: session.fetch_token(
                self.token_url, grant_type=JWTBearerGrant.GRANT_TYPE, assertion=assertion,
                timeout=self.cfg.timeout_seconds))
        return Grant.of(token, float(now))

    def start_device(self) -> DeviceCode:
        url = self.cfg.endpoint("device")
        if not url:
            raise ConfigurationError("this provider has no device flow for mail: use the pasted-code login",
                                     service=self.service)
        now = time.time()

        form = {"client_id": self.cfg.client_id, "scope": self.cfg.effective_scope}
        if self.cfg.client_secret.get_secret_value():  # a confidential client authenticates here too
            form["client_secret"] = self.cfg.client_secret.get_secret_value()

        def request() -> dict[str, Any]:
            response = requests.post(url, data=form, timeout=self.cfg.timeout_seconds)
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    response.raise_for_status()
                raise OAuthError(error=body.get("error", "error"), description=body.get("error_description"))
            return response.json()

        data = self._call(request)
        return DeviceCode(str(data["device_code"]), str(data["user_code"]),
                          str(data.get("verification_uri") or data.get("verification_url") or ""),
                          now + float(data.get("expires_in") or 900), float(data.get("interval") or 5),
                          str(data.get("message") or ""))

    def poll_device(self, device: DeviceCode) -> Grant:
        return self._fetch(grant_type=DEVICE_GRANT, device_code=device.device_code)

    def authorization_url(self, login_hint: str) -> tuple[str, str, str]:
        """The consent URL to open (with PKCE), its state and the code verifier."""
        from authlib.common.security import generate_token

        verifier = generate_token(64)
        with self._session(redirect_uri=self.cfg.redirect_uri, code_challenge_method="S256") as session:
            extra = {"login_hint": login_hint} if login_hint else {}
            if self.cfg.provider == "google":
                extra.update(access_type="offline", prompt="consent")  # or Google gives no refresh token
            url, state = session.create_authorization_url(self.cfg.endpoint("authorize"), code_verifier=verifier,
                                                          **extra)
        return url, state, verifier

    def exchange_code(self, code: str, verifier: str) -> Grant:
        now = time.time()
        with self._session(redirect_uri=self.cfg.redirect_uri) as session:
            token = self._call(lambda: session.fetch_token(
                self.token_url, grant_type="authorization_code", code=code, code_verifier=verifier,
                timeout=self.cfg.timeout_seconds))
        return Grant.of(token, now)


def _service_account_key(path: str, service: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {"private_key": str(data["private_key"]), "client_email": str(data["client_email"])}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(f"oauth2.service_account_file {path}: not a service account key "
                                 f"({type(exc).__name__})", service=service) from None
