"""E-mail: composing a notification mail and sending it over SMTP."""
from __future__ import annotations

import re
import smtplib
from email import encoders, policy
from email.charset import QP, Charset
from email.errors import HeaderParseError, ObsoleteHeaderDefect
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses
from functools import lru_cache

import idna

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
    ascii_domain(address.domain, addr_spec)  # a domain no mail system can reach is no address
    return address


def ascii_domain(domain: str, where: str = "") -> str:
    """``domain`` as it goes on the wire: ASCII as it is, an internationalised domain in its
    IDNA 2008 A-label form with the UTS #46 mapping (``bäcker.example`` → ``xn--bcker-gra.example``,
    ``straße.de`` → ``xn--strae-oqa.de`` as DENIC registers it; Python's ``idna`` codec is IDNA 2003,
    which would turn ß into ss). Raises ValueError for a domain IDNA cannot encode."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{where or domain!r} has a domain that is not a valid internationalised name: {exc}") \
            from None


def envelope_address(addr_spec: str) -> str:
    """An addr-spec as the SMTP envelope carries it (MAIL FROM, RCPT TO): the domain in IDNA
    (:func:`ascii_domain`), so no SMTPUTF8 extension (RFC 6531) is needed; the local part stays as
    quoted by ``Address``. Raises ValueError for what :func:`mailbox` refuses."""
    address = mailbox(addr_spec)
    local = address.addr_spec.rpartition("@")[0]
    return f"{local}@{ascii_domain(address.domain)}"


def header_address(address: Address) -> str:
    """``address`` as the value of an address header (From, To, Reply-To) after RFC 5322: the display
    name quoted when needed and RFC 2047-encoded when not ASCII, the address itself outside it
    (``=?utf-8?q?Verbund_Gesch=C3=A4ftsstelle?= <noreply@verbund.example>``), a non-ASCII domain
    in its IDNA form (RFC 5891).

    email.utils.formataddr does the encoding: the modern policy's header folder does the same
    but takes milliseconds a header and encodes a non-ASCII domain as an RFC 2047 word, which is invalid.
    """
    local = address.addr_spec.rpartition("@")[0]  # quoted by Address when it needs to be
    return formataddr((address.display_name or None, f"{local}@{ascii_domain(address.domain)}"), charset="utf-8")


@lru_cache(maxsize=8)
def parse_mail_from(value: str) -> Address:
    """MAIL_FROM (``Verbund Geschäftsstelle <noreply@verbund.example>``, ``Verbund e.V. <...>`` or a
    bare address) as an address object, read by the standard library's RFC 5322 header parser.

    Obsolete syntax (RFC 5322 section 4, e.g. the unquoted period of "e.V." in the display name) is
    read, as the RFC asks of a parser: the name is quoted when the header is written
    (:func:`header_address`). Raises ValueError naming the problem (several addresses, no domain,
    a missing ``>``, ...) unless it is exactly one address with a local part and a valid domain."""
    example = "such as 'Verbund e.V. <noreply@verbund.example>'"
    if _CONTROL.search(value):
        raise ValueError(f"MAIL_FROM must be one line, {example}")
    try:
        header = policy.default.header_factory("From", value)
        addresses = header.addresses
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"MAIL_FROM is not an e-mail address ({exc}), {example}: {value!r}") from None
    problems = [str(defect) for defect in header.defects if not isinstance(defect, ObsoleteHeaderDefect)]
    if len(addresses) != 1:
        problems.insert(0, f"it holds {len(addresses)} addresses, not one")
    elif not addresses[0].username or not addresses[0].domain:
        problems.insert(0, "the address needs a local part, an @ and a domain")
    if not problems:
        try:
            ascii_domain(addresses[0].domain)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError(f"MAIL_FROM {value!r} is not one e-mail address: {'; '.join(dict.fromkeys(problems))}; "
                         f"use one address with an optional display name, {example}")
    return addresses[0]


def compose(*, mail_from: str | Address, to_address: str, to_name: str | None, rendered: Rendered, language: str,
            message_id: str, unsubscribe_url: str, ics: bytes | None = None,
            ics_method: str = "PUBLISH", earlier_ics=()) -> Message:
    """A notification mail: plain text, the ``.ics`` as an attachment, one-click unsubscribe (RFC 8058).
    ``earlier_ics``: further calendar files ``(ics, method, filename)`` attached before it (a move:
    the cancellation of the old date, then the new one).

    ``mail_from`` is MAIL_FROM (parsed by :func:`parse_mail_from`) or an address object; From and To
    are built from address objects (:func:`header_address`), never pasted together as text.
    Raises ValueError for a ``to_address`` that is no e-mail address.
    """
    text = MIMEText(rendered.text, "plain", UTF8_QP, policy=POLICY)
    files = [*earlier_ics, *([(ics, ics_method, "event.ics")] if ics is not None else [])]
    if not files:
        message = text
    else:
        message = MIMEMultipart("mixed", policy=POLICY)
        message.attach(text)
        for payload, method, filename in files:
            calendar = MIMEBase("text", "calendar", method=method, charset="utf-8", policy=POLICY)
            calendar.set_payload(payload)
            encoders.encode_base64(calendar)
            calendar.add_header("Content-Disposition", "attachment", filename=filename)
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
        """Send ``message`` to ``to_address``; the envelope (MAIL FROM from the From header, RCPT TO)
        carries domains in IDNA (:func:`envelope_address`), so a compat32 message never takes
        smtplib's SMTPUTF8 path. Raises SendError (``permanent`` for a 5xx or an address that
        cannot be put on the wire)."""
        try:
            sender = envelope_address(getaddresses([message["From"]])[0][1])
            recipient = envelope_address(to_address)
        except (ValueError, IndexError, TypeError) as exc:
            raise SendError(f"cannot address the mail: {exc}", permanent=True) from None
        try:
            refused = self._connection().send_message(message, from_addr=sender, to_addrs=[recipient])
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
