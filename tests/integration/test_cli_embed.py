"""`karta embed-keys` and `karta open` against a real `karta serve`: a key created with its
origins and theme (identity secret printed once), listed, changed, rotated and revoked; and
`karta open` giving the served project a hosted-page key and printing its page, which serves."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from karta.cli.main import app as cli
from karta.testing import ScriptedModel
from tests.conftest import SUPPORT_BOT, Database, KartaServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KartaServer]:
    db = Database("sqlite")
    with ScriptedModel() as model:
        server = KartaServer(SUPPORT_BOT, tmp_path_factory.mktemp("home"), model, db).start()
        yield server
        server.stop()
    db.drop()


def karta(server: KartaServer, *args: str) -> str:
    env = {"KARTA_HOME": str(server.home), "COLUMNS": "200", "KARTA_API_KEY": ""}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_embed_keys_from_the_terminal(served):
    out = karta(
        served,
        "embed-keys", "create", "support-bot", "shop",
        "--origin", "https://shop.example", "--origin", "http://localhost:3000",
        "--theme", "accent=#0f766e", "--anonymous-cap-cents", "250", "--period", "day",
    )  # fmt: skip
    assert "https://shop.example, http://localhost:3000" in out
    assert "accent=#0f766e" in out and "$2.50 per day" in out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_id_")

    listed = karta(served, "embed-keys", "list", "support-bot")
    assert "shop" in listed and "pk_live_" in listed and secret not in listed
    key_id = listed.split("pk_live_")[0].split("│")[-3].strip()

    changed = karta(served, "embed-keys", "update", "support-bot", key_id, "--disable")
    assert "enabled:    no" in changed
    rotated = karta(served, "embed-keys", "rotate", "support-bot", key_id)
    assert rotated.strip().splitlines()[-1] not in (secret, "")
    assert "Revoked embed key" in karta(served, "embed-keys", "revoke", "support-bot", key_id)
    bad = CliRunner().invoke(
        cli,
        ["embed-keys", "create", "support-bot", "x", "--origin", "https://*.example"],
        env={"KARTA_HOME": str(served.home), "KARTA_API_KEY": ""},
    )
    assert bad.exit_code == 2 and "wildcards are not allowed" in bad.output


def test_karta_open_gives_the_project_a_hosted_page(served):
    out = karta(served, "open", "--no-browser")

    url = out.strip().splitlines()[-1]
    assert url == f"{served.url}/local/support-bot"
    page = httpx.get(url)
    assert page.status_code == 200 and "<karta-chat" in page.text
    again = karta(served, "open", "support-bot", "--no-browser")
    assert "Gave" not in again  # the key from the first run serves it
