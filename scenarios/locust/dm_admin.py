"""DM enterprise administrators under load.

DmAdministrator  logs in, then lists the fleet, pushes the configuration profile the set-up step
                 made (one command per device of the site, delivered on the devices' command
                 channels) and reads the health alerts, at the scenario's pace.
DmOperator       logs in and carries out the scenario's `operations` once each, at their time: a
                 push of the profile and a renewal wave (`renew_certificate` to every device of
                 each site). The devices' agents carry them out; `roomtrust load` then reports
                 what the DM service recorded of that (load.operations).
"""

from __future__ import annotations

import time

from locust import User, constant, constant_throughput, task

from load.client import nodes
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


class DmOperator(User):
    wait_time = constant(0.25)

    def on_start(self) -> None:
        self.admin = AdminSession(self, "operator")
        self.started = time.monotonic()
        self.done: set[str] = set()

    def _due(self, step: str) -> bool:
        at = nodes.operations().get(step)
        return at is not None and step not in self.done and time.monotonic() - self.started >= at

    @task
    def operate(self) -> None:
        if self._due("push_config_at_s"):
            self.done.add("push_config_at_s")
            self.admin.call(
                "POST", f"/v1/config/profiles/{self.admin.profile_id}/push", "push config"
            )
        if self._due("renew_at_s"):
            self.done.add("renew_at_s")
            for site_id in self.admin.site_ids:
                body = {"action": "renew_certificate", "target": {"site_id": site_id}}
                self.admin.call("POST", "/v1/devices/actions", "renewal wave", body)

    named_tasks = {"operate": operate}
