"""An ASGI app served on a loopback port from a thread of its own: how the scripted model and
the fake providers run beside a test (or a server) that uses them over real HTTP."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from karta.core.http_keepalive import SERVER_KEEPALIVE


class LoopbackServer:
    """Serves `app` on `host:port` (0: any free port) until `stop`."""

    def __init__(self, app: Any, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        # Like a provider's, or Karta's own: connections outlive the proxy's idle pool.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_keep_alive=SERVER_KEEPALIVE
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{name} failed to start")
            threading.Event().wait(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
