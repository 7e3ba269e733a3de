"""Release resolution: what creating a session and taking a warm turn cost on a published
release, against the served folder's working copy, through `karta serve` over HTTP.

Session creation on the project routes resolves the active release (cached per project, dropped
by the control plane's push) and copies the release into the session's workspace; the first
session on a release also fetches its archive from the control plane, verifies its sha256,
extracts it and loads the app. An activation's push also drops the caller's cached API key; its
re-validation is kept out of the figures. Prints a Markdown table of medians.

    .venv/bin/python -m benchmarks.release_sessions --releases 8 --sessions 20 --turns 20
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from karta.releases.archive import pack_bytes
from karta.testing import ScriptedModel
from tests.conftest import SUPPORT_BOT, Database, KartaServer

PROJECT = "bench"


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms"


def timed(call: Callable[[], httpx.Response]) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - start
    assert response.is_success, response.text
    return elapsed


def release(base: Path, n: int) -> bytes:
    root = base / f"app-{n}"
    shutil.copytree(SUPPORT_BOT, root)
    (root / "CLAUDE.md").write_text(f"# Release {n}\n\nBeans & Co., release {n}.\n")
    return pack_bytes(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ScriptedModel() as model:
        base = Path(tmp)
        server = KartaServer(SUPPORT_BOT, base / "home", model, Database("sqlite")).start()
        try:
            api, control = server.client(), server.control()
            control.post("/v1/projects", json={"slug": PROJECT})
            archives = [release(base, n) for n in range(args.releases)]
            sizes = [len(a) for a in archives]

            def revalidate() -> None:
                """The push also drops the caller's cached key: pay its (argon2) validation
                outside the measurement."""
                assert api.get("/v1/app").is_success

            def create(path: str) -> Callable[[], httpx.Response]:
                return lambda: api.post(path, json={})

            flat = [timed(create("/v1/sessions")) for _ in range(args.sessions)]
            local = [
                timed(create("/v1/projects/support-bot/sessions")) for _ in range(args.sessions)
            ]
            first: list[float] = []
            warm: list[float] = []
            pointer_miss: list[float] = []
            for n, archive in enumerate(archives):
                published = control.post(
                    f"/v1/projects/{PROJECT}/releases",
                    content=archive,
                    headers={"Content-Type": "application/gzip"},
                )
                assert published.status_code == 201, published.text
                revalidate()
                first.append(timed(create(f"/v1/projects/{PROJECT}/sessions")))
                warm += [
                    timed(create(f"/v1/projects/{PROJECT}/sessions"))
                    for _ in range(args.sessions // args.releases or 1)
                ]
                if n:  # back to a release already on disk: only the pointer is looked up
                    control.post(f"/v1/projects/{PROJECT}/releases/v{n}/activate")
                    revalidate()
                    pointer_miss.append(timed(create(f"/v1/projects/{PROJECT}/sessions")))
                    control.post(f"/v1/projects/{PROJECT}/releases/v{n + 1}/activate")

            # Warm turns, alternating between the two sessions so drift affects both alike.
            sends = []
            for path in ("/v1/sessions", f"/v1/projects/{PROJECT}/sessions"):
                sid = api.post(path, json={}).json()["id"]
                sends.append(f"{path}/{sid}/messages")
                api.post(sends[-1], json={"text": "warm up"})
            flat_turns: list[float] = []
            release_turns: list[float] = []

            def say(send: str) -> Callable[[], httpx.Response]:
                return lambda: api.post(send, json={"text": "hello"})

            for _ in range(args.turns):
                for send, into in zip(sends, (flat_turns, release_turns), strict=True):
                    into.append(timed(say(send)))
        finally:
            server.stop()

    print(f"{args.releases} releases of {statistics.median(sizes)} bytes (gzip'd), SQLite\n")
    print("| what | median |")
    print("|---|---|")
    print(f"| create a session, flat route (served folder) | {ms(flat)} |")
    print(f"| create a session, local project's working copy | {ms(local)} |")
    print(f"| create the first session on a new release (fetch, verify, extract) | {ms(first)} |")
    print(f"| create a session after an activation push (pointer lookup) | {ms(pointer_miss)} |")
    print(f"| create a session on a cached release | {ms(warm)} |")
    print(f"| warm unary turn, flat route | {ms(flat_turns)} |")
    print(f"| warm unary turn, published release (env lookup cached) | {ms(release_turns)} |")


if __name__ == "__main__":
    main()
