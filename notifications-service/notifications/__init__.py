"""notifications-service: the right message to the right member, by inbox, e-mail and webhook."""
