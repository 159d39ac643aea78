"""`bench users`, `bench tokens`, `bench groups`: accounts on the database the settings name (run them on the
server's machine, like Django's createsuperuser)."""

from __future__ import annotations

import typer
from rich.table import Table

from bench.cli.common import err, open_registry, out, print_json, user_errors


users_app = typer.Typer(no_args_is_help=True, help="Accounts on this server's database.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens (stored hashed; shown once).")
groups_app = typer.Typer(no_args_is_help=True, help="Groups: their members share the group's namespace.")


# -- accounts --------------------------------------------------------------------------------------------
def _accounts():
    from bench.platform.accounts import Accounts

    return Accounts(open_registry().engine)


@users_app.command("create")
def users_create(name: str = typer.Argument(...), admin: bool = typer.Option(False, "--admin")) -> None:
    """Create a user and the namespace named after them."""
    with user_errors():
        user = _accounts().create_user(name, admin)
        out.print(f"created user {user['name']}{' (admin)' if user['is_admin'] else ''} with namespace {user['name']}/",
                  highlight=False)


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    with user_errors():
        users = _accounts().list_users()
        if as_json:
            print_json(users)
            return
        for user in users:
            out.print(f"{user['name']}{'  admin' if user['is_admin'] else ''}", highlight=False)


@tokens_app.command("create")
def tokens_create(user: str = typer.Argument(...), name: str = typer.Option(..., "--name", help="e.g. laptop")) -> None:
    """Create a token for USER and print it: it is stored hashed and cannot be shown again."""
    with user_errors():
        token, info = _accounts().create_token(user, name)
        err.print(f"token {info['id']} ({info['name']}) for {user}; keep it secret, it is not shown again:",
                  markup=False, highlight=False)
        out.print(token, highlight=False)


@tokens_app.command("list")
def tokens_list(user: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    with user_errors():
        tokens = _accounts().list_tokens(user)
        if as_json:
            print_json(tokens)
            return
        table = Table("id", "name", "prefix", "created", "last used", "revoked", box=None)
        for t in tokens:
            table.add_row(str(t["id"]), t["name"], t["prefix"] + "...", (t["created_at"] or "")[:19],
                          (t["last_used_at"] or "-")[:19], "yes" if t["revoked"] else "no")
        out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(...)) -> None:
    with user_errors():
        info = _accounts().revoke_token(token_id)
        out.print(f"revoked token {info['id']} ({info['name']}) of {info['user']}", highlight=False)


@groups_app.command("create")
def groups_create(name: str = typer.Argument(...), member: str = typer.Option(..., "--member", help="first member")) -> None:
    """Create a group (and its namespace) with a first member."""
    with user_errors():
        accounts = _accounts()
        group = accounts.create_group(name, accounts.principal_of(member))
        out.print(f"created group {group['name']} with namespace {group['name']}/; members: {', '.join(group['members'])}",
                  highlight=False)


@groups_app.command("add")
def groups_add(group: str = typer.Argument(...), user: str = typer.Argument(...)) -> None:
    with user_errors():
        from bench.platform.accounts import SYSTEM

        result = _accounts().add_member(group, user, SYSTEM)
        out.print(f"{group}: {', '.join(result['members'])}", highlight=False)
