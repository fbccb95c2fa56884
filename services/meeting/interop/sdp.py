"""SDP offers and answers for the SIP side of the interop gateway, sans-IO (RFC 8866, RFC 3264),
with SDES keys (RFC 4568) and the gateway's one media rule: SRTP or nothing.

`judge_offer` decides whether an offer can be answered. Every active media stream of the offer must
use RTP/SAVP or RTP/SAVPF (SRTP, RFC 3711/5124) and carry at least one usable `a=crypto` line; a
plain RTP/AVP stream, a DTLS-SRTP stream, or an SRTP stream whose every crypto line is unusable
makes the whole offer unacceptable (488), so no call is ever half encrypted. A crypto line is usable
when its suite is AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM (RFC 7714), it has exactly one inline
key of the suite's length, no MKI, and none of the session parameters that switch protection off
(UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP) or any other than WSH.

The conference speaks PCMU audio, so the offer's (one) audio stream must list payload type 0; the
answer accepts that stream with our own key for the suite the caller chose, and declines every other
stream with port 0 (section 6 of RFC 3264), keeping the m-lines in order.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field

from media_core.srtp import KeyMaterial, KeyMaterialError, SrtpProfile

SRTP_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
WEAKENING_PARAMS = frozenset({"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP"})
PCMU = "0"
MAX_SDP = 16 * 1024

# Warning codes of RFC 3261 section 20.43 used in a 488.
WARN_TRANSPORT = 302  # incompatible transport protocol
WARN_FORMAT = 305  # incompatible media format
WARN_MISC = 399


class SdpError(ValueError):
    """An SDP body that does not parse."""


@dataclass
class Media:
    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [v or "" for n, v in self.attributes if n == name]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)


@dataclass
class Session:
    origin: str
    name: str
    connection: str | None
    media: list[Media]
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Session:
        if len(text) > MAX_SDP:
            raise SdpError("SDP body too large")
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        if not lines or lines[0] != "v=0":
            raise SdpError("SDP must start with v=0")
        origin = name = None
        connection: str | None = None
        media: list[Media] = []
        attributes: list[tuple[str, str | None]] = []
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"bad SDP line {line[:40]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                media.append(_media(value))
            elif kind == "c":
                address = _connection(value)
                if media:
                    media[-1].connection = address
                else:
                    connection = address
            elif kind == "a":
                name_value = value.partition(":")
                attribute = (name_value[0], name_value[2] if name_value[1] else None)
                (media[-1].attributes if media else attributes).append(attribute)
            elif kind == "o" and not media:
                origin = value
            elif kind == "s" and not media:
                name = value
            elif kind == "v":
                raise SdpError("a second v= line")
        if origin is None or name is None:
            raise SdpError("SDP needs o= and s= lines")
        for m in media:
            if m.connection is None and connection is None and m.port != 0:
                raise SdpError(f"no c= line for the {m.kind} stream")
        return cls(origin, name, connection, media, attributes)


def _media(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line {value!r}")
    port_text = parts[1].partition("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad port in m= line {value!r}")
    return Media(parts[0], int(port_text), parts[2], parts[3:])


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value!r}")
    address = parts[2].partition("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise SdpError(f"c= must give an IP address, got {address!r}") from exc
    return address


# -- SDES ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crypto:
    """One usable `a=crypto` line: its tag, suite and the caller's key for its own sending."""

    tag: int
    profile: SrtpProfile
    key: KeyMaterial


def parse_crypto(value: str) -> Crypto | str:
    """A crypto attribute value, or the reason it cannot be used."""
    parts = value.split()
    if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 9:
        return "malformed crypto attribute"
    try:
        profile = SrtpProfile(parts[1])
    except ValueError:
        return f"crypto suite {parts[1]} is not supported"
    key_params = parts[2].split(";")
    if len(key_params) != 1:
        return "more than one key in a crypto attribute is not supported"
    method, _, info = key_params[0].partition(":")
    if method != "inline":
        return "only inline keys are supported"
    key_salt, *extra = info.split("|")
    for item in extra:
        if ":" in item:
            return "MKI is not supported"
        lifetime = item.removeprefix("2^")
        if not lifetime.isdigit():
            return "malformed key lifetime"
    for param in parts[3:]:
        name = param.partition("=")[0].lstrip("-")
        if name in WEAKENING_PARAMS:
            return f"{name} would switch SRTP protection off"
        if name != "WSH":
            return f"session parameter {name} is not supported"
    try:
        raw = base64.b64decode(key_salt, validate=True)
        key = KeyMaterial.from_bytes(profile, raw)
    except (binascii.Error, ValueError, KeyMaterialError):
        return "the inline key is not valid for its suite"
    return Crypto(int(parts[0]), profile, key)


def crypto_line(tag: int, key: KeyMaterial) -> str:
    return f"{tag} {key.profile.value} inline:{key.encode()}"


# -- the decision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """The offer can be answered: its audio stream, the caller's crypto and where to send."""

    audio_index: int
    crypto: Crypto
    remote: tuple[str, int]
    rtcp_mux: bool


@dataclass(frozen=True)
class Refused:
    warning_code: int
    reason: str


def judge_offer(session: Session) -> Accepted | Refused:
    """Whether the offer is SRTP-only and has an audio stream the conference can take."""
    active = [(i, m) for i, m in enumerate(session.media) if m.port != 0]
    if not active:
        return Refused(WARN_MISC, "the offer has no active media stream")
    chosen: dict[int, Crypto] = {}
    for index, m in active:
        if m.proto in PLAIN_PROTOS:
            return Refused(
                WARN_TRANSPORT,
                f"plain RTP ({m.proto}) for {m.kind} is refused: offer RTP/SAVP with SDES keys",
            )
        if m.proto in DTLS_PROTOS:
            return Refused(
                WARN_TRANSPORT, f"DTLS-SRTP ({m.proto}) is not supported: offer RTP/SAVP"
            )
        if m.proto not in SRTP_PROTOS:
            return Refused(WARN_TRANSPORT, f"transport {m.proto} is refused: offer RTP/SAVP")
        reasons: list[str] = []
        for value in m.values("crypto"):
            crypto = parse_crypto(value)
            if isinstance(crypto, Crypto):
                chosen.setdefault(index, crypto)
            else:
                reasons.append(crypto)
        if index not in chosen:
            detail = "; ".join(reasons) if reasons else "no a=crypto line"
            return Refused(WARN_MISC, f"the {m.kind} stream has no usable SRTP key ({detail})")
    audio = [(i, m) for i, m in active if m.kind == "audio"]
    if len(audio) != 1:
        return Refused(WARN_FORMAT, "exactly one audio stream is needed")
    index, m = audio[0]
    if PCMU not in m.formats:
        return Refused(WARN_FORMAT, "the audio stream must offer PCMU (payload type 0)")
    host = m.connection or session.connection
    assert host is not None  # Session.parse made sure of it
    return Accepted(index, chosen[index], (host, m.port), m.has("rtcp-mux"))


def build_answer(
    offer: Session,
    accepted: Accepted,
    *,
    host: str,
    port: int,
    key: KeyMaterial,
    session_id: int,
) -> str:
    """The SDP answer: the audio stream with our SDES key, every other stream declined."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=roomtrust-interop {session_id} 1 IN {family} {host}",
        "s=roomtrust conference",
        f"c=IN {family} {host}",
        "t=0 0",
    ]
    for index, m in enumerate(offer.media):
        if index != accepted.audio_index:
            lines.append(f"m={m.kind} 0 {m.proto} {m.formats[0]}")
            continue
        lines += [
            f"m=audio {port} {m.proto} {PCMU}",
            f"a=rtpmap:{PCMU} PCMU/8000",
            f"a=crypto:{crypto_line(accepted.crypto.tag, key)}",
            "a=sendrecv",
        ]
        if accepted.rtcp_mux:
            lines.append("a=rtcp-mux")
    return "\r\n".join(lines) + "\r\n"


def offer(host: str, port: int, key: KeyMaterial | None, proto: str = "RTP/SAVP") -> str:
    """An audio offer as a third-party system makes one (used by clients and tests)."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=caller 1 1 IN {family} {host}",
        "s=call",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} {proto} 0 8",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
    ]
    if key is not None:
        lines.append(f"a=crypto:{crypto_line(1, key)}")
    lines += ["a=sendrecv", "a=rtcp-mux"]
    return "\r\n".join(lines) + "\r\n"
