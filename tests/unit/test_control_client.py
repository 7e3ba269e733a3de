"""Where `ControlClient` finds its URL, credential and organization: arguments, then the
environment, then credentials.json (a login token before an API key), then the defaults."""

from __future__ import annotations

import io

import httpx
import pytest

from karta.client.control import DEFAULT_CONTROL_URL, ControlClient
from karta.core.credentials_file import write_credentials


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KARTA_HOME", str(tmp_path))
    monkeypatch.delenv("KARTA_CONTROL_URL", raising=False)
    monkeypatch.delenv("KARTA_API_KEY", raising=False)
    return tmp_path


def resolved(client: ControlClient) -> tuple[str, str | None, str | None]:
    headers = client._http.headers
    return client.base_url, headers.get("authorization"), headers.get("karta-org")


def test_defaults_with_nothing_saved(home):
    assert resolved(ControlClient()) == (DEFAULT_CONTROL_URL, None, None)


def test_credentials_json_prefers_the_login_token(home):
    stored = {"control_url": "http://cp:9/", "api_key": "kt_live_x", "org": "acme"}
    write_credentials(home, stored)
    assert resolved(ControlClient()) == ("http://cp:9", "Bearer kt_live_x", "acme")
    write_credentials(home, {**stored, "user_token": "ktu_y"})
    assert resolved(ControlClient()) == ("http://cp:9", "Bearer ktu_y", "acme")


def test_the_environment_beats_the_file_and_arguments_beat_both(home, monkeypatch):
    write_credentials(home, {"control_url": "http://file", "user_token": "ktu_file"})
    monkeypatch.setenv("KARTA_CONTROL_URL", "http://env")
    monkeypatch.setenv("KARTA_API_KEY", "kt_live_env")
    assert resolved(ControlClient()) == ("http://env", "Bearer kt_live_env", None)
    explicit = ControlClient("http://arg", "kt_live_arg", org="other")
    assert resolved(explicit) == ("http://arg", "Bearer kt_live_arg", "other")


class Recorder(httpx.BaseTransport):
    """Answers publishes like the control plane and keeps the requests with the chunks their
    bodies arrived in (read from the request stream as a network transport would)."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []
        self.chunks: list[list[bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        self.chunks.append(list(request.stream))
        self.requests.append(request)
        body = {"name": "v1", "active": True, "created": self.status == 201}
        return httpx.Response(self.status, json=body)


def recording(home, status: int = 201) -> tuple[ControlClient, Recorder]:
    client = ControlClient("http://cp", "kt_live_x")
    recorder = Recorder(status)
    client._http = httpx.Client(
        base_url="http://cp", headers=client._http.headers, transport=recorder
    )
    return client, recorder


def test_publish_streams_bytes_in_chunks_with_a_length(home):
    client, recorder = recording(home)
    data = bytes(range(256)) * 600  # 153,600 bytes: three chunks
    answer = client.publish("web", data, activate=False)
    assert answer == {"name": "v1", "active": True, "created": True}
    [request] = recorder.requests
    assert request.url.path == "/v1/projects/web/releases"
    assert request.url.params["activate"] == "false"
    assert request.headers["content-type"] == "application/gzip"
    assert request.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in request.headers
    assert [len(c) for c in recorder.chunks[0]] == [65536, 65536, 22528]
    assert b"".join(recorder.chunks[0]) == data


def test_publish_streams_a_file_from_where_it_stands(home, tmp_path):
    client, recorder = recording(home, status=200)
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"head" + b"x" * 70_000)
    with path.open("rb") as archive:
        archive.seek(4)
        answer = client.publish("web", archive)
    assert answer["created"] is False
    [request] = recorder.requests
    assert request.url.params["activate"] == "true"
    assert request.headers["content-length"] == "70000"
    assert b"".join(recorder.chunks[0]) == b"x" * 70_000


def test_publish_of_a_pipe_is_chunked(home):
    client, recorder = recording(home)

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.left = [b"a" * 10, b"b" * 5]

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self.left.pop(0) if self.left else b""

        def seekable(self) -> bool:
            return False

        def tell(self) -> int:
            raise OSError("not seekable")

    client.publish("web", Pipe())
    [request] = recorder.requests
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    assert recorder.chunks[0] == [b"a" * 10, b"b" * 5]
