"""The telemetry report: only the DM-09 device-management fields, nothing about people or meetings.

A heartbeat or telemetry report also carries its report id (`protocol.fields.REPORT_ID`), an
envelope field outside DM-09: chosen by the device, kept on every retry of the report, so the
service stores the report once however often the device has to send it."""

from __future__ import annotations

from typing import Any, Final

from devices_virtual.agent.events import NetworkInfo
from protocol.fields import REPORT_ID, TELEMETRY_FIELDS

DM09_FIELDS: Final = frozenset(TELEMETRY_FIELDS)


def telemetry_report(
    *,
    device_name: str,
    mac: str,
    serial_number: str,
    server_address: str,
    software_version: str,
    firmware_version: str,
    status: str,
    configuration_version: str | None,
    network: NetworkInfo,
    time_zone: str,
) -> dict[str, str]:
    report = {
        "device_name": device_name,
        "mac": mac,
        "serial_number": serial_number,
        "server_address": server_address,
        "software_version": software_version,
        "firmware_version": firmware_version,
        "status": status,
        "network_id": network.network_id,
        "network_type": network.network_type,
        "ipv4_address": network.ipv4_address,
        "time_zone": time_zone,
    }
    if configuration_version is not None:
        report["configuration_version"] = configuration_version
    if network.ipv6_address is not None:
        report["ipv6_address"] = network.ipv6_address
    extra = set(report) - DM09_FIELDS
    if extra:  # a programming error, never data from outside
        raise AssertionError(f"telemetry outside DM-09: {sorted(extra)}")
    return report


def report_id(mac: str, at: float, sequence: int) -> str:
    """A report id unique per device: its MAC, the time in milliseconds and a counter."""
    return f"{mac.replace(':', '')}-{int(at * 1000):x}-{sequence:x}"


def with_report_id(report: dict[str, Any], new_id: str) -> dict[str, Any]:
    """The report in its envelope: the report id added unless it has one (a retry keeps it)."""
    return report if REPORT_ID in report else {**report, REPORT_ID: new_id}
