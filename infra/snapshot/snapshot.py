"""Snapshot a stack into a JSON resource graph by running its program under recording mocks.

The graph holds every resource's URN, type, name, inputs, parent and provider, and each provider's
region (`region` on a resource is the region of the provider that creates it). Each program runs in
a thread of its own, so Pulumi's per-context settings start fresh; `snapshot_all` spreads the stacks
over this process and worker processes, each importing one cloud SDK once.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from infra.stacks import catalogue

PROVIDER_PREFIX = "pulumi:providers:"
GRAPH_VERSION = 1


def provider_region(resource_type: str, inputs: dict[str, Any]) -> str | None:
    """The region an explicit provider pins its resources to (AWS `region`, Azure `location`)."""
    if resource_type == "pulumi:providers:aws":
        return inputs.get("region")
    if resource_type == "pulumi:providers:azure-native":
        return inputs.get("location")
    return None


def _run_program(stack: str, config: dict[str, str]) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
    import asyncio

    import pulumi
    from pulumi.runtime.settings import SETTINGS
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from infra.snapshot.mocks import RecordingMocks, RecordingMonitor
    from infra.stacks.program import build

    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project=catalogue.PROJECT, stack=stack, preview=False, monitor=monitor
    )
    pulumi.runtime.set_all_config(config)
    SETTINGS.rpc_manager.clear()
    try:
        _sync_await(run_pulumi_func(build))
    finally:
        asyncio.get_event_loop().close()
    return monitor.registrations, mocks.inputs


def run_in_fresh_context(stack: str, config: dict[str, str]) -> list[dict[str, Any]]:
    """Run one stack's program in a new thread: new Pulumi context variables, new event loop."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            registrations, inputs = _run_program(stack, config)
            outcome["resources"] = [
                {**reg, "inputs": inputs.get((reg["type"], reg["name"]), {})}
                for reg in registrations
            ]
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"snapshot-{stack}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    resources: list[dict[str, Any]] = outcome["resources"]
    return resources


def build_graph(
    stack: str, resources: list[dict[str, Any]], config: dict[str, Any]
) -> dict[str, Any]:
    """The graph document: resources sorted by URN, stack parent dropped, provider region filled."""
    regions = {
        r["urn"]: provider_region(r["type"], r["inputs"])
        for r in resources
        if r["type"].startswith(PROVIDER_PREFIX)
    }
    nodes = []
    for r in sorted(resources, key=lambda r: r["urn"]):
        parent = r.get("parent")
        if parent and "::pulumi:pulumi:Stack::" in parent:
            parent = None
        nodes.append({**r, "parent": parent, "region": regions.get(r.get("provider") or "")})
    return {
        "version": GRAPH_VERSION,
        "project": catalogue.PROJECT,
        "stack": stack,
        "config": config,
        "resources": nodes,
    }


def snapshot_stack(stack: str) -> dict[str, Any]:
    """The resource graph of one stack of `infra/stacks/`."""
    config = catalogue.engine_config(stack)
    resources = run_in_fresh_context(stack, config)
    return build_graph(stack, resources, catalogue.project_config(stack))


def _snapshot_many(names: list[str]) -> list[dict[str, Any]]:
    return [snapshot_stack(name) for name in names]


def snapshot_all(
    stacks: list[str] | None = None, workers: int | None = None
) -> dict[str, dict[str, Any]]:
    """Graphs of many stacks (all by default), spread over this process and worker processes.

    Stacks are batched by service, so a worker imports one cloud SDK (importing an SDK costs far
    more than running a program under mocks), and the batches run side by side.
    """
    names = stacks if stacks is not None else catalogue.stack_names()
    workers = workers or min(len(names), os.cpu_count() or 1) or 1
    if workers == 1 or len(names) <= 1:
        return {name: snapshot_stack(name) for name in names}
    batches: dict[str, list[str]] = {}
    for name in names:
        service = str(catalogue.project_config(name).get("service", ""))
        batches.setdefault(service, []).append(name)
    groups = list(batches.values())
    while len(groups) < workers and max(len(g) for g in groups) > 1:
        largest = max(groups, key=len)
        groups.remove(largest)
        groups += [largest[: len(largest) // 2], largest[len(largest) // 2 :]]
    # The caller snapshots the largest batch itself while the workers do the others, so its own
    # SDK import is reused by any later snapshot in this process.
    groups.sort(key=len, reverse=True)
    mine, others = groups[0], groups[1:]
    with ProcessPoolExecutor(max_workers=max(1, min(workers - 1, len(others)))) as pool:
        pending = [pool.submit(_snapshot_many, group) for group in others]
        graphs = _snapshot_many(mine)
        for future in pending:
            graphs += future.result()
    by_name = {g["stack"]: g for g in graphs}
    return {name: by_name[name] for name in names}


@functools.cache
def _all_graphs_once() -> dict[str, dict[str, Any]]:
    return snapshot_all()


def all_stack_graphs() -> dict[str, dict[str, Any]]:
    """Every stack's graph, snapshotted once per process; callers get their own copy."""
    return copy.deepcopy(_all_graphs_once())
