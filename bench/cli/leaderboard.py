"""`bench leaderboard list|show`: suites of datasets scored with intervals, locally or from a server."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from bench.cli.common import SERVER_HELP, client_for, open_registry, out, print_json, user_errors


leaderboard_app = typer.Typer(no_args_is_help=True, help="Leaderboards: suites of datasets, scored with intervals.")


def _suites_and_board(name: str | None, server: str | None):
    client = client_for(server)
    if client is not None:
        return client, (client.leaderboards() if name is None else client.leaderboard(name))
    from bench.leaderboards.board import build_leaderboard
    from bench.leaderboards.suites import Suites

    registry = open_registry()
    suites = Suites(registry.engine)
    if name is None:
        return None, [spec.to_json() for spec in suites.list()]
    return None, build_leaderboard(suites.get(name), registry.engine)


@leaderboard_app.command("list")
def leaderboard_list(server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """Leaderboard suites: shipped ones and, on a server, user-defined ones."""
    with user_errors():
        _, specs = _suites_and_board(None, server)
        if as_json:
            print_json(specs)
            return
        table = Table("name", "metric", "phase", "datasets", "title", box=None)
        for spec in specs:
            table.add_row(spec["name"], spec["metric"], spec["phase"], str(len(spec["datasets"])), spec.get("title") or "")
        out.print(table)


TERMINAL_COLUMNS = 120  # a leaderboard fits a 120-column terminal (or a narrower one) whatever it is piped to


def terminal_table(header: list[str], rows: list[list[str]]) -> Table:
    """The leaderboard as a table at most 120 columns wide: a cell's online value under its offline one, dataset
    ids broken at their slashes, and what is still too wide wrapped in its cell, never off the screen."""
    table = Table(box=None, width=min(out.width, TERMINAL_COLUMNS) if len(header) > 2 else None)
    for index, name in enumerate(header):
        table.add_column(name.replace("/", "/\n"), overflow="fold", no_wrap=index == 0)
    for row in rows:  # offline over online in each cell
        table.add_row(*[cell.replace(" -> ", "\n-> ") for cell in row])
    return table


@leaderboard_app.command("show")
def leaderboard_show(
    name: str = typer.Argument(...),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table"),
    as_json: bool = typer.Option(False, "--json", help="every entry, interval, run id and hash"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
) -> None:
    """A leaderboard: per dataset "offline -> online" with 95% intervals, then mean and IQM across the suite."""
    from bench.leaderboards.render import footnote, table_rows, to_markdown

    with user_errors():
        _, board = _suites_and_board(name, server)
        if as_json:
            print_json(board)
            return
        if markdown:
            out.print(to_markdown(board), markup=False, highlight=False, end="")
            return
        spec = board["leaderboard"]
        counted = "trials" if spec.get("kind") == "robot" else "runs"
        out.print(f"{spec['name']}: {spec.get('title') or ''} ({board['runs_considered']} {counted})", highlight=False)
        header, rows = table_rows(board)
        out.print(terminal_table(header, rows) if rows else "no completed runs on these datasets yet")
        out.print(footnote(board), markup=False, highlight=False)
