"""Audio measured by an independent tool: Debian's `sox` reads a downloaded recording.

`measure` asks sox what the file is (`sox --i`: rate, channels, duration) and how loud it is in a
narrow band around each frequency of interest (`sinc` band-pass, then `stats`: RMS level in dBFS),
and keeps a coarse power spectrum (`stat -freq`, averaged over the file, in 50 Hz bands) for the
report. Nothing of the project decodes the file here, so a recording that only the project's own
code could read does not pass. A file sox cannot open is reported as not playable, with sox's
reason. The checks (`roomtrust.comply.checks.media.recording_holds_tones`) judge the figures.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BAND_HALF_WIDTH = 25  # Hz each side of a measured frequency
SPECTRUM_BAND = 50  # Hz per band of the reported spectrum
FLOOR_DB = -150.0  # what a band with no signal at all is reported as
TIMEOUT = 60
_RMS = re.compile(r"RMS lev dB\s+(\S+)")


class SoxMissing(RuntimeError):
    """sox is not installed (`apt-get install -y sox`; `.ci/run` installs it)."""


def sox_path() -> str:
    path = shutil.which("sox")
    if path is None:
        raise SoxMissing("sox is not installed: apt-get install -y sox")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sox_path(), *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _rms_db(path: Path, *effects: str) -> float:
    done = _run(str(path), "-n", *effects, "stats")
    found = _RMS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise ValueError(f"sox stats failed: {done.stderr.strip()[:200]}")
    value = found.group(1)
    level = FLOOR_DB if value.endswith("inf") else float(value)
    return round(max(level, FLOOR_DB), 1)


def band_level(path: Path, hz: float) -> float:
    """RMS level (dBFS) of the file in a band of +-BAND_HALF_WIDTH Hz around `hz`."""
    low, high = max(1, hz - BAND_HALF_WIDTH), hz + BAND_HALF_WIDTH
    return _rms_db(path, "sinc", f"{low:g}-{high:g}")


def spectrum(path: Path) -> dict[int, float]:
    """The file's power spectrum averaged over its length, in SPECTRUM_BAND Hz bands (dB)."""
    done = _run(str(path), "-n", "stat", "-freq")
    if done.returncode != 0:
        return {}
    bands: dict[int, list[float]] = {}
    for line in done.stderr.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            freq, power = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        bands.setdefault(int(freq // SPECTRUM_BAND) * SPECTRUM_BAND, []).append(power)
    return {
        band: round(10 * math.log10(max(sum(p) / len(p), 1e-15)), 1)
        for band, p in sorted(bands.items())
    }


def _info(path: Path, flag: str) -> str:
    done = _run("--i", flag, str(path))
    if done.returncode != 0:
        raise ValueError(done.stderr.strip()[:200] or f"sox --i {flag} failed")
    return done.stdout.strip()


def measure(
    path: Path, tones: Sequence[float], references: Sequence[float] = (1000, 1500, 2500)
) -> dict[str, Any]:
    """What sox says of a recording: whether it plays, its format, and its levels (dBFS) at the
    expected `tones` and at `references` where nothing should sound."""
    version = _run("--version").stdout.strip()
    found: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size, "tool": version}
    try:
        rate, channels, duration = (_info(path, f) for f in ("-r", "-c", "-D"))
        found |= {
            "sample_rate": int(rate),
            "channels": int(channels),
            "duration": round(float(duration), 3),
            "overall_db": _rms_db(path),
            "levels_db": {int(hz): band_level(path, hz) for hz in tones},
            "reference_db": {int(hz): band_level(path, hz) for hz in references},
            "spectrum_db": spectrum(path),
        }
    except (ValueError, subprocess.TimeoutExpired) as exc:
        return found | {"playable": False, "error": str(exc)}
    return found | {"playable": True, "error": None}
