"""The device agent: one room device's behaviour towards the network, as a sans-IO state machine.

Feed it events through `handle(event)`; it returns the actions its driver must perform. It owns no
socket, clock, file or random state: time comes in as `event.now`, key material as the CSR in its
identity, randomness (if any) as the optional `jitter` function.

What it does:
- at power-up and on a network change, the preconfigured-domain sequence (DM-12): the connectivity
  checks, then NTP (first server, then the second), then the DM server address; NTP again
  periodically. The proxy test site only when enabled; the vendor links only on a user action;
- enrollment with its CSR; a refusal (403: not deployed) is retried with backoff and nothing else is
  sent to the DM service (DM-02);
- heartbeats (every 30 s, or as the service says) and telemetry with only DM-09 fields;
- the outbound command channel; config, firmware and diagnostics commands go to the `on_*` hooks;
- configuration (DM-13): a config command is checked key by key against the model's keys
  (`devices_virtual.models`) and applied whole or refused whole, naming the key and the reason; the
  applied values take effect at once (NTP server, proxy test, heartbeat and telemetry intervals,
  log level, device name, time zone, connectivity checks), outlive a reboot, and the applied
  version is acknowledged and reported in telemetry (so drift is what the device reports);
- remote diagnosis (DM-05): on a diagnostics command, it uploads a bundle over mutual TLS holding
  only the DM-09 diagnosis fields and its own bounded log (`log.AgentLog`, filtered by its level);
- firmware updates (MT-05): download over mTLS, decrypt with the per-download key from the
  command, verify the signature against the release key built into the model, refuse a bad
  signature, a wrong model or a downgrade with the reason; install to the inactive slot (A/B),
  reboot into it, check health after boot, roll back by itself when the check fails, and report;
- its identity lifecycle: it renews its certificate before it ends (when fewer than
  `renew_before_s` are left on its NTP-set clock), over mutual TLS with the current certificate and
  a CSR for a new key (`NewKey`), then moves its session onto the new certificate (whose first use
  revokes the old one at the service); remote actions on the command channel: reboot, factory reset
  (wipe keys, certificate and settings, then only ask to enroll, refused until an administrator
  deploys the device again) and log level;
- the DM toggle (DM-03): while it is off, no action towards the DM service is returned;
- injected camera/microphone/display faults, reported as health events.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from devices_virtual.agent import firmware as fw_codes
from devices_virtual.agent.actions import (
    Action,
    CancelTimer,
    CloseDmSession,
    DownloadFile,
    ForgetCredential,
    HttpRequest,
    InstallImage,
    NewKey,
    NtpQuery,
    OpenChannel,
    Reboot,
    SendChannel,
    StartTimer,
    StoreCredential,
    WipeIdentity,
)
from devices_virtual.agent.backoff import Backoff
from devices_virtual.agent.diagnostics import UPLOAD_PATH, diagnostics_bundle
from devices_virtual.agent.domains import (
    CONNECTIVITY_CHECKS,
    NCSI_BODY,
    NTP_SERVERS,
    PROXY_TEST_HOST,
    VENDOR_LINKS,
)
from devices_virtual.agent.events import (
    CallStateChanged,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    DmToggled,
    DownloadDone,
    Event,
    FaultCleared,
    FaultInjected,
    HttpResponse,
    ImageInstalled,
    KeyReady,
    NetworkChanged,
    NetworkInfo,
    NtpReply,
    PowerOn,
    ProxyTestToggled,
    RequestFailed,
    TimerFired,
    UserOpenedLink,
)
from devices_virtual.agent.firmware import SLOT_NAMES, FirmwareState, Update, image_self_test
from devices_virtual.agent.log import DEBUG, ERROR, INFO, WARNING, AgentLog
from devices_virtual.agent.telemetry import report_id, telemetry_report, with_report_id
from devices_virtual.models import LOG_LEVELS, DeviceModel
from protocol import dm_channel
from protocol.dm_channel import RENEW_PATH, CloseCode, CommandKind, ProgressStage
from protocol.errors import Invalid
from protocol.fields import REPORT_ID
from protocol.firmware import (
    DOWNLOAD_KEY_BYTES,
    FirmwareRejected,
    decrypt_download,
    load_public_key,
    verify_package,
)

# Timer names. DM timers are cancelled whenever the DM connection is switched off.
T_BOOT = "boot"
T_CHECKS = "checks"
T_NTP = "ntp"
T_ENROLL = "enroll"
T_HEARTBEAT = "heartbeat"
T_TELEMETRY = "telemetry"
T_CHANNEL = "channel"
T_RENEW = "renew"
DM_TIMERS = (T_ENROLL, T_HEARTBEAT, T_TELEMETRY, T_CHANNEL, T_RENEW)
DAY = 86400.0
# A telemetry report whose answer was lost (no answer, or a 5xx) is sent again at once, with the
# same report id, so the service stores it once; at most this many times in all. (A heartbeat
# stores no row: a lost one is simply sent at the next interval.)
REPORT_ATTEMPTS = 3

REVOKED_CHANNEL_CODE = CloseCode.REVOKED


class Phase(StrEnum):
    OFF = "off"
    BOOTING = "booting"
    CHECKING = "checking"
    NO_NETWORK = "no_network"
    TIME_SYNC = "time_sync"
    ENROLLING = "enrolling"
    ENROLL_WAIT = "enroll_wait"
    ONLINE = "online"
    DM_OFF = "dm_off"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who the device is. `csr_pem` is made by the driver from a key it keeps (the agent never
    sees the private key)."""

    mac: str
    serial_number: str
    model: DeviceModel
    name: str
    csr_pem: str
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    dm_url: str
    dm_enabled: bool = True
    heartbeat_s: float = 30.0
    telemetry_s: float = 900.0
    ntp_interval_s: float = 3600.0
    checks_retry_s: float = 60.0
    boot_seconds: float | None = None  # None: the model's boot time
    connectivity_checks: bool = True
    proxy_test_enabled: bool = False
    command_channel: bool = True
    enroll_backoff: Backoff = field(default_factory=Backoff)
    channel_backoff: Backoff = field(default_factory=lambda: Backoff(initial=5.0, cap=300.0))
    network: NetworkInfo = field(default_factory=NetworkInfo)
    # The release public key (PEM) built into the model: firmware must be signed with it.
    release_key_pem: str | None = None
    log_level: str = INFO  # until a configuration sets `log.level`
    log_lines: int = 200  # the newest lines the log keeps
    renew_before_s: float = 30 * DAY  # renew the certificate when less than this is left
    renew_retry_s: float = 3600.0  # after a renewal that got no certificate


class DeviceAgent:
    __slots__ = (
        "_booting",
        "_channel_attempts",
        "_channel_wanted",
        "_checks_left",
        "_checks_ok",
        "_config_results",
        "_csr_new",
        "_csr_pem",
        "_csr_pending",
        "_fw",
        "_network_ready",
        "_next_heartbeat",
        "_next_id",
        "_now",
        "_ntp_server",
        "_pending",
        "_renewal",
        "_report_seq",
        "_reports",
        "_uploads",
        "acknowledged_reports",
        "cert_not_after",
        "channel_open",
        "clock_offset",
        "config",
        "configuration_version",
        "device_id",
        "dm_enabled",
        "enroll_attempts",
        "enrolled",
        "faults",
        "firmware_version",
        "identity",
        "in_call",
        "jitter",
        "log",
        "network",
        "phase",
        "proxy_test_enabled",
        "renewals",
        "resets",
        "settings",
        "software_version",
    )

    def __init__(
        self,
        identity: DeviceIdentity,
        config: AgentConfig,
        jitter: Callable[[float], float] | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.jitter = jitter
        self.phase = Phase.OFF
        self.dm_enabled = config.dm_enabled
        self.proxy_test_enabled = config.proxy_test_enabled
        self.network = config.network
        self.device_id: str | None = None
        self.enrolled = False
        self.software_version = identity.model.software_version
        self.firmware_version = identity.model.firmware_version
        self.configuration_version: str | None = None
        self.clock_offset: float | None = None
        self.faults: dict[str, str] = {}
        self.in_call = False
        self.enroll_attempts = 0
        self.channel_open = False
        self._channel_wanted = False
        self._channel_attempts = 0
        self._pending: dict[int, str] = {}
        self._next_id = 0
        self._reports: dict[int, tuple[str, dict[str, Any], int]] = {}  # in flight: to retry
        self._report_seq = 0
        # The ids of the telemetry reports the service answered 2xx (None: not kept; a test that
        # audits the store against what was acknowledged sets a list).
        self.acknowledged_reports: list[str] | None = None
        self._checks_left: set[int] = set()
        self._checks_ok = False
        self._ntp_server = 0
        self._booting = False  # inside the preconfigured-domain sequence
        self._network_ready = False
        self._next_heartbeat: float | None = None
        self._now = 0.0  # the time of the event being handled
        self._fw: FirmwareState | None = None  # made on the first firmware command
        # The applied configuration: what the DM service set, kept through reboots (flash).
        self.settings: dict[str, object] = {}
        self._config_results: dict[Any, dict[str, Any]] = {}  # command -> its acknowledgement
        self._uploads: dict[int, Any] = {}  # diagnostics upload request -> its command
        self.log = AgentLog(config.log_level, config.log_lines)
        # Identity: the CSR of the key the driver holds (None after a factory reset, until a
        # new key is made), whether that key is a new one (`NewKey`), when the certificate ends
        # (POSIX seconds), and the request of a renewal under way.
        self._csr_pem: str | None = identity.csr_pem
        self._csr_new = False
        self._csr_pending: str | None = None  # the CSR sent in a renewal under way
        self.cert_not_after: float | None = None
        self._renewal: int | None = None
        self.renewals = 0
        self.resets = 0

    # -- public -------------------------------------------------------------------------------

    @property
    def dm_host(self) -> str:
        return urlsplit(self.config.dm_url).netloc

    @property
    def device_name(self) -> str:
        return str(self.settings.get("device.name", self.identity.name))

    @property
    def time_zone(self) -> str:
        return str(self.settings.get("time_zone", self.identity.time_zone))

    @property
    def ntp_servers(self) -> tuple[str, ...]:
        """The time servers in the order tried: a configured one first, then the preconfigured."""
        pushed = self.settings.get("ntp.server")
        if not isinstance(pushed, str):
            return NTP_SERVERS
        return (pushed, *(host for host in NTP_SERVERS if host != pushed))

    @property
    def telemetry_interval(self) -> float:
        pushed = self.settings.get("dm.telemetry_s")
        return float(pushed) if isinstance(pushed, int) else self.config.telemetry_s

    @property
    def status(self) -> str:
        if self.faults:
            return "fault"
        return "in_call" if self.in_call else "online"

    def handle(self, event: Event) -> list[Action]:
        self._now = event.now
        match event:
            case PowerOn():
                return self._power_on(event.now)
            case TimerFired():
                return self._timer(event.now, event.name)
            case HttpResponse() | RequestFailed() | NtpReply():
                return self._answer(event)
            case NetworkChanged():
                self.network = event.network
                self.log.add(event.now, INFO, "network changed: %s", event.network.network_type)
                return self._leave_dm() + self._start_preconfigured(event.now)
            case DmToggled():
                return self._toggle(event.now, event.enabled)
            case ChannelOpened():
                self.channel_open, self._channel_attempts = True, 0
                self.log.add(event.now, INFO, "command channel open")
                return []
            case ChannelMessage():
                return self._channel_message(event.now, event.message)
            case ChannelClosed():
                return self._channel_closed(event.now, event.code)
            case FaultInjected():
                return self._fault(event.now, event.component, event.detail)
            case FaultCleared():
                return self._fault(event.now, event.component, None)
            case CallStateChanged():
                changed = self.in_call != event.in_call
                self.in_call = event.in_call
                return self._telemetry() if changed and self._online else []
            case UserOpenedLink():
                return self._open_link(event.link)
            case ProxyTestToggled():
                self.proxy_test_enabled = event.enabled
                self.log.add(event.now, INFO, "proxy test switched %s", _on(event.enabled))
                return []
            case DownloadDone():
                purpose = self._pending.pop(event.request_id, None)
                if purpose != "dm:firmware":
                    return []
                return self._downloaded(event.now, event.request_id, event.status, event.data)
            case ImageInstalled():
                return self.on_image_installed(event)
            case KeyReady():
                return self._key_ready(event.now, event.request_id, event.csr_pem)
        raise TypeError(f"not a device agent event: {event!r}")

    # -- commands from the channel ------------------------------------------------------------

    def on_command(self, now: float, command: dict[str, Any]) -> list[Action]:
        kind = command.get("kind")
        self.log.add(now, INFO, "command %s received: %s", command.get("command_id"), kind)
        if kind == CommandKind.CONFIG:
            return self.on_config_command(now, command)
        if kind == CommandKind.FIRMWARE:
            return self.on_firmware_command(now, command)
        if kind == CommandKind.DIAGNOSTICS:
            return self.on_diagnostics_command(now, command)
        if kind in dm_channel.REMOTE_ACTIONS:
            return self.on_remote_action(now, command)
        return []

    def on_remote_action(self, now: float, command: dict[str, Any]) -> list[Action]:
        """Reboot, factory reset or log level: acknowledged first, then carried out."""
        command_id, kind = command.get("command_id"), command.get("kind")
        done = self._config_results.get(command_id)
        if done is not None:  # delivered again: the service missed the acknowledgement
            return [self.ack(command_id, done)]
        if kind == CommandKind.LOG_LEVEL:
            payload = command.get("payload")
            level = payload.get("level") if isinstance(payload, dict) else None
            if level not in LOG_LEVELS:
                result = {"applied": False, "key": "level", "reason": "unknown log level"}
                return self._config_done(command_id, result)
            assert isinstance(level, str)
            self.log.set_level(level)
            self.log.add(now, INFO, "log level set to %s", level)
            return self._config_done(command_id, {"applied": True, "level": level})
        if kind == CommandKind.RENEW_CERTIFICATE:
            return self._renew_on_request(now, command_id)
        if kind == CommandKind.REBOOT:
            self.log.add(now, INFO, "rebooting on request (command %s)", command_id)
            return self._config_done(command_id, {"rebooting": True}) + self._reboot()
        return self._factory_reset(now, command_id)

    def _factory_reset(self, now: float, command_id: Any) -> list[Action]:
        """Acknowledge, then wipe the identity, keys, settings and log, and reboot as from the
        factory: the device then only asks to enroll, which the service refuses until an
        administrator deploys it again (DM-02). The firmware in flash stays."""
        ack = self.ack(command_id, {"reset": True})
        actions: list[Action] = [ack, *self._leave_dm(), WipeIdentity()]
        self.resets += 1
        self.enrolled, self.device_id, self.enroll_attempts = False, None, 0
        self._csr_pem, self._csr_new = None, False
        self.cert_not_after, self._renewal = None, None
        self.settings.clear()
        self._config_results.clear()
        self.configuration_version = None
        self.proxy_test_enabled = self.config.proxy_test_enabled
        self.dm_enabled = self.config.dm_enabled
        self._next_heartbeat = None
        self.log = AgentLog(self.config.log_level, self.config.log_lines)
        self.phase = Phase.BOOTING
        return [*actions, Reboot()]

    def on_config_command(self, now: float, command: dict[str, Any]) -> list[Action]:
        """Apply a configuration profile whole, or refuse it whole naming the key and the reason;
        either way acknowledge the command with its version."""
        command_id = command.get("command_id")
        done = self._config_results.get(command_id)
        if done is not None:  # delivered again: the service missed the acknowledgement
            return [self.ack(command_id, done)]
        payload = command.get("payload")
        version = payload.get("version") if isinstance(payload, dict) else None
        values = payload.get("values") if isinstance(payload, dict) else None
        refusal = self._check_profile(version, values)
        if refusal is not None:
            key, reason = refusal
            self.log.add(now, WARNING, "configuration %s refused: %s %s", version, key, reason)
            result = {"applied": False, "version": version, "key": key, "reason": reason}
            return self._config_done(command_id, result)
        assert isinstance(version, str) and isinstance(values, dict)
        before = dict(self.settings)
        self.settings.update(values)
        self.configuration_version = version
        level = self.settings.get("log.level")
        if isinstance(level, str):
            self.log.set_level(level)
        self.log.add(now, INFO, "configuration %s applied: %s", version, ", ".join(sorted(values)))
        for key in sorted(values):
            self.log.add(now, DEBUG, "setting %s = %s", key, values[key])
        actions = self._config_done(command_id, {"applied": True, "version": version})
        actions += self._settings_changed(now, before)
        return actions + (self._telemetry() if self._online else [])

    def _check_profile(self, version: Any, values: Any) -> tuple[str, str] | None:
        """(key, reason) of the first thing this device refuses in a profile, or None."""
        if not isinstance(version, str) or not version:
            return "version", "the command names no version"
        if not isinstance(values, dict) or not values:
            return "values", "the command holds no values"
        model = self.identity.model
        for key in sorted(values):
            reason = model.check_setting(str(key), values[key])
            if reason is not None:
                return str(key), reason
        return None

    def _config_done(self, command_id: Any, result: dict[str, Any]) -> list[Action]:
        self._config_results[command_id] = result
        while len(self._config_results) > 16:
            del self._config_results[next(iter(self._config_results))]
        return [self.ack(command_id, result)]

    def _settings_changed(self, now: float, before: dict[str, object]) -> list[Action]:
        """Make newly applied values take effect now (the rest take effect where they are read:
        the next boot's checks, the next report's name and time zone)."""

        def changed(key: str) -> bool:
            return key in self.settings and self.settings[key] != before.get(key)

        actions: list[Action] = []
        if changed("network.proxy_test_enabled"):
            self.proxy_test_enabled = self.settings["network.proxy_test_enabled"] is True
            if self.proxy_test_enabled and self._network_ready:
                actions.append(self._request("GET", f"http://{PROXY_TEST_HOST}/", "proxy_test"))
        if changed("ntp.server") and self._network_ready and not self._booting:
            actions += [CancelTimer(T_NTP), self._ntp_query_periodic()]
        if self._online and changed("dm.heartbeat_s"):
            actions.append(StartTimer(T_HEARTBEAT, now + self.heartbeat_interval))
        if self._online and changed("dm.telemetry_s"):
            actions.append(StartTimer(T_TELEMETRY, now + self.telemetry_interval))
        return actions

    def on_firmware_command(self, now: float, command: dict[str, Any]) -> list[Action]:
        """Install an image (`op` install) or boot back into a version (`op` rollback)."""
        fw = self.firmware
        command_id = command.get("command_id")
        if command_id in fw.reports:  # delivered again: the service missed the result
            return self._report(command_id)
        update = fw.update
        if update is not None:
            if update.command_id != command_id:
                return self._refused(command_id, fw_codes.BUSY, "another update is in progress")
            if update.stage == "downloading" and update.request_id not in self._pending:
                return [self._download(update)]  # the download was lost (network change)
            return []
        payload = command.get("payload")
        if not isinstance(payload, dict):
            return self._refused(command_id, fw_codes.BAD_COMMAND, "the command has no payload")
        op = payload.get("op", "install")
        if op == "rollback":
            return self._boot_back(command_id, payload.get("version"))
        path, key = payload.get("download"), payload.get("key")
        try:
            raw_key = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
        except (binascii.Error, ValueError):
            raw_key = b""
        if op != "install" or not isinstance(path, str) or not path.startswith("/"):
            return self._refused(command_id, fw_codes.BAD_COMMAND, "no download in the command")
        if len(raw_key) != DOWNLOAD_KEY_BYTES:
            return self._refused(command_id, fw_codes.BAD_COMMAND, "no download key")
        fw.update = Update(command_id, path, raw_key)
        self.log.add(now, INFO, "firmware %s: downloading", command_id)
        return [self._download(fw.update)]

    def on_diagnostics_command(self, now: float, command: dict[str, Any]) -> list[Action]:
        """Upload a bundle of the DM-09 diagnosis fields and this agent's log over mutual TLS; the
        service's answer to the upload completes the command (no acknowledgement is sent then)."""
        command_id = command.get("command_id")
        if command_id in self._uploads.values():  # delivered again while the upload runs
            return []
        payload = command.get("payload")
        path = payload.get("upload", UPLOAD_PATH) if isinstance(payload, dict) else UPLOAD_PATH
        if not isinstance(path, str) or not path.startswith("/") or self.device_id is None:
            self.log.add(now, WARNING, "diagnostics %s refused: no upload path", command_id)
            return [self.ack(command_id, {"uploaded": False, "reason": "no upload path"})]
        self.log.add(now, INFO, "diagnostics %s: uploading the log", command_id)
        bundle = diagnostics_bundle(
            command_id=command_id,
            device_id=self.device_id,
            mac=self.identity.mac,
            ip_address=self.network.ipv4_address,
            log_lines=self.log.lines(),
        )
        request = self._dm_request("POST", path, "diagnostics", bundle)
        self._uploads[request.request_id] = command_id
        return [request]

    def _uploaded(
        self, now: float, request_id: int, status: int | None, failure: str
    ) -> list[Action]:
        command_id = self._uploads.pop(request_id, None)
        if status == 201:
            self.log.add(now, INFO, "diagnostics %s uploaded", command_id)
            return []
        if status in (401, 403):
            return self._revoked(now)
        if status is None or status >= 500:  # lost: the service sends it again on reconnect
            self.log.add(now, WARNING, "diagnostics %s upload failed: %s", command_id, failure)
            return []
        self.log.add(now, WARNING, "diagnostics %s upload refused (%s)", command_id, status)
        if not self.channel_open:
            return []
        return [self.ack(command_id, {"uploaded": False, "status": status})]

    def on_image_installed(self, event: ImageInstalled) -> list[Action]:
        """The image is in the inactive slot: reboot into it, on trial until the health check."""
        fw = self._fw
        update = fw.update if fw is not None else None
        if fw is None or update is None or update.stage != "installing":
            return []
        if event.version != update.version:
            return []
        if not event.ok:
            return self._update_failed(fw_codes.INSTALL_FAILED, event.reason or "install failed")
        fw.slots[fw.inactive] = update.version
        fw.boot_into = fw.inactive
        update.stage = "rebooting"
        self.log.add(event.now, INFO, "firmware %s installed: rebooting into it", update.version)
        return self._reboot()

    # -- firmware (MT-05) -------------------------------------------------------------------------

    @property
    def firmware(self) -> FirmwareState:
        """The device's flash: slot A holds the factory version until the first update."""
        if self._fw is None:
            self._fw = FirmwareState(slots=[self.firmware_version, None])
        return self._fw

    def _download(self, update: Update) -> DownloadFile:
        update.request_id = self._new_id("dm:firmware")
        return DownloadFile(update.request_id, self.config.dm_url + update.path)

    def _downloaded(
        self, now: float, request_id: int, status: int, data: bytes, failure: str = ""
    ) -> list[Action]:
        fw = self._fw
        update = fw.update if fw is not None else None
        if update is None or update.request_id != request_id or update.stage != "downloading":
            return []
        if status != 200:
            detail = failure or f"the server answered {status}"
            return self._update_failed(fw_codes.DOWNLOAD_FAILED, detail)
        actions: list[Action] = []
        if self.dm_enabled and self.channel_open:
            progress = dm_channel.Progress(update.command_id, ProgressStage.DOWNLOADED)
            actions.append(SendChannel(progress.encode()))
        pem = self.config.release_key_pem
        try:
            if not pem:
                raise Invalid("no release key is built into this device", "release_key")
            release_key = load_public_key(pem.encode())
            package = decrypt_download(data, update.key, context=update.download_id.encode())
            signed = verify_package(
                package,
                release_key,
                model=self.identity.model.name,
                installed_version=self.firmware_version,
            )
        except FirmwareRejected as refused:
            return actions + self._update_failed(refused.rejection.value, refused.reason)
        except Invalid as missing:
            return actions + self._update_failed(fw_codes.NO_RELEASE_KEY, missing.reason)
        update.version = signed.manifest.version
        update.self_test_ok, update.self_test_detail = image_self_test(signed.image)
        update.stage = "installing"
        slot = SLOT_NAMES[self.firmware.inactive]
        self.log.add(now, INFO, "firmware %s verified; installing to slot %s", update.version, slot)
        return [*actions, InstallImage(slot, update.version, len(signed.image))]

    def _reboot(self) -> list[Action]:
        actions = self._leave_dm()
        self.phase = Phase.BOOTING
        return [*actions, Reboot()]

    def _booted(self, now: float) -> list[Action]:
        """The boot finished. On trial, the post-boot health check decides: keep the new version,
        or boot back into the previous slot by itself and report why."""
        fw = self._fw
        if fw is None or not fw.on_trial or fw.update is None:
            return self._start_preconfigured(now)
        update, fw.update, fw.on_trial = fw.update, None, False
        problems = [] if update.self_test_ok else [update.self_test_detail]
        if self.faults:
            problems.append("faulty " + ", ".join(sorted(self.faults)))
        if not problems:
            fw.remember(update.command_id, {"ok": True, "version": self.firmware_version})
            self.log.add(now, INFO, "firmware %s passed its health check", self.firmware_version)
            return self._start_preconfigured(now)
        self.log.add(now, ERROR, "firmware %s failed its health check", self.firmware_version)
        fw.boot_into = fw.inactive
        fw.remember(
            update.command_id,
            {
                "ok": False,
                "reason": fw_codes.HEALTH_CHECK_FAILED,
                "detail": "; ".join(problems)[:200],
                "version": fw.slots[fw.inactive],
                "failed_version": self.firmware_version,
                "rolled_back": True,
            },
        )
        return [Reboot()]  # straight back: the failed image never reaches the network

    def _boot_back(self, command_id: Any, version: Any) -> list[Action]:
        """An administrator's rollback: boot the other slot when it holds `version`."""
        fw = self.firmware
        if not isinstance(version, str):
            return self._refused(command_id, fw_codes.BAD_COMMAND, "no version to roll back to")
        if version == self.firmware_version:
            fw.remember(command_id, {"ok": True, "version": version})
            return self._report(command_id)
        if fw.slots[fw.inactive] != version:
            return self._refused(command_id, fw_codes.NO_SLOT, f"no slot holds {version}")
        fw.boot_into = fw.inactive
        fw.remember(command_id, {"ok": True, "version": version, "rolled_back": True})
        return self._reboot()

    def _update_failed(self, reason: str, detail: str) -> list[Action]:
        """The running update ends without a new version: report the reason at once."""
        fw = self.firmware
        update, fw.update = fw.update, None
        if update is None:
            return []
        result = {"ok": False, "reason": reason, "detail": detail[:200]}
        self.log.add(self._now, ERROR, "firmware update failed: %s", reason)
        fw.remember(update.command_id, {**result, "version": self.firmware_version})
        return self._report(update.command_id)

    def _refused(self, command_id: Any, reason: str, detail: str) -> list[Action]:
        self.firmware.remember(
            command_id,
            {"ok": False, "reason": reason, "detail": detail, "version": self.firmware_version},
        )
        return self._report(command_id)

    def _report(self, command_id: Any) -> list[Action]:
        """Acknowledge a firmware command with its result; a failure is also a health event
        (`firmware_update` fault, cleared by the next success)."""
        fw = self.firmware
        result = fw.reports[command_id]
        if not self.dm_enabled:
            return []
        actions: list[Action] = [self.ack(command_id, result)]
        if not self._online:
            return actions
        if not result["ok"] and not fw.fault_open:
            fw.fault_open = True
            detail = f"{result['reason']}: {result.get('detail', '')}"[:200]
            body = {"component": "firmware_update", "state": "fault", "detail": detail}
            actions.append(self._dm_request("POST", "/v1/device/health", "health", body))
        elif result["ok"] and fw.fault_open:
            fw.fault_open = False
            body = {"component": "firmware_update", "state": "ok"}
            actions.append(self._dm_request("POST", "/v1/device/health", "health", body))
        return actions

    # -- boot and preconfigured domains (DM-12) ---------------------------------------------------

    def _power_on(self, now: float) -> list[Action]:
        fw = self._fw
        if fw is not None and fw.boot_into is not None:
            fw.active, fw.boot_into = fw.boot_into, None
            self.firmware_version = fw.slots[fw.active] or self.firmware_version
            fw.on_trial = fw.update is not None and fw.update.stage == "rebooting"
            if fw.update is not None and fw.on_trial:
                fw.update.stage = "trial"
        self._pending.clear()
        self._uploads.clear()
        self._renewal = None
        self.channel_open = self._channel_wanted = False
        self._network_ready = False
        self.phase = Phase.BOOTING
        self.log.add(now, INFO, "power on: firmware %s", self.firmware_version)
        boot = self.config.boot_seconds
        if boot is None:
            boot = self.identity.model.boot_seconds
        cancel: list[Action] = [CancelTimer(name) for name in (T_CHECKS, T_NTP, *DM_TIMERS)]
        return [*cancel, StartTimer(T_BOOT, now + boot)]

    def _start_preconfigured(self, now: float) -> list[Action]:
        self._booting, self._network_ready = True, False
        checks = self.settings.get("connectivity_check.enabled", self.config.connectivity_checks)
        if checks is False:
            return self._start_time_sync(now)
        self.phase = Phase.CHECKING
        self._checks_left.clear()
        self._checks_ok = False
        actions: list[Action] = []
        for host, path in CONNECTIVITY_CHECKS:
            request = self._request("GET", f"http://{host}{path}", "connectivity", "check")
            self._checks_left.add(request.request_id)
            actions.append(request)
        return actions

    def _check_answered(self, now: float, request_id: int, ok: bool) -> list[Action]:
        self._checks_left.discard(request_id)
        self._checks_ok = self._checks_ok or ok
        if self._checks_left:
            return []
        if not self._checks_ok:
            self.phase = Phase.NO_NETWORK
            self.log.add(now, WARNING, "no connectivity; checking again later")
            return [StartTimer(T_CHECKS, now + self.config.checks_retry_s)]
        self.log.add(now, INFO, "connectivity checked")
        return self._start_time_sync(now)

    def _start_time_sync(self, now: float) -> list[Action]:
        if self._booting:
            self.phase = Phase.TIME_SYNC
        self._ntp_server = 0
        return [self._ntp_query()]

    def _ntp_query(self) -> NtpQuery:
        request_id = self._new_id("ntp")
        host = self.ntp_servers[self._ntp_server]
        self.log.add(self._now, DEBUG, "time query to %s", host)
        return NtpQuery(request_id, host)

    def _ntp_answered(self, now: float, server_time: float | None) -> list[Action]:
        servers = self.ntp_servers
        host = servers[min(self._ntp_server, len(servers) - 1)]
        if server_time is None and self._ntp_server + 1 < len(servers):
            self.log.add(now, WARNING, "no time from %s", host)
            self._ntp_server += 1
            return [self._ntp_query()]
        if server_time is None:
            self.log.add(now, WARNING, "no time server answered")
        else:
            self.clock_offset = server_time - now
            self.log.add(now, INFO, "clock set from %s", host)
        actions: list[Action] = [StartTimer(T_NTP, now + self.config.ntp_interval_s)]
        if self._booting:
            self._booting, self._network_ready = False, True
            if self.proxy_test_enabled:
                actions.append(self._request("GET", f"http://{PROXY_TEST_HOST}/", "proxy_test"))
            actions += self._start_dm(now)
        elif server_time is not None and self.dm_enabled:
            actions += self._check_renewal(now)  # the clock may have moved
        return actions

    def _open_link(self, link: str) -> list[Action]:
        host = VENDOR_LINKS.get(link)
        if host is None:
            raise ValueError(f"unknown link {link!r}; links are: {', '.join(VENDOR_LINKS)}")
        return [self._request("GET", f"https://{host}/", "vendor", link)]

    # -- the DM service ---------------------------------------------------------------------------

    @property
    def _online(self) -> bool:
        return self.phase is Phase.ONLINE

    def _start_dm(self, now: float) -> list[Action]:
        if not self.dm_enabled:
            self.phase = Phase.DM_OFF
            return []
        if self.enrolled:
            return self._start_session(now)
        return self._enroll()

    def _enroll(self) -> list[Action]:
        self.phase = Phase.ENROLLING
        if self._csr_pem is None:  # after a factory reset: a new key first
            if "key:enroll" in self._pending.values():
                return []
            return [NewKey(self._new_id("key:enroll"))]
        self.log.add(self._now, INFO, "enrolling with %s", self.dm_host)
        body = {"model": self.identity.model.name, "csr_pem": self._csr_pem}
        return [self._dm_request("POST", "/v1/enroll", "enroll", body, mtls=False)]

    def _enroll_answered(self, now: float, status: int, body: Any) -> list[Action]:
        if status == 201 and isinstance(body, dict):
            self.enrolled, self.enroll_attempts = True, 0
            self.device_id = str(body["device_id"])
            self.cert_not_after = _posix(body.get("not_after"))
            self.log.add(now, INFO, "enrolled as %s", self.device_id)
            credential = StoreCredential(
                self.device_id,
                str(body["certificate_pem"]),
                str(body["ca_pem"]),
                new_key=self._csr_new,
            )
            self._csr_new = False
            return [credential, *self._start_session(now)]
        return self._retry_enrollment(now)

    # -- certificate renewal ----------------------------------------------------------------------

    @property
    def wall_time(self) -> float | None:
        """POSIX seconds on the device's NTP-set clock; None before any time server answered."""
        return None if self.clock_offset is None else self._now + self.clock_offset

    def _check_renewal(self, now: float) -> list[Action]:
        """Renew when the certificate has less than `renew_before_s` left; otherwise look again
        when it will (at most a day from now: the clock may be set in between)."""
        wall = self.wall_time
        if not self._online or self._renewal is not None or self.cert_not_after is None:
            return []
        if wall is None:
            return []
        left = self.cert_not_after - wall
        if left > self.config.renew_before_s:
            wait = min(left - self.config.renew_before_s, DAY)
            return [StartTimer(T_RENEW, now + wait)]
        self.log.add(now, INFO, "certificate ends in %.1f days: renewing", left / DAY)
        self._renewal = self._new_id("key:renew")
        return [NewKey(self._renewal)]

    def _renew_on_request(self, now: float, command_id: Any) -> list[Action]:
        """An administrator's renewal wave: acknowledge, then renew now (one renewal already under
        way serves). Without a certificate there is nothing to renew: refused, with the reason."""
        if self.cert_not_after is None or self.device_id is None:
            result = {"renewing": False, "reason": "no certificate to renew"}
            return self._config_done(command_id, result)
        actions = self._config_done(command_id, {"renewing": True})
        if self._renewal is None:
            self.log.add(now, INFO, "renewing the certificate on request (command %s)", command_id)
            self._renewal = self._new_id("key:renew")
            actions.append(NewKey(self._renewal))
        return actions

    def _key_ready(self, now: float, request_id: int, csr_pem: str) -> list[Action]:
        purpose = self._pending.pop(request_id, None)
        if purpose == "key:enroll":
            self._csr_pem, self._csr_new = csr_pem, True
            if self.phase is Phase.ENROLLING and self.dm_enabled:
                return self._enroll()
            return []
        if purpose != "key:renew" or self._renewal != request_id or not self._online:
            return []
        request = self._dm_request("POST", RENEW_PATH, "renew", {"csr_pem": csr_pem})
        self._renewal = request.request_id
        self._csr_pending = csr_pem
        return [request]

    def _renew_answered(self, now: float, status: int | None, body: Any) -> list[Action]:
        self._renewal = None
        if status == 201 and isinstance(body, dict) and self.device_id is not None:
            self.renewals += 1
            self.cert_not_after = _posix(body.get("not_after"))
            self._csr_pem, self._csr_new = self._csr_pending, False
            self.log.add(now, INFO, "certificate renewed")
            credential = StoreCredential(
                self.device_id, str(body["certificate_pem"]), str(body["ca_pem"]), new_key=True
            )
            # From now on every connection uses the new certificate: its first use revokes the
            # old one at the service. The channel is reopened on it at once.
            actions: list[Action] = [credential, CloseDmSession(), self._heartbeat()]
            self.channel_open = False
            if self.config.command_channel:
                actions.append(self._open_channel())
            return actions + self._check_renewal(now)
        if status in (401, 403):
            return self._revoked(now)
        self.log.add(now, WARNING, "certificate renewal failed (%s)", status or "no answer")
        return [StartTimer(T_RENEW, now + self.config.renew_retry_s)]

    def _retry_enrollment(self, now: float) -> list[Action]:
        self.enroll_attempts += 1
        self.phase = Phase.ENROLL_WAIT
        delay = self.config.enroll_backoff.delay(self.enroll_attempts, self.jitter)
        self.log.add(now, WARNING, "not enrolled; asking again in %.0f s", delay)
        return [StartTimer(T_ENROLL, now + delay)]

    def _start_session(self, now: float) -> list[Action]:
        self.phase = Phase.ONLINE
        self.log.add(now, INFO, "DM session started")
        actions: list[Action] = [self._heartbeat(), *self._telemetry()]
        actions.append(StartTimer(T_TELEMETRY, now + self.telemetry_interval))
        actions += [self._health(c, d) for c, d in sorted(self.faults.items())]
        if self.config.command_channel:
            actions.append(self._open_channel())
        return actions + self._check_renewal(now)

    def _heartbeat(self) -> HttpRequest:
        body = {
            "status": self.status,
            "software_version": self.software_version,
            "firmware_version": self.firmware_version,
        }
        self.log.add(self._now, DEBUG, "heartbeat: %s", self.status)
        return self._device_report("heartbeat", body)

    def _telemetry(self) -> list[Action]:
        self.log.add(self._now, DEBUG, "telemetry: configuration %s", self.configuration_version)
        report = telemetry_report(
            device_name=self.device_name,
            mac=self.identity.mac,
            serial_number=self.identity.serial_number,
            server_address=self.dm_host,
            software_version=self.software_version,
            firmware_version=self.firmware_version,
            status=self.status,
            configuration_version=self.configuration_version,
            network=self.network,
            time_zone=self.time_zone,
        )
        return [self._device_report("telemetry", report)]

    def _device_report(self, purpose: str, body: dict[str, Any], attempt: int = 1) -> HttpRequest:
        """A heartbeat or telemetry report with its report id (chosen here, kept on retries)."""
        if REPORT_ID not in body:
            self._report_seq += 1
            body = with_report_id(body, report_id(self.identity.mac, self._now, self._report_seq))
        request = self._dm_request("POST", f"/v1/device/{purpose}", purpose, body)
        self._reports[request.request_id] = (purpose, body, attempt)
        return request

    def _health(self, component: str, detail: str | None) -> HttpRequest:
        body: dict[str, Any] = {
            "component": component,
            "state": "ok" if detail is None else "fault",
        }
        if detail:
            body["detail"] = detail
        return self._dm_request("POST", "/v1/device/health", "health", body)

    def _fault(self, now: float, component: str, detail: str | None) -> list[Action]:
        if component not in self.identity.model.components:
            raise ValueError(
                f"{self.identity.model.name} has no {component!r}; "
                f"components: {', '.join(self.identity.model.components)}"
            )
        was = self.status
        if detail is None:
            if self.faults.pop(component, None) is None:
                return []
            self.log.add(now, INFO, "%s ok again", component)
        else:
            self.faults[component] = detail or f"{component} fault"
            self.log.add(now, ERROR, "%s fault: %s", component, self.faults[component])
        if not self._online:
            return []
        actions: list[Action] = [self._health(component, self.faults.get(component))]
        return actions + (self._telemetry() if self.status != was else [])

    def _session_answered(self, now: float, purpose: str, status: int | None) -> list[Action]:
        if status is None or not 200 <= status < 300:
            self.log.add(now, WARNING, "%s not accepted (%s)", purpose, status or "no answer")
        if status in (401, 403):
            return self._revoked(now)
        if purpose == "heartbeat":
            return [StartTimer(T_HEARTBEAT, now + self.heartbeat_interval)]
        return []

    def _revoked(self, now: float) -> list[Action]:
        """The service no longer knows this certificate (un-deployed): back to enrollment."""
        self.log.add(now, WARNING, "certificate refused: enrolling again")
        self.enrolled, self.device_id = False, None
        actions = self._leave_dm()
        actions.append(ForgetCredential())
        return actions + self._retry_enrollment(now)

    def _leave_dm(self) -> list[Action]:
        """Stop every DM activity: timers, requests in flight, the channel and pooled connections."""
        self._pending = {k: v for k, v in self._pending.items() if not v.startswith("dm:")}
        self._uploads.clear()
        self._reports.clear()
        self._renewal = None
        actions: list[Action] = [CancelTimer(name) for name in DM_TIMERS]
        if self._channel_wanted or self.phase is Phase.ONLINE:
            actions.append(CloseDmSession())
        self.channel_open = self._channel_wanted = False
        return actions

    def _toggle(self, now: float, enabled: bool) -> list[Action]:
        if enabled == self.dm_enabled:
            return []
        self.dm_enabled = enabled
        self.log.add(now, INFO, "DM connection switched %s", _on(enabled))
        if not enabled:
            actions = self._leave_dm()
            if self._network_ready:
                self.phase = Phase.DM_OFF
            return actions
        return self._start_dm(now) if self._network_ready else []

    # -- command channel ---------------------------------------------------------------------------

    def _open_channel(self) -> OpenChannel:
        self._channel_wanted = True
        scheme, rest = self.config.dm_url.split("://", 1)
        ws = "wss" if scheme == "https" else "ws"
        return OpenChannel(f"{ws}://{rest}{dm_channel.PATH}")

    def _channel_message(self, now: float, message: dict[str, Any]) -> list[Action]:
        if not self.dm_enabled or message.get("type") != dm_channel.ChannelMessageType.COMMAND:
            return []
        return self.on_command(now, message)

    def _channel_closed(self, now: float, code: int) -> list[Action]:
        self.channel_open = False
        if not self._channel_wanted or not self.dm_enabled:
            return []
        if code == REVOKED_CHANNEL_CODE:
            return self._revoked(now)
        self._channel_attempts += 1
        delay = self.config.channel_backoff.delay(self._channel_attempts, self.jitter)
        self.log.add(now, WARNING, "command channel closed (%s); reopening in %.0f s", code, delay)
        return [StartTimer(T_CHANNEL, now + delay)]

    def ack(self, command_id: Any, result: dict[str, Any]) -> SendChannel:
        """The acknowledgement of a command, for the `on_*` hooks to return."""
        return SendChannel(dm_channel.Ack(command_id, result).encode())

    # -- timers and answers -----------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float:
        """An administrator's `dm.heartbeat_s` first, else what the service last said."""
        pushed = self.settings.get("dm.heartbeat_s")
        if isinstance(pushed, int):
            return float(pushed)
        return self._next_heartbeat or self.config.heartbeat_s

    def _timer(self, now: float, name: str) -> list[Action]:
        if name == T_BOOT:
            return self._booted(now)
        if name == T_CHECKS:
            return self._start_preconfigured(now)
        if name == T_NTP:
            return [] if self._booting else [self._ntp_query_periodic()]
        if not self.dm_enabled:
            return []
        if name == T_ENROLL and not self.enrolled:
            return self._enroll()
        if self.phase is not Phase.ONLINE:
            return []
        if name == T_HEARTBEAT:
            return [self._heartbeat()]
        if name == T_TELEMETRY:
            return [*self._telemetry(), StartTimer(T_TELEMETRY, now + self.telemetry_interval)]
        if name == T_CHANNEL and self.config.command_channel and not self.channel_open:
            return [self._open_channel()]
        if name == T_RENEW:
            return self._check_renewal(now)
        return []

    def _ntp_query_periodic(self) -> NtpQuery:
        self._ntp_server = 0
        return self._ntp_query()

    def _answer(self, event: HttpResponse | RequestFailed | NtpReply) -> list[Action]:
        purpose = self._pending.pop(event.request_id, None)
        if purpose is None:  # stale: sent before a toggle, network change or power cycle
            return []
        now = event.now
        status = event.status if isinstance(event, HttpResponse) else None
        body = event.body if isinstance(event, HttpResponse) else None
        if purpose == "ntp":
            server_time = event.server_time if isinstance(event, NtpReply) else None
            return self._ntp_answered(now, server_time)
        if purpose == "connectivity":
            return self._check_answered(now, event.request_id, _check_ok(status, body))
        if purpose == "dm:firmware":
            failure = event.reason if isinstance(event, RequestFailed) else "no answer"
            return self._downloaded(now, event.request_id, status or 0, b"", failure)
        if purpose == "dm:enroll":
            return self._enroll_answered(now, status or 0, body)
        if purpose == "dm:renew":
            return self._renew_answered(now, status, body)
        if purpose == "dm:diagnostics":
            failure = event.reason if isinstance(event, RequestFailed) else ""
            return self._uploaded(now, event.request_id, status, failure)
        report = self._reports.pop(event.request_id, None)
        if (
            report is not None
            and report[0] == "telemetry"
            and status is not None
            and 200 <= status < 300
            and self.acknowledged_reports is not None
        ):
            self.acknowledged_reports.append(str(report[1][REPORT_ID]))
        if report is not None and report[0] == "telemetry" and (status is None or status >= 500):
            kind, sent, attempt = report
            if attempt < REPORT_ATTEMPTS and self.phase is Phase.ONLINE:
                self.log.add(now, WARNING, "%s lost (%s); sending it again", kind, status)
                return [self._device_report(kind, sent, attempt + 1)]
        if purpose == "dm:heartbeat" and status == 200 and isinstance(body, dict):
            interval = body.get("next_heartbeat_s")
            if isinstance(interval, int | float) and interval > 0:
                self._next_heartbeat = float(interval)
        if purpose.startswith("dm:"):
            return self._session_answered(now, purpose[3:], status)
        return []

    # -- request bookkeeping ----------------------------------------------------------------------

    def _new_id(self, purpose: str) -> int:
        self._next_id += 1
        self._pending[self._next_id] = purpose
        return self._next_id

    def _request(
        self, method: str, url: str, target: str, purpose: str | None = None
    ) -> HttpRequest:
        request_id = self._new_id(target)
        return HttpRequest(request_id, method, url, target, purpose or target)

    def _dm_request(
        self, method: str, path: str, purpose: str, body: dict[str, Any], mtls: bool = True
    ) -> HttpRequest:
        if not self.dm_enabled:  # a programming error: callers check the toggle first
            raise AssertionError("DM request while the DM connection is switched off")
        request_id = self._new_id(f"dm:{purpose}")
        return HttpRequest(
            request_id, method, self.config.dm_url + path, "dm", purpose, body, mtls=mtls
        )


def _posix(value: Any) -> float | None:
    """An ISO 8601 time from the service as POSIX seconds (None when absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _on(enabled: bool) -> str:
    return "on" if enabled else "off"


def _check_ok(status: int | None, body: Any) -> bool:
    if status == 204:
        return True
    if status == 200:
        text = body.encode() if isinstance(body, str) else body
        return isinstance(text, bytes) and text.strip() == NCSI_BODY
    return False
