"""The region CA: server and client certificates, CSR checks, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.ca import (
    RegionCA,
    cert_serial_hex,
    key_pem,
    make_csr,
    new_private_key,
    read_csr,
)


def test_ca_is_persisted_and_reloaded(tmp_path: Path) -> None:
    first = RegionCA.load_or_create(tmp_path, "dm-us")
    second = RegionCA.load_or_create(tmp_path, "dm-us")
    assert first.cert_pem == second.cert_pem
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0


def test_client_certificate_carries_the_csr_subject_and_client_usage() -> None:
    ca = RegionCA.create("dm-eu")
    csr, subject = read_csr(make_csr(new_private_key(), "02:aa:bb:cc:dd:ee", "SN1"))
    cert = ca.sign_client_csr(csr)
    assert subject.common_name == "02:aa:bb:cc:dd:ee"
    assert cert.subject == csr.subject
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    cert.verify_directly_issued_by(ca.cert)
    with pytest.raises(ValueError):
        cert.verify_directly_issued_by(RegionCA.create("dm-us").cert)


def test_server_certificate_names_loopback() -> None:
    ca = RegionCA.create("dm-au")
    pem, _key = ca.issue_server_cert(["127.0.0.1", "localhost"])
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert cert_serial_hex(pem) == format(cert.serial_number, "x")


def test_garbage_csr_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="PEM"):
        read_csr(b"not a csr")


def test_a_host_name_longer_than_a_common_name_goes_in_the_sans_only() -> None:
    long = "rt-staging-dm-us-app." + "x" * 40 + ".eastus.azurecontainerapps.io"
    ca = RegionCA.create("dm-us")
    cert = x509.load_pem_x509_certificate(ca.issue_server_cert([long, "us.dm.example"])[0])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [long, "us.dm.example"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "us.dm.example"
    alone = x509.load_pem_x509_certificate(ca.issue_server_cert([long])[0])
    assert len(alone.subject) == 0
    assert alone.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_a_ca_from_mounted_files_must_be_a_ca_with_its_own_key() -> None:
    ca, other = RegionCA.create("dm-eu"), RegionCA.create("dm-us")
    loaded = RegionCA.from_pem("dm-eu", ca.cert_pem, key_pem(ca.key))
    assert loaded.cert == ca.cert
    with pytest.raises(ValueError, match="does not belong"):
        RegionCA.from_pem("dm-eu", ca.cert_pem, key_pem(other.key))
    leaf, leaf_key = ca.issue_server_cert(["localhost"])
    with pytest.raises(ValueError, match="not a CA"):
        RegionCA.from_pem("dm-eu", leaf, leaf_key)
    with pytest.raises(ValueError, match="cannot read"):
        RegionCA.from_pem("dm-eu", b"garbage", key_pem(ca.key))
