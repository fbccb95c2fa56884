"""Snapshots of the cloud stacks: run a stack's program under Pulumi mocks, keep its resource graph."""

from infra.snapshot.snapshot import all_stack_graphs, snapshot_all, snapshot_stack

__all__ = ["all_stack_graphs", "snapshot_all", "snapshot_stack"]
