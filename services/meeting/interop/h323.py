"""H.323 call signaling for the interop gateway, sans-IO: H.225.0 messages in TPKT and Q.931 framing,
and the H.235.6 admission decision (MT-07).

What is real and what is modelled (docs/interop.md has the whole account):

- Framing is real: TPKT (RFC 1006: version 3, a 16-bit length) around a Q.931 message (protocol
  discriminator 8, a two-octet call reference with its flag bit, the message type: Setup 0x05,
  CallProceeding 0x02, Alerting 0x01, Connect 0x07, ReleaseComplete 0x5A) with its information
  elements: Bearer capability, Cause, Display, and the User-user element (two-octet length) that
  carries the H.225.0 H323-UserInformation.
- The H323-UserInformation is not ASN.1 PER: it is JSON in IA5 characters (User-user protocol
  discriminator 4 instead of 5), mirroring the ASN.1 names (`h323-uu-pdu`, `h323-message-body`,
  `setup`, `protocolIdentifier`, `callIdentifier`, `destinationAddress`, `tokens`, `fastStart`,
  `releaseComplete` with its `reason`). A PER-coded element is recognised and refused.
- H.235.6 is modelled with its real numbers: the Setup's ClearTokens must hold the H.235 version 3
  marker (OID 0.0.8.235.0.3.24) and a Diffie-Hellman token (`dhkey`: `halfkey`, `modSize`,
  `generator`) for the 2048-bit group (OID 0.0.8.235.0.3.45, the RFC 3526 group 14 prime), whose
  half key is checked to lie in the prime-order subgroup. The 512, 1024 and 1536-bit groups are
  refused as too weak. Every fastStart logical channel must be `h235Media` with a supported
  encryption algorithm. A Setup without all of that is answered with ReleaseComplete, reason
  `securityDenied`.
- Keys: the gateway, as H.235.6 master, answers in Connect with its own half key and the media
  session keys (one per direction) wrapped under a key-encryption key derived from the DH shared
  secret. H.235.6 derives that key from the secret's low-order bits and encrypts payloads with
  AES-CBC; here the KEK comes from HKDF-SHA256 over the secret, the wrap is AES key wrap with padding
  (RFC 5649), and the media is SRTP (as H.235.8 carries it), so the same SRTP bridge serves SIP and
  H.323 legs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from media_core.srtp import KeyMaterial, KeyMaterialError, SrtpProfile

# -- TPKT (RFC 1006) -------------------------------------------------------------------------------

TPKT_VERSION = 3
MAX_TPKT = 16 * 1024


class H323Error(ValueError):
    """A frame or message that does not parse; `fatal` means the stream framing is lost."""

    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


def tpkt(payload: bytes) -> bytes:
    if len(payload) + 4 > 0xFFFF:
        raise ValueError("a TPKT packet holds at most 65531 bytes")
    return struct.pack("!BBH", TPKT_VERSION, 0, len(payload) + 4) + payload


class TpktStream:
    """Splits a byte stream into TPKT payloads."""

    def __init__(self, max_packet: int = MAX_TPKT) -> None:
        self.max_packet = max_packet
        self._buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[bytes | H323Error]:
        if self.broken:
            return []
        self._buffer += data
        out: list[bytes | H323Error] = []
        while len(self._buffer) >= 4:
            version, _reserved, length = struct.unpack_from("!BBH", self._buffer)
            if version != TPKT_VERSION or length < 5 or length > self.max_packet:
                self.broken = True
                self._buffer.clear()
                out.append(
                    H323Error(f"not a TPKT packet (version {version}, length {length})", True)
                )
                return out
            if len(self._buffer) < length:
                break
            out.append(bytes(self._buffer[4:length]))
            del self._buffer[:length]
        return out


# -- Q.931 -----------------------------------------------------------------------------------------

Q931_DISCRIMINATOR = 0x08
SETUP, CALL_PROCEEDING, ALERTING, CONNECT, RELEASE_COMPLETE = 0x05, 0x02, 0x01, 0x07, 0x5A
MESSAGE_NAMES = {
    SETUP: "setup",
    CALL_PROCEEDING: "callProceeding",
    ALERTING: "alerting",
    CONNECT: "connect",
    RELEASE_COMPLETE: "releaseComplete",
}
MESSAGE_TYPES = {name: code for code, name in MESSAGE_NAMES.items()}
IE_BEARER, IE_CAUSE, IE_DISPLAY, IE_USER_USER = 0x04, 0x08, 0x28, 0x7E
UU_IA5, UU_X208 = 0x04, 0x05  # User-user protocol discriminators: IA5 text; X.208/X.209 (PER)
BEARER_H221 = bytes((0x88, 0x90, 0xA5))  # unrestricted digital, 64 kbit/s, H.221 and H.242
CAUSE_NORMAL, CAUSE_REJECTED, CAUSE_NO_ROUTE, CAUSE_INCOMPATIBLE = 16, 21, 3, 88
CAUSE_INVALID_CONTENTS = 100


@dataclass(frozen=True)
class Q931:
    message_type: int
    call_reference: int
    from_destination: bool  # the call reference flag: set by the side that did not pick it
    elements: tuple[tuple[int, bytes], ...] = ()

    def element(self, ie: int) -> bytes | None:
        for key, value in self.elements:
            if key == ie:
                return value
        return None

    def encode(self) -> bytes:
        ref = (self.call_reference & 0x7FFF) | (0x8000 if self.from_destination else 0)
        out = bytearray((Q931_DISCRIMINATOR, 2)) + struct.pack("!H", ref)
        out.append(self.message_type)
        for ie, value in self.elements:
            if ie == IE_USER_USER:
                out += struct.pack("!BH", ie, len(value)) + value
            elif ie & 0x80:
                out.append(ie)
            else:
                if len(value) > 255:
                    raise ValueError(f"information element {ie:#x} is over 255 bytes")
                out += bytes((ie, len(value))) + value
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Q931:
        if len(data) < 3 or data[0] != Q931_DISCRIMINATOR:
            raise H323Error("not a Q.931 message")
        ref_len = data[1] & 0x0F
        if ref_len != 2 or len(data) < 5:
            raise H323Error("H.225.0 call references are two octets")
        ref = struct.unpack_from("!H", data, 2)[0]
        at = 5
        elements: list[tuple[int, bytes]] = []
        while at < len(data):
            ie = data[at]
            if ie & 0x80:
                elements.append((ie, b""))
                at += 1
                continue
            if ie == IE_USER_USER:
                if at + 3 > len(data):
                    raise H323Error("truncated User-user element")
                length = struct.unpack_from("!H", data, at + 1)[0]
                start = at + 3
            else:
                if at + 2 > len(data):
                    raise H323Error("truncated information element")
                length, start = data[at + 1], at + 2
            if start + length > len(data):
                raise H323Error(f"information element {ie:#x} runs past the message")
            elements.append((ie, data[start : start + length]))
            at = start + length
        return cls(data[4], ref & 0x7FFF, bool(ref & 0x8000), tuple(elements))


def cause_element(cause: int) -> tuple[int, bytes]:
    """Q.931 Cause: coding standard ITU-T, location user, the cause value."""
    return (IE_CAUSE, bytes((0x80, 0x80 | (cause & 0x7F))))


def cause_of(message: Q931) -> int | None:
    value = message.element(IE_CAUSE)
    return value[-1] & 0x7F if value else None


# -- H.225.0 messages ------------------------------------------------------------------------------

H225_OID = "0.0.8.2250.0"
H225_VERSION = 7
MIN_H225_VERSION = 4  # H.235 version 3 (and so H.235.6) needs H.225.0 version 4 or later
PROTOCOL_IDENTIFIER = f"{H225_OID}.{H225_VERSION}"
_GUID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class H225:
    """One H.225.0 call signaling message: its Q.931 envelope and its UUIE (a JSON object)."""

    name: str
    call_reference: int
    from_destination: bool
    body: dict[str, Any]
    cause: int | None = None
    display: str | None = None

    def encode(self) -> bytes:
        pdu = {"h323-uu-pdu": {"h323-message-body": {self.name: self.body}}}
        text = json.dumps(pdu, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        elements: list[tuple[int, bytes]] = []
        if self.name == "setup":
            elements.append((IE_BEARER, BEARER_H221))
        if self.cause is not None:
            elements.append(cause_element(self.cause))
        if self.display:
            elements.append((IE_DISPLAY, self.display.encode("ascii", "replace")[:80]))
        elements.append((IE_USER_USER, bytes((UU_IA5,)) + text))
        q931 = Q931(
            MESSAGE_TYPES[self.name], self.call_reference, self.from_destination, tuple(elements)
        )
        return tpkt(q931.encode())

    @classmethod
    def decode(cls, payload: bytes) -> H225:
        message = Q931.decode(payload)
        name = MESSAGE_NAMES.get(message.message_type)
        if name is None:
            raise H323Error(f"Q.931 message type {message.message_type:#x} is not handled")
        uu = message.element(IE_USER_USER)
        if not uu:
            raise H323Error("no User-user element (H.225.0 needs one in every message)")
        if uu[0] == UU_X208:
            raise H323Error("PER-coded H.225.0 is not supported by this gateway model")
        if uu[0] != UU_IA5:
            raise H323Error(f"User-user protocol discriminator {uu[0]} is not handled")
        try:
            pdu = json.loads(uu[1:].decode("ascii"))
            body = pdu["h323-uu-pdu"]["h323-message-body"]
            if not isinstance(body, dict) or list(body) != [name]:
                raise H323Error(f"the message body does not match the Q.931 type ({name})")
            uuie = body[name]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            if isinstance(exc, H323Error):
                raise
            raise H323Error(f"the User-user element is not an H323-UserInformation: {exc}") from exc
        if not isinstance(uuie, dict):
            raise H323Error(f"{name} must be an object")
        display = message.element(IE_DISPLAY)
        return cls(
            name,
            message.call_reference,
            message.from_destination,
            uuie,
            cause_of(message),
            display.decode("ascii", "replace") if display else None,
        )

    @property
    def call_identifier(self) -> str | None:
        ident = self.body.get("callIdentifier")
        guid = ident.get("guid") if isinstance(ident, dict) else None
        return guid if isinstance(guid, str) and _GUID.match(guid) else None


def reply(to: H225, name: str, body: dict[str, Any], cause: int | None = None) -> H225:
    """A message back on the same call reference, flagged as coming from the destination."""
    base = {"protocolIdentifier": PROTOCOL_IDENTIFIER}
    if to.call_identifier is not None:
        base["callIdentifier"] = {"guid": to.call_identifier}  # type: ignore[assignment]
    return H225(name, to.call_reference, not to.from_destination, base | body, cause)


def release_complete(to: H225, reason: str, cause: int = CAUSE_NORMAL) -> H225:
    return reply(to, "releaseComplete", {"reason": reason}, cause)


# -- H.235.6 ---------------------------------------------------------------------------------------

OID_H235_V3 = "0.0.8.235.0.3.24"
OID_DH512, OID_DH1024, OID_DH1536 = "0.0.8.235.0.3.40", "0.0.8.235.0.3.43", "0.0.8.235.0.3.44"
OID_DH2048 = "0.0.8.235.0.3.45"
WEAK_DH = {OID_DH512: 512, OID_DH1024: 1024, OID_DH1536: 1536}
# RFC 3526 group 14: a safe prime, so the half keys that count lie in the subgroup of order q.
DH2048_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6"
    "F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A6916"
    "3FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C"
    "32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA95"
    "6AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
DH2048_GENERATOR = 2
DH_SUBGROUP = (DH2048_PRIME - 1) // 2
PRIVATE_BITS = 256
MEDIA_ALGORITHMS = {p.value: p for p in SrtpProfile}
G711_ULAW = "g711Ulaw64k"
KEK_INFO = b"roomtrust H.235.6 media key encryption key"


def _hex_int(value: object) -> int | None:
    if not isinstance(value, str) or not value or len(value) > 2048:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


@dataclass(frozen=True)
class DhOffer:
    """The caller's half of the key agreement, checked."""

    oid: str
    halfkey: int


def dh_offer(tokens: object) -> DhOffer | str:
    """The H.235.6 key agreement a Setup's ClearTokens offer, or why there is none to accept."""
    if not isinstance(tokens, list) or not tokens:
        return "the Setup carries no H.235 ClearTokens"
    oids = [t.get("tokenOID") for t in tokens if isinstance(t, dict)]
    if OID_H235_V3 not in oids:
        return "the Setup does not signal H.235 version 3 (voice encryption profile)"
    weak: list[str] = []
    for token in tokens:
        if not isinstance(token, dict) or "dhkey" not in token:
            continue
        oid = token.get("tokenOID")
        if oid in WEAK_DH:
            weak.append(f"{WEAK_DH[oid]}-bit")
            continue
        if oid != OID_DH2048:
            continue
        dhkey = token["dhkey"]
        if not isinstance(dhkey, dict):
            return "malformed dhkey"
        for name, expected in (("modSize", DH2048_PRIME), ("generator", DH2048_GENERATOR)):
            if name in dhkey and _hex_int(dhkey[name]) != expected:
                return f"dhkey {name} does not match the 2048-bit group"
        halfkey = _hex_int(dhkey.get("halfkey"))
        if halfkey is None or not 1 < halfkey < DH2048_PRIME - 1:
            return "the DH half key is missing or out of range"
        if pow(halfkey, DH_SUBGROUP, DH2048_PRIME) != 1:
            return "the DH half key is not in the prime-order subgroup"
        return DhOffer(oid, halfkey)
    if weak:
        return f"only weak Diffie-Hellman groups offered ({', '.join(weak)}); 2048-bit needed"
    return "the Setup carries no Diffie-Hellman token (H.235.6 key agreement)"


def dh_private(random_bytes: Callable[[int], bytes]) -> int:
    return int.from_bytes(random_bytes(PRIVATE_BITS // 8), "big") | (1 << (PRIVATE_BITS - 1))


def dh_public(private: int) -> int:
    return pow(DH2048_GENERATOR, private, DH2048_PRIME)


def dh_token(public: int) -> dict[str, Any]:
    return {
        "tokenOID": OID_DH2048,
        "dhkey": {
            "halfkey": format(public, "x"),
            "modSize": format(DH2048_PRIME, "x"),
            "generator": format(DH2048_GENERATOR, "x"),
        },
    }


def key_encryption_key(private: int, peer_halfkey: int, call_identifier: str) -> bytes:
    shared = pow(peer_halfkey, private, DH2048_PRIME).to_bytes(256, "big")
    return HKDF(
        algorithm=hashes.SHA256(), length=16, salt=bytes.fromhex(call_identifier), info=KEK_INFO
    ).derive(shared)


def wrap_key(kek: bytes, key: KeyMaterial) -> str:
    return base64.b64encode(aes_key_wrap_with_padding(kek, key.key_and_salt)).decode("ascii")


def unwrap_key(kek: bytes, profile: SrtpProfile, wrapped: str) -> KeyMaterial:
    try:
        raw = aes_key_unwrap_with_padding(kek, base64.b64decode(wrapped, validate=True))
        return KeyMaterial.from_bytes(profile, raw)
    except (InvalidUnwrap, binascii.Error, ValueError, KeyMaterialError) as exc:
        raise H323Error(f"the wrapped media key does not open: {exc}") from exc


# -- the admission decision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Admit:
    """A Setup that may enter the conference (the meeting's rules still decide)."""

    conference_id: str
    password: str | None
    caller: str
    dh: DhOffer
    profile: SrtpProfile
    media: tuple[str, int]


@dataclass(frozen=True)
class Refuse:
    reason: str  # an H.225.0 ReleaseCompleteReason
    detail: str
    cause: int = CAUSE_INCOMPATIBLE


def _alias_text(alias: object) -> str | None:
    if not isinstance(alias, dict) or len(alias) != 1:
        return None
    value = next(iter(alias.values()))
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def conference_alias(text: str) -> tuple[str, str | None]:
    """`<conference>` or `<conference>*<password>` (the dialling convention of docs/interop.md)."""
    number, star, password = text.partition("*")
    return number, (password if star else None)


def _channel(channel: object) -> tuple[SrtpProfile, tuple[str, int] | None, bool] | str:
    """(profile, media address, is PCMU audio) of an encrypted fastStart channel, or the reason."""
    if not isinstance(channel, dict):
        return "malformed fastStart channel"
    data_type = channel.get("dataType")
    if not isinstance(data_type, dict) or "h235Media" not in data_type:
        return "a fastStart channel without h235Media (plain media) is refused"
    h235 = data_type["h235Media"]
    if not isinstance(h235, dict):
        return "malformed h235Media"
    eai = h235.get("encryptionAuthenticationAndIntegrity")
    algorithms = eai.get("encryptionCapability") if isinstance(eai, dict) else None
    if not isinstance(algorithms, list):
        return "h235Media without an encryption capability"
    profile = next((MEDIA_ALGORITHMS[a] for a in algorithms if a in MEDIA_ALGORITHMS), None)
    if profile is None:
        return f"no supported media encryption algorithm in {algorithms!r}"
    media_type = h235.get("mediaType")
    pcmu = isinstance(media_type, dict) and media_type.get("audioData") == G711_ULAW
    address: tuple[str, int] | None = None
    channel_address = channel.get("mediaChannel")
    if isinstance(channel_address, dict):
        ip, port = channel_address.get("ip"), channel_address.get("port")
        if isinstance(ip, str) and isinstance(port, int) and 0 < port < 65536:
            address = (ip, port)
    return profile, address, pcmu


def judge_setup(setup: H225) -> Admit | Refuse:
    """H.235 or nothing: the admission decision for one Setup."""
    body = setup.body
    identifier = body.get("protocolIdentifier")
    version = identifier.rpartition(".")[2] if isinstance(identifier, str) else ""
    if (
        not isinstance(identifier, str)
        or not identifier.startswith(H225_OID + ".")
        or not version.isdigit()
        or int(version) < MIN_H225_VERSION
    ):
        return Refuse("invalidRevision", f"H.225.0 version {MIN_H225_VERSION} or later needed")
    if setup.call_identifier is None:
        return Refuse("undefinedReason", "the Setup has no callIdentifier GUID")
    dh = dh_offer(body.get("tokens"))
    if isinstance(dh, str):
        return Refuse("securityDenied", dh)
    channels = body.get("fastStart")
    if not isinstance(channels, list) or not channels:
        return Refuse("securityDenied", "no fastStart channels with H.235 media encryption")
    profile: SrtpProfile | None = None
    media: tuple[str, int] | None = None
    for channel in channels:
        found = _channel(channel)
        if isinstance(found, str):
            return Refuse("securityDenied", found)
        channel_profile, address, pcmu = found
        if pcmu and address is not None and media is None:
            profile, media = channel_profile, address
    if profile is None or media is None:
        return Refuse(
            "neededFeatureNotSupported", "an encrypted G.711 u-law audio channel is needed"
        )
    aliases = body.get("destinationAddress")
    target = _alias_text(aliases[0]) if isinstance(aliases, list) and aliases else None
    if target is None:
        return Refuse("badFormatAddress", "no destinationAddress alias", CAUSE_NO_ROUTE)
    conference_id, password = conference_alias(target)
    sources = body.get("sourceAddress")
    caller = _alias_text(sources[0]) if isinstance(sources, list) and sources else None
    return Admit(conference_id, password, caller or "anonymous", dh, profile, media)


def setup_message(
    *,
    call_reference: int,
    call_identifier: str,
    destination: str,
    source: str,
    tokens: list[dict[str, Any]],
    channels: list[dict[str, Any]],
) -> H225:
    """A Setup as a third-party endpoint sends it (used by clients and tests)."""
    body = {
        "protocolIdentifier": PROTOCOL_IDENTIFIER,
        "callIdentifier": {"guid": call_identifier},
        "conferenceID": call_identifier,
        "conferenceGoal": "create",
        "sourceAddress": [{"h323-ID": source}],
        "destinationAddress": [{"url-ID": destination}],
        "sourceInfo": {"terminal": {}},
        "tokens": tokens,
        "fastStart": channels,
    }
    return H225("setup", call_reference, False, body, display=source)


def encrypted_audio(
    host: str, port: int, algorithm: str = SrtpProfile.AES_CM_128_HMAC_SHA1_80.value
) -> dict[str, Any]:
    """A fastStart audio channel with H.235 media encryption."""
    return {
        "forwardLogicalChannelNumber": 1,
        "dataType": {
            "h235Media": {
                "encryptionAuthenticationAndIntegrity": {"encryptionCapability": [algorithm]},
                "mediaType": {"audioData": G711_ULAW},
            }
        },
        "mediaChannel": {"ip": host, "port": port},
    }


def plain_audio(host: str, port: int) -> dict[str, Any]:
    """A fastStart audio channel without H.235: plain RTP."""
    return {
        "forwardLogicalChannelNumber": 1,
        "dataType": {"audioData": G711_ULAW},
        "mediaChannel": {"ip": host, "port": port},
    }
