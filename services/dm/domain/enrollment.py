"""Admin-gated enrollment (DM-02, DM-04).

A region signs a client certificate only for a CSR whose MAC, serial number and model match a device
that an administrator deployed in this region and that is not enrolled yet. Every other request is
refused with 403 and leaves no trace in the store: there is no pending queue to flood.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.ca import LEAF_VALIDITY, RegionCA, cert_pem, read_csr
from services.common.errors import Forbidden, Invalid
from services.dm.domain.fields import MAC
from services.dm.store.models import Device, OperationLogEntry

NOT_DEPLOYED = "no deployed, un-enrolled device matches this MAC, serial number and model"


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    certificate_pem: str
    ca_pem: str
    not_after: dt.datetime


def enroll(
    session: Session,
    ca: RegionCA,
    *,
    model: str,
    csr_pem: str,
    now: dt.datetime,
    lifetime: dt.timedelta = LEAF_VALIDITY,
) -> Enrollment:
    try:
        csr, subject = read_csr(csr_pem.encode())
    except ValueError as exc:
        raise Invalid(str(exc), field="csr_pem") from None
    mac = subject.common_name.lower()
    if not MAC.match(mac):
        raise Invalid("CSR commonName must be the device MAC", field="csr_pem")
    device = session.scalar(select(Device).where(Device.mac == mac).with_for_update())
    if (
        device is None
        or device.serial_number != subject.serial_number
        or device.model != model
        or device.state != "deployed"
        or device.enrolled_at is not None
    ):
        raise Forbidden(NOT_DEPLOYED, field="csr_pem")
    cert = ca.sign_client_csr(csr, now, lifetime=lifetime)
    device.cert_serial = format(cert.serial_number, "x")
    device.cert_not_after = cert.not_valid_after_utc
    device.enrolled_at = now
    device.state = "enrolled"
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=f"device:{device.mac}",
        action="device.enroll",
        enterprise_id=device.enterprise_id,
        target=device.id,
        cert_serial=device.cert_serial,
    )
    return Enrollment(
        device.id, cert_pem(cert).decode(), ca.cert_pem.decode(), cert.not_valid_after_utc
    )
