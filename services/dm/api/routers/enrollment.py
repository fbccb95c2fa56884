"""`POST /v1/enroll`: a deployed device sends its CSR and gets its certificate from the region CA."""

from __future__ import annotations

from fastapi import APIRouter

from services.dm.api.deps import State
from services.dm.api.schemas import EnrollIn, EnrollOut
from services.dm.domain import enrollment

router = APIRouter(tags=["devices"])


@router.post("/v1/enroll", status_code=201, response_model=EnrollOut)
async def enroll(body: EnrollIn, state: State) -> EnrollOut:
    now = state.now()
    ca = state.runtime.ca
    lifetime = state.certificate_lifetime
    result = await state.in_tx(
        lambda s: enrollment.enroll(
            s, ca, model=body.model, csr_pem=body.csr_pem, now=now, lifetime=lifetime
        )
    )
    return EnrollOut(
        device_id=result.device_id,
        certificate_pem=result.certificate_pem,
        ca_pem=result.ca_pem,
        not_after=result.not_after.isoformat(),
    )
