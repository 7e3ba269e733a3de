"""What every command against the control plane shares: the consoles it prints on, the
connection options (`--control-url`, `--key`, `--org`), which `connected` gives a command, and
the client a `Connection` opens, which ends the command with a message and exit 2 on a transport
or API error, and `plain`, which gives the renderers (`manage_render`) the answers' JSON."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from karta.client import Karta
    from karta.client.models import KartaModel


def plain(items: Iterable[KartaModel]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items]


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


@dataclass(frozen=True)
class Connection:
    """Where a command reaches the control plane, and as whom: its --control-url, --key and --org
    (None: the client's defaults, from the environment or credentials.json)."""

    url: str | None = None
    key: str | None = None
    org: str | None = None

    @contextmanager
    def client(self) -> Iterator[Karta]:
        """A client whose transport and API errors end the command with a message and exit 2."""
        from karta.client import APIConnectionError, APIStatusError, Karta

        client = Karta(api_key=self.key, control_url=self.url, org=self.org)
        try:
            with client:
                yield client
        except APIConnectionError as exc:
            stderr().print(
                f"[red]cannot reach the control plane at {client.control_url}: "
                f"{escape(str(exc))}[/]"
            )
            raise typer.Exit(2) from exc
        except APIStatusError as exc:
            stderr().print(f"[red]{exc.status_code} {exc.code}: {escape(exc.message)}[/]")
            raise typer.Exit(2) from exc


def _option(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def connected(*, org: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the connection options after its own ones: --control-url, --key and,
    unless `org` is False, --org. The command takes them as one `Connection`, its first
    parameter, and opens the client when it needs it (`connection.client()`)."""
    options = [_option("control_url", ControlUrl), _option("key", Key)]
    if org:
        options.append(_option("org", Org))

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        _connection, *own = inspect.signature(command, eval_str=True).parameters.values()

        @functools.wraps(command)
        def run(
            *,
            control_url: str | None = None,
            key: str | None = None,
            org: str | None = None,
            **given: Any,
        ) -> None:
            command(Connection(control_url, key, org), **given)

        # What typer reads to build the command: the command's own parameters, then the options.
        params = [*own, *options]
        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate
