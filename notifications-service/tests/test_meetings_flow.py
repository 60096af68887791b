"""meeting.requested on the real broker reaches a real notifications-service process: the member
asked gets its inbox entry and a mail in its language through a real SMTP server process."""
import uuid

import pytest

from notifications.testing import joint_event, member, scheduled
from verbund import envelope
from verbund.testing import wait_for

pytestmark = pytest.mark.integration


def test_a_meeting_request_reaches_the_inbox_and_mailbox_of_the_member_asked(platform, mailcatcher):
    asker, asked = platform.members(member(name="Muster Antriebstechnik GmbH"), member(language="en"))
    joint = joint_event()
    body = {"id": str(uuid.uuid4()), "event_id": joint["id"], "requester_id": asker["id"],
            "recipient_id": asked["id"], "status": "pending", "slot": None, "starts_at": None, "ends_at": None,
            "table": None, "version": 1}
    platform.publish(scheduled(joint), envelope.new_event("meeting.requested", "/verbund/meetings", body["id"],
                                                          {"meeting": body}))
    wait_for(lambda: any(item["type"] == "meeting.requested" for item in platform.inbox(asked["id"])["items"]),
             timeout=30, message="the request in the inbox of the member asked")
    [entry] = [item for item in platform.inbox(asked["id"])["items"] if item["type"] == "meeting.requested"]
    assert entry["title"].startswith("Meeting request from Muster Antriebstechnik GmbH")  # its language: en
    assert entry["link"] == f"/events/{joint['id']}/meetings"
    wait_for(lambda: [m for m in mailcatcher.mails(asked["contact"]["email"])
                      if str(m["Subject"]).startswith("Meeting request from Muster Antriebstechnik GmbH")],
             timeout=60, message="the request's mail in English")
    assert not any(item["type"] == "meeting.requested" for item in platform.inbox(asker["id"])["items"])
