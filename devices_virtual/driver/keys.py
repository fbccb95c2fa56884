"""Per-device key material on disk under the fleet's work directory.

A device's key and CSR are made once and kept (making EC keys and loading a certificate chain are
the slow parts of starting thousands of devices); its certificate is written when the DM service
issues it. `ssl.SSLContext.load_cert_chain` reads only files, hence files and not memory.

A renewal (or the first enrollment after a factory reset) makes a new key beside the current one
(`new_csr_pem`); the certificate issued for it moves it into place (`store(..., new_key=True)`).
A factory reset deletes every file of the device (`wipe`).
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

    @property
    def new_key_file(self) -> Path:
        return self.directory / f"{self.stem}.new.key"

    @property
    def new_csr_file(self) -> Path:
        return self.directory / f"{self.stem}.new.csr"

    def new_csr_pem(self, common_name: str, serial_number: str) -> str:
        """A new key, kept beside the current one, and its CSR."""
        self.directory.mkdir(parents=True, exist_ok=True)
        key = new_private_key()
        self.new_key_file.write_bytes(key_pem(key))
        self.new_key_file.chmod(0o600)
        csr = make_csr(key, common_name, serial_number).decode()
        self.new_csr_file.write_text(csr)
        return csr

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

    def store(self, certificate_pem: str, ca_pem: str, new_key: bool = False) -> None:
        if new_key:  # the certificate is for the new key: it becomes the key
            self.new_key_file.replace(self.key_file)
            self.new_csr_file.replace(self.csr_file)
        self.cert_file.write_text(certificate_pem)
        self.ca_file.write_text(ca_pem)

    def forget(self) -> None:
        self.cert_file.unlink(missing_ok=True)

    def wipe(self) -> None:
        """Factory reset: every key, CSR and certificate of the device is deleted."""
        for path in (
            self.key_file,
            self.csr_file,
            self.cert_file,
            self.ca_file,
            self.new_key_file,
            self.new_csr_file,
        ):
            path.unlink(missing_ok=True)

    def ssl_context(self, server_ca_file: Path | str) -> ssl.SSLContext:
        return client_context(server_ca_file, self.cert_file, self.key_file)
