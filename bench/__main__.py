"""`make bench`: run every benchmark module (or those named on the command line) in turn."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(names: list[str]) -> int:
    modules = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names or m in names]
    if not chosen:
        print(f"no benchmark matches {names}; have {modules}")
        return 2
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"bench.{name}").main()
        print(f"({name} took {time.perf_counter() - started:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
