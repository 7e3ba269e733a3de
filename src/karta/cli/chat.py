"""`karta chat`: a REPL against a running server that streams replies as they come."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from rich.console import Console

from karta.cli.render import EventRenderer, ask_decision
from karta.client import KartaAPIError, KartaClient

EXIT_WORDS = {"exit", "quit", ":q"}


def chat(
    client: KartaClient,
    console: Console,
    *,
    session_id: str | None = None,
    agent: str | None = None,
    thinking: bool = False,
    ask: Callable[[str], str] = input,
) -> int:
    try:
        session = client.create_session(session_id=session_id)
        app = client.app_info()
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach Karta at {client.base_url}: {exc}[/]")
        return 2
    except KartaAPIError as exc:
        console.print(f"[red]{exc.status} {exc.code}: {exc.message}[/]")
        return 2
    sid = session["id"]
    console.print(
        f"[bold]{app['name']}[/] — session [cyan]{sid}[/] "
        f"(resume with --session {sid}); agent: {session['current_agent']}. "
        "Type 'exit' to leave."
    )
    renderer = EventRenderer(console, thinking=thinking)
    while True:
        try:
            text = ask("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not text:
            continue
        if text.lower() in EXIT_WORDS:
            return 0
        try:
            for event in client.stream(sid, text, agent=agent, thinking=thinking):
                request = renderer.render(event)
                if request is not None:
                    decision = ask_decision(console, request, ask)
                    # The continuation arrives on this same stream; the answer is not printed.
                    client.decide(sid, request.data["request_id"], decision)
        except KartaAPIError as exc:
            console.print(f"[red]{exc.status} {exc.code}: {exc.message}[/]")
        except httpx.TransportError as exc:
            console.print(f"[red]connection lost: {exc}[/]")
        agent = None  # a routed turn is a handoff: later turns stay with that agent
