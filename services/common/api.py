"""FastAPI glue both services share: errors as `{error, field, reason}` and the device identity.

Only API layers import this module; domain layers raise `services.common.errors.DomainError`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from protocol.errors import ErrorCode
from services.common.asgi_tls import peer_cert_pem
from services.common.errors import DomainError


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(exc.as_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
        return JSONResponse(
            {
                "error": ErrorCode.INVALID.value,
                "field": ".".join(location) or None,
                "reason": first.get("msg", "invalid request"),
                "errors": [
                    {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg")}
                    for e in errors
                ],
            },
            status_code=422,
        )


def client_certificate(request: Request) -> str | None:
    """The PEM client certificate the TLS layer verified for this connection, if any."""
    return peer_cert_pem(request.scope)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
