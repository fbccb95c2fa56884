"""A region's object store. Locally a directory; in the cloud a storage account or bucket in the
same region (infra/). Keys are flat names; writes are atomic (write, fsync, rename)."""

from __future__ import annotations

import os
import re
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class DirectoryBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or key.startswith("."):
            raise ValueError(f"bad object key {key!r}")
        return self.root / key

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
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))
