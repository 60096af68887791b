"""nameko dependency providers of notifications (besides the kit's Database)."""
from __future__ import annotations

import eventlet
from nameko.extensions import DependencyProvider

from notifications import dispatch
from notifications.channels.email import SmtpSender
from notifications.config import Config
from notifications.rendering import Renderer
from verbund.settings import auth_secret


class Channels(DependencyProvider):
    """Configuration, templates and the pool webhook deliveries run in, per container."""

    def setup(self):
        self.config = Config.from_env()
        self.renderer = Renderer(self.config.template_dir, self.config.portal_url)
        self.secret = auth_secret()
        self.pool = eventlet.GreenPool(self.config.webhook_concurrency)
        self.pacer = dispatch.Pacer(self.config.email_rate)
        self.webhooks = dispatch.WebhookDispatcher(self.config, self.renderer, self.pool)

    def stop(self):
        # Let posts in flight finish (each is bounded by the timeout) rather than cut them off.
        with eventlet.Timeout(self.config.webhook_timeout + 5, False):
            self.pool.waitall()

    def kill(self):
        for thread in list(self.pool.coroutines_running):
            thread.kill()

    def get_dependency(self, worker_ctx):
        return self

    def smtp(self) -> SmtpSender:
        c = self.config
        return SmtpSender(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout, user=c.smtp_user,
                          password=c.smtp_password, starttls=c.smtp_starttls)
