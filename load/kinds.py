"""The six kinds of Locust user, their Locust class names, and the names of request statistics.

Statistics are grouped by endpoint kind, never by URL or device: `dm telemetry`, `dm enroll`,
`admin push config`, `meeting join`. These names are what the CSV, the HTML report, the thresholds
and the calibration all refer to.
"""

from __future__ import annotations

from typing import Literal

UserKind = Literal["device", "undeployed", "admin", "operator", "participant", "moderator"]
USER_KINDS: tuple[UserKind, ...] = (
    "device",
    "undeployed",
    "admin",
    "operator",
    "participant",
    "moderator",
)

# user kind -> the Locust User class in scenarios/locust/
LOCUST_CLASSES: dict[UserKind, str] = {
    "device": "DmDevice",
    "undeployed": "UndeployedDmDevice",
    "admin": "DmAdministrator",
    "operator": "DmOperator",
    "participant": "MeetingParticipant",
    "moderator": "MeetingModerator",
}

# user kind -> the tasks a scenario may weigh (`load.classes.<kind>.tasks`)
TASKS: dict[UserKind, tuple[str, ...]] = {
    "device": ("heartbeat", "telemetry"),
    "undeployed": ("enroll",),
    "admin": ("list_devices", "push_config", "read_alerts"),
    "operator": ("operate",),
    "participant": ("meeting",),
    "moderator": ("meeting",),
}

# request types, the first column of Locust's statistics
HTTP = "HTTP"
WSS_OPEN = "WSS open"
WSS_SEND = "WSS send"
WSS_RECV = "WSS recv"
FLOW = "FLOW"

UNDEPLOYED_ENROLL = "dm enroll (undeployed)"


def endpoint(service: str, purpose: str) -> str:
    """The statistics name of a request or message: service and endpoint kind."""
    return f"{service} {purpose.replace('_', ' ')}"
