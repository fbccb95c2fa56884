"""The interop gateway's SDP rule, without I/O: SRTP (SDES) offers are answered, nothing else."""

from __future__ import annotations

import base64
import secrets

import pytest

from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.interop import sdp

KEY = KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes)
GCM = KeyMaterial.generate(SrtpProfile.AEAD_AES_128_GCM, secrets.token_bytes)


def offer_with(*media: str, session_c: bool = True) -> sdp.Session:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-"]
    if session_c:
        lines.append("c=IN IP4 192.0.2.1")
    lines.append("t=0 0")
    for block in media:
        lines += block.strip().splitlines()
    return sdp.Session.parse("\r\n".join(lines) + "\r\n")


def audio(proto: str = "RTP/SAVP", crypto: str | None = None, formats: str = "0 8") -> str:
    block = f"m=audio 49170 {proto} {formats}\na=rtpmap:0 PCMU/8000\n"
    if crypto is None:
        crypto = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()}"
    if crypto:
        block += f"a=crypto:{crypto}\n"
    return block + "a=rtcp-mux\n"


def test_an_srtp_offer_is_accepted_with_the_callers_key() -> None:
    judged = sdp.judge_offer(offer_with(audio()))
    assert isinstance(judged, sdp.Accepted)
    assert judged.crypto.key == KEY and judged.crypto.tag == 1
    assert judged.remote == ("192.0.2.1", 49170) and judged.rtcp_mux


def test_the_first_usable_crypto_line_wins_and_gcm_is_usable() -> None:
    block = audio(crypto=f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY.encode()}")
    block += f"a=crypto:2 AEAD_AES_128_GCM inline:{GCM.encode()}\n"
    judged = sdp.judge_offer(offer_with(block))
    assert isinstance(judged, sdp.Accepted)
    assert judged.crypto.tag == 2 and judged.crypto.profile is SrtpProfile.AEAD_AES_128_GCM


@pytest.mark.parametrize(
    ("media", "code", "words"),
    [
        (audio("RTP/AVP", crypto=""), sdp.WARN_TRANSPORT, "plain RTP"),
        (audio("RTP/AVPF", crypto=""), sdp.WARN_TRANSPORT, "plain RTP"),
        (audio("RTP/AVP"), sdp.WARN_TRANSPORT, "plain RTP"),  # keys on a plain stream: no
        (audio("UDP/TLS/RTP/SAVP", crypto=""), sdp.WARN_TRANSPORT, "DTLS-SRTP"),
        (audio("TCP/RTP/AVP", crypto=""), sdp.WARN_TRANSPORT, "refused"),
        (audio(crypto=""), sdp.WARN_MISC, "no a=crypto"),
        (audio(formats="8"), sdp.WARN_FORMAT, "PCMU"),
        (audio() + "m=video 49172 RTP/AVP 96\n", sdp.WARN_TRANSPORT, "video"),
        (
            "m=video 49172 RTP/SAVP 96\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY.encode(),
            sdp.WARN_FORMAT,
            "audio",
        ),
        ("m=audio 0 RTP/SAVP 0\n", sdp.WARN_MISC, "no active"),
    ],
)
def test_offers_that_are_not_srtp_only_are_refused(media: str, code: int, words: str) -> None:
    judged = sdp.judge_offer(offer_with(media))
    assert isinstance(judged, sdp.Refused), judged
    assert judged.warning_code == code and words in judged.reason


@pytest.mark.parametrize(
    ("crypto", "words"),
    [
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()} UNENCRYPTED_SRTP", "switch"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()} UNAUTHENTICATED_SRTP", "switch"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()} UNENCRYPTED_SRTCP", "switch"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()} KDR=1", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()}|2^20|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GCM.encode()}", "not valid"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not-base64!", "not valid"),
        (f"1 F8_128_HMAC_SHA1_80 inline:{KEY.encode()}", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY.encode()}", "inline"),
        ("x AES_CM_128_HMAC_SHA1_80", "malformed"),
    ],
)
def test_crypto_lines_that_weaken_or_cannot_work_are_unusable(crypto: str, words: str) -> None:
    found = sdp.parse_crypto(crypto)
    assert isinstance(found, str) and words in found
    judged = sdp.judge_offer(offer_with(audio(crypto=crypto)))
    assert isinstance(judged, sdp.Refused) and words in judged.reason


def test_a_lifetime_and_window_hint_are_fine() -> None:
    found = sdp.parse_crypto(f"3 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()}|2^31 WSH=64")
    assert isinstance(found, sdp.Crypto) and found.tag == 3


def test_the_answer_keeps_the_m_lines_declines_the_rest_and_carries_our_key() -> None:
    video = f"m=video 49172 RTP/SAVP 96\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()}"
    offer = offer_with(video, audio())
    judged = sdp.judge_offer(offer)
    assert isinstance(judged, sdp.Accepted) and judged.audio_index == 1
    ours = KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes)
    text = sdp.build_answer(offer, judged, host="127.0.0.1", port=40000, key=ours, session_id=7)
    answer = sdp.Session.parse(text)
    assert [(m.kind, m.port, m.proto) for m in answer.media] == [
        ("video", 0, "RTP/SAVP"),
        ("audio", 40000, "RTP/SAVP"),
    ]
    assert answer.media[1].formats == ["0"]
    assert answer.media[1].values("crypto") == [f"1 AES_CM_128_HMAC_SHA1_80 inline:{ours.encode()}"]
    assert ours.encode() != KEY.encode()
    assert "RTP/AVP" not in text


def test_the_connection_address_may_be_per_media() -> None:
    block = "m=audio 5000 RTP/SAVP 0\nc=IN IP4 198.51.100.7\n"
    block += f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY.encode()}\n"
    judged = sdp.judge_offer(offer_with(block, session_c=False))
    assert isinstance(judged, sdp.Accepted) and judged.remote == ("198.51.100.7", 5000)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
        "v=0\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/SAVP 0\r\n",  # no c=
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 host.example\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/SAVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nbad line\r\n",
        "v=0\r\n" + "a=x\r\n" * 5000,
    ],
)
def test_malformed_sdp_is_an_error(text: str) -> None:
    with pytest.raises(sdp.SdpError):
        sdp.Session.parse(text)


def test_the_offer_helper_makes_what_the_judge_wants() -> None:
    assert isinstance(
        sdp.judge_offer(sdp.Session.parse(sdp.offer("127.0.0.1", 4000, KEY))), sdp.Accepted
    )
    plain = sdp.Session.parse(sdp.offer("127.0.0.1", 4000, None, "RTP/AVP"))
    assert isinstance(sdp.judge_offer(plain), sdp.Refused)
    assert base64.b64decode(KEY.encode()) == KEY.key_and_salt
