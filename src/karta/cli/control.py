"""What every command against the control plane shares: the consoles it prints on, the
connection options (`--control-url`, `--key`, `--org`) and a client that ends the command with a
message and exit 2 on a transport or API error.

The commands themselves: `karta.cli.account` (signup, login, orgs, members and invitations),
`karta.cli.organization` (projects, keys, budget, usage and audit) and `karta.cli.releases`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from karta.client.control import ControlClient


def stdout() -> Console:
    """A console per call, so the terminal's width (COLUMNS) is read when the command runs."""
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


ControlUrl = Annotated[
    str | None,
    typer.Option(
        "--control-url",
        help="Control plane URL (default: KARTA_CONTROL_URL, credentials.json, :8001).",
        show_default=False,
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="API key or login token (default: KARTA_API_KEY, then credentials.json).",
        show_default=False,
    ),
]
Org = Annotated[
    str | None,
    typer.Option("--org", help="Organization slug, for users in several.", show_default=False),
]


@contextmanager
def control(url: str | None, key: str | None, org: str | None) -> Iterator[ControlClient]:
    """A client whose transport and API errors end the command with a message and exit 2."""
    import httpx

    from karta.client import KartaAPIError
    from karta.client.control import ControlClient

    client = ControlClient(url, key, org)
    try:
        with client:
            yield client
    except httpx.TransportError as exc:
        stderr().print(f"[red]cannot reach the control plane at {client.base_url}: {exc}[/]")
        raise typer.Exit(2) from exc
    except KartaAPIError as exc:
        stderr().print(f"[red]{exc.status} {exc.code}: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
