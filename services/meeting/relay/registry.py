"""A relay of a replicated meeting region registers itself in PostgreSQL and beats its row.

With ROOMTRUST_DATABASE_URL on PostgreSQL (the deployed region, and the replicated one), the
relay writes its row in the region's `relays` table once its ready file is written (name, media
address, control URL, CA file, capacity, pid) and refreshes its heartbeat every `BEAT_SECONDS`.
When a beat finds the row declared lost (a replica gave up on it and moved its conferences), the
relay ends itself, so it never carries media next to its replacement. A region process reads the
rows when it is replicated (ROOMTRUST_BUS_URL); the embedded region (SQLite, or one process) finds
its relays by their ready files, as before.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from services.common.db import is_postgres, make_engine, session_factory, store_location
from services.common.settings import Settings
from services.meeting.store.replica_store import RelayInfo, ReplicaStore

log = logging.getLogger("roomtrust.meeting.relay")
BEAT_SECONDS = 1.0
CAPACITY = 200  # conferences a relay takes, as the placement reads it


def replicated(settings: Settings) -> bool:
    """Whether a region process of these settings is replicated (a bus and PostgreSQL)."""
    return bool(settings.bus_url) and registers(settings)


def registers(settings: Settings) -> bool:
    """Whether a relay of these settings registers in the region's database."""
    return bool(settings.database_url and is_postgres(settings.database_url))


def start_registration(
    settings: Settings, home: Path, region: str, ready: Path, ca_file: Path
) -> threading.Thread:
    """Register and beat in a daemon thread once `ready` exists."""
    assert settings.database_url is not None
    url, schema = store_location(
        settings.database_url, home, "meeting", region, settings.schema_prefix
    )
    store = ReplicaStore(session_factory(make_engine(url, schema)))
    thread = threading.Thread(
        target=_beat, args=(store, ready, ca_file), name="relay-registration", daemon=True
    )
    thread.start()
    return thread


def _beat(store: ReplicaStore, ready: Path, ca_file: Path) -> None:
    while not ready.exists():
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    relay = RelayInfo(
        str(info["name"]),
        f"{info['media_host']}:{info['media_port']}",
        str(info["control_url"]),
        str(ca_file),
        CAPACITY,
        os.getpid(),
    )
    registered = False
    while True:
        try:
            if not registered:
                store.register_relay(relay)
                registered = True
            elif not store.beat_relay(relay.name):
                log.warning("relay %s was declared lost; ending", relay.name)
                os.kill(os.getpid(), signal.SIGTERM)
                return
        except Exception as exc:  # the region may not have made its tables yet
            log.warning("relay registration: %s", str(exc).splitlines()[0][:200])
        time.sleep(BEAT_SECONDS)
