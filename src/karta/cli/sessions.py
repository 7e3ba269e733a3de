"""`karta sessions`: the caller's sessions on the data plane, newest first, as a table that fits
80 columns or as JSON, with the list route's filters and paging."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from karta.client.resources.sessions import Sessions

MAX_PAGE = 100  # what the list route serves at most per page
AGENT_WIDTH = 14


class Status(StrEnum):
    active = "active"
    ended = "ended"


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` options as a dict (a later KEY wins); BadParameter for one without `=`."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        parsed[key] = value
    return parsed


def turn_state(session: Mapping[str, Any]) -> str:
    # `paused`: waiting for a decision, the word the API's unary replies use.
    if session.get("pending_input"):
        return "paused"
    return "running" if session.get("turn_running") else "-"


def when(stamp: str) -> str:
    """An ISO timestamp as `YYYY-MM-DD HH:MM` in UTC."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def sessions_table(sessions: Sequence[Mapping[str, Any]]) -> Table:
    """Id, agent, status, turn and last update: cells of 29, 6, 7 and 16 characters with 2
    between columns leave an 80-column terminal 14 for the agent (longer names fold)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True)
    table.add_column("agent", overflow="fold", max_width=AGENT_WIDTH)
    table.add_column("status", no_wrap=True)
    table.add_column("turn", no_wrap=True)
    table.add_column("updated (UTC)", no_wrap=True)
    for s in sessions:
        table.add_row(
            s["id"],
            escape(str(s.get("current_agent") or "-")),
            s["status"],
            turn_state(s),
            when(s["updated_at"]),
        )
    return table


def fetch(sessions: Sessions, every: bool, filters: dict[str, Any]) -> dict[str, Any]:
    """One page, or with `every` all of them, as one list object."""
    page = sessions.list(**filters)
    if every:
        data = [session.to_dict() for session in page]
        return {"object": "list", "data": data, "has_more": False, "next_cursor": None}
    return {"object": "list", "data": [s.to_dict() for s in page.data], **page.body}


def sessions(
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "-p",
            metavar="REF",
            help="A project's sessions (its route family).",
            show_default=False,
        ),
    ] = None,
    status: Annotated[Status | None, typer.Option(help="active or ended.")] = None,
    active: Annotated[
        bool | None,
        typer.Option(
            "--active/--idle",
            help="Only sessions with a turn running or awaiting input (or with none).",
            show_default=False,
        ),
    ] = None,
    agent: Annotated[
        str | None, typer.Option(help="Only sessions whose current agent is this one.")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="Only sessions with this metadata (repeatable).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Sessions per page.")] = 20,
    after: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Start after this session (a page's next cursor)."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Follow the pages to the last one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: KARTA_BASE_URL, credentials.json).")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key (default: KARTA_API_KEY, credentials.json).")
    ] = None,
) -> None:
    """List your sessions, newest first."""
    from karta.client import APIConnectionError, APIStatusError, Karta

    filters: dict[str, Any] = {
        "limit": limit,
        "after": after,
        "status": status.value if status else None,
        "active": active,
        "agent": agent,
        "metadata": parse_meta(meta or []),
    }
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with Karta(api_key=key, base_url=url) as client:
        family = client.projects(project) if project else client
        try:
            page = fetch(family.sessions, every, filters)
        except APIConnectionError as exc:
            err.print(f"[red]cannot reach Karta at {client.base_url}: {escape(str(exc))}[/]")
            raise typer.Exit(2) from exc
        except APIStatusError as exc:
            err.print(f"[red]{exc.status_code} {exc.code}: {escape(exc.message)}[/]")
            raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    if not page["data"]:
        err.print("no sessions")
        return
    Console(highlight=False).print(sessions_table(page["data"]))
    if page.get("next_cursor"):
        err.print(f"more: --after {page['next_cursor']} (or --all)")


def register(app: typer.Typer) -> None:
    app.command()(sessions)
