"""The management CLI and the SDK's management resources against a real `karta controlplane`
process: signup, login, members and invitations, projects, keys, budget, usage, the audit log and
`karta audit verify` catching a tampered row."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from karta.cli.main import app as cli
from karta.client import ConflictError, Karta
from tests.conftest import NO_PROVIDERS_ENV, free_port


@dataclass(frozen=True)
class Plane:
    url: str
    home: Path
    service_token: str


@dataclass(frozen=True)
class Account:
    home: Path  # the CLI's $KARTA_HOME, holding credentials.json
    email: str
    password: str
    org: str
    secret: str


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    home = tmp_path_factory.mktemp("control-plane")
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARTA_")}
    env.update(NO_PROVIDERS_ENV)
    env.update(
        KARTA_HOME=str(home),
        KARTA_SERVICE_TOKENS=token,
        KARTA_SESSION_TOKEN_SECRET=secrets.token_urlsafe(32),
    )
    log = home / "control.log"
    command = [sys.executable, "-m", "karta.cli", "controlplane", "--port", str(port)]
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the control plane did not start:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield Plane(url, home, token)
    proc.terminate()
    proc.wait(15)


def karta(home: Path, *args: str, input: str | None = None) -> Result:
    """Run `karta …` in-process with its own $KARTA_HOME and a wide terminal."""
    env = {
        "KARTA_HOME": str(home),
        "COLUMNS": "200",
        "KARTA_API_KEY": None,
        "KARTA_CONTROL_URL": None,
    }
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def credentials(home: Path) -> dict[str, str]:
    return dict(json.loads((home / "credentials.json").read_text()))


@pytest.fixture(scope="module")
def account(plane: Plane, tmp_path_factory: pytest.TempPathFactory) -> Account:
    home = tmp_path_factory.mktemp("cli-home")
    email, password = "ada@example.com", secrets.token_urlsafe(12)
    result = karta(
        home,
        "signup",
        "--control-url",
        plane.url,
        "--email",
        email,
        "--org-name",
        "Analytical Engines",
        input=f"{password}\n{password}\n",
    )
    assert result.exit_code == 0, result.output
    return Account(home, email, password, "analytical-engines", result.stdout.splitlines()[-1])


@pytest.fixture
def client(account: Account, plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Karta:
    """A client holding the org's admin key, whatever credentials.json says by then."""
    monkeypatch.setenv("KARTA_HOME", str(account.home))
    return Karta(api_key=account.secret, control_url=plane.url)


def test_signup_saves_the_admin_key_and_the_control_url(account, plane):
    assert account.secret.startswith("kt_live_") and len(account.secret) == 40
    saved = credentials(account.home)
    assert saved == {"api_key": account.secret, "control_url": plane.url}
    assert stat.S_IMODE((account.home / "credentials.json").stat().st_mode) == 0o600
    again = karta(
        account.home,
        "signup",
        *("--email", account.email, "--password", "x" * 12, "--org-name", "Other"),
    )
    assert again.exit_code == 2 and "409 email_taken" in again.stderr
    assert credentials(account.home) == saved


def test_login_prompts_and_keeps_the_other_fields(account):
    wrong = karta(account.home, "login", input=f"{account.email}\nnot-the-password\n")
    assert wrong.exit_code == 2 and "401" in wrong.stderr
    result = karta(account.home, "login", input=f"{account.email}\n{account.password}\n")
    assert result.exit_code == 0, result.output
    assert account.password not in result.output
    saved = credentials(account.home)
    assert saved["user_token"].startswith("ktu_") and saved["api_key"] == account.secret
    assert stat.S_IMODE((account.home / "credentials.json").stat().st_mode) == 0o600
    listed = karta(account.home, "orgs")
    assert listed.exit_code == 0, listed.output
    assert account.org in listed.stdout and "Analytical Engines" in listed.stdout
    assert "owner" in listed.stdout


def test_keys_create_list_revoke(account, client):
    created = karta(
        account.home,
        *("keys", "create", "ci", "--scope", "read", "--scope", "write"),
        *("--token-limit", "5000", "--cost-limit-cents", "1999"),
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("kt_live_") and "shown only this once" in created.stderr
    key = next(k.to_dict() for k in client.keys.list() if k.name == "ci")
    listed = karta(account.home, "keys", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if " ci " in line)
    assert f"{key['prefix']}…{secret[-4:]}" in row and "read, write" in row
    assert "5,000 tokens, $19.99" in row and "active" in row
    assert secret not in listed.output

    forbidden = karta(account.home, "keys", "list", "--key", secret)
    assert forbidden.exit_code == 2
    assert "403 forbidden" in forbidden.stderr and "'keys.read'" in forbidden.stderr

    revoked = karta(account.home, "keys", "revoke", str(key["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked key {key['id']}" in revoked.stdout
    row = next(line for line in karta(account.home, "keys", "list").stdout.splitlines()
               if " ci " in line)  # fmt: skip
    assert "revoked" in row
    refused = karta(account.home, "budget", "show", "--key", secret)
    assert refused.exit_code == 2 and "401" in refused.stderr


def test_budget_set_and_show(account):
    def budget(*args: str) -> str:
        result = karta(account.home, "budget", *args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def row(output: str, name: str) -> str:
        return next(line for line in output.splitlines() if f" {name} " in line)

    both = budget("set", "--tokens", "100000", "--cost-cents", "2500")
    assert "100,000" in row(both, "tokens") and "$25.00" in row(both, "cost")
    cost_only = budget("set", "--cost-cents", "700")
    assert "100,000" in row(cost_only, "tokens") and "$7.00" in row(cost_only, "cost")
    shown = budget("show")
    assert "100,000" in row(shown, "tokens") and "$7.00" in row(shown, "cost")
    assert "state: ok" in shown
    cleared = budget("set", "--clear")
    assert "no cap" in row(cleared, "tokens") and "no cap" in row(cleared, "cost")
    nothing = karta(account.home, "budget", "set")
    assert nothing.exit_code == 2 and "--clear" in nothing.stderr


def test_usage_shows_totals_by_model_the_budget_and_a_daily_chart(account, plane, client):
    me = client.account.me().to_dict()
    now = datetime.now(UTC)

    def event(n: int, when: datetime, model: str, inp: int, out: int, cache: int = 0) -> dict:
        return {
            "event_id": f"evt-{n}",
            "organization_id": me["organization"]["id"],
            "api_key_id": me["api_key_id"],
            "model": model,
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": cache,
            "occurred_at": when.isoformat(),
        }

    events = [
        event(1, now, "claude-sonnet-4", 3000, 1000),  # 2,400,000 µ¢
        event(2, now, "claude-sonnet-4", 1000, 500, cache=200),  # 996,000 µ¢
        event(3, datetime(2026, 1, 15, 12, tzinfo=UTC), "claude-haiku-4", 1000, 1000),
    ]
    answer = httpx.post(
        f"{plane.url}/internal/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {plane.service_token}"},
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text
    client.budget.set(monthly_token_limit=5000, monthly_cost_limit_cents=None)

    result = karta(account.home, "usage")
    assert result.exit_code == 0, result.output
    out = result.stdout
    model = next(line for line in out.splitlines() if "claude-sonnet-4" in line)
    assert "4,000" in model and "1,500" in model and "5,500" in model and "$0.04" in model
    assert "state: exhausted (monthly_token_limit)" in out
    today = next(line for line in out.splitlines() if line.startswith(f"{now:%b %d} │"))
    assert "█" * 40 in today and today.endswith("5,500  $0.04")
    assert f"Usage {now:%Y-%m}" in out

    january = karta(account.home, "usage", "--period", "2026-01")
    assert january.exit_code == 0, january.output
    chart = [line for line in january.stdout.splitlines() if line.startswith("Jan ")]
    assert len(chart) == 31 and chart[14].endswith("2,000  $0.01")
    assert "claude-sonnet" not in january.stdout and "state: ok" in january.stdout
    bad = karta(account.home, "usage", "--period", "January")
    assert bad.exit_code == 2 and "400" in bad.stderr
    client.budget.set(monthly_token_limit=None, monthly_cost_limit_cents=None)


def test_the_client_covers_projects_session_tokens_members_and_key_limits(client, account):
    assert client.account.me().kind == "api_key"
    assert client.orgs.current().slug == account.org
    project = client.projects.create("web", name="Web app")
    assert client.projects.get("web").id == project.id
    assert [p.slug for p in client.projects.list()] == ["web"]
    minted = client.session_tokens.create("web", sub="user-1", ttl_seconds=600)
    assert minted.token.count(".") == 2 and minted.sub == "user-1"
    with pytest.raises(ConflictError) as conflict:
        client.projects.create("web")
    assert conflict.value.status_code == 409 and conflict.value.code == "project_exists"
    assert [m.email for m in client.members.list()] == [account.email]
    invited = client.members.invite("nobody@example.com", "viewer")  # registered or not: alike
    assert invited.status == "pending" and invited.email == "nobody@example.com"
    assert [i.id for i in client.members.invitations.list()] == [invited.id]
    assert client.members.invitations.revoke(invited.id).status == "revoked"
    assert [m.email for m in client.members.list()] == [account.email]
    made = client.keys.create("limited", scopes=["read"], monthly_token_limit=10)
    key_id = made.api_key.id
    assert client.keys.update(key_id, monthly_cost_limit_cents=99).monthly_token_limit == 10
    cleared = client.keys.update(key_id, monthly_token_limit=None)
    assert cleared.monthly_token_limit is None and cleared.monthly_cost_limit_cents == 99
    assert client.keys.get(key_id).name == "limited"


def test_audit_lists_pages_verifies_and_catches_a_tampered_row(account, plane, client):
    listed = karta(account.home, "audit")
    assert listed.exit_code == 0, listed.output
    for action in ("org.created", "member.added", "key.created", "key.revoked", "budget.changed"):
        assert action in listed.stdout
    everything = client.audit.list(limit=1000)
    assert not everything.has_more
    assert [row.to_dict() for row in client.audit.list(limit=2)] == [
        row.to_dict() for row in everything.data
    ]
    later = karta(account.home, "audit", "--after", "3")
    seqs = [line.split("│")[1].strip() for line in later.stdout.splitlines() if "│" in line]
    assert seqs[0] == "4"

    verified = karta(account.home, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.strip() == f"chain intact: {everything.body['head']['seq']} events"

    org_id = client.orgs.current().id
    with sqlite3.connect(plane.home / "control.db") as db:
        db.execute(
            "UPDATE audit_events SET details = ? WHERE organization_id = ? AND seq = 3",
            (json.dumps({"name": "innocent"}), org_id),
        )
    broken = karta(account.home, "audit", "verify")
    assert broken.exit_code == 1
    assert "chain broken at seq 3: row content does not match its hash" in broken.stdout


def test_a_user_in_two_orgs_names_one(account):
    created = karta(account.home, "orgs", "create", "Difference Engines")
    assert created.exit_code == 0, created.output
    assert "difference-engines" in created.stdout
    listed = karta(account.home, "orgs").stdout
    assert account.org in listed and "difference-engines" in listed
    ambiguous = karta(account.home, "keys", "list")
    assert ambiguous.exit_code == 2 and "organization_required" in ambiguous.stderr
    chosen = karta(account.home, "keys", "list", "--org", "difference-engines")
    assert chosen.exit_code == 0 and "API keys" in chosen.stdout
    stranger = karta(account.home, "budget", "show", "--org", "not-mine")
    assert stranger.exit_code == 2 and "404" in stranger.stderr

    login = f"{account.email}\n{account.password}\n"
    assert karta(account.home, "login", "--org", account.org, input=login).exit_code == 0
    assert credentials(account.home)["org"] == account.org
    assert karta(account.home, "login", input=login).exit_code == 0  # keeps the saved org
    assert credentials(account.home)["org"] == account.org
    assert karta(account.home, "budget", "show").exit_code == 0


def test_members_join_by_invitation(account, plane, tmp_path):
    admin = ("--key", account.secret)
    bob_home, password = tmp_path / "bob", secrets.token_urlsafe(12)
    signed = karta(
        bob_home,
        *("signup", "--control-url", plane.url, "--email", "bob@example.com"),
        *("--password", password, "--org-name", "Bob's"),
    )
    assert signed.exit_code == 0, signed.output
    assert karta(bob_home, "login", input=f"bob@example.com\n{password}\n").exit_code == 0

    invited = karta(
        account.home, "members", "invite", "bob@example.com", "--role", "developer", *admin
    )
    assert invited.exit_code == 0, invited.output
    assert f"to {account.org} as developer" in invited.stdout
    invitation_id = invited.stdout.split("(invitation ")[1].split(",")[0]
    assert f"karta invitations accept {invitation_id}" in invited.stderr
    members = karta(account.home, "members", "list", *admin).stdout
    assert "bob@example.com" not in members  # not before accepting

    mine = karta(bob_home, "invitations", "list")
    assert mine.exit_code == 0, mine.output
    row = next(line for line in mine.stdout.splitlines() if f" {invitation_id} " in line)
    assert account.org in row and "developer" in row
    accepted = karta(bob_home, "invitations", "accept", invitation_id)
    assert accepted.exit_code == 0, accepted.output
    assert f"Joined {account.org} as developer; act in it with --org {account.org}" in (
        accepted.stdout
    )
    row = next(line for line in karta(account.home, "members", "list", *admin).stdout.splitlines()
               if "bob@example.com" in line)  # fmt: skip
    assert "developer" in row
    again = karta(bob_home, "invitations", "accept", invitation_id)
    assert again.exit_code == 2 and "409 invitation_not_pending" in again.stderr
    # A key has no invitations of its own.
    keyed = karta(account.home, "invitations", "list", *admin)
    assert keyed.exit_code == 2 and "403" in keyed.stderr

    carol = karta(account.home, "members", "invite", "carol@example.com", *admin)
    carol_id = carol.stdout.split("(invitation ")[1].split(",")[0]
    pending = karta(account.home, "members", "invitations", *admin).stdout
    assert "carol@example.com" in pending and "viewer" in pending and "bob@" not in pending
    revoked = karta(account.home, "members", "revoke", carol_id, *admin)
    assert revoked.exit_code == 0 and f"Revoked invitation {carol_id}" in revoked.stdout
    assert "carol@example.com" not in karta(account.home, "members", "invitations", *admin).stdout

    third = karta(account.home, "members", "invite", "bob-two@example.com", *admin)
    assert third.exit_code == 0
    declined = karta(bob_home, "invitations", "decline", "999999")
    assert declined.exit_code == 2 and "404 invitation_not_found" in declined.stderr


def test_projects_create_list_show(account):
    admin = ("--key", account.secret)
    created = karta(account.home, "projects", "create", "docs-bot", "--name", "Docs bot", *admin)
    assert created.exit_code == 0, created.output
    assert "Created project" in created.stdout and "docs-bot" in created.stdout
    listed = karta(account.home, "projects", "list", *admin)
    row = next(line for line in listed.stdout.splitlines() if "docs-bot" in line)
    assert "Docs bot" in row
    shown = karta(account.home, "projects", "show", "docs-bot", *admin)
    assert shown.exit_code == 0 and shown.stdout.startswith("docs-bot (Docs bot)")
    missing = karta(account.home, "projects", "show", "nope", *admin)
    assert missing.exit_code == 2 and "404 project_not_found" in missing.stderr
    twice = karta(account.home, "projects", "create", "docs-bot", *admin)
    assert twice.exit_code == 2 and "409 project_exists" in twice.stderr


def test_provider_keys_set_list_revoke_and_model_settings(account, client):
    secret = "sk-ant-builder-" + secrets.token_hex(12)
    created = karta(
        account.home,
        *("keys", "provider", "set", "anthropic", "--label", "prod", "--no-validate"),
        input=secret + "\n",
    )
    assert created.exit_code == 0, created.output
    assert f"…{secret[-4:]} for the organization" in created.stdout
    listed = karta(account.home, "keys", "provider", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if " prod " in line)
    assert "anthropic" in row and f"…{secret[-4:]}" in row and "active" in row
    assert secret not in listed.output and secret not in created.output
    key_id = client.provider_keys.list()[0].id
    revoked = karta(account.home, "keys", "provider", "revoke", str(key_id))
    assert revoked.exit_code == 0 and f"Revoked anthropic key {key_id}" in revoked.stdout
    assert client.provider_keys.get(key_id).status == "revoked"

    shown = karta(account.home, "model", "set", "--provider", "bedrock", "--model", "anthropic.x")
    assert shown.exit_code == 0, shown.output
    assert "bedrock" in shown.stdout and "anthropic.x" in shown.stdout
    refused = karta(account.home, "model", "set", "--provider", "anthropic",
                    "--endpoint-url", "http://10.0.0.1/v1")  # fmt: skip
    assert refused.exit_code == 2 and "422 invalid_endpoint" in refused.stderr
    assert karta(account.home, "model", "clear").exit_code == 0
    assert client.model_settings.get().provider is None
