"""`python -m services.common.secret_files DIR`: write secrets given as variables into files.

Fargate hands a container its Secrets Manager secrets only as environment variables; the services
read theirs from files (the region CA's key, the service tokens). The meeting tasks' init container
runs this: each `SECRET_FILE_<NAME>` variable becomes the file `DIR/<name>` (lower case, `_` as
`-`), owner-readable only, then it ends; the service container mounts DIR read-only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PREFIX = "SECRET_FILE_"


def file_name(variable: str) -> str:
    return variable.removeprefix(PREFIX).lower().replace("_", "-")


def write_secret_files(directory: Path, environ: Mapping[str, str]) -> list[str]:
    """Write each SECRET_FILE_ variable of `environ` under `directory`; returns the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for variable, value in sorted(environ.items()):
        if not variable.startswith(PREFIX) or variable == PREFIX:
            continue
        name = file_name(variable)
        path = directory / name
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
        tmp.replace(path)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m services.common.secret_files DIR", file=sys.stderr)
        return 2
    written = write_secret_files(Path(args[0]), os.environ)
    if not written:
        print(f"no {PREFIX}* variable: nothing to write", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(written)} to {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
