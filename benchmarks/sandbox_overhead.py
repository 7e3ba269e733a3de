"""What the sandbox and the model proxy add.

1. Sandbox start: prepare a session's sandbox, run `/bin/true` through its launcher, destroy it
   — against the same through the `none` backend. Precise: no harness in the way.
2. Turns: a session's first turn (it starts Claude Code) and warm turns through `karta serve`
   with `KARTA_SANDBOX=bwrap` and with `none`, sessions alternating between the two servers.
3. Proxy: one model call (streamed) straight to the scripted model, and through the proxy
   (its loopback port, and its UNIX socket as a sandbox reaches it), p50 and p90.

    .venv/bin/python -m benchmarks.sandbox_overhead --sessions 8 --warm-turns 5 --calls 300

Needs root, bubblewrap and socat. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import httpx

from karta.dataplane.sandbox.base import SandboxHandle, SandboxRequest
from karta.dataplane.sandbox.bwrap import BwrapSandbox
from karta.dataplane.sandbox.none import NoSandbox
from karta.dataplane.sandbox.proxy import ModelProxy, OrgLimits
from karta.testing import ScriptedModel
from tests.conftest import Database, KartaServer, free_port


def traversable(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


def ms(values: list[float], q: float = 0.5) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f} ms"


# --- 1. sandbox start ----------------------------------------------------------------------------


async def start_once(prepare: Callable[[], Awaitable[SandboxHandle]]) -> float:
    began = time.perf_counter()
    handle = await prepare()
    launcher = handle.launcher("/usr/bin/true", ["PATH"])
    proc = await asyncio.create_subprocess_exec(str(launcher), env={"PATH": "/usr/bin"})
    await proc.wait()
    await handle.destroy()
    return time.perf_counter() - began


async def sandbox_start(runs: int) -> dict[str, list[float]]:
    top = traversable("karta-bench-")
    home = top / "home"
    sock_path = home / "sandbox" / "proxy" / "model.sock"
    sock_path.parent.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen()
    bwrap = BwrapSandbox(home, sock_path)
    bwrap.start()
    none = NoSandbox(home, "http://127.0.0.1:9")
    root = home / "sessions" / "sess_bench"
    for name in ("workspace", "state"):
        (root / name).mkdir(parents=True)
    request = SandboxRequest("sess_bench", root, (root / "workspace", root / "state"), root)
    times: dict[str, list[float]] = {"bwrap": [], "none": []}
    try:
        for i in range(runs + 3):
            for name, backend in (("bwrap", bwrap), ("none", none)):
                took = await start_once(partial(backend.prepare, request))
                if i >= 3:  # warm-up
                    times[name].append(took)
    finally:
        await bwrap.close()
        listener.close()
        shutil.rmtree(top, ignore_errors=True)
    return times


# --- 2. turns ------------------------------------------------------------------------------------


def pool_ready(server: KartaServer) -> None:
    """Wait until the server has a pre-started harness waiting for the next session."""
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/readyz").json()["harnesses"]["pooled"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the pool did not refill within a minute")
        time.sleep(0.05)


def turn_times(server: KartaServer, warm: int) -> tuple[float, list[float]]:
    with server.client() as api:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        began = time.perf_counter()
        assert api.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"}).json()["status"]
        cold = time.perf_counter() - began
        warm_times = []
        for _ in range(warm):
            began = time.perf_counter()
            api.post(f"/v1/sessions/{sid}/messages", json={"text": "again"})
            warm_times.append(time.perf_counter() - began)
        api.delete(f"/v1/sessions/{sid}")
    return cold, warm_times


def turns(
    sessions: int, warm: int, cpus: str, pooled: bool
) -> dict[str, tuple[list[float], list[float]]]:
    top = traversable("karta-bench-turns-")
    app = top / "app"
    app.mkdir()
    (app / "CLAUDE.md").write_text("A plain app.\n")
    out: dict[str, tuple[list[float], list[float]]] = {"bwrap": ([], []), "none": ([], [])}
    with ScriptedModel() as model:
        servers = {
            name: KartaServer(
                app,
                top / f"home-{name}",
                model,
                Database("sqlite"),
                env={
                    "KARTA_SANDBOX": name,
                    "KARTA_MAX_LIVE_HARNESSES": "2" if pooled else "1",
                    "KARTA_SANDBOX_CPUS": cpus,
                    # With the pool, a new session's first turn runs on a harness started
                    # (and sandboxed) ahead of it; without, it starts one.
                    "KARTA_POOL_MIN": "1" if pooled else "0",
                    "KARTA_POOL_MAX": "1" if pooled else "0",
                },
            ).start()
            for name in ("bwrap", "none")
        }
        try:
            for _ in range(sessions):
                for name, server in servers.items():  # alternate: drift hits both alike
                    if pooled:  # both pools full: no refill of either runs beside the turns
                        for each in servers.values():
                            pool_ready(each)
                    cold, warm_times = turn_times(server, warm)
                    out[name][0].append(cold)
                    out[name][1].extend(warm_times)
        finally:
            for server in servers.values():
                server.stop()
            shutil.rmtree(top, ignore_errors=True)
    return out


# --- 3. proxy ------------------------------------------------------------------------------------

BODY = {
    "model": "bench",
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "hello"}],
}


async def timed_calls(client: httpx.AsyncClient, key: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        answer = await client.post("/v1/messages", json=BODY, headers={"x-api-key": key})
        assert answer.status_code == 200, answer.text
        times.append(time.perf_counter() - began)
    return times


@contextlib.contextmanager
def model_process() -> Iterator[str]:
    """The scripted model in a process of its own, as a provider is: in this process its
    thread and the proxy would contend for one interpreter, which is not what the proxy costs."""
    port = free_port()
    code = (
        "import time; from karta.testing import ScriptedModel; "
        f"ScriptedModel(max_calls=10**9).start(port={port}); time.sleep(10**6)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the scripted model did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def proxy(calls: int) -> dict[str, list[float]]:
    top = traversable("karta-bench-proxy-")
    with model_process() as model_url:
        env = {"ANTHROPIC_BASE_URL": model_url, "ANTHROPIC_API_KEY": "sk-x"}
        gateway = ModelProxy(env, OrgLimits(per_minute=10**9))  # measure, do not throttle
        sock_path = top / "model.sock"
        await gateway.start(unix_path=sock_path, tcp=True)
        grant = gateway.grant("sess_bench", 1, 1)
        clients = {
            "direct": (httpx.AsyncClient(base_url=model_url), "sk-x"),
            "proxy (loopback)": (httpx.AsyncClient(base_url=gateway.url or ""), grant.credential),
            "proxy (UNIX socket)": (
                httpx.AsyncClient(
                    base_url="http://proxy", transport=httpx.AsyncHTTPTransport(uds=str(sock_path))
                ),
                grant.credential,
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in clients}
        try:
            for client, key in clients.values():
                await timed_calls(client, key, 20)  # warm-up: connections, caches
            for _ in range(calls // 50):
                for name, (client, key) in clients.items():
                    times[name] += await timed_calls(client, key, 50)
        finally:
            for client, _ in clients.values():
                await client.aclose()
            await gateway.stop()
            shutil.rmtree(top, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--warm-turns", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--cpus", default="2", help="the sandbox's CPU limit (KARTA_SANDBOX_CPUS)")
    parser.add_argument(
        "--pool", action="store_true", help="first turns on pre-started harnesses (the pool)"
    )
    parser.add_argument("--turns-only", action="store_true", help="skip the start and proxy runs")
    args = parser.parse_args()

    if not args.turns_only:
        starts = asyncio.run(sandbox_start(args.starts))
        print(f"\n## Sandbox start ({args.starts} runs each)\n")
        print("| backend | p50 | p90 |\n|---|---|---|")
        for name, values in starts.items():
            print(f"| {name} | {ms(values)} | {ms(values, 0.9)} |")
        added = statistics.median(starts["bwrap"]) - statistics.median(starts["none"])
        print(f"| added by bwrap | {added * 1000:.1f} ms | |")

    timed = turns(args.sessions, args.warm_turns, args.cpus, args.pool)
    pool = ", first turns on pooled harnesses" if args.pool else ""
    title = f"{args.sessions} sessions, {args.warm_turns} warm turns, {args.cpus} CPU{pool}"
    print(f"\n## Turns ({title})\n")
    print("| backend | first turn p50 | warm turn p50 |\n|---|---|---|")
    for name, (cold, warm) in timed.items():
        print(f"| {name} | {ms(cold)} | {ms(warm)} |")
    cold_added = statistics.median(timed["bwrap"][0]) - statistics.median(timed["none"][0])
    warm_added = statistics.median(timed["bwrap"][1]) - statistics.median(timed["none"][1])
    print(f"| added by bwrap | {cold_added * 1000:+.1f} ms | {warm_added * 1000:+.1f} ms |")

    if args.turns_only:
        return
    calls = asyncio.run(proxy(args.calls))
    print(f"\n## Model call, streamed ({args.calls} calls each)\n")
    print("| path | p50 | p90 |\n|---|---|---|")
    for name, values in calls.items():
        print(f"| {name} | {ms(values)} | {ms(values, 0.9)} |")
    for name in ("proxy (loopback)", "proxy (UNIX socket)"):
        added = statistics.median(calls[name]) - statistics.median(calls["direct"])
        print(f"| added by {name} | {added * 1000:+.2f} ms | |")


if __name__ == "__main__":
    main()
