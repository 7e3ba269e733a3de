"""`karta sessions`' pieces (metadata options, the table) and the SDK's session routes, their
parameters and the project route family, against a recording transport; and the chat spinner,
which stays up until the reply's first token."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
import typer
from rich.console import Console

from karta.cli.chat import unknown_agent
from karta.cli.render import EventRenderer
from karta.cli.sessions import parse_meta, sessions_table, turn_state
from karta.client import Karta
from karta.client.models import AppInfo
from karta.core import events as ev
from karta.core.events import Event


def session(**fields: Any) -> dict[str, Any]:
    return {
        "id": "sess_" + "x" * 24,
        "object": "session",
        "app": "support-bot",
        "created_at": "2026-11-24T22:49:25.5+01:00",
        "current_agent": "triage",
        "status": "active",
        "turn_running": False,
        "pending_input": None,
        "updated_at": "2026-11-24T22:49:25.5+01:00",
        **fields,
    }


def test_meta_options_become_a_dict_and_a_bad_one_is_refused():
    assert parse_meta(["a=1", "b=x=y", "a=2", "empty="]) == {"a": "2", "b": "x=y", "empty": ""}
    for bad in ("novalue", "=v"):
        with pytest.raises(typer.BadParameter):
            parse_meta([bad])


def test_turn_state_says_running_paused_or_nothing():
    assert turn_state(session()) == "-"
    assert turn_state(session(turn_running=True)) == "running"
    assert turn_state(session(turn_running=True, pending_input={"request_id": "req_1"})) == "paused"


def test_the_table_fits_80_columns_and_folds_a_long_agent_name():
    console = Console(file=io.StringIO(), record=True, width=80, color_system=None)
    rows = [session(), session(current_agent="a-very-long-agent-name-indeed", turn_running=True)]
    console.print(sessions_table(rows))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "2026-11-24 21:49" in lines[2]  # in UTC
    assert "a-very-long-ag  active  running" in lines[3]
    assert [line.strip() for line in lines[4:]] == ["ent-name-indee", "d"]


ANSWERS = {
    "app": {"name": "support-bot", "harness": "claude-code", "agents": [], "skills": []},
    "interrupt": {"turn_id": "turn_1", "status": "cancelled", "events": [], "session": session()},
    "messages": {"object": "list", "data": [], "has_more": False, "next_cursor": None},
    "req_1": {"events": [], "session": session()},
}


class Recorder(httpx.BaseTransport):
    """Answers each route as the data plane would (by its path's last segment)."""

    def __init__(self, pages: list[dict[str, Any]] | None = None) -> None:
        self.pages = pages or []
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        last = request.url.path.rsplit("/", 1)[-1]
        answer = self.pages.pop(0) if last == "sessions" else ANSWERS[last]
        return httpx.Response(200, json=answer)


def client_on(recorder: Recorder) -> Karta:
    return Karta(
        api_key="kt_live_k",
        base_url="http://dp",
        http_client=httpx.Client(transport=recorder),
    )


def test_list_sessions_sends_each_filter_and_pages_follow_the_cursor():
    recorder = Recorder(
        [
            {"data": [session(id="sess_a")], "has_more": True, "next_cursor": "sess_a"},
            {"data": [session(id="sess_b")], "has_more": False, "next_cursor": None},
        ]
    )
    client = client_on(recorder)
    page = client.projects("web").sessions.list(
        limit=1, status="active", active=False, agent="billing", metadata={"customer": "c-42"}
    )
    assert [s.id for s in page.data] == ["sess_a"] and page.has_more
    assert [s.id for s in page] == ["sess_a", "sess_b"]
    first, second = (dict(r.url.params) for r in recorder.requests)
    assert recorder.requests[0].url.path == "/v1/projects/web/sessions"
    assert recorder.requests[0].headers["authorization"] == "Bearer kt_live_k"
    assert first == {
        "limit": "1",
        "status": "active",
        "active": "false",
        "agent": "billing",
        "metadata.customer": "c-42",
    }
    assert second == {**first, "after": "sess_a"}


@pytest.mark.parametrize(
    "project,prefix", [(None, "/v1"), ("web", "/v1/projects/web"), ("a b", "/v1/projects/a%20b")]
)
def test_every_session_route_follows_the_route_family(project, prefix):
    recorder = Recorder()
    client = client_on(recorder)
    family = client.projects(project) if project else client
    family.app.get()
    family.sessions.interrupt("sess_1")
    family.sessions.messages.list("sess_1", limit=5, after="msg_1")
    family.sessions.inputs.decide("sess_1", "req_1", "deny")
    paths = [(r.method, r.url.raw_path.decode()) for r in recorder.requests]
    assert paths == [
        ("GET", f"{prefix}/app"),
        ("POST", f"{prefix}/sessions/sess_1/interrupt"),
        ("GET", f"{prefix}/sessions/sess_1/messages?limit=5&after=msg_1"),
        ("PUT", f"{prefix}/sessions/sess_1/inputs/req_1"),
    ]
    assert json.loads(recorder.requests[-1].content) == {"decision": "deny"}


def test_an_unknown_agent_is_named_with_the_apps_agents():
    app = AppInfo.model_validate(
        {
            "name": "support-bot",
            "harness": "claude-code",
            "agents": [{"name": "triage"}, {"name": "billing"}],
        }
    )
    assert unknown_agent(app, None) is None and unknown_agent(app, "billing") is None
    assert unknown_agent(app, "nope") == (
        "no agent 'nope' in support-bot; its agents are: triage, billing"
    )


class Spinner:
    def __init__(self) -> None:
        self.up = False

    def start(self) -> None:
        self.up = True

    def stop(self) -> None:
        self.up = False


class SpyConsole(Console):
    """Records the spinner the renderer puts up instead of drawing it."""

    def status(self, *args: Any, **kwargs: Any) -> Any:
        self.spinner = Spinner()
        return self.spinner


def test_the_spinner_stays_up_until_the_first_token():
    console = SpyConsole(file=io.StringIO(), record=True, width=100, color_system=None)
    renderer = EventRenderer(console)
    renderer.wait()
    renderer.render(Event(ev.SYSTEM, {"subtype": "init"}))
    renderer.render(Event(ev.STEP_START, {"part": {"id": "s1"}}))
    assert console.spinner.up, "nothing was printed yet"
    renderer.render(ev.text_event("p1", "Hel"))
    assert not console.spinner.up and console.export_text() == "Hel"
