"""`karta chat`: a REPL against a running server that streams replies as they come.

Ctrl-C during a turn interrupts that turn on the server and returns to the prompt; Ctrl-C at
the prompt, Ctrl-D or `exit` leaves.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from karta.cli.render import EventRenderer, ask_decision
from karta.client import APIConnectionError, APIStatusError, Karta, NoTurnRunningError
from karta.client.events import core_event
from karta.client.models import AppInfo
from karta.client.resources.projects import ProjectScope
from karta.core.events import Event

EXIT_WORDS = {"exit", "quit", ":q"}


def unknown_agent(app: AppInfo, agent: str | None) -> str | None:
    """Why `agent` cannot take a message in this app, or None when it can."""
    names = [a.name for a in app.agents]
    if agent is None or agent in names:
        return None
    return f"no agent {agent!r} in {app.name}; its agents are: {', '.join(names)}"


def error_line(exc: APIStatusError) -> str:
    return f"[red]{exc.status_code} {exc.code}: {escape(exc.message)}[/]"


def chat(
    client: Karta,
    console: Console,
    *,
    project: str | None = None,
    session_id: str | None = None,
    agent: str | None = None,
    thinking: bool = False,
    ask: Callable[[str], str] = input,
) -> int:
    family = client.projects(project) if project else client
    try:
        # The app first: a mistyped --agent is refused before a session is made.
        app = family.app.get()
        problem = unknown_agent(app, agent)
        if problem is not None:
            console.print(f"[red]{escape(problem)}[/]")
            return 2
        session = family.sessions.create(session_id=session_id)
    except APIConnectionError as exc:
        console.print(f"[red]cannot reach Karta at {client.base_url}: {escape(str(exc))}[/]")
        return 2
    except APIStatusError as exc:
        console.print(error_line(exc))
        return 2
    sid = session.id
    console.print(
        f"[bold]{escape(app.name)}[/] — session [cyan]{sid}[/] "
        f"(resume with --session {sid}); agent: {session.current_agent}. "
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
            turn(family, sid, text, renderer, ask, agent=agent, thinking=thinking)
        except APIStatusError as exc:
            console.print(error_line(exc))
        except APIConnectionError as exc:
            console.print(f"[red]connection lost: {escape(str(exc))}[/]")
        finally:
            renderer.settle()
        agent = None  # a routed turn is a handoff: later turns stay with that agent


def turn(
    family: Karta | ProjectScope,
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
    sessions = family.sessions
    try:
        with sessions.messages.stream(sid, text, agent=agent, thinking=thinking or None) as stream:
            for event in stream:
                request = renderer.render(core_event(event))
                if request is not None:
                    decision = ask_decision(renderer.console, request, ask)
                    # The continuation arrives on this same stream; the answer is not printed.
                    sessions.inputs.decide(sid, request.data["request_id"], decision)
                    renderer.wait()
    except KeyboardInterrupt:
        interrupt(family, sid, renderer)


def interrupt(family: Karta | ProjectScope, sid: str, renderer: EventRenderer) -> None:
    """Stop the session's turn on the server and show how it ended."""
    renderer.settle()
    try:
        stopped = family.sessions.interrupt(sid)
    except NoTurnRunningError:
        # Ctrl-C came as the turn was ending: nothing is left to stop.
        renderer.console.print("[dim](the turn had already ended)[/]")
        return
    for data in stopped.events:
        renderer.render(Event.from_dict(data))
