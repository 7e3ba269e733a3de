"""Replicas for tests and benchmarks: one `karta controlplane`, N `karta dataplane` processes on
one PostgreSQL database, one Redis (a key prefix of their own) and one shared KARTA_HOME, and a
round-robin HTTP proxy in front of them (no stickiness: each request goes to the next replica)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from karta.testing import ScriptedModel
from tests.conftest import SUPPORT_BOT, Database, _server_env, free_port, wait_ready

REDIS_URL = os.environ.get("KARTA_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    """The test Redis, or skip the test saying why (CI and this machine run one)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


def drop_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


class RoundRobinProxy:
    """A load balancer for tests: asyncio, one request per connection, each to the next
    backend, bodies and responses streamed through as they come (SSE included)."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        # Until none is left: a connection accepted just before the close has its task made
        # after a first look, and a task still pending when the loop closes is reported.
        while tasks := [t for t in asyncio.all_tasks() if t is not current]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            kept = [line for line in lines[1:] if line and not _named(line, "connection")]
            length = next((int(v) for v in _values(kept, "content-length")), 0)
            body = await reader.readexactly(length)
            upstream = await self._connect()
            if upstream is None:  # every backend is down
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                return
            up_reader, up_writer = upstream
            request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""])
            up_writer.write(request.encode("latin-1") + body)
            await up_writer.drain()
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # The proxy is stopping. A connection's task must not end cancelled: Python 3.11's
            # `start_server` then logs the cancellation as an error in its callback.
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next backend that accepts a connection (a dead one is skipped, as a load
        balancer's health check would)."""
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
        return None


def _named(line: str, name: str) -> bool:
    return line.split(":", 1)[0].strip().lower() == name


def _values(lines: list[str], name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in lines if _named(line, name)]


class Replicas:
    """One control plane and `count` data-plane replicas sharing a database, a Redis prefix
    and a home; restartable and killable one by one."""

    def __init__(
        self,
        home: Path,
        model: ScriptedModel,
        db: Database,
        redis_url: str,
        count: int = 3,
        lease_ttl: float = 3.0,
        env: dict[str, str] | None = None,
    ) -> None:
        assert db.kind == "postgres", "replicas share a PostgreSQL database"
        self.home = home
        self.model = model
        self.db = db
        self.redis_url = redis_url
        self.prefix = f"karta-test-{secrets.token_hex(4)}:"
        self.lease_ttl = lease_ttl
        self.extra_env = env or {}
        self.ports = [free_port() for _ in range(count)]
        self.control_port = free_port()
        self.shared = {
            "KARTA_SERVICE_TOKENS": secrets.token_urlsafe(24),
            "KARTA_SESSION_TOKEN_SECRET": secrets.token_urlsafe(32),
        }
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.control: subprocess.Popen[bytes] | None = None
        self.proxy = RoundRobinProxy(self.ports)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], url: str
    ) -> subprocess.Popen[bytes]:
        log = self.home / f"{name}.log"
        env = {**_server_env(self.model, "anthropic"), **self.shared, **env}
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "karta.cli", *command, "--log-level", "info"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_ready(proc, url, log)
        return proc

    def start(self) -> Replicas:
        (self.home / "control").mkdir(parents=True, exist_ok=True)
        env = {
            "KARTA_HOME": str(self.home / "control"),
            "KARTA_DATA_PLANE_URLS": ",".join(self.url(i) for i in range(len(self.ports))),
        }
        if self.db.control_url:
            env["KARTA_CONTROL_DATABASE_URL"] = self.db.control_url
        command = ["controlplane", "--port", str(self.control_port)]
        self.control = self._spawn("control", command, env, self.control_url)
        for index in range(len(self.ports)):
            self.start_replica(index)
        self.proxy.start()
        return self

    def start_replica(self, index: int) -> None:
        assert self.db.url is not None
        env = {
            "KARTA_HOME": str(self.home / "shared"),  # the volume every replica mounts
            "KARTA_DATABASE_URL": self.db.url,
            "KARTA_REDIS_URL": self.redis_url,
            "KARTA_REDIS_PREFIX": self.prefix,
            "KARTA_REPLICA_ID": f"replica-{index + 1}",
            "KARTA_REPLICA_URL": self.url(index),
            "KARTA_LEASE_TTL": str(self.lease_ttl),
            "KARTA_CONTROL_PLANE_URL": self.control_url,
            "KARTA_HARNESS_MAX_RETRIES": "0",
            **self.extra_env,
        }
        command = ["dataplane", str(SUPPORT_BOT), "--port", str(self.ports[index])]
        self.procs[index] = self._spawn(f"replica-{index + 1}", command, env, self.url(index))

    def kill(self, index: int) -> None:
        """SIGKILL a replica and every harness process it started."""
        proc = self.procs[index]
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        self.procs[index] = None

    def stop(self) -> None:
        self.proxy.stop()
        for proc in [*self.procs, self.control]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        drop_prefix(self.redis_url, self.prefix)

    def signup(self, name: str) -> str:
        """A new organization's admin API key."""
        with httpx.Client(base_url=self.control_url) as control:
            response = control.post(
                "/v1/signup",
                json={
                    "email": f"{name}@example.com",
                    "password": "correct horse",
                    "org_name": name,
                },
            )
            assert response.status_code == 201, response.text
            return str(response.json()["secret"])
