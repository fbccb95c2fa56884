"""The interop gateway's SIP core (MT-07), sans-IO: SIP over TLS in, actions out.

Third-party SIP systems reach the gateway only over SIP TLS (RFC 3261 over TLS, RFC 5630 `sips:`).
The driver (`server.py`) feeds this core what arrives on the SIP listener; the core never touches a
socket, a clock or the meeting service. Per request, in order:

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

A call moves through `SipState`: OPENING_MEDIA (100 Trying sent) -> JOINING (its media port is
open) -> QUEUED (182) -> CONFIRMED (200 OK), and ENDED from any of them. An event that is not a
transition of the call's state changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto
from typing import assert_never

from media_core.srtp import KeyMaterial
from services.meeting.interop import h323, sdp, sip
from services.meeting.interop.common import (
    Action,
    Address,
    Admitted,
    CallProtocol,
    CloseConnection,
    ConferenceAnswer,
    Connected,
    ConnectionLost,
    DataReceived,
    Decision,
    Ended,
    Event,
    JoinConference,
    LeaveConference,
    Lobby,
    MediaOpened,
    OpenMedia,
    Outcome,
    RandomBytes,
    Refusal,
    Refused,
    Send,
    StartMedia,
    token,
)

SIP = CallProtocol.SIP
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
AGENT = "roomtrust-interop"


def sip_status(refusal: Refusal) -> int:
    """The final response to a pending INVITE that the meeting refused."""
    match refusal:
        case Refusal.FORBIDDEN:
            return 403
        case Refusal.NOT_FOUND:
            return 404
        case Refusal.REJECTED:
            return 603
        case Refusal.UNAVAILABLE:
            return 503
        case _:
            assert_never(refusal)


class SipState(Enum):
    OPENING_MEDIA = auto()  # 100 Trying sent; the driver opens the media port
    JOINING = auto()  # the driver joins the conference through the region's signaling
    QUEUED = auto()  # 182 Queued sent: the caller waits in the lobby
    CONFIRMED = auto()  # 200 OK sent with the SRTP answer: the caller is in the conference
    ENDED = auto()


PENDING = frozenset({SipState.OPENING_MEDIA, SipState.JOINING, SipState.QUEUED})


@dataclass
class SipConnection:
    conn: int
    peer: Address
    stream: sip.SipStream = field(default_factory=sip.SipStream)
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
    state: SipState = SipState.OPENING_MEDIA
    media: Address | None = None  # set with local_key on leaving OPENING_MEDIA
    local_key: KeyMaterial | None = None

    @property
    def dialog(self) -> tuple[str, str, str]:
        return (self.invite.call_id, self.remote_tag, self.to_tag)


class SipCore:
    def __init__(self, host: str, sip_port: int, random_bytes: RandomBytes) -> None:
        self.host = host
        self.sip_port = sip_port
        self.random = random_bytes
        self.connections: dict[int, SipConnection] = {}
        self.calls: dict[str, SipCall] = {}

    def _token(self, size: int = 6) -> str:
        return token(self.random, size)

    def handle(self, event: Event) -> list[Action]:
        match event:
            case Connected():
                self.connections[event.conn] = SipConnection(event.conn, event.peer)
                return []
            case DataReceived():
                conn = self.connections.get(event.conn)
                return [] if conn is None else self._data(conn, event.data)
            case ConnectionLost():
                return self._lost(event.conn)
            case MediaOpened():
                return self._media_opened(event)
            case Lobby() | Admitted() | Refused() | Ended():
                return self._answer(event)
            case _:
                assert_never(event)

    def _lost(self, conn_id: int) -> list[Action]:
        conn = self.connections.pop(conn_id, None)
        if conn is None:
            return []
        actions: list[Action] = []
        for call_id in sorted(conn.calls):
            call = self.calls.get(call_id)
            if call is not None:
                self._end(call)
                actions.append(LeaveConference(call_id))
                actions.append(Decision(SIP, call_id, Outcome.ENDED, "-", "connection lost"))
        return actions

    def _end(self, call: SipCall) -> None:
        call.state = SipState.ENDED
        self.calls.pop(call.call_id, None)
        conn = self.connections.get(call.conn)
        if conn is not None:
            conn.calls.discard(call.call_id)

    # -- requests ------------------------------------------------------------------------------

    def _data(self, conn: SipConnection, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for item in conn.stream.feed(data):
            if isinstance(item, sip.KeepAlive):
                actions.append(Send(conn.conn, b"\r\n"))
            elif isinstance(item, sip.SipError):
                actions.append(Decision(SIP, None, Outcome.DROPPED, str(item.status), item.reason))
                if item.fatal:
                    actions.append(CloseConnection(conn.conn))
            elif isinstance(item, sip.SipRequest):
                actions += self._request(conn, item)
            # responses (to our BYE) need nothing more
        return actions

    def _reply(
        self,
        conn: SipConnection,
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
        conn: SipConnection,
        request: sip.SipRequest,
        status: int,
        reason: str,
        extra: list[tuple[str, str]] | None = None,
        warning_code: int = sdp.WARN_MISC,
    ) -> list[Action]:
        headers = [sip.warning(warning_code, AGENT, reason), *(extra or [])]
        return [
            self._reply(conn, request, status, extra=headers),
            Decision(SIP, None, Outcome.REFUSED, str(status), reason),
        ]

    def _request(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
        try:
            return self._checked(conn, request)
        except sip.SipError as exc:  # a header only read now turned out malformed
            return [Decision(SIP, None, Outcome.DROPPED, str(exc.status), exc.reason)]

    def _checked(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
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
                return [Decision(SIP, None, Outcome.DROPPED, "400", exc.reason)]
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
            if call.dialog == key:
                return call
        return None

    def _invite(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
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
            Decision(
                SIP, call.call_id, Outcome.OFFER_ACCEPTED, "100", "SIP TLS with an SRTP offer"
            ),
            OpenMedia(call.call_id),
        ]

    def _offer(self, conn: SipConnection, request: sip.SipRequest) -> sdp.Session | list[Action]:
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

    def _reinvite(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
        call = self._dialog_call(request)
        if call is None:
            return self._refuse(conn, request, 481, "no such dialog")
        if call.state is not SipState.CONFIRMED:
            return [self._reply(conn, request, 491, to_tag=call.to_tag, reason="Request Pending")]
        offer = self._offer(conn, request)
        if not isinstance(offer, sdp.Session):
            return offer
        judged = sdp.judge_offer(offer)
        if isinstance(judged, sdp.Refused):  # the session goes on unchanged (section 14.2)
            return self._refuse(conn, request, 488, judged.reason, warning_code=judged.warning_code)
        call.offer, call.accepted = offer, judged
        call.local_key = KeyMaterial.generate(judged.crypto.profile, self.random)
        return [
            self._ok(conn, call, request),
            StartMedia(call.call_id, judged.crypto.key, call.local_key, judged.remote),
            Decision(SIP, call.call_id, Outcome.REKEYED, "200", "re-INVITE with a new SRTP offer"),
        ]

    def _ok(self, conn: SipConnection, call: SipCall, request: sip.SipRequest) -> Send:
        assert call.media is not None and call.local_key is not None  # set since OPENING_MEDIA
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

    def _bye(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
        call = self._dialog_call(request)
        if call is None:
            return self._refuse(conn, request, 481, "no such dialog")
        self._end(call)
        return [
            self._reply(conn, request, 200, to_tag=call.to_tag),
            LeaveConference(call.call_id),
            Decision(SIP, call.call_id, Outcome.ENDED, "BYE", "the caller hung up"),
        ]

    def _cancel(self, conn: SipConnection, request: sip.SipRequest) -> list[Action]:
        branch = request.vias[0].branch
        for call in list(self.calls.values()):
            if (
                call.conn == conn.conn
                and call.invite.call_id == request.call_id
                and call.remote_tag == (request.from_.tag or "")
                and call.invite.cseq.number == request.cseq.number
                and call.invite.vias[0].branch == branch
                and call.state in PENDING
            ):
                self._end(call)
                return [
                    self._reply(conn, request, 200, to_tag=call.to_tag),
                    self._reply(conn, call.invite, 487, to_tag=call.to_tag),
                    LeaveConference(call.call_id),
                    Decision(SIP, call.call_id, Outcome.ENDED, "487", "the caller cancelled"),
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

    # -- the conference side -------------------------------------------------------------------

    def _media_opened(self, event: MediaOpened) -> list[Action]:
        call = self.calls.get(event.call_id)
        if call is None:
            return [LeaveConference(event.call_id)]
        if call.state is not SipState.OPENING_MEDIA:
            return []
        call.media = (event.host, event.port)
        call.local_key = KeyMaterial.generate(call.accepted.crypto.profile, self.random)
        call.state = SipState.JOINING
        return [
            JoinConference(
                call.call_id,
                SIP,
                call.conference_id,
                call.password,
                call.caller,
                call.display_name,
            )
        ]

    def _answer(self, answer: ConferenceAnswer) -> list[Action]:
        call = self.calls.get(answer.call_id)
        if call is None:
            return []
        conn = self.connections.get(call.conn)
        if conn is None:
            self._end(call)
            return [LeaveConference(call.call_id)]
        match answer:
            case Lobby():
                return self._lobby(conn, call)
            case Admitted():
                return self._admitted(conn, call)
            case Refused() if call.state in PENDING:
                return self._refused(conn, call, answer)
            case Refused() | Ended():  # a refusal once in the conference ends the call too
                return self._ended(conn, call, answer.reason)
            case _:
                assert_never(answer)

    def _lobby(self, conn: SipConnection, call: SipCall) -> list[Action]:
        if call.state is not SipState.JOINING:
            return []
        call.state = SipState.QUEUED
        extra = [("Contact", f"<{self._contact(call.conference_id)}>")]
        return [
            self._reply(conn, call.invite, 182, to_tag=call.to_tag, extra=extra),
            Decision(SIP, call.call_id, Outcome.LOBBY, "182", "waiting for a moderator"),
        ]

    def _admitted(self, conn: SipConnection, call: SipCall) -> list[Action]:
        if call.state not in (SipState.JOINING, SipState.QUEUED):
            return []
        call.state = SipState.CONFIRMED
        assert call.local_key is not None  # set on leaving OPENING_MEDIA
        return [
            self._ok(conn, call, call.invite),
            StartMedia(
                call.call_id, call.accepted.crypto.key, call.local_key, call.accepted.remote
            ),
            Decision(SIP, call.call_id, Outcome.ADMITTED, "200", "in the conference over SIP TLS"),
        ]

    def _refused(self, conn: SipConnection, call: SipCall, answer: Refused) -> list[Action]:
        status = sip_status(answer.refusal)
        self._end(call)
        warn = sip.warning(sdp.WARN_MISC, AGENT, answer.reason or "refused")
        return [
            self._reply(conn, call.invite, status, to_tag=call.to_tag, extra=[warn]),
            LeaveConference(call.call_id),
            Decision(SIP, call.call_id, Outcome.REFUSED, str(status), answer.reason),
        ]

    def _ended(self, conn: SipConnection, call: SipCall, reason: str) -> list[Action]:
        pending = call.state in PENDING
        self._end(call)
        if pending:
            warn = sip.warning(sdp.WARN_MISC, AGENT, reason or "the conference ended")
            hang_up = self._reply(conn, call.invite, 503, to_tag=call.to_tag, extra=[warn])
        else:
            hang_up = Send(conn.conn, self._bye_request(call))
        return [
            hang_up,
            LeaveConference(call.call_id),
            Decision(SIP, call.call_id, Outcome.ENDED, "BYE", reason),
        ]
