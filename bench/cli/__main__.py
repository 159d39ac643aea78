"""`python -m bench.cli`: the same command as `bench`."""

from bench.cli import app

app()
