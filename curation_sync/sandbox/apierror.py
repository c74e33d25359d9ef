"""The one exception the sandbox raises to answer a request with an HTTP error."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error answer: the status code and the `reason` text of its JSON body.

    The reasons copy the real Synapse server's messages where they are known, because
    the client turns them into `SynapseHTTPError` messages that people read.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def not_found(reason: str) -> ApiError:
    """A 404 answer."""
    return ApiError(404, reason)


def bad_request(reason: str) -> ApiError:
    """A 400 answer (Synapse's IllegalArgumentException)."""
    return ApiError(400, reason)


def forbidden(
    reason: str = "You are not authorized to access this resource.",
) -> ApiError:
    """A 403 answer (Synapse's UnauthorizedException)."""
    return ApiError(403, reason)


def conflict(reason: str) -> ApiError:
    """A 412 answer (Synapse's ConflictingUpdateException)."""
    return ApiError(412, reason)
