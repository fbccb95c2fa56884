"""Diagnostics bundles are deleted 180 days after upload, and not a day before (injected clock)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from services.common.blobstore import DirectoryBlobStore
from services.common.db import make_engine, migrate, session_factory, sqlite_url, transaction
from services.dm.domain import accounts, diagnostics, fleet
from services.dm.main import MIGRATIONS
from services.dm.store.models import DiagnosticBundle

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def test_bundle_expires_after_180_days(tmp_path: Path) -> None:
    sessions = session_factory(make_engine(sqlite_url(tmp_path / "dm.sqlite3")))
    migrate(sessions.kw["bind"], MIGRATIONS)
    blobs = DirectoryBlobStore(tmp_path / "objects")
    with transaction(sessions) as s:
        accounts.register_enterprise(
            s,
            region="eu",
            name="E",
            email="d@e.example",
            password="correct horse battery",
            first_name="D",
            last_name="E",
            phone=None,
            now=T0,
        )
    with transaction(sessions) as s:
        _t, row = accounts.login(s, "d@e.example", "correct horse battery", T0)
        admin = accounts.AdminIdentity(row.id, row.enterprise_id, row.email)
        site = fleet.create_site(
            s,
            admin,
            name="S",
            time_zone="UTC",
            latitude=None,
            longitude=None,
            server_id=None,
            now=T0,
        )
        s.flush()
        device = fleet.deploy_device(
            s,
            admin,
            mac="02:00:00:00:00:09",
            serial_number="S9",
            model="DeskVision A24",
            site_id=site.id,
            name=None,
            tags=[],
            now=T0,
        )
        command = diagnostics.request(s, admin, device.id, T0)
        bundle = diagnostics.upload(
            s,
            device,
            {
                "command_id": command.id,
                "device_id": device.id,
                "mac": device.mac,
                "ip_address": "192.0.2.4",
                "logs": {"a.log": "x"},
            },
            blobs,
            T0,
        )
        key = bundle.file_name
    assert blobs.exists(key)
    with transaction(sessions) as s:
        assert diagnostics.purge_expired(s, blobs, T0 + dt.timedelta(days=179)) == 0
    assert blobs.exists(key)
    with transaction(sessions) as s:
        assert diagnostics.purge_expired(s, blobs, T0 + dt.timedelta(days=181)) == 1
    assert not blobs.exists(key)
    with transaction(sessions) as s:
        assert s.query(DiagnosticBundle).count() == 0
