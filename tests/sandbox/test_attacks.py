"""Real Claude Code turns in bwrap sandboxes, driven by the scripted model, whose tools (the
app is autonomous: every tool call is approved) try to break out. Every attempt fails, the
server stays healthy and the session carries on."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.dataplane.sandbox.bwrap import cgroup_group
from karta.dataplane.sandbox.cgroups import CgroupLayout
from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.conftest import Database, KartaServer, stream_events
from tests.sandbox.conftest import traversable_dir

pytestmark = pytest.mark.harness

PLATFORM_KEY = "sk-platform-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def sandboxed(bwrap_works: None, model: ScriptedModel) -> Iterator[KartaServer]:
    top = traversable_dir("karta-attacks-")
    app = top / "app"
    app.mkdir()
    (app / "CLAUDE.md").write_text("A plain app.\n")
    (app / "karta.jsonc").write_text('{"runtime": {"permission_mode": "autonomous"}}\n')
    db = Database("sqlite")
    server = KartaServer(
        app,
        top / "home",
        model,
        db,
        env={
            "KARTA_SANDBOX": "bwrap",
            "ANTHROPIC_API_KEY": PLATFORM_KEY,
            # One harness process at a time on this shared machine.
            "KARTA_MAX_LIVE_HARNESSES": "1",
            "KARTA_SANDBOX_MEMORY_MB": "1024",
            "KARTA_SANDBOX_PIDS": "128",
        },
    )
    server.start()
    yield server
    server.stop()
    db.drop()
    import shutil

    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def api(sandboxed: KartaServer) -> Iterator[httpx.Client]:
    with sandboxed.client() as client:
        yield client


def new_session(api: httpx.Client) -> str:
    return str(api.post("/v1/sessions", json={}).json()["id"])


def tool_output(body: dict[str, Any]) -> str:
    assert body["status"] == "completed", json.dumps(body)[-3000:]
    parts = [p for m in body["messages"] for p in m["parts"] if p["type"] == "tool"]
    return str(parts[-1]["data"]["state"]["output"])


def bash(api: httpx.Client, model: ScriptedModel, sid: str, command: str) -> str:
    """One turn whose only tool call runs `command` in the session's sandbox."""
    model.enqueue([tool_use("Bash", {"command": command, "description": "probe"})])
    model.enqueue([text("done")])
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "run the probe"}).json()
    return tool_output(body)


def still_fine(server: KartaServer, api: httpx.Client, model: ScriptedModel, sid: str) -> None:
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    model.enqueue_text("still here")
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "are you there?"}).json()
    assert body["status"] == "completed" and body["text"] == "still here"


def test_the_readiness_probe_says_the_harnesses_are_sandboxed(sandboxed):
    ready = httpx.get(f"{sandboxed.url}/readyz").json()
    assert ready["sandbox"].startswith("bwrap: ")


def test_the_provider_key_never_enters_the_sandbox(sandboxed, api, model):
    sid = new_session(api)
    out = bash(
        api,
        model,
        sid,
        "env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f;"
        "done 2>/dev/null; grep -rl sk-platform /proc/[0-9]*/environ /run /tmp $HOME 2>/dev/null;"
        "echo probe-end",
    )
    assert "probe-end" in out
    assert PLATFORM_KEY not in out and "sk-platform" not in out.replace("grep -rl sk-platform", "")
    own = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("ANTHROPIC_"))
    assert own["ANTHROPIC_API_KEY"].startswith("kps_")
    # The model got the platform's key, injected by the proxy, and never the session's.
    calls = model.requests_for(model.requests[-1].session_id or "")
    assert calls and all(c.headers.get("x-api-key") == PLATFORM_KEY for c in calls)
    assert all(own["ANTHROPIC_API_KEY"] not in json.dumps(c.headers) for c in calls)


def test_the_servers_state_and_secrets_are_out_of_reach(sandboxed, api, model):
    home = sandboxed.home
    planes = json.loads((home / "serve-secrets.json").read_text())
    sid = new_session(api)
    files = [
        "serve-secrets.json",
        "secrets.key",
        "credentials.json",
        "karta.db",
        "control.db",
        "sandbox/uids",
    ]
    listing = " ".join(str(home / f) for f in files)
    out = bash(
        api,
        model,
        sid,
        f"cat {listing}; ls -a {home} {home}/sessions {home}/sandbox; cat /etc/shadow; "
        "ls /root /home; echo probe-end",
    )
    assert "probe-end" in out
    for value in planes.values():
        assert value not in out
    assert sandboxed.api_key not in out
    assert "SQLite format" not in out and "/etc/shadow: No such file" in out
    for name in files[:5]:
        assert (home / name).stat().st_mode & 0o077 == 0, name  # 0600 on the host, too
    still_fine(sandboxed, api, model, sid)


def test_another_sessions_workspace_is_out_of_reach(sandboxed, api, model):
    victim = new_session(api)
    bash(api, model, victim, "echo victim-secret > mine.txt")
    theirs = sandboxed.workspace(victim)
    attacker = new_session(api)
    out = bash(
        api,
        model,
        attacker,
        f"cat {theirs}/mine.txt; echo pwned > {theirs}/mine.txt; echo pwned > {theirs}/new.txt;"
        f"ls {theirs}; ls {sandboxed.home}/sessions; echo probe-end",
    )
    assert "probe-end" in out and "victim-secret" not in out
    assert (theirs / "mine.txt").read_text() == "victim-secret\n"
    assert not (theirs / "new.txt").exists()
    assert "pwned" in bash(api, model, attacker, "echo pwned > here.txt; cat here.txt")
    assert "victim-secret" in bash(api, model, victim, "cat mine.txt")


def test_other_processes_are_invisible_and_unsignalable(sandboxed, api, model):
    assert sandboxed.proc is not None
    server_pid = sandboxed.proc.pid
    sid = new_session(api)
    out = bash(
        api,
        model,
        sid,
        f"ps -e -o pid=,user=,comm=; kill -9 {server_pid}; echo kill=$?; echo probe-end",
    )
    assert "probe-end" in out and "kill=0" not in out
    assert "python" not in out and "root" not in out
    # Killing everything it can signal kills only the sandbox itself (its harness included).
    model.enqueue([tool_use("Bash", {"command": "kill -9 -1", "description": "kill all"})])
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "kill them all"}).json()
    assert body["status"] == "failed"
    assert sandboxed.proc.poll() is None
    still_fine(sandboxed, api, model, sid)


def test_the_network_is_loopback_only(sandboxed, api, model):
    sid = new_session(api)
    ports = {"control": sandboxed.control_port, "data": sandboxed.port, "pg": 5432}
    probes = " ".join(
        f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo REACHED-{name};"
        for name, port in ports.items()
    )
    out = bash(
        api,
        model,
        sid,
        f"{probes} ip -o link | cut -d: -f2; echo routes=[$(ip route)];"
        # Only ever from a namespace with no route, so nothing can leave it.
        ' if [ -z "$(ip route)" ]; then (exec 3<>/dev/tcp/203.0.113.7/443) && echo REACHED-OUT;'
        " else echo HAS-ROUTE; fi; echo probe-end",
    )
    assert "probe-end" in out and "REACHED" not in out and "HAS-ROUTE" not in out
    assert "routes=[]" in out and out.split()[0] == "lo"
    still_fine(sandboxed, api, model, sid)


def test_escalation_fails(sandboxed, api, model):
    sid = new_session(api)
    out = bash(
        api,
        model,
        sid,
        "unshare -U true; echo unshare-user=$?; unshare -rm true; echo unshare-root=$?;"
        "mount -t tmpfs none /tmp; echo mount=$?; setpriv --reuid=0 id; echo setuid=$?;"
        "su -c id root </dev/null; echo su=$?; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
    )
    for step in ("unshare-user", "unshare-root", "mount", "setuid", "su"):
        assert f"{step}=" in out and f"{step}=0" not in out, out
    assert "uid=0" not in out and "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
    still_fine(sandboxed, api, model, sid)


def test_a_fork_bomb_is_capped_and_the_session_carries_on(sandboxed, api, model):
    sid = new_session(api)
    command = "bomb() { bomb | bomb & }; bomb; sleep 5"
    model.enqueue([tool_use("Bash", {"command": command, "description": "bomb"})])
    model.enqueue([text("done")])
    peak = 0
    sending = threading.Thread(
        target=lambda: api.post(f"/v1/sessions/{sid}/messages", json={"text": "bomb"})
    )
    sending.start()
    while sending.is_alive():
        peak = max(peak, len(_sandbox_pids(sandboxed.home)))
        time.sleep(0.05)
    # The pids limit holds it (the harness itself may have been starved of threads and died:
    # then the turn ended `harness_crashed`, and the next one resumes).
    assert peak <= 128
    model.reset()  # a crashed turn leaves its scripted reply unused
    still_fine(sandboxed, api, model, sid)


def test_a_memory_hog_is_killed_and_the_harness_is_not(sandboxed, api, model):
    sid = new_session(api)
    out = bash(api, model, sid, "head -c 3G /dev/zero | tail > /dev/null; echo hog=$?")
    assert "hog=137" in out
    still_fine(sandboxed, api, model, sid)


def _sandbox_pids(home: Path) -> list[int]:
    return [pid for leaf in CgroupLayout.detect(cgroup_group(home)).leaves() for pid in leaf.pids()]


def test_a_sandbox_killed_mid_turn_is_a_crash_and_the_next_turn_resumes(sandboxed, api, model):
    sid = new_session(api)
    marker = "remember-" + secrets.token_hex(4)
    model.enqueue_text("noted")
    api.post(f"/v1/sessions/{sid}/messages", json={"text": marker})
    model.enqueue([tool_use("Bash", {"command": "sleep 120", "description": "wait"})])
    events: list[Any] = []
    path = f"/v1/sessions/{sid}/messages"
    turn = threading.Thread(
        target=lambda: events.extend(
            stream_events(api, "POST", path, json={"text": "wait", "stream": True})
        )
    )
    turn.start()
    deadline = time.monotonic() + 60
    while not any(_is_sleep(pid) for pid in _sandbox_pids(sandboxed.home)):
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.1)
    for leaf in CgroupLayout.detect(cgroup_group(sandboxed.home)).leaves():
        leaf.kill()
    turn.join(60)
    errors = [e for e in events if e.type == "error"]
    assert errors and errors[0].data["code"] == "harness_crashed"
    model.enqueue_text("back")
    body = api.post(path, json={"text": "after the crash"}).json()
    assert body["status"] == "completed" and body["text"] == "back"
    assert marker in model.requests[-1].transcript_text  # resumed, not started afresh


def _is_sleep(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    except OSError:
        return False


def test_the_turns_usage_is_what_the_proxy_metered(sandboxed, api, model):
    sid = new_session(api)
    model.enqueue(
        Reply(
            [tool_use("Bash", {"command": "true", "description": "x"})],
            usage={"input_tokens": 100, "output_tokens": 7},
        )
    )
    model.enqueue(Reply([text("done")], usage={"input_tokens": 150, "output_tokens": 5}))
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "meter me"}).json()
    assert body["status"] == "completed"
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (250, 12)


def _leaves(home: Path) -> list[Any]:
    return CgroupLayout.detect(cgroup_group(home)).leaves()


DAEMONS = (
    "setsid sleep 300 >/dev/null 2>&1 </dev/null & "
    "nohup sleep 300 >/dev/null 2>&1 </dev/null & echo started"
)


def test_no_sandboxed_process_outlives_the_server_stopped_or_crashed(sandboxed, api, model):
    sid = new_session(api)
    assert "started" in bash(api, model, sid, DAEMONS)
    assert len(_sandbox_pids(sandboxed.home)) >= 3
    sandboxed.stop()
    assert _sandbox_pids(sandboxed.home) == [] and _leaves(sandboxed.home) == []

    sandboxed.start()
    with sandboxed.client() as again:
        sid = new_session(again)
        assert "started" in bash(again, model, sid, DAEMONS)
    assert sandboxed.proc is not None
    sandboxed.proc.kill()  # the server alone, not its process group: a crash
    sandboxed.proc.wait(10)
    deadline = time.monotonic() + 10
    while _sandbox_pids(sandboxed.home):  # the sandboxes die with their parent
        assert time.monotonic() < deadline, _sandbox_pids(sandboxed.home)
        time.sleep(0.1)
    sandboxed.proc = None
    sandboxed.start()  # and the next server removes what is left of them
    assert _leaves(sandboxed.home) == []


CURL_MODEL = (
    "curl -s -o /dev/null -w '%{http_code}' -H \"x-api-key: $ANTHROPIC_API_KEY\" "
    "-H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' "
    '-d \'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}\' '
    "$ANTHROPIC_BASE_URL/v1/messages"
)


def test_the_model_is_reachable_during_a_turn_only(sandboxed, api, model):
    sid = new_session(api)
    late = sandboxed.workspace(sid) / "late.txt"
    command = (
        f"cat > late.sh <<'EOF'\nsleep 2\n{CURL_MODEL} > late.txt\nEOF\n"
        f"echo now=$({CURL_MODEL}); setsid sh late.sh >/dev/null 2>&1 </dev/null &"
    )
    out = bash(api, model, sid, command)
    assert "now=200" in out  # a call of its own, during the turn: forwarded (and metered)
    deadline = time.monotonic() + 20
    while not late.exists() or not late.read_text():
        assert time.monotonic() < deadline, "the background call never finished"
        time.sleep(0.2)
    assert late.read_text() == "409"  # between turns: refused, never reaches the provider


def test_a_planted_link_never_reads_another_sessions_transcript(sandboxed, api, model):
    victim = new_session(api)
    secret = "victim-words-" + secrets.token_hex(4)
    model.enqueue_text("noted")
    api.post(f"/v1/sessions/{victim}/messages", json={"text": secret})
    theirs = next((sandboxed.home / "sessions" / victim / "state").rglob("projects/*/*.jsonl"))
    attacker = new_session(api)
    model.enqueue_text("hello")
    api.post(f"/v1/sessions/{attacker}/messages", json={"text": "hi"})
    bash(
        api,
        model,
        attacker,
        f'for f in "$CLAUDE_CONFIG_DIR"/projects/*/*.jsonl; do ln -sf {theirs} "$f"; done',
    )
    page = api.get(f"/v1/sessions/{attacker}/messages")
    assert page.status_code == 200 and secret not in page.text
    assert secret in api.get(f"/v1/sessions/{victim}/messages").text
