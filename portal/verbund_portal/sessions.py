"""The signed-in session: Flask's signed cookie, with the member's bearer token inside it
encrypted (Fernet, a key derived from the portal's secret), so the cookie never shows the token.
The cookie is HttpOnly, SameSite=Lax and Secure behind https (set in ``create_app``).

A session ends after ``idle_minutes`` without a request, ``absolute_hours`` after sign-in, when
the token itself expires, or at sign-out, whichever comes first.
"""
from __future__ import annotations

import base64
import hashlib
import time

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app, session


def _fernet() -> Fernet:
    key = hashlib.sha256(b"portal-session-token:" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def start(token: str, member_id: str | None, role: str, language: str | None, expires_in: int, *,
          staff_id: str | None = None, association: str | None = None) -> None:
    """Begin a session for the person the token belongs to (after exchanging a sign-in link): a member
    (``member_id``) or staff (``role`` organizer or admin, ``staff_id``, an organizer's ``association``).
    The role only chooses menus and pages; the services check the token on every call."""
    config = current_app.config["PORTAL"]
    now = int(time.time())
    session.clear()
    session.permanent = True
    session.update({
        "token": _fernet().encrypt(token.encode()).decode(),
        "member_id": member_id, "role": role, "staff_id": staff_id, "association": association,
        "started": now, "seen": now,
        "ends": now + min(int(expires_in), config.absolute_hours * 3600),
    })
    if language in ("de", "en"):
        session["language"] = language


def end() -> None:
    """Sign out: forget everything but the chosen language."""
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language


def current() -> dict | None:
    """``{"token", "member_id", "role", "staff_id", "association"}`` of a live session, else None (an
    expired one is ended). ``member_id`` is None for staff, ``staff_id`` None for members."""
    if "token" not in session:
        return None
    config = current_app.config["PORTAL"]
    now = int(time.time())
    if now > session.get("ends", 0) or now - session.get("seen", 0) > config.idle_minutes * 60:
        end()
        session["expired"] = True
        return None
    try:
        token = _fernet().decrypt(session["token"].encode()).decode()
    except InvalidToken:  # the portal's secret changed
        end()
        return None
    if now - session["seen"] > 30:  # refresh the idle clock without rewriting the cookie on every request
        session["seen"] = now
    return {"token": token, "member_id": session.get("member_id"), "role": session.get("role", "member"),
            "staff_id": session.get("staff_id"), "association": session.get("association")}
