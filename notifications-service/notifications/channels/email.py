"""E-mail: composing a notification mail and sending it over SMTP."""
from __future__ import annotations

import re
import smtplib
from email import encoders, policy
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from functools import lru_cache

from notifications.rendering import Rendered

# compat32 builds a message four times faster than the modern policy, which matters at hundreds of
# mails a second. Lines up to the RFC 5322 limit, so that the long unsubscribe URL is never folded.
POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=998)
UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP  # readable in the source of a mail, unlike base64
# Control characters (stored names may hold them) would break a header or smuggle another one in.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class SendError(Exception):
    """Sending failed; ``permanent`` when the server refused for good (5xx), so retrying is pointless."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def message_id(kind: str, delivery_key: str, domain: str) -> str:
    """Stable per delivery: a mail sent again after a crash carries the same id, so mail systems see a duplicate."""
    return f"<{kind}.{delivery_key}@{domain}>"


def mailbox(addr_spec: str, display_name: str | None = None) -> Address:
    """An address object from an addr-spec ("erika@example.org") and an optional display name.

    Control characters in the name become spaces, surrounding blanks go. Raises ValueError when
    ``addr_spec`` is not one RFC 5322 addr-spec with an ASCII local part and a domain.
    """
    name = _CONTROL.sub(" ", display_name or "").strip()
    try:
        address = Address(display_name=name, addr_spec=addr_spec.strip())
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError(f"{addr_spec!r} is not an e-mail address") from None
    if not address.username or not address.domain:
        raise ValueError(f"{addr_spec!r} is not an e-mail address")
    if not address.username.isascii():  # would need SMTPUTF8 (RFC 6531), which we do not send with
        raise ValueError(f"{addr_spec!r} has a non-ASCII local part")
    return address


def header_address(address: Address) -> str:
    """``address`` as the value of an address header (From, To, Reply-To) after RFC 5322: the display
    name quoted when needed and RFC 2047-encoded when not ASCII, the address itself outside it
    (``=?utf-8?q?Verbund_Gesch=C3=A4ftsstelle?= <noreply@verbund.example>``), a non-ASCII domain
    in its IDNA form (RFC 5891).

    email.utils.formataddr does the encoding: the modern policy's header folder does the same
    but takes milliseconds a header and encodes a non-ASCII domain as an RFC 2047 word, which is invalid.
    """
    domain = address.domain if address.domain.isascii() else address.domain.encode("idna").decode("ascii")
    local = address.addr_spec.rpartition("@")[0]  # quoted by Address when it needs to be
    return formataddr((address.display_name or None, f"{local}@{domain}"), charset="utf-8")


@lru_cache(maxsize=8)
def parse_mail_from(value: str) -> Address:
    """MAIL_FROM (``Verbund Geschäftsstelle <noreply@verbund.example>`` or a bare address) as an address
    object, read by the standard library's RFC 5322 header parser. Raises ValueError that says what is
    wrong unless it is exactly one address with a local part and a domain."""
    example = "such as 'Verbund Geschäftsstelle <noreply@verbund.example>'"
    if _CONTROL.search(value):
        raise ValueError(f"MAIL_FROM must be one line, {example}")
    try:
        header = policy.default.header_factory("From", value)
        addresses = header.addresses
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"MAIL_FROM is not an e-mail address ({exc}), {example}: {value!r}") from None
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain or header.defects:
        raise ValueError(f"MAIL_FROM must be exactly one e-mail address, {example}, not {value!r}")
    return addresses[0]


def compose(*, mail_from: str | Address, to_address: str, to_name: str | None, rendered: Rendered, language: str,
            message_id: str, unsubscribe_url: str, ics: bytes | None = None,
            ics_method: str = "PUBLISH") -> Message:
    """A notification mail: plain text, the ``.ics`` as an attachment, one-click unsubscribe (RFC 8058).

    ``mail_from`` is MAIL_FROM (parsed by :func:`parse_mail_from`) or an address object; From and To
    are built from address objects (:func:`header_address`), never pasted together as text.
    Raises ValueError for a ``to_address`` that is no e-mail address.
    """
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
    sender = parse_mail_from(mail_from) if isinstance(mail_from, str) else mail_from
    message["From"] = header_address(sender)
    message["To"] = header_address(mailbox(to_address, to_name))
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
    """Whether a mail can be addressed to ``address`` (see :func:`mailbox`)."""
    if not address:
        return False
    try:
        mailbox(address)
    except ValueError:
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
