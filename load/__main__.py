"""`python -m load ...` is `roomtrust load ...` (the same Typer app, without the other areas)."""

from load.cli import app

app(prog_name="roomtrust load")
