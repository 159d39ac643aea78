"""The `bench` command: the CLI mirrors the Python API (``bench datasets ...`` is ``Registry``).

One module per command group; each defines its Typer sub-app (or, for `init` and `evaluate`, a plain
function) and this module puts them together. The entry point is ``bench.cli:app``. Commands import
the rest of bench inside their bodies, on purpose: `bench --help` and every command start without
loading torch, simulators or the web stack they do not use.
"""

from __future__ import annotations

import typer

from bench.cli import accounts, catalogue, datasets, leaderboard, robot, runs, serve

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Versioned robot-learning datasets and evaluation.")
app.command()(datasets.init)
app.add_typer(datasets.datasets_app, name="datasets")
app.add_typer(catalogue.recipes_app, name="recipes")
app.add_typer(catalogue.envs_app, name="envs")
app.add_typer(catalogue.algorithms_app, name="algorithms")
app.command()(runs.evaluate)
app.add_typer(runs.runs_app, name="runs")
app.add_typer(serve.serve_app, name="serve")
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.tokens_app, name="tokens")
app.add_typer(accounts.groups_app, name="groups")
app.add_typer(runs.results_app, name="results")
app.add_typer(robot.robot_logs_app, name="robot-logs")
app.add_typer(robot.robot_evals_app, name="robot-evals")
app.add_typer(leaderboard.leaderboard_app, name="leaderboard")


def main() -> None:  # pragma: no cover - console entry point wrapper
    app()
