"""events-service: joint events, registrations, waitlists and calendars."""
