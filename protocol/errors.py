"""The `error` field of every refusal on the wire, and the exceptions that carry it.

A refusal travels as `{"error": <ErrorCode>, "field": <name or null>, "reason": <text>}` (over
signaling it also has `"type": "error"`). The code is an explicit class attribute of each exception
class, never its Python name, so renaming or subclassing a class cannot change the protocol.
The values are the wire strings the services have always sent.

`services.common.errors` re-exports these classes as the services' domain errors; the virtual
devices and the firmware format raise them too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    INVALID = "Invalid"
    UNAUTHENTICATED = "Unauthenticated"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"
    FIRMWARE_REJECTED = "FirmwareRejected"
    # The interop gateway's own answers for a third-party call (mapped to SIP and H.323 causes):
    REJECTED = "Rejected"  # a moderator declined the caller
    UNAVAILABLE = "Unavailable"  # the meeting side could not be reached or went away


def error_body(code: ErrorCode, reason: str, field: str | None = None) -> dict[str, object]:
    """The body of a refusal on the wire."""
    return {"error": code.value, "field": field, "reason": reason}


class WireError(Exception):
    """A refusal with a wire code, an HTTP status, a field and a reason.

    Every subclass states its `code` (or inherits its parent's); the class name plays no part."""

    code: ClassVar[ErrorCode]
    status: ClassVar[int] = 400

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "code", None), ErrorCode):
            raise TypeError(f"{cls.__qualname__} must state its wire code: code = ErrorCode.<X>")

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def as_dict(self) -> dict[str, object]:
        return error_body(self.code, self.reason, self.field)


class Invalid(WireError):
    """The input breaks a rule (unknown field, bad value)."""

    code = ErrorCode.INVALID
    status = 422


class Unauthenticated(WireError):
    """No valid credential was presented."""

    code = ErrorCode.UNAUTHENTICATED
    status = 401


class Forbidden(WireError):
    """The caller is known but may not do this."""

    code = ErrorCode.FORBIDDEN
    status = 403


class NotFound(WireError):
    code = ErrorCode.NOT_FOUND
    status = 404


class Conflict(WireError):
    """The request collides with the current state (already enrolled, duplicate name)."""

    code = ErrorCode.CONFLICT
    status = 409
