"""User-started recordings (MT-13, MT-16, MT-17).

A recording starts only where the administrator enabled recording and the role may record. Its file
is written encrypted (AES-256-GCM, one data key per recording, wrapped with the region's master
key) under the hosting region's storage directory while it runs; when it stops, the region's blob
store (`recordings`: the region's S3 bucket in the cloud) takes the finished file, when the region
has one other than its own directory. Either way it stays in the hosting region. Viewing and sharing stay inside
the organisation; with `recording_view_restricted` off, other-enterprise participants of the
conference may view too.

File layout: MAGIC, then chunks of `length (4 bytes) | nonce (12) | ciphertext+tag`; each chunk's
associated data is the recording ID and the chunk number, so chunks cannot be reordered or spliced.
A chunk's plaintext is the header, the call's audio from the region's recorder
(services/meeting/media/recorder.py), or the trailer (`recording_media`); a download decrypts them
into one WAVE file. Inside the enterprise, an account outside the sharing rules is refused (403);
another organisation is not told the recording exists (404).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.signaling import RecordAction
from services.common.blobstore import BlobNotFound, BlobStore
from services.common.errors import Forbidden, Invalid, NotFound
from services.meeting.domain import permissions as perms
from services.meeting.domain import recording_media, segments
from services.meeting.domain.accounts import Identity, log
from services.meeting.domain.ids import is_plain_id, new_id
from services.meeting.store.models import Account, Conference, Enterprise, Recording

MAGIC = b"RTREC1\n"
_LEN = struct.Struct(">I")


class RecordingStorage:
    """The region's encrypted recording files: `<region dir>/recordings/<id>.rec` while they run;
    `finished`, when given, takes each file once its recording stops (the root keeps it otherwise).
    """

    def __init__(
        self, root: Path, master_key_file: Path, finished: BlobStore | None = None
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._master = AESGCM(self._load_master(master_key_file))
        self._counters: dict[str, int] = {}
        self.finished = finished

    @staticmethod
    def _load_master(path: Path) -> bytes:
        if path.exists():
            key = path.read_bytes()
            if len(key) != 32:  # a secret given as text holds the key in base64
                try:
                    key = base64.b64decode(key.strip(), validate=True)
                except ValueError:
                    key = b""
            if len(key) != 32:
                raise ValueError(f"{path}: a recording master key is 32 bytes (or their base64)")
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=256)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(key)
        tmp.chmod(0o600)
        tmp.replace(path)
        return key

    def path(self, file_name: str) -> Path:
        return self.root / file_name

    def new_key(self, recording_id: str) -> tuple[bytes, str]:
        key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(12)
        wrapped = nonce + self._master.encrypt(nonce, key, recording_id.encode())
        return key, base64.b64encode(wrapped).decode()

    def unwrap(self, recording_id: str, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        return self._master.decrypt(raw[:12], raw[12:], recording_id.encode())

    def create(self, recording_id: str, file_name: str) -> None:
        with open(self.path(file_name), "xb") as handle:
            handle.write(MAGIC)
        self._counters[recording_id] = 0

    def append(self, recording_id: str, file_name: str, wrapped: str, data: bytes) -> int:
        """Encrypt and append one chunk; returns the file size."""
        index = self._counters.get(recording_id)
        if index is None:
            index = sum(1 for _ in self._chunks(file_name))
        nonce = secrets.token_bytes(12)
        aad = f"{recording_id}:{index}".encode()
        sealed = AESGCM(self.unwrap(recording_id, wrapped)).encrypt(nonce, data, aad)
        with open(self.path(file_name), "ab") as handle:
            handle.write(_LEN.pack(len(sealed)) + nonce + sealed)
            handle.flush()
            os.fsync(handle.fileno())
        self._counters[recording_id] = index + 1
        return self.path(file_name).stat().st_size

    def finish(self, recording_id: str, file_name: str) -> None:
        """The stopped recording's file goes to the finished store (nothing to do without one)."""
        self._counters.pop(recording_id, None)
        if self.finished is None:
            return
        path = self.path(file_name)
        self.finished.put(file_name, path.read_bytes())
        path.unlink()

    def _data(self, file_name: str) -> bytes:
        path = self.path(file_name)
        if self.finished is not None and not path.exists():
            try:
                return self.finished.get(file_name)
            except BlobNotFound:
                raise NotFound("the recording's file is gone", field="recording_id") from None
        return path.read_bytes()

    def _chunks(self, file_name: str) -> list[tuple[bytes, bytes]]:
        data = self._data(file_name)
        if not data.startswith(MAGIC):
            raise ValueError("not a recording file")
        chunks, pos = [], len(MAGIC)
        while pos < len(data):
            (length,) = _LEN.unpack_from(data, pos)
            nonce = data[pos + 4 : pos + 16]
            chunks.append((nonce, data[pos + 16 : pos + 16 + length]))
            pos += 16 + length
        return chunks

    def read(self, recording_id: str, file_name: str, wrapped: str) -> bytes:
        aead = AESGCM(self.unwrap(recording_id, wrapped))
        return b"".join(
            aead.decrypt(nonce, sealed, f"{recording_id}:{index}".encode())
            for index, (nonce, sealed) in enumerate(self._chunks(file_name))
        )

    def delete(self, recording_id: str, file_name: str) -> None:
        self._counters.pop(recording_id, None)
        self.path(file_name).unlink(missing_ok=True)
        if self.finished is not None:
            self.finished.delete(file_name)


def region_storage(
    region_directory: Path, finished: BlobStore | None = None, master_key_file: Path | None = None
) -> RecordingStorage:
    """The recording storage of the region whose state directory is given; `master_key_file` is a
    mounted secret in the cloud (every replica reads what another wrote), else one is kept here."""
    return RecordingStorage(
        region_directory / "recordings",
        master_key_file or region_directory / "keys" / "recording-master.key",
        finished,
    )


def start(
    session: Session,
    storage: RecordingStorage,
    actor: Identity,
    conference: Conference,
    participant_accounts: Sequence[str],
    now: dt.datetime,
) -> Recording:
    enterprise = session.get(Enterprise, conference.enterprise_id)
    if enterprise is None or not enterprise.recording_enabled:
        raise Forbidden("the administrator has not enabled recording", field="action")
    actor.require(perms.RECORD)
    segments.check_recording_quota(session, actor.account_id, now)
    return begin(session, storage, conference, actor.account_id, participant_accounts, now)


def begin(
    session: Session,
    storage: RecordingStorage,
    conference: Conference,
    recorder_id: str,
    participant_accounts: Sequence[str],
    now: dt.datetime,
    recording_id: str | None = None,
) -> Recording:
    """Create the recording's row and encrypted file. The rules (enabled, permission) were
    checked by the caller: `start` above, or the conference session."""
    recording_id = recording_id or new_id()
    key_wrapped = storage.new_key(recording_id)[1]
    recording = Recording(
        id=recording_id,
        enterprise_id=conference.enterprise_id,
        conference_id=conference.id,
        region=conference.region,
        recorder_id=recorder_id,
        participant_ids=sorted(set(participant_accounts)),
        shared_with=[],
        started_at=now,
        file_name=f"{recording_id}.rec",
        wrapped_key=key_wrapped,
        size=0,
    )
    storage.create(recording_id, recording.file_name)
    header = {
        "conference_id": conference.id,
        "started_at": now.isoformat(),
        "media": recording_media.MEDIA_FORMAT,
    }
    recording.size = storage.append(
        recording_id, recording.file_name, key_wrapped, recording_media.meta_chunk(header)
    )
    session.add(recording)
    session.flush()
    return recording


def add_participant(session: Session, recording_id: str, account_id: str) -> None:
    recording = session.get(Recording, recording_id)
    if recording is not None and account_id not in recording.participant_ids:
        recording.participant_ids = sorted({*recording.participant_ids, account_id})


def append_media(
    session: Session, storage: RecordingStorage, recording_id: str, data: bytes
) -> None:
    """The recorder's PCM (16-bit mono, 8 kHz) for a running recording: encrypted onto the file."""
    recording = session.get(Recording, recording_id)
    if recording is None or recording.stopped_at is not None:
        raise NotFound("no running recording with this id", field="recording_id")
    chunk = recording_media.pcm_chunk(data)
    recording.size = storage.append(recording.id, recording.file_name, recording.wrapped_key, chunk)


def stop(session: Session, storage: RecordingStorage, recording_id: str, now: dt.datetime) -> None:
    recording = session.get(Recording, recording_id)
    if recording is None or recording.stopped_at is not None:
        return
    trailer = {"stopped_at": now.isoformat()}
    recording.size = storage.append(
        recording.id,
        recording.file_name,
        recording.wrapped_key,
        recording_media.meta_chunk(trailer),
    )
    recording.stopped_at = now
    storage.finish(recording.id, recording.file_name)


def _visible(session: Session, actor: Identity, recording: Recording) -> bool:
    if actor.enterprise_id == recording.enterprise_id:
        return (
            actor.can(perms.FILES)
            or recording.recorder_id == actor.account_id
            or actor.account_id in recording.shared_with
            or actor.account_id in recording.participant_ids
        )
    enterprise = session.get(Enterprise, recording.enterprise_id)
    restricted = enterprise is None or enterprise.recording_view_restricted
    return not restricted and actor.account_id in recording.participant_ids


def get(session: Session, actor: Identity, recording_id: str) -> Recording:
    recording = session.get(Recording, recording_id) if is_plain_id(recording_id) else None
    if recording is None:
        raise NotFound("no such recording visible to you", field="recording_id")
    if not _visible(session, actor, recording):
        if actor.enterprise_id != recording.enterprise_id:
            raise NotFound("no such recording visible to you", field="recording_id")
        raise Forbidden(
            "this recording is not shared with you: ask its recorder or a files manager",
            field="recording_id",
        )
    return recording


def list_visible(session: Session, actor: Identity) -> list[Recording]:
    query = select(Recording).order_by(Recording.started_at.desc())
    return [r for r in session.scalars(query) if _visible(session, actor, r)]


def share(
    session: Session, actor: Identity, recording_id: str, account_id: str, now: dt.datetime
) -> Recording:
    recording = get(session, actor, recording_id)
    if recording.recorder_id != actor.account_id and not actor.can(perms.FILES):
        raise Forbidden("only the recorder or a files manager may share a recording", None)
    target = session.get(Account, account_id) if is_plain_id(account_id) else None
    if target is None or target.enterprise_id != recording.enterprise_id:
        raise Forbidden("recordings are shared only within the organisation", field="account_id")
    if account_id not in recording.shared_with:
        recording.shared_with = [*recording.shared_with, account_id]
    log(
        session,
        actor.username,
        "recording.share",
        at=now,
        enterprise_id=recording.enterprise_id,
        target=recording.id,
        shared_with=account_id,
    )
    return recording


def delete(
    session: Session,
    storage: RecordingStorage,
    actor: Identity,
    recording_id: str,
    now: dt.datetime,
) -> None:
    recording = get(session, actor, recording_id)
    if recording.recorder_id != actor.account_id and not (
        actor.can(perms.FILES) and actor.enterprise_id == recording.enterprise_id
    ):
        raise Forbidden("only the recorder or a files manager may delete a recording", None)
    storage.delete(recording.id, recording.file_name)
    session.delete(recording)
    log(
        session,
        actor.username,
        "recording.delete",
        at=now,
        enterprise_id=recording.enterprise_id,
        target=recording.id,
    )


def content(
    session: Session, storage: RecordingStorage, actor: Identity, recording_id: str
) -> bytes:
    """The recording as a WAVE file (the call's audio, the header and trailer as its comment)."""
    recording = get(session, actor, recording_id)
    return recording_media.playable(
        storage.read(recording.id, recording.file_name, recording.wrapped_key)
    )


def view(recording: Recording) -> dict[str, Any]:
    return {
        "recording_id": recording.id,
        "conference_id": recording.conference_id,
        "region": recording.region,
        "recorder_id": recording.recorder_id,
        "started_at": recording.started_at.isoformat(),
        "stopped_at": recording.stopped_at.isoformat() if recording.stopped_at else None,
        "size": recording.size,
        "shared_with": list(recording.shared_with),
    }


def validate_action(action: object) -> str:
    if not isinstance(action, str) or action not in RecordAction._value2member_map_:
        raise Invalid("action must be start or stop", field="action")
    return RecordAction(action).value
