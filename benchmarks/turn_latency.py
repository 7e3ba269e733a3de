"""Turn latency: Karta over HTTP/SSE versus driving the harness directly.

For each of N sessions, measures time to first text and to `done` for the first (cold) turn and
for warm turns, with the scripted model answering instantly. Prints a Markdown table.
Claude Code's baseline is claude-agent-sdk with the options Karta uses; OpenCode's is Karta's
OpenCode adapter driven in-process (one `opencode serve`, its HTTP API and event stream).

    .venv/bin/python -m benchmarks.turn_latency --sessions 5 --warm-turns 5
    .venv/bin/python -m benchmarks.turn_latency --harness opencode
    .venv/bin/python -m benchmarks.turn_latency --harness opencode --pooled

With `--pooled` Karta keeps one pre-started harness and each session waits until it is ready,
so Karta's first turn is a pooled process's first turn (the direct path starts its process).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from claude_agent_sdk import ClaudeSDKClient, ResultMessage, StreamEvent

from karta.app import load_app
from karta.core.events import Event
from karta.core.sse import iter_events
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.dataplane.harness.claude_code import ClaudeCodeHarness, ClaudeCodeSession
from karta.dataplane.harness.opencode import OpenCodeHarness
from karta.testing import ScriptedModel
from tests.conftest import SUPPORT_BOT, Database, KartaServer

REPLY = "Sunrise is our light roast."


def is_text(message: object) -> bool:
    return isinstance(message, StreamEvent) and message.event.get("type") == "content_block_delta"


APPS = {"claude-code": SUPPORT_BOT, "opencode": SUPPORT_BOT.parent / "opencode-bot"}


def direct_spec(model: ScriptedModel, home: Path, app_dir: Path) -> SessionSpec:
    app = load_app(app_dir)
    workspace = home / "direct" / uuid.uuid4().hex
    shutil.copytree(app_dir, workspace)

    return SessionSpec(
        session_id="bench",
        app=app,
        agent=app.default_agent,
        workspace=workspace,
        state_dir=workspace.parent / (workspace.name + "-state"),
        harness_session_id=str(uuid.uuid4()),
        resume=False,
        model_env={"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "x"},
    )


async def allow(_: ToolRequest) -> ApprovalAnswer:
    return ApprovalAnswer(Verdict.ALLOW)


async def ignore(event: Event) -> Event:
    return event


async def direct_turns(model: ScriptedModel, home: Path, warm: int) -> list[tuple[float, float]]:
    """One session driven straight through the SDK, with the same options Karta uses."""
    spec = direct_spec(model, home, SUPPORT_BOT)
    harness = ClaudeCodeHarness(home, max_retries=0)
    timings = []
    start = time.perf_counter()
    client = ClaudeSDKClient(harness.options(spec, ClaudeCodeSession(spec, harness)))
    await client.connect()
    for turn in range(warm + 1):
        if turn:
            start = time.perf_counter()
        await client.query("Which roast is light?")
        first = None
        async for message in client.receive_response():
            if first is None and is_text(message):
                first = time.perf_counter() - start
            if isinstance(message, ResultMessage):
                break
        timings.append((first or 0.0, time.perf_counter() - start))
    await client.disconnect()
    return timings


async def adapter_turns(model: ScriptedModel, home: Path, warm: int) -> list[tuple[float, float]]:
    """One session driven through Karta's OpenCode adapter in-process, without HTTP."""
    spec = direct_spec(model, home, APPS["opencode"])
    timings = []
    start = time.perf_counter()
    session = await OpenCodeHarness(home).open(spec)
    for turn in range(warm + 1):
        if turn:
            start = time.perf_counter()
        first = None
        ctx = TurnContext(f"turn_{turn}", "Which roast is light?", allow, ignore)
        async for event in session.turn(ctx):
            if first is None and event.type == "text":
                first = time.perf_counter() - start
        timings.append((first or 0.0, time.perf_counter() - start))
    await session.close()
    return timings


def karta_turns(server: KartaServer, warm: int, pooled: bool) -> list[tuple[float, float]]:
    timings = []
    if pooled:
        if not server.wait_pool(1, timeout=120):
            raise TimeoutError("no pre-started harness became ready")
        time.sleep(1)  # a quiet second before the session arrives, as between users
    with server.client() as api:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        for _ in range(warm + 1):
            start = time.perf_counter()
            first = None
            with api.stream(
                "POST",
                f"/v1/sessions/{sid}/messages",
                json={"text": "Which roast is light?", "stream": True},
            ) as response:
                for event in iter_events(response.iter_lines()):
                    if first is None and event.type == "text":
                        first = time.perf_counter() - start
            timings.append((first or 0.0, time.perf_counter() - start))
    return timings


def summarize(label: str, runs: list[list[tuple[float, float]]]) -> dict[str, float]:
    cold = [r[0] for r in runs]
    warm = [t for r in runs for t in r[1:]]
    row = {
        "cold_first_text": statistics.median(c[0] for c in cold),
        "cold_done": statistics.median(c[1] for c in cold),
        "warm_first_text": statistics.median(w[0] for w in warm),
        "warm_done": statistics.median(w[1] for w in warm),
    }
    print(f"| {label} | " + " | ".join(f"{v * 1000:.0f} ms" for v in row.values()) + " |")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--warm-turns", type=int, default=5)
    parser.add_argument("--harness", choices=sorted(APPS), default="claude-code")
    parser.add_argument("--pooled", action="store_true", help="Karta's first turns are pooled")
    args = parser.parse_args()
    pool = {"KARTA_POOL_MIN": "1", "KARTA_POOL_MAX": "1"} if args.pooled else {}
    drive = direct_turns if args.harness == "claude-code" else adapter_turns
    with ScriptedModel() as model, tempfile.TemporaryDirectory() as tmp:
        model.default = lambda request: [{"type": "text", "text": REPLY}]
        home = Path(tmp)
        db = Database("sqlite")
        server = KartaServer(APPS[args.harness], home / "karta", model, db, env=pool).start()
        karta_runs, direct_runs = [], []
        try:
            # Alternate the two paths so drift on the machine affects both alike.
            for _ in range(args.sessions):
                karta_runs.append(karta_turns(server, args.warm_turns, args.pooled))
                direct_runs.append(asyncio.run(drive(model, home, args.warm_turns)))
        finally:
            server.stop()
    print(f"\n{args.sessions} sessions × (1 cold + {args.warm_turns} warm) turns, medians\n")
    print("| path | cold: first text | cold: done | warm: first text | warm: done |")
    print("|---|---|---|---|---|")
    label = "claude-agent-sdk direct" if args.harness == "claude-code" else "OpenCode adapter"
    baseline = summarize(label, direct_runs)
    karta = summarize("Karta HTTP/SSE", karta_runs)
    print(
        "| Karta overhead | "
        + " | ".join(f"{(karta[k] - baseline[k]) * 1000:+.0f} ms" for k in baseline)
        + " |"
    )


if __name__ == "__main__":
    main()
