"""Domain errors: raised by the domain layers, turned into HTTP answers by the API layers.

Each error carries its wire code (`protocol.errors.ErrorCode`, a class attribute of each class,
never derived from the class name), an HTTP status, the offending field (when there is one) and a
reason, so that bad input always gets a clear answer and the caller knows exactly what to fix.
The classes are the wire contract's (`protocol.errors`); `DomainError` is their base.
"""

from __future__ import annotations

from protocol.errors import (
    Conflict,
    ErrorCode,
    Forbidden,
    Invalid,
    NotFound,
    Unauthenticated,
    WireError,
)

DomainError = WireError

__all__ = [
    "Conflict",
    "DomainError",
    "ErrorCode",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Unauthenticated",
]
