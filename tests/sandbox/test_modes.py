"""Choosing no sandbox is said out loud, and refused in production unless explicitly allowed.
No harness process runs here: these servers never take a turn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from karta.testing import ScriptedModel
from tests.conftest import SUPPORT_BOT, Database, KartaServer, _server_env


def test_without_a_sandbox_the_banner_and_readiness_say_so(tmp_path: Path):
    with ScriptedModel() as model:
        server = KartaServer(
            SUPPORT_BOT, tmp_path / "home", model, Database("sqlite"), env={"KARTA_SANDBOX": "none"}
        ).start()
        try:
            ready = httpx.get(f"{server.url}/readyz").json()
        finally:
            server.stop()
    assert ready["sandbox"].startswith("none: NOT ISOLATED")
    assert "sandbox: none: NOT ISOLATED" in server.log.read_text()


def test_production_refuses_to_start_without_a_sandbox(tmp_path: Path):
    with ScriptedModel() as model:
        env = _server_env(model, "anthropic")
    env.update({"KARTA_HOME": str(tmp_path), "KARTA_SANDBOX": "none", "KARTA_ENV": "production"})
    done = subprocess.run(
        [sys.executable, "-m", "karta.cli", "serve", str(SUPPORT_BOT), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to run harnesses without a sandbox" in done.stdout + done.stderr
