"""The DM-09 data categories: the only fields the DM service may store, as explicit lists.

A device reports exactly `TELEMETRY_FIELDS` (device management), uploads exactly
`DIAGNOSTICS_UPLOAD_FIELDS` for a remote diagnosis, and an administrator downloads a bundle of
exactly `DIAGNOSTICS_BUNDLE_FIELDS`. An administrator record holds `ACCOUNT_FIELDS`. The service
checks the values (`services.dm.domain.fields`); the lists are the contract.
"""

from __future__ import annotations

from typing import Final

# Device management category: the only fields a device may report.
TELEMETRY_FIELDS: Final = (
    "device_name",
    "mac",
    "serial_number",
    "server_address",
    "software_version",
    "firmware_version",
    "status",
    "configuration_version",
    "network_id",
    "network_type",
    "ipv4_address",
    "ipv6_address",
    "time_zone",
)
# Of those, the ones a report may leave out.
OPTIONAL_TELEMETRY_FIELDS: Final = ("configuration_version", "ipv6_address")

NETWORK_TYPES: Final = ("ethernet", "wifi", "cellular")
DEVICE_STATUSES: Final = ("online", "idle", "in_call", "upgrading", "rebooting", "fault")

# Remote diagnosis: what a device uploads, and what a downloaded bundle holds.
DIAGNOSTICS_UPLOAD_FIELDS: Final = ("command_id", "device_id", "mac", "ip_address", "logs")
DIAGNOSTICS_BUNDLE_FIELDS: Final = ("device_id", "mac", "ip_address", "logs", "collected_at")

# Account management: what an administrator record may hold.
ACCOUNT_FIELDS: Final = ("email", "password", "first_name", "last_name", "phone")

# The envelope of a heartbeat or telemetry report: about the report, not device data, so not a
# DM-09 field and never stored as telemetry. `report_id` is chosen by the device, the same on
# every retry of one report; the service stores a report once per id (a retry after a lost answer
# stores nothing twice and gets the same answer). Optional: older clients leave it out.
REPORT_ID: Final = "report_id"
REPORT_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{8,64}$"
ENVELOPE_FIELDS: Final = (REPORT_ID,)
