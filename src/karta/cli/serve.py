"""`karta serve`, `karta dataplane`, `karta controlplane`: run the planes, with a start-up
banner that says how to talk to them.

`karta serve` runs both planes in one process — two uvicorn servers on one event loop, the
control plane started first — still talking to each other over HTTP on loopback. Before
anything starts it locks its SQLite databases (`serve_lock`: a second server on the same state
is refused) and binds both ports (a port in use is a one-line error); only once both planes
listen does it save its URL and key to credentials.json. The separate commands take their
configuration from the environment (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn
import uvloop
from fastapi import FastAPI
from rich.console import Console

from karta import __version__
from karta.app import HarnessApp, load_app
from karta.cli import serve_lock
from karta.cli.serve_state import plane_secrets
from karta.core.credentials_file import CREDENTIALS_FILE, record_server
from karta.core.errors import AppConfigError
from karta.core.http_keepalive import SERVER_KEEPALIVE
from karta.core.http_limits import Limits
from karta.dataplane.harness.base import Harness
from karta.dataplane.modelenv import ModelEndpoint, resolve_model_endpoint
from karta.dataplane.settings import ConfigError, Settings

console = Console(highlight=False, soft_wrap=True)


class PortInUse(Exception):
    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(
            f"cannot listen on {host}:{port}: {error.strerror or error} "
            "(another server on that port? choose another with --port / --control-port)"
        )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound before anything else starts (PortInUse when it
    cannot be)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortInUse(host, port, exc) from exc
    return sock


class PlaneServer(uvicorn.Server):
    """A uvicorn server on a socket bound in advance that says when it is up, and leaves
    signals to `run_planes`, which stops the planes in order."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.up.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def plane_server(api: FastAPI, host: str, port: int, log_level: str) -> PlaneServer:
    # Under h11 (when httptools is missing) a request head over 16 KiB would get h11's plain
    # 400 before the planes' header limit could answer 431; leave it room for the request line.
    head = Limits.from_env().max_header_bytes + (16 << 10)
    return PlaneServer(
        uvicorn.Config(
            api,
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=SERVER_KEEPALIVE,
            h11_max_incomplete_event_size=head,
        ),
        listen(host, port),
    )


async def run_planes(servers: list[PlaneServer], on_ready: Callable[[], None]) -> int:
    """Start the servers one after the other (each ready before the next starts), run until
    SIGINT/SIGTERM, then stop them in reverse order. Returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    status = 0
    try:
        for server in servers:
            task = asyncio.create_task(server.serve(sockets=[server.sock]))
            tasks.append(task)
            up = asyncio.create_task(server.up.wait())
            await asyncio.wait([up, task], return_when=asyncio.FIRST_COMPLETED)
            up.cancel()
            if not server.started:
                return 1
        on_ready()
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        status = 0 if stopped in done else 1
        return status
    finally:
        for server, task in reversed(list(zip(servers, tasks, strict=False))):
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
        for server in servers:
            server.sock.close()


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def banner(
    app: HarnessApp,
    url: str,
    control_url: str | None,
    model: ModelEndpoint,
    settings: Settings,
    sandbox: str,
    key: str | None = None,
) -> None:
    """`key`: the local admin key `karta serve` saved to credentials.json."""
    agents = ", ".join(
        f"{a['name']} (default)" if a["default"] else a["name"] for a in app.public_agents()
    )
    console.print(
        f"[bold]Karta {__version__}[/] serving [bold]{app.name}[/] "
        f"({app.harness}) at [bold cyan]{url}[/]"
    )
    if control_url is not None:
        console.print(f"  control: {control_url}")
    if settings.local_project is not None:
        console.print(
            f"  project: {settings.local_project} (this folder, until a release is activated)"
        )
    console.print(f"  agents:  {agents}")
    console.print(f"  model:   {model.description}")
    style = "" if sandbox.startswith("bwrap") else "bold red"
    console.print(f"  sandbox: [{style}]{sandbox}[/]" if style else f"  sandbox: {sandbox}")
    if model.builtin is not None:
        console.print(
            "  [yellow]No ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL is set: replies come "
            "from the built-in scripted model, not a real LLM.[/]"
        )
    auth = ""
    if settings.open_auth:
        console.print(
            "  [bold red]AUTH DISABLED (--open): anyone who can reach this port can "
            "run the agent. Use only on a trusted machine.[/]"
        )
    elif key:
        console.print(f"  API key: [bold]{key}[/] (saved to {settings.home / CREDENTIALS_FILE})")
        auth = f' -H "Authorization: Bearer {key}"'
    console.print("\nTalk to it:")
    console.print("  karta chat")
    console.print(
        f"  curl -s -X POST {url}/v1/sessions{auth} -H 'Content-Type: application/json' -d '{{}}'"
    )
    console.print(
        f"  curl -N -X POST {url}/v1/sessions/<id>/messages{auth} "
        '-H \'Content-Type: application/json\' -d \'{"text": "Hello", "stream": true}\''
    )
    console.print(f"  API reference: {url}/docs\n")


Build = Callable[[contextlib.ExitStack], tuple[list[PlaneServer], Callable[[], None]]]


def _model(stack: contextlib.ExitStack) -> ModelEndpoint:
    model = resolve_model_endpoint()
    stack.callback(model.close)
    return model


def _run(build: Build) -> None:
    """Build the planes (what they hold — locks, sockets, the model — is released through
    `stack` when the process ends) and run them; a configuration error exits 2, a port or a
    state folder already in use exits 1."""
    with contextlib.ExitStack() as stack:
        try:
            planes, on_ready = build(stack)
        except (AppConfigError, ConfigError) as exc:
            console.print(
                f"[red]error:[/] {exc.message if isinstance(exc, AppConfigError) else exc}"
            )
            raise SystemExit(2) from exc
        except (PortInUse, serve_lock.StateInUse) as exc:
            console.print(f"[red]error:[/] {exc}")
            raise SystemExit(1) from exc
        for plane in planes:
            stack.callback(plane.sock.close)
        # On uvloop, as uvicorn runs when it owns the loop: every socket, pipe and timer of
        # the planes (streams, the proxy, the harnesses' stdio) costs a fraction of asyncio's.
        status = uvloop.run(run_planes(planes, on_ready))
    if status:
        raise SystemExit(status)


@dataclass
class Embedded:
    """Both planes of `karta serve`, built and bound, not started yet."""

    app: HarnessApp
    settings: Settings
    url: str
    control_url: str
    control: FastAPI
    data: FastAPI
    planes: list[PlaneServer]

    def record(self) -> str:
        """Save this server's URLs and key to credentials.json (once it listens); the key."""
        key = str(self.control.state.local_key)
        record_server(self.settings.home, self.url, self.control_url, key)
        return key


def embedded(
    directory: Path,
    stack: contextlib.ExitStack,
    *,
    host: str,
    port: int,
    control_port: int | None,
    open_auth: bool,
    log_level: str,
    model_env: dict[str, str],
    harnesses: Callable[[str], Harness] | None = None,
) -> Embedded:
    """`karta serve`'s planes: its SQLite databases locked (in `stack`), the folder loaded as
    the local organization's project, both ports bound. `harnesses` replaces the real harness
    adapters (tests serve a `karta.testing.FakeHarness`)."""
    from karta.controlplane.app import create_control_app
    from karta.controlplane.bootstrap import LOCAL_ORG, LocalBootstrap
    from karta.controlplane.settings import ControlSettings
    from karta.core.slugs import slugify
    from karta.dataplane.app import create_app

    control_port = control_port or port + 1
    url = f"http://{_loopback(host)}:{port}"
    control_url = f"http://{_loopback(host)}:{control_port}"
    settings = Settings.from_env(open_auth=open_auth, control_plane_url=control_url)
    control_settings = ControlSettings.from_env(data_plane_urls=(url,))
    stack.enter_context(
        serve_lock.hold([settings.db_url, control_settings.db_url], f"karta serve at {url}")
    )
    shared = plane_secrets(settings.home)
    app = load_app(directory)
    # The folder is a project of the local organization whose working copy is its
    # active release until one is published and activated.
    project = slugify(app.name) or "app"
    settings = replace(
        settings,
        internal=shared.internal,
        session_token_secret=shared.session_token_secret,
        local_project=project,
        local_organization=LOCAL_ORG,
    )
    control = create_control_app(
        replace(
            control_settings,
            internal=shared.internal,
            session_token_secret=shared.session_token_secret,
            local=LocalBootstrap(project, url, control_url),
        )
    )
    data = create_app(app, settings, model_env, harnesses=harnesses)
    planes = [plane_server(control, host, control_port, log_level)]
    stack.callback(planes[0].sock.close)  # if the data plane's port is taken
    planes.append(plane_server(data, host, port, log_level))
    return Embedded(app, settings, url, control_url, control, data, planes)


def run_server(
    directory: Path,
    *,
    host: str,
    port: int,
    control_port: int | None,
    open_auth: bool,
    log_level: str,
) -> None:
    """`karta serve`: both planes, one process."""

    def build(stack: contextlib.ExitStack) -> tuple[list[PlaneServer], Callable[[], None]]:
        model = _model(stack)
        served = embedded(
            directory,
            stack,
            host=host,
            port=port,
            control_port=control_port,
            open_auth=open_auth,
            log_level=log_level,
            model_env=model.env,
        )

        def ready() -> None:
            key = served.record()
            sandbox = served.data.state.runtime.sandbox
            banner(served.app, served.url, served.control_url, model, served.settings, sandbox, key)

        return served.planes, ready

    _run(build)


def run_dataplane(directory: Path, *, host: str, port: int, log_level: str) -> None:
    """`karta dataplane`: the data plane alone, pointed at KARTA_CONTROL_PLANE_URL."""
    from karta.dataplane.app import create_app

    url = f"http://{_loopback(host)}:{port}"

    def build(stack: contextlib.ExitStack) -> tuple[list[PlaneServer], Callable[[], None]]:
        settings = Settings.from_env()
        stack.enter_context(serve_lock.hold([settings.db_url], f"karta dataplane at {url}"))
        model = _model(stack)
        app = load_app(directory)
        data = create_app(app, settings, model.env)
        return [plane_server(data, host, port, log_level)], lambda: banner(
            app, url, None, model, settings, data.state.runtime.sandbox
        )

    _run(build)


def run_controlplane(*, host: str, port: int, log_level: str) -> None:
    """`karta controlplane`: the control plane alone, configured by the environment."""
    from karta.controlplane.app import create_control_app
    from karta.controlplane.settings import ControlSettings

    url = f"http://{_loopback(host)}:{port}"

    def build(stack: contextlib.ExitStack) -> tuple[list[PlaneServer], Callable[[], None]]:
        settings = ControlSettings.from_env()
        stack.enter_context(serve_lock.hold([settings.db_url], f"karta controlplane at {url}"))
        api = create_control_app(settings)

        def ready() -> None:
            console.print(f"[bold]Karta {__version__}[/] control plane at [bold cyan]{url}[/]")

        return [plane_server(api, host, port, log_level)], ready

    _run(build)
