"""`roomtrust status` on the live stack: each live relay of the media region with its counters.

The calls through signaling (keys over WSS, failover, removal, the PSTN leg) are proved by the
scenarios of features/media.feature, on the same shared stack.
"""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from roomtrust.stack import cli as stack_cli
from tests.meeting_relay.conftest import MediaRegion


def test_status_shows_each_live_relays_counters(media_region: MediaRegion) -> None:
    app = typer.Typer()
    stack_cli.register(app)
    result = CliRunner().invoke(
        app, ["status", "--home", str(media_region.home)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for name in media_region.relays():
        assert name in result.output
    assert "forwarded" in result.output and "dropped" in result.output
    missing = CliRunner().invoke(app, ["status", "--home", str(media_region.home / "nowhere")])
    assert missing.exit_code == 1 and "no local stack" in missing.output
