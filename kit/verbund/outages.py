"""Telling an outage from a fault.

A handler that fails because the service's database is away, or because
another service does not answer, says nothing about the message it was
given: the same message will take effect once the dependency is back. Such a
message must not spend its retry attempts and end in the dead-letter queue
(that would lose it for everyone but an operator), and an HTTP request that
meets it is answered 503 with ``Retry-After`` (RFC 9110 section 15.6.4), not
500. A fault of the message itself (invalid data, a bug, a constraint) is
not an outage and goes through the retry schedule to the dead-letter queue.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# What a nameko RPC caller sees when the other service's database is away (RemoteError.exc_type).
REMOTE_DATABASE_ERRORS = frozenset({"OperationalError", "InterfaceError"})


class Unavailable(RuntimeError):
    """A dependency (another service, its database) did not answer in time: the work that needed it
    is not at fault and is tried again later."""


def database_reachable(engine: Engine) -> bool:
    """True when ``engine``'s database answers ``SELECT 1`` on a fresh connection now."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except DBAPIError:
        return False


def is_outage(exc: BaseException | None, engine: Engine | None = None) -> bool:
    """Whether ``exc`` means a dependency is away rather than that the work is at fault: an
    :class:`Unavailable`; a database error raised because the connection was lost
    (SQLAlchemy's ``connection_invalidated``); or, with ``engine`` given, an operational or
    interface error while that database does not answer (asked at once, on a fresh connection).
    A database that answers again by then makes the failure count as an ordinary one."""
    if exc is None:
        return False
    if isinstance(exc, Unavailable):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OperationalError, InterfaceError)) and engine is not None:
        return not database_reachable(engine)
    return False
