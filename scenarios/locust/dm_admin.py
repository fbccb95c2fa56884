"""A DM enterprise administrator under load: logs in, then lists the fleet, pushes the
configuration profile the set-up step made (one command per device of the site, delivered on the
devices' command channels) and reads the health alerts."""

from __future__ import annotations

from locust import User, constant_throughput, task

from load.client import nodes  # noqa: F401  (the shared Locust hooks)
from load.client.sessions import AdminSession


class DmAdministrator(User):
    wait_time = constant_throughput(0.5)

    def on_start(self) -> None:
        self.admin = AdminSession(self)

    @task(3)
    def list_devices(self) -> None:
        self.admin.call("GET", "/v1/devices", "list devices")

    @task(1)
    def push_config(self) -> None:
        self.admin.call("POST", f"/v1/config/profiles/{self.admin.profile_id}/push", "push config")

    @task(2)
    def read_alerts(self) -> None:
        self.admin.call("GET", "/v1/alerts", "read alerts")

    named_tasks = {
        "list_devices": list_devices,
        "push_config": push_config,
        "read_alerts": read_alerts,
    }
