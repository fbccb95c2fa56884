"""Server logs of a meeting region (MT-14): one file per day, `logs/meeting-YYYY-MM-DD.log` under the
region directory, dated by the region's clock so the retention engine can age them. They hold
operational events only; no media, no chat text."""

from __future__ import annotations

import logging
from pathlib import Path

from services.common.clock import Clock


class DailyFileHandler(logging.Handler):
    def __init__(self, directory: Path, clock: Clock) -> None:
        super().__init__()
        self.directory = directory
        self.clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def path_for_today(self) -> Path:
        return self.directory / f"meeting-{self.clock.now().date().isoformat()}.log"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with open(self.path_for_today(), "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except Exception:
            self.handleError(record)


def install(directory: Path, clock: Clock) -> DailyFileHandler:
    handler = DailyFileHandler(directory, clock)
    logger = logging.getLogger("roomtrust.meeting")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, DailyFileHandler) for h in logger.handlers):
        logger.addHandler(handler)
    return handler
