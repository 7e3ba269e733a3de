"""The management commands' renderers: money in integer cents, the per-day block chart, and the
usage, budget, key and audit tables."""

from __future__ import annotations

from datetime import date

import pytest
from rich.console import Console, RenderableType

from karta.cli import manage_render as show


def text(table: RenderableType) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize(
    ("cents", "shown"),
    [
        (0, "$0.00"),
        (5, "$0.05"),
        (100, "$1.00"),
        (123_456, "$1,234.56"),
        (-50, "-$0.50"),
        (10**20 + 1, "$1,000,000,000,000,000,000.01"),
    ],
)
def test_dollars_are_integer_cents(cents, shown):
    assert show.dollars(cents) == shown


def test_micro_cents_round_up_to_the_cent():
    assert show.micros_dollars(0) == "$0.00"
    assert show.micros_dollars(1) == "$0.01"
    assert show.micros_dollars(1_000_000) == "$0.01"
    assert show.micros_dollars(1_000_001) == "$0.02"


def test_bars_use_eighth_blocks_and_never_hide_a_nonzero_day():
    assert show.bar(10, 10, 4) == "████"
    assert show.bar(5, 10, 4) == "██  "
    assert show.bar(3, 8, 4) == "█▌  "  # 12 eighths
    assert show.bar(1, 10**9, 4) == "▏   "
    assert show.bar(0, 10, 4) == "    "
    assert show.bar(0, 0, 3) == "   "


def test_the_chart_covers_every_day_of_a_past_month():
    daily = [
        {"day": "2026-02-03", "input_tokens": 900, "output_tokens": 100, "cost_micros": 2_500_000},
        {"day": "2026-02-10", "input_tokens": 400, "output_tokens": 100, "cost_micros": 1},
    ]
    lines = show.day_chart(date(2026, 2, 1), date(2026, 3, 1), daily, date(2026, 11, 5), width=8)
    assert len(lines) == 28
    assert lines[0] == "Feb 01 │             0  $0.00"
    assert lines[2] == "Feb 03 │████████ 1,000  $0.03"
    assert lines[9] == "Feb 10 │████       500  $0.01"


def test_the_chart_of_the_running_month_stops_today():
    lines = show.day_chart(date(2026, 11, 1), date(2026, 12, 1), [], date(2026, 11, 5), width=4)
    assert [line[:6] for line in lines] == ["Nov 01", "Nov 02", "Nov 03", "Nov 04", "Nov 05"]
    assert all(line.endswith("│     0  $0.00") for line in lines)


def test_usage_table_lists_models_then_totals():
    totals = {
        "model_calls": 3,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 0,
        "cost_micros": 150_000_001,
    }
    models = [
        {"model": "claude-sonnet-4", "model_calls": 3, "input_tokens": 1200, "output_tokens": 300,
         "cost_micros": 150_000_001},
    ]  # fmt: skip
    out = text(show.usage_table(totals, models, "Usage 2026-11"))
    assert "Usage 2026-11" in out
    model_line = next(line for line in out.splitlines() if "claude-sonnet-4" in line)
    assert [cell.strip() for cell in model_line.split("│")[1:-1]] == [
        "claude-sonnet-4", "3", "1,200", "300", "—", "—", "1,500", "$1.51",
    ]  # fmt: skip
    total_line = next(line for line in out.splitlines() if line.startswith("│ total "))
    assert "1,000" in total_line and "1,500" in total_line and "$1.51" in total_line


def test_budget_table_shows_caps_use_and_state():
    out = text(
        show.budget_table(
            {
                "monthly_token_limit": 10_000,
                "monthly_cost_limit_cents": None,
                "used_tokens": 12_000,
                "used_cost_cents": 250,
                "state": "exhausted",
                "reason": "monthly_token_limit",
            }
        )
    )
    tokens = next(line for line in out.splitlines() if "tokens" in line)
    cost = next(line for line in out.splitlines() if "cost" in line)
    assert "10,000" in tokens and "12,000" in tokens and tokens.rstrip(" │").endswith("0")
    assert "no cap" in cost and "$2.50" in cost and "—" in cost
    assert "state: exhausted (monthly_token_limit)" in out


def test_keys_table_never_has_a_secret_and_marks_revoked_keys():
    keys = [
        {"id": 1, "name": "[bold]ci[/]", "prefix": "kt_live_abc123", "last4": "wxyz",
         "scopes": ["read", "write"], "monthly_token_limit": 5000,
         "monthly_cost_limit_cents": 1999, "last_used_at": None, "revoked_at": None},
        {"id": 2, "name": "old", "prefix": "kt_live_def456", "last4": "abcd", "scopes": ["admin"],
         "monthly_token_limit": None, "monthly_cost_limit_cents": None,
         "last_used_at": "2026-11-02T10:00:00+00:00", "revoked_at": "2026-11-03T09:30:00+00:00"},
    ]  # fmt: skip
    out = text(show.keys_table(keys))
    assert "[bold]ci[/]" in out  # names are shown literally, not as markup
    assert "kt_live_abc123…wxyz" in out and "read, write" in out
    assert "5,000 tokens, $19.99" in out and "never" in out
    old = next(line for line in out.splitlines() if " old " in line)
    assert "2026-11-02 10:00 " in old and "none" in old and "revoked" in old


def test_audit_table_shows_one_line_per_row():
    rows = [
        {"seq": 1, "created_at": "2026-11-01T12:00:00.123456+00:00", "actor_type": "user",
         "actor_id": "user:1", "action": "org.create", "resource_type": "organization",
         "resource_id": "1", "ip": "127.0.0.1", "request_id": "req_1"},
        {"seq": 2, "created_at": "2026-11-01T12:00:01+00:00", "actor_type": "system",
         "actor_id": None, "action": "budget.exhausted", "resource_type": "budget",
         "resource_id": None, "ip": None, "request_id": None},
    ]  # fmt: skip
    lines = text(show.audit_table(rows)).splitlines()
    first = next(line for line in lines if "org.create" in line)
    assert "2026-11-01 12:00:00" in first and "user:1" in first
    assert "organization 1" in first and "req_1" in first
    second = next(line for line in lines if "budget.exhausted" in line)
    assert "system" in second and " 2 " in second


def test_orgs_table():
    out = text(show.orgs_table([{"slug": "acme", "name": "Acme", "role": "owner"}]))
    assert "acme" in out and "Acme" in out and "owner" in out


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
     (5 * 1024**2, "5.0 MiB"), (3 * 1024**3, "3.0 GiB"), (2048 * 1024**3, "2048.0 GiB")],
)  # fmt: skip
def test_sizes_are_binary_units(nbytes, shown):
    assert show.size(nbytes) == shown


def test_digests_are_shortened_keeping_the_algorithm():
    hexdigest = "0123456789abcdef" * 4
    assert show.short_digest(f"sha256:{hexdigest}") == "sha256:0123456789ab"
    assert show.short_digest(hexdigest, 8) == "sha256:01234567"
    assert show.packed(1, 812, hexdigest) == f"Packed 1 file (812 B), sha256:{hexdigest}"
    assert show.packed(1200, 2048, "ab").startswith("Packed 1,200 files (2.0 KiB)")


def _release(version: int, **fields):
    return {
        "version": version, "name": f"v{version}", "project": "web", "status": "ready",
        "active": False, "digest": f"sha256:{f'{version:02x}' * 32}", "size": 2048,
        "harness": "claude-code", "agents": ["triage", "billing"], "build_log": "ok",
        "created_by": "key:1", "created_at": "2026-11-24T10:00:00.5+00:00", **fields,
    }  # fmt: skip


def test_release_state_and_summary():
    assert show.release_state(_release(1, active=True)) == "ready, active"
    assert show.release_state(_release(1)) == "ready, not active"
    assert show.release_state(_release(1, status="failed", active=False)) == "failed"
    summary = show.release_summary(_release(2, active=True))
    assert summary[0] == "web v2: ready, active"
    assert summary[1] == f"  digest:  sha256:{'02' * 32} (2.0 KiB)"
    assert summary[2] == "  harness: claude-code; agents: triage, billing"
    assert summary[3] == "  created: 2026-11-24 10:00:00 by key:1"
    failed = show.release_summary(_release(3, status="failed", harness=None, agents=[]))
    assert failed[0] == "web v3: failed" and failed[2] == "  harness: not detected; agents: none"


def test_build_log_is_indented_and_never_empty():
    log = show.build_log(_release(1, build_log="extracted 10 bytes\nerror: karta.jsonc is bad"))
    assert log == ["Build log:", "  extracted 10 bytes", "  error: karta.jsonc is bad"]
    assert show.build_log(_release(1, build_log="")) == ["Build log:", "  (empty)"]


def test_releases_table_is_newest_first_with_the_active_one_marked():
    releases = [
        _release(1),
        _release(2, active=True),
        _release(10, status="failed", harness=None, agents=[], name="v10"),
    ]
    lines = text(show.releases_table(releases, "[b]web[/]")).splitlines()
    assert "Releases of [b]web[/]" in lines[0]
    rows = [line for line in lines if line.startswith("│ v")]
    assert [r.split("│")[1].strip() for r in rows] == ["v10", "v2", "v1"]
    cells = [[c.strip() for c in r.split("│")[1:-1]] for r in rows]
    assert cells[0] == ["v10", "failed", "", "0a" * 6, "—", "—", "2026-11-24 10:00"]
    assert cells[1][:5] == ["v2", "ready", "●", "02" * 6, "claude-code"]
    assert cells[2][2] == "" and cells[2][5] == "triage, billing"


def test_env_table_shows_names_and_hints_only():
    variables = [
        {"name": "ZED", "value_hint": "…", "updated_at": "2026-11-24T10:00:00+00:00"},
        {"name": "API_TOKEN", "value_hint": "…xy", "updated_at": "2026-11-24T11:00:00+00:00"},
    ]
    out = text(show.env_table(variables, "web"))
    assert out.startswith("Env vars of web")
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    assert cells == [
        ["API_TOKEN", "…xy", "2026-11-24 11:00:00"],
        ["ZED", "…", "2026-11-24 10:00:00"],
    ]


def _fits(table: RenderableType, width: int = 80) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(table)
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= width, out
    return out


def test_members_and_invitation_tables_fit_80_columns():
    members = [
        {
            "user_id": 12,
            "email": "ada.lovelace@analytical-engines.example.com",
            "role": "developer",
            "created_at": "2026-11-24T21:49:25.123456+00:00",
        }
    ]
    out = _fits(show.members_table(members))
    assert "12" in out and "developer" in out and "2026-11-24" in out and "21:49" not in out
    pending = [
        {
            "id": 7,
            "email": "charles.babbage@difference-engines.example.com",
            "role": "viewer",
            "status": "expired",
            "expires_at": "2026-12-01T21:49:25+00:00",
            "organization": {"slug": "analytical-engines", "name": "Analytical Engines Ltd"},
            "invited_by": "user:12",
        }
    ]
    out = _fits(show.invitations_table(pending))
    assert "expired" in out and "2026-12-01 21:49" in out
    out = _fits(show.my_invitations_table(pending))
    assert "analytical-engines" in out and "user:12" in out


def test_projects_table_and_summary():
    project = {
        "id": 3,
        "slug": "support-bot",
        "name": "The [bold]support[/] bot",
        "created_at": "2026-11-24T21:49:25+00:00",
    }
    out = _fits(show.projects_table([project]))
    assert "support-bot" in out and "[bold]" in out  # names are escaped, not rendered
    assert show.project_summary(project) == [
        "support-bot (The [bold]support[/] bot)",
        "  id:      3",
        "  created: 2026-11-24 21:49:25",
    ]
