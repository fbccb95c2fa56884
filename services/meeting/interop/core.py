"""The interop gateway for third-party room systems, sans-IO (MT-07): events in, actions out.

Third-party SIP systems reach it only over SIP TLS, third-party H.323 systems only with H.235; the
driver (`server.py`) listens on TLS alone and feeds this core what arrives. The core never touches a
socket, a clock or the meeting service: it asks the driver to open a media port, to join the
conference through the region's signaling, to start the SRTP bridge, and to send bytes.

SIP (RFC 3261 over TLS, RFC 5630 `sips:`), per request, in order:
- a message that loses the stream framing closes the connection; ACK is never answered;
- the top Via must say TLS (403), the Request-URI must be `sips:` (416 for `sip:` or any other
  scheme) and name no transport but TLS (403); a Require the gateway does not know gets 420;
- OPTIONS is answered with what the gateway allows; INVITE, BYE and CANCEL as below; other methods
  get 405;
- an INVITE needs a `sips:` Contact (403 otherwise), a conference number as the Request-URI user
  (`sips:<conference>[*<password>]@host`, 404 without one) and an SDP offer (488 without one, 415
  for another body type). The offer must be SRTP only (see `sdp.judge_offer`): a plain RTP/AVP offer
  gets 488 with a Warning. An acceptable INVITE gets 100 Trying, then the meeting's rules decide:
  182 Queued while in the lobby, 200 OK with the SRTP answer once admitted, or 403 (wrong password),
  404 (no such conference here), 603 (a moderator rejected it), 503 (the meeting service would not
  take it). When the conference ends or a moderator removes the caller, the gateway sends BYE.

H.323 (H.225.0 in TPKT over TLS; see `h323.py`): a Setup is judged by `h323.judge_setup`; without
H.235 it gets ReleaseComplete with reason securityDenied. An admitted Setup gets CallProceeding,
Alerting while in the lobby, and Connect with the gateway's Diffie-Hellman half key and the wrapped
media keys once admitted; a refusal by the meeting's rules gets ReleaseComplete with noPermission,
unreachableDestination, destinationRejection or gatewayResources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.interop import h323, sdp, sip

Address = tuple[str, int]
SIP, H323 = "sip", "h323"
PROTOCOL_NAMES = {SIP: "sips", H323: "h323"}  # as the meeting's signaling and CDR name them
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
AGENT = "roomtrust-interop"
SIP_STATUS = {
    "NotFound": 404,
    "Conflict": 404,
    "Invalid": 404,
    "Forbidden": 403,
    "Rejected": 603,
}
H323_REASON = {
    "NotFound": ("unreachableDestination", h323.CAUSE_NO_ROUTE),
    "Conflict": ("unreachableDestination", h323.CAUSE_NO_ROUTE),
    "Invalid": ("unreachableDestination", h323.CAUSE_NO_ROUTE),
    "Forbidden": ("noPermission", h323.CAUSE_REJECTED),
    "Rejected": ("destinationRejection", h323.CAUSE_REJECTED),
}

# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """A TLS connection completed its handshake on the SIP or the H.323 listener."""

    conn: int
    protocol: str
    peer: Address
    tls_version: str


@dataclass(frozen=True)
class DataReceived:
    conn: int
    data: bytes


@dataclass(frozen=True)
class ConnectionLost:
    conn: int


@dataclass(frozen=True)
class MediaOpened:
    call_id: str
    host: str
    port: int


@dataclass(frozen=True)
class ConferenceAnswer:
    """What the meeting's signaling said about a call: lobby, admitted, refused or ended."""

    call_id: str
    kind: str
    error: str | None = None
    reason: str = ""


Event = Connected | DataReceived | ConnectionLost | MediaOpened | ConferenceAnswer

# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    conn: int
    data: bytes


@dataclass(frozen=True)
class CloseConnection:
    conn: int


@dataclass(frozen=True)
class OpenMedia:
    call_id: str


@dataclass(frozen=True)
class JoinConference:
    call_id: str
    protocol: str  # "sips" or "h323"
    conference_id: str
    password: str | None
    caller: str
    display_name: str


@dataclass(frozen=True)
class LeaveConference:
    """Hang up the call's conference side: signaling, media ports and bridge."""

    call_id: str


@dataclass(frozen=True)
class StartMedia:
    """Start (or re-key) the call's SRTP bridge with the keys this leg agreed."""

    call_id: str
    from_caller: KeyMaterial
    to_caller: KeyMaterial
    caller: Address


@dataclass(frozen=True)
class Decision:
    """What the gateway decided, for its log: never a key, never media."""

    protocol: str
    call_id: str | None
    outcome: str
    code: str
    reason: str


Action = (
    Send | CloseConnection | OpenMedia | JoinConference | LeaveConference | StartMedia | Decision
)

# -- state -----------------------------------------------------------------------------------------


@dataclass
class Connection:
    conn: int
    protocol: str
    peer: Address
    sip_stream: sip.SipStream = field(default_factory=sip.SipStream)
    tpkt_stream: h323.TpktStream = field(default_factory=h323.TpktStream)
    calls: set[str] = field(default_factory=set)


@dataclass
class SipCall:
    call_id: str
    conn: int
    invite: sip.SipRequest
    offer: sdp.Session
    accepted: sdp.Accepted
    conference_id: str
    password: str | None
    caller: str
    display_name: str
    to_tag: str
    remote_tag: str
    contact: sip.NameAddr
    state: str = "proceeding"  # proceeding, queued, confirmed, ended
    media: Address | None = None
    local_key: KeyMaterial | None = None
    version: int = 1

    @property
    def dialog(self) -> tuple[str, str, str]:
        return (self.invite.call_id, self.remote_tag, self.to_tag)


@dataclass
class H323Call:
    call_id: str
    conn: int
    setup: h323.H225
    admit: h323.Admit
    state: str = "proceeding"  # proceeding, alerting, connected, ended
    media: Address | None = None
    private: int = 0
    to_caller: KeyMaterial | None = None
    from_caller: KeyMaterial | None = None


class InteropCore:
    def __init__(self, host: str, sip_port: int, random_bytes: Callable[[int], bytes]) -> None:
        self.host = host
        self.sip_port = sip_port
        self.random = random_bytes
        self.connections: dict[int, Connection] = {}
        self.calls: dict[str, SipCall | H323Call] = {}

    def _token(self, size: int = 6) -> str:
        return self.random(size).hex()

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, Connected):
            self.connections[event.conn] = Connection(event.conn, event.protocol, event.peer)
            return []
        if isinstance(event, DataReceived):
            conn = self.connections.get(event.conn)
            if conn is None:
                return []
            if conn.protocol == SIP:
                return self._sip_data(conn, event.data)
            return self._h323_data(conn, event.data)
        if isinstance(event, ConnectionLost):
            return self._lost(event.conn)
        if isinstance(event, MediaOpened):
            return self._media_opened(event)
        return self._answer(event)

    def _lost(self, conn_id: int) -> list[Action]:
        conn = self.connections.pop(conn_id, None)
        if conn is None:
            return []
        actions: list[Action] = []
        for call_id in sorted(conn.calls):
            if self.calls.pop(call_id, None) is not None:
                actions.append(LeaveConference(call_id))
                actions.append(Decision(conn.protocol, call_id, "ended", "-", "connection lost"))
        return actions

    def _end(self, call: SipCall | H323Call) -> None:
        call.state = "ended"
        self.calls.pop(call.call_id, None)
        conn = self.connections.get(call.conn)
        if conn is not None:
            conn.calls.discard(call.call_id)

    # -- SIP -----------------------------------------------------------------------------------

    def _sip_data(self, conn: Connection, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for item in conn.sip_stream.feed(data):
            if isinstance(item, sip.KeepAlive):
                actions.append(Send(conn.conn, b"\r\n"))
            elif isinstance(item, sip.SipError):
                actions.append(Decision(SIP, None, "dropped", str(item.status), item.reason))
                if item.fatal:
                    actions.append(CloseConnection(conn.conn))
            elif isinstance(item, sip.SipRequest):
                actions += self._sip_request(conn, item)
            # responses (to our BYE) need nothing more
        return actions

    def _reply(
        self,
        conn: Connection,
        request: sip.SipRequest,
        status: int,
        *,
        to_tag: str | None = None,
        reason: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Send:
        if to_tag is None and status > 100:
            to_tag = self._token()
        try:
            response = sip.response_to(
                request, status, to_tag=to_tag, reason=reason, extra=extra or [], body=body
            )
        except sip.SipError:
            response = sip.response_to(request, status, reason=reason, extra=extra or [])
        return Send(conn.conn, response.encode())

    def _refuse(
        self,
        conn: Connection,
        request: sip.SipRequest,
        status: int,
        reason: str,
        extra: list[tuple[str, str]] | None = None,
        warning_code: int = sdp.WARN_MISC,
    ) -> list[Action]:
        headers = [sip.warning(warning_code, AGENT, reason), *(extra or [])]
        return [
            self._reply(conn, request, status, extra=headers),
            Decision(SIP, None, "refused", str(status), reason),
        ]

    def _sip_request(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        try:
            return self._sip_checked(conn, request)
        except sip.SipError as exc:  # a header only read now turned out malformed
            return [Decision(SIP, None, "dropped", str(exc.status), exc.reason)]

    def _sip_checked(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        try:
            vias = request.vias
            request.from_  # noqa: B018 - parsed for its errors
            request.to  # noqa: B018
            request.call_id  # noqa: B018
            cseq = request.cseq
        except sip.SipError as exc:
            if request.method == "ACK" or not all(
                request.header(h) for h in ("Via", "From", "To", "Call-ID", "CSeq")
            ):
                return [Decision(SIP, None, "dropped", "400", exc.reason)]
            return self._refuse(conn, request, 400, exc.reason)
        if request.method == "ACK":
            return []  # the 2xx (or error) it acknowledges needs nothing more over TLS
        if cseq.method != request.method:
            return self._refuse(conn, request, 400, "the CSeq method differs from the request's")
        if vias[0].transport != "TLS":
            return self._refuse(
                conn, request, 403, f"SIP over TLS only: the Via says {vias[0].transport}"
            )
        try:
            uri = request.request_uri
        except sip.SipError as exc:
            status = 416 if exc.status == 416 else 400
            return self._refuse(conn, request, status, f"SIP over TLS only: {exc.reason}")
        if uri.scheme != "sips":
            return self._refuse(
                conn, request, 416, "SIP over TLS only: use a sips: Request-URI (RFC 5630)"
            )
        if uri.transport not in (None, "tls"):
            return self._refuse(
                conn, request, 403, f"SIP over TLS only: transport={uri.transport} is refused"
            )
        max_forwards = request.header("Max-Forwards")
        if request.headers.count("Max-Forwards") > 1 or (
            max_forwards is not None and not max_forwards.strip().isdigit()
        ):
            return self._refuse(conn, request, 400, "bad Max-Forwards")
        if max_forwards is not None and int(max_forwards) == 0 and request.method != "OPTIONS":
            return self._refuse(conn, request, 483, "Max-Forwards reached 0")
        required = request.headers.values("Require")
        if required:
            return self._refuse(
                conn,
                request,
                420,
                "extensions not supported",
                [("Unsupported", ", ".join(required))],
            )
        if request.method == "OPTIONS":
            extra = [
                ("Allow", ALLOW),
                ("Accept", "application/sdp"),
                ("Accept-Encoding", "identity"),
            ]
            return [self._reply(conn, request, 200, extra=extra)]
        if request.method == "INVITE":
            return self._invite(conn, request)
        if request.method == "BYE":
            return self._bye(conn, request)
        if request.method == "CANCEL":
            return self._cancel(conn, request)
        return self._refuse(
            conn, request, 405, f"{request.method} is not allowed", [("Allow", ALLOW)]
        )

    def _dialog_call(self, request: sip.SipRequest) -> SipCall | None:
        key = (request.call_id, request.from_.tag or "", request.to.tag or "")
        for call in self.calls.values():
            if isinstance(call, SipCall) and call.dialog == key:
                return call
        return None

    def _invite(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        if request.to.tag is not None:
            return self._reinvite(conn, request)
        contact_value = request.header("Contact")
        if contact_value is None:
            return self._refuse(conn, request, 400, "an INVITE needs a Contact")
        try:
            contact = sip.NameAddr.parse(contact_value)
        except sip.SipError as exc:
            if exc.status == 416:
                return self._refuse(conn, request, 403, "SIP over TLS only: Contact must be sips:")
            return self._refuse(conn, request, 400, f"bad Contact: {exc.reason}")
        if contact.uri.scheme != "sips" or contact.uri.transport not in (None, "tls"):
            return self._refuse(
                conn, request, 403, "SIP over TLS only: the Contact must be a sips: URI over TLS"
            )
        user = request.request_uri.user_text
        if not user:
            return self._refuse(conn, request, 404, "no conference number in the Request-URI")
        conference_id, password = h323.conference_alias(user)
        offer = self._offer(conn, request)
        if not isinstance(offer, sdp.Session):
            return offer
        judged = sdp.judge_offer(offer)
        if isinstance(judged, sdp.Refused):
            return self._refuse(conn, request, 488, judged.reason, warning_code=judged.warning_code)
        from_ = request.from_
        call = SipCall(
            call_id=f"sip-{self._token()}",
            conn=conn.conn,
            invite=request,
            offer=offer,
            accepted=judged,
            conference_id=conference_id,
            password=password,
            caller=str(from_.uri),
            display_name=(from_.display or from_.uri.user_text or "SIP room system")[:100],
            to_tag=self._token(),
            remote_tag=from_.tag or "",
            contact=contact,
        )
        self.calls[call.call_id] = call
        conn.calls.add(call.call_id)
        return [
            self._reply(conn, request, 100),
            Decision(SIP, call.call_id, "offer-accepted", "100", "SIP TLS with an SRTP offer"),
            OpenMedia(call.call_id),
        ]

    def _offer(self, conn: Connection, request: sip.SipRequest) -> sdp.Session | list[Action]:
        if not request.body:
            return self._refuse(conn, request, 488, "an SDP offer is required")
        content_type = (request.header("Content-Type") or "").partition(";")[0].strip().lower()
        if content_type != "application/sdp":
            return self._refuse(
                conn,
                request,
                415,
                "the body must be application/sdp",
                [("Accept", "application/sdp")],
            )
        encoding = (request.header("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            return self._refuse(
                conn, request, 415, "no content encoding", [("Accept-Encoding", "identity")]
            )
        try:
            return sdp.Session.parse(request.body.decode("utf-8"))
        except (UnicodeDecodeError, sdp.SdpError) as exc:
            return self._refuse(conn, request, 400, f"malformed SDP: {exc}")

    def _reinvite(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        call = self._dialog_call(request)
        if call is None:
            return self._refuse(conn, request, 481, "no such dialog")
        if call.state != "confirmed" or call.media is None or call.local_key is None:
            return [self._reply(conn, request, 491, to_tag=call.to_tag, reason="Request Pending")]
        offer = self._offer(conn, request)
        if not isinstance(offer, sdp.Session):
            return offer
        judged = sdp.judge_offer(offer)
        if isinstance(judged, sdp.Refused):  # the session goes on unchanged (section 14.2)
            return self._refuse(conn, request, 488, judged.reason, warning_code=judged.warning_code)
        call.offer, call.accepted = offer, judged
        call.local_key = KeyMaterial.generate(judged.crypto.profile, self.random)
        call.version += 1
        return [
            self._sip_ok(conn, call, request),
            StartMedia(call.call_id, judged.crypto.key, call.local_key, judged.remote),
            Decision(SIP, call.call_id, "rekeyed", "200", "re-INVITE with a new SRTP offer"),
        ]

    def _sip_ok(self, conn: Connection, call: SipCall, request: sip.SipRequest) -> Send:
        assert call.media is not None and call.local_key is not None
        answer = sdp.build_answer(
            call.offer,
            call.accepted,
            host=call.media[0],
            port=call.media[1],
            key=call.local_key,
            session_id=int.from_bytes(call.to_tag.encode()[:6], "big"),
        )
        return self._reply(
            conn,
            request,
            200,
            to_tag=call.to_tag,
            extra=[
                ("Contact", f"<{self._contact(call.conference_id)}>"),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=answer.encode(),
        )

    def _contact(self, user: str) -> sip.SipUri:
        return sip.SipUri("sips", self.host, user, self.sip_port)

    def _bye(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        call = self._dialog_call(request)
        if call is None:
            return self._refuse(conn, request, 481, "no such dialog")
        self._end(call)
        return [
            self._reply(conn, request, 200, to_tag=call.to_tag),
            LeaveConference(call.call_id),
            Decision(SIP, call.call_id, "ended", "BYE", "the caller hung up"),
        ]

    def _cancel(self, conn: Connection, request: sip.SipRequest) -> list[Action]:
        branch = request.vias[0].branch
        for call in list(self.calls.values()):
            if (
                isinstance(call, SipCall)
                and call.conn == conn.conn
                and call.invite.call_id == request.call_id
                and call.remote_tag == (request.from_.tag or "")
                and call.invite.cseq.number == request.cseq.number
                and call.invite.vias[0].branch == branch
                and call.state in ("proceeding", "queued")
            ):
                self._end(call)
                return [
                    self._reply(conn, request, 200, to_tag=call.to_tag),
                    self._reply(conn, call.invite, 487, to_tag=call.to_tag),
                    LeaveConference(call.call_id),
                    Decision(SIP, call.call_id, "ended", "487", "the caller cancelled"),
                ]
        return self._refuse(conn, request, 481, "no such transaction")

    def _bye_request(self, call: SipCall) -> bytes:
        invite = call.invite
        headers = sip.Headers()
        branch = f"z9hG4bK{self._token(8)}"
        headers.add("Via", f"SIP/2.0/TLS {self.host}:{self.sip_port};branch={branch}")
        headers.add("Max-Forwards", "70")
        headers.add("From", str(invite.to.with_param("tag", call.to_tag)))
        headers.add("To", invite.header("From") or "")
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", "1 BYE")
        return sip.SipRequest(headers, b"", "BYE", str(call.contact.uri)).encode()

    # -- H.323 ---------------------------------------------------------------------------------

    def _h323_data(self, conn: Connection, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for item in conn.tpkt_stream.feed(data):
            if isinstance(item, h323.H323Error):
                actions += [
                    Decision(H323, None, "dropped", "-", item.reason),
                    CloseConnection(conn.conn),
                ]
                continue
            try:
                message = h323.H225.decode(item)
            except h323.H323Error as exc:
                actions += self._h323_unreadable(conn, item, exc)
                continue
            actions += self._h323_message(conn, message)
        return actions

    def _h323_unreadable(
        self, conn: Connection, payload: bytes, exc: h323.H323Error
    ) -> list[Action]:
        actions: list[Action] = [Decision(H323, None, "refused", "undefinedReason", exc.reason)]
        try:
            q931 = h323.Q931.decode(payload)
        except h323.H323Error:
            return [*actions, CloseConnection(conn.conn)]
        stand_in = h323.H225("setup", q931.call_reference, q931.from_destination, {})
        release = h323.release_complete(stand_in, "undefinedReason", h323.CAUSE_INVALID_CONTENTS)
        return [*actions, Send(conn.conn, release.encode()), CloseConnection(conn.conn)]

    def _h323_call(self, conn: Connection) -> H323Call | None:
        for call_id in conn.calls:
            call = self.calls.get(call_id)
            if isinstance(call, H323Call):
                return call
        return None

    def _h323_message(self, conn: Connection, message: h323.H225) -> list[Action]:
        call = self._h323_call(conn)
        if message.name == "releaseComplete":
            if call is None:
                return [CloseConnection(conn.conn)]
            self._end(call)
            return [
                LeaveConference(call.call_id),
                Decision(H323, call.call_id, "ended", "releaseComplete", "the caller hung up"),
                CloseConnection(conn.conn),
            ]
        if message.name != "setup":
            return []  # nothing else from the caller changes the call here
        if call is not None:
            release = h323.release_complete(message, "undefinedReason")
            return [Send(conn.conn, release.encode())]
        judged = h323.judge_setup(message)
        if isinstance(judged, h323.Refuse):
            release = h323.release_complete(message, judged.reason, judged.cause)
            return [
                Send(conn.conn, release.encode()),
                Decision(H323, None, "refused", judged.reason, judged.detail),
                CloseConnection(conn.conn),
            ]
        new = H323Call(f"h323-{self._token()}", conn.conn, message, judged)
        self.calls[new.call_id] = new
        conn.calls.add(new.call_id)
        return [
            Send(conn.conn, h323.reply(message, "callProceeding", {}).encode()),
            Decision(H323, new.call_id, "setup-accepted", "callProceeding", "H.235.6 in the Setup"),
            OpenMedia(new.call_id),
        ]

    def _connect(self, call: H323Call) -> h323.H225:
        assert call.media is not None and call.to_caller and call.from_caller
        guid = call.setup.call_identifier
        assert guid is not None
        kek = h323.key_encryption_key(call.private, call.admit.dh.halfkey, guid)
        host, port = call.media

        def channel(direction: str, key: KeyMaterial) -> dict[str, Any]:
            found = h323.encrypted_audio(host, port, call.admit.profile.value)
            return found | {
                "direction": direction,
                "encryptionSync": {"h235Key": {"secureSharedSecret": h323.wrap_key(kek, key)}},
            }

        body = {
            "tokens": [
                {"tokenOID": h323.OID_H235_V3},
                h323.dh_token(h323.dh_public(call.private)),
            ],
            "fastStart": [
                channel("gatewayToCaller", call.to_caller),
                channel("callerToGateway", call.from_caller),
            ],
        }
        return h323.reply(call.setup, "connect", body)

    # -- the conference side -------------------------------------------------------------------

    def _media_opened(self, event: MediaOpened) -> list[Action]:
        call = self.calls.get(event.call_id)
        if call is None:
            return [LeaveConference(event.call_id)]
        call.media = (event.host, event.port)
        if isinstance(call, SipCall):
            call.local_key = KeyMaterial.generate(call.accepted.crypto.profile, self.random)
            return [
                JoinConference(
                    call.call_id,
                    PROTOCOL_NAMES[SIP],
                    call.conference_id,
                    call.password,
                    call.caller,
                    call.display_name,
                )
            ]
        profile: SrtpProfile = call.admit.profile
        call.private = h323.dh_private(self.random)
        call.to_caller = KeyMaterial.generate(profile, self.random)
        call.from_caller = KeyMaterial.generate(profile, self.random)
        name = call.setup.display or call.admit.caller
        return [
            JoinConference(
                call.call_id,
                PROTOCOL_NAMES[H323],
                call.admit.conference_id,
                call.admit.password,
                call.admit.caller,
                name[:100],
            )
        ]

    def _answer(self, event: ConferenceAnswer) -> list[Action]:
        call = self.calls.get(event.call_id)
        if call is None:
            return []
        conn = self.connections.get(call.conn)
        if conn is None:
            self._end(call)
            return [LeaveConference(call.call_id)]
        if isinstance(call, SipCall):
            return self._sip_answer(conn, call, event)
        return self._h323_answer(conn, call, event)

    def _sip_answer(self, conn: Connection, call: SipCall, event: ConferenceAnswer) -> list[Action]:
        pending = call.state in ("proceeding", "queued")
        if event.kind == "lobby" and call.state == "proceeding":
            call.state = "queued"
            extra = [("Contact", f"<{self._contact(call.conference_id)}>")]
            return [
                self._reply(conn, call.invite, 182, to_tag=call.to_tag, extra=extra),
                Decision(SIP, call.call_id, "lobby", "182", "waiting for a moderator"),
            ]
        if event.kind == "admitted" and pending:
            call.state = "confirmed"
            assert call.local_key is not None
            return [
                self._sip_ok(conn, call, call.invite),
                StartMedia(
                    call.call_id, call.accepted.crypto.key, call.local_key, call.accepted.remote
                ),
                Decision(SIP, call.call_id, "admitted", "200", "in the conference over SIP TLS"),
            ]
        if event.kind == "refused" and pending:
            status = SIP_STATUS.get(event.error or "", 503)
            self._end(call)
            warn = sip.warning(sdp.WARN_MISC, AGENT, event.reason or event.error or "refused")
            return [
                self._reply(conn, call.invite, status, to_tag=call.to_tag, extra=[warn]),
                LeaveConference(call.call_id),
                Decision(SIP, call.call_id, "refused", str(status), event.reason),
            ]
        if event.kind in ("ended", "refused"):
            self._end(call)
            actions: list[Action] = [LeaveConference(call.call_id)]
            if pending:
                warn = sip.warning(sdp.WARN_MISC, AGENT, event.reason or "the conference ended")
                actions.insert(
                    0, self._reply(conn, call.invite, 503, to_tag=call.to_tag, extra=[warn])
                )
            else:
                actions.insert(0, Send(conn.conn, self._bye_request(call)))
            return [*actions, Decision(SIP, call.call_id, "ended", "BYE", event.reason)]
        return []

    def _h323_answer(
        self, conn: Connection, call: H323Call, event: ConferenceAnswer
    ) -> list[Action]:
        pending = call.state in ("proceeding", "alerting")
        if event.kind == "lobby" and call.state == "proceeding":
            call.state = "alerting"
            return [
                Send(conn.conn, h323.reply(call.setup, "alerting", {}).encode()),
                Decision(H323, call.call_id, "lobby", "alerting", "waiting for a moderator"),
            ]
        if event.kind == "admitted" and pending:
            call.state = "connected"
            assert call.from_caller is not None and call.to_caller is not None
            return [
                Send(conn.conn, self._connect(call).encode()),
                StartMedia(call.call_id, call.from_caller, call.to_caller, call.admit.media),
                Decision(H323, call.call_id, "admitted", "connect", "in the conference with H.235"),
            ]
        if event.kind in ("refused", "ended"):
            if event.kind == "refused" and pending:
                reason, cause = H323_REASON.get(
                    event.error or "", ("gatewayResources", h323.CAUSE_INCOMPATIBLE)
                )
            else:
                reason, cause = "undefinedReason", h323.CAUSE_NORMAL
            self._end(call)
            release = h323.release_complete(call.setup, reason, cause)
            return [
                Send(conn.conn, release.encode()),
                LeaveConference(call.call_id),
                Decision(H323, call.call_id, event.kind, reason, event.reason),
                CloseConnection(conn.conn),
            ]
        return []
