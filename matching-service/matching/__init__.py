"""matching-service: cross-sector partner suggestions and partner-project proposals."""
