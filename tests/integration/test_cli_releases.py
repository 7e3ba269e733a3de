"""`karta publish`, `releases`, `activate`, `rollback` and `env` against a real `karta
controlplane` process: versions, content addressing, a failed release that never activates,
secrets that never show, and a `.env` that never leaves the folder.

The tests run in order and share one project, like a person working through a release."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from karta.client import Karta, UnprocessableEntityError
from karta.releases.archive import pack_bytes
from tests.integration.test_cli_control import Account, Plane, karta

# The control plane process and a signed-up account, as fixtures of this module (`x as x`
# re-exports them, so pytest finds them here).
from tests.integration.test_cli_control import account as account
from tests.integration.test_cli_control import plane as plane

EXAMPLE = Path(__file__).parents[2] / "examples" / "support-bot"
SLUG = "support-bot"
DOTENV_SECRET = "sk-dotenv-" + "q" * 24
SECRET = "sk-live-" + "s" * 30
PIPED_SECRET = "pipe-" + "p" * 30


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/support-bot holding a `.env` and a `.env.example`."""
    root = tmp_path_factory.mktemp("apps") / SLUG
    shutil.copytree(EXAMPLE, root)
    (root / ".env").write_text(f"ANTHROPIC_API_KEY={DOTENV_SECRET}\n")
    (root / ".env.example").write_text("ANTHROPIC_API_KEY=\n")
    return root


@pytest.fixture
def client(account: Account, plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Karta:
    monkeypatch.setenv("KARTA_HOME", str(account.home))
    return Karta(api_key=account.secret, control_url=plane.url)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert DOTENV_SECRET not in result.output and SECRET not in result.output
    return result.stdout


def internal(plane: Plane, path: str, org_id: int) -> httpx.Response:
    answer = httpx.get(
        f"{plane.url}/internal/{path}",
        params={"organization_id": org_id},
        headers={"Authorization": f"Bearer {plane.service_token}"},
    )
    assert answer.status_code == 200, answer.text
    return answer


def archive_names(plane: Plane, client: Karta, digest: str) -> list[str]:
    blob = internal(plane, f"artifacts/{digest.removeprefix('sha256:')}", client.orgs.current().id)
    with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:gz") as tar:
        names = tar.getnames()
        for member in tar.getmembers():
            content = tar.extractfile(member)
            assert content is None or DOTENV_SECRET.encode() not in content.read()
    return names


def active(client: Karta) -> list[str]:
    return [r.name for r in client.projects(SLUG).releases.list() if r.active]


def row(output: str, version: str) -> str:
    return next(line for line in output.splitlines() if f"│ {version} " in line)


def test_publish_creates_the_project_and_activates_v1(account, plane, client, app_dir):
    out = ok(karta(account.home, "publish", str(app_dir)))
    assert f"Created project {SLUG}." in out
    assert "Packed 5 files" in out and f"{SLUG} v1: ready, active" in out
    assert "harness: claude-code; agents: triage, billing" in out
    assert "Build log:" in out and "release is valid" in out
    [release] = [r.to_dict() for r in client.projects(SLUG).releases.list()]
    assert release["name"] == "v1" and release["active"]
    assert release["digest"] in out  # the digest the CLI packed is the one the server stored
    names = archive_names(plane, client, release["digest"])
    assert "CLAUDE.md" in names and ".claude/agents/triage.md" in names
    assert ".env" not in names and ".env.example" not in names


def test_the_same_content_again_is_recognised(account, client, app_dir):
    out = ok(karta(account.home, "publish", str(app_dir), "--project", SLUG))
    assert "Already published" in out and f"{SLUG} v1 (ready, active)" in out
    assert "Created project" not in out
    assert [r.name for r in client.projects(SLUG).releases.list()] == ["v1"]


def test_a_changed_folder_is_v2_and_activates(account, client, app_dir):
    (app_dir / "CLAUDE.md").write_text((app_dir / "CLAUDE.md").read_text() + "\nBe brief.\n")
    out = ok(karta(account.home, "publish", str(app_dir)))
    assert f"{SLUG} v2: ready, active" in out
    assert active(client) == ["v2"]
    listed = ok(karta(account.home, "releases", SLUG))
    assert f"Releases of {SLUG}" in listed
    assert "●" in row(listed, "v2") and "ready" in row(listed, "v2")
    assert "●" not in row(listed, "v1")
    assert "claude-code" in row(listed, "v1") and "triage, billing" in row(listed, "v1")
    assert listed.index("│ v2 ") < listed.index("│ v1 ")  # newest first
    shown = ok(karta(account.home, "releases", SLUG, "v1"))
    assert f"{SLUG} v1: ready, not active" in shown and "release is valid" in shown


def test_rollback_and_activate_flip_the_pointer(account, client):
    out = ok(karta(account.home, "rollback", SLUG))
    assert f"Rolled {SLUG} back: v1 is active." in out
    assert active(client) == ["v1"]
    assert "●" in row(ok(karta(account.home, "releases", SLUG)), "v1")
    assert ok(karta(account.home, "activate", SLUG, "v2")).strip() == f"{SLUG} v2 is active."
    assert active(client) == ["v2"]
    back = ok(karta(account.home, "rollback", SLUG, "--to", "1"))
    assert "v1 is active" in back and active(client) == ["v1"]
    ok(karta(account.home, "activate", SLUG, "2"))
    unknown = karta(account.home, "activate", SLUG, "v9")
    assert unknown.exit_code == 2 and "404 release_not_found" in unknown.stderr
    nowhere = karta(account.home, "rollback", SLUG, "--to", "v9")
    assert nowhere.exit_code == 2 and "404 release_not_found" in nowhere.stderr


def test_a_broken_app_fails_is_listed_and_never_activates(account, client, app_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(app_dir, broken)
    (broken / "karta.jsonc").write_text('{"default_agent": "triage",,}')
    result = karta(account.home, "publish", str(broken), "-p", SLUG)
    assert result.exit_code == 1, result.output
    assert f"{SLUG} v3: failed" in result.stdout
    assert "Build log:" in result.stdout and "karta.jsonc is not valid JSONC" in result.stdout
    assert "v3 failed validation" in result.stderr and "is not active" in result.stderr
    assert active(client) == ["v2"]
    listed = ok(karta(account.home, "releases", SLUG))
    assert "failed" in row(listed, "v3") and "●" not in row(listed, "v3")
    refused = karta(account.home, "activate", SLUG, "v3")
    assert refused.exit_code == 2 and "409 release_failed" in refused.stderr
    refused = karta(account.home, "rollback", SLUG, "--to", "v3")
    assert refused.exit_code == 2 and "409 release_failed" in refused.stderr
    assert active(client) == ["v2"]


def test_include_and_no_activate(account, plane, client, app_dir):
    out = ok(
        karta(account.home, "publish", str(app_dir), "--include", ".env.example", "--no-activate")
    )
    assert "Packed 6 files" in out and f"{SLUG} v4: ready, not active" in out
    assert f"Activate it with: karta activate {SLUG} v4" in out
    assert active(client) == ["v2"]
    names = archive_names(plane, client, client.projects(SLUG).releases.get("v4").digest)
    assert ".env.example" in names and ".env" not in names


def test_env_set_list_unset_never_show_a_value(account, plane, client):
    outputs = []

    def run(*args: str, input: str | None = None, code: int = 0) -> Result:
        result = karta(account.home, "env", *args, input=input)
        assert result.exit_code == code, result.output
        outputs.append(result.output)
        return result

    run("set", SLUG, f"API_TOKEN={SECRET}", "MODE=fast")
    run("set", SLUG, "PIPED=-", input=f"{PIPED_SECRET}\n")
    listed = run("list", SLUG).stdout
    assert "API_TOKEN" in listed and "PIPED" in listed and "MODE" in listed
    assert "…ss" in row(listed, "API_TOKEN") and "…pp" in row(listed, "PIPED")
    assert "fast" not in listed  # a short value gets no hint at all
    stored = internal(plane, f"projects/{SLUG}/env", client.orgs.current().id).json()["env"]
    assert stored == {"API_TOKEN": SECRET, "MODE": "fast", "PIPED": PIPED_SECRET}

    run("unset", SLUG, "MODE")
    assert "MODE" not in run("list", SLUG).stdout
    missing = run("unset", SLUG, "MODE", code=2)
    assert "404 env_var_not_found" in missing.stderr
    assert "expected NAME=value" in run("set", SLUG, "NOVALUE", code=2).stderr
    assert "only one value" in run("set", SLUG, "A=-", "B=-", input="x\n", code=2).stderr
    assert "422 invalid_env_name" in run("set", SLUG, "KARTA_X=1", code=2).stderr
    for output in outputs:
        assert SECRET not in output and PIPED_SECRET not in output


def test_a_required_env_var_must_be_bound_before_the_release_is_ready(
    account, client, app_dir, tmp_path
):
    needy = tmp_path / "needy"
    shutil.copytree(app_dir, needy)
    (needy / "karta.toml").write_text('name = "Needy Bot"\n[env.STRIPE_KEY]\nrequired = true\n')
    failed = karta(account.home, "publish", str(needy))
    assert failed.exit_code == 1, failed.output
    assert "Created project needy-bot." in failed.stdout  # slug from karta.toml's name
    assert "STRIPE_KEY unbound" in failed.output
    ok(karta(account.home, "env", "set", "needy-bot", "STRIPE_KEY=sk_test_1234567890"))
    out = ok(karta(account.home, "publish", str(needy)))
    assert "needy-bot v2: ready, active" in out  # the same digest, now valid: a new version


def test_the_client_publishes_bytes_and_reads_releases(client, app_dir):
    (app_dir / "README.md").write_text("changed for the client\n")
    releases = client.projects(SLUG).releases
    made = releases.publish(pack_bytes(app_dir), activate=False)
    assert made.name == "v5" and not made.active and made.created
    again = releases.publish(pack_bytes(app_dir))
    assert not again.created and again.name == "v5" and again.active
    assert releases.activate(5).active
    assert releases.get("v5").digest == made.digest
    assert releases.rollback().name == "v4"
    with pytest.raises(UnprocessableEntityError) as invalid:
        releases.publish(b"not a tarball")
    assert invalid.value.status_code == 422 and invalid.value.code == "release_invalid"
    assert invalid.value.body["release"]["status"] == "failed"
    assert client.projects(SLUG).env.list()[0].to_dict()["object"] == "env_var"


def test_unknown_projects_and_empty_folders(account, tmp_path):
    missing = karta(account.home, "releases", "nope")
    assert missing.exit_code == 2 and "404 project_not_found" in missing.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".env").write_text("X=1")
    empty = karta(account.home, "publish", str(tmp_path / "empty"))
    assert empty.exit_code == 2 and "nothing to publish" in empty.stderr
    fresh = karta(account.home, "env", "list", "nope")
    assert fresh.exit_code == 2 and "404" in fresh.stderr
