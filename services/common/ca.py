"""The per-region certificate authority, made with `cryptography`.

One CA per region signs that region's server certificates and its devices' client certificates. A
certificate from another region's CA is therefore refused at the TLS handshake (DM-07).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.csr import key_pem, make_csr, new_private_key

__all__ = ["RegionCA", "cert_pem", "key_pem", "make_csr", "new_private_key", "read_csr"]

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=397)
COMMON_NAME_MAX = 64


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CsrSubject:
    common_name: str
    serial_number: str


def read_csr(csr_pem: bytes) -> tuple[x509.CertificateSigningRequest, CsrSubject]:
    """Parse and verify a CSR; raises ValueError with the reason when it is unusable."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise ValueError("CSR signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    sns = csr.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not cns or not sns:
        raise ValueError("CSR subject needs commonName (MAC) and serialNumber")
    return csr, CsrSubject(str(cns[0].value), str(sns[0].value))


class RegionCA:
    """A CA for one region, kept as PEM files in a directory."""

    def __init__(self, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.name = name
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str, now: dt.datetime | None = None) -> RegionCA:
        now = now or dt.datetime.now(dt.UTC)
        key = new_private_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "roomtrust"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"roomtrust region CA {name}"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, cert)

    @classmethod
    def from_pem(cls, name: str, cert_pem: bytes, key_pem: bytes) -> RegionCA:
        """A CA from its PEM certificate and key (e.g. Key Vault secrets mounted as files);
        raises ValueError when they are unreadable, not a CA, or do not belong together."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot read the region CA: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the region CA key must be an EC P-256 key")
        if cert.public_key() != key.public_key():
            raise ValueError("the region CA certificate does not belong to its key")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ValueError("the region CA certificate is not a CA certificate")
        return cls(name, key, cert)

    @classmethod
    def load_or_create(cls, directory: Path, name: str) -> RegionCA:
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(name, key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        ca = cls.create(name)
        directory.mkdir(parents=True, exist_ok=True)
        key_path.write_bytes(key_pem(ca.key))
        key_path.chmod(0o600)
        cert_path.write_bytes(cert_pem(ca.cert))
        return ca

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        usage: x509.ObjectIdentifier,
        now: dt.datetime | None,
        serial: int | None = None,
        lifetime: dt.timedelta = LEAF_VALIDITY,
    ) -> x509.CertificateBuilder:
        now = now or dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )

    def issue_server_cert(
        self, hosts: list[str], now: dt.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """A server certificate for the given DNS names and IP addresses; returns (cert, key) PEM."""
        key = new_private_key()
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        # Clients check the SANs; the subject only names the certificate, and a common name may
        # not exceed 64 characters (a Container Apps FQDN often does).
        short = [host for host in hosts if len(host) <= COMMON_NAME_MAX]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, short[0])] if short else [])
        cert = (
            self._leaf(subject, key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, now)
            # RFC 5280 4.2.1.6: with an empty subject the SAN extension is critical
            .add_extension(x509.SubjectAlternativeName(names), critical=not short)
            .sign(self.key, hashes.SHA256())
        )
        return cert_pem(cert), key_pem(key)

    def write_server_files(self, directory: Path, hosts: list[str]) -> tuple[Path, Path]:
        """Issue a server certificate and write it as `server.pem` and `server.key` (mode 0600)
        in `directory`; returns their paths."""
        cert, key = self.issue_server_cert(hosts)
        cert_file, key_file = directory / "server.pem", directory / "server.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        key_file.chmod(0o600)
        return cert_file, key_file

    def sign_client_csr(
        self,
        csr: x509.CertificateSigningRequest,
        now: dt.datetime | None = None,
        lifetime: dt.timedelta = LEAF_VALIDITY,
    ) -> x509.Certificate:
        """A client certificate for a device, valid for `lifetime` from `now`; the subject is
        taken from the verified CSR."""
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("device keys must be EC P-256")
        leaf = self._leaf(
            csr.subject, public_key, ExtendedKeyUsageOID.CLIENT_AUTH, now, lifetime=lifetime
        )
        return leaf.sign(self.key, hashes.SHA256())

    def issue_client_cert(
        self, common_name: str, serial_number: str, now: dt.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """Key and certificate for a client made on the CA side (tests, room systems)."""
        key = new_private_key()
        csr = x509.load_pem_x509_csr(make_csr(key, common_name, serial_number))
        return cert_pem(self.sign_client_csr(csr, now)), key_pem(key)


def cert_serial_hex(cert_der_or_pem: bytes) -> str:
    """The serial number of a certificate as lower-case hex (how the stores key credentials)."""
    if cert_der_or_pem.startswith(b"-----"):
        cert = x509.load_pem_x509_certificate(cert_der_or_pem)
    else:
        cert = x509.load_der_x509_certificate(cert_der_or_pem)
    return format(cert.serial_number, "x")
