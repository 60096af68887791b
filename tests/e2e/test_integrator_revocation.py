"""Revoking an integrator stops its webhooks, also when notifications-service is down at that moment.

members-service and notifications-service run as real processes on a vhost of their own. An integrator
(made over members' ``POST /integrators``) registers a webhook with its token and receives an event.
Then notifications-service stops, the integrator is revoked with ``verbund integrator NAME --revoke``
(members' use case: ``integrator.revoked`` through its outbox) and another event is published. When
notifications-service starts again, it consumes the revocation from its queue before the event: the
integrator's endpoint is disabled and hears nothing more, while an admin's endpoint of the same types
gets the event.
"""
import os
import subprocess
import sys
import uuid

import pytest
import requests

from notifications.testing import FAST, WebhookReceiver, joint_event, scheduled
from verbund import envelope
from verbund.broker import Publisher
from verbund.testing import TEST_AUTH_SECRET, ServiceProcess, bearer, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")


def test_revoking_an_integrator_disables_its_webhooks_even_when_notifications_is_down(fresh_amqp_uri, tmp_path):
    receiver = WebhookReceiver()
    members = ServiceProcess("members", fresh_amqp_uri, f"sqlite:///{tmp_path / 'members.db'}", tmp_path)
    notifications = ServiceProcess("notifications", fresh_amqp_uri, f"sqlite:///{tmp_path / 'notifications.db'}",
                                   tmp_path, FAST)
    publisher = Publisher(fresh_amqp_uri)
    name = f"rv-{uuid.uuid4().hex[:8]}"
    try:
        members.start()
        notifications.start()
        made = requests.post(f"{members.url}/integrators", headers=ADMIN, timeout=60,
                             json={"name": name, "events": ["event.*"], "personal": False})
        assert made.status_code == 201, made.text
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        hook = requests.post(f"{notifications.url}/webhooks", headers=token, timeout=30,
                             json={"url": "https://93.184.215.14/crm", "event_types": ["event.*"]})
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["id"]
        # A local receiver is a private address: only an admin allows it.
        allowed = requests.patch(f"{notifications.url}/webhooks/{hook_id}", headers=ADMIN, timeout=30,
                                 json={"url": f"{receiver.url}/crm", "allow_private": True})
        assert allowed.status_code == 200, allowed.text
        control = requests.post(f"{notifications.url}/webhooks", headers=ADMIN, timeout=30, json={
            "url": f"{receiver.url}/control", "event_types": ["event.*"], "allow_private": True})
        assert control.status_code == 201, control.text

        def publish(event):
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

        publish(scheduled(joint_event()))
        receiver.wait("/crm")
        receiver.wait("/control")

        notifications.stop()
        revoked = subprocess.run(
            [sys.executable, "-m", "verbund.tools.cli", "integrator", name, "--revoke"], capture_output=True,
            text=True, timeout=120, env={**os.environ, "MEMBERS_URL": members.url, "AUTH_SECRET": TEST_AUTH_SECRET,
                                         "AMQP_URI": fresh_amqp_uri})
        assert revoked.returncode == 0, revoked.stderr
        assert f"integrator {name} revoked" in revoked.stdout
        listed = requests.get(f"{members.url}/integrators", headers=ADMIN, timeout=30).json()["items"]
        assert next(item for item in listed if item["name"] == name)["revoked_at"]
        publish(scheduled(joint_event()))  # waits in notifications' queue behind the revocation

        notifications.start()
        receiver.wait("/control", count=2)
        view = wait_for(lambda: (lambda body: body if not body["enabled"] else None)(
            requests.get(f"{notifications.url}/webhooks/{hook_id}", headers=ADMIN, timeout=30).json()),
            timeout=30, message="the revoked integrator's webhook disabled")
        assert view["disabled_reason"] == "integrator revoked"
        assert len(receiver.received("/crm")) == 1  # the event after the revocation never went to it
        # Its token is refused, so it cannot enable the endpoint again.
        again = requests.patch(f"{notifications.url}/webhooks/{hook_id}", headers=token, timeout=30,
                               json={"enabled": True})
        assert again.status_code == 401
        # Revoking an unknown integrator says so and changes nothing.
        unknown = subprocess.run(
            [sys.executable, "-m", "verbund.tools.cli", "integrator", "nobody-here", "--revoke"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "MEMBERS_URL": members.url, "AUTH_SECRET": TEST_AUTH_SECRET})
        assert unknown.returncode == 1 and "no integrator 'nobody-here'" in unknown.stderr
    finally:
        publisher.close()
        notifications.stop()
        members.stop()
        receiver.stop()
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"integrator-{name}"], capture_output=True)
