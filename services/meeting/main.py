"""Run one meeting region: `roomtrust serve meeting --region na` (or `python -m
services.meeting.main --region sa --home .roomtrust`).

Its settings come from ROOMTRUST_* (services/common/settings.py); `--home` and `--port` override
ROOMTRUST_HOME and ROOMTRUST_PORT. The region's relay pool is its media-key hook: keys come from the
region's relays (found by their ready files under `<home>/meeting/<region>/relays/`), and the pool
moves calls when a relay fails. With ROOMTRUST_BUS_URL (and PostgreSQL) the region is replicated:
relays, placements and conference owners are shared in the database and the replicas reach each
other over NATS (docs/meeting-replicas.md). The service tokens it shares with its relays and gateways are the
mounted secret files the settings name, else files under its state directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.runtime import RegionRuntime, read_secret, run_region
from services.common.settings import SettingsError
from services.meeting.api.app import build_app
from services.meeting.api.bus import Bus
from services.meeting.api.replication import Replication, new_replica_id
from services.meeting.media.pool import RelayPool
from services.meeting.media.shared_pool import SharedRelayPool
from services.meeting.relay.files import use_token_files
from services.meeting.relay.registry import replicated
from services.meeting.store.replica_store import ReplicaStore

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_region(runtime: RegionRuntime) -> Any:
    """The region's app with its relay pool (`runtime.directory` is `<home>/meeting/<region>`)."""
    settings = runtime.settings
    for setting in ("relay_token_file", "pstn_token_file", "interop_token_file"):
        path = getattr(settings, setting)
        if path is not None:
            read_secret(path, setting)  # a missing secret is refused at start, not at first use
    use_token_files(
        settings.relay_token_file, settings.pstn_token_file, settings.interop_token_file
    )
    home = runtime.directory.parents[1]
    if settings.bus_url is None:
        return build_app(runtime, media_keys=RelayPool(home, runtime.region))
    if not replicated(settings):
        raise SettingsError("ROOMTRUST_BUS_URL: a replicated region needs a PostgreSQL database")
    shared = ReplicaStore(runtime.sessions)
    replication = Replication(Bus(settings.bus_url, runtime.region), shared, new_replica_id())
    pool = SharedRelayPool(home, runtime.region, shared)
    return build_app(runtime, media_keys=pool, replication=replication)


def main(argv: list[str] | None = None) -> None:
    run_region("meeting", MIGRATIONS, build_region, argv)


if __name__ == "__main__":
    main()
