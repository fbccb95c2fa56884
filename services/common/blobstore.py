"""A region's object store: one interface, three backends.

- `DirectoryBlobStore`, the embedded default: one directory per container under the region's
  state directory; writes are atomic (write, fsync, rename).
- `AzureBlobStore`: a container of the region's storage account (`infra/dm` provisions it, in the
  region, with shared keys off), reached with the app's managed identity, or with a connection
  string (Azurite, the emulator the tests start).
- `S3BlobStore`: a key prefix (`<container>/`) of the region's bucket (`infra/meeting` provisions
  it, in the region, KMS-encrypted, TLS only), reached with the task role's credentials (boto3's
  default chain), or at another endpoint (moto's server, which the tests start).

Keys are flat names (`[A-Za-z0-9._-]`, at most 128); both backends refuse any other, so a key
means the same object whichever backend holds it. A missing object raises `BlobNotFound`, a
`FileNotFoundError`. `open_blob_store()` picks the backend from the settings.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from services.common.settings import Settings

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
CONTAINERS = ("firmware", "diagnostics", "recordings")


class BlobNotFound(FileNotFoundError):
    """No object under that key."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or key.startswith("."):
        raise ValueError(f"bad object key {key!r}")
    return key


class BlobStore(Protocol):
    """What the services need of an object store."""

    def put(self, key: str, data: bytes) -> int: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self) -> list[str]: ...


class DirectoryBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> int:
        path = self._path(key)
        tmp = path.with_name(f".{key}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        return len(data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no object {key!r}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))


class AzureBlobStore:
    """One blob container; every call is a blocking request (callers run it off the event loop)."""

    def __init__(self, container: ContainerClient, create: bool = True) -> None:
        from azure.core.exceptions import ResourceExistsError

        self.container = container
        if create:
            with contextlib.suppress(ResourceExistsError):
                container.create_container()

    @classmethod
    def connect(
        cls,
        container: str,
        *,
        account_url: str | None = None,
        connection_string: str | None = None,
        credential: Any = None,
        create: bool = True,
    ) -> AzureBlobStore:
        """A container by connection string, or by account URL signed in as the managed identity
        (`credential` overrides it)."""
        from azure.storage.blob import BlobServiceClient

        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            if credential is None:
                from azure.identity import ManagedIdentityCredential

                credential = ManagedIdentityCredential()
            service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("an Azure blob store needs an account URL or a connection string")
        return cls(service.get_container_client(container), create=create)

    def put(self, key: str, data: bytes) -> int:
        self.container.upload_blob(check_key(key), data, overwrite=True)
        return len(data)

    def get(self, key: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return bytes(self.container.download_blob(check_key(key)).readall())
        except ResourceNotFoundError:
            raise BlobNotFound(f"no object {key!r}") from None

    def delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(check_key(key))

    def exists(self, key: str) -> bool:
        return bool(self.container.get_blob_client(check_key(key)).exists())

    def keys(self) -> list[str]:
        return sorted(blob.name for blob in self.container.list_blobs())


class S3BlobStore:
    """The objects under `<container>/` of one S3 bucket; every call is a blocking request."""

    def __init__(self, client: Any, bucket: str, container: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{check_key(container)}/"

    @classmethod
    def connect(
        cls, bucket: str, container: str, *, endpoint_url: str | None = None
    ) -> S3BlobStore:
        """The bucket with boto3's default credentials and region (the ECS task role, or
        AWS_* variables), at `endpoint_url` when given."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return cls(boto3.client("s3", endpoint_url=endpoint_url, config=config), bucket, container)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> int:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return len(data)

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFound(f"no object {key!r}") from None
        return bytes(answer["Body"].read())

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        return sorted(
            item["Key"][len(self.prefix) :] for page in pages for item in page.get("Contents", [])
        )


def open_blob_store(settings: Settings, directory: Path, container: str) -> BlobStore:
    """The store of one container (`firmware`, `diagnostics`, `recordings`) as the settings say: a
    directory under `blob_directory` (default `directory`), the Azure container
    `<blob_container_prefix><container>`, or the prefix `<container>/` of the S3 bucket."""
    if settings.blob_store == "s3":
        assert settings.blob_bucket is not None  # the settings refuse s3 without a bucket
        return S3BlobStore.connect(
            settings.blob_bucket, container, endpoint_url=settings.blob_endpoint_url
        )
    if settings.blob_store == "azure":
        return AzureBlobStore.connect(
            f"{settings.blob_container_prefix}{container}",
            account_url=settings.blob_account_url,
            connection_string=settings.blob_connection_string,
        )
    return DirectoryBlobStore((settings.blob_directory or directory) / container)
