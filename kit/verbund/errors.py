"""Application errors with the HTTP status they mean. Raised by service
layers (no nameko, no HTTP there); ``verbund.web`` turns them into JSON
error responses."""


class AppError(Exception):
    status = 500

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(AppError):
    status = 400


class Unauthorized(AppError):
    status = 401


class Forbidden(AppError):
    status = 403


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class Gone(AppError):
    status = 410


class PreconditionFailed(AppError):
    status = 412


class PayloadTooLarge(AppError):
    status = 413


class UnsupportedMediaType(AppError):
    status = 415


class Unprocessable(AppError):
    status = 422


class TooManyRequests(AppError):
    """429: a rate limit is reached (RFC 6585 section 4); ``retry_after`` whole seconds until the caller
    may try again, sent as the ``Retry-After`` header (RFC 9110 section 10.2.3) and in the body."""
    status = 429

    def __init__(self, message: str, retry_after: int, **details):
        super().__init__(message, retry_after=max(1, int(retry_after)), **details)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(AppError):
    """503: a dependency the request needs (a read model being rebuilt, the broker) is not ready yet;
    the client may retry later (RFC 9110 section 15.6.4)."""
    status = 503
