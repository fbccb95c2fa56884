"""The blob store: one interface, the same behaviour from the directory backend, the Azure backend
(against Azurite) and the S3 backend (against moto's server), each emulator started here on a free
port of 127.0.0.1 and stopped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomtrust.emulators import (
    MOTO_CREDENTIALS,
    AzuriteBlob,
    MotoServer,
    azurite,
    azurite_missing,
    moto_missing,
    moto_s3,
)
from services.common.blobstore import (
    AzureBlobStore,
    BlobNotFound,
    BlobStore,
    DirectoryBlobStore,
    S3BlobStore,
    open_blob_store,
)
from services.common.settings import Settings

BACKENDS = ("directory", "azure", "s3")


@pytest.fixture(scope="module")
def azurite_blob() -> Iterator[AzuriteBlob]:
    reason = azurite_missing()
    if reason:
        pytest.skip(reason)
    with azurite() as blob:
        yield blob


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    reason = moto_missing()
    if reason:
        pytest.skip(reason)
    with moto_s3() as server:
        yield server


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in MOTO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def new_bucket(moto: MotoServer) -> str:
    name = f"rt-test-{secrets.token_hex(4)}"
    moto.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "directory":
        return DirectoryBlobStore(tmp_path / "objects")
    if request.param == "s3":
        moto: MotoServer = request.getfixturevalue("moto")
        request.getfixturevalue("aws_credentials")
        return S3BlobStore.connect(new_bucket(moto), "firmware", endpoint_url=moto.endpoint_url)
    blob: AzuriteBlob = request.getfixturevalue("azurite_blob")
    name = f"test-{secrets.token_hex(4)}"
    return AzureBlobStore.connect(name, connection_string=blob.connection_string)


def test_objects_round_trip_and_are_listed_deleted_and_overwritten(store: BlobStore) -> None:
    data = secrets.token_bytes(300_000)
    assert store.put("abc.rtfw", data) == len(data)
    assert store.exists("abc.rtfw") and store.get("abc.rtfw") == data
    store.put("b-2.json", b"{}")
    assert store.keys() == ["abc.rtfw", "b-2.json"]
    store.put("b-2.json", b"[]")
    assert store.get("b-2.json") == b"[]"
    store.delete("abc.rtfw")
    store.delete("abc.rtfw")  # deleting what is gone is no error
    assert not store.exists("abc.rtfw") and store.keys() == ["b-2.json"]


def test_a_missing_object_is_blob_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as missing:
        store.get("nothing.json")
    assert isinstance(missing.value, FileNotFoundError)


@pytest.mark.parametrize("key", ["", "../escape", "a/b", ".hidden", "x" * 129, "sp ace"])
def test_both_backends_refuse_the_same_bad_keys(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="bad object key"):
        store.put(key, b"x")
    with pytest.raises(ValueError, match="bad object key"):
        store.get(key)


def test_the_settings_choose_the_backend(tmp_path: Path, azurite_blob: AzuriteBlob) -> None:
    local = open_blob_store(Settings(), tmp_path / "objects", "firmware")
    assert isinstance(local, DirectoryBlobStore) and local.root == tmp_path / "objects" / "firmware"
    shared = open_blob_store(Settings(blob_directory=tmp_path / "shared"), tmp_path, "firmware")
    assert (
        isinstance(shared, DirectoryBlobStore) and shared.root == tmp_path / "shared" / "firmware"
    )
    prefix = f"t{secrets.token_hex(3)}-"
    cloud = open_blob_store(
        Settings(
            blob_store="azure",
            blob_connection_string=azurite_blob.connection_string,
            blob_container_prefix=prefix,
        ),
        tmp_path,
        "diagnostics",
    )
    assert isinstance(cloud, AzureBlobStore)
    assert cloud.container.container_name == f"{prefix}diagnostics"
    cloud.put("one.json", b"1")
    assert not (tmp_path / "diagnostics").exists()


def test_an_account_url_signs_in_as_the_managed_identity() -> None:
    from azure.identity import ManagedIdentityCredential

    url = "https://rtproddmeudata.blob.core.windows.net/"
    store = AzureBlobStore.connect("firmware", account_url=url, create=False)
    assert isinstance(store.container.credential, ManagedIdentityCredential)
    assert store.container.url == f"{url}firmware"
    with pytest.raises(ValueError, match="account URL or a connection string"):
        AzureBlobStore.connect("firmware")


def test_s3_containers_are_prefixes_of_the_one_bucket(
    moto: MotoServer, aws_credentials: None, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    settings = Settings(blob_store="s3", blob_bucket=bucket, blob_endpoint_url=moto.endpoint_url)
    recordings = open_blob_store(settings, tmp_path, "recordings")
    firmware = open_blob_store(settings, tmp_path, "firmware")
    assert isinstance(recordings, S3BlobStore) and recordings.bucket == bucket
    recordings.put("r1.rec", b"sealed")
    firmware.put("f1.rtfw", b"image")
    assert recordings.keys() == ["r1.rec"] and firmware.keys() == ["f1.rtfw"]
    assert not firmware.exists("r1.rec")
    listed = moto.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == ["firmware/f1.rtfw", "recordings/r1.rec"]
    assert not (tmp_path / "recordings").exists()


def test_an_s3_bucket_that_does_not_exist_is_an_error_not_an_empty_store(
    moto: MotoServer, aws_credentials: None
) -> None:
    from botocore.exceptions import ClientError

    store = S3BlobStore.connect("rt-no-such-bucket", "x", endpoint_url=moto.endpoint_url)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.put("a.json", b"{}")
