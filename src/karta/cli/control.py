"""The management commands against the control plane: signup, login, orgs, members and
invitations, projects, keys, budget, usage and audit (with `audit verify`, which checks the hash
chain from the rows the API returns)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from karta.cli import manage_render as show

if TYPE_CHECKING:
    from karta.client.control import ControlClient


def stdout() -> Console:
    """A console per call, so the terminal's width (COLUMNS) is read when the command runs."""
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


ControlUrl = Annotated[
    str | None,
    typer.Option(
        "--control-url",
        help="Control plane URL (default: KARTA_CONTROL_URL, credentials.json, :8001).",
        show_default=False,
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="API key or login token (default: KARTA_API_KEY, then credentials.json).",
        show_default=False,
    ),
]
Org = Annotated[
    str | None,
    typer.Option("--org", help="Organization slug, for users in several.", show_default=False),
]


@contextmanager
def control(url: str | None, key: str | None, org: str | None) -> Iterator[ControlClient]:
    """A client whose transport and API errors end the command with a message and exit 2."""
    import httpx

    from karta.client import KartaAPIError
    from karta.client.control import ControlClient

    client = ControlClient(url, key, org)
    try:
        with client:
            yield client
    except httpx.TransportError as exc:
        stderr().print(f"[red]cannot reach the control plane at {client.base_url}: {exc}[/]")
        raise typer.Exit(2) from exc
    except KartaAPIError as exc:
        stderr().print(f"[red]{exc.status} {exc.code}: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc


def _save(**fields: str | None) -> str:
    """Merge into $KARTA_HOME/credentials.json (mode 0600); None removes a field."""
    from karta.core.credentials_file import read_credentials, write_credentials
    from karta.core.home import karta_home

    home = karta_home()
    data = {**read_credentials(home), **fields}
    return str(write_credentials(home, {k: v for k, v in data.items() if v is not None}))


def signup(
    email: Annotated[str, typer.Option(prompt=True, help="Your email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
    ],
    org_name: Annotated[str, typer.Option(prompt="Organization name", help="Your organization.")],
    control_url: ControlUrl = None,
) -> None:
    """Create an account and an organization; saves its first admin API key."""
    with control(control_url, None, None) as client:
        answer = client.signup(email, password, org_name)
    # The new key replaces any other identity's login token and organization choice.
    path = _save(api_key=answer["secret"], control_url=client.base_url, user_token=None, org=None)
    org = answer["organization"]
    stderr().print(f"Signed up as {escape(email)}; organization [bold]{escape(org['slug'])}[/].")
    stderr().print(f"Admin API key (shown once, saved to {path}):")
    stdout().print(answer["secret"], markup=False)


def login(
    email: Annotated[str, typer.Option(prompt=True, help="Your email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Password.")],
    control_url: ControlUrl = None,
    org: Org = None,
) -> None:
    """Log in; saves a login token (30 days) to credentials.json."""
    with control(control_url, None, None) as client:
        answer = client.login(email, password)
    chosen = {"org": org} if org else {}
    path = _save(user_token=answer["token"], control_url=client.base_url, **chosen)
    stderr().print(
        f"Logged in as {escape(email)} until {answer['expires_at'][:10]}; token saved to {path}."
    )


orgs_app = typer.Typer(help="Your organizations.")


@orgs_app.callback(invoke_without_command=True)
def orgs(ctx: typer.Context, control_url: ControlUrl = None, key: Key = None) -> None:
    """List your organizations and your role in each (needs a login token)."""
    if ctx.invoked_subcommand is not None:
        return
    with control(control_url, key, None) as client:
        answer = client.list_orgs()
    stdout().print(show.orgs_table(answer))


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    slug: Annotated[str | None, typer.Option(help="Its slug (default: from the name).")] = None,
    control_url: ControlUrl = None,
    key: Key = None,
) -> None:
    """Create an organization you own."""
    with control(control_url, key, None) as client:
        org = client.create_org(name, slug)
    stdout().print(f"Created organization [bold]{escape(org['slug'])}[/] — use it with --org.")


members_app = typer.Typer(
    help="Members of the organization, and invitations to join it.", no_args_is_help=True
)


@members_app.command("list")
def members_list(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """List members and their roles."""
    with control(control_url, key, org) as client:
        stdout().print(show.members_table(client.list_members()))


@members_app.command("invite")
def members_invite(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="Who to invite.")],
    role: Annotated[
        str, typer.Option(help="owner, admin, developer, billing or viewer.")
    ] = "viewer",
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Invite an email to a role; they become a member when they accept it."""
    with control(control_url, key, org) as client:
        invitation = client.invite_member(email, role)
    slug = invitation["organization"]["slug"]
    stdout().print(
        f"Invited {escape(invitation['email'])} to {escape(slug)} as {invitation['role']} "
        f"(invitation {invitation['id']}, expires {invitation['expires_at'][:10]})."
    )
    stderr().print(
        f"Once logged in with that email, they run: karta invitations accept {invitation['id']}"
    )


@members_app.command("invitations")
def members_invitations(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """List the invitations nobody has answered yet."""
    with control(control_url, key, org) as client:
        stdout().print(show.invitations_table(client.list_invitations()))


@members_app.command("revoke")
def members_revoke(
    invitation_id: Annotated[
        int, typer.Argument(metavar="ID", help="The invitation's id (karta members invitations).")
    ],
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Withdraw a pending invitation."""
    with control(control_url, key, org) as client:
        revoked = client.revoke_invitation(invitation_id)
    stdout().print(f"Revoked invitation {revoked['id']} ({escape(revoked['email'])}).")


invitations_app = typer.Typer(
    help="Invitations addressed to you (needs a login token).", no_args_is_help=True
)
InvitationId = Annotated[
    int, typer.Argument(metavar="ID", help="The invitation's id (karta invitations list).")
]


@invitations_app.command("list")
def invitations_list(control_url: ControlUrl = None, key: Key = None) -> None:
    """List the pending invitations addressed to your email."""
    with control(control_url, key, None) as client:
        stdout().print(show.my_invitations_table(client.my_invitations()))


@invitations_app.command("accept")
def invitations_accept(
    invitation_id: InvitationId, control_url: ControlUrl = None, key: Key = None
) -> None:
    """Join the organization with the invitation's role."""
    with control(control_url, key, None) as client:
        accepted = client.accept_invitation(invitation_id)
    slug = escape(accepted["organization"]["slug"])
    stdout().print(f"Joined [bold]{slug}[/] as {accepted['role']}; act in it with --org {slug}.")


@invitations_app.command("decline")
def invitations_decline(
    invitation_id: InvitationId, control_url: ControlUrl = None, key: Key = None
) -> None:
    """Turn an invitation down."""
    with control(control_url, key, None) as client:
        declined = client.decline_invitation(invitation_id)
    stdout().print(f"Declined the invitation to {escape(declined['organization']['slug'])}.")


projects_app = typer.Typer(help="Projects of the organization.", no_args_is_help=True)


@projects_app.command("list")
def projects_list(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """List projects."""
    with control(control_url, key, org) as client:
        stdout().print(show.projects_table(client.list_projects()))


@projects_app.command("create")
def projects_create(
    slug: Annotated[str, typer.Argument(help="Lower-case letters, digits and -.")],
    name: Annotated[str | None, typer.Option(help="A display name (default: the slug).")] = None,
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Create a project (karta publish also creates the one it publishes to)."""
    with control(control_url, key, org) as client:
        project = client.create_project(slug, name)
    stdout().print(f"Created project {project['id']} [bold]{escape(project['slug'])}[/].")


@projects_app.command("show")
def projects_show(
    ref: Annotated[str, typer.Argument(metavar="SLUG", help="The project's slug or id.")],
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Show one project."""
    with control(control_url, key, org) as client:
        project = client.get_project(ref)
    for line in show.project_summary(project):
        stdout().print(line, markup=False)


keys_app = typer.Typer(help="API keys of the organization.", no_args_is_help=True)


@keys_app.command("list")
def keys_list(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """List API keys (never their secrets)."""
    with control(control_url, key, org) as client:
        answer = client.list_keys()
    stdout().print(show.keys_table(answer))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[list[str], typer.Option("--scope", help="read, write or admin (repeatable).")],
    token_limit: Annotated[int | None, typer.Option(help="Monthly token sub-limit.")] = None,
    cost_limit_cents: Annotated[
        int | None, typer.Option(help="Monthly cost sub-limit, in cents.")
    ] = None,
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Create an API key. The secret goes to stdout, once; it cannot be shown again."""
    with control(control_url, key, org) as client:
        answer = client.create_key(name, scope, token_limit, cost_limit_cents)
    created = answer["api_key"]
    stderr().print(
        f"Created key {created['id']} [bold]{escape(created['name'])}[/] "
        f"({', '.join(created['scopes'])}). Store the secret now; it is shown only this once:"
    )
    stdout().print(answer["secret"], markup=False)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (karta keys list).")],
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Revoke an API key; data planes stop accepting it at once."""
    with control(control_url, key, org) as client:
        revoked = client.revoke_key(key_id)
    stdout().print(
        f"Revoked key {revoked['id']} ({escape(revoked['name'])}, {revoked['prefix']}…)."
    )


budget_app = typer.Typer(help="The organization's monthly caps.", no_args_is_help=True)


@budget_app.command("show")
def budget_show(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """Show the caps and this month's use against them."""
    with control(control_url, key, org) as client:
        stdout().print(show.budget_table(client.budget()))


@budget_app.command("set")
def budget_set(
    tokens: Annotated[int | None, typer.Option(help="Monthly token cap.")] = None,
    cost_cents: Annotated[int | None, typer.Option(help="Monthly cost cap, in cents.")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the caps not given (alone: remove both).")
    ] = False,
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Set the monthly caps; a cap not given keeps its value unless --clear."""
    if tokens is None and cost_cents is None and not clear:
        stderr().print("[red]give --tokens, --cost-cents or --clear[/]")
        raise typer.Exit(2)
    with control(control_url, key, org) as client:
        current = {} if clear else client.budget()
        answer = client.set_budget(
            tokens if tokens is not None else current.get("monthly_token_limit"),
            cost_cents if cost_cents is not None else current.get("monthly_cost_limit_cents"),
        )
    stdout().print(show.budget_table(answer))


def usage(
    period: Annotated[
        str | None, typer.Option(help="The month, YYYY-MM (default: this one).")
    ] = None,
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Tokens and cost for a month: totals by model, budget state and a per-day chart."""
    with control(control_url, key, org) as client:
        answer = client.usage(period)
    start = date.fromisoformat(answer["period"]["start"])
    end = date.fromisoformat(answer["period"]["end"])
    label = f"{start:%Y-%m}"
    stdout().print(show.usage_table(answer["totals"], answer["by_model"], f"Usage {label}"))
    stdout().print(show.budget_table(answer["budget"], f"Budget {label}"))
    stdout().print(f"\nTokens per day, {label}")
    for line in show.day_chart(start, end, answer["daily"], datetime.now(UTC).date()):
        stdout().print(line, markup=False)


audit_app = typer.Typer(help="The organization's audit log.")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(help="Only rows after this seq.")] = 0,
    control_url: ControlUrl = None,
    key: Key = None,
    org: Org = None,
) -> None:
    """Show the audit log, every row after --after (paging through the API)."""
    if ctx.invoked_subcommand is not None:
        return
    with control(control_url, key, org) as client:
        rows = [row for page in client.audit_pages(after) for row in page["data"]]
    stdout().print(show.audit_table(rows))


@audit_app.command("verify")
def audit_verify(control_url: ControlUrl = None, key: Key = None, org: Org = None) -> None:
    """Fetch every row and the chain head and check the hash chain; exit 1 if it is broken."""
    from karta.core import auditchain

    with control(control_url, key, org) as client:
        pages = list(client.audit_pages())
    head = pages[0]["head"]
    rows = [row for page in pages for row in page["data"]]
    # Rows appended while paging are past the head read first; they are checked next time.
    verdict = auditchain.verify([r for r in rows if int(r["seq"]) <= int(head["seq"])], head)
    if verdict.ok:
        stdout().print(f"chain intact: {verdict.checked} events")
        return
    stdout().print(f"[red]chain broken at seq {verdict.seq}: {verdict.problem}[/]")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the management commands to the `karta` app."""
    app.command()(signup)
    app.command()(login)
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(members_app, name="members")
    app.add_typer(invitations_app, name="invitations")
    app.add_typer(projects_app, name="projects")
    app.add_typer(keys_app, name="keys")
    app.add_typer(budget_app, name="budget")
    app.command()(usage)
    app.add_typer(audit_app, name="audit")
