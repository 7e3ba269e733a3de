"""The CLI and the Python client against a real server: `karta chat` (approvals, Ctrl-C, the
spinner, project routes, a mistyped agent), `karta sessions`, `karta run` without a server, and
the client's session routes and error mapping."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from karta.cli.main import app as cli
from karta.client import Karta
from karta.testing import Reply, text, tool_use
from karta.testing.scripted_model import BUILTIN_MODEL_NAME
from tests.conftest import SUPPORT_BOT, KartaServer

pytestmark = pytest.mark.harness
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
PATIENCE = 90.0  # seconds before a wait gives up: a failure, never a measurement


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


class Repl:
    """`karta chat` in a subprocess on a pseudo-terminal, read as a person would see it."""

    def __init__(self, server: KartaServer, *args: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KARTA_", "FORCE_COLOR", "NO_COLOR", "TTY_"))
        }
        env.update({"TERM": "xterm", "COLUMNS": "100", "KARTA_HOME": str(server.home)})
        env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack (see `finish`)
        leader, follower = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "karta.cli", "chat", "--url", server.url, *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
        )
        os.close(follower)
        self._leader = leader
        self._raw = bytearray()
        self._seen = 0  # where the next `expect` starts looking
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self._raw.extend(chunk)

    @property
    def screen(self) -> str:
        """Everything printed so far, without terminal control sequences."""
        return ANSI.sub("", bytes(self._raw).decode(errors="replace"))

    def expect(self, wanted: str) -> str:
        """Wait until `wanted` is printed after what the last `expect` matched; returns the
        output in between."""
        eventually(lambda: wanted in self.screen[self._seen :], repr(wanted))
        start = self._seen
        self._seen = self.screen.index(wanted, start) + len(wanted)
        return self.screen[start : self._seen]

    def type(self, line: str) -> None:
        os.write(self._leader, line.encode() + b"\n")

    def ctrl_c(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def ctrl_d(self) -> None:
        os.write(self._leader, b"\x04")  # the terminal's end of file, on an empty line

    def finish(self) -> int:
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            # Stuck: its stacks go to the terminal, and the failure shows them.
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(10)
            self._reader.join(5)
            raise AssertionError(
                f"karta chat did not exit; the end of its terminal:\n{self.screen[-4000:]}"
            ) from None
        finally:
            self._reader.join(5)
            os.close(self._leader)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()


@pytest.fixture
def repl(server: KartaServer) -> Iterator[Callable[..., Repl]]:
    started: list[Repl] = []

    def start(*args: str) -> Repl:
        started.append(Repl(server, "--key", server.api_key, *args))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def session_id_in(output: str) -> str:
    return output.split("session ")[1].split()[0]


def sdk(server: KartaServer) -> Karta:
    return Karta(api_key=server.api_key, base_url=server.url, control_url=server.control_url)


def turn_statuses(server: KartaServer, session_id: str, project: str | None = None) -> list[str]:
    with sdk(server) as client:
        family = client.projects(project) if project else client
        events = [e.to_dict() for e in family.sessions.events(session_id, after=0)]
    return [e["data"]["status"] for e in events if e["type"] == "done"]


def test_chat_streams_replies_and_asks_for_approvals(server, model, monkeypatch):
    model.enqueue(
        [
            text("Writing it down."),
            tool_use("Write", {"file_path": "notes/chat.md", "content": "from chat\n"}),
        ]
    )
    model.enqueue([text("All noted.")])
    result = CliRunner().invoke(
        cli,
        ["chat", "--url", server.url, "--key", server.api_key],
        input="please note this\ny\nexit\n",
    )
    assert result.exit_code == 0, result.output
    assert "Writing it down." in result.output and "All noted." in result.output
    assert "Approval required: Allow Write on notes/chat.md?" in result.output
    session_id = result.output.split("session ")[1].split()[0]
    assert (server.workspace(session_id) / "notes" / "chat.md").read_text() == "from chat\n"


def test_chat_reports_an_unreachable_server_plainly():
    result = CliRunner().invoke(cli, ["chat", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert result.exit_code == 2 and "cannot reach Karta" in result.output


def test_run_does_one_turn_without_a_server(model, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-dummy-key")
    model.enqueue([text("Sunrise, Harbour and Midnight.")])
    result = CliRunner().invoke(cli, ["run", str(SUPPORT_BOT), "Which roasts?"])
    assert result.exit_code == 0, result.output
    assert "Sunrise, Harbour and Midnight." in result.output
    assert model.requests[-1].prompt == "Which roasts?"


def test_run_denies_tools_when_nobody_can_approve(model, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-dummy-key")
    model.enqueue([tool_use("Write", {"file_path": "x.md", "content": "x"})])
    model.enqueue([text("I could not write it.")])
    result = CliRunner().invoke(cli, ["run", str(SUPPORT_BOT), "write x"])
    assert result.exit_code == 0, result.output
    assert "denied" in result.output
    assert model.requests[-1].tool_results[0]["is_error"] is True


def test_ctrl_c_interrupts_the_turn_and_the_repl_takes_the_next_line(server, model, repl):
    model.enqueue(Reply([text("This reply comes too late.")], delay=120))
    model.enqueue([text("Second answer.")])
    chat = repl()
    session_id = session_id_in(chat.expect("you> "))
    chat.type("first question")
    # The spinner is up while the model holds its reply back.
    chat.expect("waiting for the reply")
    eventually(
        lambda: any(r.prompt == "first question" for r in model.requests), "the model's request"
    )
    assert session_id in listed(server, "--active")
    chat.ctrl_c()
    assert "cancelled" in chat.expect("you> ")
    chat.type("second question")
    assert "Second answer." in chat.expect("you> ")
    chat.ctrl_c()  # at the prompt: leaves
    assert chat.finish() == 0
    assert "too late" not in chat.screen
    assert turn_statuses(server, session_id) == ["cancelled", "completed"]
    assert model.requests[-1].prompt == "second question"


@pytest.mark.parametrize("leave", ["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_prompt_leaves(repl, leave):
    chat = repl()
    chat.expect("you> ")
    if leave == "ctrl-c":
        chat.ctrl_c()
    else:
        chat.ctrl_d()
    assert chat.finish() == 0


@pytest.mark.parametrize("family", [[], ["--project", "support-bot"]], ids=["flat", "project"])
def test_chat_refuses_an_unknown_agent_before_the_first_message(server, family):
    with sdk(server) as client:
        before = [s.id for s in client.sessions.list(limit=100).data]
    result = CliRunner().invoke(
        cli,
        ["chat", "--url", server.url, "--key", server.api_key, *family, "--agent", "nope"],
        input="hello\n",
    )
    assert result.exit_code == 2, result.output
    assert "no agent 'nope' in support-bot; its agents are: triage, billing" in result.output
    assert "you>" not in result.output
    with sdk(server) as client:
        assert [s.id for s in client.sessions.list(limit=100).data] == before


def test_chat_on_a_project_route_family(server, model):
    model.enqueue([text("Hello from the project.")])
    result = CliRunner().invoke(
        cli,
        [
            "chat",
            "--url",
            server.url,
            "--key",
            server.api_key,
            "--project",
            "support-bot",
            "--agent",
            "billing",  # checked against the project's app: GET /v1/projects/support-bot/app
        ],
        input="hi\nexit\n",
    )
    assert result.exit_code == 0, result.output
    assert "Hello from the project." in result.output
    session_id = session_id_in(result.output)
    with sdk(server) as client:
        seen = client.projects("support-bot").sessions.get(session_id)
    assert seen.project is not None and seen.project.ref == "support-bot"
    assert seen.current_agent == "billing"
    assert turn_statuses(server, session_id, project="support-bot") == ["completed"]


def run_sessions(server: KartaServer, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["sessions", "--url", server.url, "--key", server.api_key, *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def listed(server: KartaServer, *args: str) -> list[str]:
    return [s["id"] for s in json.loads(run_sessions(server, "--json", *args))["data"]]


def test_sessions_filters_pages_and_fits_80_columns(server):
    suite = f"suite-{uuid.uuid4().hex[:8]}"
    with sdk(server) as client:
        in_project = client.projects("support-bot").sessions.create(metadata={"suite": suite}).id
        made = [client.sessions.create(metadata={"suite": suite, "n": str(n)}).id for n in range(3)]
        client.sessions.delete(made[0])
    mine = ("--meta", f"suite={suite}")
    # An organization's key sees its project's sessions on the flat routes too.
    newest_first = [*made[::-1], in_project]
    assert listed(server, *mine) == newest_first
    assert listed(server, *mine, "--meta", "n=1") == [made[1]]
    assert listed(server, *mine, "--status", "ended") == [made[0]]
    assert listed(server, *mine, "--idle", "--status", "active") == [made[2], made[1], in_project]
    assert listed(server, *mine, "--active") == []
    assert listed(server, *mine, "--agent", "billing") == []
    assert listed(server, *mine, "--agent", "triage") == newest_first
    assert listed(server, "--project", "support-bot", *mine) == [in_project]
    # One page and the way on, or every page.
    first = run_sessions(server, *mine, "--limit", "2")
    assert made[2] in first and made[1] in first and made[0] not in first
    assert f"--after {made[1]}" in first
    assert all(len(line) <= 80 for line in first.splitlines()), first
    assert listed(server, *mine, "--limit", "2", "--after", made[1]) == [made[0], in_project]
    assert listed(server, *mine, "--limit", "1", "--all") == newest_first


def test_sessions_reports_a_bad_filter_and_an_unreachable_server(server):
    bad = CliRunner().invoke(
        cli, ["sessions", "--url", server.url, "--key", server.api_key, "--meta", "novalue"]
    )
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    gone = CliRunner().invoke(cli, ["sessions", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert gone.exit_code == 2 and "cannot reach Karta" in gone.output


def test_the_builtin_models_turns_are_metered_at_zero(server, model, monkeypatch):
    # The shared test model answers as the built-in one does (karta.dataplane.modelenv starts
    # it so).
    monkeypatch.setattr(model, "model_name", BUILTIN_MODEL_NAME)
    with sdk(server) as client:
        session = client.sessions.create()
        reply = client.sessions.messages.send(session.id, "What does this cost?")
        assert reply.status == "completed", reply.errors

    def scripted_row() -> dict[str, Any] | None:
        with server.control() as control:
            rows = control.get("/v1/usage").json()["by_model"]
        return next((r for r in rows if r["model"] == BUILTIN_MODEL_NAME), None)

    eventually(lambda: scripted_row() is not None, "the turn's usage on the control plane")
    row = scripted_row()
    assert row is not None and row["input_tokens"] > 0
    assert row["cost_micros"] == 0 and row["cost_cents"] == 0
