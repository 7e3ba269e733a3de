"""Side by side: Karta, the published `karta-runtime` 0.6.76 and the bare `claude-agent-sdk`.

The same app (examples/support-bot, in `autonomous` mode so a tool runs without a pause) and
the same scripted model answering instantly, against:

- **Karta**: `karta serve` with API-key auth and metering on, the sandbox on when this host
  allows it, the harness pool on (`KARTA_POOL_MIN=1`, `KARTA_POOL_MAX` = `--pool-max`, 16 by
  default: as many as the burst has sessions, so a burst after steady traffic finds them all);
- **peer**: `karta-runtime dev-serve` from PyPI, installed by this script into its own venv
  (`$KARTA_BENCH_VENV`, default /tmp/karta-bench-venv) with the same claude-agent-sdk as ours;
- **floor**: `claude-agent-sdk` driven in-process with the options Karta uses (no HTTP).

Rounds alternate the three (the order rotates) so drift on the machine affects all alike. Each
round: a session created, its first turn, `--warm` warm turns and a warm tool turn (two model
calls and Bash). Then, on Karta and the peer, 16 sessions one after another (steady traffic,
which Karta's pool follows) and right after them 16 new sessions × 3 turns at once; and memory
per harness. Prints medians and ratios (ours / peer, ours − floor).

    .venv/bin/python -m benchmarks.side_by_side --quick
    .venv/bin/python -m benchmarks.side_by_side --rounds 12 --warm 8
    .venv/bin/python -m benchmarks.side_by_side --soak --sessions 1000 --in-flight 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil
from claude_agent_sdk import ClaudeSDKClient, ResultMessage, StreamEvent

from karta.app import load_app
from karta.core.events import Event
from karta.core.sse import iter_events
from karta.dataplane.harness.base import ApprovalAnswer, SessionSpec, ToolRequest, Verdict
from karta.dataplane.harness.claude_code import ClaudeCodeHarness
from karta.testing import ScriptedModel, text, tool_use
from karta.testing.blocks import ModelRequest
from tests.conftest import SUPPORT_BOT, Database, KartaServer, free_port

PEER_VERSION = "0.6.76"
PEER_VENV = Path(os.environ.get("KARTA_BENCH_VENV", "/tmp/karta-bench-venv"))
TOOL_PROMPT = "tool: count the files"
TOOL_DONE = "Counted them."
WORKING_DIRECTORY = re.compile(r"[Ww]orking directory: ([^\s\\]+)")


def answer(request: ModelRequest) -> list[dict[str, Any]]:
    """The scripted model: a tool prompt gets a file written (the app's agents have `Write`,
    which asks for approval in `interactive` mode) and then a closing line; anything else is
    echoed, so every turn's text is known in advance."""
    if request.kind == "tool_result":
        return [text(TOOL_DONE)]
    if request.prompt.startswith("tool:"):
        note = f"{working_directory(request)}/count.txt"
        return [tool_use("Write", {"file_path": note, "content": "counted\n"})]
    return [text(expected(request.prompt))]


def working_directory(request: ModelRequest) -> str:
    """Where the harness works, as its prompt tells the model (`Write` wants a full
    path)."""
    found = WORKING_DIRECTORY.search(json.dumps(request.body))
    if found is None:
        raise ValueError("the request does not say where the harness works")
    return found[1]


def expected(prompt: str) -> str:
    return f"Reply to: {prompt}"


# --- the three contenders ---------------------------------------------------------------------


@dataclass
class Turn:
    ttft: float
    done: float
    text: str
    approvals: int = 0


def reply_text(events: list[Any]) -> str:
    """The turn's text: deltas are appended by part, snapshots replace (both wire styles)."""
    parts: dict[str, str] = {}
    for event in events:
        if event.type != "text":
            continue
        part = event.data.get("part") or {}
        chunk = str(part.get("text", ""))
        key = str(part.get("id", ""))
        delta = event.data.get("delta") or part.get("delta")
        parts[key] = parts.get(key, "") + chunk if delta else chunk
    return "".join(parts.values())


class HttpContender:
    """Karta and the peer speak the same session API."""

    name = ""

    def client(self) -> httpx.Client:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def create(self, api: httpx.Client) -> tuple[str, float]:
        start = time.perf_counter()
        response = api.post("/v1/sessions", json={})
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        return response.json()["id"], elapsed

    def turn(self, api: httpx.Client, sid: str, prompt: str) -> Turn:
        start = time.perf_counter()
        first, events, approvals = None, [], 0
        body: dict[str, Any] = {"text": prompt, "stream": True}
        path = f"/v1/sessions/{sid}/messages"
        while True:
            with api.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"{self.name}: {response.status_code} {response.read()!r}")
                pending, ended = None, False
                for event in iter_events(response.iter_lines()):
                    events.append(event)
                    if first is None and event.type == "text":
                        first = time.perf_counter() - start
                    if event.type == "input_required":
                        pending = event.data["request_id"]
                    if event.type in ("done", "input_required"):
                        ended = True
                        break
            if not ended:
                raise RuntimeError(f"{self.name}: the stream ended before the turn's done")
            if pending is None:
                break
            # A pause for approval: approve; the answer holds the rest of the turn's events.
            approvals += 1
            path = f"/v1/sessions/{sid}/inputs/{pending}"
            decided = api.put(path, json={"decision": "approve_once"})
            if decided.status_code != 200:
                raise RuntimeError(f"{self.name}: {decided.status_code} {decided.text}")
            for raw in decided.json()["events"]:
                event = Event.from_dict(raw)
                events.append(event)
                if first is None and event.type == "text":
                    first = time.perf_counter() - start
            break
        done = time.perf_counter() - start
        errors = [e.data for e in events if e.type == "error"]
        if errors:
            raise RuntimeError(f"{self.name}: the turn failed: {errors[0]}")
        return Turn(first or done, done, reply_text(events), approvals)

    def end(self, api: httpx.Client, sid: str) -> None:
        api.delete(f"/v1/sessions/{sid}")


class Karta(HttpContender):
    name = "Karta"

    def __init__(self, app: Path, home: Path, model: ScriptedModel, env: dict[str, str]) -> None:
        self.server = KartaServer(app, home, model, Database("sqlite"), env=env)

    def start(self) -> Karta:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self) -> httpx.Client:
        return self.server.client()

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def readiness(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.server.url}/readyz").json())

    def wait_pool(self, size: int, timeout: float = 60) -> None:
        self.server.wait_pool(size, timeout)


class Peer(HttpContender):
    name = "karta-runtime"

    def __init__(self, app: Path, home: Path, model: ScriptedModel) -> None:
        self.app, self.home, self.model = app, home, model
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Peer:
        binary = ensure_peer()
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "ANTHROPIC_BASE_URL": self.model.url,
            "ANTHROPIC_API_KEY": "bench-key",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
        log = (self.home / "peer.log").open("wb")
        command = [str(binary), "dev-serve", str(self.app), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            command, env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"karta-runtime did not start; see {self.home / 'peer.log'}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def ensure_peer() -> Path:
    """`karta-runtime==0.6.76` in a venv of its own, installed on first use with pip."""
    binary = PEER_VENV / "bin" / "karta-runtime"
    if binary.exists():
        return binary
    print(f"installing karta-runtime=={PEER_VERSION} into {PEER_VENV} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    sdk = f"claude-agent-sdk=={metadata.version('claude-agent-sdk')}"
    pip = [str(PEER_VENV / "bin" / "pip"), "install", "-q", f"karta-runtime=={PEER_VERSION}", sdk]
    subprocess.run(pip, check=True)
    return binary


class _Stub:
    """What `ClaudeCodeHarness.options` asks of a session: approvals (all allowed) and a place
    for stderr."""

    def __init__(self) -> None:
        self.stderr_tail: deque[str] = deque(maxlen=40)

    async def ask(self, request: ToolRequest) -> ApprovalAnswer:
        return ApprovalAnswer(Verdict.ALLOW)


class Floor:
    """The bare SDK: one `ClaudeSDKClient` per session, with the options Karta uses."""

    name = "direct SDK"

    def __init__(self, app: Path, home: Path, model: ScriptedModel) -> None:
        self.app_dir, self.home, self.model = app, home, model
        self.app = load_app(app)
        self.harness = ClaudeCodeHarness(home, max_retries=0)

    async def open(self) -> ClaudeSDKClient:
        workspace = self.home / "direct" / uuid.uuid4().hex / "workspace"
        shutil.copytree(self.app_dir, workspace)
        spec = SessionSpec(
            session_id="bench",
            app=self.app,
            agent=self.app.default_agent,
            workspace=workspace,
            state_dir=workspace.parent / "state",
            harness_session_id=str(uuid.uuid4()),
            resume=False,
            model_env={"ANTHROPIC_BASE_URL": self.model.url, "ANTHROPIC_API_KEY": "bench"},
        )
        client = ClaudeSDKClient(self.harness.options(spec, _Stub()))  # type: ignore[arg-type]
        await client.connect()
        return client

    async def turn(self, client: ClaudeSDKClient, prompt: str, start: float | None = None) -> Turn:
        start = start or time.perf_counter()
        await client.query(prompt)
        first, chunks = None, []
        async for message in client.receive_response():
            if isinstance(message, StreamEvent) and message.event.get("type") == (
                "content_block_delta"
            ):
                first = first or time.perf_counter() - start
                chunks.append(message.event.get("delta", {}).get("text", ""))
            if isinstance(message, ResultMessage):
                break
        done = time.perf_counter() - start
        return Turn(first or done, done, "".join(chunks))


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def p50(self, name: str) -> float | None:
        found = self.values.get(name)
        return statistics.median(found) if found else None

    def p95(self, name: str) -> float | None:
        found = sorted(self.values.get(name) or [])
        return found[min(len(found) - 1, int(len(found) * 0.95))] if found else None


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    """CPU time of a server and everything below it (reaped children included)."""
    total = 0.0
    for index, process in enumerate(tree(pid)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
        if index == 0:
            total += times.children_user + times.children_system
    return total


def pss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 2**20


def harness_trees(pid: int) -> dict[str, list[psutil.Process]]:
    """The harness processes below a server, grouped by the workspace they run in."""
    groups: dict[str, list[psutil.Process]] = {}
    for process in tree(pid)[1:]:
        try:
            cwd = process.cwd()
        except psutil.Error:
            continue
        if "workspace" in cwd or "/direct/" in cwd or "sessions" in cwd:
            groups.setdefault(cwd, []).append(process)
    return groups


def check(turn: Turn, want: str) -> None:
    if turn.text.strip() != want:
        raise AssertionError(f"expected {want!r}, got {turn.text!r}")


def karta_round(k: HttpContender, figures: Figures, warm: int, cpu: Figures) -> None:
    with k.client() as api:
        sid, created = k.create(api)
        figures.add("create", created)
        first = k.turn(api, sid, "first question")
        check(first, expected("first question"))
        figures.add("first_ttft", first.ttft)
        figures.add("first_done", first.done)
        before = cpu_seconds(k.pid)
        for index in range(warm):
            prompt = f"warm question {index}"
            turn = k.turn(api, sid, prompt)
            check(turn, expected(prompt))
            figures.add("warm_ttft", turn.ttft)
            figures.add("warm_done", turn.done)
        cpu.add(k.name, (cpu_seconds(k.pid) - before) / max(warm, 1))
        tool = k.turn(api, sid, TOOL_PROMPT)
        check(tool, TOOL_DONE)
        figures.add("tool_done", tool.done)


async def floor_round(floor: Floor, figures: Figures, warm: int) -> None:
    start = time.perf_counter()
    client = await floor.open()
    try:
        first = await floor.turn(client, "first question", start)
        figures.add("first_ttft", first.ttft)
        figures.add("first_done", first.done)
        for index in range(warm):
            turn = await floor.turn(client, f"warm question {index}")
            figures.add("warm_ttft", turn.ttft)
            figures.add("warm_done", turn.done)
        figures.add("tool_done", (await floor.turn(client, TOOL_PROMPT)).done)
    finally:
        await client.disconnect()


SETTLE = 3.0  # seconds between the steady traffic and the burst


def steady(k: HttpContender, sessions: int) -> None:
    """`sessions` sessions one after another, one turn each."""
    with k.client() as api:
        for index in range(sessions):
            sid, _ = k.create(api)
            check(k.turn(api, sid, f"steady {index}"), expected(f"steady {index}"))
            k.end(api, sid)


def burst(k: HttpContender, sessions: int, turns: int) -> tuple[float, float, int]:
    """`sessions` new sessions at once, `turns` turns each: first-turn TTFT p50, turns per
    second, and how many turns failed."""
    firsts: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal failures
        with k.client() as api:
            try:
                sid, _ = k.create(api)
                for turn_index in range(turns):
                    prompt = f"burst {index} turn {turn_index}"
                    turn = k.turn(api, sid, prompt)
                    check(turn, expected(prompt))
                    if turn_index == 0:
                        with lock:
                            firsts.append(turn.ttft)
            except Exception as exc:
                print(f"{k.name}: burst session {index} failed: {exc}", file=sys.stderr)
                with lock:
                    failures += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(one, range(sessions)))
    elapsed = time.perf_counter() - start
    done = sessions * turns - failures * turns
    return statistics.median(firsts) if firsts else float("nan"), done / elapsed, failures


# --- reporting ----------------------------------------------------------------------------------

ROWS = [
    ("first turn, new session: TTFT p50", "first_ttft", "p50"),
    ("first turn, new session: TTFT p95", "first_ttft", "p95"),
    ("session create p50", "create", "p50"),
    ("warm turn: TTFT p50", "warm_ttft", "p50"),
    ("warm turn: done p50", "warm_done", "p50"),
    ("warm tool turn: done p50", "tool_done", "p50"),
]


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


def report(results: dict[str, Figures], extra: list[tuple[str, str, str, str, str]]) -> None:
    ours, peer, floor = results["Karta"], results["karta-runtime"], results["direct SDK"]
    print("| figure | Karta | karta-runtime 0.6.76 | direct SDK | ours / peer | ours − floor |")
    print("|---|---|---|---|---|---|")
    for label, name, stat in ROWS:
        values = [getattr(f, stat)(name) for f in (ours, peer, floor)]
        a, b, c = values
        ratio = f"{a / b:.2f}" if a is not None and b else "—"
        diff = f"{(a - c) * 1000:+.0f} ms" if a is not None and c is not None else "—"
        print(f"| {label} | {ms(a)} | {ms(b)} | {ms(c)} | {ratio} | {diff} |")
    for row in extra:
        print("| " + " | ".join(row) + " |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM"


@contextmanager
def bench_home() -> Iterator[Path]:
    """A home the sandbox can work in (its parents searchable by sandbox uids)."""
    home = Path(tempfile.mkdtemp(prefix="karta-bench-", dir="/tmp"))
    home.chmod(0o711)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_app(home: Path, mode: str) -> Path:
    app = home / f"support-bot-{mode}"
    shutil.copytree(SUPPORT_BOT, app)
    config = {"default_agent": "triage", "runtime": {"permission_mode": mode}}
    (app / "karta.jsonc").write_text(json.dumps(config))
    app.chmod(0o755)
    return app


def leftovers(home: Path, grace: float = 10.0) -> list[int]:
    """Processes still running in the benchmark's folders `grace` seconds after shutdown."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for process in psutil.process_iter(["pid"]):
            try:
                if process.cwd().startswith(str(home)) and process.status() != "zombie":
                    found.append(process.pid)
            except psutil.Error:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def karta_env(pool_max: int) -> dict[str, str]:
    return {"KARTA_POOL_MIN": "1", "KARTA_POOL_MAX": str(pool_max), "KARTA_LOG_LEVEL": "ERROR"}


def side_by_side(args: argparse.Namespace) -> None:
    with ScriptedModel(max_calls=10**7) as model, bench_home() as home:
        model.default = answer
        app = bench_app(home, "autonomous")
        karta = Karta(app, home / "karta", model, karta_env(args.pool_max)).start()
        peer = Peer(app, home / "peer", model).start()
        floor = Floor(app, home / "floor", model)
        results = {name: Figures() for name in ("Karta", "karta-runtime", "direct SDK")}
        cpu = Figures()
        extra: list[tuple[str, str, str, str, str]] = []
        try:
            karta.wait_pool(1)
            sandbox = str(karta.readiness()["sandbox"]).split(":", 1)[0]
            rss_start = psutil.Process(karta.pid).memory_info().rss
            turns_start = len(model.requests)
            runs: list[Callable[[], None]] = [
                lambda: karta_round(karta, results["Karta"], args.warm, cpu),
                lambda: karta_round(peer, results["karta-runtime"], args.warm, cpu),
                lambda: asyncio.run(floor_round(floor, results["direct SDK"], args.warm)),
            ]
            for index in range(args.rounds):
                for offset in range(3):
                    runs[(index + offset) % 3]()
                karta.wait_pool(1, timeout=10)  # the pool refills between rounds, as with traffic
            memory = memory_figures(karta, peer)
            bursts, pooled = {}, 0
            for contender in (karta, peer) if args.rounds % 2 else (peer, karta):
                # The burst comes on top of steady traffic: as many sessions as the burst has,
                # one after another, in the minute before it (Karta's pool follows them).
                steady(contender, args.burst)
                if contender is karta:
                    karta.wait_pool(min(args.pool_max, args.burst), timeout=180)
                    pooled = karta.readiness()["harnesses"]["pooled"]
                time.sleep(SETTLE)  # the steady sessions' processes have exited
                bursts[contender.name] = burst(contender, args.burst, 3)
            (kp50, krate, kfail), (pp50, prate, pfail) = bursts["Karta"], bursts["karta-runtime"]
            extra.append(
                (
                    f"16 × 3 at once ({pooled} pooled): first-turn TTFT p50",
                    ms(kp50),
                    ms(pp50),
                    "—",
                    f"{kp50 / pp50:.2f}",
                )
            )
            extra.append(
                (
                    "16 × 3 at once: turns/s",
                    f"{krate:.2f}",
                    f"{prate:.2f}",
                    "—",
                    f"{krate / prate:.2f}",
                )
            )
            extra.append(("16 × 3 at once: failed sessions", str(kfail), str(pfail), "—", "—"))
            for label, ours, theirs in memory:
                extra.append((label, ours, theirs, "—", "—"))
            k_cpu = cpu.p50("Karta")
            p_cpu = cpu.p50("karta-runtime")
            extra.append(
                (
                    "CPU seconds per warm turn (platform + harness)",
                    f"{k_cpu:.3f}" if k_cpu is not None else "—",
                    f"{p_cpu:.3f}" if p_cpu is not None else "—",
                    "—",
                    f"{k_cpu / p_cpu:.2f}" if k_cpu and p_cpu else "—",
                )
            )
            turns = max(1, (len(model.requests) - turns_start))
            growth = (psutil.Process(karta.pid).memory_info().rss - rss_start) / 1024
            extra.append(
                (
                    "Karta RSS growth per 1,000 model calls",
                    f"{growth / turns * 1000:.0f} KB",
                    "—",
                    "—",
                    "—",
                )
            )
        finally:
            karta.stop()
            peer.stop()
        left = leftovers(home)
        print(f"\n{machine()}; Karta's sandbox: {sandbox}")
        print(f"{args.rounds} rounds × (1 new session + {args.warm} warm + 1 tool turn)\n")
        report(results, extra)
        print(f"\nleftover processes after shutdown: {len(left)}")


def memory_figures(karta: Karta, peer: Peer) -> list[tuple[str, str, str]]:
    """PSS per harness: pooled (Karta only), and per idle session (warm, between turns)."""
    ready = karta.readiness()["harnesses"]
    groups = harness_trees(karta.pid)
    pooled = [procs for cwd, procs in groups.items() if (Path(cwd).parent / "pooled").exists()]
    idle = [procs for cwd, procs in groups.items() if not (Path(cwd).parent / "pooled").exists()]
    peer_groups = list(harness_trees(peer.pid).values())

    def per(groups_: list[list[psutil.Process]]) -> str:
        if not groups_:
            return "—"
        return f"{statistics.median(pss_mb(g) for g in groups_):.0f} MB"

    rows = [
        ("memory per idle session with a warm harness (PSS)", per(idle), per(peer_groups)),
        (f"memory per pooled harness (PSS; {ready['pooled']} pooled)", per(pooled), "—"),
    ]
    return rows


# --- soak ----------------------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> None:
    """`--sessions` sessions, `--in-flight` at once: a text turn each, a tool turn with an
    approval every third session; every text checked; 0 errors; RSS per 1,000 turns; no
    process left after shutdown."""
    with ScriptedModel(max_calls=10**7) as model, bench_home() as home:
        model.default = answer
        app = bench_app(home, "interactive")
        karta = Karta(app, home / "karta", model, karta_env(args.pool_max)).start()
        errors: list[str] = []
        counts = {"turns": 0, "approvals": 0}
        lock = threading.Lock()
        start = time.perf_counter()
        rss: list[int] = []
        try:
            karta.wait_pool(1)
            rss.append(psutil.Process(karta.pid).memory_info().rss)

            def one(index: int) -> None:
                with karta.client() as api:
                    try:
                        sid, _ = karta.create(api)
                        prompt = f"soak {index} {secrets.token_hex(4)}"
                        check(karta.turn(api, sid, prompt), expected(prompt))
                        done, approvals = 1, 0
                        if index % 3 == 0:
                            tool = karta.turn(api, sid, TOOL_PROMPT)
                            check(tool, TOOL_DONE)
                            done, approvals = 2, tool.approvals
                        karta.end(api, sid)
                        with lock:
                            counts["turns"] += done
                            counts["approvals"] += approvals
                    except Exception as exc:
                        with lock:
                            errors.append(f"session {index}: {exc}")
                if index % 100 == 99:
                    rss.append(psutil.Process(karta.pid).memory_info().rss)

            with ThreadPoolExecutor(args.in_flight) as pool:
                list(pool.map(one, range(args.sessions)))
            rss.append(psutil.Process(karta.pid).memory_info().rss)
            cpu = cpu_seconds(karta.pid)
        finally:
            karta.stop()
        elapsed = time.perf_counter() - start
        left = leftovers(home)
        turns = max(counts["turns"], 1)
        print(f"\n{machine()}; soak of {args.sessions} sessions, {args.in_flight} in flight\n")
        print(f"- {counts['turns']} turns ({counts['approvals']} approved) in {elapsed:.0f} s")
        print(f"- errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        print(f"- CPU seconds per turn (platform + harness): {cpu / turns:.3f}")
        growth = (rss[-1] - rss[0]) / 1024
        print(
            f"- platform RSS {rss[0] >> 20} MB → {rss[-1] >> 20} MB: "
            f"{growth / turns * 1000:.0f} KB per 1,000 turns"
        )
        print(f"- platform RSS every 100 sessions (MB): {' '.join(str(r >> 20) for r in rss)}")
        print(f"- leftover processes after shutdown: {len(left)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 3 warm turns")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warm", type=int, default=6)
    parser.add_argument("--burst", type=int, default=16, help="sessions at once")
    parser.add_argument("--pool-max", type=int, default=16)
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warm = 3, 3
    soak(args) if args.soak else side_by_side(args)


if __name__ == "__main__":
    main()
