"""Per-device key material on disk under the fleet's work directory.

A device's key and CSR are made once and kept (making EC keys and loading a certificate chain are
the slow parts of starting thousands of devices); its certificate is written when the DM service
issues it. `ssl.SSLContext.load_cert_chain` reads only files, hence files and not memory.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.csr import key_pem, make_csr, new_private_key
from protocol.tls import client_context


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    directory: Path
    stem: str

    @property
    def key_file(self) -> Path:
        return self.directory / f"{self.stem}.key"

    @property
    def csr_file(self) -> Path:
        return self.directory / f"{self.stem}.csr"

    @property
    def cert_file(self) -> Path:
        return self.directory / f"{self.stem}.pem"

    @property
    def ca_file(self) -> Path:
        return self.directory / f"{self.stem}.ca.pem"

    def csr_pem(self, common_name: str, serial_number: str) -> str:
        """The CSR for this key (made once; the key never leaves the directory)."""
        if self.csr_file.exists() and self.key_file.exists():
            return self.csr_file.read_text()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.key_file.exists():
            loaded = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            key = loaded
        else:
            key = new_private_key()
            self.key_file.write_bytes(key_pem(key))
            self.key_file.chmod(0o600)
        csr = make_csr(key, common_name, serial_number).decode()
        self.csr_file.write_text(csr)
        return csr

    def store(self, certificate_pem: str, ca_pem: str) -> None:
        self.cert_file.write_text(certificate_pem)
        self.ca_file.write_text(ca_pem)

    def forget(self) -> None:
        self.cert_file.unlink(missing_ok=True)

    def ssl_context(self, server_ca_file: Path | str) -> ssl.SSLContext:
        return client_context(server_ca_file, self.cert_file, self.key_file)
