"""`karta` — serve harness apps, chat with them, scaffold new ones, run the scripted model."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from karta import __version__
from karta.cli import account, embed, flags, organization, releases, sessions

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
    port: Annotated[int, typer.Option(help="Data plane port.")] = 8000,
    control_port: Annotated[
        int | None, typer.Option(help="Control plane port (default: --port + 1).")
    ] = None,
    open_auth: Annotated[bool, typer.Option("--open", help="Disable authentication.")] = False,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
) -> None:
    """Serve a harness app: the data plane and the control plane, in one process."""
    from karta.cli.serve import run_server

    run_server(
        directory,
        host=host,
        port=port,
        control_port=control_port,
        open_auth=open_auth,
        log_level=log_level,
    )


@app.command()
def dataplane(
    directory: Annotated[Path, typer.Argument(help="The harness app folder.")] = Path("."),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
) -> None:
    """Run the data plane alone, against KARTA_CONTROL_PLANE_URL."""
    from karta.cli.serve import run_dataplane

    run_dataplane(directory, host=host, port=port, log_level=log_level)


@app.command()
def controlplane(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
) -> None:
    """Run the control plane alone (identity, keys, budgets, usage, audit)."""
    from karta.cli.serve import run_controlplane

    run_controlplane(host=host, port=port, log_level=log_level)


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt the control plane's secrets (env vars, provider keys) with the newest key of
    KARTA_SECRETS_KEYS, against the database the environment names."""
    import asyncio

    from karta.controlplane.rotation import rotate
    from karta.controlplane.settings import ControlSettings

    done = asyncio.run(rotate(ControlSettings.from_env()))
    console.print(
        f"re-sealed {done.env_vars} env vars and {done.provider_keys} provider keys "
        "with the newest key"
    )


@app.command()
def chat(
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: KARTA_BASE_URL, credentials.json).")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key (default: KARTA_API_KEY, credentials.json).")
    ] = None,
    session: Annotated[str | None, typer.Option(help="Resume this session id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Route the first message to an agent.")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Chat on this project's routes.")
    ] = None,
    thinking: Annotated[bool, typer.Option(help="Show the model's reasoning.")] = False,
) -> None:
    """Chat with a running Karta server; replies stream as they come, Ctrl-C stops one."""
    from karta.cli.chat import chat as run_chat
    from karta.client import Karta

    with Karta(api_key=key, base_url=url) as client:
        code = run_chat(
            client,
            Console(highlight=False),
            project=project,
            session_id=session,
            agent=agent,
            thinking=thinking,
        )
    raise typer.Exit(code)


@app.command()
def run(
    directory: Annotated[Path, typer.Argument(help="The harness app folder.")],
    prompt: Annotated[str, typer.Argument(help="The message to send.")],
    agent: Annotated[str | None, typer.Option(help="The agent to route the turn to.")] = None,
    thinking: Annotated[bool, typer.Option(help="Show the model's reasoning.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve every tool request.")] = False,
) -> None:
    """Run one turn of a harness app without a server."""
    import asyncio

    from karta.cli.run import run_once
    from karta.core.errors import AppConfigError

    try:
        code = asyncio.run(
            run_once(
                directory, prompt, Console(highlight=False), agent=agent, thinking=thinking, yes=yes
            )
        )
    except AppConfigError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        code = 2
    raise typer.Exit(code)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the app.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="The app's name (default: folder).")] = None,
) -> None:
    """Scaffold a Claude Code harness app."""
    from karta.cli.init import scaffold

    try:
        written = scaffold(directory, name)
    except FileExistsError as exc:
        console.print(f"[red]refusing to overwrite existing files:[/] {exc}")
        raise typer.Exit(1) from exc
    for path in written:
        console.print(f"  created {path}")
    console.print(f'Next: karta serve {directory} (or karta run {directory} "Hello")')


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


account.register(app)
organization.register(app)
releases.register(app)
sessions.register(app)
embed.register(app)
flags.install()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("KARTA_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()
