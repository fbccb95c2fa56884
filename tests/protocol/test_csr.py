"""protocol.csr: the device's CSR is one the DM service's CA accepts, naming MAC and serial."""

from __future__ import annotations

import pytest

from protocol.csr import key_pem, make_csr, new_private_key
from services.common.ca import read_csr


def test_the_device_csr_reads_as_enrollment_expects() -> None:
    key = new_private_key()
    csr, subject = read_csr(make_csr(key, "02:00:00:00:00:01", "SN123"))
    assert (subject.common_name, subject.serial_number) == ("02:00:00:00:00:01", "SN123")
    assert csr.is_signature_valid
    assert key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_tampered_csr_is_refused() -> None:
    pem = make_csr(new_private_key(), "02:00:00:00:00:01", "SN123")
    body = pem.split(b"\n")
    body[3] = body[3][:10] + (b"A" if body[3][10:11] != b"A" else b"B") + body[3][11:]
    with pytest.raises(ValueError):
        read_csr(b"\n".join(body))
