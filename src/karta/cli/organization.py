"""What an organization holds and spends: its projects, API keys, budget, usage and audit log
(with `audit verify`, which checks the hash chain from the rows the API returns)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.markup import escape

from karta.cli import manage_render as show
from karta.cli.control import Connection, connected, plain, stderr, stdout

projects_app = typer.Typer(help="Projects of the organization.", no_args_is_help=True)


@projects_app.command("list")
@connected()
def projects_list(connection: Connection) -> None:
    """List projects."""
    with connection.client() as client:
        stdout().print(show.projects_table(plain(client.projects.list())))


@projects_app.command("create")
@connected()
def projects_create(
    connection: Connection,
    slug: Annotated[str, typer.Argument(help="Lower-case letters, digits and -.")],
    name: Annotated[str | None, typer.Option(help="A display name (default: the slug).")] = None,
) -> None:
    """Create a project (karta publish also creates the one it publishes to)."""
    with connection.client() as client:
        project = client.projects.create(slug, name=name)
    stdout().print(f"Created project {project.id} [bold]{escape(project.slug)}[/].")


@projects_app.command("show")
@connected()
def projects_show(
    connection: Connection,
    ref: Annotated[str, typer.Argument(metavar="SLUG", help="The project's slug or id.")],
) -> None:
    """Show one project."""
    with connection.client() as client:
        project = client.projects.get(ref).to_dict()
    for line in show.project_summary(project):
        stdout().print(line, markup=False)


keys_app = typer.Typer(help="API keys of the organization.", no_args_is_help=True)


@keys_app.command("list")
@connected()
def keys_list(connection: Connection) -> None:
    """List API keys (never their secrets)."""
    with connection.client() as client:
        answer = plain(client.keys.list())
    stdout().print(show.keys_table(answer))


@keys_app.command("create")
@connected()
def keys_create(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[list[str], typer.Option("--scope", help="read, write or admin (repeatable).")],
    token_limit: Annotated[int | None, typer.Option(help="Monthly token sub-limit.")] = None,
    cost_limit_cents: Annotated[
        int | None, typer.Option(help="Monthly cost sub-limit, in cents.")
    ] = None,
) -> None:
    """Create an API key. The secret goes to stdout, once; it cannot be shown again."""
    with connection.client() as client:
        answer = client.keys.create(
            name,
            scopes=scope,
            monthly_token_limit=token_limit,
            monthly_cost_limit_cents=cost_limit_cents,
        )
    created = answer.api_key
    stderr().print(
        f"Created key {created.id} [bold]{escape(created.name)}[/] "
        f"({', '.join(created.scopes)}). Store the secret now; it is shown only this once:"
    )
    stdout().print(answer.secret, markup=False)


@keys_app.command("revoke")
@connected()
def keys_revoke(
    connection: Connection,
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (karta keys list).")],
) -> None:
    """Revoke an API key; data planes stop accepting it at once."""
    with connection.client() as client:
        revoked = client.keys.revoke(key_id)
    stdout().print(f"Revoked key {revoked.id} ({escape(revoked.name)}, {revoked.prefix}…).")


budget_app = typer.Typer(help="The organization's monthly caps.", no_args_is_help=True)


@budget_app.command("show")
@connected()
def budget_show(connection: Connection) -> None:
    """Show the caps and this month's use against them."""
    with connection.client() as client:
        stdout().print(show.budget_table(client.budget.get().to_dict()))


@budget_app.command("set")
@connected()
def budget_set(
    connection: Connection,
    tokens: Annotated[int | None, typer.Option(help="Monthly token cap.")] = None,
    cost_cents: Annotated[int | None, typer.Option(help="Monthly cost cap, in cents.")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the caps not given (alone: remove both).")
    ] = False,
) -> None:
    """Set the monthly caps; a cap not given keeps its value unless --clear."""
    if tokens is None and cost_cents is None and not clear:
        stderr().print("[red]give --tokens, --cost-cents or --clear[/]")
        raise typer.Exit(2)
    with connection.client() as client:
        current = {} if clear else client.budget.get().to_dict()
        answer = client.budget.set(
            monthly_token_limit=tokens
            if tokens is not None
            else current.get("monthly_token_limit"),
            monthly_cost_limit_cents=(
                cost_cents if cost_cents is not None else current.get("monthly_cost_limit_cents")
            ),
        )
    stdout().print(show.budget_table(answer.to_dict()))


@connected()
def usage(
    connection: Connection,
    period: Annotated[
        str | None, typer.Option(help="The month, YYYY-MM (default: this one).")
    ] = None,
) -> None:
    """Tokens and cost for a month: totals by model, budget state and a per-day chart."""
    with connection.client() as client:
        answer = client.usage.get(period=period).to_dict()
    start = date.fromisoformat(answer["period"]["start"])
    end = date.fromisoformat(answer["period"]["end"])
    label = f"{start:%Y-%m}"
    stdout().print(show.usage_table(answer["totals"], answer["by_model"], f"Usage {label}"))
    stdout().print(show.budget_table(answer["budget"], f"Budget {label}"))
    stdout().print(f"\nTokens per day, {label}")
    for line in show.day_chart(start, end, answer["daily"], datetime.now(UTC).date()):
        stdout().print(line, markup=False)


audit_app = typer.Typer(help="The organization's audit log.")


@audit_app.callback(invoke_without_command=True)
@connected()
def audit(
    connection: Connection,
    ctx: typer.Context,
    after: Annotated[int, typer.Option(help="Only rows after this seq.")] = 0,
) -> None:
    """Show the audit log, every row after --after (paging through the API)."""
    if ctx.invoked_subcommand is not None:
        return
    with connection.client() as client:
        rows = plain(client.audit.list(after=after))
    stdout().print(show.audit_table(rows))


@audit_app.command("verify")
@connected()
def audit_verify(connection: Connection) -> None:
    """Fetch every row and the chain head and check the hash chain; exit 1 if it is broken."""
    from karta.core import auditchain

    with connection.client() as client:
        first = client.audit.list()
        rows = plain(first)
    head = first.body["head"]
    # Rows appended while paging are past the head read first; they are checked next time.
    verdict = auditchain.verify([r for r in rows if int(r["seq"]) <= int(head["seq"])], head)
    if verdict.ok:
        stdout().print(f"chain intact: {verdict.checked} events")
        return
    stdout().print(f"[red]chain broken at seq {verdict.seq}: {verdict.problem}[/]")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the organization's commands to the `karta` app."""
    from karta.cli.provider_keys import model_app, provider_app

    keys_app.add_typer(provider_app, name="provider")
    app.add_typer(projects_app, name="projects")
    app.add_typer(keys_app, name="keys")
    app.add_typer(model_app, name="model")
    app.add_typer(budget_app, name="budget")
    app.command()(usage)
    app.add_typer(audit_app, name="audit")
