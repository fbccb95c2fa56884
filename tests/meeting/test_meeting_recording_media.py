"""What a recording's chunks hold and the WAVE file a download decrypts to."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from array import array
from io import BytesIO
from pathlib import Path

import pytest

from services.meeting.domain import recording_media as rm


def pcm(values: list[int]) -> bytes:
    return array("h", values).tobytes()


def test_chunks_make_a_wave_file_with_the_audio_and_the_metadata() -> None:
    stream = (
        rm.meta_chunk({"conference_id": "sa-c1", "media": rm.MEDIA_FORMAT})
        + rm.pcm_chunk(pcm([1, 2, 3]))
        + rm.pcm_chunk(pcm([4]))
        + rm.meta_chunk({"stopped_at": "2025-01-01T00:00:00"})
    )
    contents = rm.parse(stream)
    assert contents.pcm == pcm([1, 2, 3, 4])
    assert contents.meta[0]["conference_id"] == "sa-c1" and "stopped_at" in contents.meta[1]
    data = rm.playable(stream)
    with wave.open(BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.readframes(10) == pcm([1, 2, 3, 4])
    assert b"sa-c1" in data  # the comment says which conference it is


def test_a_recording_from_before_media_was_kept_is_an_empty_wave_file() -> None:
    legacy = json.dumps({"conference_id": "sa-old", "media": "rtp"}).encode()
    data = rm.playable(legacy)
    with wave.open(BytesIO(data)) as wav:
        assert wav.getnframes() == 0
    assert b"sa-old" in data


@pytest.mark.parametrize(
    "stream",
    [rm.meta_chunk({}) + b"XXXXXX\x00\x00\x00\x00", rm.pcm_chunk(pcm([1, 2]))[:-1]],
    ids=["unknown tag", "cut off"],
)
def test_a_corrupt_chunk_stream_is_refused(stream: bytes) -> None:
    with pytest.raises(ValueError):
        rm.parse(stream)


def test_odd_pcm_is_refused() -> None:
    with pytest.raises(ValueError):
        rm.pcm_chunk(b"\x00")


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_sox_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    path.write_bytes(rm.wav(pcm([0, 1000, -1000] * 800), '[{"conference_id": "x"}]'))
    info = subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True)
    assert info.returncode == 0 and float(info.stdout) == pytest.approx(0.3)
