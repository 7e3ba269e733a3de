"""`karta` — serve harness apps, chat with them, scaffold new ones, run the scripted model."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from karta import __version__

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Karta: host harness apps (Claude Code, OpenCode) as agent services.",
)
console = Console(stderr=True, highlight=False)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="The harness app folder.")] = Path("."),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    open_auth: Annotated[bool, typer.Option("--open", help="Disable authentication.")] = False,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
) -> None:
    """Serve a harness app over the Karta session API."""
    from karta.cli.serve import run_server

    run_server(directory, host=host, port=port, open_auth=open_auth, log_level=log_level)


@app.command("mock-model")
def mock_model(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Run the scripted Anthropic-compatible model (echoes prompts) for offline testing."""
    from karta.testing.scripted_model import serve_forever

    console.print(
        f"scripted model listening on http://{host}:{port} — "
        f"point ANTHROPIC_BASE_URL there (any ANTHROPIC_API_KEY)"
    )
    serve_forever(port, host)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("KARTA_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()
