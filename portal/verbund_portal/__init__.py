"""Verbund portal: server-rendered pages for members over the services' HTTP APIs."""
from verbund_portal.app import create_app

__all__ = ["create_app"]
