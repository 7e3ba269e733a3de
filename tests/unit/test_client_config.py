"""Where the SDK finds its URLs, credentials and organization — arguments, then the
environment, then credentials.json (this server's own entry, then the default one; on the
control plane a login token before an API key), then the defaults — and how it uploads a
release archive."""

from __future__ import annotations

import io

import httpx
import pytest

from karta.client import Karta
from karta.client.config import DEFAULT_BASE_URL, DEFAULT_CONTROL_URL, ClientConfig
from karta.core.credentials_file import read_credentials, record_server, write_credentials


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KARTA_HOME", str(tmp_path))
    for name in ("KARTA_CONTROL_URL", "KARTA_BASE_URL", "KARTA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def control(config: ClientConfig) -> tuple[str, str | None, str | None]:
    return config.control_url, config.control_key, config.org


def test_defaults_with_nothing_saved(home):
    config = ClientConfig.resolve()
    assert (config.base_url, config.api_key) == (DEFAULT_BASE_URL, None)
    assert control(config) == (DEFAULT_CONTROL_URL, None, None)


def test_credentials_json_prefers_the_login_token_on_the_control_plane(home):
    stored = {"control_url": "http://cp:9/", "api_key": "kt_live_x", "org": "acme"}
    write_credentials(home, stored)
    assert control(ClientConfig.resolve()) == ("http://cp:9", "kt_live_x", "acme")
    write_credentials(home, {**stored, "user_token": "ktu_y"})
    config = ClientConfig.resolve()
    assert control(config) == ("http://cp:9", "ktu_y", "acme")
    assert config.api_key == "kt_live_x"  # the data plane takes keys, not login tokens


def test_each_served_url_keeps_its_own_key(home):
    record_server(home, "http://127.0.0.1:8000", "http://127.0.0.1:8001", "kt_live_a")
    record_server(home, "http://127.0.0.1:9000", "http://127.0.0.1:9001", "kt_live_b")
    stored = read_credentials(home)
    assert stored["url"] == "http://127.0.0.1:9000" and stored["api_key"] == "kt_live_b"
    assert set(stored["servers"]) == {"http://127.0.0.1:8000", "http://127.0.0.1:9000"}
    first = ClientConfig.resolve(base_url="http://127.0.0.1:8000/")
    assert (first.api_key, first.control_url) == ("kt_live_a", "http://127.0.0.1:8001")
    latest = ClientConfig.resolve()
    assert (latest.base_url, latest.api_key) == ("http://127.0.0.1:9000", "kt_live_b")
    record_server(home, "http://127.0.0.1:8000", "http://127.0.0.1:8001", "kt_live_c")
    assert len(read_credentials(home)["servers"]) == 2  # one entry per URL, rewritten


def test_the_environment_beats_the_file_and_arguments_beat_both(home, monkeypatch):
    write_credentials(home, {"control_url": "http://file", "user_token": "ktu_file"})
    monkeypatch.setenv("KARTA_CONTROL_URL", "http://env")
    monkeypatch.setenv("KARTA_BASE_URL", "http://dp-env")
    monkeypatch.setenv("KARTA_API_KEY", "kt_live_env")
    config = ClientConfig.resolve()
    assert control(config) == ("http://env", "kt_live_env", None)
    assert (config.base_url, config.api_key) == ("http://dp-env", "kt_live_env")
    explicit = ClientConfig.resolve(
        api_key="kt_live_arg", base_url="http://arg", control_url="http://carg", org="other"
    )
    assert control(explicit) == ("http://carg", "kt_live_arg", "other")
    assert explicit.base_url == "http://arg"


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
        body = {
            "id": 1,
            "object": "release",
            "project": "web",
            "version": 1,
            "name": "v1",
            "digest": "sha256:00",
            "size": 1,
            "status": "ready",
            "active": True,
            "created_at": "2026-01-01T00:00:00+00:00",
            "created": self.status == 201,
        }
        return httpx.Response(self.status, json=body)


def recording(home, status: int = 201) -> tuple[Karta, Recorder]:
    recorder = Recorder(status)
    client = Karta(
        api_key="kt_live_x", control_url="http://cp", http_client=httpx.Client(transport=recorder)
    )
    return client, recorder


def test_publish_streams_bytes_in_chunks_with_a_length(home):
    client, recorder = recording(home)
    data = bytes(range(256)) * 600  # 153,600 bytes: three chunks
    answer = client.projects("web").releases.publish(data, activate=False)
    assert (answer.name, answer.active, answer.created) == ("v1", True, True)
    [request] = recorder.requests
    assert request.headers["authorization"] == "Bearer kt_live_x"
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
        answer = client.projects("acme/web").releases.publish(archive)
    assert answer.created is False
    [request] = recorder.requests
    assert request.url.params["activate"] == "true"
    assert request.url.path == "/v1/projects/web/releases"
    assert request.headers["karta-org"] == "acme"
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

    client.projects("web").releases.publish(Pipe())
    [request] = recorder.requests
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    assert recorder.chunks[0] == [b"a" * 10, b"b" * 5]
