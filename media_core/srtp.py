"""SRTP and SRTCP sessions through libsrtp (pylibsrtp), and the key material that configures them.

Two profiles are offered: AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM. Replay protection is always
on (there is no option to turn it off or to allow repeated sequence numbers). A failure comes back
as `SrtpError` with a `kind` (bad tag, replay, too long, other) so a receiver can count each kind.

Key material is a master key and salt; it encodes as base64 of key||salt, as SDES `inline:` does.
Its repr never shows the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import pylibsrtp

# pylibsrtp copies every packet into a 1500-byte buffer and reserves room for the largest trailer.
SRTP_BUFFER = 1500
MAX_RTP_TO_PROTECT = SRTP_BUFFER - pylibsrtp.SRTP_MAX_TRAILER_LEN  # 1356 bytes
MAX_RTCP_TO_PROTECT = SRTP_BUFFER - pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN  # 1352 bytes
DEFAULT_REPLAY_WINDOW = 1024
LibsrtpError = pylibsrtp.Error


class SrtpProfile(enum.Enum):
    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AEAD_AES_128_GCM = "AEAD_AES_128_GCM"

    @property
    def key_length(self) -> int:
        return 16

    @property
    def salt_length(self) -> int:
        return 14 if self is SrtpProfile.AES_CM_128_HMAC_SHA1_80 else 12

    @property
    def tag_length(self) -> int:
        """Bytes SRTP adds to an RTP packet (the authentication tag)."""
        return 10 if self is SrtpProfile.AES_CM_128_HMAC_SHA1_80 else 16

    @property
    def srtcp_trailer_length(self) -> int:
        """Bytes SRTCP adds to an RTCP packet (E flag and index, plus the tag)."""
        return 4 + self.tag_length

    @property
    def _libsrtp(self) -> int:
        if self is SrtpProfile.AES_CM_128_HMAC_SHA1_80:
            return int(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        return int(pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM)


MIN_TAG_LENGTH = min(p.tag_length for p in SrtpProfile)


class KeyMaterialError(ValueError):
    """Key material that does not fit its profile."""


@dataclass(frozen=True)
class KeyMaterial:
    """An SRTP master key and master salt for one profile."""

    profile: SrtpProfile
    master_key: bytes = field(repr=False)
    master_salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.master_key) != self.profile.key_length:
            raise KeyMaterialError(
                f"{self.profile.value} needs a {self.profile.key_length}-byte key"
            )
        if len(self.master_salt) != self.profile.salt_length:
            raise KeyMaterialError(
                f"{self.profile.value} needs a {self.profile.salt_length}-byte salt"
            )

    @classmethod
    def generate(cls, profile: SrtpProfile, random_bytes: Callable[[int], bytes]) -> KeyMaterial:
        """Fresh key material drawn from `random_bytes` (pass `secrets.token_bytes`)."""
        return cls.from_bytes(profile, random_bytes(profile.key_length + profile.salt_length))

    @classmethod
    def from_bytes(cls, profile: SrtpProfile, key_and_salt: bytes) -> KeyMaterial:
        if len(key_and_salt) != profile.key_length + profile.salt_length:
            raise KeyMaterialError(
                f"{profile.value} key material is {profile.key_length + profile.salt_length} "
                f"bytes (key then salt), got {len(key_and_salt)}"
            )
        return cls(profile, key_and_salt[: profile.key_length], key_and_salt[profile.key_length :])

    @classmethod
    def decode(cls, profile: SrtpProfile, encoded: str) -> KeyMaterial:
        """Key material from base64 of key||salt."""
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyMaterialError("key material is not valid base64") from exc
        return cls.from_bytes(profile, raw)

    def encode(self) -> str:
        return base64.b64encode(self.master_key + self.master_salt).decode("ascii")

    @property
    def key_and_salt(self) -> bytes:
        return self.master_key + self.master_salt


class SrtpFailure(enum.Enum):
    BAD_TAG = "bad_tag"
    REPLAY = "replay"
    TOO_LONG = "too_long"
    OTHER = "other"


class SrtpError(Exception):
    def __init__(self, kind: SrtpFailure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_FAILURES = {
    "authentication failure": SrtpFailure.BAD_TAG,
    "replay check failed (bad index)": SrtpFailure.REPLAY,
    "replay check failed (index too old)": SrtpFailure.REPLAY,
}


class Direction(enum.Enum):
    INBOUND = "inbound"  # unprotects packets from the peer
    OUTBOUND = "outbound"  # protects packets for the peer


class SrtpSession:
    """One direction of SRTP and SRTCP with one key; streams for new SSRCs are made on demand.

    With `ssrc` set the session holds exactly that stream (as libsrtp's own validation does).
    """

    def __init__(
        self,
        keys: KeyMaterial,
        direction: Direction,
        *,
        ssrc: int | None = None,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        if not 64 <= replay_window <= 0x7FFF:
            raise ValueError("replay window must be 64..32767 packets")
        if ssrc is not None:
            ssrc_type, ssrc_value = pylibsrtp.Policy.SSRC_SPECIFIC, ssrc
        elif direction is Direction.INBOUND:
            ssrc_type, ssrc_value = pylibsrtp.Policy.SSRC_ANY_INBOUND, 0
        else:
            ssrc_type, ssrc_value = pylibsrtp.Policy.SSRC_ANY_OUTBOUND, 0
        policy = pylibsrtp.Policy(
            key=keys.key_and_salt,
            ssrc_type=ssrc_type,
            ssrc_value=ssrc_value,
            srtp_profile=keys.profile._libsrtp,
        )
        policy.allow_repeat_tx = False
        policy.window_size = replay_window
        self.keys = keys
        self.direction = direction
        self._session = pylibsrtp.Session(policy=policy)
        self._protect = self._session.protect
        self._unprotect = self._session.unprotect
        self._protect_rtcp = self._session.protect_rtcp
        self._unprotect_rtcp = self._session.unprotect_rtcp
        # The libsrtp calls themselves, without the length check or error mapping, for a hot path
        # that has already bounded the packet length; they raise `LibsrtpError`.
        self.protect_unchecked: Callable[[bytes], bytes] = self._session.protect
        self.protect_rtcp_unchecked: Callable[[bytes], bytes] = self._session.protect_rtcp

    def protect(self, rtp: bytes) -> bytes:
        if len(rtp) > MAX_RTP_TO_PROTECT:
            raise SrtpError(SrtpFailure.TOO_LONG, f"RTP packets over {MAX_RTP_TO_PROTECT} bytes")
        try:
            return self._protect(rtp)
        except pylibsrtp.Error as exc:
            raise _failure(exc) from None

    def unprotect(self, srtp: bytes) -> bytes:
        if len(srtp) > SRTP_BUFFER:
            raise SrtpError(SrtpFailure.TOO_LONG, f"SRTP packets over {SRTP_BUFFER} bytes")
        try:
            return self._unprotect(srtp)
        except pylibsrtp.Error as exc:
            raise _failure(exc) from None

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        if len(rtcp) > MAX_RTCP_TO_PROTECT:
            raise SrtpError(SrtpFailure.TOO_LONG, f"RTCP packets over {MAX_RTCP_TO_PROTECT} bytes")
        try:
            return self._protect_rtcp(rtcp)
        except pylibsrtp.Error as exc:
            raise _failure(exc) from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        if len(srtcp) > SRTP_BUFFER:
            raise SrtpError(SrtpFailure.TOO_LONG, f"SRTCP packets over {SRTP_BUFFER} bytes")
        try:
            return self._unprotect_rtcp(srtcp)
        except pylibsrtp.Error as exc:
            raise _failure(exc) from None


def _failure(exc: pylibsrtp.Error) -> SrtpError:
    reason = str(exc)
    return SrtpError(_FAILURES.get(reason, SrtpFailure.OTHER), reason)
