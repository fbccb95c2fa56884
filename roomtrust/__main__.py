from roomtrust.cli import app

app()
