"""members-service: member organisations, what they offer and seek, their consent."""
