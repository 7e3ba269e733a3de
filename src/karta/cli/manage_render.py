"""Pure renderers for the management commands: money, keys, budgets, usage (with a per-day bar
chart in block characters), audit rows, releases and env vars. Money is integer cents or
micro-cents throughout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from karta.core.money import Micros

EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"


def _table(title: str, columns: Sequence[str], right: Sequence[str] = ()) -> Table:
    """A titled table that folds long cells rather than hiding them on a narrow terminal."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right else "left",
            overflow="fold",
            min_width=max(len(word) for word in column.split() or [""]),
        )
    return table


def dollars(cents: int) -> str:
    """Integer cents as `$1,234.05` (`-$0.50` below zero)."""
    whole, part = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}${whole:,}.{part:02d}"


def micros_dollars(micros: int) -> str:
    """Micro-cents as dollars, rounded up to the cent (Karta never under-bills)."""
    return dollars(Micros(micros).to_cents().value)


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def cap(value: int | None, money: bool = False) -> str:
    if value is None:
        return "no cap"
    return dollars(value) if money else f"{value:,}"


def bar(value: int, peak: int, width: int) -> str:
    """A left-aligned bar of `width` cells in eighth blocks; any non-zero value shows."""
    if peak <= 0 or value <= 0:
        return " " * width
    eighths = max(1, value * width * 8 // peak)
    full, rest = divmod(eighths, 8)
    return (FULL * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def chart_days(start: date, end: date, today: date) -> list[date]:
    """The days of the period [start, end), up to `today` while the period is running."""
    last = min(end - timedelta(days=1), today) if start <= today else end - timedelta(days=1)
    return [start + timedelta(days=n) for n in range((last - start).days + 1)]


def day_chart(
    start: date, end: date, daily: Sequence[Mapping[str, Any]], today: date, width: int = 40
) -> list[str]:
    """One line per day of the period: date, a bar of its tokens, tokens and cost."""
    by_day = {str(row["day"]): row for row in daily}
    rows = []
    for day in chart_days(start, end, today):
        row = by_day.get(day.isoformat(), {})
        rows.append((day, _total(row), int(row.get("cost_micros", 0))))
    peak = max((tokens for _, tokens, _ in rows), default=0)
    label_width = max((len(f"{tokens:,}") for _, tokens, _ in rows), default=1)
    return [
        f"{day:%b %d} │{bar(tokens, peak, width)} {tokens:>{label_width},}  {micros_dollars(cost)}"
        for day, tokens, cost in rows
    ]


def budget_table(budget: Mapping[str, Any], title: str = "Budget") -> Group:
    """Caps, what the period used against them, and whether turns may run."""
    table = _table(title, ("", "cap", "used", "left"), right=("cap", "used", "left"))
    token_cap = budget.get("monthly_token_limit")
    cost_cap = budget.get("monthly_cost_limit_cents")
    used_tokens = int(budget.get("used_tokens", 0))
    used_cents = int(budget.get("used_cost_cents", 0))
    table.add_row(
        "tokens",
        cap(token_cap),
        count(used_tokens),
        "—" if token_cap is None else count(max(token_cap - used_tokens, 0)),
    )
    table.add_row(
        "cost",
        cap(cost_cap, money=True),
        dollars(used_cents),
        "—" if cost_cap is None else dollars(max(cost_cap - used_cents, 0)),
    )
    reason = budget.get("reason")
    state = f"state: {budget.get('state', 'ok')}" + (f" ({reason})" if reason else "")
    return Group(table, Text(state, style="red" if reason else "green"))


TOKEN_COLUMNS = (
    ("model calls", "model_calls"),
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache read", "cache_read_tokens"),
    ("cache write", "cache_write_tokens"),
)


def usage_table(
    totals: Mapping[str, Any], models: Sequence[Mapping[str, Any]], title: str
) -> Table:
    """One row per model, then the period totals; cost rounded up to the cent. A count the API
    does not break down by model shows as `—`."""
    counts = (*(heading for heading, _ in TOKEN_COLUMNS), "total", "cost")
    table = _table(title, ("model", *counts), right=counts)

    def cells(row: Mapping[str, Any]) -> list[str]:
        counts = [count(row.get(field)) for _, field in TOKEN_COLUMNS]
        return [*counts, count(_total(row)), micros_dollars(int(row.get("cost_micros", 0)))]

    for row in models:
        table.add_row(escape(str(row.get("model") or "(unknown)")), *cells(row))
    table.add_section()
    table.add_row("total", *cells(totals), style="bold")
    return table


def limits(row: Mapping[str, Any]) -> str:
    """A key's monthly sub-limits in one cell: `5,000 tokens, $19.99`, or `none`."""
    tokens, cents = row.get("monthly_token_limit"), row.get("monthly_cost_limit_cents")
    parts = [f"{tokens:,} tokens"] if tokens is not None else []
    parts += [dollars(cents)] if cents is not None else []
    return ", ".join(parts) or "none"


def keys_table(keys: Sequence[Mapping[str, Any]]) -> Table:
    columns = ("id", "name", "key", "scopes", "monthly limits", "last used", "status")
    table = _table("API keys", columns, right=("id",))
    for key in keys:
        table.add_row(
            str(key["id"]),
            escape(str(key["name"])),
            f"{key['prefix']}…{key['last4']}",
            ", ".join(key.get("scopes", [])),
            limits(key),
            _when(key.get("last_used_at"))[:16] or "never",
            "revoked" if key.get("revoked_at") else "active",
            style="dim" if key.get("revoked_at") else None,
        )
    return table


def provider_keys_table(keys: Sequence[Mapping[str, Any]]) -> Table:
    columns = ("id", "provider", "scope", "label", "key", "region", "created", "status")
    table = _table("Provider keys", columns, right=("id",))
    for key in keys:
        revoked = key.get("status") == "revoked"
        table.add_row(
            str(key["id"]),
            str(key["provider"]),
            escape(str(key["project"])) if key.get("project") else "org",
            escape(str(key["label"])),
            f"…{key['last4']}",
            str(key.get("region") or ""),
            _when(key.get("created_at"))[:10],
            "revoked" if revoked else "active",
            style="dim" if revoked else None,
        )
    return table


def model_settings_lines(settings: Mapping[str, Any]) -> list[str]:
    scope = f"project {settings['project']}" if settings.get("project") else "the organization"
    return [
        f"Model settings of {scope}:",
        f"  provider      {settings.get('provider') or '(the harness API)'}",
        f"  model         {settings.get('model') or '(the one the harness asks for)'}",
        f"  endpoint_url  {settings.get('endpoint_url') or '(the provider API)'}",
    ]


def members_table(members: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("Members", ("user", "email", "role", "since"), right=("user",))
    for member in members:
        table.add_row(
            str(member["user_id"]),
            escape(str(member["email"])),
            str(member["role"]),
            _when(member.get("created_at"))[:10],
        )
    return table


def invitations_table(invitations: Sequence[Mapping[str, Any]]) -> Table:
    """An organization's pending invitations, as its admins see them."""
    columns = ("id", "email", "role", "status", "expires")
    table = _table("Pending invitations", columns, right=("id",))
    for invitation in invitations:
        table.add_row(
            str(invitation["id"]),
            escape(str(invitation["email"])),
            str(invitation["role"]),
            str(invitation["status"]),
            _when(invitation.get("expires_at"))[:16],
            style="dim" if invitation["status"] != "pending" else None,
        )
    return table


def my_invitations_table(invitations: Sequence[Mapping[str, Any]]) -> Table:
    """Invitations addressed to the caller, one organization each."""
    columns = ("id", "organization", "role", "invited by", "expires")
    table = _table("Your invitations", columns, right=("id",))
    for invitation in invitations:
        org = invitation.get("organization") or {}
        table.add_row(
            str(invitation["id"]),
            escape(f"{org.get('slug', '')} ({org.get('name', '')})"),
            str(invitation["role"]),
            escape(str(invitation.get("invited_by") or "")),
            _when(invitation.get("expires_at"))[:16],
        )
    return table


def projects_table(projects: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("Projects", ("id", "slug", "name", "created"), right=("id",))
    for project in projects:
        table.add_row(
            str(project["id"]),
            escape(str(project["slug"])),
            escape(str(project.get("name") or "")),
            _when(project.get("created_at"))[:16],
        )
    return table


def project_summary(project: Mapping[str, Any]) -> list[str]:
    return [
        f"{project['slug']} ({project.get('name') or project['slug']})",
        f"  id:      {project['id']}",
        f"  created: {_when(project.get('created_at'))}",
    ]


def orgs_table(orgs: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("Organizations", ("slug", "name", "role"))
    for org in orgs:
        table.add_row(*(escape(str(org.get(field) or "")) for field in ("slug", "name", "role")))
    return table


def audit_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    columns = ("seq", "time", "actor", "action", "resource", "ip", "request")
    table = _table("Audit log", columns, right=("seq",))
    for row in rows:
        resource = row.get("resource_type") or ""
        if row.get("resource_id"):
            resource += f" {row['resource_id']}"
        table.add_row(
            str(row["seq"]),
            _when(row.get("created_at")),
            *(
                escape(str(value or ""))
                for value in (
                    row.get("actor_id") or row.get("actor_type"),
                    row.get("action"),
                    resource,
                    row.get("ip"),
                    row.get("request_id"),
                )
            ),
        )
    return table


def size(n: int) -> str:
    """Bytes in binary units: `812 B`, `4.2 KiB`, `1.5 MiB`."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def short_digest(digest: str, length: int = 12) -> str:
    """`sha256:0f1e2d3c4b5a` from `sha256:<64 hex>` (or the bare hex)."""
    algorithm, _, hexdigest = digest.rpartition(":")
    return f"{algorithm or 'sha256'}:{hexdigest[:length]}"


def packed(files: int, nbytes: int, digest: str) -> str:
    noun = "file" if files == 1 else "files"
    return f"Packed {files:,} {noun} ({size(nbytes)}), sha256:{digest}"


def release_state(release: Mapping[str, Any]) -> str:
    """`ready, active`, `ready, not active` or `failed`."""
    if release.get("status") != "ready":
        return str(release.get("status") or "unknown")
    return "ready, active" if release.get("active") else "ready, not active"


def release_summary(release: Mapping[str, Any]) -> list[str]:
    """What a command says about one release: name and state, then digest, harness and agents."""
    agents = ", ".join(release.get("agents") or []) or "none"
    return [
        f"{release.get('project', '')} {release['name']}: {release_state(release)}".lstrip(),
        f"  digest:  {release.get('digest', '')} ({size(int(release.get('size') or 0))})",
        f"  harness: {release.get('harness') or 'not detected'}; agents: {agents}",
        f"  created: {_when(release.get('created_at'))} by {release.get('created_by') or '?'}",
    ]


def build_log(release: Mapping[str, Any]) -> list[str]:
    lines = str(release.get("build_log") or "").splitlines() or ["(empty)"]
    return ["Build log:", *(f"  {line}" for line in lines)]


def releases_table(releases: Sequence[Mapping[str, Any]], project: str) -> Table:
    """Newest first; the active release is marked and bold, failed ones are red."""
    columns = ("version", "status", "active", "sha256", "harness", "agents", "created")
    table = _table(f"Releases of {escape(project)}", columns)
    for column in table.columns[:4]:
        column.no_wrap = True  # on a narrow terminal the agents and times fold instead
    for release in sorted(releases, key=lambda r: -int(r["version"])):
        failed = release.get("status") != "ready"
        table.add_row(
            str(release["name"]),
            escape(str(release.get("status") or "")),
            "●" if release.get("active") else "",
            short_digest(str(release.get("digest") or "")).removeprefix("sha256:"),
            escape(str(release.get("harness") or "—")),
            escape(", ".join(release.get("agents") or []) or "—"),
            _when(release.get("created_at"))[:16],
            style="red" if failed else "bold" if release.get("active") else None,
        )
    return table


def env_table(variables: Sequence[Mapping[str, Any]], project: str) -> Table:
    """Names and hints only: the API never returns a value, and neither does this."""
    table = _table(f"Env vars of {escape(project)}", ("name", "value", "updated"))
    for var in sorted(variables, key=lambda v: str(v["name"])):
        table.add_row(
            escape(str(var["name"])),
            escape(str(var.get("value_hint") or "…")),
            _when(var.get("updated_at")),
        )
    return table


def _total(row: Mapping[str, Any]) -> int:
    """Tokens counted against budgets: input (cached reads and writes included) plus output."""
    return int(row.get("input_tokens", 0)) + int(row.get("output_tokens", 0))


def _when(stamp: str | None) -> str:
    """An ISO timestamp down to the second, without the offset (they are UTC)."""
    return stamp[:19].replace("T", " ") if stamp else ""


def embed_keys_table(keys: Sequence[Mapping[str, Any]]) -> Table:
    columns = ("id", "name", "key", "origins", "anonymous", "status")
    table = _table("Embed keys", columns, right=("id",))
    for key in keys:
        status = "revoked" if key.get("revoked_at") else "enabled" if key["enabled"] else "disabled"
        if key.get("hosted_page") and status == "enabled":
            status += ", hosted page"
        anonymous = "no" if not key["allow_anonymous"] else "yes"
        if key["allow_anonymous"] and key.get("anonymous_cost_limit_cents") is not None:
            anonymous += f", {dollars(key['anonymous_cost_limit_cents'])}/{key['anonymous_period']}"
        table.add_row(
            str(key["id"]),
            escape(str(key["name"])),
            str(key["key"]),
            escape("\n".join(key["allowed_origins"]) or "—"),
            anonymous,
            status,
            style="dim" if key.get("revoked_at") else None,
        )
    return table


def embed_key_summary(key: Mapping[str, Any]) -> list[str]:
    theme = ", ".join(f"{k}={v}" for k, v in key["theme"].items()) or "default"
    cap_text = cap(key.get("anonymous_cost_limit_cents"), money=True)
    return [
        f"embed key {key['id']}  {key['name']}  (project {key['project']})",
        f"  key:        {key['key']}",
        f"  origins:    {', '.join(key['allowed_origins']) or '— (none yet: no page may use it)'}",
        f"  enabled:    {'yes' if key['enabled'] else 'no'}"
        + ("  (revoked)" if key.get("revoked_at") else ""),
        f"  hosted:     {'yes' if key['hosted_page'] else 'no'}",
        f"  anonymous:  {'yes' if key['allow_anonymous'] else 'no'}"
        + (f", cap {cap_text} per {key['anonymous_period']}" if key["allow_anonymous"] else ""),
        f"  theme:      {theme}",
    ]
