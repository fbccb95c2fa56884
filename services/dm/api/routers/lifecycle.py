"""A device identity after enrollment: certificate renewal (the device, over mutual TLS) and remote
actions (an administrator: reboot, factory reset, log level, renew certificate; one device or
many).

Re-deploying an un-deployed or reset device is `POST /v1/devices` again (routers/fleet.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from protocol.dm_channel import RENEW_PATH
from services.common.errors import Invalid
from services.dm.api.delivery import deliver
from services.dm.api.deps import AdminAuth, DeviceAuth, State
from services.dm.api.schemas import RemoteActionIn, RemoteActionOut, RenewIn, RenewOut
from services.dm.domain import lifecycle

router = APIRouter(tags=["device lifecycle"])


@router.post(RENEW_PATH, status_code=201, response_model=RenewOut)
async def renew_certificate(body: RenewIn, device: DeviceAuth, state: State) -> RenewOut:
    """A new certificate for a new key, asked for with the current certificate; the current one
    is revoked once the new one is used."""
    now, ca, lifetime = state.now(), state.runtime.ca, state.certificate_lifetime
    issued = await device.read(
        lambda s, d: lifecycle.renew(
            s,
            ca,
            d,
            presented_pem=device.certificate,
            csr_pem=body.csr_pem,
            now=now,
            lifetime=lifetime,
        )
    )
    return RenewOut(
        certificate_pem=issued.certificate_pem,
        ca_pem=issued.ca_pem,
        not_after=issued.not_after.isoformat(),
    )


def _payload(body: RemoteActionIn) -> dict[str, Any]:
    return {} if body.level is None else {"level": body.level}


async def _request(
    body: RemoteActionIn,
    admin: AdminAuth,
    state: State,
    device_ids: list[str] | None,
    target: dict[str, str] | None,
) -> RemoteActionOut:
    now = state.now()
    queued = await admin.run(
        lambda s, who: [
            (device.id, command.id)
            for device, command in lifecycle.request_action(
                s,
                who,
                action=body.action,
                payload=_payload(body),
                device_ids=device_ids,
                target=target,
                now=now,
            )
        ]
    )
    online = await deliver(state, [device_id for device_id, _ in queued])
    return RemoteActionOut(
        action=body.action,
        devices=len(queued),
        delivered_now=online,
        commands=dict(queued),
    )


@router.post("/v1/devices/{device_id}/actions", status_code=202, response_model=RemoteActionOut)
async def device_action(
    device_id: str, body: RemoteActionIn, admin: AdminAuth, state: State
) -> RemoteActionOut:
    """One device: `{"action": "reboot"|"factory_reset"|"log_level"|"renew_certificate",
    "level": ...}`."""
    if body.device_ids is not None or body.target is not None:
        raise Invalid("the path names the device", field="device_ids")
    return await _request(body, admin, state, [device_id], None)


@router.post("/v1/devices/actions", status_code=202, response_model=RemoteActionOut)
async def bulk_action(body: RemoteActionIn, admin: AdminAuth, state: State) -> RemoteActionOut:
    """Many devices: by `device_ids`, or by a `target` (site_id, model, tag)."""
    return await _request(body, admin, state, body.device_ids, body.target)
