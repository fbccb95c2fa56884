"""FastAPI dependencies of the DM API: the shared state, the administrator and device identities,
and a JSON-object body.

The identities are checked inside the transaction of the work they guard, not in a transaction of
their own: one round trip per request, a device's revocation is checked in the same group commit
as its report, and a request's own checks (its body first) answer before the credential is
looked at, as they always did. So `AdminCaller` and `DeviceCaller` carry the credential and run
the work with the identity it proves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from services.common.api import bearer_token
from services.common.asgi_tls import peer_cert_pem
from services.common.errors import Invalid
from services.dm.api.delivery import in_engine
from services.dm.api.state import DmState
from services.dm.domain import accounts, reporting
from services.dm.store.models import Device

T = TypeVar("T")

# Only for the OpenAPI document (the security scheme); the token is read by `bearer_token`.
_bearer = HTTPBearer(auto_error=False, description="an administrator session token")


async def dm_state(connection: HTTPConnection) -> DmState:
    state = connection.app.state.dm
    assert isinstance(state, DmState)
    return state


State = Annotated[DmState, Depends(dm_state)]


@dataclass(frozen=True)
class AdminCaller:
    """An administrator's request: its bearer token, checked by `run` in the work's transaction."""

    state: DmState
    token: str | None

    def _authenticated(
        self, fn: Callable[[Session, accounts.AdminIdentity], T]
    ) -> Callable[[Session], T]:
        now = self.state.now()

        def job(session: Session) -> T:
            return fn(session, accounts.authenticate(session, self.token, now))

        return job

    async def run(self, fn: Callable[[Session, accounts.AdminIdentity], T]) -> T:
        """`fn(session, admin)` in a transaction of its own, once the token is accepted."""
        return await self.state.in_tx(self._authenticated(fn))

    async def run_in_engine(self, fn: Callable[[Session, accounts.AdminIdentity], T]) -> T:
        """Like `run`, inside the rollout engine; then deliver the commands it queued."""
        return await in_engine(self.state, self._authenticated(fn))


async def admin_caller(
    request: Request,
    state: State,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> AdminCaller:
    return AdminCaller(state, bearer_token(request))


AdminAuth = Annotated[AdminCaller, Depends(admin_caller)]


@dataclass(frozen=True)
class DeviceCaller:
    """A device's request or channel: the client certificate the TLS layer verified (mutual TLS,
    from the ASGI TLS extension), checked against the store by each piece of work."""

    state: DmState
    certificate: str | None

    def authenticate(self, session: Session) -> Device:
        """The enrolled, not revoked device of this certificate (or a 401/403 refusal)."""
        return reporting.authenticate_device(session, self.certificate, self.state.now())

    async def commit(self, fn: Callable[[Session, Device], T]) -> T:
        """`fn(session, device)` as a group-commit job: answered once it is durable."""
        return await self.state.commit(lambda s: fn(s, self.authenticate(s)))

    async def read(self, fn: Callable[[Session, Device], T]) -> T:
        """`fn(session, device)` in a transaction of its own."""
        return await self.state.in_tx(lambda s: fn(s, self.authenticate(s)))


async def device_caller(connection: HTTPConnection, state: State) -> DeviceCaller:
    return DeviceCaller(state, peer_cert_pem(connection.scope))


DeviceAuth = Annotated[DeviceCaller, Depends(device_caller)]


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (422 when it is not JSON, or not an object)."""
    try:
        body = await request.json()
    except ValueError:
        raise Invalid("body is not JSON", field=None) from None
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object", field=None)
    return body


JsonObject = Annotated[dict[str, Any], Depends(json_object)]
