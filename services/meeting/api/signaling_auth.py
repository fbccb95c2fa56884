"""Who is on a signaling socket: an account, a room system, or a caller brought by a gateway.

An account signs in with its session token (header or first message), a room system with its
client certificate. The region's PSTN gateway signs in with the region's gateway token and a caller
number instead of an account (MT-08); its leg is marked unencrypted, since the phone side of the
call is plain G.711. The region's interop gateway (`services.meeting.interop`, MT-07) signs in with
its own token, naming the protocol ("sips" or "h323") and the third-party caller it brings in; it
does so only after the caller came over SIP TLS with SRTP or H.225 with H.235, so that leg is
encrypted. Every later message checks the sign-in again, so a revoked account is cut off at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from services.common.errors import Invalid, Unauthenticated
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity
from services.meeting.domain.legs import INTEROP_CALLER, INTEROP_KINDS, LegKind
from services.meeting.store.conference_store import ConferenceStore

PSTN = "pstn"
INTEROP = INTEROP_CALLER
CALLER_PATTERN = re.compile(r"^\+?[0-9]{3,15}$")


@dataclass(frozen=True)
class SignIn:
    """How a socket signed in, to check again before each message it sends."""

    token: str | None = None
    cert: str | None = None
    gateway_token: str | None = None  # the PSTN gateway's; its caller is in the identity
    interop_token: str | None = None  # the interop gateway's (MT-07)
    leg: LegKind = LegKind.CLIENT


def bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _token_matches(path: Path | None, token: str) -> bool:
    expected = path.read_text().strip() if path is not None and path.exists() else ""
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


class SocketAuthenticator:
    def __init__(
        self,
        store: ConferenceStore,
        pstn_token_file: Path | None = None,
        interop_token_file: Path | None = None,
    ) -> None:
        self.store = store
        self.pstn_token_file = pstn_token_file
        self.interop_token_file = interop_token_file

    async def sign_in(
        self, token: str | None, cert: str | None, first: dict[str, Any] | None
    ) -> tuple[Identity, SignIn]:
        """The identity behind the socket's credentials, or its first `auth` message."""
        if first is not None:
            token = str(first.get("token") or "") or None
            gateway_token = str(first.get("gateway_token") or "") or None
            interop_token = str(first.get("interop_token") or "") or None
            if gateway_token is not None:
                identity = self.gateway(gateway_token, first.get("caller"))
                return identity, SignIn(gateway_token=gateway_token, leg=LegKind.PSTN)
            if interop_token is not None:
                protocol = first.get("protocol")
                identity = self.interop(
                    interop_token, protocol, first.get("caller"), first.get("name")
                )
                leg = INTEROP_KINDS[str(protocol)]
                return identity, SignIn(interop_token=interop_token, leg=leg)
        identity = await self.store.authenticate(token, cert)
        return identity, SignIn(token=token, cert=cert)

    async def again(self, sign_in: SignIn, identity: Identity) -> Identity:
        """The identity now (before each message): refused once its sign-in no longer holds."""
        if sign_in.gateway_token is not None:
            caller = identity.account_id.removeprefix(f"{PSTN}:")
            return self.gateway(sign_in.gateway_token, caller)
        if sign_in.interop_token is not None:
            self.interop_token_valid(sign_in.interop_token)
            return identity
        return await self.store.authenticate(sign_in.token, sign_in.cert)

    def gateway(self, token: str, caller: object) -> Identity:
        """The identity of a PSTN caller brought in by the region's gateway (MT-08)."""
        if not _token_matches(self.pstn_token_file, token):
            raise Unauthenticated("unknown gateway token")
        if not isinstance(caller, str) or not CALLER_PATTERN.fullmatch(caller):
            raise Invalid("caller must be a phone number of 3 to 15 digits", field="caller")
        return Identity(
            account_id=f"{PSTN}:{caller}",
            enterprise_id="",
            username=f"{PSTN}:{caller}",
            display_name=f"Phone ...{caller[-4:]}",
            role=PSTN,
            kind=PSTN,
            permissions=frozenset({perms.CALL}),
        )

    def interop(self, token: str, protocol: object, caller: object, name: object) -> Identity:
        """The identity of a third-party system brought in by the region's interop gateway (MT-07).

        The account ID is the protocol and a digest of the caller's address, so the CDR keeps no
        third-party address (MT-15) and stays within its column."""
        self.interop_token_valid(token)
        if not isinstance(protocol, str) or protocol not in INTEROP_KINDS:
            raise Invalid("protocol must be sips or h323", field="protocol")
        if not isinstance(caller, str) or not 0 < len(caller) <= 256 or not caller.isprintable():
            raise Invalid("caller must be the caller's address", field="caller")
        display = name if isinstance(name, str) and 0 < len(name) <= 100 else None
        digest = hashlib.sha256(caller.encode()).hexdigest()[:16]
        return Identity(
            account_id=f"{protocol}:{digest}",
            enterprise_id="",
            username=f"{protocol}:{digest}",
            display_name=display or f"{protocol.upper()} room system",
            role=INTEROP,
            kind=INTEROP,
            permissions=perms.ROOM_SYSTEM,
        )

    def interop_token_valid(self, token: str) -> None:
        if not _token_matches(self.interop_token_file, token):
            raise Unauthenticated("unknown interop gateway token")
