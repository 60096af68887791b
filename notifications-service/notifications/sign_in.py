"""Sign-in links: the mail members-service asks for by RPC (``send_sign_in_link``). The link's
secret arrives over the services' RPC exchange and is not stored here: the mail is composed and
sent at once, and neither the link nor the address is logged."""
from __future__ import annotations

import logging
import uuid
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate

from notifications.channels import email as mail
from notifications.config import Config
from notifications.domain import language as choose_language
from notifications.rendering import Renderer

log = logging.getLogger(__name__)

ATTEMPTS = 2  # one more on a temporary SMTP error; the link is short-lived, so no queue of retries

# What members-service asks to mail (``purpose``) and the template of each: a sign-in link, the link
# after a self-registration (it also confirms the address), the link confirming a changed contact
# e-mail (to the new address), and the notice of that change (to the old address).
TEMPLATES = {"sign_in": "sign_in_link", "welcome": "welcome_link", "confirm_email": "confirm_email",
             "email_change_notice": "email_change_notice"}


def compose(config: Config, renderer: Renderer, *, email: str, contact_name: str | None, organisation: str | None,
            language: str | None, link: str, expires_minutes: int, purpose: str = "sign_in"):
    """The mail of ``purpose`` (``TEMPLATES``; ``sign_in_link.txt`` for a sign-in) in ``language``, German
    when unknown: plain text, no unsubscribe header (the person asked for it, or it is about its own
    account), ``Auto-Submitted``. Raises RenderError, or ValueError for an address a mail cannot go to
    or an unknown ``purpose``."""
    lang = choose_language(language, None)
    if purpose not in TEMPLATES:
        raise ValueError(f"unknown purpose {purpose!r}")
    rendered = renderer.render_requested(TEMPLATES[purpose], lang, {
        "link": link, "organisation": organisation, "expires_minutes": expires_minutes, "purpose": purpose},
        contact_name)
    message = MIMEText(rendered.text, "plain", mail.UTF8_QP, policy=mail.POLICY)
    message["From"] = mail.header_address(mail.parse_mail_from(config.mail_from))
    message["To"] = mail.header_address(mail.mailbox(email, contact_name))
    message["Subject"] = rendered.subject if rendered.subject.isascii() else Header(rendered.subject, "utf-8").encode()
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = mail.message_id(purpose.replace("_", "-"), str(uuid.uuid4()), config.mail_domain)
    message["Content-Language"] = lang
    message["Auto-Submitted"] = "auto-generated"
    return message


def send(config: Config, renderer: Renderer, sender: mail.SmtpSender, **link) -> dict:
    """Compose and send one sign-in mail (``link`` as :func:`compose` takes it). Returns ``{"sent": True}``,
    or ``{"sent": False, "error": ...}`` when it cannot be composed or sent (logged without the link)."""
    try:
        message = compose(config, renderer, **link)
    except Exception as exc:
        log.warning("sign-in mail could not be composed: %s", type(exc).__name__)
        return {"sent": False, "error": f"cannot compose: {type(exc).__name__}"}
    error = None
    for _ in range(ATTEMPTS):
        try:
            sender.send(message, link["email"])
            return {"sent": True}
        except mail.SendError as exc:
            error = exc
            if exc.permanent:
                break
    log.warning("sign-in mail not sent: %s", str(error).replace(link["email"], "<address>"))
    return {"sent": False, "error": str(error).replace(link["email"], "<address>")}
