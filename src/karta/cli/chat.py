"""`karta chat`: a REPL against a running server that streams replies as they come.

Ctrl-C during a turn interrupts that turn on the server and returns to the prompt; Ctrl-C at
the prompt, Ctrl-D or `exit` leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from karta.cli.render import EventRenderer, ask_decision
from karta.client import KartaAPIError, KartaClient
from karta.core.events import Event

EXIT_WORDS = {"exit", "quit", ":q"}


def unknown_agent(app: dict[str, Any], agent: str | None) -> str | None:
    """Why `agent` cannot take a message in this app, or None when it can."""
    names = [str(a["name"]) for a in app.get("agents", [])]
    if agent is None or agent in names:
        return None
    return f"no agent {agent!r} in {app.get('name')}; its agents are: {', '.join(names)}"


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
        # The app first: a mistyped --agent is refused before a session is made.
        app = client.app_info()
        problem = unknown_agent(app, agent)
        if problem is not None:
            console.print(f"[red]{escape(problem)}[/]")
            return 2
        session = client.create_session(session_id=session_id)
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach Karta at {client.base_url}: {exc}[/]")
        return 2
    except KartaAPIError as exc:
        console.print(f"[red]{exc.status} {exc.code}: {escape(exc.message)}[/]")
        return 2
    sid = session["id"]
    console.print(
        f"[bold]{escape(app['name'])}[/] — session [cyan]{sid}[/] "
        f"(resume with --session {sid}); agent: {session['current_agent']}. "
        "Ctrl-C stops a reply; type 'exit' to leave."
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
            turn(client, sid, text, renderer, ask, agent=agent, thinking=thinking)
        except KartaAPIError as exc:
            console.print(f"[red]{exc.status} {exc.code}: {escape(exc.message)}[/]")
        except httpx.TransportError as exc:
            console.print(f"[red]connection lost: {exc}[/]")
        finally:
            renderer.settle()
        agent = None  # a routed turn is a handoff: later turns stay with that agent


def turn(
    client: KartaClient,
    sid: str,
    text: str,
    renderer: EventRenderer,
    ask: Callable[[str], str],
    *,
    agent: str | None,
    thinking: bool,
) -> None:
    """One turn, streamed; Ctrl-C (here or at an approval prompt) interrupts it."""
    renderer.wait()
    try:
        for event in client.stream(sid, text, agent=agent, thinking=thinking):
            request = renderer.render(event)
            if request is not None:
                decision = ask_decision(renderer.console, request, ask)
                # The continuation arrives on this same stream; the answer is not printed.
                client.decide(sid, request.data["request_id"], decision)
                renderer.wait()
    except KeyboardInterrupt:
        interrupt(client, sid, renderer)


def interrupt(client: KartaClient, sid: str, renderer: EventRenderer) -> None:
    """Stop the session's turn on the server and show how it ended."""
    renderer.settle()
    try:
        stopped = client.interrupt(sid)
    except KartaAPIError as exc:
        if exc.code != "no_turn_running":
            raise
        # Ctrl-C came as the turn was ending: nothing is left to stop.
        renderer.console.print("[dim](the turn had already ended)[/]")
        return
    for data in stopped["events"]:
        renderer.render(Event.from_dict(data))
