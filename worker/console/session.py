"""Sign-in and request safety for the console.

sign-in     ADMIN_TOKEN -> "operator", VIEWER_TOKEN -> "viewer" (hmac.compare_digest
            against both, whichever is set)
session     a cookie `role|expires|csrf` signed with HMAC-SHA256 under a key derived from
            the tokens: every console process of a deployment accepts it, and changing
            a token signs everyone out. HttpOnly, SameSite=Strict, Path=/, Secure over
            https, for SESSION_SECONDS.
POST        must come from the console's own origin (`Sec-Fetch-Site: same-origin`, or
            with no such header an `Origin` equal to the console's) and, once signed in,
            carry the session's CSRF token in the form field `csrf`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal

from starlette.requests import Request
from starlette.responses import Response

from worker.settings import Settings

Role = Literal["operator", "viewer"]
COOKIE: Final = "tw_console"
SESSION_SECONDS: Final = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its role, when the session ends, and its CSRF token."""

    role: Role
    expires: int
    csrf: str

    @property
    def can_change(self) -> bool:
        """Operators replay and drop; viewers only look."""
        return self.role == "operator"


class SessionSigner:
    """Issues and checks session cookies for one deployment's tokens."""

    def __init__(self, settings: Settings) -> None:
        self._tokens: list[tuple[Role, bytes]] = []
        if settings.admin_token is not None:
            self._tokens.append(("operator", settings.admin_token.get_secret_value().encode()))
        if settings.viewer_token is not None:
            self._tokens.append(("viewer", settings.viewer_token.get_secret_value().encode()))
        material = b"\0".join([b"tw-console-session", *(t for _, t in self._tokens)])
        self._key = hashlib.sha256(material).digest()

    @property
    def enabled(self) -> bool:
        """False when neither token is set: the console is off."""
        return bool(self._tokens)

    def role_for(self, password: str) -> Role | None:
        """The role a password signs in as, or None."""
        given = password.encode()
        found: Role | None = None
        for role, token in self._tokens:  # compare with every token, whichever matches
            if hmac.compare_digest(given, token):
                found = role
        return found

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def issue(self, role: Role, *, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        expires = int(now if now is not None else time.time()) + SESSION_SECONDS
        session = Session(role, expires, secrets.token_urlsafe(24))
        payload = f"{role}|{expires}|{session.csrf}".encode()
        return session, base64.urlsafe_b64encode(payload).decode() + "." + self._mac(payload)

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie value holds, or None (absent, forged or expired)."""
        if not cookie or "." not in cookie:
            return None
        encoded, mac = cookie.rsplit(".", 1)
        try:
            payload = base64.urlsafe_b64decode(encoded.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        role, expires, csrf = payload.decode().split("|")
        if role not in ("operator", "viewer") or int(expires) < (now or time.time()):
            return None
        return Session("operator" if role == "operator" else "viewer", int(expires), csrf)


def set_cookie(response: Response, request: Request, value: str) -> None:
    """Attach the session cookie (Secure when the console is served over https)."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def same_origin(request: Request) -> bool:
    """True when a POST comes from the console's own pages (see the module docstring)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and origin == own_origin(request)


def csrf_ok(session: Session, given: object) -> bool:
    """The form's CSRF field matches the session's token."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), session.csrf.encode())
