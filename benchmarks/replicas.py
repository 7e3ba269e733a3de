"""Replicas: SSE fan-out and turn throughput of data-plane replicas on PostgreSQL and Redis.

1. Fan-out: `--subscribers` SSE subscribers follow one session, spread evenly over the
   replicas (connected to them directly), while turns stream `--chunks` text events each. A
   subscriber's delivery latency for an event is the time from the event's creation on the
   owner (its `timestamp`) to the subscriber reading its frame; reported as p50/p99 for the
   subscribers on the owner and on the other replicas. Every frame is delivered 1,000 times:
   `--chunk-delay` paces the events so that the machine is not simply out of CPU.
   `--per-event` adds a line per event: its type, how long after the one before it was made,
   and when the first, the median and the last subscriber on each replica read it.
2. Throughput: `--sessions` sessions run `--turns` warm turns each, concurrently, through a
   round-robin proxy in front of 3 replicas, then of 1 (same machine, same database and Redis).

    .venv/bin/python -m benchmarks.replicas --subscribers 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from karta.testing import Reply, ScriptedModel
from tests.cluster import Replicas, redis_or_skip
from tests.conftest import Database


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


FRAME_ID = re.compile(rb"(?:^|\n)id: (\d+)\n")


async def subscriber(
    port: int, key: str, sid: str, arrivals: dict[int, float], ready: asyncio.Event
) -> str:
    """A minimal SSE client (raw HTTP/1.1), timing when each frame's `id:` line arrives. It
    scans what each read brings for whole `id:` lines rather than parsing line by line: the
    thousand clients share the servers' two cores, and what they spend is not the servers'.
    Returns the answer's status line, and whether the server closed the stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /v1/sessions/{sid}/events?follow=true HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    ready.set()
    pending = b""  # the last, unfinished line of what came so far
    status, ended = "no answer", " (closed by the server)"
    try:
        while data := await reader.read(1 << 16):
            now = time.time() * 1000
            if status == "no answer":
                head, _, body = data.partition(b"\r\n\r\n")
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                if not status.endswith(" 200 OK"):
                    status += " " + body[:200].decode(errors="replace")
            pending += data
            whole = pending.rfind(b"\n") + 1
            for match in FRAME_ID.finditer(pending, 0, whole):
                arrivals[int(match[1])] = now
            pending = pending[whole:]
    except (OSError, asyncio.CancelledError) as exc:
        ended = "" if isinstance(exc, asyncio.CancelledError) else f" ({type(exc).__name__})"
    finally:
        writer.close()
    return status + ended


async def fan_out(
    cluster: Replicas,
    model: ScriptedModel,
    subscribers: int,
    chunks: int,
    delay: float,
    per_event: bool = False,
) -> None:
    key = cluster.signup("fanout")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=cluster.url(0), headers=headers, timeout=120) as owner:
        sid = (await owner.post("/v1/sessions", json={})).json()["id"]
        model.enqueue_text("warm up")
        await owner.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"})  # replica 1 owns it
        arrivals: list[dict[int, float]] = [{} for _ in range(subscribers)]
        readies = [asyncio.Event() for _ in range(subscribers)]
        ports = [cluster.ports[i % len(cluster.ports)] for i in range(subscribers)]
        tasks = [
            asyncio.create_task(subscriber(ports[i], key, sid, arrivals[i], readies[i]))
            for i in range(subscribers)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        await asyncio.sleep(3)  # every subscriber has replayed the warm-up turn
        start = (await owner.get(f"/v1/sessions/{sid}")).json()["last_event_seq"]
        for turn in range(3):
            model.enqueue(Reply([{"type": "text", "text": "x" * 24 * chunks}], chunk_delay=delay))
            await owner.post(f"/v1/sessions/{sid}/messages", json={"text": f"go {turn}"})
        end = (await owner.get(f"/v1/sessions/{sid}")).json()["last_event_seq"]
        replay = (await owner.get(f"/v1/sessions/{sid}/events", params={"after": start})).text
        replayed = [json.loads(line[6:]) for line in replay.splitlines() if line[:6] == "data: "]
        created = {int(event["seq"]): float(event["timestamp"]) for event in replayed}
        types = {int(event["seq"]): str(event["type"]) for event in replayed}
        for _ in range(150):  # up to 30 s for the last frame to reach everyone
            if all(end in a for a in arrivals):
                break
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        statuses = [str(s) for s in await asyncio.gather(*tasks, return_exceptions=True)]
    groups: dict[str, list[float]] = {"owner": [], "other replicas": []}
    missing = 0
    for port, seen in zip(ports, arrivals, strict=True):
        group = "owner" if port == cluster.ports[0] else "other replicas"
        for seq, made in created.items():
            if seq in seen:
                groups[group].append(seen[seq] - made)
            else:
                missing += 1
    print(f"\n{subscribers} subscribers, {len(created)} events each, {missing} frames missing")
    if missing:  # which replica, and what its streams got at all (the replay included)
        print("| replica | subscribers | first line of the answer | frames | missing |")
        print("|---|---|---|---|---|")
        for n, port in enumerate(cluster.ports, 1):
            streams = zip(ports, arrivals, statuses, strict=True)
            mine = [(seen, status) for p, seen, status in streams if p == port]
            lines = ", ".join(sorted({status for _, status in mine}))
            got = sum(len(a) for a, _ in mine)
            lost = sum(1 for a, _ in mine for seq in created if seq not in a)
            print(f"| {n} | {len(mine)} | {lines} | {got} | {lost} |")
    if per_event:
        print_per_event(cluster.ports, ports, arrivals, created, types)
    print("| subscribers on | frames | p50 | p99 | max |\n|---|---|---|---|---|")
    for name, values in [*groups.items(), ("all", groups["owner"] + groups["other replicas"])]:
        print(
            f"| {name} | {len(values)} | {statistics.median(values):.0f} ms | "
            f"{percentile(values, 0.99):.0f} ms | {max(values):.0f} ms |"
        )


def print_per_event(
    replicas: list[int],
    ports: list[int],
    arrivals: list[dict[int, float]],
    created: dict[int, float],
    types: dict[int, str],
) -> None:
    """Per event: when the first, the median and the last subscriber on each replica read it
    (ms after it was made). Where the first subscriber is late, the event waited in the
    pipeline; the spread from first to last is what serving the replica's streams took."""
    heads = " | ".join(f"replica {n}: first / median / last" for n in range(1, len(replicas) + 1))
    print(f"| seq | type | made after the one before | {heads} |")
    print("|---|---|---|" + "---|" * len(replicas))
    for seq, made in sorted(created.items()):
        gap = made - created.get(seq - 1, made)
        cells = []
        for replica in replicas:
            got = sorted(
                a[seq] - made
                for p, a in zip(ports, arrivals, strict=True)
                if p == replica and seq in a
            )
            cells.append(
                f"{got[0]:.0f} / {got[len(got) // 2]:.0f} / {got[-1]:.0f} ms" if got else "-"
            )
        print(f"| {seq} | {types[seq]} | {gap:.0f} ms | " + " | ".join(cells) + " |")


async def throughput(url: str, key: str, sessions: int, turns: int) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        sids = [(await client.post("/v1/sessions", json={})).json()["id"] for _ in range(sessions)]
        await asyncio.gather(
            *(client.post(f"/v1/sessions/{s}/messages", json={"text": "warm"}) for s in sids)
        )

        async def run(sid: str) -> None:
            for n in range(turns):
                answer = await client.post(f"/v1/sessions/{sid}/messages", json={"text": f"{n}"})
                assert answer.json().get("status") == "completed", answer.text

        start = time.monotonic()
        await asyncio.gather(*(run(s) for s in sids))
        return sessions * turns / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=20, help="text events per turn")
    parser.add_argument("--chunk-delay", type=float, default=0.1, help="seconds between them")
    parser.add_argument("--per-event", action="store_true", help="a line per event, by replica")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    redis_url = redis_or_skip()
    with tempfile.TemporaryDirectory() as tmp, ScriptedModel() as model:
        rates = {}
        for count in (3, 1):
            database = Database("postgres")
            cluster = Replicas(Path(tmp) / str(count), model, database, redis_url, count=count)
            cluster.start()
            try:
                if count == 3 and args.subscribers:
                    uvloop.run(
                        fan_out(
                            cluster,
                            model,
                            args.subscribers,
                            args.chunks,
                            args.chunk_delay,
                            args.per_event,
                        )
                    )
                key = cluster.signup(f"throughput{count}")
                rates[count] = asyncio.run(
                    throughput(cluster.proxy.url, key, args.sessions, args.turns)
                )
            finally:
                cluster.stop()
                database.drop()
        print(f"\n{args.sessions} sessions x {args.turns} warm turns, concurrently:")
        print("| replicas | turns/s |\n|---|---|")
        for count, rate in rates.items():
            print(f"| {count} | {rate:.1f} |")


if __name__ == "__main__":
    main()
