"""E-mail: composing a notification mail and sending it over SMTP."""
from __future__ import annotations

import smtplib
from email import encoders, policy
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate

from notifications.rendering import Rendered

# compat32 builds a message four times faster than the modern policy, which matters at hundreds of
# mails a second. Lines up to the RFC 5322 limit, so that the long unsubscribe URL is never folded.
POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=998)
UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP  # readable in the source of a mail, unlike base64


class SendError(Exception):
    """Sending failed; ``permanent`` when the server refused for good (5xx), so retrying is pointless."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def message_id(kind: str, delivery_key: str, domain: str) -> str:
    """Stable per delivery: a mail sent again after a crash carries the same id, so mail systems see a duplicate."""
    return f"<{kind}.{delivery_key}@{domain}>"


def compose(*, mail_from: str, to_address: str, to_name: str | None, rendered: Rendered, language: str,
            message_id: str, unsubscribe_url: str, ics: bytes | None = None,
            ics_method: str = "PUBLISH") -> Message:
    """A notification mail: plain text, the ``.ics`` as an attachment, one-click unsubscribe (RFC 8058)."""
    text = MIMEText(rendered.text, "plain", UTF8_QP, policy=POLICY)
    if ics is None:
        message = text
    else:
        message = MIMEMultipart("mixed", policy=POLICY)
        message.attach(text)
        calendar = MIMEBase("text", "calendar", method=ics_method, charset="utf-8", policy=POLICY)
        calendar.set_payload(ics)
        encoders.encode_base64(calendar)
        calendar.add_header("Content-Disposition", "attachment", filename="event.ics")
        message.attach(calendar)
    message["From"] = mail_from
    message["To"] = formataddr((to_name, to_address), charset="utf-8") if to_name else to_address
    message["Subject"] = Header(rendered.subject, "utf-8").encode() if not rendered.subject.isascii() \
        else rendered.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message["Content-Language"] = language
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    return message


def valid_address(address: str | None) -> bool:
    if not address or "@" not in address:
        return False
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        return False
    return True


class SmtpSender:
    """One SMTP connection for a batch of mails; reconnects after an error."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, user: str = "", password: str = "",
                 starttls: bool = False):
        self.host, self.port, self.timeout = host, port, timeout
        self.user, self.password, self.starttls = user, password, starttls
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password)
            self._smtp = smtp
        return self._smtp

    def send(self, message: Message, to_address: str) -> None:
        try:
            refused = self._connection().send_message(message, to_addrs=[to_address])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            raise SendError(f"recipient refused: {code} {reason!r}", permanent=code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SendError(f"SMTP server {self.host}:{self.port} unavailable: {exc}") from None
        if refused:
            code, reason = next(iter(refused.values()))
            raise SendError(f"recipient refused: {code} {reason!r}", permanent=code >= 500)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
