"""The wire contracts: what crosses a process boundary, defined once. Imports nothing of the project."""
