"""The signed-in session, kept on the server: the cookie ``verbund_session`` holds only a random
session id (Flask-Session, 256 bits); what belongs to it (the member's bearer token, encrypted with
Fernet under a key derived from the portal's secret, the member id, the clocks) lives in the
portal's own store, a cachelib ``FileSystemCache`` under the data folder (``portal-sessions``).
The cookie is HttpOnly, SameSite=Lax and Secure behind https (set in ``create_app``).

A session ends after ``idle_minutes`` without a request, ``absolute_hours`` after sign-in, when
the token itself expires, or at sign-out, whichever comes first. Ending it deletes it from the
store and gives the browser a new id, so a copy of the old cookie opens nothing (OWASP Session
Management Cheat Sheet: invalidate on logout, renew the id on sign-in against fixation).
"""
from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from cachelib import FileSystemCache
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app, session
from flask_session import Session


def init_app(app: Flask, folder: Path) -> None:
    """Server-side sessions for ``app`` in ``folder`` (files readable by the portal's user only)."""
    folder.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SESSION_TYPE="cachelib",
        # threshold 0: no count limit; entries expire with PERMANENT_SESSION_LIFETIME.
        SESSION_CACHELIB=FileSystemCache(str(folder), threshold=0, mode=0o600),
        SESSION_PERMANENT=True,
        SESSION_KEY_PREFIX="portal:",
    )
    Session(app)


def _fernet() -> Fernet:
    key = hashlib.sha256(b"portal-session-token:" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _renew_id() -> None:
    """Drop the stored session under its old id and give it a new one (a no-op for an empty one)."""
    interface = current_app.session_interface
    if hasattr(interface, "regenerate"):
        interface.regenerate(session)


def start(token: str, member_id: str | None, role: str, language: str | None, expires_in: int, *,
          staff_id: str | None = None, association: str | None = None) -> None:
    """Begin a session, under a new session id, for the person the token belongs to (after exchanging a
    sign-in link): a member
    (``member_id``) or staff (``role`` organizer or admin, ``staff_id``, an organizer's ``association``).
    The role only chooses menus and pages; the services check the token on every call."""
    config = current_app.config["PORTAL"]
    now = int(time.time())
    _renew_id()
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
    """Sign out: delete the stored session (a copied cookie then opens nothing); the browser keeps
    only the chosen language, under a new id."""
    language = session.get("language")
    _renew_id()
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
    if now - session["seen"] > 30:  # refresh the idle clock without rewriting the store on every request
        session["seen"] = now
    return {"token": token, "member_id": session.get("member_id"), "role": session.get("role", "member"),
            "staff_id": session.get("staff_id"), "association": session.get("association")}
