"""A scripted HTTP server on loopback for what a real Karta will not do on demand: answer 429 or
503 a set number of times, answer too slowly, or stream event types no harness emits."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[dict[str, Any]] | None = None  # events, sent as a native SSE stream
    delay: float = 0.0  # seconds before answering (a slow server)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Stub:
    """Plays `answers` in order (the last one for every request after them) and records every
    request it gets."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                self.rfile.read(size)
                stub.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
                answer = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.sse is not None:
                    payload = "".join(
                        f"id: {e.get('seq')}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n"
                        for e in answer.sse
                    ).encode()
                    kind = "text/event-stream"
                else:
                    payload = json.dumps(answer.body).encode() if answer.body is not None else b""
                    kind = "application/json"
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # gave up
                    self.send_response(answer.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Stub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
