"""Shared fixtures: a real `karta serve` process (data plane and control plane) on free ports,
backed by SQLite or PostgreSQL, with the real Claude Code binary behind it and the scripted
model in front of the harness."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.core.credentials_file import read_credentials, server_entry
from karta.core.events import Event
from karta.core.providers import ProviderURLs
from karta.core.sse import iter_events
from karta.testing import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent
SUPPORT_BOT = ROOT / "examples" / "support-bot"
PG_ADMIN_DSN = os.environ.get("KARTA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Where servers under test look for model providers unless a test starts fakes
# (`karta.testing.fake_providers`): a closed loopback port, so no test ever calls out.
NO_PROVIDERS = ProviderURLs(**{f.name: "http://127.0.0.1:9" for f in fields(ProviderURLs)})
NO_PROVIDERS_ENV = {
    f"KARTA_PROVIDER_{f.name.upper()}_URL": "http://127.0.0.1:9" for f in fields(ProviderURLs)
}


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port for a test server, below the kernel's ephemeral range: a port in
    that range may be given to any outgoing connection (to PostgreSQL, Redis, the model)
    between this choice and the server's bind, and the server would exit "address in use"."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10_000, low) if low > 11_000 else 0
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def _pg(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own, so this works from async fixtures (inside a running loop) too.
    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


class Database:
    """Throwaway databases: SQLite files in the server's home, or fresh PostgreSQL databases
    (one for the data plane, and on demand one for the control plane: planes never share)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._names: list[str] = []
        self.url = self._create() if kind == "postgres" else None
        self._control_url: str | None = None

    def _create(self) -> str:
        name = f"karta_test_{secrets.token_hex(6)}"
        _pg(f'CREATE DATABASE "{name}"')
        self._names.append(name)
        return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"

    @property
    def control_url(self) -> str | None:
        if self.kind == "postgres" and self._control_url is None:
            self._control_url = self._create()
        return self._control_url

    def drop(self) -> None:
        for name in self._names:
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server_env(model: ScriptedModel, wire: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KARTA_", "ANTHROPIC_", "OPENAI_"))
    }
    env.update(NO_PROVIDERS_ENV)
    if wire == "openai":
        env.update({"OPENAI_BASE_URL": f"{model.url}/v1", "OPENAI_API_KEY": "test-key"})
    else:
        env.update({"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "test-key"})
    return env


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, log: Path, home: Path | None = None
) -> None:
    """Until `url` is ready (and, with `home`, `karta serve` has saved its credentials there,
    which it does once both planes listen)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited:\n{log.read_text()[-3000:]}")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            ready = False
        if ready and (home is None or server_entry(read_credentials(home), url)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready:\n{log.read_text()[-3000:]}")


class KartaServer:
    """`karta serve` (both planes, one process) in a subprocess; restartable on the same home
    and databases."""

    def __init__(
        self,
        app_dir: Path,
        home: Path,
        model: ScriptedModel,
        db: Database,
        env: dict[str, str] | None = None,
        wire: str = "anthropic",
    ) -> None:
        self.app_dir = app_dir
        self.home = home
        self.model = model
        self.db = db
        self.extra_env = env or {}
        self.wire = wire  # which API the harness uses to reach the scripted model
        self.port = free_port()
        self.control_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def wait_pool(self, size: int, timeout: float = 60) -> bool:
        """Wait until `size` pre-started harnesses are ready; whether they were in time."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/readyz").json()["harnesses"]["pooled"] < size:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def start(self) -> KartaServer:
        env = _server_env(self.model, self.wire)
        env.update(
            {
                "KARTA_HOME": str(self.home),
                "KARTA_HARNESS_MAX_RETRIES": "0",
                # No pre-started harnesses unless a test asks for them: they would cost every
                # test server CPU and show up as processes no session owns.
                "KARTA_POOL_MAX": "0",
                **({"KARTA_DATABASE_URL": self.db.url} if self.db.url else {}),
                **(
                    {"KARTA_CONTROL_DATABASE_URL": self.db.control_url}
                    if self.db.control_url
                    else {}
                ),
                **self.extra_env,
            }
        )
        self.home.mkdir(parents=True, exist_ok=True)
        command = ["serve", str(self.app_dir), "--port", str(self.port)]
        command += ["--control-port", str(self.control_port), "--log-level", "info"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "karta.cli", *command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_ready(self.proc, self.url, self.log, self.home)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """A crash: SIGKILL the server and every harness process it started."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self, *, crash: bool = False) -> None:
        self.kill() if crash else self.stop()
        self.start()

    @property
    def credentials(self) -> dict[str, Any]:
        import json

        return dict(json.loads((self.home / "credentials.json").read_text()))

    @property
    def api_key(self) -> str:
        return str(server_entry(self.credentials, self.url)["api_key"])

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def control(self, key: str | None = None) -> httpx.Client:
        """A client of the control plane's management API."""
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.control_url, headers=headers, timeout=30)

    def workspace(self, session_id: str) -> Path:
        return self.home / "sessions" / session_id / "workspace"


def stream_events(client: httpx.Client, method: str, path: str, **kw: Any) -> list[Event]:
    with client.stream(method, path, **kw) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(iter_events(response.iter_lines()))


def texts(events: list[Event]) -> str:
    return "".join(e.part.get("text", "") for e in events if e.type == "text")


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture(autouse=True)
def _fresh_script(request: pytest.FixtureRequest) -> None:
    if "model" in request.fixturenames:
        request.getfixturevalue("model").reset()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    db = Database(request.param)
    yield db
    db.drop()


@pytest.fixture(scope="module")
def server(
    model: ScriptedModel, database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KartaServer]:
    srv = KartaServer(SUPPORT_BOT, tmp_path_factory.mktemp("karta-home"), model, database).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: KartaServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A private copy of the example app, for tests that change it."""
    target = tmp_path / "support-bot"
    shutil.copytree(SUPPORT_BOT, target)
    return target
