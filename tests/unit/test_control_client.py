"""Where `ControlClient` finds its URL, credential and organization: arguments, then the
environment, then credentials.json (a login token before an API key), then the defaults."""

from __future__ import annotations

import pytest

from karta.client.control import DEFAULT_CONTROL_URL, ControlClient
from karta.credentials_file import write_credentials


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
