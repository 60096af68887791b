"""Configuration of the channels, from the environment with embedded
defaults. ``NOTIFICATIONS_<NAME>`` wins over ``<NAME>``, as in ``verbund.settings``."""
from __future__ import annotations

from dataclasses import dataclass

from notifications.channels.email import ascii_domain, parse_mail_from
from notifications.domain import FREQUENCIES, MailPolicy, MeetingTimes
from verbund.settings import env


def _env(name: str, default: str, old_name: str | None = None) -> str:
    return env(name, default, service="notifications", old_name=old_name)


def _seconds(raw: str) -> tuple[float, ...]:
    return tuple(float(part) for part in raw.split(",") if part.strip())


def _flag(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _choice(name: str, default: str, choices) -> str:
    value = _env(name, default).strip()
    if value not in choices:
        raise SystemExit(f"notifications-service configuration: {name} must be one of {', '.join(choices)}, "
                         f"not {value!r}")
    return value


@dataclass(frozen=True)
class Config:
    smtp_host: str = "localhost"
    smtp_port: int = 8025
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "Verbund <noreply@verbund.example>"
    # E-mails sent per second at most; a big announcement queues and drains at this pace.
    email_rate: float = 20.0
    email_retry_delays: tuple[float, ...] = (60, 300, 1800, 7200)
    # After the Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
    webhook_retry_delays: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 20
    webhook_per_endpoint: int = 2  # in flight at once per endpoint, so a stalled one cannot take every slot
    dispatch_interval: float = 1.0
    digest_hour: int = 7
    digest_weekday: int = 0  # Monday
    digest_timezone: str = "Europe/Berlin"
    digest_check_interval: float = 60.0
    template_dir: str = ""  # a folder whose templates override the built-in ones
    # The portal's address: mails link to its pages (/events/<id>, /projects, /suggestions, /inbox, /contacts).
    portal_url: str = "http://localhost:8000"
    # The notification policy's settings (domain.MailPolicy).
    default_frequency: str = "weekly"
    coalesce_seconds: float = 30.0
    daily_budget: int = 8
    # Project invitations mailed at once per member and day; more that day wait for the digest (0: no limit).
    daily_invitations: int = 1
    # Meetings at matchmaking days (issue 18): reminder lead, daily summary hour, the survey's delay.
    meeting_reminder_minutes: int = 15
    meeting_summary_hour: int = 8
    meeting_survey_delay_days: int = 182
    meeting_check_interval: float = 30.0

    @property
    def policy(self) -> MailPolicy:
        return MailPolicy(self.default_frequency, self.coalesce_seconds, self.daily_budget)

    @property
    def meeting_times(self) -> MeetingTimes:
        return MeetingTimes(self.meeting_reminder_minutes, self.meeting_summary_hour,
                            survey_delay_days=self.meeting_survey_delay_days, timezone=self.digest_timezone)

    @property
    def mail_domain(self) -> str:
        """MAIL_FROM's domain in ASCII (IDNA), for Message-IDs; ``verbund.example`` if MAIL_FROM is bad."""
        try:
            return ascii_domain(parse_mail_from(self.mail_from).domain)
        except ValueError:
            return "verbund.example"

    @classmethod
    def from_env(cls) -> Config:
        default = cls()
        mail_from = _env("MAIL_FROM", default.mail_from)
        try:
            parse_mail_from(mail_from)  # at start-up, not at the first mail
        except ValueError as exc:
            raise SystemExit(f"notifications-service configuration: {exc}") from None
        return cls(
            smtp_host=_env("SMTP_HOST", default.smtp_host),
            smtp_port=int(_env("SMTP_PORT", str(default.smtp_port))),
            smtp_user=_env("SMTP_USER", ""),
            smtp_password=_env("SMTP_PASSWORD", ""),
            smtp_starttls=_flag(_env("SMTP_STARTTLS", "false")),
            smtp_timeout=float(_env("SMTP_TIMEOUT_SECONDS", str(default.smtp_timeout))),
            mail_from=mail_from,
            email_rate=float(_env("EMAIL_RATE_PER_SECOND", str(default.email_rate))),
            email_retry_delays=_seconds(_env("EMAIL_RETRY_DELAYS_SECONDS", "60,300,1800,7200",
                                                         old_name="EMAIL_RETRY_DELAYS")),
            webhook_retry_delays=_seconds(_env("WEBHOOK_RETRY_DELAYS_SECONDS", "5,300,1800,7200,18000,36000",
                                                           old_name="WEBHOOK_RETRY_DELAYS")),
            webhook_timeout=float(_env("WEBHOOK_TIMEOUT_SECONDS", str(default.webhook_timeout))),
            webhook_concurrency=int(_env("WEBHOOK_CONCURRENCY", str(default.webhook_concurrency))),
            webhook_per_endpoint=int(_env("WEBHOOK_PER_ENDPOINT", str(default.webhook_per_endpoint))),
            dispatch_interval=float(_env("DISPATCH_INTERVAL_SECONDS", str(default.dispatch_interval))),
            digest_hour=int(_env("DIGEST_HOUR", str(default.digest_hour))),
            digest_weekday=int(_env("DIGEST_WEEKDAY", str(default.digest_weekday))),
            digest_timezone=_env("DIGEST_TIMEZONE", default.digest_timezone),
            digest_check_interval=float(_env("DIGEST_CHECK_SECONDS", str(default.digest_check_interval))),
            template_dir=_env("TEMPLATE_DIR", ""),
            portal_url=_env("PORTAL_URL", default.portal_url).rstrip("/"),
            default_frequency=_choice("DEFAULT_FREQUENCY", default.default_frequency, FREQUENCIES),
            coalesce_seconds=float(_env("COALESCE_SECONDS", str(default.coalesce_seconds))),
            daily_budget=int(_env("DAILY_MAIL_BUDGET", str(default.daily_budget))),
            daily_invitations=int(_env("DAILY_INVITATION_MAILS", str(default.daily_invitations))),
            meeting_reminder_minutes=int(_env("MEETING_REMINDER_MINUTES", str(default.meeting_reminder_minutes))),
            meeting_summary_hour=int(_env("MEETING_SUMMARY_HOUR", str(default.meeting_summary_hour))),
            meeting_survey_delay_days=int(_env("MEETING_SURVEY_DELAY_DAYS", str(default.meeting_survey_delay_days))),
            meeting_check_interval=float(_env("MEETING_CHECK_SECONDS", str(default.meeting_check_interval))),
        )
