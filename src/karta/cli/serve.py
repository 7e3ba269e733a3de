"""`karta serve`: the data plane on embedded defaults, with a start-up banner that says how to
talk to it."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from rich.console import Console

from karta import __version__
from karta.config import Settings
from karta.dataplane.app import Ready, create_app
from karta.errors import AppConfigError
from karta.modelenv import ModelEndpoint, resolve_model_endpoint

console = Console(highlight=False, soft_wrap=True)


def banner(ready: Ready, url: str, model: ModelEndpoint, open_auth: bool) -> None:
    app = ready.app
    agents = ", ".join(
        f"{a['name']} (default)" if a["default"] else a["name"] for a in app.public_agents()
    )
    console.print(
        f"[bold]Karta {__version__}[/] serving [bold]{app.name}[/] "
        f"({app.harness}) at [bold cyan]{url}[/]"
    )
    console.print(f"  agents:  {agents}")
    console.print(f"  model:   {model.description}")
    if model.builtin is not None:
        console.print(
            "  [yellow]No ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL is set: replies come "
            "from the built-in scripted model, not a real LLM.[/]"
        )
    auth = ""
    if open_auth:
        console.print(
            "  [bold red]AUTH DISABLED (--open): anyone who can reach this port can "
            "run the agent. Use only on a trusted machine.[/]"
        )
    elif ready.credentials is not None:
        creds = ready.credentials
        console.print(f"  API key: [bold]{creds.api_key}[/] (saved to {creds.path})")
        auth = f' -H "Authorization: Bearer {creds.api_key}"'
    console.print("\nTalk to it:")
    console.print("  karta chat")
    console.print(
        f"  curl -s -X POST {url}/v1/sessions{auth} -H 'Content-Type: application/json' -d '{{}}'"
    )
    console.print(
        f"  curl -N -X POST {url}/v1/sessions/<id>/messages{auth} "
        '-H \'Content-Type: application/json\' -d \'{"text": "Hello", "stream": true}\''
    )
    console.print(f"  API reference: {url}/docs\n")


def run_server(directory: Path, *, host: str, port: int, open_auth: bool, log_level: str) -> None:
    settings = Settings.from_env(open_auth=open_auth)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    model = resolve_model_endpoint()
    try:
        api = create_app(
            directory,
            settings,
            model.env,
            public_url=url,
            on_ready=lambda ready: banner(ready, url, model, open_auth),
        )
    except AppConfigError as exc:
        model.close()
        console.print(f"[red]error:[/] {exc.message}")
        raise SystemExit(2) from exc
    try:
        uvicorn.run(api, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    finally:
        model.close()
