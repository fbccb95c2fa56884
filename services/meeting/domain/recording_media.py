"""What a recording's encrypted chunks hold, and the playable file a download decrypts to.

Each chunk's plaintext is tagged: `META` + length + JSON (the header when the recording starts,
the trailer when it stops) or `PCM` + length + 16-bit little-endian linear PCM, mono at 8 kHz (the
recorder's mixdown of the call, media_core/mixdown.py). A download turns the chunks into one
RIFF/WAVE file: the PCM as its `data`, the header and trailer as JSON in a `LIST/INFO/ICMT`
comment, so the file says which conference it holds and any player (or `sox`) plays it.

Recordings written before media was kept hold untagged JSON only; they become a WAVE file with no
samples and that JSON as the comment.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

META = b"RTMETA"
PCM = b"RTPCM1"
SAMPLE_RATE = 8000
CHANNELS = 1
SAMPLE_BYTES = 2
MEDIA_FORMAT = {"codec": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": CHANNELS}
CONTENT_TYPE = "audio/wav"
_LEN = struct.Struct("<I")


def meta_chunk(meta: dict[str, Any]) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode()
    return META + _LEN.pack(len(body)) + body


def pcm_chunk(pcm: bytes) -> bytes:
    if len(pcm) % SAMPLE_BYTES:
        raise ValueError("PCM holds whole 16-bit samples")
    return PCM + _LEN.pack(len(pcm)) + pcm


@dataclass
class Contents:
    meta: list[Any] = field(default_factory=list)
    pcm: bytes = b""


def parse(stream: bytes) -> Contents:
    """The metadata and audio of a recording's decrypted chunks (concatenated)."""
    if not stream.startswith((META, PCM)):
        text = stream.decode("utf-8", "replace")
        return Contents([text] if text else [])
    meta: list[Any] = []
    audio: list[bytes] = []
    pos = 0
    while pos < len(stream):
        tag = stream[pos : pos + len(META)]
        if tag not in (META, PCM) or pos + len(tag) + _LEN.size > len(stream):
            raise ValueError(f"a recording chunk at byte {pos} has no known tag")
        (length,) = _LEN.unpack_from(stream, pos + len(tag))
        start = pos + len(tag) + _LEN.size
        body = stream[start : start + length]
        if len(body) != length:
            raise ValueError(f"a recording chunk at byte {pos} is cut off")
        if tag == META:
            meta.append(json.loads(body))
        else:
            audio.append(body)
        pos = start + length
    return Contents(meta, b"".join(audio))


def _riff_chunk(name: bytes, body: bytes) -> bytes:
    return name + _LEN.pack(len(body)) + body + (b"\0" if len(body) % 2 else b"")


def wav(pcm: bytes, comment: str = "") -> bytes:
    """A RIFF/WAVE file of 16-bit mono PCM at 8 kHz, with an optional INFO comment."""
    fmt = struct.pack(
        "<HHIIHH",
        1,  # PCM
        CHANNELS,
        SAMPLE_RATE,
        SAMPLE_RATE * CHANNELS * SAMPLE_BYTES,
        CHANNELS * SAMPLE_BYTES,
        8 * SAMPLE_BYTES,
    )
    body = b"WAVE" + _riff_chunk(b"fmt ", fmt)
    if comment:
        info = b"INFO" + _riff_chunk(b"ICMT", comment.encode() + b"\0")
        body += _riff_chunk(b"LIST", info)
    body += _riff_chunk(b"data", pcm)
    return _riff_chunk(b"RIFF", body)


def playable(stream: bytes) -> bytes:
    """The WAVE file a recording's decrypted chunks make."""
    contents = parse(stream)
    comment = json.dumps(contents.meta, sort_keys=True) if contents.meta else ""
    return wav(contents.pcm, comment)
