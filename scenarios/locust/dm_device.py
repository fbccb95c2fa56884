"""DM devices under load. Each Locust user is one room device running the real DeviceAgent.

DmDevice            a deployed device: it powers on and enrolls with its own CSR (the key never
                    leaves this worker), then sends heartbeats and telemetry at the scenario's
                    pace; configuration pushes arrive on its command channel (`dm command`).
UndeployedDmDevice  a device no administrator deployed: every enrollment must be refused (403);
                    an accepted one counts as a failure, so the run's verdict catches it (DM-02).
"""

from __future__ import annotations

from locust import User, constant_throughput, task

from load.client import nodes  # noqa: F401  (the shared Locust hooks)
from load.client.sessions import DeviceSession


class DmDevice(User):
    wait_time = constant_throughput(1.0)

    def on_start(self) -> None:
        self.device = DeviceSession(self, "device")
        self.device.power_on()

    @task(1)
    def heartbeat(self) -> None:
        if self.device.online:
            self.device.tick("heartbeat")

    @task(3)
    def telemetry(self) -> None:
        if self.device.online:
            self.device.tick("telemetry")

    def on_stop(self) -> None:
        self.device.close()

    named_tasks = {"heartbeat": heartbeat, "telemetry": telemetry}


class UndeployedDmDevice(User):
    wait_time = constant_throughput(0.5)

    def on_start(self) -> None:
        self.device = DeviceSession(self, "undeployed")
        self.device.power_on()

    @task
    def enroll(self) -> None:
        self.device.tick("enroll")

    def on_stop(self) -> None:
        self.device.close()

    named_tasks = {"enroll": enroll}
