"""The ways a notification leaves the service: e-mail over SMTP and signed
webhooks. Plain modules (no nameko, no database): ``notifications.dispatch``
decides what to send and records what happened; these only send."""
