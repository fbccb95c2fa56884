"""Domain errors: raised by the domain layers, turned into HTTP answers by the API layers.

Each error carries an HTTP status, the offending field (when there is one) and a reason, so that
bad input always gets a clear answer and the caller knows exactly what to fix.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with a status, a field and a reason."""

    status: int = 400

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def as_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "field": self.field, "reason": self.reason}


class Invalid(DomainError):
    """The input breaks a rule (unknown field, bad value)."""

    status = 422


class Unauthenticated(DomainError):
    """No valid credential was presented."""

    status = 401


class Forbidden(DomainError):
    """The caller is known but may not do this."""

    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request collides with the current state (already enrolled, duplicate name)."""

    status = 409
