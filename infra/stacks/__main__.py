"""Entry point the Pulumi CLI runs for every stack of this project (`pulumi preview -s prod-dm-eu`)."""

from infra.stacks.program import build

build()
