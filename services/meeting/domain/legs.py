"""Leg kinds of a conference: how a participant reached it, and so how its CDR leg is recorded.

A leg is encrypted end to end unless its far side is plain: a PSTN caller's phone side is G.711
(MT-08). A third-party room system comes through the interop gateway only over SIP TLS with SRTP
or H.225 with H.235 (MT-07), so its leg is encrypted and the CDR names the protocol as its
transport. Everything else is the service's own signaling over TLS with SRTP media.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SIGNALING_TRANSPORT = "tls+srtp"
PSTN_TRANSPORT = "pstn+g711"
SIPS_TRANSPORT = "sips+srtp"
H323_TRANSPORT = "h323+h235"


# The `kind` of the identity the interop gateway signs its callers in with (a third-party room
# system, not an account of any enterprise).
INTEROP_CALLER = "interop"


class LegKind(StrEnum):
    CLIENT = "client"  # the service's own clients and room systems
    PSTN = "pstn"  # a phone caller brought in by the region's PSTN gateway
    SIPS = "sips"  # a SIP TLS system brought in by the interop gateway
    H323 = "h323"  # an H.323 system with H.235, brought in by the interop gateway


@dataclass(frozen=True)
class LegTerms:
    """What the CDR records of a leg of this kind, and what the roster shows."""

    encrypted: bool
    transport: str


TERMS: dict[LegKind, LegTerms] = {
    LegKind.CLIENT: LegTerms(True, SIGNALING_TRANSPORT),
    LegKind.PSTN: LegTerms(False, PSTN_TRANSPORT),
    LegKind.SIPS: LegTerms(True, SIPS_TRANSPORT),
    LegKind.H323: LegTerms(True, H323_TRANSPORT),
}

INTEROP_KINDS = {LegKind.SIPS.value: LegKind.SIPS, LegKind.H323.value: LegKind.H323}


def terms(kind: LegKind) -> LegTerms:
    return TERMS[kind]
